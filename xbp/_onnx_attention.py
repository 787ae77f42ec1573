"""ONNX emitters for xbp.onnx.export's attention layers: MultiheadAttention (the self-attention
call ``m(x, x, x, need_weights=False)[0]``), TransformerEncoderLayer and TransformerEncoder, in
standard ONNX ops (MatMul, Add, Mul, Reshape, Transpose, Softmax, LayerNormalization, Erf).

Every reshape copies the batch and sequence dims from the input (Reshape's 0), so the file runs on
other batch sizes and sequence lengths when dynamic_axes says so."""
from __future__ import annotations

import math

import numpy as np


def _np(t):
    return t.detach().numpy()


def emit_mha(b, m, x: str, xt, path: str):
    """Self-attention of `m` on value `x` (example `xt`: (L, N, E), (N, L, E) if batch_first, or
    unbatched (L, E)); returns (name, example output) with the input's layout."""
    where = path or "the model"
    if m.bias_k is not None:
        raise NotImplementedError(f"xbp.onnx.export: MultiheadAttention(add_bias_kv=True) at {where} is not "
                                  "exported (a learned key/value row appended per sequence)")
    if m.add_zero_attn:
        raise NotImplementedError(f"xbp.onnx.export: MultiheadAttention(add_zero_attn=True) at {where} is not "
                                  "exported")
    if xt.ndim not in (2, 3):
        raise ValueError(f"xbp.onnx.export: MultiheadAttention at {where} takes (L, E) or 3-d input, got shape "
                         f"{tuple(xt.shape)}")
    yt = m(xt, xt, xt, need_weights=False)[0]
    return _mha_nodes(b, m, x, xt, path), yt


def _mha_nodes(b, m, x, xt, path):
    dtype = np.dtype(xt.dtype)
    E, H, hd = m.embed_dim, m.num_heads, m.head_dim
    if xt.ndim == 2:                                   # unbatched (L, E): a batch of one
        h = b.node("Unsqueeze", [x, b.const("axes", np.array([0], np.int64))])
    elif m.batch_first:
        h = x
    else:                                              # (L, N, E) -> (N, L, E)
        h = b.node("Transpose", [x], perm=[1, 0, 2])
    if m._qkv_same_embed_dim:
        W = _np(m.in_proj_weight)
        Ws = [W[0:E], W[E:2 * E], W[2 * E:3 * E]]
    else:
        Ws = [_np(m.q_proj_weight), _np(m.k_proj_weight), _np(m.v_proj_weight)]
    bias = None if m.in_proj_bias is None else _np(m.in_proj_bias)
    split = b.const("shape", np.array([0, 0, H, hd], np.int64))
    qkv = []
    for i, (n, W_i) in enumerate(zip("qkv", Ws)):
        p = b.node("MatMul", [h, b.const(f"{path}.{n}_proj_weight_t", W_i.T)])
        if bias is not None:
            p = b.node("Add", [p, b.const(f"{path}.{n}_proj_bias", bias[i * E:(i + 1) * E])])
        p = b.node("Reshape", [p, split])              # (N, L, H, hd)
        # q, v -> (N, H, L, hd); k -> (N, H, hd, L), ready for q @ k^T
        qkv.append(b.node("Transpose", [p], perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3]))
    q, k, v = qkv
    # xbp (and PyTorch) scale q before the product; the same order keeps the rounding alike
    q = b.node("Mul", [q, b.const("scale", np.asarray(1.0 / math.sqrt(hd), dtype))])
    w = b.node("Softmax", [b.node("MatMul", [q, k])], axis=-1)
    o = b.node("Transpose", [b.node("MatMul", [w, v])], perm=[0, 2, 1, 3])        # (N, L, H, hd)
    o = b.node("Reshape", [o, b.const("shape", np.array([0, 0, E], np.int64))])
    o = b.node("MatMul", [o, b.const(f"{path}.out_proj.weight_t", _np(m.out_proj.weight).T)])
    if m.out_proj.bias is not None:
        o = b.node("Add", [o, b.const(f"{path}.out_proj.bias", _np(m.out_proj.bias))])
    if xt.ndim == 2:
        return b.node("Squeeze", [o, b.const("axes", np.array([0], np.int64))])
    if m.batch_first:
        return o
    return b.node("Transpose", [o], perm=[1, 0, 2])


def _activation(b, m, x, xt, path, emit):
    from .nn import Module
    from .nn import functional as F
    where = path or "the model"
    act = m.activation
    if act is F.relu:
        return b.node("Relu", [x])
    if act is F.gelu:                                   # exact: 0.5 x (1 + erf(x / sqrt 2))
        dtype = np.dtype(xt.dtype)
        e = b.node("Erf", [b.node("Div", [x, b.const("sqrt2", np.asarray(math.sqrt(2.0), dtype))])])
        return b.node("Mul", [b.node("Mul", [x, b.const("half", np.asarray(0.5, dtype))]),
                              b.node("Add", [e, b.const("one", np.asarray(1.0, dtype))])])
    if isinstance(act, Module):
        return emit(b, act, x, xt, f"{path}.activation")[0]
    raise NotImplementedError(f"xbp.onnx.export: TransformerEncoderLayer at {where} has activation {act!r}; "
                              "the exporter knows 'relu', 'gelu' and the activation modules it exports")


def emit_encoder_layer(b, m, x: str, xt, path: str, emit):
    """TransformerEncoderLayer without masks, as its forward: post-norm
    norm2(h + ff(h)), h = norm1(x + sa(x)); norm_first x + sa(norm1 x), then + ff(norm2 .)."""
    if xt.ndim not in (2, 3):
        raise ValueError(f"xbp.onnx.export: TransformerEncoderLayer at {path or 'the model'} takes (S, E) or 3-d "
                         f"input, got shape {tuple(xt.shape)}")
    yt = m(xt)
    p = (path + ".") if path else ""

    def sa(v, vt):                                      # dropout1 is the identity in eval mode
        return _mha_nodes(b, m.self_attn, v, vt, p + "self_attn"), m.self_attn(vt, vt, vt, need_weights=False)[0]

    def ff(v, vt):
        h, ht = emit(b, m.linear1, v, vt, p + "linear1")
        a = _activation(b, m, h, ht, path, emit)
        return emit(b, m.linear2, a, m.activation(ht), p + "linear2")

    def add(u, ut, v, vt):
        return b.node("Add", [u, v]), ut + vt

    if m.norm_first:
        n, nt = emit(b, m.norm1, x, xt, p + "norm1")
        h, ht = add(x, xt, *sa(n, nt))
        n, nt = emit(b, m.norm2, h, ht, p + "norm2")
        y, _ = add(h, ht, *ff(n, nt))
    else:
        h, ht = emit(b, m.norm1, *add(x, xt, *sa(x, xt)), p + "norm1")
        y, _ = emit(b, m.norm2, *add(h, ht, *ff(h, ht)), p + "norm2")
    return y, yt


def emit_encoder(b, m, x: str, xt, path: str, emit):
    """TransformerEncoder without a mask: its layers in turn, then `norm` if it has one."""
    yt = m(xt)
    p = (path + ".") if path else ""
    for i, layer in enumerate(m.layers):
        x, xt = emit(b, layer, x, xt, f"{p}layers.{i}")
    if m.norm is not None:
        x, xt = emit(b, m.norm, x, xt, p + "norm")
    return x, yt
