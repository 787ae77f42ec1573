"""Peak Python-traced memory (tracemalloc: NumPy's array data included) of one training step of a
bench/compile_models.py config, eager or compiled (a replayed plan), above what is resident
before it:

    python bench/peak_compile_step.py CONFIG IMPL [OPTIMIZER]     # lenet16 compiled sgd

A plan is one Python function; a temporary it does not delete lives until the function returns."""
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xbp  # noqa: E402
from compile_models import make_model_step  # noqa: E402

config, impl = sys.argv[1], sys.argv[2]
opt_name = sys.argv[3] if len(sys.argv) > 3 else "sgd"
step = make_model_step(xbp, config, opt_name)
if impl == "compiled":
    step = xbp.compile(step)
    while step.stats["replayed"] == 0:
        step()
for _ in range(2):
    step()
tracemalloc.start()
step()
current, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(f"{config} {impl} {opt_name}: peak {(peak - current) / 1e6:.2f} MB above {current / 1e6:.2f} MB resident")
