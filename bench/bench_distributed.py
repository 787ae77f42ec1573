"""Data-parallel scaling of the MNIST-size MLP step on MPI: 1 process against 2 (or --ranks N).

    python bench/bench_distributed.py [--ranks 2] [--rounds 3] [--blocks 10] [--steps 10]
                                      [--widths 784,512,512,10] [--bucket-cap-mb 25]
                                      [--bind] [--async-progress] [--progress-interval S]
                                      [--json OUT]

The step: 784 -> 512 -> 512 -> 10 (ReLU), float32, mean cross-entropy, backward, SGD (lr 0.01),
128 rows per rank, one BLAS thread per rank (OMP/OPENBLAS/MKL_NUM_THREADS=1 in each rank's
environment). This script launches itself under ``mpiexec -n 1`` and ``mpiexec -n N``
alternately (--rounds times, so a slow spell of a shared machine hits both) and reports, per rank
count, medians over blocks of the mean time per step, with the range over blocks and rounds:

  plain       the module without DDP (the 1-rank baseline of the scaling)
  ddp         DistributedDataParallel (defaults): bucket buffers kept across steps, gradients
              copied in pre-divided by the world size, SUM all-reduce started during backward,
              the oldest bucket in flight tested (MPI progress) from every gradient hook
  ddp_view    the same with gradient_as_bucket_view=True
  ddp_fresh   the same as ddp but a new bucket buffer every step (what DDP did before buffers
              were kept: _Reducer.reuse_buffers = False)
  ddp_nopoll  the same as ddp but buckets tested only when one becomes full (no hook polling)
  ddp_thread  the same as ddp with ``mpi_progress_interval`` set (--progress-interval): a helper
              thread calls MPI's progress engine while buckets are in flight during backward
  ddp_sync    the same gradients, all-reduced after backward in one blocking call (no overlap)
  allreduce   the blocking all-reduce of the whole gradient (2.55 MiB) alone
  wait        time DDP's end-of-backward callback waited for the buckets (the exposed part), ddp
  early       buckets per step whose all-reduce had finished when backward ended (ddp)

Each launch prints the 1-minute load average when it starts (``os.getloadavg``): on a machine
with as many cores as ranks, anything else running shows up directly in the times.

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
    models = {"ddp": DDP(make(), bucket_cap_mb=args.bucket_cap_mb),
              "ddp_view": DDP(make(), bucket_cap_mb=args.bucket_cap_mb, gradient_as_bucket_view=True),
              "ddp_fresh": DDP(make(), bucket_cap_mb=args.bucket_cap_mb),
              "ddp_nopoll": DDP(make(), bucket_cap_mb=args.bucket_cap_mb),
              "ddp_thread": DDP(make(), bucket_cap_mb=args.bucket_cap_mb)}
    models["ddp_thread"].mpi_progress_interval = args.progress_interval
    models["ddp_fresh"]._reducer.reuse_buffers = False
    models["ddp_nopoll"]._reducer.poll_in_hooks = False
    sync_model = DDP(make())
    opts = {k: xbp.optim.SGD(m.parameters(), lr=0.01) for k, m in
            [("plain", plain), ("ddp_sync", sync_model)] + list(models.items())}
    grads_numel = sum(p.numel() for p in plain.parameters())
    flat = xbp.zeros(grads_numel)

    def stepper(name, m):
        opt = opts[name]

        def step():
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        return step

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

    runners = {"plain": stepper("plain", plain)}
    runners.update({k: stepper(k, m) for k, m in models.items()})
    runners.update(ddp_sync=step_sync, allreduce=allreduce)
    for fn in runners.values():
        for _ in range(3):
            fn()
    waited = {"ddp": "wait", "ddp_view": "wait_view", "ddp_thread": "wait_thread"}
    per = {k: [] for k in list(runners) + list(waited.values())}
    early = {"ddp": [], "ddp_thread": []}
    ddp = models["ddp"]
    for _ in range(args.blocks):
        for name, fn in runners.items():
            m = models.get(name, ddp)
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
                per[waited[name]].append(float(t[1].item()) * 1e3)
            if name in ("ddp", "ddp_thread"):
                early[name].append((m.buckets_completed_early - e0) / args.steps)
    allocated = {k: m.buckets_allocated for k, m in models.items()}
    if rank == 0:
        print("RESULT " + json.dumps({"world": world, "grad_mb": grads_numel * 4 / 2 ** 20,
                                      "buckets": len(ddp._buckets), "ms": per, "early": early,
                                      "allocated": allocated,
                                      "bucket_mb": [b.numel * 4 / 2 ** 20 for b in ddp._buckets]}))
    dist.destroy_process_group()


def launch(n, args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if args.async_progress:
        env["MPICH_ASYNC_PROGRESS"] = "1"        # MPICH's progress thread (one more thread per rank)
    cmd = ["mpiexec", "-n", str(n)] + (["-bind-to", "core"] if args.bind else []) + [
           sys.executable, os.path.abspath(__file__), "--worker",
           "--blocks", str(args.blocks), "--steps", str(args.steps),
           "--widths", args.widths, "--bucket-cap-mb", str(args.bucket_cap_mb),
           "--progress-interval", str(args.progress_interval)]
    load = os.getloadavg()[0]
    print(f"  launch: {n} rank(s), load average (1 min) {load:.2f}", flush=True)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    line = [s for s in p.stdout.splitlines() if s.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    res["load"] = load
    return res


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
    ap.add_argument("--progress-interval", type=float, default=2e-4,
                    help="ddp_thread: seconds between its progress thread's MPI calls (default %(default)s)")
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
    r0 = runs[1][0]
    print(f"\nMLP {'-'.join(map(str, WIDTHS))}, {ROWS} rows/rank, float32, SGD; gradient "
          f"{r0['grad_mb']:.2f} MiB in {r0['buckets']} buckets ("
          + ", ".join(f"{mb:.2f}" for mb in r0["bucket_mb"]) + f" MiB); {args.rounds} rounds x "
          f"{args.blocks} blocks x {args.steps} steps; ms per step, median [min-max] over blocks and rounds")
    cols = ["plain", "ddp", "ddp_view", "ddp_fresh", "ddp_nopoll", "ddp_thread", "ddp_sync", "allreduce", "wait",
            "wait_view", "wait_thread"]
    scaled = ("ddp", "ddp_view", "ddp_fresh", "ddp_thread")
    print("| ranks | " + " | ".join(cols) + " | early (ddp/ddp_thread) | " + " | ".join(f"scaling {k}" for k in scaled)
          + " | buffers allocated (ddp/view/fresh) | load avg at launch |")
    print("|---" * (len(cols) + len(scaled) + 4) + "|")
    for n in runs:
        r = res[n]
        scale = {k: (n * ROWS / (r[k][0] / 1e3)) / (ROWS / (base / 1e3)) for k in scaled}
        cells = [f"{r[k][0]:.2f} [{r[k][1]:.2f}-{r[k][2]:.2f}]" for k in cols]
        early = "/".join(f"{statistics.median([v for x in runs[n] for v in x['early'][k]]):.2f}" for k in ("ddp", "ddp_thread"))
        alloc = runs[n][-1]["allocated"]
        loads = [x["load"] for x in runs[n]]
        print(f"| {n} | " + " | ".join(cells) + f" | {early} of {runs[n][0]['buckets']} | "
              + " | ".join(f"{scale[k]:.2f}x" for k in scaled) + f" | {alloc['ddp']}/{alloc['ddp_view']}/{alloc['ddp_fresh']} | {min(loads):.2f}-{max(loads):.2f} |")
    print("\nscaling = (ranks x rows / DDP time on N ranks) / (rows / plain time on 1 rank); target >= 1.8x on 2 ranks. "
          "Times mean something only on a quiet machine: each rank needs a core of its own (load average near 0 before a launch).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "runs": {str(k): v for k, v in runs.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
