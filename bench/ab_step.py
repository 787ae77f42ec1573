"""A/B check of one xbp checkout against another on the MLP training step (bench_mlp's configs).

Runs the xbp step and the hand-written NumPy step in alternating blocks of a few steps and reports
the median of the per-block ratios xbp/hand (a ratio per block cancels the slow drifts of a shared
machine better than two medians). Run it once per checkout, back to back:

    git worktree add /tmp/xbp-old <commit>
    XBP_ROOT=/tmp/xbp-old python bench/ab_step.py digits mnist
    python bench/ab_step.py digits mnist
"""
import os
import sys
import time

import numpy as np

ROOT = os.environ.get("XBP_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, ROOT)
import bench_mlp as B  # noqa: E402  (from the checkout under test)

CONFIGS = {"digits": ([64, 128, 10], 64, 20, 150), "mnist": ([784, 512, 512, 10], 256, 2, 40)}


def main(names):
    print(f"# xbp from {os.path.abspath(ROOT)}  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    for name in names:
        widths, batch, n, blocks = CONFIGS[name]
        fx = B.make_xbp(widths, batch, "cpu", "sgd")
        fh = B.make_hand(np, widths, batch, "sgd")
        for f in (fx, fh):
            for _ in range(3 * n):
                f()
        ratios, tx, th = [], [], []
        for _ in range(blocks):
            t0 = time.perf_counter()
            for _ in range(n):
                fx()
            t1 = time.perf_counter()
            for _ in range(n):
                fh()
            t2 = time.perf_counter()
            tx.append((t1 - t0) / n * 1e6)
            th.append((t2 - t1) / n * 1e6)
            ratios.append(tx[-1] / th[-1])
        q = np.percentile(ratios, [25, 50, 75])
        print(f"{name} SGD: xbp/hand median {q[1]:.3f} [IQR {q[0]:.3f}-{q[2]:.3f}]  "
              f"xbp {np.median(tx):.1f} us  hand {np.median(th):.1f} us")


if __name__ == "__main__":
    main(sys.argv[1:] or ["digits", "mnist"])
