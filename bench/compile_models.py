"""The LeNet and LSTM training steps of bench/bench_compile.py (`--configs lenet,lstm,...`): the
models of bench/bench_layers.py with a choice of optimizer and of size, written once for xbp and
once for PyTorch from the same seeded data.

Configs (name: model, sizes):
  lenet        bench_layers' LeNet-style CNN, batch 128 of 1x28x28 (its size)
  lenet16      the same CNN, batch 16 (framework overhead is a larger share)
  lstm         bench_layers' 2-layer LSTM, input 256, hidden 256, sequence 64, batch 32, head 256 classes
  lstm-small   2-layer LSTM, input 64, hidden 64, sequence 16, batch 8, head 64 classes
Each step: zero_grad, forward, mean cross-entropy (over every time step for the LSTM), backward,
optimizer step (SGD lr 0.01, or Adam lr 1e-3), and it returns the detached loss. float32.
"""
from __future__ import annotations

import numpy as np

from bench_layers import lenet

# name -> (kind, sizes); lstm sizes: (input, hidden, seq, batch, classes)
MODEL_CONFIGS = {
    "lenet": ("cnn", {"batch": 128}),
    "lenet16": ("cnn", {"batch": 16}),
    "lstm": ("lstm", {"input": 256, "hidden": 256, "seq": 64, "batch": 32, "classes": 256}),
    "lstm-small": ("lstm", {"input": 64, "hidden": 64, "seq": 16, "batch": 8, "classes": 64}),
}
# steps per timed block (about 20-50 ms of work per block at 1 thread)
MODEL_CALLS = {"lenet": 2, "lenet16": 10, "lstm": 1, "lstm-small": 4}


def _data(kind, sz):
    """bench_layers' data (the same generator and draw order), at the config's size."""
    rng = np.random.default_rng(0)
    if kind == "cnn":
        x = rng.standard_normal((sz["batch"], 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, sz["batch"])
    else:
        x = rng.standard_normal((sz["seq"], sz["batch"], sz["input"])).astype(np.float32)
        y = rng.integers(0, sz["classes"], (sz["seq"] * sz["batch"],))
    return x, y


def _lstm_net(m, sz):
    class LSTMNet(m.Module):
        def __init__(self):
            super().__init__()
            self.lstm = m.LSTM(sz["input"], sz["hidden"], num_layers=2)
            self.head = m.Linear(sz["hidden"], sz["classes"])

        def forward(self, x):
            return self.head(self.lstm(x)[0])
    return LSTMNet()


def make_model_step(lib, config, opt_name):
    """The training step of `config` in `lib` (the module `xbp` or `torch`: the same code runs on
    both, as a PyTorch script does with xbp in torch's place): a function of no arguments
    returning the detached loss."""
    kind, sz = MODEL_CONFIGS[config]
    lib.manual_seed(0)
    model = lenet(lib.nn) if kind == "cnn" else _lstm_net(lib.nn, sz)
    xh, yh = _data(kind, sz)
    x, y = lib.tensor(xh), lib.tensor(yh)
    opt = (lib.optim.SGD(model.parameters(), lr=0.01) if opt_name == "sgd"
           else lib.optim.Adam(model.parameters(), lr=1e-3))

    def step():
        opt.zero_grad()
        out = model(x)
        loss = lib.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y)
        loss.backward()
        opt.step()
        return loss.detach()
    return step
