"""A small CNN on the 8x8 handwritten digits of scikit-learn, trained with xbp.

    python examples/train_digits_cnn.py [--device cpu|cuda|strict] [--epochs 40] [--seed 0]

Conv(1->32, 3x3) BN ReLU, Conv(32->64, 3x3) BN ReLU, MaxPool 2, Conv(64->128, 3x3) BN ReLU,
global average pool, Linear(128->10); AdamW with a cosine learning-rate schedule, label smoothing
0.1 and random one-pixel shifts of the training images. On the 1,437 training / 360 test digits
of xbp.data.load_digits it reaches 98.9-99.7% test accuracy (seeds 0-4) in about 20 s on two CPU
cores. Prints the loss and test accuracy every 5 epochs and, last, a line
``final test accuracy: 0.99xx``.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xbp  # noqa: E402
import xbp.nn as nn  # noqa: E402
import xbp.nn.functional as F  # noqa: E402
from xbp.data import DataLoader, TensorDataset, load_digits  # noqa: E402
from xbp.optim import AdamW  # noqa: E402
from xbp.optim.lr_scheduler import CosineAnnealingLR  # noqa: E402


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),                                              # 8x8 -> 4x4
            nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(128, 10)

    def forward(self, x):                       # x (N, 1, 8, 8)
        return self.classifier(self.features(x))


def shift_batch(x, rng):
    """Shift each image by up to one pixel in each direction (zero fill): x (N, 1, 8, 8) host."""
    out = np.zeros_like(x)
    for k, (dy, dx) in enumerate(rng.integers(-1, 2, size=(len(x), 2))):
        ys, yd = (slice(0, 8 - dy), slice(dy, 8)) if dy >= 0 else (slice(-dy, 8), slice(0, 8 + dy))
        xs, xd = (slice(0, 8 - dx), slice(dx, 8)) if dx >= 0 else (slice(-dx, 8), slice(0, 8 + dx))
        out[k, :, yd, xd] = x[k, :, ys, xs]
    return out


def accuracy(model, x, y, batch=512):
    model.eval()
    correct = 0
    with xbp.no_grad():
        n = x.shape[0]
        for i in range(0, n, batch):
            j = min(i + batch, n)
            pred = model(x[i:j]).argmax(dim=1)
            correct += int((pred == y[i:j]).sum().item())
    model.train()
    return correct / x.shape[0]


def main(argv=None):
    import _cli
    ap = _cli.Parser(description="Train a small CNN on the sklearn digits with xbp")
    ap.add_argument("--device", default=None, help="cpu, cuda or strict (default: $XBP_DEVICE or cpu)")
    ap.add_argument("--epochs", type=_cli.int_at_least("--epochs", 1), default=40)
    ap.add_argument("--batch-size", type=_cli.int_at_least("--batch-size", 1), default=64)
    ap.add_argument("--lr", type=_cli.positive_float("--lr"), default=3e-3)
    ap.add_argument("--seed", type=_cli.int_at_least("--seed", 0), default=0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    args = ap.parse_args(argv)
    if not 0.0 <= args.label_smoothing <= 1.0:
        ap.error(f"--label-smoothing must be in [0, 1], got {args.label_smoothing}")
    args.device = _cli.use_device(args.device)   # before anything is built: --device beats XBP_DEVICE

    xbp.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    (x_train, y_train), (x_test, y_test) = load_digits(test_size=0.2, seed=0, device="cpu")
    x_host = x_train.numpy().reshape(-1, 1, 8, 8)
    y_host = y_train.numpy()
    x_test = x_test.reshape(-1, 1, 8, 8).to(args.device)
    y_test = y_test.to(args.device)

    model = DigitsCNN().to(args.device)
    opt = AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = -(-len(y_host) // args.batch_size)
    sched = CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    print(f"device {args.device}: {len(y_host)} training and {y_test.shape[0]} test digits, "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        # a fresh shifted copy of the training set each epoch, batched by xbp's DataLoader
        data = TensorDataset(xbp.tensor(shift_batch(x_host, rng)), xbp.tensor(y_host))
        loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, seed=args.seed + epoch,
                            device=args.device)
        total, n = 0.0, 0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb, label_smoothing=args.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.item()) * yb.shape[0]
            n += yb.shape[0]
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  train loss {total / n:.4f}  test accuracy "
                  f"{accuracy(model, x_test, y_test):.4f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    acc = accuracy(model, x_test, y_test)
    print(f"final test accuracy: {acc:.4f}  ({time.perf_counter() - t0:.1f} s)")
    return acc


if __name__ == "__main__":
    main()
