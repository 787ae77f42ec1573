"""Data-parallel scaling of the MNIST-size MLP step on MPI: 1 process against 2 (or --ranks N).

    python bench/bench_distributed.py [--ranks 2] [--rounds 3] [--blocks 10] [--steps 10]
                                      [--widths 784,512,512,10] [--bucket-cap-mb 25]
                                      [--bind] [--async-progress] [--json OUT]

The step: 784 -> 512 -> 512 -> 10 (ReLU), float32, mean cross-entropy, backward, SGD (lr 0.01),
128 rows per rank, one BLAS thread per rank (OMP/OPENBLAS/MKL_NUM_THREADS=1 in each rank's
environment). This script launches itself under ``mpiexec -n 1`` and ``mpiexec -n N``
alternately (--rounds times, so a slow spell of a shared machine hits both) and reports, per rank
count, medians over blocks of the mean time per step, with the range over blocks and rounds:

  plain       the module without DDP (the 1-rank baseline of the scaling)
  ddp         DistributedDataParallel: bucketed AVG all-reduce started during backward, the
              buckets in flight tested (MPI progress) from every gradient hook
  ddp_before  the same, but buckets tested only when one becomes full (DDP before hook polling)
  ddp_sync    the same gradients, all-reduced after backward in one blocking call (no overlap)
  allreduce   the blocking all-reduce of the whole gradient (2.55 MiB) alone
  wait        time DDP's end-of-backward callback waited for the buckets (the exposed part)
  wait_before the same for ddp_before
  early       buckets per step whose all-reduce had finished when backward ended (ddp, ddp_before)

Throughput scaling = (N x 128 rows / ddp time on N ranks) / (128 rows / plain time on 1 rank);
ideal is N. The exposed communication is the wait; the share of the all-reduce hidden behind
backward is 1 - wait / allreduce when the ranks run in step (the wait also holds rank skew).
MPICH progresses a non-blocking collective only inside MPI calls unless MPICH_ASYNC_PROGRESS=1
(--async-progress) gives it a thread, which needs a spare core per rank to pay off. DDP tests
the buckets in flight from every gradient hook, so backward drives that progress; how many tests a
bucket needs depends on MPICH's Iallreduce algorithm: for 2 ranks,
``MPIR_CVAR_IALLREDUCE_INTRA_ALGORITHM=sched_recursive_doubling`` (inherited by the ranks from
this script's environment) needs about 3 spaced tests per bucket against about 6 for the default
selection (measured 2026-12-03 with a 1-4 MiB Iallreduce tested every 2 ms).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
WIDTHS = [784, 512, 512, 10]     # --widths changes it (a larger model: more buckets to overlap)
ROWS = 128


def worker(args):
    import numpy as np
    sys.path.insert(0, ROOT)
    import xbp
    import xbp.distributed as dist
    import xbp.nn as nn
    import xbp.nn.functional as F
    from xbp.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    rs = np.random.RandomState(rank)
    x = xbp.tensor(rs.randn(ROWS, WIDTHS[0]).astype(np.float32))
    y = xbp.tensor(rs.randint(0, 10, ROWS).astype(np.int64))

    def make():
        xbp.manual_seed(0)
        layers = []
        for a, b in zip(WIDTHS[:-1], WIDTHS[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers[:-1])

    plain = make()
    ddp = DDP(make(), bucket_cap_mb=args.bucket_cap_mb)
    before = DDP(make(), bucket_cap_mb=args.bucket_cap_mb)
    before._poll_in_hooks = False
    sync_model = DDP(make())
    opts = {k: xbp.optim.SGD(m.parameters(), lr=0.01) for k, m in
            (("plain", plain), ("ddp", ddp), ("ddp_before", before), ("ddp_sync", sync_model))}
    grads_numel = sum(p.numel() for p in plain.parameters())
    flat = xbp.zeros(grads_numel)

    def step_plain():
        opts["plain"].zero_grad()
        F.cross_entropy(plain(x), y).backward()
        opts["plain"].step()

    def step_ddp():
        opts["ddp"].zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opts["ddp"].step()

    def step_before():
        opts["ddp_before"].zero_grad()
        F.cross_entropy(before(x), y).backward()
        opts["ddp_before"].step()

    def step_sync():
        m = sync_model
        opts["ddp_sync"].zero_grad()
        with m.no_sync():
            F.cross_entropy(m(x), y).backward()
        ps = list(m.parameters())
        g = xbp.tensor(np.concatenate([p.grad.numpy().ravel() for p in ps]))
        dist.all_reduce(g, op=dist.ReduceOp.AVG)
        off, gn = 0, g.numpy()
        for p in ps:
            n = p.numel()
            p.grad = xbp.tensor(gn[off:off + n].reshape(p.shape))
            off += n
        opts["ddp_sync"].step()

    def allreduce():
        dist.all_reduce(flat)

    runners = {"plain": step_plain, "ddp": step_ddp, "ddp_before": step_before, "ddp_sync": step_sync,
               "allreduce": allreduce}
    for fn in runners.values():
        for _ in range(3):
            fn()
    per = {k: [] for k in list(runners) + ["wait", "wait_before"]}
    early = {"ddp": [], "ddp_before": []}
    waited = {"ddp": ("wait", ddp), "ddp_before": ("wait_before", before)}
    for _ in range(args.blocks):
        for name, fn in runners.items():
            m = waited.get(name, (None, ddp))[1]
            dist.barrier()
            w0, e0 = m.comm_wait_s, m.buckets_completed_early
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            dt = (time.perf_counter() - t0) / args.steps
            # the slowest rank sets the pace of a synchronous step
            t = xbp.tensor([dt, (m.comm_wait_s - w0) / args.steps])
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            per[name].append(float(t[0].item()) * 1e3)
            if name in waited:
                per[waited[name][0]].append(float(t[1].item()) * 1e3)
                early[name].append((m.buckets_completed_early - e0) / args.steps)
    if rank == 0:
        print("RESULT " + json.dumps({"world": world, "grad_mb": grads_numel * 4 / 2 ** 20,
                                      "buckets": len(ddp._buckets), "ms": per, "early": early}))
    dist.destroy_process_group()


def launch(n, args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if args.async_progress:
        env["MPICH_ASYNC_PROGRESS"] = "1"        # MPICH's progress thread (one more thread per rank)
    cmd = ["mpiexec", "-n", str(n)] + (["-bind-to", "core"] if args.bind else []) + [
           sys.executable, os.path.abspath(__file__), "--worker",
           "--blocks", str(args.blocks), "--steps", str(args.steps),
           "--widths", args.widths, "--bucket-cap-mb", str(args.bucket_cap_mb)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    line = [s for s in p.stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", default=None)
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)),
                    help="layer widths of the MLP, comma-separated (default %(default)s)")
    ap.add_argument("--bucket-cap-mb", type=float, default=25.0, help="DDP bucket_cap_mb")
    ap.add_argument("--bind", action="store_true",
                    help="mpiexec -bind-to core: one core per rank (helps only if the cores are otherwise idle)")
    ap.add_argument("--async-progress", action="store_true",
                    help="set MPICH_ASYNC_PROGRESS=1: collectives progress in a thread of their own")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    WIDTHS[:] = [int(w) for w in args.widths.split(",")]
    if args.worker:
        return worker(args)
    sys.path.insert(0, HERE)
    from common import environment
    env = environment("cpu")
    print(f"{env['date']}  {env['processor']}  {env['cpus']} CPUs  numpy {env['numpy']}  git {env['git']}")
    print(f"command: {env['command']}")
    runs = {1: [], args.ranks: []}
    for _ in range(args.rounds):
        for n in runs:
            runs[n].append(launch(n, args))
    res = {}
    for n, rs in runs.items():
        res[n] = {}
        for k in rs[0]["ms"]:
            vals = [v for r in rs for v in r["ms"][k]]
            res[n][k] = (statistics.median(vals), min(vals), max(vals))
    base = res[1]["plain"][0]
    print(f"\nMLP {'-'.join(map(str, WIDTHS))}, {ROWS} rows/rank, float32, SGD; gradient "
          f"{runs[1][0]['grad_mb']:.2f} MiB in {runs[1][0]['buckets']} buckets; {args.rounds} rounds x "
          f"{args.blocks} blocks x {args.steps} steps; ms per step, median [min-max]")
    print("| ranks | plain | DDP before (test when a bucket fills) | DDP (test from every hook) | ddp_sync (no overlap) "
          "| all-reduce alone | wait at end, before | wait at end, now | buckets done before end (before/now) "
          "| scaling before | scaling now |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in runs:
        r = res[n]
        scale = {k: (n * ROWS / (r[k][0] / 1e3)) / (ROWS / (base / 1e3)) for k in ("ddp_before", "ddp")}
        cells = [f"{r[k][0]:.2f} [{r[k][1]:.2f}-{r[k][2]:.2f}]"
                 for k in ("plain", "ddp_before", "ddp", "ddp_sync", "allreduce", "wait_before", "wait")]
        early = "/".join(f"{statistics.median([v for x in runs[n] for v in x['early'][k]]):.2f}"
                         for k in ("ddp_before", "ddp"))
        print(f"| {n} | " + " | ".join(cells) + f" | {early} of {runs[n][0]['buckets']} "
              f"| {scale['ddp_before']:.2f}x | {scale['ddp']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "runs": {str(k): v for k, v in runs.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
