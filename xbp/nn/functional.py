"""``xbp.nn.functional`` (import as F): the stateless functions layers call, PyTorch's names.

The primitives live in `xbp.ops` (activations, linear, softmax, losses; convolution in
`ops.conv`, pooling in `ops.pooling`, the normalisation core in `ops.normalization`, the
embedding lookup in `ops.embedding`, the fused recurrence in `ops.recurrence`). This module
re-exports them and composes the rest from public ops (dropout, the norm layers' affine parts,
recurrent cells, attention), so everything here runs on every device and is differentiable to
any order. Layers (`xbp.nn.*`) own parameters and call these functions.
"""
from __future__ import annotations

import math
import warnings

from ..ops import (  # noqa: F401  (re-exports)
    elu, gelu, leaky_relu, linear, one_hot, relu, sigmoid, silu, softplus, tanh,
)
from ..ops import fused as _fused
from ..ops.losses import (  # noqa: F401  (re-exports)
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div,
    l1_loss, mse_loss, nll_loss, smooth_l1_loss,
)
from .. import _creation, ops
from .._tensor import Tensor, _wrap
from ..autograd import no_grad
from ..ops.conv import conv1d, conv2d, conv_transpose2d  # noqa: F401  (re-exports)
from ..ops.embedding import embedding as _embedding
from ..ops.normalization import normalize as _normalize_core
from ..ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d, max_unpool2d  # noqa: F401
from ..ops.recurrence import recurrence
from ..ops._util import dim_index as _dim_index
# the other layers' forms (more activations, dropout variants, distances, padding modes,
# resampling, unfold/fold, 1-D/3-D conv and pooling) and more losses, in two files of their own;
# PyTorch's F.normalize is the one from there (the internal normalisation core is _normalize_core)
from ._functional_layers import _float_tensor
from ._functional_layers import (  # noqa: F401  (re-exports)
    relu6, hardtanh, hardswish, hardsigmoid, mish, glu, softsign, threshold, prelu, selu, celu,
    logsigmoid, tanhshrink, softshrink, hardshrink, dropout1d, dropout2d, dropout3d,
    alpha_dropout, local_response_norm, normalize, cosine_similarity,
    pairwise_distance, pdist, pad, interpolate, upsample, pixel_shuffle, pixel_unshuffle, unfold,
    fold, bilinear, conv3d, conv_transpose1d, max_pool1d, max_pool3d, avg_pool1d,
    adaptive_avg_pool1d, adaptive_max_pool1d, adaptive_max_pool2d, grid_sample, affine_grid, rms_norm, avg_pool3d,
    lp_pool1d, lp_pool2d, channel_shuffle, rrelu, adaptive_avg_pool3d, adaptive_max_pool3d,
    conv_transpose3d, embedding_bag, max_unpool1d,
)
from ._functional_losses import (  # noqa: F401  (re-exports)
    cosine_embedding_loss, margin_ranking_loss, triplet_margin_loss, hinge_embedding_loss,
    soft_margin_loss, poisson_nll_loss, gaussian_nll_loss, ctc_loss, multilabel_soft_margin_loss, multi_margin_loss,
    triplet_margin_with_distance_loss, multilabel_margin_loss
)

__all__ = [
    "linear", "relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softplus",
    "softmax", "log_softmax", "dropout", "one_hot",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "batch_norm", "layer_norm", "group_norm", "embedding",
    "rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell", "rnn",
    "scaled_dot_product_attention",
    "max_unpool2d", "multi_head_attention_forward",
]


def _softmax_dim(ndim: int) -> int:
    # PyTorch's legacy rule for dim=None (with its deprecation warning)
    warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call to "
                  "include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None, *, axis=None):
    """exp(x) / sum(exp(x)) along `dim` (stable); `dtype` casts the input first (PyTorch's
    signature; `axis` is accepted as an alias of `dim`)."""
    if axis is not None:
        if dim is not None:
            raise TypeError("softmax(): got both dim= and axis= (two names for one argument); pass one of them")
        dim = axis
    if dim is None:
        dim = _softmax_dim(input.ndim)
    return _fused.softmax(input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None, *, axis=None):
    """log(softmax(x)) along `dim`, computed stably as x - logsumexp(x); `dtype` casts the input
    first (PyTorch's signature; `axis` is accepted as an alias of `dim`)."""
    if axis is not None:
        if dim is not None:
            raise TypeError("log_softmax(): got both dim= and axis= (two names for one argument); pass one of them")
        dim = axis
    if dim is None:
        dim = _softmax_dim(input.ndim)
    return _fused.log_softmax(input, dim, dtype)


def softmin(input, dim=None, *, axis=None):  # noqa: A002
    """softmax(-x) along `dim`."""
    return softmax(-input, dim if axis is None else axis)


def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """softmax((logits + g) / tau) with g ~ Gumbel(0, 1) drawn from the device's seeded generator;
    hard: the one-hot of the argmax in the forward pass with the soft gradient (straight-through)."""
    _float_tensor("gumbel_softmax", logits)
    xp = logits.xp
    u = xp.random_uniform(logits.shape, logits.dtype)
    g = _wrap(-xp.log(-xp.log(u + eps) + eps), xp)
    y = softmax((logits + g) * (1.0 / float(tau)), dim)
    if not hard:
        return y
    d = _dim_index("gumbel_softmax", dim, logits.ndim)
    idx = ops.argmax(y.detach(), d, keepdim=True)
    n = logits.shape[d]
    classes = ops.reshape(_creation.arange(n, device=logits.device), tuple(n if i == d else 1 for i in range(logits.ndim)))
    y_hard = ops.astype(classes == idx, logits.dtype)
    return y_hard - y.detach() + y


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


_dropout = dropout   # for functions whose `dropout` argument shadows the function


# --- layers' functional forms: normalisation, embedding, recurrent cells, attention ----------------
def _linear(x, w, b):
    """linear() with the leading dims flattened first: NumPy runs (T, B, I) @ (I, O) as T small
    products, much slower than one (T*B, I) @ (I, O) GEMM."""
    if x.ndim <= 2:
        return ops.linear(x, w, b)
    lead = x.shape[:-1]
    return ops.reshape(ops.linear(ops.reshape(x, (-1, x.shape[-1])), w, b), lead + (w.shape[0],))


def _channel_view(t, ndim):
    """(C,) -> (1, C, 1, ..., 1) to broadcast against an (N, C, *) input."""
    return ops.reshape(t, (1, t.shape[0]) + (1,) * (ndim - 2))


# --- normalisation --------------------------------------------------------------------------------
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,  # noqa: A002
               momentum=0.1, eps=1e-5):
    """Batch normalisation over every dim but the channel dim 1: (N, C, *) -> same shape.

    training: normalise with the batch statistics and, where running_mean/running_var are given,
    update them in place: running = (1 - momentum) running + momentum batch, the variance being
    the unbiased batch variance (as PyTorch). Otherwise normalise with the running statistics.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, *), got shape {input.shape}")
    C = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.shape != (C,):
            raise ValueError(f"batch_norm: {name} has shape {t.shape}, expected ({C},) for input {input.shape}")
    nd = input.ndim
    if training:
        axes = (0,) + tuple(range(2, nd))
        M = input.numel() // C
        if M <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"{input.shape}")
        y, mean, var = _normalize_core(input, axes, eps)
        if running_mean is not None or running_var is not None:
            m = float(momentum)
            xp = input.xp
            with no_grad():
                if running_mean is not None:
                    new = running_mean.array * (1.0 - m) + xp.reshape(mean, (C,)) * m
                    running_mean.copy_(_wrap(xp.astype(new, running_mean.array.dtype), xp))
                if running_var is not None:
                    new = running_var.array * (1.0 - m) + xp.reshape(var, (C,)) * (m * M / (M - 1))
                    running_var.copy_(_wrap(xp.astype(new, running_var.array.dtype), xp))
        if weight is not None:
            y = y * _channel_view(weight, nd)
        if bias is not None:
            y = y + _channel_view(bias, nd)
        return y
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    # eval: one scale and one shift per channel
    scale = ops.rsqrt(running_var + float(eps))
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return input * _channel_view(scale, nd) + _channel_view(shift, nd)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalise over the last len(normalized_shape) dims, then scale by `weight` and shift by
    `bias` (both of normalized_shape)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int(s) for s in normalized_shape)
    k = len(normalized_shape)
    if input.shape[input.ndim - k:] != normalized_shape:
        raise ValueError(f"layer_norm: input shape {input.shape} does not end in normalized_shape {normalized_shape}")
    y, _, _ = _normalize_core(input, tuple(range(input.ndim - k, input.ndim)), eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalise each of `num_groups` channel groups of each sample: (N, C, *) -> same shape,
    then a per-channel scale and shift."""
    N, C = input.shape[0], input.shape[1]
    if C % num_groups:
        raise ValueError(f"group_norm: {C} channels are not divisible by num_groups={num_groups}")
    y, _, _ = _normalize_core(ops.reshape(input, (N, num_groups, -1)), (2,), eps)
    y = ops.reshape(y, input.shape)
    if weight is not None:
        y = y * _channel_view(weight, input.ndim)
    if bias is not None:
        y = y + _channel_view(bias, input.ndim)
    return y


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,  # noqa: A002
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalise each (sample, channel) over its spatial dims: (N, C, *) -> same shape, then a
    per-channel scale and shift. With use_input_stats and running stats given, these are updated in
    place with the batch mean of the per-instance statistics (unbiased variance), as PyTorch;
    without use_input_stats the running statistics normalise."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected input (N, C, *) with spatial dims, got shape {input.shape}")
    nd = input.ndim
    C = input.shape[1]
    axes = tuple(range(2, nd))
    if use_input_stats:
        y, mean, var = _normalize_core(input, axes, eps)
        if running_mean is not None or running_var is not None:
            xp = input.xp
            M = math.prod(input.shape[2:])
            m = float(momentum)
            with no_grad():
                bm = xp.mean(xp.reshape(mean, (input.shape[0], C)), axis=0)
                bv = xp.mean(xp.reshape(var, (input.shape[0], C)), axis=0) * (M / max(M - 1, 1))
                if running_mean is not None:
                    running_mean.copy_(_wrap(xp.astype(running_mean.array * (1 - m) + bm * m,
                                                       running_mean.array.dtype), xp))
                if running_var is not None:
                    running_var.copy_(_wrap(xp.astype(running_var.array * (1 - m) + bv * m,
                                                      running_var.array.dtype), xp))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: running_mean and running_var are needed when use_input_stats=False")
        y = (input - _channel_view(running_mean, nd)) * _channel_view(ops.rsqrt(running_var + float(eps)), nd)
    if weight is not None:
        y = y * _channel_view(weight, nd)
    if bias is not None:
        y = y + _channel_view(bias, nd)
    return y


# --- embedding ------------------------------------------------------------------------------------
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,  # noqa: A002
              sparse=False):
    """Look up rows of `weight` (num_embeddings, dim) by integer ids: (*) -> (*, dim). The
    `padding_idx` row receives no gradient; out-of-range ids raise IndexError."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    return _embedding(input, weight, padding_idx)


# --- recurrent cells ------------------------------------------------------------------------------
def _proj(x, w, b):
    return ops.linear(x, w, b)


def rnn_tanh_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):  # noqa: A002
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh). x (B, I), h (B, H) -> (B, H)."""
    return ops.tanh(_proj(input, w_ih, b_ih) + _proj(hx, w_hh, b_hh))


def rnn_relu_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):  # noqa: A002
    """h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return ops.relu(_proj(input, w_ih, b_ih) + _proj(hx, w_hh, b_hh))


def _lstm_gates(gates, c, H):
    i = ops.sigmoid(gates[:, 0:H])
    f = ops.sigmoid(gates[:, H:2 * H])
    g = ops.tanh(gates[:, 2 * H:3 * H])
    o = ops.sigmoid(gates[:, 3 * H:4 * H])
    c = f * c + i * g
    return o * ops.tanh(c), c


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):  # noqa: A002
    """One LSTM step, gate order (i, f, g, o) as PyTorch: x (B, I), hx = (h, c) each (B, H);
    w_ih (4H, I), w_hh (4H, H). Returns (h', c')."""
    h, c = hx
    return _lstm_gates(_proj(input, w_ih, b_ih) + _proj(h, w_hh, b_hh), c, h.shape[-1])


def _gru_combine(xg, hg, h, H):
    r = ops.sigmoid(xg[:, 0:H] + hg[:, 0:H])
    z = ops.sigmoid(xg[:, H:2 * H] + hg[:, H:2 * H])
    n = ops.tanh(xg[:, 2 * H:3 * H] + r * hg[:, 2 * H:3 * H])
    return n + z * (h - n)          # = (1 - z) n + z h


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):  # noqa: A002
    """One GRU step, gate order (r, z, n) as PyTorch: n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h. x (B, I), h (B, H) -> (B, H)."""
    return _gru_combine(_proj(input, w_ih, b_ih), _proj(hx, w_hh, b_hh), hx, hx.shape[-1])


def rnn(mode, input, hx, weights, num_layers, bias=True, dropout=0.0, training=True,  # noqa: A002
        bidirectional=False, batch_first=False):
    """A multi-layer recurrent network over a sequence (what RNN/LSTM/GRU modules call).

    mode: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU". input (T, B, I) ((B, T, I) if batch_first).
    hx: initial hidden state (L*D, B, H), for LSTM a pair (h0, c0); None for zeros.
    weights: per layer and direction, [w_ih, w_hh, b_ih, b_hh] (or [w_ih, w_hh] without bias),
    ordered layer-major, forward before reverse (PyTorch's _flat_weights order).
    Returns (output (T, B, D*H), h_n) with h_n (L*D, B, H), or (h_n, c_n) for LSTM.
    The input projections of all steps are one matrix product per layer and direction; the
    recurrence itself is the fused primitive `xbp.ops.recurrence.recurrence`.
    """
    D = 2 if bidirectional else 1
    per = 4 if bias else 2
    x = ops.swapaxes(input, 0, 1) if batch_first else input
    T, B = x.shape[0], x.shape[1]
    H = weights[1].shape[1]
    lstm = mode == "LSTM"
    if hx is None:
        z = _wrap(x.xp.zeros((num_layers * D, B, H), dtype=x.array.dtype), x.xp)
        h0, c0 = z, z
    elif lstm:
        h0, c0 = hx
    else:
        h0, c0 = hx, None
    hn, cn = [], []
    for layer in range(num_layers):
        outs_dir = []
        for d in range(D):
            k = layer * D + d
            w = weights[k * per:(k + 1) * per]
            w_ih, w_hh = w[0], w[1]
            b_ih, b_hh = (w[2], w[3]) if bias else (None, None)
            if bias and mode != "GRU":                          # both biases add to the gates
                b_ih, b_hh = b_ih + b_hh, None                  # (GRU's b_hn sits inside r * (...))
            xs = _linear(x, w_ih, b_ih)                         # (T, B, G*H), one GEMM
            y = recurrence(mode, xs, h0[k], c0[k] if lstm else None, w_hh, b_hh, reverse=d == 1)
            last = 0 if d == 1 else T - 1                       # the step each direction ends on
            outs_dir.append(y[..., 0:H] if lstm else y)
            hn.append(y[last, :, 0:H] if lstm else y[last])
            if lstm:
                cn.append(y[last, :, H:2 * H])
        x = outs_dir[0] if D == 1 else ops.cat(outs_dir, 2)
        if dropout and training and layer < num_layers - 1:
            x = _dropout(x, dropout, True)
    out = ops.swapaxes(x, 0, 1) if batch_first else x
    h_n = ops.stack(hn, 0)
    return (out, (h_n, ops.stack(cn, 0))) if lstm else (out, h_n)


# --- attention ------------------------------------------------------------------------------------
def _additive_mask(mask, dtype_like, allowed_when_true):
    """A bool mask -> an additive float mask (0 or -inf); a float mask is returned as is.
    allowed_when_true: SDPA's convention (True = may attend); MHA's masks say True = masked."""
    if mask is None:
        return None
    if mask.dtype.kind == "b":
        xp = mask.xp
        blocked = xp.logical_not(mask.array) if allowed_when_true else mask.array
        zero = xp.zeros((), dtype=dtype_like.array.dtype)
        return _wrap(xp.where(blocked, xp.full((), -math.inf, dtype=dtype_like.array.dtype), zero), xp)
    return mask


def _causal_mask(L, S, like):
    xp = like.xp
    i = xp.reshape(xp.arange(0, L), (L, 1))
    j = xp.reshape(xp.arange(0, S), (1, S))
    neg = xp.full((), -math.inf, dtype=like.array.dtype)
    return _wrap(xp.where(j > i, neg, xp.zeros((), dtype=like.array.dtype)), xp)


def _attention(q, k, v, mask, dropout_p, training, scale):
    """softmax(q k^T * scale + mask) (dropped out) @ v; returns (output, weights)."""
    scores = ops.matmul(q * scale, ops.swapaxes(k, -1, -2))
    dead = None
    if mask is not None:
        scores = scores + mask
        # a query row whose every key is masked: PyTorch 2.13 returns zeros for it (and finite
        # gradients), where softmax over all -inf would give NaN
        dead = ops.amax(scores.detach(), -1, keepdim=True) == -math.inf
        scores = ops.where(dead, 0.0, scores)
    w = ops.softmax(scores, -1)
    if dead is not None:
        w = ops.where(dead, 0.0, w)
    if dropout_p > 0.0 and training:
        w = dropout(w, dropout_p, True)
    return ops.matmul(w, v), w


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,  # noqa: A002
                                 scale=None, enable_gqa=False):
    """softmax(Q K^T / sqrt(E) + mask) V.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). attn_mask: bool (True =
    may attend, as PyTorch's SDPA) or a float mask added to the scores, broadcastable to (..., L, S).
    is_causal: position i attends to j <= i (top-left aligned). scale defaults to 1/sqrt(E).
    Dropout (probability dropout_p) is applied to the attention weights. enable_gqa: key and
    value may have fewer heads (dim -3) than query, a divisor of its count (grouped-query).
    """
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        # grouped-query attention: each of the key/value heads serves Hq / Hkv query heads
        hq, hk = query.shape[-3], key.shape[-3]
        if hk == 0 or hq % hk or value.shape[-3] != hk:
            raise ValueError(f"scaled_dot_product_attention: with enable_gqa the query heads ({hq}) must be a "
                             f"multiple of the key/value heads ({hk}, {value.shape[-3]})")
        key = ops.repeat_interleave(key, hq // hk, key.ndim - 3)
        value = ops.repeat_interleave(value, hq // hk, value.ndim - 3)
    L, S, E = query.shape[-2], key.shape[-2], query.shape[-1]
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    mask = _causal_mask(L, S, query) if is_causal else _additive_mask(attn_mask, query, True)
    s = 1.0 / math.sqrt(E) if scale is None else float(scale)
    out, _ = _attention(query, key, value, mask, float(dropout_p), True, s)
    return out


# --- multi-head attention with PyTorch's full functional signature (what MultiheadAttention calls)
def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,  # noqa: C901
                                 in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight,
                                 out_proj_bias, training=True, key_padding_mask=None, need_weights=True,
                                 attn_mask=None, use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None, static_v=None,
                                 average_attn_weights=True, is_causal=False):
    """Multi-head attention with PyTorch's full functional signature (what MultiheadAttention calls).

    query (L, N, E), key (S, N, kdim), value (S, N, vdim) (or unbatched (L, E), ...). Projections:
    in_proj_weight (3E, E) packing W_q, W_k, W_v, or with use_separate_proj_weight q_proj_weight
    (E, E), k_proj_weight (E, kdim), v_proj_weight (E, vdim); in_proj_bias (3E,) either way.
    bias_k, bias_v (1, 1, E): one more key/value row appended to every sequence after projection;
    add_zero_attn: one more all-zero key/value row appended after the head split. Each added key
    is a new mask column that may be attended (PyTorch pads the masks with zeros).
    key_padding_mask (N, S): True (or -inf) marks keys to ignore; attn_mask (L, S) or
    (N*num_heads, L, S): True marks pairs that may NOT attend, or a float mask to add; is_causal
    without attn_mask: position i attends to j <= i. Returns (output (L, N, E), weights (N, L, S')
    averaged over heads, or (N, num_heads, L, S'), or None without need_weights), S' counting the
    added keys.
    """
    if static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: static_k and static_v are not supported")
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = (ops.unsqueeze(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = ops.unsqueeze(key_padding_mask, 0)
    L, N, E = query.shape
    S = key.shape[0]
    if E != embed_dim_to_check:
        raise ValueError(f"multi_head_attention_forward: query has {E} features, expected embed_dim "
                         f"{embed_dim_to_check}")
    if E % num_heads:
        raise ValueError(f"multi_head_attention_forward: embed_dim {E} is not divisible by num_heads {num_heads}")
    if (bias_k is None) != (bias_v is None):
        raise ValueError("multi_head_attention_forward: pass both bias_k and bias_v, or neither")
    hd = E // num_heads
    b = in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else (b[0:E], b[E:2 * E], b[2 * E:3 * E])
    if use_separate_proj_weight:
        q = _linear(query, q_proj_weight, bq)
        k = _linear(key, k_proj_weight, bk)
        v = _linear(value, v_proj_weight, bv)
    elif key is query and value is query:        # self-attention: one projection GEMM
        qkv = _linear(query, in_proj_weight, in_proj_bias)
        q, k, v = qkv[..., 0:E], qkv[..., E:2 * E], qkv[..., 2 * E:3 * E]
    else:
        q = _linear(query, in_proj_weight[0:E], bq)
        k = _linear(key, in_proj_weight[E:2 * E], bk)
        v = _linear(value, in_proj_weight[2 * E:3 * E], bv)

    # masks as additive float tensors: attn (L, S) or (N, heads, L, S), key padding (N, S)
    am = None
    if attn_mask is not None:
        am = _additive_mask(attn_mask, q, False)
        if am.ndim == 3:                         # (N*heads, L, S)
            am = ops.reshape(am, (N, num_heads, L, S))
    elif is_causal:
        am = _causal_mask(L, S, q)
    kpm = None if key_padding_mask is None else _additive_mask(key_padding_mask, q, False)

    def extra_key(m):                            # one more key: a zero column (it may be attended)
        if m is None:
            return None
        return ops.cat([m, _creation.zeros(*m.shape[:-1], 1, dtype=m.dtype, device=m.device)], -1)

    if bias_k is not None:
        k = ops.cat([k, ops.broadcast_to(bias_k, (1, N, E))], 0)
        v = ops.cat([v, ops.broadcast_to(bias_v, (1, N, E))], 0)
        am, kpm = extra_key(am), extra_key(kpm)

    def heads(t):        # (n, N, E) -> (N, heads, n, hd)
        return ops.permute(ops.reshape(t, (t.shape[0], N, num_heads, hd)), (1, 2, 0, 3))

    q, k, v = heads(q), heads(k), heads(v)
    if add_zero_attn:
        z = _creation.zeros(N, num_heads, 1, hd, dtype=k.dtype, device=k.device)
        k, v = ops.cat([k, z], 2), ops.cat([v, z], 2)
        am, kpm = extra_key(am), extra_key(kpm)
    S = k.shape[2]
    mask = am
    if kpm is not None:
        kpm = ops.reshape(kpm, (N, 1, 1, S))
        mask = kpm if mask is None else mask + kpm
    out, w = _attention(q, k, v, mask, float(dropout_p), training, 1.0 / math.sqrt(hd))
    out = ops.reshape(ops.permute(out, (2, 0, 1, 3)), (L, N, E))
    out = _linear(out, out_proj_weight, out_proj_bias)
    weights = None
    if need_weights:
        weights = ops.mean(w, 1) if average_attn_weights else w
        if unbatched:
            weights = weights[0, ...]
    if unbatched:
        out = out[:, 0, ...]
    return out, weights


__all__ += [
    "relu6", "hardtanh", "hardswish", "hardsigmoid", "mish", "glu", "softsign", "threshold",
    "prelu", "selu", "celu", "logsigmoid", "tanhshrink", "softshrink", "hardshrink", "softmin",
    "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "instance_norm", "local_response_norm",
    "normalize", "cosine_similarity", "pairwise_distance", "pdist", "pad", "interpolate",
    "upsample", "pixel_shuffle", "pixel_unshuffle", "unfold", "fold", "bilinear", "conv3d",
    "conv_transpose1d", "max_pool1d", "max_pool3d", "avg_pool1d", "adaptive_avg_pool1d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "grid_sample", "affine_grid", "cosine_embedding_loss", "margin_ranking_loss",
    "triplet_margin_loss", "hinge_embedding_loss", "soft_margin_loss", "poisson_nll_loss",
    "gaussian_nll_loss", "ctc_loss", "rms_norm", "avg_pool3d", "lp_pool1d", "lp_pool2d", "channel_shuffle", "rrelu",
    "multilabel_soft_margin_loss", "multi_margin_loss", "triplet_margin_with_distance_loss", "adaptive_avg_pool3d",
    "adaptive_max_pool3d", "conv_transpose3d", "embedding_bag", "gumbel_softmax", "multilabel_margin_loss",
    "max_unpool1d",
]
