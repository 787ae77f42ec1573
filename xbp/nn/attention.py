"""Attention layers: MultiheadAttention and TransformerEncoderLayer, with PyTorch's parameter and
submodule names (in_proj_weight or q/k/v_proj_weight, in_proj_bias, bias_k, bias_v,
out_proj.weight, out_proj.bias; self_attn, linear1, dropout, linear2, norm1, norm2, dropout1,
dropout2), so PyTorch state dicts load. The maths is `xbp.nn.functional.multi_head_attention_forward`
(PyTorch's full functional signature: kdim/vdim projections, bias_k/bias_v, add_zero_attn)."""
from __future__ import annotations

from .. import _creation, ops
from . import functional as F
from . import init
from .layers import Dropout, Linear
from ..ops._util import check_size
from .module import Module
from .norm import LayerNorm
from .parameter import Parameter

__all__ = ["MultiheadAttention", "TransformerEncoderLayer"]


class MultiheadAttention(Module):
    """Multi-head attention: softmax(Q K^T / sqrt(head_dim) + mask) V per head, then out_proj.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, weights or None). Shapes: query
    (L, N, E), key (S, N, kdim), value (S, N, vdim) ((N, L, E)... if batch_first); weights (N, L, S)
    averaged over heads. key_padding_mask (N, S) and attn_mask (L, S) / (N*num_heads, L, S): True
    marks what may NOT be attended (or float masks that are added).

    Parameters as PyTorch: in_proj_weight (3E, E) when kdim == vdim == E (`_qkv_same_embed_dim`),
    else q_proj_weight (E, E), k_proj_weight (E, kdim), v_proj_weight (E, vdim); in_proj_bias (3E,);
    out_proj; with add_bias_kv, bias_k and bias_v (1, 1, E), a learned key/value appended to every
    sequence; add_zero_attn appends a zero key/value (so weights have S + 1 or S + 2 columns).
    Initialised as PyTorch: projection weights xavier_uniform, biases zero, bias_k/v xavier_normal.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        self.embed_dim = check_size("MultiheadAttention", embed_dim, "embed_dim")
        self.num_heads = check_size("MultiheadAttention", num_heads, "num_heads")
        self.dropout = float(dropout)
        self.kdim = check_size("MultiheadAttention", kdim, "kdim") if kdim is not None else self.embed_dim
        self.vdim = check_size("MultiheadAttention", vdim, "vdim") if vdim is not None else self.embed_dim
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.head_dim = self.embed_dim // self.num_heads
        self.batch_first = batch_first
        E = self.embed_dim
        kw = dict(device=device, dtype=dtype)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(_creation.empty(3 * E, E, **kw))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.q_proj_weight = Parameter(_creation.empty(E, E, **kw))
            self.k_proj_weight = Parameter(_creation.empty(E, self.kdim, **kw))
            self.v_proj_weight = Parameter(_creation.empty(E, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(_creation.empty(3 * E, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = Parameter(_creation.empty(1, 1, E, **kw))
            self.bias_v = Parameter(_creation.empty(1, 1, E, **kw))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """Attention of `query` over `key` / `value`: (L, N, E) inputs ((N, L, E) with ``batch_first``,
        (L, E) unbatched). Returns (output of the query's shape, weights), the weights averaged over
        heads unless ``average_attn_weights=False`` and None unless `need_weights`. Masks as in
        `xbp.nn.functional.multi_head_attention_forward`."""
        for name, t, want in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != want:
                raise ValueError(f"MultiheadAttention: {name} has {t.shape[-1]} features, expected {want} "
                                 f"(embed_dim={self.embed_dim}, kdim={self.kdim}, vdim={self.vdim})")
        batched = query.ndim == 3
        if self.batch_first and batched:
            same_kv = key is value
            same = query is key and same_kv
            query = ops.swapaxes(query, 0, 1)
            key = query if same else ops.swapaxes(key, 0, 1)
            value = key if same_kv else ops.swapaxes(value, 0, 1)
        out, w = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        if self.batch_first and batched:
            out = ops.swapaxes(out, 0, 1)
        return out, w

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
        if not self._qkv_same_embed_dim:
            s += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.bias_k is not None:
            s += ", add_bias_kv=True"
        if self.add_zero_attn:
            s += ", add_zero_attn=True"
        return s


def _activation(name):
    if callable(name):
        return name
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, got {name!r}")


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with dropout, a residual connection and
    LayerNorm (after the residual by default; before each block when norm_first), as PyTorch.
    src (S, N, d_model) ((N, S, d_model) if batch_first) -> same shape."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)
        self.batch_first = batch_first

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """Self-attention then feed-forward, each with a residual connection and layer norm (the norms
        first with ``norm_first``). `src`: (S, N, E) ((N, S, E) with ``batch_first``); same shape out."""
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal and attn_mask is None)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
