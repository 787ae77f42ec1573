"""A stated model of N-GPU data-parallel scaling from measured bucket sizes and backward timelines.

    python bench/ddp_scaling_model.py [--gpus 8] [--steps 20] [--widths 784,512,512,10 ...]

Measured here (one process, CPU, DistributedDataParallel over a 1-rank MPI group, float32, 128 rows):
the bucket sizes, and when in backward each bucket becomes ready (its all-reduce is launched), as
a fraction of the backward time; the forward/backward/step split.

Modelled (assumptions, not measurements):
1. On the GPUs, backward keeps the *relative* timeline measured here (bucket k ready at the same
   fraction of backward) -- true when each layer's share of the work is the same on both devices.
2. All-reduce time of a bucket of S bytes on N GPUs: interpolated (log-log) from a published
   nccl-tests ``all_reduce_perf`` table of an 8-GPU NVLink node (NCCL_TABLE below, its source in
   bench/RESULTS.md); the buckets' all-reduces run one after another on one stream, each starting
   when its bucket is ready and the previous one has finished (NCCL overlaps them with backward).
3. Exposed communication = how far the last all-reduce ends after backward ends; the optimizer
   waits for it. Efficiency = T / (T + exposed) for a step of compute time T; scaling = N x that.
   Host-side overheads of DDP (copies into buckets: one device pass each) are not in the model.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

# nccl-tests all_reduce_perf, float sum, in-place time (us) by size (bytes), 8 GPUs on one NVLink node
# (kvcache-ai/Mooncake pull request #3484, the NCCL baseline table; see bench/RESULTS.md)
NCCL_TABLE = [(262144, 19.27), (524288, 20.48), (1048576, 27.49), (2097152, 40.36), (4194304, 52.85),
              (8388608, 80.46), (16777216, 120.47), (33554432, 195.40), (134217728, 701.01),
              (268435456, 1367.43), (536870912, 2670.98), (1073741824, 5234.83)]


def allreduce_us(nbytes):
    """Interpolated all-reduce time (log-log between the table's rows; linear in size beyond)."""
    t = NCCL_TABLE
    if nbytes <= t[0][0]:
        return t[0][1]
    for (s0, t0), (s1, t1) in zip(t, t[1:]):
        if nbytes <= s1:
            f = (math.log(nbytes) - math.log(s0)) / (math.log(s1) - math.log(s0))
            return math.exp(math.log(t0) + f * (math.log(t1) - math.log(t0)))
    s, tt = t[-1]
    return tt * nbytes / s


def measure(widths, steps):
    import numpy as np
    import xbp
    import xbp.distributed as dist
    import xbp.nn as nn
    import xbp.nn.functional as F
    from xbp.nn.parallel import DistributedDataParallel as DDP

    if not dist.is_initialized():
        dist.init_process_group("mpi")
    xbp.manual_seed(0)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    ddp = DDP(nn.Sequential(*layers[:-1]))
    r = ddp._reducer
    rs = np.random.RandomState(0)
    x = xbp.tensor(rs.randn(128, widths[0]).astype(np.float32))
    y = xbp.tensor(rs.randint(0, widths[-1], 128).astype(np.int64))
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.01)
    marks = {}
    launch, finish = r.launch, r.finish

    def timed_launch(b):
        launch(b)            # the copy into the bucket counts as backward: ready once it is issued
        marks.setdefault("ready", []).append(time.perf_counter())

    def timed_finish():
        marks["end"] = time.perf_counter()
        finish()
    r.launch, r.finish = timed_launch, timed_finish
    rows = []
    for s in range(steps + 3):
        marks.clear()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(ddp(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if s >= 3:
            rows.append((t1 - t0, marks["end"] - t1, t3 - t0, [(m - t1) / (marks["end"] - t1) for m in marks["ready"]]))
    sizes = [b.numel * 4 for b in r.buckets]
    med = lambda k: statistics.median(v[k] for v in rows)
    fracs = [statistics.median(v[3][k] for v in rows) for k in range(len(sizes))]
    return {"sizes": sizes, "fwd": med(0), "bwd": med(1), "step": med(2), "fracs": fracs}


def model(m, gpus, step_s):
    bwd = step_s * m["bwd"] / m["step"]
    end = 0.0
    for f, s in zip(m["fracs"], m["sizes"]):
        start = max(f * bwd, end)
        end = start + allreduce_us(s) * 1e-6
    exposed = max(0.0, end - bwd)
    return exposed, gpus * step_s / (step_s + exposed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--widths", nargs="+", default=["784,512,512,10", "784,2048,2048,2048,10"])
    ap.add_argument("--step-ms", default="0.5,1,2,5,10,50",
                    help="GPU step compute times to evaluate the model at (ms, comma-separated)")
    a = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(f"load average {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for w in a.widths:
        widths = [int(v) for v in w.split(",")]
        m = measure(widths, a.steps)
        print(f"\nMLP {w}: buckets " + ", ".join(f"{s / 2 ** 20:.2f} MiB" for s in m["sizes"])
              + f"; measured here (CPU, 1 rank): forward {m['fwd'] * 1e3:.2f} ms, backward {m['bwd'] * 1e3:.2f} ms, "
              f"step {m['step'] * 1e3:.2f} ms; bucket ready at " + ", ".join(f"{f:.2f}" for f in m["fracs"])
              + " of backward; modelled NCCL all-reduce per bucket "
              + ", ".join(f"{allreduce_us(s):.1f} us" for s in m["sizes"]))
        print(f"| GPU step compute (assumed) | exposed all-reduce (model) | efficiency | predicted scaling on {a.gpus} GPUs |")
        print("|---|---|---|---|")
        for ms in (float(v) for v in a.step_ms.split(",")):
            exposed, scale = model(m, a.gpus, ms * 1e-3)
            print(f"| {ms:g} ms | {exposed * 1e6:.1f} us | {scale / a.gpus:.3f} | {scale:.2f}x |")


if __name__ == "__main__":
    main()
