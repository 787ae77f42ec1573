"""Cost of the checkpoint digest: save and load a ~100 MB checkpoint with and without it.

    python bench/bench_checkpoint.py [--mb 100] [--rounds 5]

Rounds interleave the two variants; medians with [min-max]. The digest-free variant writes the
same file through xbp's writer with the digest step replaced by a constant (what xbp did before)."""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import xbp  # noqa: E402
from xbp import serialization as S  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.mb * 2**20 // 4 // 16
    obj = {f"layer{i}.weight": xbp.tensor(np.random.default_rng(i).normal(size=n).astype(np.float32))
           for i in range(16)}
    real = S._digest
    times = {k: [] for k in ("save digest", "save none", "load digest", "load none")}
    with tempfile.TemporaryDirectory(dir=".") as d:
        p = os.path.join(d, "c.safetensors")
        for _ in range(args.rounds):
            for variant in ("digest", "none"):
                if variant == "none":
                    S._digest = lambda meta, arrays: ""
                t = time.perf_counter()
                xbp.save(obj, p)
                times[f"save {variant}"].append(time.perf_counter() - t)
                t = time.perf_counter()
                xbp.load(p, device="cpu")
                times[f"load {variant}"].append(time.perf_counter() - t)
                S._digest = real
        size = os.path.getsize(p) / 2**20
    print(f"# checkpoint {size:.0f} MiB, {args.rounds} interleaved rounds")
    for k, v in times.items():
        print(f"{k:12s} median {statistics.median(v) * 1e3:7.1f} ms  [{min(v) * 1e3:.1f}-{max(v) * 1e3:.1f}]")


if __name__ == "__main__":
    main()
