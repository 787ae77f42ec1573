"""A tour of the graph: draw it, walk the backward step by step, catch a NaN where it is born.

1. Matt Mazur's 2-2-2 network ("A Step by Step Backpropagation Example": inputs 0.05, 0.10;
   w1..w4 = .15 .20 .25 .30, b1 = .35; w5..w8 = .40 .45 .50 .55, b2 = .60; targets .01 .99;
   E = sum(1/2 (target - out)^2)). Its graph is drawn with the gradient norm on every edge, and the
   backward trace is printed with the chain-rule terms the tutorial derives by hand next to the
   values the trace recorded (dE/dw5 = 0.082167041, dE/dw1 = 0.000438568).
2. A digits MLP (64 -> 128 -> 10, xbp.nn): its graph op by op and module by module, with
   gradient norms.
3. detect_anomaly() on a loss that takes log(0).

The graphs are written as SVG when Graphviz's `dot` is installed, else as .dot files (the script
says how to render them).

    python examples/graph_tour.py [--device cpu|cuda|strict] [--out runs/graph_tour]
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xbp  # noqa: E402


# ------------------------------------------------------------------------------------------------
# 1. the 2-2-2 network
# ------------------------------------------------------------------------------------------------
def mazur_network(device):
    f64 = xbp.float64
    params = {
        "W1 (w1 w2 / w3 w4)": xbp.tensor([[.15, .20], [.25, .30]], dtype=f64, device=device, requires_grad=True),
        "b1": xbp.tensor(.35, dtype=f64, device=device, requires_grad=True),
        "W2 (w5 w6 / w7 w8)": xbp.tensor([[.40, .45], [.50, .55]], dtype=f64, device=device, requires_grad=True),
        "b2": xbp.tensor(.60, dtype=f64, device=device, requires_grad=True),
    }
    W1, b1, W2, b2 = params.values()
    x = xbp.tensor([[0.05, 0.10]], dtype=f64, device=device)
    target = xbp.tensor([[0.01, 0.99]], dtype=f64, device=device)
    out_h = xbp.sigmoid(x @ W1.T + b1)          # net_h1 = w1 i1 + w2 i2 + b1, ...
    out_o = xbp.sigmoid(out_h @ W2.T + b2)      # net_o1 = w5 out_h1 + w6 out_h2 + b2, ...
    E = (0.5 * (target - out_o) ** 2).sum()
    return E, params


# The tutorial's numbers, derived by hand with the chain rule.
MAZUR = {
    "E_total": 0.298371109,
    "dE/dout_o1": 0.74136507,
    "dout_o1/dnet_o1": 0.186815602,
    "dnet_o1/dw5 = out_h1": 0.593269992,
    "dE/dw5": 0.082167041,
    "dE/dout_h1": 0.036350306,
    "dout_h1/dnet_h1": 0.241300709,
    "dnet_h1/dw1 = i1": 0.05,
    "dE/dw1": 0.000438568,
}


def mazur_section(device, out_dir):
    print("=" * 100)
    print("1. Mazur's 2-2-2 network")
    print("=" * 100)
    E, params = mazur_network(device)
    with xbp.viz.record():                                   # keep each edge's gradient norm
        with xbp.autograd.trace(params=params, values=True) as t:
            E.backward()
    dot = xbp.viz.to_dot(E, params=params, show_grads=True)
    path = xbp.viz.render(dot, os.path.join(out_dir, "mazur_222.svg"))
    print(f"graph with gradient norms on the edges: {path}\n")
    print("the backward, step by step (|g| = norm of the gradient; 'grad of output' arrived at the op,")
    print("'input grad' is what the op sent to each input):\n")
    print(t)

    # read the chain-rule terms off the trace
    sig_o, sig_h = t.find("sigmoid")                         # output layer first: the backward runs in reverse
    leaf = {t.name(e.target): e.value for r in t for e in r.grad_inputs if type(e.target).__name__ == "Accumulate"}
    dE_dout_o = sig_o.grad_output[0, 0]
    delta_o = sig_o.grad_inputs[0].value[0, 0]
    dE_dw5 = leaf["W2 (w5 w6 / w7 w8)"][0, 0]
    dE_dout_h = sig_h.grad_output[0, 0]
    delta_h = sig_h.grad_inputs[0].value[0, 0]
    dE_dw1 = leaf["W1 (w1 w2 / w3 w4)"][0, 0]
    traced = {
        "E_total": E.item(),
        "dE/dout_o1": dE_dout_o,
        "dout_o1/dnet_o1": delta_o / dE_dout_o,              # the sigmoid's local derivative
        "dnet_o1/dw5 = out_h1": dE_dw5 / delta_o,            # the matmul's local derivative
        "dE/dw5": dE_dw5,
        "dE/dout_h1": dE_dout_h,                             # both outputs' paths summed
        "dout_h1/dnet_h1": delta_h / dE_dout_h,
        "dnet_h1/dw1 = i1": dE_dw1 / delta_h,
        "dE/dw1": dE_dw1,
    }
    print("\nchain rule, term by term:\n")
    print(f"  {'term':<24}{'from the trace':>18}{'by hand (Mazur)':>18}{'|diff|':>12}")
    ok = True
    for k, hand in MAZUR.items():
        v = float(traced[k])
        diff = abs(v - hand)
        ok &= diff < 1e-8
        print(f"  {k:<24}{v:>18.9f}{hand:>18.9f}{diff:>12.1e}")
    print(f"\n  dE/dw5 = dE/dout_o1 * dout_o1/dnet_o1 * dnet_o1/dw5 = "
          f"{MAZUR['dE/dout_o1']} * {MAZUR['dout_o1/dnet_o1']} * {MAZUR['dnet_o1/dw5 = out_h1']}"
          f" = {MAZUR['dE/dout_o1'] * MAZUR['dout_o1/dnet_o1'] * MAZUR['dnet_o1/dw5 = out_h1']:.9f}")
    print(f"  dE/dw1 = dE/dout_h1 * dout_h1/dnet_h1 * dnet_h1/dw1 = "
          f"{MAZUR['dE/dout_h1']} * {MAZUR['dout_h1/dnet_h1']} * {MAZUR['dnet_h1/dw1 = i1']}"
          f" = {MAZUR['dE/dout_h1'] * MAZUR['dout_h1/dnet_h1'] * MAZUR['dnet_h1/dw1 = i1']:.9f}")
    print("  all terms match" if ok else "  MISMATCH")
    return ok


# ------------------------------------------------------------------------------------------------
# 2. the digits MLP
# ------------------------------------------------------------------------------------------------
def digits_batch(n=64):
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
        return (d.data[:n] / 16.0).astype(np.float32), d.target[:n].astype(np.int64), "scikit-learn digits"
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.random((n, 64), dtype=np.float32), rng.integers(0, 10, n), "random stand-in (no scikit-learn)"


def digits_model():
    """64 -> 128 -> 10 with xbp.nn's layers where they exist, else a small Module of our own."""
    from xbp import nn
    if all(hasattr(nn, k) for k in ("Sequential", "Linear", "ReLU")):
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    from xbp.nn.module import Module
    from xbp.nn.parameter import Parameter

    class Dense(Module):
        def __init__(self, i, o):
            super().__init__()
            bound = 1.0 / np.sqrt(i)
            self.weight = Parameter(xbp.rand(o, i) * (2 * bound) - bound)
            self.bias = Parameter(xbp.zeros(o))

        def forward(self, x):
            return xbp.linear(x, self.weight, self.bias)

    class MLP(Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = Dense(64, 128), Dense(128, 10)

        def forward(self, x):
            return self.fc2(xbp.relu(self.fc1(x)))

    return MLP()


def cross_entropy(logits, y):
    f = getattr(getattr(xbp.nn, "functional", None), "cross_entropy", None)
    if f is not None:
        return f(logits, y)
    return -(xbp.log_softmax(logits, 1) * xbp.one_hot(y, 10).to(logits.dtype)).sum(1).mean()


def digits_section(device, out_dir):
    print("\n" + "=" * 100)
    print("2. digits MLP 64 -> 128 -> 10")
    print("=" * 100)
    xbp.manual_seed(0)
    X, y, source = digits_batch()
    model = digits_model().to(device)
    x, t = xbp.tensor(X, device=device), xbp.tensor(y, device=device)
    with xbp.viz.record():                  # module calls (forward) and gradient norms (backward)
        loss = cross_entropy(model(x), t)
        loss.backward()
    print(f"data: {source}, batch {tuple(x.shape)}; loss {loss.item():.4f}")
    for name, kw in (("digits_mlp_ops.svg", {}), ("digits_mlp_modules.svg", {"group_by_module": True})):
        dot = xbp.viz.to_dot(loss, params=model, show_grads=True, **kw)
        path = xbp.viz.render(dot, os.path.join(out_dir, name))
        n_nodes = sum(1 for line in dot.splitlines() if re.match(r"\s*\w+ \[label=", line))
        print(f"{'module view' if kw else 'op view':<12} {n_nodes:>3} nodes -> {path}")
    print("gradient norms of the parameters:",
          ", ".join(f"{n} {np.linalg.norm(p.grad.numpy()):.3g}" for n, p in model.named_parameters()))


# ------------------------------------------------------------------------------------------------
# 3. anomaly detection
# ------------------------------------------------------------------------------------------------
def anomaly_section(device):
    print("\n" + "=" * 100)
    print("3. detect_anomaly(): where was the Inf born?")
    print("=" * 100)
    p = xbp.tensor([0.5, 0.0, 1.0], device=device, requires_grad=True)   # a probability of exactly 0
    with xbp.autograd.detect_anomaly(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # NumPy's own "divide by zero" note
        try:
            loss = -(xbp.log(p)).mean()
            loss.backward()
        except xbp.autograd.AnomalyError as e:
            print(e)


def main(argv=None):
    import _cli
    ap = _cli.Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None, help="cpu, cuda or strict (default: $XBP_DEVICE or cpu)")
    ap.add_argument("--out", default=os.path.join("runs", "graph_tour"))
    args = ap.parse_args(argv)
    args.device = _cli.use_device(args.device)   # before anything is built: --device beats XBP_DEVICE
    _cli.prepare_out_dir(args.out)
    if shutil.which("dot") is None:
        print("(Graphviz's `dot` is not installed: graphs are written as .dot files)\n")
    ok = mazur_section(args.device, args.out)
    digits_section(args.device, args.out)
    anomaly_section(args.device)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
