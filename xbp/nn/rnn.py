"""Recurrent layers: RNN (tanh/relu), LSTM, GRU and their cells, with PyTorch's parameter names,
layouts and initialisation, so PyTorch state dicts load as they are:

    weight_ih_l{k}[_reverse]  (G*H, input of layer k)   G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)
    weight_hh_l{k}[_reverse]  (G*H, H)
    bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse]  (G*H,)
    weight_hr_l{k}[_reverse]  (P, H)    LSTM with proj_size P > 0 only; then the state h fed back
                              and output has size P: weight_hh is (4H, P), and layers after
                              the first take inputs of size D*P

Every parameter starts U(-1/sqrt(H), 1/sqrt(H)). The maths is `functional.rnn` and the
cell functions (`lstm_projected` below for proj_size).
"""
from __future__ import annotations

import functools
import math

from .. import _creation, ops
from . import functional as F
from . import init
from ..ops._util import check_size
from .module import Module
from .parameter import Parameter

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class _RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        proj_size = check_size(type(self).__name__, proj_size, "proj_size")
        if proj_size < 0:
            raise ValueError(f"{type(self).__name__}: proj_size should be a positive integer or zero to disable "
                             f"projections, got {proj_size}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{type(self).__name__}: proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError(f"{type(self).__name__}: proj_size ({proj_size}) has to be smaller than hidden_size "
                             f"({hidden_size})")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1], got {dropout}")
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"{type(self).__name__}: num_layers and hidden_size must be positive")
        self.mode = mode
        name = type(self).__name__
        self.input_size = check_size(name, input_size, "input_size")
        self.hidden_size = check_size(name, hidden_size, "hidden_size")
        self.num_layers = check_size(name, num_layers, "num_layers")
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        G = _GATES[mode] * self.hidden_size
        D = 2 if bidirectional else 1
        real_hidden = proj_size or self.hidden_size        # the size of h, fed back and output
        self._flat_weights_names = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else real_hidden * D
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [("weight_ih", (G, in_size)), ("weight_hh", (G, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (G,)), ("bias_hh", (G,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, self.hidden_size)))
                for name, shape in shapes:
                    setattr(self, name + sfx, Parameter(_creation.empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draws every weight and bias uniformly in [-1/sqrt(hidden_size), 1/sqrt(hidden_size)]."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    def forward(self, input, hx=None):
        """Runs the recurrence over a sequence. input: (T, B, I) ((B, T, I) with ``batch_first``), (T, I)
        unbatched, or a PackedSequence; hx: the initial state, None for zeros ((h_0, c_0) for LSTM).
        Returns (output, h_n), or (output, (h_n, c_n)) for LSTM; shapes in the class docstring. A
        wrong feature size or state shape raises ValueError."""
        from .utils.rnn import PackedSequence
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
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
        LD = self.num_layers * (2 if self.bidirectional else 1)
        wants = ((LD, B, self.proj_size or self.hidden_size), (LD, B, self.hidden_size))    # h, then c
        for h, want in zip(hx if isinstance(hx, tuple) else (hx,), wants):
            if h is not None and h.shape != want:
                raise ValueError(f"{type(self).__name__}: initial state has shape {h.shape}, expected {want}")
        f = lstm_projected if self.proj_size else functools.partial(F.rnn, self.mode)
        out, state = f(input, hx, self._flat_weights, self.num_layers, self.bias, self.dropout, self.training,
                       self.bidirectional, self.batch_first)
        if unbatched:
            out = out[0, ...] if self.batch_first else out[:, 0, ...]
            state = tuple(s[:, 0, ...] for s in state) if isinstance(state, tuple) else state[:, 0, ...]
        return out, state

    def _forward_packed(self, packed, hx):
        """A PackedSequence input: (PackedSequence output with the input's layout, h_n (and c_n) in
        the original batch order), as PyTorch. Sequences of equal length run together as one batch,
        so every sequence starts and ends (in both directions) at its own first and last step."""
        import numpy as np
        from .utils.rnn import _repack_like, pad_packed_sequence
        padded, lengths = pad_packed_sequence(packed)              # (T, B, I), original batch order
        lens = np.asarray(lengths.numpy())
        T, B = padded.shape[0], padded.shape[1]
        if padded.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input has {padded.shape[-1]} features, expected {self.input_size}")
        lstm = self.mode == "LSTM"
        LD = self.num_layers * (2 if self.bidirectional else 1)
        wants = ((LD, B, self.proj_size or self.hidden_size), (LD, B, self.hidden_size))
        for h, want in zip(hx if isinstance(hx, tuple) else (hx,), wants):
            if h is not None and h.shape != want:
                raise ValueError(f"{type(self).__name__}: initial state has shape {h.shape}, expected {want}")
        f = lstm_projected if self.proj_size else functools.partial(F.rnn, self.mode)

        def rows(t, idx):
            return ops.index_select(t, 1, _creation.tensor(idx, device=padded.device))

        outs, states, order = [], [], []
        for L in sorted(set(lens.tolist()), reverse=True):
            idx = np.nonzero(lens == L)[0].astype(np.int64)
            x = rows(padded[0:L], idx)
            h = None if hx is None else (tuple(rows(s, idx) for s in hx) if lstm else rows(hx, idx))
            out, st = f(x, h, self._flat_weights, self.num_layers, self.bias, self.dropout, self.training,
                        self.bidirectional, False)
            if L < T:
                out = ops.cat([out, _creation.zeros(T - L, *out.shape[1:], dtype=out.dtype, device=out.device)], 0)
            outs.append(out)
            states.append(st)
            order.append(idx)
        inv = np.empty(B, dtype=np.int64)
        inv[np.concatenate(order)] = np.arange(B)

        def gather(parts):
            return rows(ops.cat(parts, 1) if len(parts) > 1 else parts[0], inv)

        out_padded = gather(outs)
        state = (gather([s[0] for s in states]), gather([s[1] for s in states])) if lstm else gather(states)
        return _repack_like(out_padded, packed), state

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
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
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


def lstm_projected(input, hx, weights, num_layers, bias=True, dropout=0.0, training=True,  # noqa: A002
                   bidirectional=False, batch_first=False):
    """A multi-layer LSTM with projections (PyTorch's proj_size), as `functional.rnn`:
    weights per layer and direction [w_ih (4H, I), w_hh (4H, P), b_ih, b_hh, w_hr (P, H)] (no
    biases without `bias`), PyTorch's _flat_weights order. Each step
        c_t = f c_{t-1} + i g,   h_t = (o tanh(c_t)) W_hr^T    (gates from x_t and h_{t-1}, (B, P))
    input (T, B, I) ((B, T, I) if batch_first); hx = (h0 (L*D, B, P), c0 (L*D, B, H)) or None.
    Returns (output (T, B, D*P), (h_n (L*D, B, P), c_n (L*D, B, H))).
    Composed from ops step by step (the fused recurrence primitive has no projection), so it is
    differentiable to any order; the input projections of all steps are still one GEMM."""
    D = 2 if bidirectional else 1
    per = 5 if bias else 3
    x = ops.swapaxes(input, 0, 1) if batch_first else input
    T, B = x.shape[0], x.shape[1]
    P, H = weights[per - 1].shape
    if hx is None:
        h0 = _creation.zeros(num_layers * D, B, P, dtype=x.dtype, device=x.device)
        c0 = _creation.zeros(num_layers * D, B, H, dtype=x.dtype, device=x.device)
    else:
        h0, c0 = hx
    hn, cn = [], []
    for layer in range(num_layers):
        outs_dir = []
        for d in range(D):
            k = layer * D + d
            w = weights[k * per:(k + 1) * per]
            w_ih, w_hh, w_hr = w[0], w[1], w[-1]
            b = w[2] + w[3] if bias else None                  # both biases add to the gates
            xs = F._linear(x, w_ih, b)                        # (T, B, 4H), one GEMM
            h, c = h0[k], c0[k]
            seq = [None] * T
            for t in (range(T - 1, -1, -1) if d == 1 else range(T)):
                u, c = F._lstm_gates(xs[t] + ops.linear(h, w_hh), c, H)
                h = seq[t] = ops.linear(u, w_hr)
            outs_dir.append(ops.stack(seq, 0))
            hn.append(h)
            cn.append(c)
        x = outs_dir[0] if D == 1 else ops.cat(outs_dir, 2)
        if dropout and training and layer < num_layers - 1:
            from .functional import dropout as _dropout
            x = _dropout(x, dropout, True)
    out = ops.swapaxes(x, 0, 1) if batch_first else x
    return out, (ops.stack(hn, 0), ops.stack(cn, 0))


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
    (L*D, B, H); hx = (h_0, c_0) or None for zeros.
    proj_size P > 0: h_t = (o_t * tanh(c_t)) W_hr^T, so output is (T, B, D*P) and h_0, h_n are
    (L*D, B, P) while c_0, c_n stay (L*D, B, H)."""

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
        self.input_size = check_size(type(self).__name__, input_size, "input_size")
        self.hidden_size = check_size(type(self).__name__, hidden_size, "hidden_size")
        self.bias = bias
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
        """Re-draws every weight and bias uniformly in [-1/sqrt(hidden_size), 1/sqrt(hidden_size)]."""
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
        """The module's settings, as shown inside ``repr(module)``."""
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One Elman step: (B, I), (B, H) -> (B, H)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        """One step: input (B, I) or (I,), hx (B, H) or None for zeros -> h' (B, H) (or (H,))."""
        x, h, unb = self._prep(input, hx)
        f = F.rnn_tanh_cell if self.nonlinearity == "tanh" else F.rnn_relu_cell
        h = f(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h[0, ...] if unb else h


class LSTMCell(_CellBase):
    """One LSTM step: (B, I), (h, c) each (B, H) -> (h', c')."""
    _gates = 4

    def forward(self, input, hx=None):
        """One step: input (B, I) or (I,), hx = (h, c), each (B, H), or None for zeros -> (h', c')."""
        x, hc, unb = self._prep(input, hx)
        h, c = F.lstm_cell(x, hc, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h[0, ...], c[0, ...]) if unb else (h, c)


class GRUCell(_CellBase):
    """One GRU step: (B, I), (B, H) -> (B, H)."""
    _gates = 3

    def forward(self, input, hx=None):
        """One step: input (B, I) or (I,), hx (B, H) or None for zeros -> h' (B, H) (or (H,))."""
        x, h, unb = self._prep(input, hx)
        h = F.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h[0, ...] if unb else h
