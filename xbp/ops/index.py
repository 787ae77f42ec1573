"""Indexing, gathering and scattering, and the in-place operations.

Basic keys (ints, slices, None, Ellipsis) are views whose backward writes the gradient into a
zero tensor. Advanced keys (integer arrays, lists, boolean masks) are turned into flat positions
once, in forward; their backward is a scatter-add (``xp.index_add_rows``), which the standard
lacks: the Backend gives a native one (np.add.at, cupyx.scatter_add) and a portable fallback.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from .._backend import DeviceError, check_range
from .._primitive import GRAD_STATE, Primitive, _refresh_view, apply
from .._tensor import Tensor, _wrap
from ._util import dim_index, pick_dim, unpack
from .shape import _as_view, broadcast_p, permute_p, reshape, reshape_p


# --- keys ---------------------------------------------------------------------------------------
def _is_advanced(k):
    return isinstance(k, (list, Tensor)) or hasattr(k, "shape") and not isinstance(k, (int, np.integer))


def _normalize_key(x: Tensor, key):
    """-> (basic_key, none_positions, advanced). `basic_key` has no None and ends in Ellipsis (the
    form array-api-strict accepts); None dims are re-inserted by reshape."""
    if not isinstance(key, tuple):
        key = (key,)
    advanced = False
    items = []
    for k in key:
        if isinstance(k, Tensor):
            if k.ndim == 0 and k.dtype.kind in "iu":
                k = int(k.item())
            else:
                if k.xp is not x.xp:
                    raise DeviceError(f"index: index tensor is on {k.device}, the indexed tensor on {x.device}; "
                                      "move the index with .to() first")
                k = k.array
                advanced = True
        elif isinstance(k, list):
            k = x.xp.from_numpy(np.asarray(k))
            advanced = True
        elif isinstance(k, np.ndarray) and x.xp.kind != "numpy":
            k = x.xp.from_numpy(k)
            advanced = True
        elif isinstance(k, bool):
            raise IndexError("index: a Python bool is not a valid index; use a bool tensor mask")
        elif isinstance(k, slice) and not all(v is None or type(v) is int for v in (k.start, k.stop, k.step)):
            # slice bounds given as 0-d tensors or NumPy integers: strict wants Python ints
            k = slice(*(None if v is None else operator.index(v) for v in (k.start, k.stop, k.step)))
        elif isinstance(k, np.integer):
            k = int(k)
        elif not (k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))):
            if hasattr(k, "shape"):
                advanced = True
            else:
                raise IndexError(f"index: unsupported index of type {type(k).__name__}")
        items.append(k)
    if sum(k is Ellipsis for k in items) > 1:
        raise IndexError("index: an index can only have a single ellipsis ('...')")
    if advanced:
        _check_advanced(x, items)
        return tuple(items), (), True
    n_real = len([k for k in items if k is not None and k is not Ellipsis])
    if n_real > x.ndim:
        raise IndexError(f"index: too many indices ({n_real}) for a tensor of {x.ndim} dims, shape {x.shape}")
    d = 0                                    # clip slices to in-range bounds (strict refuses others)
    for i, k in enumerate(items):
        if k is Ellipsis:
            d += x.ndim - n_real
        elif k is not None:
            if isinstance(k, slice):
                items[i] = _clip_slice(k, x.array.shape[d])
            d += 1
    # where each None lands in the output
    nones, out_axis = [], 0
    for i, k in enumerate(items):
        if k is None:
            nones.append(out_axis)
            out_axis += 1
        elif k is Ellipsis:
            out_axis += x.ndim - n_real
        elif isinstance(k, slice):
            out_axis += 1
    if Ellipsis not in items:
        items.append(Ellipsis)
    basic = tuple(k for k in items if k is not None)
    return basic, tuple(nones), False


def _clip_slice(k: slice, n: int) -> slice:
    """`k` on an axis of size n as a slice with the same elements (Python's ``slice.indices``)
    whose bounds lie inside the axis: array-api-strict refuses ``x[2:100]`` or ``x[-100:3]``
    (the standard leaves out-of-range bounds unspecified). Steps keep their sign; an empty
    selection becomes ``0:0``; a bound past either end becomes None."""
    if k.start is None and k.stop is None:
        if k.step is None or k.step == 1:
            return k                         # the common ':' needs no work
        if k.step == 0:
            raise ValueError("index: slice step cannot be zero")
    start, stop, step = k.indices(n)
    m = len(range(start, stop, step))
    if m == 0:
        return slice(0, 0, 1)
    stop = start + m * step                  # one step past the last element taken
    return slice(start, stop if 0 <= stop < n else None, step)


def _check_advanced(x: Tensor, items):
    """Bounds of integer-array indices and shapes of boolean masks, on every device (CuPy would
    wrap an out-of-range index silently); clips the slices among `items` in place."""
    def used(k):
        if k is None or k is Ellipsis:
            return 0
        if hasattr(k, "dtype") and hasattr(k, "shape") and x.xp.canonical(k.dtype).kind == "b":
            return k.ndim
        return 1
    n_used = sum(used(k) for k in items)
    if n_used > x.ndim:
        raise IndexError(f"index: too many indices ({n_used} dims) for a tensor of shape {x.shape}")
    d = 0
    for i, k in enumerate(items):
        if k is Ellipsis:
            d += x.ndim - n_used
            continue
        u = used(k)
        if isinstance(k, slice):
            items[i] = _clip_slice(k, x.array.shape[d])
        elif hasattr(k, "shape") and hasattr(k, "dtype"):
            kind = x.xp.canonical(k.dtype).kind
            if kind == "b":
                if tuple(k.shape) != x.array.shape[d:d + u]:
                    raise IndexError(f"index: boolean mask of shape {tuple(k.shape)} does not match the indexed "
                                     f"dims {x.shape[d:d + u]} of a tensor of shape {x.shape}")
            elif kind in "iu":
                if math.prod(k.shape):
                    x.xp.check_index_range(k, x.shape[d], f"index (dim {d} of a tensor of shape {x.shape})")
            else:
                raise IndexError(f"index: tensors used as indices must be integer or bool, got dtype {kind!r}")
        elif isinstance(k, (int, np.integer)) and not -x.array.shape[d] <= k < x.array.shape[d]:
            raise IndexError(f"index {k} is out of bounds for dim {d} of size {x.shape[d]} (tensor shape {x.shape})")
        d += u


def _check_int_bounds(x: Tensor, key):
    """CuPy wraps out-of-range ints silently: check them on every device. `key` is basic, without
    None; entries after an Ellipsis index the last dims."""
    e = key.index(Ellipsis) if Ellipsis in key else len(key)
    before, after = key[:e], tuple(k for k in key[e + 1:] if k is not Ellipsis)
    placed = list(enumerate(before)) + [(x.ndim - len(after) + j, k) for j, k in enumerate(after)]
    for d, k in placed:
        if isinstance(k, (int, np.integer)):
            n = x.array.shape[d]
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for dim {d} of size {n} (tensor shape {x.shape})")


# --- getitem ------------------------------------------------------------------------------------
def _getitem_basic_vjp(c, g):
    xp = c.xp
    z = xp.zeros(c.shapes[0], dtype=g.dtype)
    z[c.p["key"]] = g
    return (z,)


getitem_p = Primitive("getitem", lambda xp, x, key: x[key], _getitem_basic_vjp)


def _take_flat_fwd(xp, x, pos):
    return xp.reshape(xp.take(xp.reshape(x, (-1,)), xp.reshape(pos, (-1,)), axis=0), pos.shape)


def _take_flat_vjp(c, g):
    xp = c.xp
    pos = c.p["pos"]
    n = 1
    for s in c.shapes[0]:
        n *= s
    flat = xp.index_add_rows(n, xp.reshape(pos, (-1,)), xp.reshape(g, (-1,)))
    return (xp.reshape(flat, c.shapes[0]),)


take_flat_p = Primitive("index", lambda xp, x, pos: _take_flat_fwd(xp, x, pos), _take_flat_vjp)


def getitem(x: Tensor, key):
    """x[key] for ints, slices, None, Ellipsis, integer arrays/lists/tensors and bool masks."""
    key, nones, advanced = _normalize_key(x, key)
    if advanced:
        pos = x.xp.index_positions(x.array.shape, key)
        return apply(take_flat_p, (x,), {"pos": pos})
    _check_int_bounds(x, key)
    p = {"key": key}
    out = _as_view(apply(getitem_p, (x,), p), x, getitem_p, p)
    if nones:
        shape = list(out.array.shape)
        for a in nones:
            shape.insert(a, 1)
        out = reshape(out, tuple(shape))
    return out


# --- gather / take_along_dim / index_select --------------------------------------------------------
def _gather_fwd(xp, x, idx, axis):
    pos = xp.take_along_axis(xp.reshape(xp.arange(0, _numel(x.shape), dtype=idx.dtype), x.shape), idx, axis=axis)
    return xp.take_along_axis(x, idx, axis=axis), pos


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _gather_vjp(c, g):
    xp = c.xp
    n = _numel(c.shapes[0])
    return (xp.reshape(xp.index_add_rows(n, xp.reshape(c.res, (-1,)), xp.reshape(g, (-1,))), c.shapes[0]), None)


gather_p = Primitive("gather", _gather_fwd, _gather_vjp, res=True)


def _check_index(name, x, index, dim):
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must be an integer tensor, got "
                        f"{index.dtype if isinstance(index, Tensor) else type(index).__name__}")
    if index.xp is not x.xp:
        raise DeviceError(f"{name}: index is on {index.device}, input on {x.device}; move it with .to() first")
    if index.numel():
        index.xp.check_index_range(index.array, x.shape[dim], f"{name} (dim {dim}, input shape {x.shape})",
                                   negative=False)


def gather(x, dim=None, index=None, *, axis=None, sparse_grad=False):
    """out[i][j][k] = x[i][index[i][j][k]][k] (for dim=1): PyTorch's gather. index has x's ndim."""
    dim = pick_dim("gather", dim, axis)
    if dim is None or index is None:
        raise TypeError("gather(): needs dim and index, e.g. gather(x, 1, index)")
    dim = dim_index("gather", dim, x.ndim)
    if isinstance(index, Tensor) and index.ndim != x.ndim and x.ndim > 0:
        raise RuntimeError(f"gather: index {index.shape} and input {x.shape} must have the same number of dims")
    _check_index("gather", x, index, dim)
    return apply(gather_p, (x, index), {"axis": dim})


def take_along_dim(x, indices, dim=None, *, axis=None):
    """NumPy/Array API take_along_axis (same as gather with broadcasting of index's shape)."""
    dim = pick_dim("take_along_dim", dim, axis)
    if dim is None:
        raise TypeError("take_along_dim(): needs a dim (xbp does not flatten the input)")
    return gather(x, dim, indices)


def _take_rows_vjp(c, g):
    xp = c.xp
    idx = c.ins[1]
    n = c.shapes[0][0]
    rest = tuple(g.shape[idx.ndim:])
    k = _numel(idx.shape)
    return (xp.index_add_rows(n, xp.reshape(idx, (-1,)), xp.reshape(g, (k,) + rest)), None)


def _take_rows_fwd(xp, w, idx):
    rows = xp.take(w, xp.reshape(idx, (-1,)), axis=0)
    return xp.reshape(rows, tuple(idx.shape) + tuple(w.shape[1:]))


take_rows_p = Primitive("take_rows", _take_rows_fwd, _take_rows_vjp, save="in")


def take_rows(weight, index):
    """weight[index] along dim 0 for an integer tensor `index` of any shape:
    (N, *rest), index (*I) -> (*I, *rest). Embedding lookups use it; backward is a scatter-add."""
    _check_index("take_rows", weight, index, 0)
    return apply(take_rows_p, (weight, index))


def index_select(x, dim=None, index=None, *, axis=None):
    """Select entries of a 1-D integer `index` along `dim`."""
    dim = pick_dim("index_select", dim, axis)
    if dim is None or index is None:
        raise TypeError("index_select(): needs dim and index, e.g. index_select(x, 0, index)")
    from .shape import movedim
    dim = dim_index("index_select", dim, x.ndim)
    if isinstance(index, Tensor) and index.ndim > 1:
        raise IndexError(f"index_select: index must be 0-d or 1-D, got shape {index.shape}")
    if dim == 0:
        return take_rows(x, index)
    return movedim(take_rows(movedim(x, dim, 0), index), 0, dim)


# --- scatter-add as a differentiable op (used by create_graph backward of gathers) -----------------
index_add_rows_p = Primitive(
    "index_add_rows", lambda xp, g, idx, n: xp.index_add_rows(n, idx, g),
    lambda c, g: (c.xp.take(g, c.ins[1], axis=0), None), save="in")


def index_add_rows(n, index, values):
    """zeros((n, *rest)) with values[i] added at row index[i] (duplicates add up)."""
    return apply(index_add_rows_p, (values, index), {"n": n})


# --- masks and one-hot ---------------------------------------------------------------------------
def masked_fill(x, mask, value):
    """x with `value` where `mask` (bool, broadcastable) is true."""
    from .elementwise import where
    return where(mask, value, x)


def one_hot(index, num_classes: int = -1):
    """(…) integer tensor -> (…, num_classes) int64 one-hot tensor (no gradient).

    Class indices outside [0, num_classes) raise IndexError. With `num_classes` given this is
    `check_range` (one host read, or none on CUDA: raised at the next host read or synchronize());
    ``num_classes=-1`` (the largest index + 1) needs the maximum on the host: one read."""
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError("one_hot: expects an integer tensor of class indices")
    xp = index.xp
    msg = "one_hot: class index out of range [{lo}, {hi}] for num_classes="
    if num_classes < 0:
        lo, hi = xp.int_range(index.array) if index.numel() else (0, -1)   # one read for both bounds
        num_classes = hi + 1
        if lo < 0:
            raise IndexError(msg.replace("{lo}", str(lo)).replace("{hi}", str(hi)) + str(num_classes))
    elif index.numel():
        check_range(xp, index.array, 0, num_classes - 1, msg + str(num_classes))
    classes = xp.arange(0, num_classes, dtype=index.array.dtype)
    eq = xp.expand_dims(index.array, axis=-1) == classes
    return _wrap(xp.astype(eq, xp.dtype(np.dtype("int64"))), xp)


# --- in-place operations ---------------------------------------------------------------------------
# With autograd recording (grad mode on and the tensor or the other operand requires grad), an
# in-place op is computed out of place from a private copy of the tensor's old value (so what the
# new node saves is never overwritten), the result is written into the tensor's own memory (so its
# views see it, as in PyTorch), and the tensor becomes the output of the recorded node. A view made
# by basic indexing passes the write on to its parent as a recorded setitem, so `y[0] += 1` and
# `v = y[1:]; v *= 2` both update y's graph. The shared version counter is bumped, so a node that
# saved the overwritten memory refuses to run backward.
def _view_chain(x: Tensor, op: str):
    """[(parent, primitive, params), ...] from x up to the tensor that owns its memory; refuses
    what cannot be recorded (a leaf that requires grad, an expanded view)."""
    chain, t = [], x
    while t._base is not None and t._view is not None:
        parent, prim, params = t._view[0], t._view[1], t._view[2]
        if prim is broadcast_p:
            raise RuntimeError(f"{op}: in-place change of an expanded (broadcast) view of shape {t.shape}: several "
                               "elements share one memory location; .clone() it first")
        chain.append((parent, prim, params))
        t = parent
    if t.requires_grad and t.grad_fn is None:
        what = "a leaf tensor" if t is x else f"a view (shape {x.shape}) of a leaf tensor"
        raise RuntimeError(f"{op}: in-place change of {what} that requires grad (shape {t.shape}); "
                           "do it under `with xbp.no_grad():` (as optimizers do) or on a .clone()")
    return chain


def _inverse_view(parent: Tensor, prim, params, new: Tensor) -> Tensor:
    """The parent's new value (on the graph) after its view made by `prim` became `new`."""
    if prim is getitem_p:
        return apply(setitem_p, (parent, new), params)
    if prim is reshape_p:
        return apply(reshape_p, (new,), {"shape": parent.array.shape})
    axes = params["axes"]                                  # permute
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return apply(permute_p, (new,), {"axes": tuple(inv)})


def _check_inplace(x: Tensor, op: str):
    """Refusals for an in-place op that autograd does not record."""
    if not GRAD_STATE.enabled:
        return
    if x.requires_grad and x.grad_fn is None:
        raise RuntimeError(f"{op}: in-place change of a leaf tensor that requires grad (shape {x.shape}); "
                           "do it under `with xbp.no_grad():` (as optimizers do) or on a .clone()")
    if x._base is not None and x._base.requires_grad:
        raise RuntimeError(f"{op}: in-place change of a view (shape {x.shape}) of a tensor that requires grad, "
                           "made under no_grad; use an out-of-place op or .clone() the view first")


def _recording(x: Tensor, other) -> bool:
    return GRAD_STATE.enabled and (x.requires_grad or (isinstance(other, Tensor) and other.requires_grad))


def _record_inplace(x: Tensor, op: str, compute) -> Tensor:
    """x <- compute(old x), recorded; see the comment above."""
    chain = _view_chain(x, op)
    if x._view is not None and x._version[0] != x._view[3]:
        _refresh_view(x)
    old = _wrap(x.xp.asarray(x.array, copy=True), x.xp, x.requires_grad, x.grad_fn)
    out = compute(old)
    if out.array.shape != x.array.shape:
        raise RuntimeError(f"{op}: the result has shape {out.shape} but the tensor being changed in place has "
                           f"shape {x.shape}; an in-place op cannot change a tensor's shape")
    if out.dtype != x.dtype:
        from .device import astype
        out = astype(out, x.dtype)
    x.xp.setitem(x.array, (Ellipsis,), out.array)
    x.grad_fn = out.grad_fn
    x.requires_grad = out.requires_grad
    new = out
    for parent, prim, params in chain:   # write-through: e.g. parent <- setitem(parent, key, new)
        p_new = _inverse_view(parent, prim, params, new)
        parent.grad_fn = p_new.grad_fn
        parent.requires_grad = p_new.requires_grad
        new = p_new
    x._version[0] += 1
    t = x                                # x and the parents just updated are in sync again
    while t._view is not None:
        t._view[3] = x._version[0]
        t = t._view[0]
    return x


_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_KIND_NAME = {"b": "Bool", "u": "Byte", "i": "Long", "f": "Float", "c": "ComplexFloat"}


def _check_inplace_cast(name, x: Tensor, result_kind: str) -> None:
    """PyTorch's in-place rule: the result's dtype category must not be above the tensor's (a float
    result cannot be written into an integer tensor, an integer one into a bool tensor)."""
    k = x.dtype.kind
    if _KIND_RANK[result_kind] > _KIND_RANK[k]:
        raise RuntimeError(f"{name}: result type {_KIND_NAME[result_kind]} can't be cast to the desired "
                           f"output type {_KIND_NAME[k]} (tensor dtype {x.dtype}); convert the tensor first, "
                           f"e.g. x = x.to(xbp.float32), or use the out-of-place op")


def _operand_kind(other) -> str:
    if isinstance(other, Tensor):
        return other.dtype.kind
    if isinstance(other, bool):
        return "b"
    if isinstance(other, int):
        return "i"
    if isinstance(other, float):
        return "f"
    if isinstance(other, complex):
        return "c"
    return getattr(getattr(other, "dtype", None), "kind", "f")


def _inplace_binary(name, op, array_iop):
    def f(x: Tensor, other):
        kind = _operand_kind(other)
        if name == "div_" and kind in "biu":
            kind = "f"                       # true division has a float result
        if kind != x.dtype.kind:
            _check_inplace_cast(name, x, kind)
        if _recording(x, other):
            return _record_inplace(x, name, lambda old: op(old, other))
        _check_inplace(x, name)
        xp, (a, b) = unpack(name, (x, other))
        if isinstance(other, Tensor) and other.dtype != x.dtype:
            b = xp.astype(b, a.dtype)        # float32 += float64 or += int: keep x's dtype (strict refuses otherwise)
        elif b.__class__ not in (int, float, bool) and isinstance(b, np.generic):
            b = b.item()
        out = array_iop(a, xp.unaliased(a, b))
        if out is not a:                     # a backend that does not update in place
            xp.setitem(a, (Ellipsis,), out)
        x._version[0] += 1
        return x
    f.__name__ = f.__qualname__ = name
    return f


def _iadd(a, b):
    a += b
    return a


def _isub(a, b):
    a -= b
    return a


def _imul(a, b):
    a *= b
    return a


def _idiv(a, b):
    a /= b
    return a


def _make_inplace():
    from . import elementwise as E
    return (_inplace_binary("add_", E.add, _iadd), _inplace_binary("sub_", E.sub, _isub),
            _inplace_binary("mul_", E.mul, _imul), _inplace_binary("div_", E.div, _idiv))


add_, sub_, mul_, div_ = _make_inplace()


def _setitem_fwd(xp, x, v, key):
    y = xp.asarray(x, copy=True)
    xp.setitem(y, key, v)
    return y


def _setitem_vjp(c, g):
    xp = c.xp
    key = c.p["key"]
    gx = gv = None
    if c.needs[0]:
        gx = xp.asarray(g, copy=True)
        xp.setitem(gx, key, 0.0)
    if c.needs[1]:
        gv = xp.getitem(g, key)
    return gx, gv


setitem_p = Primitive("setitem", _setitem_fwd, _setitem_vjp)


def setitem_(x: Tensor, key, value):
    """x[key] = value: in place; recorded in the graph when x or value requires grad."""
    key, nones, advanced = _normalize_key(x, key)
    if nones:
        raise IndexError("setitem: None in an assignment index is not supported")
    if not advanced:
        _check_int_bounds(x, key)
    value = _host_value(value, x)
    if isinstance(value, Tensor) and value.xp is not x.xp:
        from .._primitive import _device_mismatch
        _device_mismatch(setitem_p, (x, value))
    if isinstance(value, Tensor) and value.dtype != x.dtype:
        value = value.to(dtype=x.dtype)
    if _recording(x, value):
        return _record_inplace(x, "setitem", lambda old: apply(setitem_p, (old, value), {"key": key}))
    _check_inplace(x, "setitem")
    xp, (a, v) = unpack("setitem", (x, value))
    xp.setitem(a, key, v)
    x._version[0] += 1
    return x


def _host_value(value, x: Tensor):
    """NumPy scalars -> Python numbers; lists and NumPy arrays -> tensors on x's device and dtype."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return _wrap(x.xp.from_numpy(np.asarray(value, dtype=x.dtype)), x.xp)
    return value


def fill_(x: Tensor, value):
    """Fill with a number, in place (on the graph, the old value gets no gradient)."""
    if isinstance(value, Tensor):
        return copy_(x, value)
    if isinstance(value, np.generic):
        value = value.item()
    if _recording(x, None):
        return _record_inplace(x, "fill_", lambda old: apply(setitem_p, (old, value), {"key": (Ellipsis,)}))
    _check_inplace(x, "fill_")
    x.xp.setitem(x.array, (Ellipsis,), value)
    x._version[0] += 1
    return x


def copy_(x: Tensor, src):
    """Copy `src` (broadcastable, same device) into x, in place; differentiable w.r.t. src."""
    src = _host_value(src, x)
    if isinstance(src, Tensor) and src.xp is not x.xp:
        raise DeviceError(f"copy_: source is on {src.device}, destination on {x.device}; move it with .to() first")
    if isinstance(src, Tensor):
        from .shape import broadcast_to
        try:
            src = broadcast_to(src.to(dtype=x.dtype), x.array.shape)
        except ValueError:
            raise RuntimeError(f"copy_: source shape {src.shape} cannot be broadcast to {x.shape}") from None
    if _recording(x, src):
        return _record_inplace(x, "copy_", lambda old: apply(setitem_p, (old, src), {"key": (Ellipsis,)}))
    _check_inplace(x, "copy_")
    v = src.array if isinstance(src, Tensor) else src
    x.xp.setitem(x.array, (Ellipsis,), v)
    x._version[0] += 1
    return x


def inplace_(x: Tensor, name: str, fn) -> Tensor:
    """x <- fn(x) in place for any out-of-place op `fn` (clamp_, relu_, ...), recorded like add_."""
    if _recording(x, None):
        return _record_inplace(x, name, fn)
    _check_inplace(x, name)
    from .._grad_mode import no_grad
    with no_grad():
        out = fn(x)
    if out.array.shape != x.array.shape:
        raise RuntimeError(f"{name}: the result has shape {out.shape} but the tensor has shape {x.shape}")
    if out.dtype != x.dtype:
        _check_inplace_cast(name, x, out.dtype.kind)
    v = out.array if out.dtype == x.dtype else x.xp.astype(out.array, x.array.dtype)
    x.xp.setitem(x.array, (Ellipsis,), v)
    x._version[0] += 1
    return x
