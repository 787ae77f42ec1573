"""Small helpers shared by the op modules: argument normalisation and non-differentiable ops."""
from __future__ import annotations

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
    def op(*args, **kw):
        xp, arrays = unpack(name, args)
        return _wrap(f(xp, *arrays, **kw), xp)
    op.__name__ = name
    op.__qualname__ = name
    return op


def norm_axis(dim, ndim, axis=None):
    """PyTorch `dim` or Array API `axis` (int, tuple or None) -> sorted tuple of non-negative
    axes, or None for all."""
    if axis is not None:
        dim = axis
    if dim is None:
        return None
    if isinstance(dim, int):
        dim = (dim,)
    out = []
    for d in dim:
        d = int(d)
        if not -ndim <= d < max(ndim, 1):
            raise IndexError(f"dimension {d} is out of range for a tensor with {ndim} dimension(s)")
        out.append(d % ndim if ndim else 0)
    return tuple(sorted(out))


def keepdim_shape(shape, axes):
    """`shape` with the reduced `axes` (None = all) kept as size 1."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))
