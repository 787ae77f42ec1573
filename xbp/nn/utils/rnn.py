"""``torch.nn.utils.rnn``: padding and packing variable-length sequences.

A PackedSequence holds the steps of a batch of sequences, sorted longest first, interleaved time-
major: ``data`` (sum of lengths, *) lists step 0 of every sequence, then step 1 of those at least
2 long, and so on; ``batch_sizes`` (T,) says how many sequences are alive at each step (an int64
tensor on the CPU, as PyTorch); ``sorted_indices`` maps sorted position -> original batch index and
``unsorted_indices`` back (None when the input was already sorted). The index maps depend on the
lengths only, so they are computed on the host and applied with index_select (differentiable: the
gradient of padding/packing is the matching scatter).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ... import _creation, ops
from ..._tensor import Tensor

__all__ = ["PackedSequence", "pad_sequence", "unpad_sequence", "pack_padded_sequence", "pad_packed_sequence",
           "pack_sequence", "unpack_sequence", "invert_permutation"]


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """(data, batch_sizes, sorted_indices, unsorted_indices); see the module notes. Build it with
    pack_padded_sequence or pack_sequence, not directly."""
    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = invert_permutation(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs) -> "PackedSequence":
        """Move/cast `data` (and the index tensors to data's device; batch_sizes stays on the CPU)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        idx = [None if t is None else t.to(data.device) for t in (self.sorted_indices, self.unsorted_indices)]
        return type(self)(data, self.batch_sizes, *idx)

    def cpu(self):
        return self.to("cpu")

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    @property
    def is_cuda(self) -> bool:
        return str(self.data.device).startswith("cuda")

    def is_pinned(self) -> bool:
        return False


def invert_permutation(permutation):
    """The inverse of a permutation tensor (None stays None)."""
    if permutation is None:
        return None
    p = _host(permutation)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.shape[0])
    return _creation.tensor(inv, device=permutation.device if isinstance(permutation, Tensor) else None)


def _host(v):
    if isinstance(v, Tensor):
        return np.asarray(v.detach().numpy()).astype(np.int64).reshape(-1)
    return np.asarray(v, dtype=np.int64).reshape(-1)


def _index(values, like):
    return _creation.tensor(np.asarray(values, dtype=np.int64), device=like.device)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shapes (L_i, *) into (T, B, *) ((B, T, *) if batch_first), T = max L_i,
    filling with padding_value after each sequence ('right') or before it ('left')."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    seqs = list(sequences)
    if not seqs:
        raise ValueError("pad_sequence: received an empty list of sequences")
    trail = seqs[0].shape[1:]
    for s in seqs:
        if s.shape[1:] != trail:
            raise ValueError(f"pad_sequence: all sequences must share their trailing shape {trail}, got {s.shape}")
    T = max(s.shape[0] for s in seqs)
    out = []
    for s in seqs:
        n = T - s.shape[0]
        if n:
            fill = _creation.full((n,) + tuple(trail), padding_value, dtype=s.dtype, device=s.device)
            s = ops.cat([s, fill] if padding_side == "right" else [fill, s], 0)
        out.append(s)
    return ops.stack(out, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The inverse of pad_sequence (right padding): a list of (L_i, *) tensors."""
    lens = _host(lengths)
    x = padded_sequences if batch_first else ops.swapaxes(padded_sequences, 0, 1)
    return [x[i, 0:int(n)] for i, n in enumerate(lens)]


def _sorted_order(lengths, enforce_sorted):
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                               "to sidestep this requirement if you do not need ONNX exportability.")
        return None
    return np.argsort(-lengths, kind="stable")


def _pack(padded_tm, lengths, order):
    """padded_tm (T, B, *) time-major in original batch order -> (data, batch_sizes) with the
    sequences taken in `order` (sorted position -> original index)."""
    T, B = padded_tm.shape[0], padded_tm.shape[1]
    ls = lengths[order]
    bs = np.array([(ls > t).sum() for t in range(int(ls[0]) if ls.size else 0)], dtype=np.int64)
    pos = np.concatenate([t * B + order[:n] for t, n in enumerate(bs)]) if bs.size else np.zeros(0, np.int64)
    flat = ops.reshape(padded_tm, (T * B,) + tuple(padded_tm.shape[2:]))
    return ops.index_select(flat, 0, _index(pos, padded_tm)), bs


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):  # noqa: A002
    """Pack a padded batch (T, B, *) ((B, T, *) if batch_first) of sequences with the given
    lengths (each >= 1). enforce_sorted: lengths must be decreasing (no permutation recorded);
    otherwise the batch is sorted here and the permutation kept for unpacking."""
    lens = _host(lengths)
    x = ops.swapaxes(input, 0, 1) if batch_first else input
    T, B = x.shape[0], x.shape[1]
    if lens.shape != (B,):
        raise ValueError(f"pack_padded_sequence: expected {B} lengths for input {input.shape}, got {lens.shape[0]}")
    if lens.size and (lens.min() <= 0 or lens.max() > T):
        raise RuntimeError(f"pack_padded_sequence: lengths must be in [1, {T}] (the padded length), got {lens.tolist()}")
    perm = _sorted_order(lens, enforce_sorted)
    order = np.arange(B) if perm is None else perm
    data, bs = _pack(x, lens, order)
    sorted_idx = None if perm is None else _index(perm, input)
    return PackedSequence(data, _creation.tensor(bs), sorted_idx, None if perm is None else invert_permutation(sorted_idx))


def _lengths_of(batch_sizes):
    bs = _host(batch_sizes)
    B = int(bs[0]) if bs.size else 0
    return np.array([(bs > b).sum() for b in range(B)], dtype=np.int64)        # sorted order


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths (B,) int64), both
    in the original batch order. total_length pads T up to that many steps."""
    data, batch_sizes, sorted_indices, unsorted_indices = sequence
    bs = _host(batch_sizes)
    T, B = bs.shape[0], (int(bs[0]) if bs.size else 0)
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"pad_packed_sequence: expected total_length to be at least the length of the longest "
                             f"sequence ({T}), got {total_length}")
        T_out = int(total_length)
    else:
        T_out = T
    lens_sorted = _lengths_of(bs)
    order = np.arange(B) if sorted_indices is None else _host(sorted_indices)
    # packed row of (t, sorted b) = offset[t] + b; the padding row is appended at the end
    offsets = np.concatenate([[0], np.cumsum(bs)])
    n_rows = int(offsets[-1])
    pos = np.full((T_out, B), n_rows, dtype=np.int64)
    for t in range(T):
        pos[t, order[:bs[t]]] = offsets[t] + np.arange(bs[t])
    pad_row = _creation.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    ext = ops.cat([data, pad_row], 0)
    y = ops.reshape(ops.index_select(ext, 0, _index(pos.reshape(-1), data)), (T_out, B) + tuple(data.shape[1:]))
    lengths = np.empty(B, dtype=np.int64)
    lengths[order] = lens_sorted
    y = ops.swapaxes(y, 0, 1) if batch_first else y
    return y, _creation.tensor(lengths)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of (L_i, *) tensors (longest first unless enforce_sorted=False)."""
    seqs = list(sequences)
    lengths = [s.shape[0] for s in seqs]
    return pack_padded_sequence(pad_sequence(seqs), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The inverse of pack_sequence: a list of (L_i, *) tensors in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


def _repack_like(padded_tm, like: PackedSequence):
    """Pack padded_tm (T, B, *) (original batch order) with the layout of the packed `like`."""
    bs = _host(like.batch_sizes)
    B = int(bs[0]) if bs.size else 0
    order = np.arange(B) if like.sorted_indices is None else _host(like.sorted_indices)
    lens_sorted = _lengths_of(bs)
    lengths = np.empty(B, dtype=np.int64)
    lengths[order] = lens_sorted
    data, _ = _pack(padded_tm, lengths, order)
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
