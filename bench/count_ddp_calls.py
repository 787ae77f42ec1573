"""Python function calls per training step of the MNIST-size MLP (784-512-512-10, 128 rows/rank):
plain module against DistributedDataParallel, counted with ``sys.setprofile`` (Python-level
"call" events; C functions are counted separately as "c_call"), and the minor page faults per
step (``getrusage``: a fresh buffer the allocator takes from the kernel is paid in faults). Neither
depends on machine load, unlike wall-clock times.

    python bench/count_ddp_calls.py [--ranks 2] [--steps 20]

Launches itself under ``mpiexec -n RANKS``; rank 0 prints one table row per variant.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def worker(steps):
    import numpy as np
    sys.path.insert(0, ROOT)
    import xbp
    import xbp.distributed as dist
    import xbp.nn as nn
    import xbp.nn.functional as F
    from xbp.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("mpi")
    rank = dist.get_rank()
    rs = np.random.RandomState(rank)
    x = xbp.tensor(rs.randn(128, 784).astype(np.float32))
    y = xbp.tensor(rs.randint(0, 10, 128).astype(np.int64))

    def make():
        xbp.manual_seed(0)
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    variants = {"plain": make()}
    variants["ddp"] = DDP(make())
    if hasattr(variants["ddp"], "_reducer"):                      # (absent before the buffers were kept)
        variants["ddp, gradient_as_bucket_view"] = DDP(make(), gradient_as_bucket_view=True)
        variants["ddp, fresh buffers"] = DDP(make())
        variants["ddp, fresh buffers"]._reducer.reuse_buffers = False
    rows = []
    for name, m in variants.items():
        opt = xbp.optim.SGD(m.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        for _ in range(3):
            step()
        counts: Counter = Counter()
        per_fn: Counter = Counter()

        def prof(frame, event, arg):
            counts[event] += 1
            if event == "call":
                per_fn[(frame.f_code.co_filename.rsplit("/", 1)[-1], frame.f_code.co_name)] += 1
        dist.barrier()
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(steps):
            step()
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        faults = ((u1.ru_minflt - u0.ru_minflt) / steps, (u1.ru_utime - u0.ru_utime) / steps * 1e3,
                  (u1.ru_stime - u0.ru_stime) / steps * 1e3)
        dist.barrier()
        sys.setprofile(prof)
        for _ in range(steps):
            step()
        sys.setprofile(None)
        rows.append((name, counts["call"] / steps, counts["c_call"] / steps, per_fn, faults))
    if rank == 0:
        base = rows[0][1]
        print("| variant | Python calls/step | C calls/step | Python calls over plain | minor page faults/step "
              "| CPU ms/step user | CPU ms/step system |")
        print("|---|---|---|---|---|---|---|")
        for name, py, c, _, (faults, ut, st) in rows:
            print(f"| {name} | {py:.0f} | {c:.0f} | {py - base:+.0f} | {faults:.1f} | {ut:.2f} | {st:.2f} |")
        print("(page faults and CPU times: rank 0, over --steps steps without the profiler; CPU times "
              "include MPI's busy-wait and vary with load, the counts do not)")
        if os.environ.get("XBP_COUNT_DETAIL"):
            for name, _, _, per_fn, _ in rows[1:]:
                extra = per_fn - rows[0][3]
                print(f"\n{name}: calls/step beyond plain, by function")
                for (f, fn), k in extra.most_common(30):
                    print(f"  {k / steps:7.1f}  {f}:{fn}")
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.steps)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = ["mpiexec", "-n", str(a.ranks), sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(a.steps)]
    raise SystemExit(subprocess.call(cmd, env=env))


if __name__ == "__main__":
    main()
