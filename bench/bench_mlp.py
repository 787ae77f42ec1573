"""One MLP training step: xbp against the same step written by hand in NumPy/CuPy and PyTorch.

    python bench/bench_mlp.py [--device cpu|cuda] [--configs digits,mnist] [--optimizers sgd,adam]
                              [--blocks 15] [--threads 2] [--no-breakdown] [--profile CONFIG] [--json OUT]

A step is: forward through Linear/ReLU layers, mean softmax cross-entropy against integer labels
(the loss value is computed), backward, and an SGD update (lr 0.01, no momentum) or an Adam
update (lr 1e-3, PyTorch's formula), all float32:

  digits  64 -> 128 -> 10, batch 64            (the examples/train_digits.py model)
  mnist   784 -> 512 -> 512 -> 10, batch 256   (an MNIST-size MLP)
  wide    1024 -> 4096 -> 4096 -> 10, batch 1024 (--device cuda only: a GPU-bound step)

Implementations (all in this process; median µs per step over blocks of steps; xbp and the
hand-written step interleaved block by block, PyTorch's blocks after them on the CPU):
  xbp        nn.Sequential(nn.Linear, nn.ReLU, ...), F.cross_entropy, loss.backward(), xbp.optim
  hand       the step written by hand on raw arrays, as bench/anchors.py's `handwritten` (NumPy on
             the CPU, CuPy on cuda): no autodiff, the floor a framework is measured against
  torch      torch.nn + torch.optim (when installed; torch.set_num_threads(--threads) on the CPU)
On cuda every block ends with a device synchronisation, and the peak device memory a step
allocates above what was resident before it is reported (CuPy memory-pool hook; PyTorch's
max_memory_allocated).

--breakdown (default on the CPU): where xbp's extra time goes, per phase of the step (forward +
loss, backward, optimizer) against the hand-written phases, and per recorded op.
--profile CONFIG: cProfile of 200 xbp SGD steps of CONFIG (top functions by own time).
Targets on the CPU: digits within 1.25x of hand-written NumPy (PyTorch ~2.3x), mnist within 1.1x.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import (environment, print_environment, sync_for, table, time_blocks,  # noqa: E402
                    torch_cuda_in_plain_float32, write_json)

import xbp  # noqa: E402
import xbp.nn as nn  # noqa: E402
import xbp.nn.functional as F  # noqa: E402

CONFIGS = {
    "digits": ([64, 128, 10], 64),
    "mnist": ([784, 512, 512, 10], 256),
    "wide": ([1024, 4096, 4096, 10], 1024),
}
CALLS = {"cpu": {"digits": 40, "mnist": 4, "wide": 1}, "cuda": {"digits": 40, "mnist": 20, "wide": 5}}
LR = {"sgd": 0.01, "adam": 1e-3}
TARGETS = {"digits": 1.25, "mnist": 1.10}          # xbp / hand-written NumPy, SGD step, CPU
BETAS, EPS = (0.9, 0.999), 1e-8


def batch_data(widths, batch, seed=0):
    rs = np.random.RandomState(seed)
    x = rs.randn(batch, widths[0]).astype(np.float32)
    y = rs.randint(0, widths[-1], batch).astype(np.int64)
    return x, y


# ---- xbp ------------------------------------------------------------------------------------------
def make_xbp(widths, batch, device, opt_name, timer=None):
    xbp.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers).to(device)
    opt = (xbp.optim.SGD(model.parameters(), lr=LR["sgd"]) if opt_name == "sgd"
           else xbp.optim.Adam(model.parameters(), lr=LR["adam"], betas=BETAS, eps=EPS))
    xh, yh = batch_data(widths, batch)
    x, y = xbp.tensor(xh, device=device), xbp.tensor(yh, device=device)

    if timer is None:
        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    else:                                   # the same step, with a clock between the phases
        clock, sync = timer

        def step():
            t0 = clock()
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            sync()
            t1 = clock()
            loss.backward()
            sync()
            t2 = clock()
            opt.step()
            sync()
            return t1 - t0, t2 - t1, clock() - t2
    step.model, step.x, step.y = model, x, y
    return step


# ---- hand-written (NumPy or CuPy) -----------------------------------------------------------------
def make_hand(xp, widths, batch, opt_name, timer=None):
    """One training step by hand on raw arrays (bench/anchors.py's `handwritten`, plus the loss
    value and an Adam variant). W is (in, out), so the forward is h @ W."""
    rs = np.random.RandomState(0)

    def arr(a):
        return xp.asarray(a.astype(np.float32))
    Ws = [arr(rs.randn(i, o) * (2 / i) ** 0.5) for i, o in zip(widths[:-1], widths[1:])]
    bs = [arr(np.zeros(o)) for o in widths[1:]]
    xh, yh = batch_data(widths, batch)
    x, y = xp.asarray(xh), xp.asarray(yh)
    onehot = xp.asarray(np.eye(widths[-1], dtype=np.float32)[yh])
    params = [p for pair in zip(Ws, bs) for p in pair]
    ms = [xp.zeros_like(p) for p in params]
    vs = [xp.zeros_like(p) for p in params]
    count = [0]
    lr = LR[opt_name]
    b1, b2 = BETAS
    n_layers = len(Ws)
    clock, sync = timer if timer is not None else (None, None)

    def step():
        if clock is not None:
            t0 = clock()
        hs, zs = [x], []
        h = x
        for i in range(n_layers):
            z = h @ Ws[i] + bs[i]
            zs.append(z)
            h = xp.maximum(z, 0) if i < n_layers - 1 else z
            hs.append(h)
        m = xp.max(h, axis=1, keepdims=True)
        e = xp.exp(h - m)
        s = xp.sum(e, axis=1, keepdims=True)
        loss = xp.sum(xp.log(s)) / batch - xp.sum(onehot * (h - m)) / batch   # mean cross-entropy
        if clock is not None:
            sync()
            t1 = clock()
        p = e / s
        g = (p - onehot) / batch
        grads = [None] * (2 * n_layers)
        for i in reversed(range(n_layers)):
            grads[2 * i] = hs[i].T @ g
            grads[2 * i + 1] = xp.sum(g, axis=0)
            if i > 0:
                g = (g @ Ws[i].T) * (zs[i - 1] > 0)
        if clock is not None:
            sync()
            t2 = clock()
        if opt_name == "sgd":
            for prm, gr in zip(params, grads):
                prm -= lr * gr
        else:
            count[0] += 1
            t = count[0]
            step_size = lr / (1.0 - b1 ** t)
            bc2_sqrt = (1.0 - b2 ** t) ** 0.5
            for prm, gr, mm, vv in zip(params, grads, ms, vs):
                mm += (1.0 - b1) * (gr - mm)
                vv *= b2
                vv += (1.0 - b2) * gr * gr
                prm -= step_size * (mm / (xp.sqrt(vv) / bc2_sqrt + EPS))
        if clock is not None:
            sync()
            return t1 - t0, t2 - t1, clock() - t2
        return loss
    return step


# ---- PyTorch --------------------------------------------------------------------------------------
def make_torch(torch, widths, batch, device, opt_name):
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    opt = (torch.optim.SGD(model.parameters(), lr=LR["sgd"]) if opt_name == "sgd"
           else torch.optim.Adam(model.parameters(), lr=LR["adam"], betas=BETAS, eps=EPS))
    xh, yh = batch_data(widths, batch)
    x, y = torch.from_numpy(xh).to(device), torch.from_numpy(yh).to(device)
    lossf = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
    return step


# ---- peak device memory of one step ---------------------------------------------------------------
def cupy_step_peak(step, sync):
    """Bytes a step takes from CuPy's memory pool above what was in use when it started."""
    import cupy

    class Peak(cupy.cuda.MemoryHook):
        name = "bench_mlp_peak"

        def __init__(self):
            self.cur = self.peak = 0

        def malloc_postprocess(self, **kw):
            self.cur += kw["mem_size"]
            self.peak = max(self.peak, self.cur)

        def free_postprocess(self, **kw):
            self.cur -= kw["mem_size"]

    sync()
    hook = Peak()
    with hook:
        step()
        sync()
    return hook.peak


def torch_step_peak(torch, step):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


# ---- the breakdown: per phase and per recorded op -------------------------------------------------
def count_nodes(loss):
    seen, stack = set(), [loss.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or n in seen or not hasattr(n, "prim"):
            continue
        seen.add(n)
        stack.extend(n.parents)
    return len(seen)


def collect_prims(loss):
    seen, stack, prims = set(), [loss.grad_fn], []
    while stack:
        n = stack.pop()
        if n is None or n in seen or not hasattr(n, "prim"):
            continue
        seen.add(n)
        if n.prim not in prims:
            prims.append(n.prim)
        stack.extend(n.parents)
    return prims


def primitive_times(step, steps, sync):
    """Wrap the forward and VJP functions of every primitive in one step's graph with a clock and
    run `steps` steps: µs per step spent INSIDE each primitive's array code (NumPy itself), the
    rest of a phase being the framework (apply, Tensor wrappers, the engine's bookkeeping)."""
    loss = F.cross_entropy(step.model(step.x), step.y)
    prims = collect_prims(loss)
    del loss
    clock = time.perf_counter
    acc = {}
    saved = [(p, p.fwd, p.vjp) for p in prims]

    def wrap(p, fn, kind):
        key = (p.name, kind)
        acc[key] = [0.0, 0]

        def timed(*a, **k):
            t0 = clock()
            out = fn(*a, **k)
            sync()
            slot = acc[key]
            slot[0] += clock() - t0
            slot[1] += 1
            return out
        return timed
    try:
        for p, f, v in saved:
            p.fwd = wrap(p, f, "fwd")
            p.vjp = wrap(p, v, "vjp")
        for _ in range(steps):
            step()
    finally:
        for p, f, v in saved:
            p.fwd, p.vjp = f, v
    return {k: (t / steps * 1e6, n / steps) for k, (t, n) in acc.items()}


def forward_pieces(widths, batch, device, xp_raw, blocks):
    """The forward's pieces one at a time (recorded, graph dropped), each against its hand-written
    NumPy/CuPy counterpart: where the forward phase's overhead sits."""
    sync = sync_for(device)
    step = make_xbp(widths, batch, device, "sgd")
    model, x, y = step.model, step.x, step.y
    linears = [m for m in model if isinstance(m, nn.Linear)]
    hs = [x]
    with xbp.no_grad():
        for m in model:
            hs.append(m(hs[-1]))
    logits = hs[-1].detach().requires_grad_()
    xp = x.xp
    onehot = xp.asarray(np.eye(widths[-1], dtype=np.float32)[batch_data(widths, batch)[1]])
    runners, pairs = {}, []
    for i, lin in enumerate(linears):
        h_in = hs[2 * i]
        hd, Wt, bd = h_in.array, xp.asarray(lin.weight.array.T, copy=True), lin.bias.array
        key = f"linear {lin.in_features}->{lin.out_features}"
        runners[key + " xbp"] = (lambda h=h_in, m=lin: m(h), sync)
        runners[key + " hand"] = (lambda a=hd, w=Wt, b=bd: a @ w + b, sync)
        pairs.append(key)
    z = hs[1]
    runners["relu xbp"] = (lambda: F.relu(z), sync)
    runners["relu hand"] = (lambda zd=z.array: xp.maximum(zd, 0), sync)
    pairs.append("relu")
    ld = logits.array

    def hand_ce():
        m = xp.max(ld, axis=1, keepdims=True)
        e = xp.exp(ld - m)
        s = xp.sum(e, axis=1, keepdims=True)
        return xp.sum(xp.log(s)) / batch - xp.sum(onehot * (ld - m)) / batch, e / s
    runners["cross_entropy xbp"] = (lambda: F.cross_entropy(logits, y), sync)
    runners["cross_entropy hand"] = (hand_ce, sync)
    pairs.append("cross_entropy")
    try:
        from xbp.ops.losses import _check_classes
        runners["  of which the target range check xbp"] = (
            lambda: _check_classes("cross_entropy", logits.shape, y, widths[-1], -100), sync)
        pairs.append("  of which the target range check")
    except ImportError:
        pass
    runners["model(x) (Sequential) xbp"] = (lambda: model(x), sync)
    pairs.append("model(x) (Sequential)")
    calls = 200 if widths[0] < 200 else 10
    r = time_blocks(runners, calls, blocks)
    rows = []
    for k in pairs:
        xv = r[k + " xbp"]["us"]
        hv = r[k + " hand"]["us"] if k + " hand" in r else None
        rows.append({"piece": k, "hand": hv, "xbp": xv, "over": None if hv is None else xv - hv})
    layer_sum = sum(r[f"{k} xbp"]["us"] for k in pairs if k.startswith("linear")) \
        + (len(linears) - 1) * r["relu xbp"]["us"]
    rows.append({"piece": "  model(x) - its layers' calls (module overhead)", "hand": None, "xbp":
                 r["model(x) (Sequential) xbp"]["us"] - layer_sum, "over": None})
    print("forward pieces, one call each (µs; recorded, graph dropped)")
    print(table(rows, [("piece", "piece", "{}"), ("hand µs", "hand", "{:.1f}"), ("xbp µs", "xbp", "{:.1f}"),
                       ("overhead µs", "over", "{:.1f}")]))
    return {row["piece"].strip(): {"hand": row["hand"], "xbp": row["xbp"]} for row in rows}


def phase_breakdown(widths, batch, device, xp_raw, opt_name, steps=300):
    sync = sync_for(device)
    clock = time.perf_counter
    runs = {"hand": make_hand(xp_raw, widths, batch, opt_name, timer=(clock, sync)),
            "xbp": make_xbp(widths, batch, device, opt_name, timer=(clock, sync))}
    res = {}
    for _ in range(20):
        for f in runs.values():
            f()
    tot = {k: np.zeros(3) for k in runs}
    per = {k: [] for k in runs}
    for _ in range(steps):                        # interleaved step by step
        for k, f in runs.items():
            v = np.array(f())
            tot[k] += v
            per[k].append(v)
    for k in runs:
        res[k] = np.median(np.array(per[k]), axis=0) * 1e6      # median µs per phase
    xs = runs["xbp"]
    loss = F.cross_entropy(xs.model(xs.x), xs.y)
    n_ops = count_nodes(loss)
    del loss
    prim = primitive_times(make_xbp(widths, batch, device, opt_name), steps, sync)
    return res, n_ops, prim


def print_breakdown(name, opt_name, res, n_ops, prim):
    phases = ["forward + loss", "backward", "optimizer step"]
    rows = [{"phase": p, "hand": res["hand"][i], "xbp": res["xbp"][i], "over": res["xbp"][i] - res["hand"][i]}
            for i, p in enumerate(phases)]
    rows.append({"phase": "step (sum of medians)", "hand": float(res["hand"].sum()), "xbp": float(res["xbp"].sum()),
                 "over": float(res["xbp"].sum() - res["hand"].sum())})
    fb = (res["xbp"][0] + res["xbp"][1]) - (res["hand"][0] + res["hand"][1])
    print(f"\nbreakdown {name} / {opt_name} (median µs per phase; phases timed with a clock between them)")
    print(table(rows, [("phase", "phase", "{}"), ("hand µs", "hand", "{:.1f}"), ("xbp µs", "xbp", "{:.1f}"),
                       ("overhead µs", "over", "{:.1f}")]))
    print(f"recorded ops per forward: {n_ops}; forward+backward overhead per recorded op: {fb / n_ops:.2f} µs")
    prows = []
    names = []
    for (pname, _kind) in prim:
        if pname not in names:
            names.append(pname)
    for pname in names:
        f = prim.get((pname, "fwd"), (0.0, 0))
        v = prim.get((pname, "vjp"), (0.0, 0))
        prows.append({"prim": pname, "calls": f[1], "fwd": f[0], "vjp": v[0]})
    fsum = sum(r["fwd"] for r in prows)
    vsum = sum(r["vjp"] for r in prows)
    prows.append({"prim": "total inside primitives", "calls": None, "fwd": fsum, "vjp": vsum})
    prows.append({"prim": "framework (phase - inside)", "calls": None, "fwd": res["xbp"][0] - fsum,
                  "vjp": res["xbp"][1] - vsum})
    print("xbp time inside each primitive's array code (µs per step; the forward column against the "
          "'forward + loss' phase, the VJP column against 'backward')")
    print(table(prows, [("primitive", "prim", "{}"), ("calls/step", "calls", "{:.0f}"),
                        ("forward µs", "fwd", "{:.1f}"), ("VJP µs", "vjp", "{:.1f}")]))
    return {"phases_us": {"hand": res["hand"].tolist(), "xbp": res["xbp"].tolist()}, "recorded_ops": n_ops,
            "fwd_bwd_overhead_per_op_us": fb / n_ops,
            "primitives_us": {f"{k[0]}.{k[1]}": v[0] for k, v in prim.items()}}


def profile(config, device, steps=200, top=25):
    import cProfile
    import pstats
    widths, batch = CONFIGS[config]
    step = make_xbp(widths, batch, device, "sgd")
    for _ in range(20):
        step()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step()
    pr.disable()
    print(f"\ncProfile: {steps} xbp SGD steps of {config} (times include the profiler's own overhead)")
    st = pstats.Stats(pr)
    st.sort_stats("tottime").print_stats(top)


# ---- main -----------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", default=None, help="comma list (default: digits,mnist; cuda adds wide)")
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--blocks", type=int, default=15, help="interleaved blocks per implementation")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-breakdown", action="store_true")
    ap.add_argument("--profile", default=None, metavar="CONFIG", help="cProfile xbp SGD steps of CONFIG")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    try:
        sync = sync_for(args.device)
    except xbp.DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
    configs = (args.configs or ("digits,mnist,wide" if cuda else "digits,mnist")).split(",")
    for c in configs:
        if c not in CONFIGS:
            ap.error(f"unknown config {c!r}; choose from {sorted(CONFIGS)}")
    optimizers = args.optimizers.split(",")
    if cuda:
        import cupy as xp_raw
    else:
        xp_raw = np
    torch = None
    if not args.no_torch:
        try:
            import torch
            if cuda and not torch.cuda.is_available():
                torch = None
            elif cuda:
                print(torch_cuda_in_plain_float32(torch))
            else:
                torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    tdev = "cuda" if cuda else "cpu"
    tsync = (torch.cuda.synchronize if cuda else (lambda: None)) if torch is not None else None

    info = environment(args.device)
    info["torch_threads"] = args.threads if torch is not None and not cuda else None
    print_environment(f"bench_mlp: one training step, xbp vs hand-written {'CuPy' if cuda else 'NumPy'}"
                      f"{' vs PyTorch' if torch is not None else ' (PyTorch not installed)'}", info)
    rows, results = [], []
    for cfg in configs:
        widths, batch = CONFIGS[cfg]
        for opt_name in optimizers:
            runners = {"xbp": (make_xbp(widths, batch, args.device, opt_name), sync),
                       "hand": (make_hand(xp_raw, widths, batch, opt_name), sync)}
            if torch is not None:
                runners["torch"] = (make_torch(torch, widths, batch, tdev, opt_name), tsync)
            calls = CALLS["cuda" if cuda else "cpu"][cfg]
            if cuda:
                r = time_blocks(runners, calls, args.blocks, warm=5)
            else:
                # On the CPU, xbp and the hand-written step share NumPy's BLAS threads and are
                # interleaved block by block; PyTorch has its own thread pool, and interleaving the
                # two pools on a few cores makes both spin against each other (measured: torch
                # 431 -> 6,500 µs per digits step), so PyTorch runs its blocks after them, alone.
                r = time_blocks({k: runners[k] for k in ("xbp", "hand")}, calls, args.blocks, warm=5)
                if torch is not None:
                    time.sleep(0.3)
                    r.update(time_blocks({"torch": runners["torch"]}, calls, args.blocks, warm=5))
                    time.sleep(0.3)
            row = {"config": cfg, "shape": f"{'-'.join(map(str, widths))} b{batch}", "opt": opt_name,
                   "hand": r["hand"]["us"], "xbp": r["xbp"]["us"], "torch": r.get("torch", {}).get("us")}
            row["xbp/hand"] = row["xbp"] / row["hand"]
            row["torch/hand"] = row["torch"] / row["hand"] if row["torch"] else None
            row["xbp/torch"] = row["xbp"] / row["torch"] if row["torch"] else None
            if cuda:
                row["xbp MiB"] = cupy_step_peak(runners["xbp"][0], sync) / 2 ** 20
                row["hand MiB"] = cupy_step_peak(runners["hand"][0], sync) / 2 ** 20
                row["torch MiB"] = torch_step_peak(torch, runners["torch"][0]) / 2 ** 20 if torch else None
            rows.append(row)
            results.append({**row, "timings": r})
            print(f"  {cfg:7s} {opt_name:5s} hand {row['hand']:9.1f} µs  xbp {row['xbp']:9.1f} µs  "
                  f"({row['xbp/hand']:.2f}x)" + (f"  torch {row['torch']:9.1f} µs ({row['torch/hand']:.2f}x)"
                                                 if row["torch"] else ""), flush=True)
            del runners
    cols = [("config", "config", "{}"), ("layers / batch", "shape", "{}"), ("opt", "opt", "{}"),
            ("hand µs", "hand", "{:.1f}"), ("xbp µs", "xbp", "{:.1f}"), ("torch µs", "torch", "{:.1f}"),
            ("xbp/hand", "xbp/hand", "{:.2f}x"), ("torch/hand", "torch/hand", "{:.2f}x"),
            ("xbp/torch", "xbp/torch", "{:.2f}x")]
    if cuda:
        cols += [("xbp step MiB", "xbp MiB", "{:.1f}"), ("hand step MiB", "hand MiB", "{:.1f}"),
                 ("torch step MiB", "torch MiB", "{:.1f}")]
    print("\nmedian µs per training step (lower is better); ratios against the hand-written step")
    print(table(rows, cols))
    targets = {}
    if not cuda:
        print()
        for cfg, limit in TARGETS.items():
            row = next((r for r in rows if r["config"] == cfg and r["opt"] == "sgd"), None)
            if row is None:
                continue
            ok = row["xbp/hand"] <= limit
            targets[cfg] = {"limit": limit, "ratio": row["xbp/hand"], "met": ok}
            print(f"target {cfg} SGD step within {limit:.2f}x of hand-written NumPy: "
                  f"{row['xbp/hand']:.2f}x -> {'met' if ok else 'MISSED'}")
    breakdowns = {}
    if not args.no_breakdown and not cuda:
        for cfg in configs:
            for opt_name in optimizers:
                widths, batch = CONFIGS[cfg]
                res, n_ops, prim = phase_breakdown(widths, batch, args.device, xp_raw, opt_name,
                                                   steps=300 if cfg == "digits" else 40)
                breakdowns[f"{cfg}/{opt_name}"] = print_breakdown(cfg, opt_name, res, n_ops, prim)
            breakdowns[f"{cfg}/forward pieces"] = forward_pieces(widths, batch, args.device, xp_raw,
                                                                 args.blocks)
    if args.profile:
        profile(args.profile, args.device)
    if args.json:
        write_json(args.json, info, {"rows": results, "targets": targets, "breakdown": breakdowns})


if __name__ == "__main__":
    main()
