"""Tutorial: a ReLU -> sigmoid network with binary cross-entropy, gradients by hand vs backward().

    python examples/tutorial_bce_manual.py [--steps 300] [--hidden 16] [--lr 0.5]

The network is  h = relu(x W1 + b1),  p = sigmoid(h W2 + b2),  and the loss is the mean binary
cross-entropy  L = -mean(y log p + (1 - y) log(1 - p)).  By hand, the chain rule gives

    dL/dz2 = (p - y) / n                       (sigmoid and BCE cancel into one simple term)
    dL/dW2 = h^T dz2,   dL/db2 = sum(dz2)
    dL/dh  = dz2 W2^T,  dL/dz1 = dL/dh * [z1 > 0]   (ReLU passes the gradient where it was active)
    dL/dW1 = x^T dz1,   dL/db1 = sum(dz1)

The program trains on a two-class "circle" problem (is the point inside radius 1?) with these
hand-written gradients and, every 100 steps, recomputes the gradients with xbp
(``F.binary_cross_entropy(...).backward()``) on the same weights and prints the largest difference.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xbp  # noqa: E402
import xbp.nn.functional as F  # noqa: E402


def manual(params, x, y):
    W1, b1, W2, b2 = params
    n = x.shape[0]
    z1 = x @ W1 + b1
    h = np.maximum(z1, 0.0)
    p = 1.0 / (1.0 + np.exp(-(h @ W2 + b2)))
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    dz2 = (p - y) / n
    dW2, db2 = h.T @ dz2, dz2.sum(axis=0)
    dz1 = (dz2 @ W2.T) * (z1 > 0)
    dW1, db1 = x.T @ dz1, dz1.sum(axis=0)
    return loss, p, (dW1, db1, dW2, db2)


def with_xbp(params, x, y):
    W1, b1, W2, b2 = (xbp.tensor(p, requires_grad=True) for p in params)
    h = F.relu(xbp.tensor(x) @ W1 + b1)
    p = xbp.sigmoid(h @ W2 + b2)
    loss = F.binary_cross_entropy(p, xbp.tensor(y))
    loss.backward()
    return loss.item(), [t.grad.numpy() for t in (W1, b1, W2, b2)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1.5, 1.5, (256, 2))
    y = (np.sum(x * x, axis=1, keepdims=True) < 1.0).astype(np.float64)     # (256, 1) in {0, 1}
    params = [rng.normal(0, 1.0, (2, args.hidden)), np.zeros(args.hidden),
              rng.normal(0, args.hidden ** -0.5, (args.hidden, 1)), np.zeros(1)]

    print(f"ReLU -> sigmoid network 2-{args.hidden}-1, binary cross-entropy, {len(y)} points")
    worst = 0.0
    for step in range(args.steps + 1):
        loss, p, grads = manual(params, x, y)
        if step % 100 == 0:
            loss_x, grads_x = with_xbp(params, x, y)
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(grads, grads_x))
            worst = max(worst, diff)
            acc = float(np.mean((p > 0.5) == (y > 0.5)))
            print(f"  step {step:4d}  loss {loss:.6f} (xbp {loss_x:.6f})  accuracy {acc:.3f}  "
                  f"max abs grad diff {diff:.3e}")
        if step < args.steps:
            for w, g in zip(params, grads):
                w -= args.lr * g
    print(f"final loss {loss:.4f}  accuracy {float(np.mean((p > 0.5) == (y > 0.5))):.3f}")
    print(f"max abs gradient difference: {worst:.3e}")
    return worst


if __name__ == "__main__":
    main()
