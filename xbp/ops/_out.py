"""PyTorch's ``out=`` argument: write a result into a given tensor, in place.

Like PyTorch, this is refused when autograd would need to see the write (an input or `out`
requires grad, with grad mode on): the result is then not on the graph. The result is cast to
out's dtype where that is a safe cast (a float result never goes into an integer tensor);
an out of another shape is resized (replaced), with PyTorch's warning when it had elements.
"""
from __future__ import annotations

import warnings

from .._grad_mode import no_grad
from .._primitive import GRAD_STATE
from .._tensor import Tensor


def check_out(op: str, out, *inputs) -> None:
    """Refuse ``out=`` before computing anything, as PyTorch does."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{op}(): argument 'out' must be an xbp.Tensor, not {type(out).__name__}")
    if GRAD_STATE.enabled and (out.requires_grad or _any_requires_grad(inputs)):
        raise RuntimeError(f"{op}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")


def _any_requires_grad(inputs) -> bool:
    for t in inputs:
        if isinstance(t, Tensor):
            if t.requires_grad:
                return True
        elif isinstance(t, (list, tuple)) and _any_requires_grad(t):
            return True
    return False


_KIND_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_TORCH_NAMES = {"b": "Bool", "u": "Byte", "i": "Long", "f": "Float", "c": "ComplexFloat"}


def write_out(op: str, result: Tensor, out: Tensor) -> Tensor:
    """Copy `result` into `out` (same device) and return `out`."""
    from .index import copy_
    if result.xp is not out.xp:
        from .._backend import DeviceError
        raise DeviceError(f"{op}(): out is on {out.device} but the result is on {result.device}; "
                          "pass an out tensor on the inputs' device")
    rk, ok = result.dtype.kind, out.dtype.kind
    if _KIND_ORDER[rk] > _KIND_ORDER[ok]:
        raise RuntimeError(f"result type {_TORCH_NAMES[rk]} can't be cast to the desired output type "
                           f"{_TORCH_NAMES[ok]} ({op}(): the result is {result.dtype}, out is {out.dtype})")
    rs, os_ = result.array.shape, out.array.shape
    if rs != os_:
        if out.numel() != 0:
            warnings.warn(f"{op}(): an output with one or more elements was resized since it had shape "
                          f"{list(os_)}, which does not match the required output shape {list(rs)}; pass "
                          "an out tensor of the result's shape (or one with zero elements)",
                          UserWarning, stacklevel=3)
        xp = out.xp
        out.array = xp.astype(result.array, out.array.dtype) if rk != ok or result.dtype != out.dtype \
            else xp.asarray(result.array, copy=True)
        out._version[0] += 1
        return out
    with no_grad():
        copy_(out, result)
    return out
