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


def emit_mha(b, m, x: str, xt, path: str, masks=None):
    """Self-attention of `m` on value `x` (example `xt`: (L, N, E), (N, L, E) if batch_first, or
    unbatched (L, E)); returns (name, example output) with the input's layout. `masks`: see
    `_Masks`."""
    masks = masks or _Masks()
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
    yt = m(xt, xt, xt, need_weights=False, **masks.mha_kwargs())[0]
    return _mha_nodes(b, m, x, xt, path, masks), yt


def _mha_nodes(b, m, x, xt, path, masks):
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
    scores = b.node("MatMul", [q, k])                  # (N, H, L, S)
    mask = _additive_mask(b, masks, scores, H, dtype, path)
    if mask is None:
        w = b.node("Softmax", [scores], axis=-1)
    else:
        # a query row whose every key is masked gets zero weights (xbp and PyTorch 2.13), where
        # softmax over all -inf would give NaN
        scores = b.node("Add", [scores, mask])
        if b.opset >= 18:
            top = b.node("ReduceMax", [scores, b.const("axes", np.array([-1], np.int64))], keepdims=1)
        else:
            top = b.node("ReduceMax", [scores], axes=[-1], keepdims=1)
        dead = b.node("IsInf", [top], detect_positive=0)
        zero = b.const("zero", np.asarray(0.0, dtype))
        scores = b.node("Where", [dead, zero, scores])
        w = b.node("Where", [dead, zero, b.node("Softmax", [scores], axis=-1)])
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


class _Masks:
    """The masks of an exported attention call: attn_mask / key_padding_mask as (graph input name,
    example tensor) or None; is_causal (used only without attn_mask, as xbp's layers do)."""

    def __init__(self, attn_mask=None, key_padding_mask=None, is_causal=False):
        self.attn_mask, self.key_padding_mask, self.is_causal = attn_mask, key_padding_mask, bool(is_causal)

    def mha_kwargs(self):
        return dict(attn_mask=None if self.attn_mask is None else self.attn_mask[1],
                    key_padding_mask=None if self.key_padding_mask is None else self.key_padding_mask[1],
                    is_causal=self.is_causal and self.attn_mask is None)


def _to_additive(b, name, t, dtype):
    """A bool mask (True = masked) -> 0 / -inf in the scores' dtype; a float mask as it is."""
    if np.dtype(t.dtype) == np.bool_:
        return b.node("Where", [name, b.const("neg_inf", np.asarray(-np.inf, dtype)),
                                b.const("zero", np.asarray(0.0, dtype))])
    if np.dtype(t.dtype) != dtype:
        raise TypeError(f"xbp.onnx.export: a float attention mask must have the model's dtype {dtype}, got "
                        f"{np.dtype(t.dtype)}")
    return name


def _additive_mask(b, masks, scores, H, dtype, path):
    """The float mask to add to scores (N, H, L, S), or None."""
    where = path or "the model"
    out = None
    if masks.attn_mask is not None:
        name, t = masks.attn_mask
        out = _to_additive(b, name, t, dtype)
        if t.ndim == 3:                                 # (N * H, L, S) -> (N, H, L, S)
            # via (1, N * H, L, S), so Reshape's 0s copy L and S whatever they are at run time
            out = b.node("Unsqueeze", [out, b.const("axes", np.array([0], np.int64))])
            out = b.node("Reshape", [out, b.const("shape", np.array([-1, H, 0, 0], np.int64))])
        elif t.ndim != 2:
            raise ValueError(f"xbp.onnx.export: attn_mask for {where} must be (L, S) or (N*num_heads, L, S), got "
                             f"shape {tuple(t.shape)}")
    elif masks.is_causal:                              # -inf above the diagonal, built for any length
        if b.opset < 14:
            raise ValueError(f"xbp.onnx.export: is_causal at {where} needs opset_version >= 14 (Trilu)")
        ls = b.node("Slice", [b.node("Shape", [scores]), b.const("start", np.array([2], np.int64)),
                              b.const("end", np.array([4], np.int64))])
        full = b.name("neg_inf_full")
        b.nodes.append(b.onnx.helper.make_node(
            "ConstantOfShape", [ls], [full],
            value=b.onnx.numpy_helper.from_array(np.array([-np.inf], dtype))))
        out = b.node("Trilu", [full, b.const("k", np.array(1, np.int64))], upper=1)
    if masks.key_padding_mask is not None:
        name, t = masks.key_padding_mask
        if t.ndim not in (1, 2):
            raise ValueError(f"xbp.onnx.export: key_padding_mask for {where} must be (N, S) or (S,), got shape "
                             f"{tuple(t.shape)}")
        shape = [0, 1, 1, -1] if t.ndim == 2 else [1, 1, 1, -1]
        kpm = b.node("Reshape", [_to_additive(b, name, t, dtype), b.const("shape", np.array(shape, np.int64))])
        out = kpm if out is None else b.node("Add", [out, kpm])
    return out


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


def emit_encoder_layer(b, m, x: str, xt, path: str, emit, masks=None):
    """TransformerEncoderLayer as its forward (dropouts are identities in eval mode): post-norm
    norm2(h + ff(h)), h = norm1(x + sa(x)); norm_first h = x + sa(norm1 x), then h + ff(norm2 h).
    `masks` (a `_Masks`) go to its self-attention."""
    if xt.ndim not in (2, 3):
        raise ValueError(f"xbp.onnx.export: TransformerEncoderLayer at {path or 'the model'} takes (S, E) or 3-d "
                         f"input, got shape {tuple(xt.shape)}")
    masks = masks or _Masks()
    kw = masks.mha_kwargs()
    yt = m(xt, src_mask=kw["attn_mask"], src_key_padding_mask=kw["key_padding_mask"], is_causal=masks.is_causal)
    p = (path + ".") if path else ""

    def sa(v, vt):                                      # dropout1 is the identity in eval mode
        return (_mha_nodes(b, m.self_attn, v, vt, p + "self_attn", masks),
                m.self_attn(vt, vt, vt, need_weights=False, **kw)[0])

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


def emit_encoder(b, m, x: str, xt, path: str, emit, masks=None):
    """TransformerEncoder: its layers in turn (each with the same masks), then `norm` if it has one."""
    masks = masks or _Masks()
    kw = masks.mha_kwargs()
    yt = m(xt, mask=kw["attn_mask"], src_key_padding_mask=kw["key_padding_mask"], is_causal=masks.is_causal)
    p = (path + ".") if path else ""
    from .nn import TransformerEncoderLayer
    for i, layer in enumerate(m.layers):
        if type(layer) is not TransformerEncoderLayer:
            x, xt = emit(b, layer, x, xt, f"{p}layers.{i}")      # refused by name unless it is known
        else:
            x, xt = emit_encoder_layer(b, layer, x, xt, f"{p}layers.{i}", emit, masks)
    if m.norm is not None:
        x, xt = emit(b, m.norm, x, xt, p + "norm")
    return x, yt


# the keyword arguments each attention module's export takes (args = (x, {keyword: value})), and
# the _Masks field each one fills
MASK_KEYWORDS = {
    "MultiheadAttention": {"attn_mask": "attn_mask", "key_padding_mask": "key_padding_mask",
                           "is_causal": "is_causal", "need_weights": None},
    "TransformerEncoderLayer": {"src_mask": "attn_mask", "src_key_padding_mask": "key_padding_mask",
                                "is_causal": "is_causal"},
    "TransformerEncoder": {"mask": "attn_mask", "src_key_padding_mask": "key_padding_mask", "is_causal": "is_causal"},
}


def emit_with_masks(b, m, x, xt, kwargs, mask_names, emit):
    """Top-level attention module `m` called with keyword arguments `kwargs` (masks as Tensors,
    which become graph inputs named by `mask_names[keyword]`). Returns (name, example output)."""
    from ._tensor import Tensor
    kind = type(m).__name__
    allowed = MASK_KEYWORDS[kind]
    fields = {}
    for key, value in kwargs.items():
        if key not in allowed:
            raise TypeError(f"xbp.onnx.export: {kind} takes the keyword arguments {sorted(allowed)} in args' dict, "
                            f"got {key!r}")
        if key == "need_weights":
            if value:
                raise NotImplementedError("xbp.onnx.export: MultiheadAttention is exported with need_weights=False "
                                          "(the attention output only); drop need_weights=True")
            continue
        if key == "is_causal":
            if value not in (None, False, True):
                raise TypeError(f"xbp.onnx.export: is_causal must be a bool, got {value!r}")
            fields["is_causal"] = bool(value)
            continue
        if value is None:
            continue
        if not isinstance(value, Tensor):
            raise TypeError(f"xbp.onnx.export: {key} must be a Tensor (it becomes a graph input), got "
                            f"{type(value).__name__}")
        fields[allowed[key]] = (mask_names[key], value)
    masks = _Masks(**fields)
    if kind == "MultiheadAttention":
        return emit_mha(b, m, x, xt, "", masks)
    if kind == "TransformerEncoderLayer":
        return emit_encoder_layer(b, m, x, xt, "", emit, masks)
    return emit_encoder(b, m, x, xt, "", emit, masks)
