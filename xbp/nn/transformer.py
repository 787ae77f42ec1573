"""The encoder-decoder Transformer of "Attention Is All You Need", with PyTorch's classes, arguments
and state-dict layout: Transformer (encoder.layers.0.self_attn.in_proj_weight, ..., encoder.norm,
decoder.layers.0.multihead_attn..., decoder.norm), TransformerEncoder, TransformerDecoder and
TransformerDecoderLayer (TransformerEncoderLayer and MultiheadAttention live in attention.py).
The layers compose MultiheadAttention, Linear, Dropout and LayerNorm; no maths of their own."""
from __future__ import annotations

import copy

import numpy as np

from .. import _creation
from . import init
from .attention import MultiheadAttention, TransformerEncoderLayer, _activation
from .layers import Dropout, Linear, ModuleList
from .module import Module
from .norm import LayerNorm

__all__ = ["Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerDecoderLayer",
           "TransformerEncoderLayer"]


def _clones(module, n):
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"num_layers must be a non-negative int, got {n!r}")
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _square_subsequent_mask(sz, device=None, dtype=None):
    sz = int(sz)
    i = np.arange(sz)
    m = np.where(i[None, :] > i[:, None], -np.inf, 0.0).astype(np.dtype(dtype) if dtype is not None else np.float32)
    return _creation.tensor(m, device=device)


def _seq_len(x, batch_first):
    if x.ndim == 2:          # unbatched (S, E)
        return x.shape[0]
    return x.shape[1] if batch_first else x.shape[0]


def _detect_is_causal_mask(mask, is_causal, size):
    """PyTorch's rule: is_causal=None means "True when mask is exactly the causal mask"."""
    if is_causal is True:
        return True
    if is_causal is None and mask is not None:
        want = _square_subsequent_mask(size, device=mask.device, dtype=mask.dtype if mask.dtype.kind == "f" else None)
        if tuple(mask.shape) == tuple(want.shape) and mask.dtype.kind == "f":
            return bool(np.array_equal(mask.detach().numpy(), want.numpy()))
    return False


class TransformerEncoder(Module):
    """A stack of `num_layers` deep copies of `encoder_layer`, then `norm` if given.

    forward(src, mask=None, src_key_padding_mask=None, is_causal=None): src (S, N, E) ((N, S, E) when
    the layers are batch_first, (S, E) unbatched) -> same shape. mask (S, S) or (N*nhead, S, S);
    src_key_padding_mask (N, S), True = padding. is_causal=None detects a causal `mask`.
    enable_nested_tensor and mask_check are accepted for PyTorch compatibility (no nested tensors:
    padded positions are computed like the others)."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """`src` through every layer in turn (then `norm`, if any); the masks are passed to each layer.
        A square causal `mask` is detected and passed on as ``is_causal``."""
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) else False
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, batch_first))
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        if self.norm is not None:
            out = self.norm(out)
        return out


class TransformerDecoderLayer(Module):
    """Masked self-attention, attention over the encoder's `memory`, then a feed-forward block;
    each with dropout, a residual connection and LayerNorm (after the residual, or before each
    block when norm_first), as PyTorch.

    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False): tgt (T, N, E),
    memory (S, N, E) ((N, T, E), (N, S, E) if batch_first) -> (T, N, E). tgt_mask (T, T),
    memory_mask (T, S); key padding masks (N, T) / (N, S), True = padding."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                                 **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        """Self-attention on `tgt`, attention over `memory`, then feed-forward, each with a residual
        connection and layer norm (the norms first with ``norm_first``); same shape as `tgt`."""
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=bool(is_causal) and attn_mask is None)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=bool(is_causal) and attn_mask is None)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoder(Module):
    """A stack of `num_layers` deep copies of `decoder_layer`, then `norm` if given.
    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False) -> tgt's shape."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        """`tgt` through every layer in turn with `memory` (then `norm`, if any); the masks are passed to
        each layer."""
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) else False
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, _seq_len(tgt, batch_first))
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


class Transformer(Module):
    """Encoder-decoder Transformer: ``decoder(tgt, encoder(src))``.

    forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
    memory_is_causal=False): src (S, N, E), tgt (T, N, E) ((N, S, E), (N, T, E) if batch_first;
    unbatched (S, E), (T, E)) -> (T, N, E). E = d_model. Masks as TransformerEncoder/Decoder.
    Every parameter with more than one dim is re-initialised xavier_uniform, as PyTorch."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, **kw)
            self.encoder = TransformerEncoder(layer, num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, **kw)
            self.decoder = TransformerDecoder(layer, num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        """Encodes `src` and decodes `tgt` against the result: (S, N, E) and (T, N, E) ((N, *, E) with
        ``batch_first``) -> (T, N, E). The batch sizes must agree and E must be d_model
        (RuntimeError otherwise). Masks as in TransformerEncoder and TransformerDecoder."""
        batched = src.ndim == 3
        if batched:
            bs, bt = (src.shape[0], tgt.shape[0]) if self.batch_first else (src.shape[1], tgt.shape[1])
            if bs != bt:
                raise RuntimeError(f"Transformer: the batch number of src ({bs}) and tgt ({bt}) must be equal "
                                   f"(batch_first={self.batch_first}; shapes {src.shape} and {tgt.shape})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError(f"Transformer: the feature number of src ({src.shape[-1]}) and tgt ({tgt.shape[-1]}) "
                               f"must be equal to d_model ({self.d_model})")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) float mask: -inf above the diagonal (position i may not see j > i), 0 elsewhere."""
        return _square_subsequent_mask(sz, device=device, dtype=dtype)
