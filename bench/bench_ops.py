"""Per-operation framework overhead: xbp against the same arithmetic in raw NumPy (or CuPy).

    python bench/bench_ops.py [--device cpu|cuda] [--calls 2000] [--blocks 15] [--chain 32] [--micro] [--json OUT]

Two small operations, where the framework's own Python work dominates:
  mul     two (64,) float32 vectors, elementwise;   backward: ga = g*b, gb = g*a
  matmul  two 64x64 float32 matrices;              backward: ga = g @ b.T, gb = a.T @ g

For each, µs per call and the overhead (xbp - raw) for
  fwd              inputs without requires_grad: only the forward dispatch (no graph)
  fwd recorded     inputs with requires_grad: the op is recorded on the graph (then dropped)
  fwd+bwd          one op, then backward(g) into the leaves' .grad (the backward() call's fixed
                   cost lands on this one op)
  chain fwd+bwd/op a chain of --chain ops (x = x * w, or x = x @ W) and one backward: µs PER OP,
                   against the hand-written chain forward + backward (with the gradient of w summed
                   over the chain) -- the cost of one recorded op through forward AND backward
Target: < 3 µs overhead per recorded op on the CPU (Chainer's is ~15 µs).

Then a breakdown of the recorded-op overhead for mul (what apply(), the Tensor wrapper, the Node
and the engine each add), read by timing the layers one at a time, and the engine's costs on
retained graphs (one backward() call, per node of a chain). --micro adds the NumPy-level
measurements behind bench/RESULTS.md's suggestions. All timings in one process, interleaved in
blocks (see bench/common.py).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import _noop, environment, print_environment, sync_for, table, time_blocks, write_json  # noqa: E402

import xbp  # noqa: E402


def make_case(name, device, chain):
    """Raw arrays and xbp tensors for one op, and the callables to time."""
    rng = np.random.default_rng(0)
    if name == "mul":
        a0 = rng.standard_normal(64).astype(np.float32)
        b0 = (1.0 + 0.01 * rng.standard_normal(64)).astype(np.float32)   # near 1: chains stay finite
        g0 = np.ones(64, np.float32)
    else:
        a0 = rng.standard_normal((64, 64)).astype(np.float32)
        q, _ = np.linalg.qr(rng.standard_normal((64, 64)))                 # orthogonal: norms stay
        b0 = q.astype(np.float32)
        g0 = rng.standard_normal((64, 64)).astype(np.float32)
    x = xbp.tensor(a0, device=device)
    w = xbp.tensor(b0, device=device)
    G = xbp.tensor(g0, device=device)
    xr = xbp.tensor(a0, device=device, requires_grad=True)
    wr = xbp.tensor(b0, device=device, requires_grad=True)
    A, B, Gd = x.array, w.array, G.array           # the same arrays on the device, for the raw code

    if name == "mul":
        def raw_fwd():
            return A * B

        def raw_fwd_bwd():
            c = A * B
            return c, Gd * B, Gd * A

        def raw_chain():
            zs, z = [], A
            for _ in range(chain):
                zs.append(z)
                z = z * B
            g, gb = Gd, None
            for zi in reversed(zs):
                t = g * zi
                gb = t if gb is None else gb + t
                g = g * B
            return g, gb

        def xbp_fwd():
            return x * w

        def xbp_rec():
            return xr * wr

        def xbp_chain():
            xr.grad = wr.grad = None
            z = xr
            for _ in range(chain):
                z = z * wr
            z.backward(G)
    else:
        xp = x.xp

        def raw_fwd():
            return xp.matmul(A, B)

        def raw_fwd_bwd():
            c = xp.matmul(A, B)
            return c, xp.matmul(Gd, B.T), xp.matmul(A.T, Gd)

        def raw_chain():
            zs, z = [], A
            for _ in range(chain):
                zs.append(z)
                z = xp.matmul(z, B)
            g, gb = Gd, None
            for zi in reversed(zs):
                t = xp.matmul(zi.T, g)
                gb = t if gb is None else gb + t
                g = xp.matmul(g, B.T)
            return g, gb

        def xbp_fwd():
            return x @ w

        def xbp_rec():
            return xr @ wr

        def xbp_chain():
            xr.grad = wr.grad = None
            z = xr
            for _ in range(chain):
                z = z @ wr
            z.backward(G)

    def xbp_fwd_bwd():
        xr.grad = wr.grad = None
        xbp_rec().backward(G)

    return {"raw_fwd": raw_fwd, "raw_fwd_bwd": raw_fwd_bwd, "raw_chain": raw_chain, "xbp_fwd": xbp_fwd,
            "xbp_rec": xbp_rec, "xbp_fwd_bwd": xbp_fwd_bwd, "xbp_chain": xbp_chain,
            "tensors": (x, w, xr, wr, G)}


def breakdown(device, calls, blocks):
    """Layers of the recorded mul, timed one by one (private internals; skipped if they moved)."""
    try:
        from xbp._primitive import apply
        from xbp._tensor import _wrap
        from xbp.ops.elementwise import mul_p
        from xbp import ops
    except ImportError as e:
        print(f"(breakdown skipped: {e})")
        return None
    sync = sync_for(device)
    rng = np.random.default_rng(0)
    x = xbp.tensor(rng.standard_normal(64).astype(np.float32), device=device)
    w = xbp.tensor(rng.standard_normal(64).astype(np.float32), device=device)
    xr = x.detach().requires_grad_()
    wr = w.detach().requires_grad_()
    G = xbp.ones(64, device=device)
    A, B, Gd, xp = x.array, w.array, G.array, x.xp
    fwd = mul_p.fwd
    args_plain, args_rec = (x, w), (xr, wr)

    def one_bwd():
        xr.grad = wr.grad = None
        (xr * wr).backward(G)

    steps = {
        "numpy a*b": lambda: A * B,
        "prim.fwd(xp, a, b)": lambda: fwd(xp, A, B),
        "_wrap(prim.fwd(...))": lambda: _wrap(fwd(xp, A, B), xp),
        "apply(mul_p) no grad": lambda: apply(mul_p, args_plain),
        "xbp.ops.mul no grad": lambda: ops.mul(x, w),
        "x * w no grad": lambda: x * w,
        "apply(mul_p) recorded": lambda: apply(mul_p, args_rec),
        "x * w recorded": lambda: xr * wr,
        "numpy bwd math g*b, g*a": lambda: (Gd * B, Gd * A),
        "x * w recorded + backward(g)": one_bwd,
    }
    r = time_blocks({k: (f, sync) for k, f in steps.items()}, calls, blocks)
    us = {k: v["us"] for k, v in r.items()}
    layers = [
        ("the NumPy op itself", us["numpy a*b"], "numpy a*b"),
        ("prim.fwd lambda call", us["prim.fwd(xp, a, b)"] - us["numpy a*b"], "prim.fwd - numpy"),
        ("Tensor wrapper (_wrap)", us["_wrap(prim.fwd(...))"] - us["prim.fwd(xp, a, b)"], "_wrap - prim.fwd"),
        ("apply(): arg loop, device check", us["apply(mul_p) no grad"] - us["_wrap(prim.fwd(...))"],
         "apply no-grad - _wrap"),
        ("ops.mul: _promote (dtype rules)", us["xbp.ops.mul no grad"] - us["apply(mul_p) no grad"],
         "ops.mul - apply"),
        ("Tensor.__mul__ dispatch", us["x * w no grad"] - us["xbp.ops.mul no grad"], "x*w - ops.mul"),
        ("recording: Node, edges, versions", us["x * w recorded"] - us["x * w no grad"],
         "recorded - no grad"),
        ("backward(): engine + VJP overhead", us["x * w recorded + backward(g)"] - us["x * w recorded"]
         - us["numpy bwd math g*b, g*a"], "fwd+bwd - recorded - bwd math"),
    ]
    print("\nbreakdown of one recorded mul (64,) float32 (µs; differences of the timings below)")
    print(table([{"k": k, "v": v} for k, v in us.items()], [("timed", "k", "{}"), ("µs/call", "v", "{:.2f}")]))
    print()
    print(table([{"layer": a, "us": b, "how": c} for a, b, c in layers],
                [("layer", "layer", "{}"), ("µs", "us", "{:.2f}"), ("from", "how", "{}")]))
    return {"timed": us, "layers": {a: b for a, b, _ in layers}}


def engine_costs(calls, blocks):
    """backward() on retained graphs: the fixed cost of one call and the cost per node of a chain,
    beyond the VJP arithmetic (CPU)."""
    from xbp._engine import run_backward
    x = xbp.tensor(np.ones(64, np.float32), requires_grad=True)
    w = xbp.tensor(np.ones(64, np.float32), requires_grad=True)
    G = xbp.ones(64)
    Gd, xd, wd = G.array, x.array, w.array
    runners, graphs = {}, []
    for n in (1, 32):
        h = x
        for _ in range(n):
            h = h * w
        graphs.append(h)
        roots = [(h.grad_fn, Gd)]

        def rb(roots=roots):
            x.grad = w.grad = None
            run_backward(roots, retain_graph=True)
        runners[f"run_backward {n}"] = (rb, _noop)
    h1 = graphs[0]

    def full():
        x.grad = w.grad = None
        h1.backward(G, retain_graph=True)
    runners["Tensor.backward 1"] = (full, _noop)
    runners["vjp math"] = (lambda: (Gd * wd, Gd * xd), _noop)
    r = {k: v["us"] for k, v in time_blocks(runners, calls // 8, blocks).items()}
    per_node = (r["run_backward 32"] - 32 * r["vjp math"] - (r["run_backward 1"] - r["vjp math"])) / 31
    rows = [("x.backward(g) of a 1-node graph (retain_graph)", r["Tensor.backward 1"]),
            ("  of which run_backward", r["run_backward 1"]),
            ("  of which the VJP arithmetic (g*w, g*x)", r["vjp math"]),
            ("  layers above run_backward (Tensor.backward, _engine.backward, _root_grad)",
             r["Tensor.backward 1"] - r["run_backward 1"]),
            ("run_backward per extra node of a 32-node chain, beyond the arithmetic", per_node)]
    print("\nengine costs (µs)")
    print(table([{"k": a, "v": b} for a, b in rows], [("", "k", "{}"), ("µs", "v", "{:.2f}")]))
    return dict(rows)


def micro(calls, blocks):
    """NumPy-level facts behind bench/RESULTS.md's suggestions (CPU): alternatives for hot spots."""
    import timeit
    xp = xbp.zeros(1).xp

    def t(f):
        f()
        once = min(timeit.repeat(f, number=1, repeat=3))
        n = max(5, int(0.01 / max(once, 1e-7)))
        return min(timeit.repeat(f, number=n, repeat=7)) / n * 1e6
    rs = np.random.RandomState(0)
    rows = []
    for shp in [(64, 128), (256, 512)]:
        g = rs.randn(*shp).astype(np.float32)
        out = np.maximum(rs.randn(*shp).astype(np.float32), 0)
        rows.append((f"relu VJP {shp}: where(out>0, g, 0.0) | g*(out>0) | g*astype(out>0, f32)",
                     [t(lambda: np.where(out > 0, g, 0.0)), t(lambda: g * (out > 0)),
                      t(lambda: g * (out > 0).astype(np.float32))]))
    for n, i, o in [(64, 64, 128), (256, 784, 512)]:
        x = rs.randn(n, i).astype(np.float32)
        W = rs.randn(o, i).astype(np.float32)
        Wt = np.ascontiguousarray(W.T)
        b = np.zeros(o, np.float32)

        def inplace(x=x, W=W, b=b):
            y = x @ W.T
            y += b
            return y
        rows.append((f"linear {n}x{i} @ {i}x{o}: x@W.T | x@Wt (contiguous) | x@W.T+b | y=x@W.T; y+=b",
                     [t(lambda: x @ W.T), t(lambda: x @ Wt), t(lambda: x @ W.T + b), t(inplace)]))
    y = rs.randint(0, 10, 64)
    z = rs.randn(64, 10).astype(np.float32)
    ar = np.arange(64)
    try:
        from xbp.ops.losses import _class_range
        rows.append(("target range (64 labels): _class_range | int(y.min()), int(y.max())",
                     [t(lambda: _class_range(xp, y)), t(lambda: (int(y.min()), int(y.max())))]))
    except ImportError:
        pass
    rows.append(("gather (64x10): take_along_axis(z, t[:, None], 1) | z[arange(64), t]",
                 [t(lambda: np.take_along_axis(z, y[:, None], axis=1)), t(lambda: z[ar, y])]))
    a = rs.randn(8, 8).astype(np.float32)
    rows.append(("8x8: np.matmul | Backend xp.matmul", [t(lambda: np.matmul(a, a)), t(lambda: xp.matmul(a, a))]))
    rows.append(("8x8: xp.matrix_transpose | a.mT", [t(lambda: xp.matrix_transpose(a)), t(lambda: a.mT)]))
    rows.append(("8x8: xp.sum(a) | a.sum()", [t(lambda: xp.sum(a)), t(lambda: a.sum())]))
    rows.append(("8x8: xp.max(a, axis=1, keepdims=True) | a.max(axis=1, keepdims=True)",
                 [t(lambda: xp.max(a, axis=1, keepdims=True)), t(lambda: a.max(axis=1, keepdims=True))]))
    print("\nmicro-measurements (µs, timeit min of 7; alternatives separated by |)")
    for k, v in rows:
        print(f"  {k}:  " + " | ".join(f"{u:.2f}" for u in v))
    return {k: v for k, v in rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--calls", type=int, default=2000, help="calls per block (chains: / --chain)")
    ap.add_argument("--blocks", type=int, default=15, help="interleaved blocks (median reported)")
    ap.add_argument("--chain", type=int, default=32, help="ops per chain")
    ap.add_argument("--no-breakdown", action="store_true")
    ap.add_argument("--micro", action="store_true", help="also the NumPy micro-measurements behind RESULTS.md")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        sync = sync_for(args.device)
    except xbp.DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
    info = environment(args.device)
    print_environment("bench_ops: per-op overhead, xbp vs raw " + ("CuPy" if args.device.startswith("cuda")
                                                                     else "NumPy"), info)
    rows, results = [], {}
    for name in ("mul", "matmul"):
        c = make_case(name, args.device, args.chain)
        runners = {k: (c[k], sync) for k in ("raw_fwd", "xbp_fwd", "xbp_rec", "raw_fwd_bwd", "xbp_fwd_bwd")}
        r = time_blocks(runners, args.calls, args.blocks)
        rc = time_blocks({k: (c[k], sync) for k in ("raw_chain", "xbp_chain")},
                         max(1, args.calls // args.chain), args.blocks)
        per_op = {k: v["us"] / args.chain for k, v in rc.items()}
        label = "mul (64,) f32" if name == "mul" else "matmul 64x64 f32"
        rows += [
            {"op": label, "mode": "fwd", "raw": r["raw_fwd"]["us"], "xbp": r["xbp_fwd"]["us"]},
            {"op": "", "mode": "fwd recorded", "raw": r["raw_fwd"]["us"], "xbp": r["xbp_rec"]["us"]},
            {"op": "", "mode": "fwd+bwd (1 op)", "raw": r["raw_fwd_bwd"]["us"], "xbp": r["xbp_fwd_bwd"]["us"]},
            {"op": "", "mode": f"chain fwd+bwd /op (n={args.chain})", "raw": per_op["raw_chain"],
             "xbp": per_op["xbp_chain"]},
        ]
        results[name] = {"single": r, "chain_per_op_us": per_op, "chain": args.chain}
    for row in rows:
        row["overhead"] = row["xbp"] - row["raw"]
        row["ratio"] = row["xbp"] / row["raw"]
    print()
    print(table(rows, [("op", "op", "{}"), ("mode", "mode", "{}"), ("raw µs", "raw", "{:.2f}"),
                       ("xbp µs", "xbp", "{:.2f}"), ("overhead µs", "overhead", "{:.2f}"),
                       ("xbp/raw", "ratio", "{:.1f}x")]))
    rec = [r["overhead"] for r in rows if r["mode"] == "fwd recorded"]
    chain = [r["overhead"] for r in rows if r["mode"].startswith("chain")]
    target = 3.0
    print(f"\ntarget < {target:g} µs overhead per recorded op: forward recording "
          f"{max(rec):.2f} µs (worst op) -> {'met' if max(rec) < target else 'MISSED'}; "
          f"forward+backward per op in a chain {max(chain):.2f} µs -> {'met' if max(chain) < target else 'MISSED'}")
    summary = {"rows": rows, "target_us": target, "recorded_fwd_overhead_us": max(rec),
               "chain_fwd_bwd_overhead_us_per_op": max(chain)}
    if not args.no_breakdown:
        summary["breakdown"] = breakdown(args.device, args.calls, args.blocks)
        if not args.device.startswith("cuda"):
            summary["engine"] = engine_costs(args.calls, args.blocks)
    if args.micro:
        summary["micro"] = micro(args.calls, args.blocks)
    if args.json:
        write_json(args.json, info, {**summary, "raw": results})


if __name__ == "__main__":
    main()
