"""Dtype casts and device transfers, differentiable (the gradient goes back the same way)."""
from __future__ import annotations

from .._backend import canonical_dtype, get_backend
from .._primitive import Primitive, apply
from .._tensor import Tensor, _wrap


def _astype_vjp(c, g):
    return (c.xp.astype(g, c.p["back"]),)


astype_p = Primitive("astype", lambda xp, x, dtype, back: xp.astype(x, dtype), _astype_vjp)


def astype(x: Tensor, dtype) -> Tensor:
    """Cast to `dtype` (xbp.float32, "float64", ...). Float->int casts carry no gradient."""
    dt = canonical_dtype(dtype)
    if dt == x.dtype:
        return x
    native = x.xp.dtype(dt)
    if dt.kind not in "fc":
        return _wrap(x.xp.astype(x.array, native), x.xp)
    return apply(astype_p, (x,), {"dtype": native, "back": x.array.dtype})


def _transfer(src, dst, a, non_blocking=False):
    if src is dst:
        return a
    return dst.from_numpy(src.to_numpy(a), non_blocking=non_blocking)


def _to_device_vjp(c, g):
    # g lives on the destination; send it back to the source device (differentiably under
    # create_graph, where g is a Tensor)
    if isinstance(g, Tensor):
        return (to_device(g, c.p["src"]),)
    return (_transfer(c.p["dst"], c.p["src"], g),)


to_device_p = Primitive("to_device", lambda xp, x, src, dst, non_blocking: _transfer(src, dst, x, non_blocking),
                        _to_device_vjp)


def to_device(x: Tensor, device, non_blocking: bool = False) -> Tensor:
    """Copy to another device ("cpu", "cuda", "cuda:1", "strict"); differentiable.

    non_blocking: as PyTorch's. False (the default) lets the caller write to the source as soon
    as this returns (an upload from pinned memory is waited for); True promises not to until the
    device has read it (the DataLoader's pinned batches), so that upload does not wait either."""
    dst = get_backend(device)
    if dst is x.xp:
        return x
    out = apply(to_device_p, (x,), {"src": x.xp, "dst": dst, "non_blocking": bool(non_blocking)})
    out.xp = dst
    return out


clone_p = Primitive("clone", lambda xp, x: xp.asarray(x, copy=True), lambda c, g: (g,), passthrough=True)


def clone(x: Tensor) -> Tensor:
    """A copy with its own memory, still on the graph."""
    return apply(clone_p, (x,))
