"""Tutorial: Chainer's introduction, rewritten in xbp (for people coming from Chainer).

    python examples/tutorial_chainer.py [--epochs 200] [--lr 0.1]

The Chainer -> xbp mapping used below:

    Chainer                                  xbp
    import chainer.links as L                import xbp.nn as nn
    import chainer.functions as F            import xbp.nn.functional as F
    chainer.Variable(x)                      xbp.tensor(x)  (requires_grad=True for leaves)
    L.Linear(3, 5)                           nn.Linear(3, 5)
    F.relu(h)                                F.relu(h)
    class MLP(chainer.Chain):                class MLP(nn.Module):
        def __init__(self):                      def __init__(self):
            super().__init__()                       super().__init__()
            with self.init_scope():                  (no init_scope: assigning a Module or
                self.l1 = L.Linear(...)               Parameter attribute registers it)
        def __call__(self, x): ...               def forward(self, x): ...
    optimizer = optimizers.SGD(lr=0.1)       opt = xbp.optim.SGD(model.parameters(), lr=0.1)
    optimizer.setup(model)                   (parameters passed to the constructor)
    model.cleargrads()                       opt.zero_grad()   (or model.zero_grad())
    loss.backward()                          loss.backward()
    optimizer.update()                       opt.step()
    F.mean_squared_error(y, t)               F.mse_loss(y, t)
    y.array  /  y.data                       y.detach().numpy()  (y.array is the raw backend array, y.data a detached Tensor as in PyTorch)
    to_gpu() / to_cpu(), device id -1        model.to("cuda") / model.to("cpu")
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xbp  # noqa: E402
import xbp.nn as nn  # noqa: E402
import xbp.nn.functional as F  # noqa: E402


class MLP(nn.Module):                        # chainer.Chain
    def __init__(self, n_in, n_units, n_out):
        super().__init__()
        self.l1 = nn.Linear(n_in, n_units)   # inside `with self.init_scope():` in Chainer
        self.l2 = nn.Linear(n_units, n_units)
        self.l3 = nn.Linear(n_units, n_out)

    def forward(self, x):                    # Chain.__call__
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        return self.l3(h)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    xbp.manual_seed(args.seed)

    # --- 1. links and functions: Linear(3, 5) -> relu -> Linear(5, 2) ---
    l1 = nn.Linear(3, 5)                                    # L.Linear(3, 5)
    l2 = nn.Linear(5, 2)                                    # L.Linear(5, 2)
    x = xbp.tensor(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    y = l2(F.relu(l1(x)))                                   # l2(F.relu(l1(x)))
    print("forward: x", tuple(x.shape), "-> Linear(3,5) -> relu -> Linear(5,2) ->", tuple(y.shape))
    ref = np.maximum(x.numpy() @ l1.weight.detach().numpy().T + l1.bias.detach().numpy(), 0)
    ref = ref @ l2.weight.detach().numpy().T + l2.bias.detach().numpy()
    print("y =", np.array2string(y.detach().numpy(), precision=4))
    print(f"max abs diff vs NumPy: {float(np.max(np.abs(y.detach().numpy() - ref))):.2e}")
    y.sum().backward()                                      # the grads land on the links' params
    print("l1.weight.grad shape:", tuple(l1.weight.grad.shape))   # (out, in), as W in Chainer

    # --- 2. training an MLP with SGD and mean squared error ---
    # regression target: t = [sin(pi x0) * x1, x0 + x1^2] on points in [-1, 1]^2
    rng = np.random.default_rng(args.seed)
    xs = rng.uniform(-1, 1, (512, 2)).astype(np.float32)
    ts = np.stack([np.sin(np.pi * xs[:, 0]) * xs[:, 1], xs[:, 0] + xs[:, 1] ** 2], axis=1)
    xs, ts = xbp.tensor(xs), xbp.tensor(ts.astype(np.float32))
    model = MLP(2, 32, 2)
    opt = xbp.optim.SGD(model.parameters(), lr=args.lr)     # optimizers.SGD(lr); .setup(model)
    print(f"training MLP(2, 32, 2) with SGD(lr={args.lr}) and mse_loss, batch 64")
    with xbp.no_grad():
        first = F.mse_loss(model(xs), ts).item()
    print(f"initial mse {first:.5f}")
    for epoch in range(args.epochs):
        perm = rng.permutation(512)
        for i in range(0, 512, 64):
            idx = xbp.tensor(perm[i:i + 64])
            loss = F.mse_loss(model(xs[idx]), ts[idx])      # F.mean_squared_error(y, t)
            opt.zero_grad()                                 # model.cleargrads()
            loss.backward()                                 # loss.backward()
            opt.step()                                      # optimizer.update()
        with xbp.no_grad():
            full = F.mse_loss(model(xs), ts).item()
        if epoch % 50 == 0 or epoch == args.epochs - 1:
            print(f"  epoch {epoch + 1:4d}  mse {full:.5f}")
    print(f"final mse {full:.5f}")


if __name__ == "__main__":
    main()
