"""Python-level function calls per operation: this checkout's xbp against another's, loaded side by
side in one process (the other copied to a temporary package `xbp_old`).

    git archive main | tar -x -C /tmp/xbp-main
    python bench/ab_calls.py /tmp/xbp-main

A deterministic proxy for per-op overhead, for changes near the hot path whose cost (a few tens
of ns) is below what timings on a shared machine can resolve: each extra Python call costs about
40-60 ns on the CPUs we measure on. `x.shape` is timed too (it builds an xbp.Size on access).
"""
import os
import shutil
import sys
import tempfile
import timeit

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load(root, name):
    tmp = tempfile.mkdtemp()
    shutil.copytree(os.path.join(root, "xbp"), os.path.join(tmp, name))
    sys.path.insert(0, tmp)
    return __import__(name)


def cases(xbp):
    x = xbp.tensor(np.random.rand(64).astype(np.float32))
    w = xbp.tensor(np.random.rand(64).astype(np.float32))
    xr = xbp.tensor(np.random.rand(64).astype(np.float32), requires_grad=True)
    m = xbp.tensor(np.random.rand(16, 16).astype(np.float32), requires_grad=True)

    def fwd_bwd():
        (xr * w).sum().backward()
    return {"x * w": lambda: x * w, "x * w recorded": lambda: xr * w, "xbp.add(x, w)": lambda: xbp.add(x, w),
            "x.exp()": lambda: x.exp(), "m @ m recorded": lambda: m @ m, "m.sum(0) recorded": lambda: m.sum(0),
            "m.softmax(-1) recorded": lambda: m.softmax(-1), "m.max(1)": lambda: m.max(1), "x[3]": lambda: x[3],
            "m.reshape(256)": lambda: m.reshape(256), "cat([m, m])": lambda: xbp.cat([m, m]),
            "stack([m, m])": lambda: xbp.stack([m, m]), "(x * w).sum().backward()": fwd_bwd}


def calls(f):
    n = [0]

    def prof(frame, event, arg):
        if event in ("call", "c_call"):
            n[0] += 1
    f()
    sys.setprofile(prof)
    f()
    sys.setprofile(None)
    return n[0] - 1          # the setprofile(None) call itself


def main(other):
    old, new = load(other, "xbp_old"), load(HERE, "xbp_new")
    A, B = cases(old), cases(new)
    print(f"# calls per op: {os.path.abspath(other)} (old) vs {os.path.abspath(HERE)} (new)")
    print(f"{'op':28s} {'old':>5s} {'new':>5s}")
    for k in A:
        print(f"{k:28s} {calls(A[k]):5d} {calls(B[k]):5d}")
    xo, xn = old.zeros(3, 4), new.zeros(3, 4)
    to = min(timeit.repeat(lambda: xo.shape, number=100000, repeat=7)) / 1e5 * 1e9
    tn = min(timeit.repeat(lambda: xn.shape, number=100000, repeat=7)) / 1e5 * 1e9
    print(f"x.shape: old {to:.0f} ns, new {tn:.0f} ns (min of 7 x 100,000)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/xbp-main")
