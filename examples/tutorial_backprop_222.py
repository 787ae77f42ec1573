"""Tutorial: the classic 2-2-2 network of Matt Mazur's "A Step by Step Backpropagation Example"
(https://mattmazur.com/2015/03/17/a-step-by-step-backpropagation-example/), in xbp.

    python examples/tutorial_backprop_222.py

Inputs i1 = 0.05, i2 = 0.10; hidden weights w1..w4 = 0.15, 0.20, 0.25, 0.30 and bias b1 = 0.35;
output weights w5..w8 = 0.40, 0.45, 0.50, 0.55 and bias b2 = 0.60; sigmoid everywhere; targets
0.01, 0.99 and the error E = sum 1/2 (target - out)^2. The article works the forward pass, the
backward pass and one gradient-descent step (learning rate 0.5) out by hand; this program does
the same with ``loss.backward()`` and ``xbp.optim.SGD`` and prints the numbers next to the
published ones. As in the article, the biases stay fixed (only w1..w8 are trained).

Layout: h1 = w1 i1 + w2 i2 + b1 and h2 = w3 i1 + w4 i2 + b1, so the rows of W1 = [[w1, w2],
[w3, w4]] are the hidden units, exactly as ``nn.Linear(2, 2).weight`` stores them (out, in).
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xbp  # noqa: E402
import xbp.nn as nn  # noqa: E402

PUBLISHED_OUT = [0.75136507, 0.77292847]
PUBLISHED_LOSS = 0.29837111
PUBLISHED_W = {"w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
               "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121}


class Net222(nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.hidden = nn.Linear(2, 2, dtype=dtype)
        self.output = nn.Linear(2, 2, dtype=dtype)
        with xbp.no_grad():
            self.hidden.weight.copy_(xbp.tensor([[0.15, 0.20], [0.25, 0.30]], dtype=dtype))
            self.hidden.bias.fill_(0.35)
            self.output.weight.copy_(xbp.tensor([[0.40, 0.45], [0.50, 0.55]], dtype=dtype))
            self.output.bias.fill_(0.60)
        self.hidden.bias.requires_grad_(False)      # the article keeps b1, b2 fixed
        self.output.bias.requires_grad_(False)

    def forward(self, x):
        return xbp.sigmoid(self.output(xbp.sigmoid(self.hidden(x))))


def weights(net):
    w = np.concatenate([net.hidden.weight.detach().numpy().ravel(),
                        net.output.weight.detach().numpy().ravel()])
    return dict(zip(["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"], w.tolist()))


def run(dtype):
    net = Net222(dtype)
    x = xbp.tensor([[0.05, 0.10]], dtype=dtype)
    target = xbp.tensor([[0.01, 0.99]], dtype=dtype)
    opt = xbp.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
    out = net(x)
    loss = (0.5 * (target - out) ** 2).sum()
    opt.zero_grad()
    loss.backward()
    grad_w5 = net.output.weight.grad[0, 0].item()
    opt.step()
    return out, loss, grad_w5, weights(net)


def main():
    out, loss, grad_w5, w = run(xbp.float64)
    o = out.detach().numpy().ravel().tolist()
    print("forward pass (float64)")
    print(f"  out_o1, out_o2 = [{o[0]:.8f}, {o[1]:.8f}]   published [0.75136507, 0.77292847]")
    print(f"  E_total        = {loss.item():.8f}                published 0.29837111")
    print(f"backward pass: dE/dw5 = {grad_w5:.9f}   published 0.082167041")
    print("after one SGD step (lr 0.5):")
    worst = 0.0
    for k in ["w5", "w6", "w7", "w8", "w1", "w2", "w3", "w4"]:
        worst = max(worst, abs(w[k] - PUBLISHED_W[k]))
        print(f"  {k} = {w[k]:.9f}   published {PUBLISHED_W[k]:.9f}")
    print(f"max abs difference to the published weights: {worst:.1e}")

    # the same network in float32, printed the way PyTorch prints it
    out32, loss32, _, _ = run(xbp.float32)
    print("PyTorch-style printout (float32):")
    print(" ", out32)
    print(" ", loss32)
    print(f"  out {np.array2string(out32.detach().numpy(), precision=4, separator=', ')}  loss {loss32:.4f}")


if __name__ == "__main__":
    main()
