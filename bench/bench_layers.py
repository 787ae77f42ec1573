"""One training step of a LeNet-style CNN and of a 2-layer LSTM: xbp against PyTorch, in one run.

    python bench/bench_layers.py [--device cpu|cuda] [--steps 10] [--rounds 3] [--threads 2] [--only cnn|lstm]

CNN:  batch 128 of 1x28x28 synthetic images; conv(1->6, 5x5, pad 2) relu maxpool2 conv(6->16, 5x5)
      relu maxpool2 flatten linear(400->120) relu linear(120->84) relu linear(84->10), cross-entropy.
LSTM: 2 layers, input 256, hidden 256, sequence 64, batch 32; a linear head (256 -> 256 classes) on
      every step and cross-entropy against random targets (a character model's shape).
Both: forward, backward and an SGD update (lr 0.01, no momentum), float32. The two frameworks run
in interleaved blocks (`--rounds` blocks of `--steps` steps each, a pause between blocks) and the
median time per step in microseconds is reported for each, with the ratio xbp / PyTorch. PyTorch
runs only where it is installed (and, for --device cuda, where it sees a GPU).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xbp  # noqa: E402
import xbp.nn as nn  # noqa: E402
import xbp.nn.functional as F  # noqa: E402
from xbp.optim import SGD  # noqa: E402


def timed_steps(step, sync, steps):
    """Seconds per step for `steps` steps (each synchronised)."""
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        ts.append(time.perf_counter() - t0)
    return ts


def compare(runners, steps, rounds):
    """Interleave blocks of steps of each runner (name -> (step, sync)) over `rounds` rounds, with
    a pause between blocks (so one library's spinning worker threads do not slow the other's), and
    return the median microseconds per step of each."""
    times = {name: [] for name in runners}
    for name, (step, sync) in runners.items():       # warm up (allocations, caches, JIT-free paths)
        timed_steps(step, sync, 2)
    for _ in range(rounds):
        for name, (step, sync) in runners.items():
            time.sleep(0.3)
            times[name] += timed_steps(step, sync, steps)
    return {name: statistics.median(ts) * 1e6 for name, ts in times.items()}


def lenet(m):
    return m.Sequential(m.Conv2d(1, 6, 5, padding=2), m.ReLU(), m.MaxPool2d(2), m.Conv2d(6, 16, 5), m.ReLU(),
                        m.MaxPool2d(2), m.Flatten(), m.Linear(400, 120), m.ReLU(), m.Linear(120, 84), m.ReLU(),
                        m.Linear(84, 10))


class XLSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(256, 256, num_layers=2)
        self.head = nn.Linear(256, 256)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def make_xbp(which, device):
    rng = np.random.default_rng(0)
    xbp.manual_seed(0)
    if which == "cnn":
        model = lenet(nn).to(device)
        x = xbp.tensor(rng.standard_normal((128, 1, 28, 28)).astype(np.float32), device=device)
        y = xbp.tensor(rng.integers(0, 10, 128), device=device)
    else:
        model = XLSTMNet().to(device)
        x = xbp.tensor(rng.standard_normal((64, 32, 256)).astype(np.float32), device=device)
        y = xbp.tensor(rng.integers(0, 256, (64 * 32,)), device=device)
    opt = SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y)
        loss.backward()
        opt.step()
    return step, x.xp.synchronize


def make_torch(which, device):
    import torch
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dev = "cuda" if device.startswith("cuda") else "cpu"
    if which == "cnn":
        model = lenet(torch.nn).to(dev)
        x = torch.tensor(rng.standard_normal((128, 1, 28, 28)).astype(np.float32), device=dev)
        y = torch.tensor(rng.integers(0, 10, 128), device=dev)
    else:
        class TLSTMNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(256, 256, num_layers=2)
                self.head = torch.nn.Linear(256, 256)

            def forward(self, x):
                return self.head(self.lstm(x)[0])
        model = TLSTMNet().to(dev)
        x = torch.tensor(rng.standard_normal((64, 32, 256)).astype(np.float32), device=dev)
        y = torch.tensor(rng.integers(0, 256, (64 * 32,)), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y)
        loss.backward()
        opt.step()
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    return step, sync


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10, help="steps per block (the LSTM runs a quarter)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved blocks per framework")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads (BLAS threads: set OMP_NUM_THREADS)")
    ap.add_argument("--only", choices=["cnn", "lstm"], default=None)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(args.threads)
        have_torch = not args.device.startswith("cuda") or torch.cuda.is_available()
        if have_torch and args.device.startswith("cuda"):
            from bench.common import torch_cuda_in_plain_float32
            print(torch_cuda_in_plain_float32(torch))
        tv = torch.__version__
    except ImportError:
        have_torch, tv = False, None
    meta = {"device": args.device, "steps": args.steps, "rounds": args.rounds, "threads": args.threads,
            "xbp": xbp.__version__, "numpy": np.__version__, "torch": tv, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"# bench_layers  device={args.device}  steps={args.steps}  xbp {xbp.__version__}  numpy {np.__version__}"
          f"  torch {tv}  python {platform.python_version()}  {platform.machine()}  cpus={os.cpu_count()}")
    results = {}
    print(f"{'model':<6} {'xbp us/step':>13} {'torch us/step':>14} {'xbp/torch':>10}")
    for which in (["cnn", "lstm"] if args.only is None else [args.only]):
        steps = args.steps if which == "cnn" else max(2, args.steps // 4)
        runners = {"xbp": make_xbp(which, args.device)}
        if have_torch:
            runners["torch"] = make_torch(which, args.device)
        med = compare(runners, steps, args.rounds)
        tx, tt = med["xbp"], med.get("torch")
        ratio = f"{tx / tt:10.2f}" if tt else f"{'-':>10}"
        print(f"{which:<6} {tx:13.0f} {(f'{tt:14.0f}' if tt else '-'.rjust(14))} {ratio}", flush=True)
        results[which] = {"xbp_us_per_step": tx, "torch_us_per_step": tt, "ratio": tx / tt if tt else None}
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
