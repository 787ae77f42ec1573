"""Datasets: the map-style `Dataset` and stream-style `IterableDataset`, with PyTorch's wrappers
(`TensorDataset`, `Subset`, `ConcatDataset`, `ChainDataset`, `StackDataset`) and `random_split`.

`TensorDataset` and a `Subset` of one also gather a whole batch with ONE array-indexing call per
tensor (`_gather`), which `DataLoader` uses instead of indexing sample by sample and stacking.
"""
from __future__ import annotations

import bisect
import math
import numbers
import warnings

import numpy as np

from .._creation import tensor
from .._tensor import Tensor, _wrap

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset",
           "StackDataset", "random_split"]


class Dataset:
    """Map-style dataset: ``__getitem__(i)`` returns one sample, ``__len__`` their number.

    ``a + b`` is ``ConcatDataset([a, b])``. A subclass may define ``__getitems__(indices)``
    returning the list of samples for a batch of indices (the DataLoader then calls it once per
    batch)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Stream-style dataset: ``__iter__`` yields samples. With ``num_workers > 0`` every worker
    iterates its own copy; use `xbp.data.get_worker_info()` inside ``__iter__`` to give each
    worker its share (else every sample arrives once per worker)."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


def _as_tensor(t):
    if isinstance(t, Tensor):
        return t
    return Tensor(t) if hasattr(t, "shape") and hasattr(t, "dtype") else tensor(t)


class TensorDataset(Dataset):
    """Samples are the rows of tensors sharing their first dimension: ``ds[i] == (x[i], y[i])``.

    Arrays (NumPy, CuPy, strict) are wrapped without a copy; Python lists become tensors."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        ts = []
        for t in tensors:
            t = _as_tensor(t)
            if t.ndim == 0:
                raise ValueError("TensorDataset: a 0-d tensor has no samples; give tensors of shape (N, ...)")
            ts.append(t)
        n = ts[0].shape[0]
        if any(t.shape[0] != n for t in ts):
            raise ValueError("TensorDataset: size mismatch between tensors: first dimensions "
                             f"{[t.shape[0] for t in ts]} (shapes {[t.shape for t in ts]})")
        self.tensors = tuple(ts)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]

    def _gather(self, index: np.ndarray):
        """The rows `index` (host int64 array) of every tensor, one take per tensor on the tensor's
        own device: what ``default_collate([ds[i] for i in index])`` gives, without per-row work."""
        out = []
        for t in self.tensors:
            src = t.xp
            out.append(_wrap(src.take(t.array, src.from_numpy(index), axis=0), src))
        return out


class Subset(Dataset):
    """The samples ``dataset[indices[i]]``, i = 0 .. len(indices) - 1."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        inner = getattr(self.dataset, "__getitems__", None)
        if callable(inner):
            return inner([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getattr__(self, name):
        # a Subset of a gatherable dataset is gatherable: map the batch's indices through ours
        if name == "_gather" and hasattr(self.__dict__.get("dataset"), "_gather"):
            inner = self.dataset._gather
            return lambda index: inner(np.asarray(self.indices, dtype=np.int64)[index])
        raise AttributeError(name)


class ConcatDataset(Dataset):
    """The samples of several map-style datasets, one after the other."""

    @staticmethod
    def cumsum(sequence):
        """The running totals of the lengths of `sequence`: [len(d0), len(d0) + len(d1), ...]."""
        r, s = [], 0
        for e in sequence:
            s += len(e)
            r.append(s)
        return r

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset; use ChainDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError(f"ConcatDataset: absolute value of index {idx} should not exceed dataset "
                                 f"length {len(self)}")
            idx = len(self) + idx
        if idx >= len(self):
            raise IndexError(f"ConcatDataset: index {idx} out of range for length {len(self)}")
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[d][idx - (self.cumulative_sizes[d - 1] if d else 0)]


class ChainDataset(IterableDataset):
    """The samples of several iterable datasets, one stream after the other."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


class StackDataset(Dataset):
    """Samples are tuples (``StackDataset(a, b)``) or dicts (``StackDataset(x=a, y=b)``) of the
    samples of datasets of one length."""

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError("StackDataset: give datasets as positional arguments (tuple samples) or as "
                             "keyword arguments (dict samples), not both")
        self.datasets = args or kwargs
        parts = list(args) if args else list(kwargs.values())
        if not parts:
            raise ValueError("StackDataset needs at least one dataset")
        lengths = [len(d) for d in parts]
        if any(n != lengths[0] for n in lengths):
            raise ValueError(f"StackDataset: size mismatch between datasets: {lengths}")
        self._length = lengths[0]

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self):
        return self._length


def _split_lengths(n: int, lengths) -> list:
    """Absolute lengths, or fractions summing to 1 turned into lengths that sum to `n` (floors,
    then the remainder handed out one by one from the first split on, as PyTorch does)."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and not all(
            isinstance(x, numbers.Integral) for x in lengths):
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {frac}, not between 0 and 1")
        sizes = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, s in enumerate(sizes):
            if s == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this might result in an "
                              "empty dataset", UserWarning, stacklevel=3)
        return sizes
    for x in lengths:
        if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 0:
            raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing to 1, "
                             f"got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not equal the length of "
                         f"the input dataset ({n})")
    return [int(x) for x in lengths]


def random_split(dataset, lengths, generator=None) -> list:
    """Split `dataset` at random into non-overlapping `Subset` objects of the given lengths.

    `lengths` holds sizes summing to ``len(dataset)``, or fractions summing to 1, such as
    ``[0.8, 0.2]``; then each split gets ``floor(n * frac)`` samples and the remainder goes one
    by one to the first splits, as in PyTorch. `generator` is a ``numpy.random.Generator`` (or an
    object holding one) for a reproducible split; None draws from xbp's global generator, which
    ``xbp.manual_seed`` seeds.
    """
    from .sampler import _host_rng
    sizes = _split_lengths(len(dataset), lengths)
    perm = _host_rng(generator).permutation(sum(sizes)).tolist()
    out, start = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[start:start + s]))
        start += s
    return out
