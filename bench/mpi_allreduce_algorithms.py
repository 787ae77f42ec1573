"""The blocking all-reduce of the MNIST-size MLP's gradient (2.55 MiB float32, 668,426 values) alone,
for each of MPICH's intra-node Allreduce algorithms, with the ranks put in step by a Barrier
before every call (so rank skew is not in the figure; DDP's wait in bench/bench_distributed.py
holds it).

    python bench/mpi_allreduce_algorithms.py [--ranks 2] [--calls 300]

Launches itself under ``mpiexec -n N`` once per algorithm
(``MPIR_CVAR_ALLREDUCE_INTRA_ALGORITHM``) and prints the median and 10th/90th percentile per call.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ALGORITHMS = ["auto", "recursive_doubling", "reduce_scatter_allgather", "ring"]
N_VALUES = 668_426


def worker(calls):
    import numpy as np
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    a = np.random.default_rng(comm.rank).random(N_VALUES, dtype=np.float32)
    times = []
    for _ in range(calls):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)
        times.append(time.perf_counter() - t0)
    times.sort()
    if comm.rank == 0:
        q = lambda f: times[int(f * (len(times) - 1))] * 1e3  # noqa: E731
        print(f"{os.environ.get('MPIR_CVAR_ALLREDUCE_INTRA_ALGORITHM', 'auto'):26s} median {q(0.5):.3f} ms "
              f"[p10 {q(0.1):.3f}, p90 {q(0.9):.3f}]", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.calls)
        return
    print(f"# blocking Allreduce of {N_VALUES * 4 / 2**20:.2f} MiB float32 on {args.ranks} ranks, {args.calls} calls; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for alg in ALGORITHMS:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPIR_CVAR_ALLREDUCE_INTRA_ALGORITHM=alg)
        subprocess.run(["mpiexec", "-n", str(args.ranks), sys.executable, os.path.abspath(__file__), "--worker",
                        "--calls", str(args.calls)], env=env, check=True, timeout=120)


if __name__ == "__main__":
    main()
