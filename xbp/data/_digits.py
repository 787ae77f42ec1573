"""The sklearn digits data set as xbp tensors (`xbp.data.load_digits`)."""
from __future__ import annotations

import math

import numpy as np

from .._creation import tensor

__all__ = ["load_digits"]

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
