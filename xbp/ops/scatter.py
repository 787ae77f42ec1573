"""Scattering: scatter, scatter_add, scatter_reduce, index_add, index_copy, index_fill,
masked_scatter, and their in-place forms.

The accumulating ones are composed from `index_add_rows` (a differentiable scatter-add whose VJP
is a gather; its backend body is np.add.at / cupyx.scatter_add / a portable sort-and-segment-sum),
the writing ones from a gather through the inverse position map (`_place`: bit-exact values), and
`where`, so gradients flow to the input and the source to any order on every backend.

Duplicate targets: scatter_add, index_add and scatter_reduce combine every contribution, as
PyTorch. scatter, index_copy and masked_scatter write one value per target; where an index
repeats, the LAST source element wins (PyTorch leaves the choice unspecified) and the gradient
goes to that element only, so the gradient always matches the value computed.
"""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor, _wrap
from ._util import dim_index
from .._primitive import apply
from .index import _check_index, index_add_rows, inplace_, take_rows_p
from .sorting import dim_aliases

_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def _i64(xp):
    return xp.dtype(np.dtype("int64"))


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _positions(xp, shape, dim, index):
    """Flat positions in an array of `shape` targeted by `index` along `dim`: for the index entry at
    coordinates c, c with c[dim] replaced by index[c] (the scatter/gather addressing)."""
    i64 = _i64(xp)
    strides = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    pos = xp.astype(index, i64) * strides[dim]
    for k, s in enumerate(index.shape):
        if k != dim and s:
            r = xp.reshape(xp.arange(0, s, dtype=i64) * strides[k], tuple(s if j == k else 1 for j in range(index.ndim)))
            pos = pos + r
    return xp.reshape(pos, (-1,))


def _check_scatter(op, x, dim, index, src):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be an xbp.Tensor, got {type(x).__name__}")
    d = dim_index(op, dim, x.ndim)
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer (int64) tensor, got "
                        f"{index.dtype if isinstance(index, Tensor) else type(index).__name__}")
    nd = max(x.ndim, 1)
    if max(index.ndim, 1) != nd:
        raise RuntimeError(f"{op}: index {index.shape} must have the same number of dims as the input {x.shape}")
    xs = x.shape if x.ndim else (1,)
    ishape = index.shape if index.ndim else (1,)
    if isinstance(src, Tensor):
        if src.xp is not x.xp:
            raise RuntimeError(f"{op}: src is on {src.device}, the input on {x.device}; move it with .to() first")
        if max(src.ndim, 1) != nd:
            raise RuntimeError(f"{op}: src {src.shape} must have the same number of dims as the input {x.shape}")
        if src.dtype != x.dtype:
            raise RuntimeError(f"{op}: expected src to have the input's dtype {x.dtype}, got {src.dtype}; "
                               "convert it with .to(x.dtype)")
        ss = src.shape if src.ndim else (1,)
        if any(i > s for i, s in zip(ishape, ss)):
            raise RuntimeError(f"{op}: index {index.shape} must not be larger than src {src.shape} in any dim")
    if any(i > s for k, (i, s) in enumerate(zip(ishape, xs)) if k != d):
        raise RuntimeError(f"{op}: index {index.shape} must not be larger than the input {x.shape} in any dim "
                           f"apart from dim {d}")
    _check_index(op, x if x.ndim else _wrap(x.xp.reshape(x.array, (1,)), x.xp), index, d)
    return d


def _src_part(src, index):
    """src restricted to index's extent, flattened (differentiable)."""
    from .shape import reshape
    if src.ndim and src.shape != index.shape:
        src = src[tuple(slice(0, s) for s in index.shape)]
    return reshape(src, (-1,))


def _winners(xp, pos):
    """bool (k,): whether each scatter entry is the last one writing its target position."""
    k = pos.shape[0]
    order = xp.argsort(pos, stable=True)
    ps = xp.take(pos, order, axis=0)
    last = xp.concat([ps[:-1] != ps[1:], xp.ones((1,), dtype=xp.bool)]) if k else xp.zeros((0,), dtype=xp.bool)
    inv = xp.argsort(order, stable=True)
    return xp.take(last, inv, axis=0)


def _counts(xp, n, pos):
    """int64 (n,): how many entries of `pos` name each position, exactly (sort + searchsorted; no
    scatter-add, whose integer support varies by backend)."""
    i64 = _i64(xp)
    if pos.shape[0] == 0:
        return xp.zeros((n,), dtype=i64)
    sp = xp.sort(pos)
    rows = xp.arange(0, n, dtype=i64)
    return xp.astype(xp.searchsorted(sp, rows, side="right") - xp.searchsorted(sp, rows, side="left"), i64)


def _hit(xp, n, pos):
    """bool (n,): positions written at least once."""
    return _counts(xp, n, pos) > 0


def _place(n, pos, vals, valid=None):
    """((n, *rest) tensor with vals[e] at row pos[e] for the valid entries, zeros elsewhere; bool (n,)
    array of the rows written). The valid entries' positions must be distinct. Done as a gather
    through the inverse map (sort the positions, searchsorted each row), so values land bit-exact
    (a portable scatter-add would round them through its segment sums) and the gradient is a
    gather's, to any order."""
    from .elementwise import where
    xp = vals.xp
    i64 = _i64(xp)
    k = pos.shape[0]
    rest = tuple(vals.shape[1:])
    if k == 0:
        return _wrap(xp.zeros((n,) + rest, dtype=vals.array.dtype), xp), xp.zeros((n,), dtype=xp.bool)
    key = pos if valid is None else xp.where(valid, pos, n)
    order = xp.argsort(key, stable=True)
    sk = xp.take(key, order, axis=0)
    rows = xp.arange(0, n, dtype=i64)
    j = xp.minimum(xp.astype(xp.searchsorted(sk, rows), i64), k - 1)
    found = xp.take(sk, j, axis=0) == rows
    taken = apply(take_rows_p, (vals, _wrap(xp.take(order, j, axis=0), xp)))
    mask = _wrap(xp.reshape(found, (n,) + (1,) * len(rest)), xp)
    zero = False if vals.dtype.kind == "b" else 0
    return where(mask, taken, zero), found


def _scatter_into(x, pos, values, valid):
    """x with its flat positions `pos` set to `values` (1-D) for the `valid` entries."""
    from .elementwise import where
    from .shape import reshape
    xp = x.xp
    placed, hit = _place(x.numel(), pos, values, valid)
    return where(_wrap(xp.reshape(hit, x.shape), xp), reshape(placed, x.shape), x)


def _scalar_value(op, x, value):
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise RuntimeError(f"{op}: value must be a number or a 1-element tensor, got shape {value.shape}")
        return value
    if isinstance(value, (bool, int, float, np.generic)):
        return value.item() if isinstance(value, np.generic) else value
    raise TypeError(f"{op}: value must be a number, got {type(value).__name__}")


@dim_aliases
def scatter(input, dim, index, src=None, *, value=None, reduce=None):  # noqa: A002
    """input with ``out[i][index[i][j]] = src[i][j]`` (for dim=1; likewise in any dim): index has
    input's number of dims and is no larger than src (and than input outside `dim`). `src` may be a
    number (or pass `value=`). reduce='add' / 'multiply' accumulate instead (see scatter_reduce).
    Where an index repeats, the last source element wins. Differentiable in input and src."""
    from .elementwise import where
    from .shape import reshape
    if isinstance(input, Tensor):
        dim_index("scatter", dim, input.ndim)       # the dim first, as PyTorch checks it
    if src is None and value is None:
        raise TypeError("scatter: pass src (a tensor or a number) or value=")
    if src is None:
        src = value
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
        if not isinstance(src, Tensor):
            from .._creation import full
            src = full(index.shape, src, dtype=input.dtype, device=input.xp)
        return scatter_reduce(input, dim, index, src, "sum" if reduce == "add" else "prod")
    is_tensor = isinstance(src, Tensor) and src.ndim > 0
    d = _check_scatter("scatter", input, dim, index, src if is_tensor else None)
    xp = input.xp
    shape = input.shape if input.ndim else (1,)
    idx = index.array if index.ndim else xp.reshape(index.array, (1,))
    pos = _positions(xp, shape, d, idx)
    hit = _hit(xp, _numel(shape), pos)
    if not is_tensor:
        v = _scalar_value("scatter", input, src)
        return where(_wrap(xp.reshape(hit, input.shape), xp), v, input)
    vals = _src_part(src, index if index.ndim else reshape(index, (1,)))
    return _scatter_into(input, pos, vals, _winners(xp, pos))


@dim_aliases
def scatter_add(input, dim, index, src):  # noqa: A002
    """input with src's entries added at the positions index names along `dim` (repeated indices
    add up): ``out[i][index[i][j]] += src[i][j]`` for dim=1."""
    from .shape import reshape
    d = _check_scatter("scatter_add", input, dim, index, src)
    if not isinstance(src, Tensor):
        raise TypeError("scatter_add: src must be a tensor")
    xp = input.xp
    shape = input.shape if input.ndim else (1,)
    idx = index.array if index.ndim else xp.reshape(index.array, (1,))
    pos = _positions(xp, shape, d, idx)
    added = index_add_rows(_numel(shape), _wrap(pos, xp), _src_part(src, index if index.ndim else reshape(index, (1,))))
    return input + reshape(added, input.shape)


@dim_aliases
def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):  # noqa: A002
    """Reduce src's entries into input at the positions index names along `dim`: reduce is 'sum',
    'prod', 'mean', 'amax' or 'amin'; with include_self the input's own value takes part, else
    only the scattered values do (untouched positions keep input). amax/amin share the gradient
    evenly among tied entries, as PyTorch."""
    from . import elementwise as E
    from .reduce import amax, amin, prod
    from .shape import cat, reshape
    if reduce not in _REDUCES:
        raise RuntimeError(f"scatter_reduce: reduce must be one of {_REDUCES}, got {reduce!r}")
    if not isinstance(src, Tensor):
        raise TypeError("scatter_reduce: src must be a tensor")
    d = _check_scatter("scatter_reduce", input, dim, index, src)
    xp = input.xp
    shape = input.shape if input.ndim else (1,)
    n = _numel(shape)
    idx = index.array if index.ndim else xp.reshape(index.array, (1,))
    pos = _positions(xp, shape, d, idx)
    vals = _src_part(src, index if index.ndim else reshape(index, (1,)))
    hit = _hit(xp, n, pos)
    hit_t = _wrap(xp.reshape(hit, input.shape), xp)
    if reduce in ("sum", "mean"):
        total = reshape(index_add_rows(n, _wrap(pos, xp), vals), input.shape)
        if reduce == "sum":
            return input + total if include_self else E.where(hit_t, total, input)
        cnt = xp.reshape(_counts(xp, n, pos), input.shape)
        integer = input.dtype.kind in "iub"
        if include_self:
            num, den = input + total, _wrap(cnt + 1, xp)
        else:
            num, den = total, _wrap(xp.where(cnt > 0, cnt, 1), xp)
        den = den if integer else den.to(dtype=input.dtype)
        mean = num // den if integer else num / den
        return mean if include_self else E.where(hit_t, mean, input)
    # prod / amax / amin: the members of each target's group laid out in a padded (G, K) block
    # (filled with the reduction's identity), reduced along K by the differentiable prod/amax/amin
    flat_in = reshape(input, (-1,))
    if include_self:
        members = cat([flat_in, vals], 0)
        targets = xp.concat([xp.arange(0, n, dtype=_i64(xp)), pos])
    else:
        members, targets = vals, pos
    m = targets.shape[0]
    if m == 0:
        return input * 1
    i64 = _i64(xp)
    order = xp.argsort(targets, stable=True)
    ts = xp.take(targets, order, axis=0)
    new = xp.concat([xp.ones((1,), dtype=xp.bool), ts[1:] != ts[:-1]])
    run = xp.cumulative_sum(xp.astype(new, i64)) - 1
    starts = xp.nonzero(new)[0]
    rank = xp.arange(0, m, dtype=i64) - xp.take(xp.astype(starts, i64), run, axis=0)
    groups = int(starts.shape[0])
    width = int(xp.to_numpy(xp.max(rank))) + 1
    slot_sorted = run * width + rank
    slot = xp.take(slot_sorted, xp.argsort(order, stable=True), axis=0)
    block, occupied = _place(groups * width, slot, members)
    block, occupied = reshape(block, (groups, width)), xp.reshape(occupied, (groups, width))
    if reduce == "prod":
        fill = 1
    elif input.dtype.kind == "f":
        fill = float("-inf") if reduce == "amax" else float("inf")
    else:
        info = np.iinfo(input.dtype) if input.dtype.kind in "iu" else None
        fill = (info.min if reduce == "amax" else info.max) if info is not None else (reduce == "amin")
    block = E.where(_wrap(occupied, xp), block, fill)
    red = {"prod": prod, "amax": amax, "amin": amin}[reduce](block, 1)
    group_target = xp.take(ts, xp.astype(starts, i64), axis=0)
    placed, _ = _place(n, group_target, red)
    placed = reshape(placed, input.shape)
    return E.where(hit_t, placed, input) if not include_self else placed


def _index_along(op, x, dim, index, source=None):
    """Checks for the index_* family: a 0-d/1-D integer index in [0, x.shape[dim]); source (if given)
    has x's shape except len(index) along dim."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be an xbp.Tensor, got {type(x).__name__}")
    d = dim_index(op, dim, x.ndim)
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer (int64) tensor, got "
                        f"{index.dtype if isinstance(index, Tensor) else type(index).__name__}")
    if index.ndim > 1:
        raise IndexError(f"{op}: index must be 0-d or 1-D, got shape {index.shape}")
    xs = x if x.ndim else _wrap(x.xp.reshape(x.array, (1,)), x.xp)
    _check_index(op, xs, index, d)
    if source is not None:
        if not isinstance(source, Tensor):
            raise TypeError(f"{op}: source must be a tensor, got {type(source).__name__}")
        if source.xp is not x.xp:
            raise RuntimeError(f"{op}: source is on {source.device}, the input on {x.device}")
        want = xs.shape[:d] + (index.numel(),) + xs.shape[d + 1:]
        got = source.shape if source.ndim else (1,)
        if got != want and not (index.ndim == 0 and source.shape == x.shape[:d] + x.shape[d + 1:]):
            raise RuntimeError(f"{op}: source of shape {source.shape} does not match: expected {want} "
                               f"(the input {x.shape} with dim {d} of size len(index) = {index.numel()})")
        if source.dtype != x.dtype:
            raise RuntimeError(f"{op}: source dtype {source.dtype} differs from the input's {x.dtype}; "
                               "convert it with .to(x.dtype)")
    return d


def _rows_first(t, d, k, like):
    """source (len(index) along dim d) -> (k, *rest) with dim d first."""
    from .shape import movedim, reshape
    shape = like.shape if like.ndim else (1,)
    want = shape[:d] + (k,) + shape[d + 1:]
    if t.shape != want:
        t = reshape(t, want)
    return movedim(t, d, 0) if d else t


def _rows_back(t, d, like):
    from .shape import movedim, reshape
    t = movedim(t, 0, d) if d else t
    return reshape(t, like.shape) if t.shape != like.shape else t


@dim_aliases
def index_add(input, dim, index, source, *, alpha=1):  # noqa: A002
    """input with ``alpha * source`` added along `dim` at the rows `index` names (repeats add up):
    out[..., index[i], ...] += alpha * source[..., i, ...]."""
    d = _index_along("index_add", input, dim, index, source)
    idx = index if index.ndim else index.reshape(1)
    n = input.shape[d] if input.ndim else 1
    rows = index_add_rows(n, idx, _rows_first(source, d, idx.shape[0], input))
    added = _rows_back(rows, d, input)
    return input + (added if alpha == 1 else added * alpha)


def _row_mask(xp, n, idx, d, like):
    hit = _hit(xp, n, xp.astype(idx, _i64(xp)))
    nd = max(like.ndim, 1)
    m = xp.reshape(hit, tuple(n if j == d else 1 for j in range(nd)))
    return _wrap(xp.reshape(m, tuple(1 for _ in like.shape)) if like.ndim == 0 else m, xp)


@dim_aliases
def index_copy(input, dim, index, source):  # noqa: A002
    """input with the rows `index` names along `dim` replaced by source's rows
    (out[..., index[i], ...] = source[..., i, ...]); for a repeated index the last row wins."""
    from .elementwise import where
    d = _index_along("index_copy", input, dim, index, source)
    xp = input.xp
    idx = index if index.ndim else index.reshape(1)
    n = input.shape[d] if input.ndim else 1
    rows = _rows_first(source, d, idx.shape[0], input)
    pos = xp.astype(idx.array, _i64(xp))
    placed, _ = _place(n, pos, rows, _winners(xp, pos))
    return where(_row_mask(xp, n, idx.array, d, input), _rows_back(placed, d, input), input)


@dim_aliases
def index_fill(input, dim, index, value):  # noqa: A002
    """input with the rows `index` names along `dim` set to `value` (a number or a 1-element tensor,
    differentiable)."""
    from .elementwise import where
    from .shape import reshape
    d = _index_along("index_fill", input, dim, index)
    value = _scalar_value("index_fill", input, value)
    if isinstance(value, Tensor) and value.ndim:
        value = reshape(value, ())
    xp = input.xp
    idx = index.array if index.ndim else xp.reshape(index.array, (1,))
    n = input.shape[d] if input.ndim else 1
    return where(_row_mask(xp, n, idx, d, input), value, input)


def masked_scatter(input, mask, source):  # noqa: A002
    """input with the positions where `mask` (bool, broadcastable to input) is true filled, in
    row-major order, with consecutive entries of `source` (which needs at least that many)."""
    from .elementwise import where
    from .shape import broadcast_to, reshape
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        raise TypeError(f"masked_scatter: mask must be a bool tensor, got "
                        f"{mask.dtype if isinstance(mask, Tensor) else type(mask).__name__}")
    if not isinstance(source, Tensor) or source.dtype != input.dtype:
        raise RuntimeError("masked_scatter: source must be a tensor with the input's dtype "
                           f"{input.dtype}")
    try:
        m = broadcast_to(mask, input.shape)
    except ValueError:
        raise RuntimeError(f"masked_scatter: mask of shape {mask.shape} cannot be broadcast to the input's "
                           f"shape {input.shape}") from None
    xp = input.xp
    flat_mask = xp.reshape(m.array, (-1,))
    pos = xp.astype(xp.nonzero(flat_mask)[0], _i64(xp))
    k = int(pos.shape[0])
    if source.numel() < k:
        raise RuntimeError(f"masked_scatter: the mask selects {k} positions but source has only "
                           f"{source.numel()} elements")
    vals = reshape(source, (-1,))[0:k]
    placed, _ = _place(input.numel(), pos, vals)
    return where(m, reshape(placed, input.shape), input)


# --- in place (recorded on the graph like add_) -----------------------------------------------------
@dim_aliases
def scatter_(input, dim, index, src=None, *, value=None, reduce=None):  # noqa: A002
    """In-place `scatter` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "scatter_", lambda t: scatter(t, dim, index, src, value=value, reduce=reduce))


@dim_aliases
def scatter_add_(input, dim, index, src):  # noqa: A002
    """In-place `scatter_add` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "scatter_add_", lambda t: scatter_add(t, dim, index, src))


@dim_aliases
def scatter_reduce_(input, dim, index, src, reduce, *, include_self=True):  # noqa: A002
    """In-place `scatter_reduce` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "scatter_reduce_",
                    lambda t: scatter_reduce(t, dim, index, src, reduce, include_self=include_self))


@dim_aliases
def index_add_(input, dim, index, source, *, alpha=1):  # noqa: A002
    """In-place `index_add` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "index_add_", lambda t: index_add(t, dim, index, source, alpha=alpha))


@dim_aliases
def index_copy_(input, dim, index, source):  # noqa: A002
    """In-place `index_copy` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "index_copy_", lambda t: index_copy(t, dim, index, source))


@dim_aliases
def index_fill_(input, dim, index, value):  # noqa: A002
    """In-place `index_fill` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "index_fill_", lambda t: index_fill(t, dim, index, value))


def masked_scatter_(input, mask, source):  # noqa: A002
    """In-place `masked_scatter` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "masked_scatter_", lambda t: masked_scatter(t, mask, source))


# --- index_put / take / put: advanced-index and flat-position forms -----------------------------------
def _flat_positions(op, x, indices):
    """Flat positions (int64 array, the indexed shape) named by a tuple of index tensors (integer or
    bool), as x[indices] would select them; bounds checked."""
    from .index import _normalize_key
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"{op}: indices must be a tuple of tensors, got {type(indices).__name__}")
    for t in indices:
        if t is not None and (not isinstance(t, Tensor) or t.dtype.kind not in "iub"):
            raise TypeError(f"{op}: each index must be an integer or bool tensor, got "
                            f"{t.dtype if isinstance(t, Tensor) else type(t).__name__}")
    key, _, advanced = _normalize_key(x, tuple(slice(None) if t is None else t for t in indices))
    if not advanced:
        raise TypeError(f"{op}: needs at least one index tensor")
    return x.xp.astype(x.xp.index_positions(x.shape, key), _i64(x.xp))


def _put_flat(op, x, pos, values, accumulate):
    from .elementwise import where
    from .shape import broadcast_to, reshape
    xp = x.xp
    if not isinstance(values, Tensor):
        from .._creation import tensor
        values = tensor(values, dtype=x.dtype, device=xp)
    if values.dtype != x.dtype:
        raise RuntimeError(f"{op}: values dtype {values.dtype} differs from the input's {x.dtype}; "
                           "convert with .to(x.dtype)")
    try:
        vals = reshape(broadcast_to(values, tuple(pos.shape)), (-1,))
    except ValueError:
        raise RuntimeError(f"{op}: values of shape {values.shape} cannot be broadcast to the indexed shape "
                           f"{tuple(pos.shape)}") from None
    flat = xp.reshape(pos, (-1,))
    n = x.numel()
    if accumulate:
        return x + reshape(index_add_rows(n, _wrap(flat, xp), vals), x.shape)
    placed, hit = _place(n, flat, vals, _winners(xp, flat))
    return where(_wrap(xp.reshape(hit, x.shape), xp), reshape(placed, x.shape), x)


def index_put(input, indices, values, accumulate=False):  # noqa: A002
    """input with ``input[indices] = values`` (accumulate=False; for a repeated position the last
    value wins) or ``+= values`` (accumulate=True: repeats add up). indices: a tuple of integer/bool
    tensors as in advanced indexing (None for a full slice); values broadcast to the indexed shape."""
    if not isinstance(input, Tensor):
        raise TypeError(f"index_put: input must be an xbp.Tensor, got {type(input).__name__}")
    return _put_flat("index_put", input, _flat_positions("index_put", input, indices), values, accumulate)


def index_put_(input, indices, values, accumulate=False):  # noqa: A002
    """In-place `index_put` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "index_put_", lambda t: index_put(t, indices, values, accumulate))


def _flat_index(op, x, index):
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got "
                        f"{index.dtype if isinstance(index, Tensor) else type(index).__name__}")
    n = x.numel()
    if index.numel():
        x.xp.check_index_range(index.array, n, f"{op} (input of {n} elements)")
    # negative positions count from the end, as PyTorch's take/put allow
    a = index.array
    return x.xp.astype(x.xp.where(a < 0, a + n, a), _i64(x.xp))


def take(input, index):  # noqa: A002
    """input treated as 1-D (row-major) and read at `index` (any shape; negative counts from the
    end) -> index's shape. Differentiable (the gradient scatter-adds back)."""
    from .shape import reshape
    pos = _flat_index("take", input, index)
    flat = reshape(input, (-1,))
    out = apply(take_rows_p, (flat, _wrap(input.xp.reshape(pos, (-1,)), input.xp)))
    return reshape(out, index.shape)


def put(input, index, source, accumulate=False):  # noqa: A002
    """input treated as 1-D with source's entries written at `index` (or added, accumulate=True)."""
    from .shape import reshape
    pos = _flat_index("put", input, index)
    if not isinstance(source, Tensor) or source.numel() != index.numel():
        raise RuntimeError(f"put: source must be a tensor with as many elements as index ({index.numel()})")
    return _put_flat("put", input, pos, reshape(source, index.shape), accumulate)


def put_(input, index, source, accumulate=False):  # noqa: A002
    """In-place `put` (recorded on the graph; bumps the version counter)."""
    return inplace_(input, "put_", lambda t: put(t, index, source, accumulate))
