"""Sorting and searching: sort, argsort, msort, topk, kthvalue, median, nanmedian, quantile,
nanquantile, mode, unique, nonzero, argwhere, searchsorted, bucketize.

The values these return are gathered from the input at the indices they return (the `gather`
primitive), so they are differentiable to any order and the gradient goes to the element whose
index is returned, as in PyTorch. The indices themselves come from the standard's stable
`argsort`; functions whose PyTorch gradient is shared evenly among ties (`median()` without a
dim) say so.
"""
from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from .._primitive import apply
from .._tensor import Tensor, _wrap
from ._util import check_size, dim_index

SortResult = namedtuple("SortResult", ["values", "indices"])
TopKResult = namedtuple("TopKResult", ["values", "indices"])
KthValueResult = namedtuple("KthValueResult", ["values", "indices"])
MedianResult = namedtuple("MedianResult", ["values", "indices"])
ModeResult = namedtuple("ModeResult", ["values", "indices"])


def dim_aliases(f):
    """Accept the Array API spellings `axis=` / `keepdims=` for `dim=` / `keepdim=` (not both)."""
    @functools.wraps(f)
    def g(*args, **kw):
        for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
            if alias in kw:
                if name in kw:
                    raise TypeError(f"{f.__name__}: pass {name}= or {alias}=, not both")
                kw[name] = kw.pop(alias)
        return f(*args, **kw)
    return g


def _i64(xp):
    return xp.dtype(np.dtype("int64"))


def _tensor_arg(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected an xbp.Tensor, got {type(x).__name__}")
    return x


def _dim_kw(op, x, dim, axis, default=-1):
    """PyTorch `dim` or Array API `axis` -> one non-negative axis (0-d tensors take 0 or -1)."""
    if axis is not None:
        dim = axis
    if dim is None:
        dim = default
    return dim_index(op, dim, x.ndim)


def _as_1d(x):
    """0-d tensors are sorted, searched and reduced as 1-element vectors (PyTorch accepts dim 0/-1)."""
    from .shape import reshape
    return reshape(x, (1,)) if x.ndim == 0 else x


def _take(x, idx_array, axis):
    """x gathered at the integer array `idx_array` along `axis`, differentiably (built-in indices
    are in range by construction, so `gather`'s range check is skipped)."""
    from .index import gather_p
    return apply(gather_p, (x, _wrap(idx_array, x.xp)), {"axis": axis})


def _argsort_array(xp, a, axis, descending, stable=True):
    # the standard's sort order of NaN is unspecified: sort them last explicitly (PyTorch puts
    # NaN above +inf, so last ascending and first descending), keeping the order stable
    if a.dtype in xp.float_dtypes:
        nan = xp.isnan(a)
        idx = xp.argsort(xp.where(nan, 0.0, a), axis=axis, descending=descending, stable=True)
        isnan_sorted = xp.astype(xp.take_along_axis(nan, idx, axis=axis), _i64(xp))
        order = xp.argsort(isnan_sorted, axis=axis, descending=descending, stable=True)
        return xp.take_along_axis(idx, order, axis=axis)
    return xp.argsort(a, axis=axis, descending=descending, stable=stable)


def argsort(x, dim=-1, descending=False, stable=False, *, axis=None):
    """Indices that sort `x` along `dim` (int64, no gradient). Ties keep their input order (the
    sort is always stable; `stable` is accepted for PyTorch's signature). NaN sorts above +inf."""
    _tensor_arg("argsort", x)
    d = _dim_kw("argsort", x, dim, axis)
    if x.ndim == 0:
        return _wrap(x.xp.zeros((), dtype=_i64(x.xp)), x.xp)
    return _wrap(_argsort_array(x.xp, x.array, d, bool(descending)), x.xp)


def sort(x, dim=-1, descending=False, stable=False, *, axis=None):
    """(values, indices) of `x` sorted along `dim`, ascending unless `descending`. Stable: equal
    elements keep their input order. values are differentiable (the gradient goes back to where
    each value came from). Shapes: both as `x`."""
    _tensor_arg("sort", x)
    d = _dim_kw("sort", x, dim, axis)
    if x.ndim == 0:
        return SortResult(x * 1 if x.dtype.kind != "b" else x, _wrap(x.xp.zeros((), dtype=_i64(x.xp)), x.xp))
    idx = _argsort_array(x.xp, x.array, d, bool(descending))
    return SortResult(_take(x, idx, d), _wrap(idx, x.xp))


def msort(x):
    """`x` sorted along dim 0 (values only)."""
    return sort(x, 0).values


def topk(x, k, dim=-1, largest=True, sorted=True, *, axis=None):  # noqa: A002 - PyTorch's name
    """The `k` largest (or smallest, `largest=False`) entries along `dim`: (values, indices), each of
    `x`'s shape with size k along dim. Sorted by value; among ties the earlier index comes first."""
    _tensor_arg("topk", x)
    d = _dim_kw("topk", x, dim, axis)
    k = check_size("topk", k, "k")
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise IndexError(f"topk: k ({k}) is out of range for dim {d} of size {n} (shape {x.shape}); "
                         f"use 0 <= k <= {n}")
    xs = _as_1d(x)
    idx = _argsort_array(x.xp, xs.array, d, bool(largest))
    idx = idx[(slice(None),) * d + (slice(0, k),) + (Ellipsis,)]
    values = _take(xs, idx, d)
    if x.ndim == 0:
        from .shape import reshape
        return TopKResult(reshape(values, ()), _wrap(x.xp.reshape(idx, ()), x.xp))
    return TopKResult(values, _wrap(idx, x.xp))


def _select_sorted(op, x, d, pos_fn, keepdim):
    """(values, indices) of the entry at sorted position pos_fn(row) along `d` (positions per row
    as an integer array of the reduced shape with dim `d` kept as 1)."""
    from .shape import reshape, squeeze
    xs = _as_1d(x)
    xp = x.xp
    order = _argsort_array(xp, xs.array, d, False)
    pos = pos_fn(xs, order)
    idx = xp.take_along_axis(order, pos, axis=d)
    values = _take(xs, idx, d)
    idx_t = _wrap(idx, xp)
    if x.ndim == 0:
        return reshape(values, ()), reshape(idx_t, ())
    if not keepdim:
        values, idx_t = squeeze(values, d), squeeze(idx_t, d)
    return values, idx_t


def _reduced_shape(x, d):
    return tuple(1 if i == d else s for i, s in enumerate(x.shape))


def kthvalue(x, k, dim=-1, keepdim=False, *, axis=None, keepdims=None):
    """The k-th smallest entry (k counts from 1) along `dim`: (values, indices); dim is removed
    unless `keepdim`. The gradient goes to the entry whose index is returned."""
    _tensor_arg("kthvalue", x)
    d = _dim_kw("kthvalue", x, dim, axis)
    keepdim = keepdim if keepdims is None else keepdims
    k = check_size("kthvalue", k, "k")
    n = x.shape[d] if x.ndim else 1
    if not 1 <= k <= n:
        raise IndexError(f"kthvalue: k ({k}) is out of range for dim {d} of size {n}; use 1 <= k <= {n}")
    xp = x.xp
    v, i = _select_sorted("kthvalue", x, d, lambda xs, o: xp.full(_reduced_shape(xs, d), k - 1, dtype=o.dtype),
                          bool(keepdim))
    return KthValueResult(v, i)


def _median_pos(xp, xs, order, d, ignore_nan):
    """The lower median's position in the sorted order (NaNs sort last); with NaNs in a row and
    not `ignore_nan`, the position of the first NaN (PyTorch's median returns NaN there)."""
    n = xs.shape[d]
    shape = _reduced_shape(xs, d)
    if xs.array.dtype not in xp.float_dtypes:
        return xp.full(shape, (n - 1) // 2, dtype=order.dtype)
    n_nan = xp.sum(xp.astype(xp.isnan(xs.array), order.dtype), axis=d, keepdims=True)
    valid = n - n_nan
    if ignore_nan:    # all-NaN rows: position 0 (a NaN), as PyTorch's nanmedian gives NaN
        return xp.where(valid > 0, (valid - 1) // 2, 0)
    return xp.where(n_nan > 0, valid, xp.full(shape, (n - 1) // 2, dtype=order.dtype))


def _median(op, x, dim, keepdim, axis, keepdims, ignore_nan):
    _tensor_arg(op, x)
    if axis is not None:
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    xp = x.xp
    if dim is None:
        from .shape import reshape
        if x.numel() == 0:
            raise RuntimeError(f"{op}: cannot compute the median of an empty tensor")
        flat = reshape(x, (-1,))
        m, _ = _select_sorted(op, flat, 0, lambda xs, o: _median_pos(xp, xs, o, 0, ignore_nan), False)
        # PyTorch's median() without a dim shares the gradient evenly among the entries equal to
        # it: m + sum(tie * (x - m)) / n_ties has m's value exactly and that derivative
        from . import elementwise as E
        from .reduce import sum as rsum
        mc = m.detach()
        tie = flat.detach() == mc
        n_ties = rsum(tie)
        if int(n_ties.item()) == 0:           # NaN median: nothing equals it
            return m
        return mc + rsum(E.where(tie, flat - mc, 0.0)) / n_ties.to(dtype=x.dtype)
    d = dim_index(op, dim, x.ndim)
    if x.ndim and x.shape[d] == 0:
        raise IndexError(f"{op}: cannot compute the median of an empty dim {d} (shape {x.shape})")
    v, i = _select_sorted(op, x, d, lambda xs, o: _median_pos(xp, xs, o, d, ignore_nan), bool(keepdim))
    return MedianResult(v, i)


def median(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """``median(x)``: the lower median of all entries (for an even count, the smaller of the two
    middle values, as PyTorch; NaN if any entry is NaN; the gradient is shared among entries equal
    to it). ``median(x, dim)``: (values, indices) along `dim`, the gradient going to the index
    returned."""
    return _median("median", x, dim, keepdim, axis, keepdims, False)


def nanmedian(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """`median` ignoring NaN entries (NaN only where a whole row is NaN)."""
    return _median("nanmedian", x, dim, keepdim, axis, keepdims, True)


_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _q_values(op, x, q):
    """q (a number, a sequence or a 0-d/1-D tensor) -> (host float64 1-D array, whether q was 1-D)."""
    if isinstance(q, Tensor):
        if q.ndim > 1:
            raise ValueError(f"{op}: q must be a number or a 0-d/1-D tensor, got shape {q.shape}")
        qh, vector = np.asarray(q.detach().numpy(), dtype=np.float64), q.ndim == 1
    else:
        qh = np.asarray(q, dtype=np.float64)
        if qh.ndim > 1:
            raise ValueError(f"{op}: q must be a number or a 1-D sequence, got shape {qh.shape}")
        vector = qh.ndim == 1
    qh = qh.reshape(-1)
    if qh.size and not (np.all(qh >= 0) and np.all(qh <= 1)):
        raise ValueError(f"{op}: q values must be in [0, 1], got {qh.tolist()}")
    return qh, vector


def _quantile(op, x, q, dim, keepdim, interpolation, axis, keepdims, ignore_nan):
    from . import elementwise as E
    from .shape import reshape, squeeze, stack
    _tensor_arg(op, x)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {x.dtype}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"{op}: interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    if axis is not None:
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    xp = x.xp
    q_host, q_vector = _q_values(op, x, q)
    if dim is None:
        src, d = reshape(x, (-1,)), 0
    else:
        d = dim_index(op, dim, x.ndim)
        src = _as_1d(x)
    n = src.shape[d]
    if n == 0:
        raise IndexError(f"{op}: input is empty along the reduced dim")
    sorted_v = sort(src, d).values                          # NaN last
    dt = x.array.dtype
    n_nan = xp.sum(xp.astype(xp.isnan(src.array), dt), axis=d, keepdims=True)
    count = (n - n_nan) if ignore_nan else xp.full(n_nan.shape, float(n), dtype=dt)
    i64 = _i64(xp)
    outs = []
    for qv in q_host:
        # per-row positions: rows differ in their count of non-NaN entries for nanquantile
        pos = float(qv) * xp.maximum(count - 1, 0.0)
        lo, hi = xp.floor(pos), xp.ceil(pos)
        if interpolation == "lower":
            hi = lo
        elif interpolation == "higher":
            lo = hi
        elif interpolation == "nearest":
            lo = hi = xp.round(pos)                         # half to even, as PyTorch
        v_lo = _take(sorted_v, xp.astype(lo, i64), d)
        v_hi = _take(sorted_v, xp.astype(hi, i64), d)
        w = xp.full(pos.shape, 0.5, dtype=dt) if interpolation == "midpoint" else pos - lo
        r = v_lo + (v_hi - v_lo) * _wrap(w, xp)
        # a row with NaN (quantile) or with nothing but NaN (nanquantile) gives NaN
        bad = (count == 0) if ignore_nan else (n_nan > 0)
        r = E.where(_wrap(bad, xp), float("nan"), r)
        if dim is None:
            r = reshape(r, (1,) * x.ndim) if keepdim else reshape(r, ())
        elif x.ndim == 0:
            r = reshape(r, ())
        elif not keepdim:
            r = squeeze(r, d)
        outs.append(r)
    if not q_vector:
        return outs[0]
    if not outs:
        raise ValueError(f"{op}: q is empty")
    return stack(outs, 0)


def quantile(x, q, dim=None, keepdim=False, *, interpolation="linear", axis=None, keepdims=None):
    """The q-th quantiles of `x` along `dim` (all entries when None), interpolating between the two
    nearest sorted entries ('linear', the default; or 'lower', 'higher', 'midpoint', 'nearest').
    `q` is a number or a 1-D tensor in [0, 1]; for a 1-D q the result gets a leading dim of
    len(q): (len(q), *reduced shape). Rows containing NaN give NaN, as PyTorch. Differentiable in x."""
    return _quantile("quantile", x, q, dim, keepdim, interpolation, axis, keepdims, False)


def nanquantile(x, q, dim=None, keepdim=False, *, interpolation="linear", axis=None, keepdims=None):
    """`quantile` of the non-NaN entries of each row (NaN only where a row is all NaN)."""
    return _quantile("nanquantile", x, q, dim, keepdim, interpolation, axis, keepdims, True)


def mode(x, dim=-1, keepdim=False, *, axis=None, keepdims=None):
    """The most frequent value along `dim` (the smallest of equally frequent ones) and the index of
    its last occurrence, as PyTorch's CPU kernel: (values, indices); the gradient goes to that
    index."""
    from .shape import reshape, squeeze
    _tensor_arg("mode", x)
    d = _dim_kw("mode", x, dim, axis)
    if keepdims is not None:
        keepdim = keepdims
    xp = x.xp
    xs = _as_1d(x)
    n = xs.shape[d]
    if n == 0:
        raise IndexError(f"mode: dim {d} is empty (shape {x.shape})")
    a = xp.moveaxis(xs.array, d, -1) if hasattr(xp, "moveaxis") else xp.permute_dims(
        xs.array, tuple(i for i in range(xs.ndim) if i != d) + (d,))
    lead = a.shape[:-1]
    rows = int(np.prod(lead)) if lead else 1
    a2 = xp.reshape(a, (rows, n))
    order = xp.argsort(a2, axis=-1, stable=True)
    s = xp.take_along_axis(a2, order, axis=-1)
    i64 = _i64(xp)
    new = xp.concat([xp.ones((rows, 1), dtype=xp.bool), s[:, 1:] != s[:, :-1]], axis=-1)
    run = xp.cumulative_sum(xp.astype(new, i64), axis=-1) - 1                   # run id in its row
    # each element's run length: slot ids increase along the flattened rows, so searchsorted
    # finds every run's ends
    slot = xp.reshape(xp.reshape(xp.arange(0, rows, dtype=i64), (rows, 1)) * n + run, (-1,))
    per = xp.reshape(xp.astype(xp.searchsorted(slot, slot, side="right") - xp.searchsorted(slot, slot, side="left"),
                               i64), (rows, n))
    # the most frequent run (the first, i.e. smallest value, among equals), then its last element
    best = xp.max(per, axis=-1, keepdims=True)
    best_run = xp.min(xp.where(per == best, run, n), axis=-1, keepdims=True)
    # the last occurrence in input order: the largest original index within that run
    pos_in_run = xp.where(run == best_run, order, -1)
    idx = xp.max(pos_in_run, axis=-1, keepdims=True)
    idx = xp.reshape(idx, lead + (1,))
    idx = xp.moveaxis(idx, -1, d) if hasattr(xp, "moveaxis") else xp.permute_dims(
        idx, tuple(range(d)) + (idx.ndim - 1,) + tuple(range(d, idx.ndim - 1)))
    values = _take(xs, idx, d)
    it = _wrap(idx, xp)
    if x.ndim == 0:
        return ModeResult(reshape(values, ()), reshape(it, ()))
    if not keepdim:
        values, it = squeeze(values, d), squeeze(it, d)
    return ModeResult(values, it)


@dim_aliases
def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct values of `x` in ascending order (no gradient, as in PyTorch), and optionally
    `inverse` (for each input entry, the position of its value in the output; x's shape) and
    `counts`. With `dim`, the distinct slices along `dim`. Returns a tensor, or a tuple
    (output, inverse?, counts?) when either extra is asked for."""
    _tensor_arg("unique", x)
    xp = x.xp
    if dim is not None:
        d = dim_index("unique", dim, x.ndim)
        # distinct slices: a lexicographic comparison of whole slices, done on a host copy
        host = x.xp.to_numpy(x.array)
        out, inv, cnt = np.unique(host, return_inverse=True, return_counts=True, axis=d)
        res = [_wrap(xp.from_numpy(np.ascontiguousarray(out)), xp)]
        if return_inverse:
            res.append(_wrap(xp.from_numpy(inv.reshape(-1).astype(np.int64)), xp))
        if return_counts:
            res.append(_wrap(xp.from_numpy(cnt.astype(np.int64)), xp))
        return res[0] if len(res) == 1 else tuple(res)
    flat = xp.reshape(x.array, (-1,))
    order = _argsort_array(xp, flat, 0, False)
    return _runs(x, xp.take(flat, order, axis=0), order, return_inverse, return_counts)


def _runs(x, s, order, return_inverse, return_counts):
    """The runs of equal neighbours in the 1-D array s (x's entries in the given order, or None for
    x's own order): first values, and optionally each entry's run (x's shape) and the run lengths."""
    xp = x.xp
    i64 = _i64(xp)
    n = s.shape[0]
    new = xp.concat([xp.ones((1,), dtype=xp.bool), s[1:] != s[:-1]]) if n else xp.zeros((0,), dtype=xp.bool)
    res = [_wrap(s[new], xp)]
    if return_inverse:
        group = xp.cumulative_sum(xp.astype(new, i64)) - 1
        if order is not None:
            group = xp.take(group, xp.argsort(order, stable=True), axis=0)
        res.append(_wrap(xp.reshape(group, x.shape), xp))
    if return_counts:
        starts = xp.nonzero(new)[0]
        ends = xp.concat([starts[1:], xp.asarray([n], dtype=starts.dtype)]) if n else starts
        res.append(_wrap(xp.astype(ends - starts, i64), xp))
    return res[0] if len(res) == 1 else tuple(res)


@dim_aliases
def unique_consecutive(x, return_inverse=False, return_counts=False, dim=None):
    """Collapse runs of equal neighbours (in row-major order, or of equal slices along `dim`):
    output, and optionally inverse (x's shape; len along dim) and counts. No gradient."""
    _tensor_arg("unique_consecutive", x)
    xp = x.xp
    if dim is None:
        return _runs(x, xp.reshape(x.array, (-1,)), None, return_inverse, return_counts)
    d = dim_index("unique_consecutive", dim, x.ndim)
    host = np.moveaxis(xp.to_numpy(x.array), d, 0)          # slices compared on a host copy
    n = host.shape[0]
    flat = host.reshape(n, -1)
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = np.any(flat[1:] != flat[:-1], axis=1)
    res = [_wrap(xp.from_numpy(np.ascontiguousarray(np.moveaxis(host[new], 0, d))), xp)]
    if return_inverse:
        res.append(_wrap(xp.from_numpy(np.cumsum(new).astype(np.int64) - 1), xp))
    if return_counts:
        starts = np.flatnonzero(new)
        res.append(_wrap(xp.from_numpy(np.diff(np.append(starts, n)).astype(np.int64)), xp))
    return res[0] if len(res) == 1 else tuple(res)


def nonzero(x, *, as_tuple=False):
    """Indices of the nonzero entries: (n, ndim) int64 in row-major order, or with `as_tuple` one
    1-D tensor per dim (no gradient)."""
    _tensor_arg("nonzero", x)
    xp = x.xp
    a = x.array
    if x.ndim == 0:
        hit = int(bool(xp.to_numpy(a)))
        if as_tuple:
            return (_wrap(xp.zeros((hit,), dtype=_i64(xp)), xp),)
        return _wrap(xp.zeros((hit, 0), dtype=_i64(xp)), xp)
    idx = xp.nonzero(a)
    idx = tuple(xp.astype(i, _i64(xp)) for i in idx)
    if as_tuple:
        return tuple(_wrap(i, xp) for i in idx)
    return _wrap(xp.stack(idx, axis=1), xp)


def argwhere(x):
    """Indices of the nonzero entries, (n, ndim) int64 (``nonzero(x)``)."""
    return nonzero(x)


def _search_side(op, right, side):
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"{op}: side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise RuntimeError(f"{op}: side='left' and right=True contradict each other; pass one of them")
        return side
    return "right" if right else "left"


def searchsorted(sorted_sequence, values, *, out_int32=False, right=False, side=None, sorter=None):
    """For each value, the index where it would be inserted into `sorted_sequence` (sorted along
    its last dim) to keep it sorted: the first such index (side='left') or the last ('right',
    also `right=True`). `sorted_sequence` is 1-D, or (*B, n) with `values` (*B, m); `values` may
    be a number. int64 (int32 with `out_int32`), no gradient."""
    seq = _tensor_arg("searchsorted", sorted_sequence)
    xp = seq.xp
    side = _search_side("searchsorted", right, side)
    scalar = not isinstance(values, Tensor)
    if scalar:
        v = xp.asarray(values, dtype=seq.array.dtype)
    else:
        if values.xp is not xp:
            raise RuntimeError(f"searchsorted: values are on {values.device}, sorted_sequence on {seq.device}")
        v = values.array
    s = seq.array
    if sorter is not None:
        if not isinstance(sorter, Tensor) or sorter.dtype.kind not in "iu" or sorter.shape != seq.shape:
            raise RuntimeError("searchsorted: sorter must be an integer tensor of sorted_sequence's shape")
        if sorter.numel():
            xp.check_index_range(sorter.array, seq.shape[-1] if seq.ndim else 1, "searchsorted (sorter)",
                                 negative=False)
        s = xp.take_along_axis(s, sorter.array, axis=-1)
    if s.dtype != v.dtype:
        common = xp.result_type(s, v)
        s, v = xp.astype(s, common), xp.astype(v, common)
    out_dt = xp.dtype(np.dtype("int32" if out_int32 else "int64"))
    if seq.ndim <= 1:
        s1 = xp.reshape(s, (-1,))
        r = xp.searchsorted(s1, xp.reshape(v, (-1,)), side=side)
        r = xp.reshape(r, v.shape)
    else:
        if scalar or v.ndim != s.ndim or v.shape[:-1] != s.shape[:-1]:
            raise RuntimeError(f"searchsorted: sorted_sequence of shape {seq.shape} needs values with the same "
                               f"leading dims {seq.shape[:-1]}, got "
                               f"{'a number' if scalar else values.shape}")
        lead = s.shape[:-1]
        rows = int(np.prod(lead))
        s2 = xp.reshape(s, (rows, s.shape[-1]))
        v2 = xp.reshape(v, (rows, v.shape[-1]))
        r = xp.stack([xp.searchsorted(s2[i, ...], v2[i, ...], side=side) for i in range(rows)], axis=0) if rows \
            else xp.zeros((0, v.shape[-1]), dtype=out_dt)
        r = xp.reshape(r, v.shape)
    return _wrap(xp.astype(r, out_dt), xp)


def bucketize(input, boundaries, *, out_int32=False, right=False):  # noqa: A002
    """For each entry of `input`, the index of its bucket among the 1-D sorted `boundaries`:
    i with boundaries[i-1] < x <= boundaries[i] (right=False) or boundaries[i-1] <= x < boundaries[i]
    (right=True). `input` may be a number (-> 0-d result)."""
    b = _tensor_arg("bucketize", boundaries)
    if b.ndim != 1:
        raise RuntimeError(f"bucketize: boundaries must be 1-D, got shape {b.shape}")
    return searchsorted(b, input, out_int32=out_int32, right=right)

