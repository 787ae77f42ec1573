"""Tutorial: a 2-layer MLP on the sklearn digits, first by hand in NumPy, then checked with xbp.

    python examples/tutorial_numpy_mlp.py [--epochs 30] [--hidden 32] [--lr 0.5]

Part 1 writes the network the way a textbook does: sigmoid hidden layer, softmax output,
cross-entropy loss, and every gradient derived by hand (the chain rule, layer by layer). It trains
with plain mini-batch gradient descent and prints the test accuracy.

Part 2 writes ONLY the forward pass again with xbp tensors on the same weights and batch, calls
``loss.backward()``, and compares xbp's gradients with the hand-derived ones (max abs diff, float64).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xbp  # noqa: E402
from xbp.data import load_digits  # noqa: E402


# ---- Part 1: NumPy, gradients by hand ---------------------------------------------------------
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward_backward(params, x, y):
    """Loss and gradients of mean cross-entropy for h = sigmoid(x W1 + b1), p = softmax(h W2 + b2)."""
    W1, b1, W2, b2 = params
    n = x.shape[0]
    z1 = x @ W1 + b1
    h = sigmoid(z1)
    p = softmax(h @ W2 + b2)
    loss = -np.log(p[np.arange(n), y]).mean()
    # backward, by hand
    dz2 = p.copy()
    dz2[np.arange(n), y] -= 1.0                 # d(loss)/d(logits) = (softmax - onehot) / n
    dz2 /= n
    dW2 = h.T @ dz2
    db2 = dz2.sum(axis=0)
    dh = dz2 @ W2.T
    dz1 = dh * h * (1.0 - h)                    # sigmoid'(z) = s (1 - s)
    dW1 = x.T @ dz1
    db1 = dz1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


def predict(params, x):
    W1, b1, W2, b2 = params
    return (sigmoid(x @ W1 + b1) @ W2 + b2).argmax(axis=1)


# ---- Part 2: the same forward in xbp -------------------------------------------------------------
def xbp_gradients(params, x, y):
    W1, b1, W2, b2 = (xbp.tensor(p, requires_grad=True) for p in params)
    xt, yt = xbp.tensor(x), xbp.tensor(y)
    h = xbp.sigmoid(xt @ W1 + b1)
    logits = h @ W2 + b2
    loss = -xbp.log_softmax(logits, dim=1)[xbp.arange(x.shape[0]), yt].mean()
    loss.backward()
    return loss.item(), (W1.grad.numpy(), b1.grad.numpy(), W2.grad.numpy(), b2.grad.numpy())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    (xtr, ytr), (xte, yte) = load_digits(device="cpu", dtype=np.float64)
    xtr, ytr, xte, yte = xtr.numpy(), ytr.numpy(), xte.numpy(), yte.numpy()
    rng = np.random.default_rng(args.seed)
    params = [rng.normal(0, 64 ** -0.5, (64, args.hidden)), np.zeros(args.hidden),
              rng.normal(0, args.hidden ** -0.5, (args.hidden, 10)), np.zeros(10)]

    print(f"Part 1: NumPy MLP 64-{args.hidden}-10 (sigmoid, softmax), manual backprop, "
          f"{len(ytr)} train / {len(yte)} test digits")
    for epoch in range(args.epochs):
        order = rng.permutation(len(ytr))
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            loss, grads = forward_backward(params, xtr[idx], ytr[idx])
            total += loss * len(idx)
            for p, g in zip(params, grads):
                p -= args.lr * g
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            acc = (predict(params, xte) == yte).mean()
            print(f"  epoch {epoch + 1:3d}  train loss {total / len(ytr):.4f}  test accuracy {acc:.4f}")
    acc = (predict(params, xte) == yte).mean()
    print(f"numpy test accuracy: {acc:.4f}")

    print("Part 2: the same forward in xbp, gradients from loss.backward()")
    x, y = xtr[:64], ytr[:64]
    loss_np, g_np = forward_backward(params, x, y)
    loss_xbp, g_xbp = xbp_gradients(params, x, y)
    print(f"  loss numpy {loss_np:.10f}  xbp {loss_xbp:.10f}")
    worst = 0.0
    for name, a, b in zip(["W1", "b1", "W2", "b2"], g_np, g_xbp):
        d = float(np.max(np.abs(a - b)))
        worst = max(worst, d)
        print(f"  d loss/d {name:2s} {str(a.shape):9s} max abs diff {d:.3e}")
    print(f"max abs gradient difference: {worst:.3e}")
    return worst


if __name__ == "__main__":
    main()
