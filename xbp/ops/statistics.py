"""Reductions that return more than one statistic, and counting: var_mean, std_mean, aminmax,
count_nonzero. `dim`/`keepdim` and the Array API's `axis`/`keepdims` are both accepted."""
from __future__ import annotations

from collections import namedtuple

from ._util import dim_index, no_grad_op, norm_axis
from . import reduce as R

AMinMax = namedtuple("aminmax", ["min", "max"])


def _var_args(dim, unbiased):
    """PyTorch's old overload var(x, unbiased): a bool in the dim position is `unbiased`."""
    if isinstance(dim, bool):
        return None, dim if unbiased is None else unbiased
    return dim, unbiased


def var_mean(input, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=None):  # noqa: A002
    """(variance, mean) over `dim` (int, tuple or None for all), as `var` and `mean` compute them;
    `correction` (1: unbiased, 0: population; `unbiased=` is the older spelling)."""
    dim, unbiased = _var_args(dim, unbiased)
    v = R.var(input, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis, keepdims=keepdims)
    return v, R.mean(input, dim, keepdim, axis=axis, keepdims=keepdims)


def std_mean(input, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=None):  # noqa: A002
    """(standard deviation, mean) over `dim`; arguments as `var_mean`."""
    dim, unbiased = _var_args(dim, unbiased)
    s = R.std(input, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis, keepdims=keepdims)
    return s, R.mean(input, dim, keepdim, axis=axis, keepdims=keepdims)


def aminmax(input, *, dim=None, keepdim=False, axis=None, keepdims=None):  # noqa: A002
    """(min, max) over one `dim` (or all elements) as a named tuple; gradients as amin/amax
    (shared evenly among ties)."""
    if axis is not None:
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    if dim is not None:
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"aminmax: dim must be one int (or None), got {dim!r}; use amin/amax for several dims")
        dim = dim_index("aminmax", dim, input.ndim)
    if input.numel() == 0:
        raise RuntimeError(f"aminmax: cannot reduce an empty tensor (shape {input.shape}): min/max have no identity")
    return AMinMax(R.amin(input, dim, keepdim), R.amax(input, dim, keepdim))


def _count_nonzero(xp, x, dim=None):
    axes = norm_axis(dim, x.ndim, op="count_nonzero")
    return xp.sum(xp.astype(x != 0, xp.int64), axis=axes)


_count_nonzero_op = no_grad_op("count_nonzero", _count_nonzero)


def count_nonzero(input, dim=None, *, axis=None):  # noqa: A002
    """Number of non-zero elements over `dim` (int, tuple or None for all), as an int64 tensor."""
    return _count_nonzero_op(input, dim=dim if axis is None else axis)
