"""Samplers: which dataset indices a DataLoader visits, and in which order (PyTorch's set).

Random samplers draw on the host with NumPy's PCG64. `generator` may be an ``xbp.Generator`` on
the CPU or a ``numpy.random.Generator`` (or an object that holds one as ``.native``/``.rng``);
it is advanced as it is used, so consecutive epochs differ and a re-seeded generator repeats
them. Without a generator each epoch draws a fresh seed from xbp's global CPU generator, so
``xbp.manual_seed(s)`` makes a run reproducible, as ``torch.manual_seed`` does.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._backend import get_backend
from .._tensor import Tensor

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]


def _host_rng(generator) -> np.random.Generator:
    """The NumPy Generator to draw from: `generator`'s, or a fresh one seeded from xbp's global
    CPU generator."""
    if generator is None:
        return np.random.default_rng(int(get_backend("cpu").rng.integers(0, 2 ** 63)))
    if isinstance(generator, np.random.Generator):
        return generator
    # an xbp.Generator on the CPU holds its NumPy generator as `.native`
    for attr in ("native", "rng", "_rng", "generator", "_generator"):
        g = getattr(generator, attr, None)
        if isinstance(g, np.random.Generator):
            return g
    dev = getattr(generator, "device", None)
    where = f" (it is on {dev}; samplers draw on the host: use a CPU generator)" if dev is not None else ""
    raise TypeError(f"generator must be an xbp.Generator on the CPU, a numpy.random.Generator (e.g. "
                    f"numpy.random.default_rng(0)) or None, got {type(generator).__name__}{where}")


def _positive_int(value, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


def _check_bool(value, name: str, owner: str, exc=TypeError) -> bool:
    if not isinstance(value, bool):
        raise exc(f"{owner}: {name} should be a boolean value, but got {name}={value!r}")
    return value


class Sampler:
    """Base class: ``__iter__`` yields dataset indices (or, for a batch sampler, lists of them);
    ``__len__`` is optional."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices into `data_source`.

    Without replacement: a random permutation; with ``num_samples > len(data_source)``, whole
    permutations one after the other, the last one cut short. With replacement: `num_samples`
    independent uniform draws. `num_samples` defaults to ``len(data_source)``."""

    def __init__(self, data_source, replacement: bool = False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = _check_bool(replacement, "replacement", "RandomSampler")
        self._num_samples = num_samples
        self.generator = generator
        if num_samples is not None:
            _positive_int(num_samples, "num_samples", "RandomSampler")
        # DataLoader(seed=...) sets these: epoch e then uses numpy.random.default_rng([seed, e])
        self._seed = None
        self._epoch = 0

    @property
    def num_samples(self) -> int:
        """How many indices one pass yields: `num_samples` if given, else the dataset's length."""
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def _rng(self):
        if self._seed is not None:
            return np.random.default_rng([self._seed, self._epoch])
        return _host_rng(self.generator)

    def __iter__(self):
        n, m = len(self.data_source), self.num_samples
        if n == 0:
            return iter(())
        rng = self._rng()
        if self.replacement:
            return iter(rng.integers(0, n, size=m).tolist())
        parts = [rng.permutation(n) for _ in range(m // n)]
        if m % n:
            parts.append(rng.permutation(n)[:m % n])
        return iter(np.concatenate(parts).tolist() if parts else [])

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order (a new one every epoch)."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in _host_rng(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


def _host_vector(values, owner: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().numpy()
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{owner}: weights should be a 1d sequence but given weights have shape {a.shape}")
    return a


class WeightedRandomSampler(Sampler):
    """`num_samples` indices in ``0..len(weights)-1``, index i drawn with probability proportional to
    ``weights[i]`` (need not sum to 1). Without replacement an index is drawn at most once, so
    `num_samples` must not exceed the number of non-zero weights."""

    def __init__(self, weights, num_samples, replacement: bool = True, generator=None):
        owner = "WeightedRandomSampler"
        self.num_samples = _positive_int(num_samples, "num_samples", owner)
        self.replacement = _check_bool(replacement, "replacement", owner, ValueError)
        w = _host_vector(weights, owner)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"{owner}: weights must be finite and non-negative, got {w.tolist()[:8]}"
                             f"{' ...' if len(w) > 8 else ''}")
        if not w.sum() > 0:
            raise ValueError(f"{owner}: weights sum to {w.sum()}; at least one weight must be positive")
        if not replacement and self.num_samples > int(np.count_nonzero(w)):
            raise ValueError(f"{owner}: cannot draw num_samples={self.num_samples} indices without replacement "
                             f"from {int(np.count_nonzero(w))} non-zero weights; use replacement=True or a "
                             "smaller num_samples")
        self.weights = w
        self.generator = generator

    def __iter__(self):
        p = self.weights / self.weights.sum()
        idx = _host_rng(self.generator).choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return iter(idx.tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of `batch_size`; the last, shorter list is kept
    unless `drop_last`."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        self.batch_size = _positive_int(batch_size, "batch_size", "BatchSampler")
        self.drop_last = _check_bool(drop_last, "drop_last", "BatchSampler", ValueError)
        self.sampler = sampler

    def __iter__(self):
        # iter(sampler) now, not at the first next(): a shuffled order is drawn when the epoch starts
        return self._batches(iter(self.sampler))

    def _batches(self, indices):
        bs, batch = self.batch_size, []
        for i in indices:
            batch.append(i)
            if len(batch) == bs:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size
