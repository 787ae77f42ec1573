"""Small helpers shared by the op modules: argument normalisation and non-differentiable ops."""
from __future__ import annotations

import operator

from .._primitive import _device_mismatch
from .._tensor import Tensor, _wrap


def unpack(name, args):
    """(backend, arrays) of args that are Tensors or scalars; checks they share one device."""
    xp = None
    out = []
    for a in args:
        if isinstance(a, Tensor):
            if xp is None:
                xp = a.xp
            elif a.xp is not xp:
                _device_mismatch(type("P", (), {"name": name})(), args)
            out.append(a.array)
        else:
            out.append(a)
    if xp is None:
        raise TypeError(f"{name}: expected at least one xbp.Tensor argument, got {[type(a).__name__ for a in args]}")
    return xp, out


def no_grad_op(name, f):
    """An op with no gradient (comparisons, sign, argmax, ...): its output never requires grad."""
    def op(*args, out=None, **kw):
        if out is not None:                 # PyTorch's out=: the result written into `out`
            from ._out import check_out, write_out
            check_out(name, out)
            return write_out(name, op(*args, **kw), out)
        xp, arrays = unpack(name, args)
        return _wrap(f(xp, *arrays, **kw), xp)
    op.__name__ = name
    op.__qualname__ = name
    return op


def norm_axis(dim, ndim, axis=None, op="reduction"):
    """PyTorch `dim` or Array API `axis` (int, tuple or None) -> sorted tuple of non-negative
    axes, or None for all."""
    if axis is not None:
        dim = axis
    if dim is None:
        return None
    return tuple(sorted(dim_tuple(op, dim, ndim)))


def pick_dim(op, dim, axis, default=None, name="dim"):
    """PyTorch's `dim` (or `dims`) or its NumPy / Array API alias `axis`: the one given. Both
    given (with `dim` not at its default) is a TypeError, as PyTorch's argument parser says."""
    if axis is None:
        return dim
    if dim is not default and dim != default:
        raise TypeError(f"{op}(): got both {name}= and axis= (two names for one argument); pass one of them")
    return axis


def pick_keepdim(op, keepdim, keepdims):
    """`keepdim` or its alias `keepdims` (Array API), as a bool."""
    if keepdims is None:
        return bool(keepdim)
    if keepdim:
        raise TypeError(f"{op}(): got both keepdim= and keepdims= (two names for one argument); pass one of them")
    return bool(keepdims)


def keepdim_shape(shape, axes):
    """`shape` with the reduced `axes` (None = all) kept as size 1."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


# --- argument checks shared by every op: dims, sizes (PyTorch's messages) -------------------------
def dim_index(op, dim, ndim):
    """One PyTorch `dim` (an int in [-ndim, ndim), or 0/-1 for a 0-d tensor) -> a non-negative
    axis. Raises IndexError with PyTorch's wording for an out-of-range dim and TypeError for a
    non-integer one (bool included), naming `op`."""
    if dim.__class__ is not int:
        if isinstance(dim, bool) or not hasattr(dim, "__index__"):
            raise TypeError(f"{op}: dim must be an integer, got {type(dim).__name__} ({dim!r})")
        dim = operator.index(dim)
    n = ndim if ndim > 0 else 1
    if not -n <= dim < n:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim + n if dim < 0 else (dim if ndim > 0 else 0)


def dim_tuple(op, dims, ndim):
    """A dim or a sequence of dims -> tuple of non-negative axes (in the given order); each is
    range-checked as `dim_index`, and a dim named twice is a RuntimeError as in PyTorch."""
    if dims.__class__ is int or not isinstance(dims, (tuple, list)):
        return (dim_index(op, dims, ndim),)
    out = tuple(dim_index(op, d, ndim) for d in dims)
    if len(set(out)) != len(out):
        dup = next(d for d in out if out.count(d) > 1)
        raise RuntimeError(f"{op}: dim {dup} appears multiple times in the list of dims {tuple(dims)}")
    return out


def check_size(op, value, what="size"):
    """A size, count or length: an int (NumPy integers accepted, bool and float refused) -> int."""
    if value.__class__ is int:
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{op}: {what} must be an integer, got {type(value).__name__} ({value!r})")
    return operator.index(value)
