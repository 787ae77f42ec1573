"""``xbp.nn.functional`` (import as F): the stateless functions layers call.

The maths lives in `xbp.ops` (activations, linear, softmax) and `xbp.ops.losses`; this module
re-exports it under PyTorch's names and adds dropout and the softmax dim rule. Later files
(conv, norm, rnn, attention) append their functions at the end of this file.
"""
from __future__ import annotations

import warnings

from ..ops import (  # noqa: F401  (re-exports)
    elu, gelu, leaky_relu, linear, one_hot, relu, sigmoid, silu, softplus, tanh,
)
from ..ops import fused as _fused
from ..ops.losses import (  # noqa: F401  (re-exports)
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div,
    l1_loss, mse_loss, nll_loss, smooth_l1_loss,
)
from .._tensor import Tensor, _wrap

__all__ = [
    "linear", "relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softplus",
    "softmax", "log_softmax", "dropout", "one_hot",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
]


def _softmax_dim(ndim: int) -> int:
    # PyTorch's legacy rule for dim=None (with its deprecation warning)
    warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call to "
                  "include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None):
    """exp(x) / sum(exp(x)) along `dim` (stable)."""
    if dim is None:
        dim = _softmax_dim(input.ndim)
    return _fused.softmax(input, dim)


def log_softmax(input, dim=None):
    """log(softmax(x)) along `dim`, computed stably as x - logsumexp(x)."""
    if dim is None:
        dim = _softmax_dim(input.ndim)
    return _fused.log_softmax(input, dim)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability `p` and scale the rest by 1 / (1 - p) while
    `training`; the identity otherwise. The mask comes from the input device's seeded
    generator (``xbp.manual_seed``). `inplace` is accepted for PyTorch compatibility and ignored
    (the result is always a new tensor)."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if not isinstance(input, Tensor) or input.dtype.kind != "f":
        raise TypeError("dropout: input must be a floating-point tensor")
    xp = input.xp
    if p == 1.0:
        return input * 0.0
    keep = xp.random_uniform(input.shape, input.dtype) >= p
    mask = xp.astype(keep, input.array.dtype) * (1.0 / (1.0 - p))
    return input * _wrap(mask, xp)

# --- convolution, pooling, normalisation, embedding, recurrent cells, attention (functional_layers.py)
from .functional_layers import (  # noqa: E402,F401  (re-exports)
    adaptive_avg_pool2d, avg_pool2d, batch_norm, conv1d, conv2d, conv_transpose2d, embedding, group_norm,
    gru_cell, layer_norm, lstm_cell, max_pool2d, rnn_relu_cell, rnn_tanh_cell,
    scaled_dot_product_attention,
)

__all__ += [
    "conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm",
    "layer_norm", "group_norm", "embedding", "rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell",
    "scaled_dot_product_attention", "multi_head_attention_forward",
]

# --- max unpooling (xbp.ops.conv) ---------------------------------------------------------------
from ..ops.conv import max_unpool2d  # noqa: E402,F401  (re-export)

__all__ += ["max_unpool2d"]

# --- multi-head attention with PyTorch's full functional signature (xbp.nn.attention) ------------
from .attention import multi_head_attention_forward  # noqa: E402,F401  (re-export)
