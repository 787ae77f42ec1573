"""Run N steps of one implementation of the digits (or MNIST-size) MLP step, or of a LeNet/LSTM
step of bench/compile_models.py, for instruction counting under valgrind (noise-free, unlike
timings on a shared machine):

    PY=/root/.pyenv/versions/3.11.7/bin/python3.11
    for impl in hand eager compiled; do for n in 10 110; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null $PY bench/count_compile_step.py $impl $n digits sgd \\
        2>&1 | grep refs
    done; done

    python bench/count_compile_step.py IMPL N [CONFIG [OPTIMIZER]]
      IMPL       hand | eager | compiled  (hand: the MLP configs only)
      CONFIG     digits (default) | mnist | lenet | lenet16 | lstm | lstm-small
      OPTIMIZER  sgd (default) | adam

(instructions of 110 steps - of 10 steps) / 100 = instructions per step, start-up excluded.
XBP_BENCH_WITHOUT=pass1,pass2 leaves those passes of xbp/_compile_passes.py's PIPELINE out (to
count what each one saves).
The MLP steps are bench/bench_mlp.py's (SGD lr 0.01 or Adam lr 1e-3), each returning its loss
(the hand-written step returns its loss array, the xbp steps ``loss.detach()``); `compiled` is
xbp.compile of the eager step, warmed until it replays."""
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_mlp import CONFIGS, make_hand, make_xbp  # noqa: E402
import xbp  # noqa: E402
import xbp.nn.functional as F  # noqa: E402

if os.environ.get("XBP_BENCH_WITHOUT"):
    from xbp import _compile_passes
    _compile_passes.PIPELINE[:] = [p for p in _compile_passes.PIPELINE
                                   if p.__name__ not in os.environ["XBP_BENCH_WITHOUT"].split(",")]
impl, n = sys.argv[1], int(sys.argv[2])
config = sys.argv[3] if len(sys.argv) > 3 else "digits"
opt_name = sys.argv[4] if len(sys.argv) > 4 else "sgd"
if config in CONFIGS:
    widths, batch = CONFIGS[config]
    if impl == "hand":
        step = make_hand(np, widths, batch, opt_name)
    else:
        base = make_xbp(widths, batch, "cpu", opt_name)
        model, x, y = base.model, base.x, base.y
        opt = base.__closure__[[c for c in base.__code__.co_freevars].index("opt")].cell_contents

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()
else:
    from compile_models import make_model_step  # noqa: E402
    if impl == "hand":
        raise SystemExit("hand: only for the MLP configs " + ", ".join(CONFIGS))
    step = make_model_step(xbp, config, opt_name)
if impl == "compiled":
    step = xbp.compile(step)
    while step.stats["replayed"] == 0:
        step()
    assert step.stats["eager"] == 0, step.cache
for _ in range(3):
    step()
for _ in range(n):
    step()
if impl == "compiled":
    assert step.stats["eager"] == 0 and step.stats["guard_failures"] == 0, step.stats
