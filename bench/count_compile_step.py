"""Run N steps of one implementation of the digits (or MNIST-size) MLP step, for instruction
counting under valgrind (noise-free, unlike timings on a shared machine):

    for impl in eager compiled hand; do for n in 10 110; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/count_compile_step.py $impl $n 2>&1 | grep refs
    done; done

(instructions of 110 steps - of 10 steps) / 100 = instructions per step, start-up excluded.
The steps are bench/bench_mlp.py's (SGD, lr 0.01); `compiled` is xbp.compile of the eager step,
warmed until it replays."""
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_mlp import CONFIGS, make_hand, make_xbp  # noqa: E402
import xbp  # noqa: E402

impl, n = sys.argv[1], int(sys.argv[2])
config = sys.argv[3] if len(sys.argv) > 3 else "digits"
widths, batch = CONFIGS[config]
if impl == "hand":
    step = make_hand(np, widths, batch, "sgd")
else:
    step = make_xbp(widths, batch, "cpu", "sgd")
    if impl == "compiled":
        step = xbp.compile(step)
        while step.stats["replayed"] == 0:
            step()
for _ in range(3):
    step()
for _ in range(n):
    step()
