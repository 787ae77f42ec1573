"""Scans along one dim: cumprod, cummax, cummin, logcumsumexp, and diff.

The Array API has cumulative_sum and cumulative_prod but no running maximum or running
log-sum-exp; those are computed here by a doubling scan (Hillis-Steele): log2(n) steps, each
combining every position with the one 2^k before it, so the cost is O(n log n) elementwise work in
a handful of whole-array operations instead of n small ones.
"""
from __future__ import annotations

import math
from collections import namedtuple

from .._primitive import Primitive, apply
from .._tensor import Tensor, _wrap
from ._util import dim_index
from . import elementwise as E, shape as S
from .index import gather_p
from .math import _ns, _GRAD_OPS, logaddexp


def _dim_kw(op, x, dim, axis):
    if axis is not None:
        dim = axis
    if dim is None:
        raise TypeError(f"{op}: missing the dim argument (the dim to scan along)")
    return dim_index(op, dim, x.ndim)


# --- cumprod ---------------------------------------------------------------------------------------
def _rev_cumsum(xp, v, a):
    return xp.flip(xp.cumulative_sum(xp.flip(v, axis=a), axis=a), axis=a)


def _cumprod_vjp(c, g):
    # out_j = prod_{l <= j} x_l, so d out_j / d x_i = prod_{l <= j, l != i} x_l for j >= i. Along
    # each line, with k the position of its first zero (if any):
    #   i < k (or no zero):  grad_i = sum_{j >= i} g_j out_j / x_i   (x_i != 0; out_j = 0 for j >= k)
    #   i = k:               grad_k = sum_{j >= k} g_j prod_{l <= j, l != k} x_l,
    #                        the reversed cumsum of g * cumprod(x with x_k replaced by 1)
    #   i > k:               0 (every such product contains x_k = 0)
    # Exact with any number of zeros; the same body runs on Tensors for double backward.
    xp, a = _ns(c), c.p["axis"]
    x, out = c.ins[0], c.out
    zero = x == 0
    seen = xp.cumulative_sum(xp.astype(zero, x.dtype), axis=a)      # zeros up to here, inclusive
    before = seen == 0
    first = zero & (seen == 1)
    g_before = _rev_cumsum(xp, g * out, a) / xp.where(before, x, 1.0)
    g_first = _rev_cumsum(xp, g * xp.cumulative_prod(xp.where(first, 1.0, x), axis=a), a)
    return (xp.where(before, g_before, xp.where(first, g_first, 0.0)),)


cumprod_p = Primitive("cumprod", lambda xp, x, axis: xp.cumulative_prod(x, axis=axis), _cumprod_vjp,
                      save="in,out")


def cumprod(input, dim=None, *, dtype=None, axis=None):  # noqa: A002
    """Cumulative product along `dim`: out[..., j, ...] = prod of input[..., :j+1, ...].
    Same shape as input; integer and bool inputs give int64 (as PyTorch) unless `dtype` is given.
    The gradient is exact also where the input has zeros (see the VJP)."""
    d = _dim_kw("cumprod", input, dim, axis)
    x = input
    if dtype is not None:
        x = x.to(dtype=dtype)
    elif x.dtype.kind in "biu":
        x = x.to(dtype="int64")
    if x.ndim == 0:
        return E.mul(x, 1)
    return apply(cumprod_p, (x,), {"axis": d})


_GRAD_OPS["cumulative_prod"] = lambda x, axis: cumprod(x, axis)


# --- cummax / cummin ---------------------------------------------------------------------------------
CumMax = namedtuple("cummax", ["values", "indices"])
CumMin = namedtuple("cummin", ["values", "indices"])


def _scan_indices(xp, x, axis, largest):
    """Indices of the running max (min) along `axis`, PyTorch's: ties go to the later element,
    and a NaN, once met, is kept (a later NaN takes over). Doubling scan on (value, index) pairs:
    the combining rule is associative, so log2(n) steps give the sequential answer."""
    nd = x.ndim
    perm = tuple(i for i in range(nd) if i != axis) + (axis,)
    v = xp.permute_dims(x, perm)
    if v.dtype == xp.bool:
        v = xp.astype(v, xp.uint8)
    n = v.shape[-1]
    floating = v.dtype in xp.float_dtypes
    if floating:
        ident = -math.inf if largest else math.inf
    else:
        info = xp.iinfo(v.dtype)
        ident = info.min if largest else info.max
    i64 = xp.int64
    idx = xp.broadcast_to(xp.arange(0, n, dtype=i64), v.shape)
    s = 1
    while s < n:
        lead = v.shape[:-1] + (s,)
        ve = xp.concat([xp.full(lead, ident, dtype=v.dtype), v[..., :n - s]], axis=-1)
        ie = xp.concat([xp.zeros(lead, dtype=i64), idx[..., :n - s]], axis=-1)
        later = (v >= ve) if largest else (v <= ve)
        if floating:
            later = xp.isnan(v) | (~xp.isnan(ve) & later)
        v = xp.where(later, v, ve)
        idx = xp.where(later, idx, ie)
        s *= 2
    inv = [0] * nd
    for i, p in enumerate(perm):
        inv[p] = i
    return xp.permute_dims(idx, tuple(inv))


def _cum_extreme(op, input, dim, axis, largest, result):
    d = _dim_kw(op, input, dim, axis)
    x = input
    if x.ndim == 0:
        return result(E.mul(x, 1) if x.dtype.kind != "b" else x, _wrap(x.xp.zeros((), dtype=x.xp.int64), x.xp))
    idx = _wrap(_scan_indices(x.xp, x.array, d, largest), x.xp)
    # the values are gathered at the indices, so the gradient goes to the element each output
    # came from (summed where one element is the running extreme of several outputs), as PyTorch
    return result(apply(gather_p, (x, idx), {"axis": d}), idx)


def cummax(input, dim=None, *, axis=None):  # noqa: A002
    """Running maximum along `dim` -> (values, indices), both of input's shape. The index is the
    last position holding the maximum so far (PyTorch's rule; a NaN propagates). The gradient of
    values goes to those positions."""
    return _cum_extreme("cummax", input, dim, axis, True, CumMax)


def cummin(input, dim=None, *, axis=None):  # noqa: A002
    """Running minimum along `dim` -> (values, indices); see `cummax`."""
    return _cum_extreme("cummin", input, dim, axis, False, CumMin)


# --- logcumsumexp ----------------------------------------------------------------------------------------
def logcumsumexp(input, dim=None, *, axis=None):  # noqa: A002
    """log(cumsum(exp(input))) along `dim`, stable for any range of values: a doubling scan of
    logaddexp (each step combines position j with j - 2^k), never exponentiating a large number
    and never losing small early terms to a global maximum. Differentiable to any order."""
    d = _dim_kw("logcumsumexp", input, dim, axis)
    x = input
    if x.dtype.kind != "f":
        x = x.to(dtype=E._default_float())
    if x.ndim == 0:
        return E.mul(x, 1.0)
    n = x.shape[d]
    pre = (slice(None),) * d
    v = x
    s = 1
    while s < n:
        # positions < s are already final; the rest add the block ending s before them
        v = S.cat([v[pre + (slice(0, s),)], logaddexp(v[pre + (slice(s, n),)], v[pre + (slice(0, n - s),)])], d)
        s *= 2
    return v if s > 1 else E.mul(v, 1.0)


# --- diff -------------------------------------------------------------------------------------------
def _as_part(op, v, x, d, what):
    if isinstance(v, Tensor):
        if v.ndim != x.ndim:
            raise RuntimeError(f"{op}: {what} must have the same number of dims as input ({x.ndim}), "
                               f"got shape {v.shape}")
        return v
    # a number: one slice of input's shape along dim (NumPy's convenience; PyTorch wants a tensor)
    from .._creation import full
    shape = tuple(1 if i == d else s for i, s in enumerate(x.shape))
    return full(shape, v, dtype=x.dtype, device=x.xp)


def diff(input, n=1, dim=-1, prepend=None, append=None, *, axis=None):  # noqa: A002
    """n-th forward difference along `dim`: out[..., i] = x[..., i+1] - x[..., i], applied n times,
    after concatenating `prepend` / `append` (tensors matching input except along dim, or numbers)
    along dim. The length along dim shrinks by n (to 0 at the least). Bool tensors give
    x[i+1] != x[i], as in PyTorch."""
    from ._util import check_size
    n = check_size("diff", n, "n (the number of differences)")
    if n < 0:
        raise ValueError(f"diff: order n must be non-negative, got {n}")
    x = input
    if x.ndim == 0:
        raise RuntimeError("diff: expected at least a 1-dimensional tensor, got a 0-d one")
    d = dim_index("diff", dim if axis is None else axis, x.ndim)
    if prepend is not None or append is not None:
        parts = ([_as_part("diff", prepend, x, d, "prepend")] if prepend is not None else []) + [x] + (
            [_as_part("diff", append, x, d, "append")] if append is not None else [])
        x = S.cat(parts, d)
    pre = (slice(None),) * d
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = x[pre + (slice(1, m),)], x[pre + (slice(0, m - 1),)]
        x = E.ne(hi, lo) if x.dtype.kind == "b" else E.sub(hi, lo)
    return x
