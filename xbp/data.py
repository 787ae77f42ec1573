"""Datasets and batching: TensorDataset, DataLoader, and the sklearn digits data.

The DataLoader gathers each batch with ONE array-indexing call on the source array (where the
data lives, usually host memory) and moves the gathered batch to the target device in one
transfer per tensor, never sample by sample. Shuffling is done on the host with NumPy's PCG64:
with a `seed`, epoch ``e`` uses the permutation of ``default_rng([seed, e])``, so every epoch is
reshuffled, runs are reproducible, and a run resumed at an epoch boundary (``state_dict()``)
sees the same batches as one that never stopped.
"""
from __future__ import annotations

import math

import numpy as np

from ._backend import get_backend, is_device_array
from ._creation import tensor
from ._tensor import Tensor, _wrap

__all__ = ["Dataset", "TensorDataset", "DataLoader", "load_digits"]


class Dataset:
    """Map-style dataset: ``__getitem__(i)`` returns one sample, ``__len__`` their number."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the rows of tensors sharing their first dimension: ``ds[i] == (x[i], y[i])``.

    Arrays (NumPy, CuPy, strict) are wrapped without a copy; Python lists become tensors."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        ts = []
        for t in tensors:
            if not isinstance(t, Tensor):
                t = Tensor(t) if hasattr(t, "shape") and hasattr(t, "dtype") else tensor(t)
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

    def _gather(self, index: np.ndarray, target):
        """The rows `index` (host int64 array) of every tensor, as one take per tensor on the
        source device, then one transfer each to `target` (a Backend, or None to stay)."""
        out = []
        for t in self.tensors:
            src = t.xp
            a = src.take(t.array, src.from_numpy(index), axis=0)
            out.append(_to(a, src, target))
        return tuple(out)


def _to(a, src, target):
    """Wrap array `a` (on `src`) as a Tensor on `target` with at most one transfer."""
    if target is None or target is src:
        return _wrap(a, src)
    return _wrap(target.from_numpy(src.to_numpy(a)), target)


def _collate(items, target):
    """Stack a list of samples (Tensors, numbers, arrays, or tuples/lists/dicts of them)."""
    first = items[0]
    if isinstance(first, Tensor):
        src = first.xp
        if any(it.xp is not src for it in items):
            raise RuntimeError("DataLoader: samples of one batch live on different devices "
                               f"({sorted({str(it.device) for it in items})})")
        return _to(src.stack([it.array for it in items], axis=0), src, target)
    if isinstance(first, (tuple, list)):
        return tuple(_collate(list(field), target) for field in zip(*items))
    if isinstance(first, dict):
        return {k: _collate([it[k] for it in items], target) for k in first}
    if type(first) is not np.ndarray and is_device_array(first):   # device (CuPy) arrays: stack there
        return tensor(list(items), device=target)
    host = np.stack([np.asarray(it) for it in items])
    return tensor(host, device=target)


class DataLoader:
    """Iterate over `dataset` in batches.

    ``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, device=None)``

    - `shuffle`: a new permutation every epoch; with `seed` it is reproducible (epoch ``e`` uses
      ``numpy.random.default_rng([seed, e])``), without it it is drawn from xbp's global
      generator (``xbp.manual_seed``).
    - `device`: where batches are delivered ("cpu", "cuda", ...); None leaves them where the
      data lives. Each batch crosses to the device in one transfer per tensor.
    - ``len(loader)`` is the number of batches per epoch; ``state_dict()``/``load_state_dict()``
      hold the epoch counter, to resume at an epoch boundary.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed=None, device=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = None if seed is None else int(seed)
        self.device = None if device is None else get_backend(device).device
        self._target = None if device is None else get_backend(device)
        self.epoch = 0

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        if self.seed is not None:
            rng = np.random.default_rng([self.seed, epoch])
        else:
            rng = np.random.default_rng(get_backend("cpu").rng.integers(0, 2 ** 63))
        return rng.permutation(n).astype(np.int64, copy=False)

    def __iter__(self):
        order = self._order(self.epoch)        # drawn now, not at the first next()
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order):
        bs, n = self.batch_size, len(order)
        stop = n - n % bs if self.drop_last else n
        gather = getattr(self.dataset, "_gather", None)
        target = self._target
        for start in range(0, stop, bs):
            idx = order[start:start + bs]
            if gather is not None:
                yield gather(idx, target)
            else:
                yield _collate([self.dataset[int(i)] for i in idx], target)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epoch = int(state_dict["epoch"])
        if state_dict.get("seed") is not None:
            self.seed = int(state_dict["seed"])


SKLEARN_HINT = ("xbp.data.load_digits needs scikit-learn, which ships the digits data: "
                "pip install scikit-learn (or pip install 'xbp[examples]')")


def load_digits(test_size: float = 0.2, seed: int = 0, device=None, dtype=np.float32):
    """The 1,797 8x8 handwritten digits of scikit-learn (UCI), split at random into train and test.

    Returns ``(X_train, y_train), (X_test, y_test)``: X of shape (N, 64) scaled to [0, 1] (pixel
    values /16) in `dtype`, y of shape (N,) int64 class labels 0-9, on `device` (None: the
    default device). The split is a permutation by ``numpy.random.default_rng(seed)``; the test
    part has ``ceil(test_size * 1797)`` samples (360 for 0.2), as sklearn's train_test_split.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError(SKLEARN_HINT) from None
    if not 0.0 <= float(test_size) < 1.0:
        raise ValueError(f"load_digits: test_size must be in [0, 1), got {test_size}")
    d = _sk_load_digits()
    X = np.asarray(d.data, dtype=np.float64) / 16.0
    y = np.asarray(d.target, dtype=np.int64)
    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = math.ceil(float(test_size) * n)
    test, train = perm[:n_test], perm[n_test:]

    def part(i):
        return tensor(X[i], dtype=dtype, device=device), tensor(y[i], dtype=np.int64, device=device)

    return part(train), part(test)
