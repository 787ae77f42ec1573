"""Sampling indices from categorical distributions: multinomial, drawn from the device's seeded
generator (`xbp.manual_seed`), so runs repeat exactly.

With replacement: inverse-CDF sampling. Each draw u ~ U[0, 1) picks the number of entries of the
normalised cumulative sum that are <= u (the last entry is exactly 1, so the index is in range and
a zero-probability category is never picked).
Without replacement: the exponential race (Efraimidis & Spirakis): with E_i ~ Exp(1) independent,
the categories in increasing order of E_i / p_i are distributed exactly as successive draws without
replacement, each proportional to the remaining weights, which is PyTorch's definition. One draw
of n uniforms and one sort per row.
"""
from __future__ import annotations

from .._tensor import Tensor, _wrap
from ._util import check_size

# comparison-count sampling builds a (rows, samples, categories) bool array: above this many
# elements, search each row's CDF instead (one searchsorted per row)
_DENSE_LIMIT = 1 << 22


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):  # noqa: A002
    """Sample category indices with probabilities proportional to the rows of `input`.

    input: (n,) or (rows, n) non-negative weights (need not sum to 1; each row must have a
    positive sum). Returns int64 indices of shape (num_samples,) or (rows, num_samples).
    Without replacement, num_samples <= the number of positive weights in each row, and the
    indices of a row are distinct. Not differentiable (indices)."""
    if out is not None:
        raise NotImplementedError("multinomial: out= is not supported; use the returned tensor")
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial: input must be a Tensor of weights, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"multinomial: input must be a floating-point tensor of weights, got dtype {input.dtype}")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: input must be 1-D or 2-D (one distribution per row), got shape {input.shape}")
    k = check_size("multinomial", num_samples, "num_samples")
    if k <= 0:
        raise RuntimeError(f"multinomial: cannot sample num_samples = {k} <= 0 samples")
    xp = input.xp
    w = input.array if input.ndim == 2 else xp.reshape(input.array, (1, -1))
    rows, n = w.shape
    if n == 0:
        raise RuntimeError("multinomial: the distribution has no categories (size 0 along the last dim)")
    wd = xp.float64 if xp.has_float64 else w.dtype
    w = xp.astype(w, wd)
    # validate in one device -> host read: negative or non-finite weights, rows summing to 0, and
    # (without replacement) rows with fewer positive weights than samples
    bad = xp.any(~xp.isfinite(w) | (w < 0))
    total = xp.sum(w, axis=-1, keepdims=True)
    positive = xp.sum(xp.astype(w > 0, xp.int64), axis=-1)
    summary = xp.to_numpy(xp.stack([xp.astype(bad, xp.int64), xp.astype(xp.any(total[:, 0] <= 0), xp.int64),
                                    xp.min(positive)]))
    if summary[0]:
        raise RuntimeError("multinomial: the probability tensor contains inf, nan or an element < 0")
    if summary[1]:
        raise RuntimeError("multinomial: invalid distribution: a row's weights sum to 0 (or less)")
    if not replacement:
        if k > n:
            raise RuntimeError(f"multinomial: cannot sample {k} > {n} categories without replacement")
        if k > int(summary[2]):
            raise RuntimeError(f"multinomial: a row has only {int(summary[2])} categories with positive weight, "
                               f"fewer than num_samples = {k}, so {k} samples without replacement are impossible")
    if replacement:
        idx = _with_replacement(xp, w, total, k, wd, generator)
    else:
        u = _uniform(xp, (rows, n), _np_dtype(xp, wd), generator)
        e = -xp.log1p(-u)                                             # Exp(1), finite (u < 1)
        keys = xp.where(w > 0, e / xp.where(w > 0, w, 1.0), float("inf"))
        idx = xp.argsort(keys, axis=-1, stable=True)[:, :k]
    idx = xp.astype(idx, xp.int64)
    if input.ndim == 1:
        idx = xp.reshape(idx, (k,))
    return _wrap(idx, xp)


def _np_dtype(xp, native):
    return xp.canonical(native)


def _uniform(xp, shape, dtype, generator):
    """U[0, 1) draws from the device's default stream, or from `generator` (an xbp.Generator of
    that device: xbp/_random.py, where this branch has it)."""
    if generator is None:
        return xp.random_uniform(shape, dtype)
    try:
        from .._random import native_rng
    except ImportError:
        raise NotImplementedError("multinomial: generator= needs xbp.Generator (xbp/_random.py), which "
                                  "this build lacks; seed the device's stream with xbp.manual_seed") from None
    return xp.random_uniform(shape, dtype, rng=native_rng(generator, xp, "multinomial"))


def _with_replacement(xp, w, total, k, wd, generator):
    rows, n = w.shape
    cdf = xp.cumulative_sum(w, axis=-1) / total
    # the last entry exactly 1.0 (the sum's rounding could leave 1 - ulp, then u could pass it)
    last = xp.arange(0, n, dtype=xp.int64) == n - 1
    cdf = xp.where(last, 1.0, cdf)
    u = _uniform(xp, (rows, k), _np_dtype(xp, wd), generator)
    if rows * k * n <= _DENSE_LIMIT:
        hits = xp.expand_dims(cdf, axis=1) <= xp.expand_dims(u, axis=2)
        return xp.sum(xp.astype(hits, xp.int64), axis=-1)
    parts = [xp.searchsorted(cdf[r, ...], u[r, ...], side="right") for r in range(rows)]
    return xp.stack(parts, axis=0)
