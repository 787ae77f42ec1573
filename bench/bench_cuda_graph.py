"""Captured training steps on cuda: xbp eager, xbp.compile (a CUDA graph), a hand-written CuPy step
eager and as a CUDA graph, PyTorch eager and torch.cuda.graph. Issue 15's target: xbp's captured
digits and MNIST-size steps <= 0.9x PyTorch's captured step.

usage: python bench/bench_cuda_graph.py [--configs digits,mnist] [--optimizers sgd,adam] [--blocks 15]
       [--smoke] [--json FILE]
Interleaved blocks (bench/common.py's time_blocks), median µs per step, synchronised per block.
--smoke: few blocks and calls, for CI and for the CuPy emulation (on the emulation the timings mean
nothing and there is no capture: it checks that the script runs).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import environment, print_environment, table, time_blocks, torch_cuda_in_plain_float32, write_json  # noqa: E402
from bench_mlp import CONFIGS, LR, BETAS, EPS, batch_data, make_hand, make_torch, make_xbp  # noqa: E402

import numpy as np  # noqa: E402

import xbp  # noqa: E402
import xbp.nn.functional as F  # noqa: E402
from xbp import _cublas, _cuda_graph  # noqa: E402


def emulated(cp) -> bool:
    return "fakecupy" in (getattr(cp, "__file__", "") or "")


def xbp_compiled(widths, batch, opt_name):
    """The bench_mlp xbp step, through xbp.compile (on cuda: captured as a CUDA graph)."""
    eager = make_xbp(widths, batch, "cuda", opt_name)
    model, x, y = eager.model, eager.x, eager.y
    opt = (xbp.optim.SGD(model.parameters(), lr=LR["sgd"]) if opt_name == "sgd"
           else xbp.optim.Adam(model.parameters(), lr=LR["adam"], betas=BETAS, eps=EPS))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    c = xbp.compile(step)
    run = (lambda: c(x, y))
    run.compiled = c
    return run


def hand_graph(cp, widths, batch):
    """The hand-written CuPy SGD step with matmuls through xbp._cublas (CuPy refuses cuBLAS under
    capture), captured once into a private pool; returns (replay, note)."""
    rs = np.random.RandomState(0)
    Ws = [cp.asarray((rs.randn(i, o) * (2 / i) ** 0.5).astype(np.float32)) for i, o in zip(widths[:-1], widths[1:])]
    bs = [cp.zeros(o, dtype=cp.float32) for o in widths[1:]]
    xh, yh = batch_data(widths, batch)
    x = cp.asarray(xh)
    onehot = cp.asarray(np.eye(widths[-1], dtype=np.float32)[yh])
    lr = LR["sgd"]

    def mm(a, b):
        return _cublas.matmul(cp, a, b)

    def step():
        hs, zs, h = [x], [], x
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = mm(h, W) + b
            zs.append(z)
            h = cp.maximum(z, 0) if i < len(Ws) - 1 else z
            hs.append(h)
        e = cp.exp(h - h.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        g = (p - onehot) / batch
        for i in reversed(range(len(Ws))):
            gW = mm(hs[i].T, g)
            gb = g.sum(axis=0)
            if i > 0:
                g = mm(g, Ws[i].T) * (zs[i - 1] > 0)
            Ws[i] -= lr * gW
            bs[i] -= lr * gb
    s = cp.cuda.Stream(non_blocking=True)
    pool = cp.cuda.MemoryPool()
    with s, cp.cuda.using_allocator(pool.malloc):
        _cublas.set_stream(s.ptr)
        for _ in range(3):
            step()
        s.synchronize()
        s.begin_capture()
        step()
        graph = s.end_capture()
    keep = (graph, pool)                    # the pool is kept alive with the graph
    cur = cp.cuda.get_current_stream()
    xin = x.copy()

    def replay():                           # the batch copied into the static input, as a loop would
        cp.copyto(x, xin)
        keep[0].launch(cur)
    return replay


def torch_graph(torch, widths, batch, opt_name):
    """PyTorch's whole-step capture recipe (torch.cuda.graph, static inputs, capturable Adam)."""
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).cuda()
    opt = (torch.optim.SGD(model.parameters(), lr=LR["sgd"]) if opt_name == "sgd"
           else torch.optim.Adam(model.parameters(), lr=LR["adam"], betas=BETAS, eps=EPS, capturable=True))
    xh, yh = batch_data(widths, batch)
    x, y = torch.from_numpy(xh).cuda(), torch.from_numpy(yh).cuda()
    lossf = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    sx, sy = x.clone(), y.clone()           # static inputs: each step copies its batch in, as a loop would
    with torch.cuda.graph(g):
        loss = lossf(model(sx), sy)
        loss.backward()
        opt.step()

    def replay():
        sx.copy_(x)
        sy.copy_(y)
        g.replay()
    return replay


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="digits,mnist")
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--blocks", type=int, default=15)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--smoke", action="store_true", help="3 blocks of 5 calls (CI, emulation)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.smoke:
        a.blocks, a.calls = 3, 5
    import cupy as cp
    be = xbp.zeros(1, device="cuda").xp
    emu = emulated(cp)
    no_capture = _cuda_graph.make_driver(be).unavailable()
    try:
        import torch
        has_torch_cuda = torch.cuda.is_available()
        if has_torch_cuda:
            print(torch_cuda_in_plain_float32(torch))
    except ImportError:
        torch, has_torch_cuda = None, False
    info = environment("cuda")
    print_environment("bench_cuda_graph: captured training steps", info)
    if emu:
        print("# EMULATION (fakecupy on NumPy): the timings below mean nothing; no CUDA graph is captured. "
              "This run only checks that the script works.")
    if no_capture:
        print(f"# {no_capture}: the graph rows are skipped and xbp.compile runs eagerly")
    sync = be.synchronize
    rows, results = [], []
    for cfg in a.configs.split(","):
        widths, batch = CONFIGS[cfg]
        for opt_name in a.optimizers.split(","):
            runners = {"xbp eager": (make_xbp(widths, batch, "cuda", opt_name), sync)}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                comp = xbp_compiled(widths, batch, opt_name)
                for _ in range(3):
                    comp()
            for m in dict.fromkeys(str(w.message) for w in caught if "xbp.compile" in str(w.message)):
                print(f"# {cfg} {opt_name}: {m}")           # why xbp did not capture, if it did not
            runners["xbp compiled"] = (comp, sync)
            runners["cupy eager"] = (make_hand(cp, widths, batch, opt_name), sync)
            if opt_name == "sgd" and not no_capture:
                runners["cupy graph"] = (hand_graph(cp, widths, batch), sync)
            if has_torch_cuda:
                tsync = torch.cuda.synchronize
                runners["torch eager"] = (make_torch(torch, widths, batch, "cuda", opt_name), tsync)
                runners["torch graph"] = (torch_graph(torch, widths, batch, opt_name), tsync)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                t = time_blocks(runners, a.calls, a.blocks)
            captured = comp.compiled.stats.get("captured", 0) > 0
            ratio = (t["xbp compiled"]["us"] / t["torch graph"]["us"]) if "torch graph" in t and captured else None
            row = {"config": cfg, "opt": opt_name, "captured": "yes" if captured else "no (eager)",
                   "ratio": ratio, "target": ("met" if ratio <= 0.9 else "MISSED") if ratio else None}
            row.update({k: t[k]["us"] for k in t})
            rows.append(row)
            tg = t.get("torch graph", {}).get("us")
            print(f"graph-summary: {cfg} {opt_name}: xbp compiled {t['xbp compiled']['us']:.1f} us "
                  f"(captured: {captured}), torch graph {'-' if tg is None else f'{tg:.1f} us'}, "
                  f"ratio {'-' if ratio is None else f'{ratio:.2f}'} (target <= 0.9)"
                  + ("  [EMULATION: meaningless]" if emu else ""), flush=True)
            results.append({"config": cfg, "optimizer": opt_name, "captured": captured, "times_us": t,
                            "xbp_graph_over_torch_graph": ratio, "emulated": emu})
    cols = [("config", "config", "{}"), ("opt", "opt", "{}")]
    cols += [(k, k, "{:.1f}") for k in ("xbp eager", "xbp compiled", "cupy eager", "cupy graph", "torch eager",
                                       "torch graph")]
    cols += [("xbp captured", "captured", "{}"), ("xbp/torch graph", "ratio", "{:.2f}"), ("<= 0.9x", "target", "{}")]
    print(table(rows, cols))
    print("# µs per step, median over interleaved blocks; every graph row copies the batch into its static "
          "input buffers each step (xbp compiled does so itself)" + ("  (EMULATION: meaningless)" if emu else ""))
    if a.json:
        write_json(a.json, info, results)


if __name__ == "__main__":
    main()
