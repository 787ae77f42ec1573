"""Recurrent layers: RNN (tanh/relu), LSTM, GRU and their cells, with PyTorch's parameter names,
layouts and initialisation, so PyTorch state dicts load as they are:

    weight_ih_l{k}[_reverse]  (G*H, input of layer k)   G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)
    weight_hh_l{k}[_reverse]  (G*H, H)
    bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse]  (G*H,)

Every parameter starts U(-1/sqrt(H), 1/sqrt(H)). The maths is `functional_layers.rnn` and the
cell functions.
"""
from __future__ import annotations

import math

from .. import _creation, ops
from . import functional_layers as FL
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class _RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if proj_size:
            raise NotImplementedError(f"{type(self).__name__}: proj_size is not supported")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1], got {dropout}")
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"{type(self).__name__}: num_layers and hidden_size must be positive")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        G = _GATES[mode] * self.hidden_size
        D = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.hidden_size * D
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [("weight_ih", (G, in_size)), ("weight_hh", (G, self.hidden_size))]
                if bias:
                    shapes += [("bias_ih", (G,)), ("bias_hh", (G,))]
                for name, shape in shapes:
                    setattr(self, name + sfx, Parameter(_creation.empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    def forward(self, input, hx=None):
        unbatched = input.ndim == 2
        if input.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: expected a 2-D (unbatched) or 3-D input, got {input.shape}")
        if unbatched:
            input = ops.unsqueeze(input, 1)       # unbatched (T, I): a batch of one
            if self.batch_first:
                input = ops.swapaxes(input, 0, 1)
            if hx is not None:
                hx = tuple(ops.unsqueeze(h, 1) for h in hx) if isinstance(hx, tuple) else ops.unsqueeze(hx, 1)
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input has {input.shape[-1]} features, expected {self.input_size}")
        B = input.shape[0] if self.batch_first else input.shape[1]
        want = (self.num_layers * (2 if self.bidirectional else 1), B, self.hidden_size)
        for h in (hx if isinstance(hx, tuple) else (hx,)):
            if h is not None and h.shape != want:
                raise ValueError(f"{type(self).__name__}: initial state has shape {h.shape}, expected {want}")
        out, state = FL.rnn(self.mode, input, hx, self._flat_weights, self.num_layers, self.bias, self.dropout,
                            self.training, self.bidirectional, self.batch_first)
        if unbatched:
            out = out[0, ...] if self.batch_first else out[:, 0, ...]
            state = tuple(s[:, 0, ...] for s in state) if isinstance(state, tuple) else state[:, 0, ...]
        return out, state

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(_RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu).
    input (T, B, I) ((B, T, I) if batch_first) -> (output (T, B, D*H), h_n (L*D, B, H))."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)


class LSTM(_RNNBase):
    """LSTM (gates i, f, g, o). input (T, B, I) -> (output (T, B, D*H), (h_n, c_n)), each state
    (L*D, B, H); hx = (h_0, c_0) or None for zeros."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(_RNNBase):
    """GRU (gates r, z, n). input (T, B, I) -> (output (T, B, D*H), h_n (L*D, B, H))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class _CellBase(Module):
    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bias
        G = self._gates * self.hidden_size
        self.weight_ih = Parameter(_creation.empty(G, self.input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(_creation.empty(G, self.hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(_creation.empty(G, device=device, dtype=dtype))
            self.bias_hh = Parameter(_creation.empty(G, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def _prep(self, input, hx):
        unbatched = input.ndim == 1
        if unbatched:
            input = ops.unsqueeze(input, 0)
        if hx is None:
            z = _creation.zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)
            hx = (z, z) if self._gates == 4 else z
        elif unbatched:
            hx = tuple(ops.unsqueeze(h, 0) for h in hx) if isinstance(hx, tuple) else ops.unsqueeze(hx, 0)
        return input, hx, unbatched

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One Elman step: (B, I), (B, H) -> (B, H)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, h, unb = self._prep(input, hx)
        f = FL.rnn_tanh_cell if self.nonlinearity == "tanh" else FL.rnn_relu_cell
        h = f(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h[0, ...] if unb else h


class LSTMCell(_CellBase):
    """One LSTM step: (B, I), (h, c) each (B, H) -> (h', c')."""
    _gates = 4

    def forward(self, input, hx=None):
        x, hc, unb = self._prep(input, hx)
        h, c = FL.lstm_cell(x, hc, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h[0, ...], c[0, ...]) if unb else (h, c)


class GRUCell(_CellBase):
    """One GRU step: (B, I), (B, H) -> (B, H)."""
    _gates = 3

    def forward(self, input, hx=None):
        x, h, unb = self._prep(input, hx)
        h = FL.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h[0, ...] if unb else h
