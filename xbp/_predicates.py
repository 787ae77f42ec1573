"""PyTorch's small tensor predicates and counts at the top level: `xbp.is_tensor(obj)`,
`xbp.is_floating_point(t)`, `xbp.is_complex(t)`, `xbp.numel(t)`."""
from __future__ import annotations

from ._tensor import Tensor


def is_tensor(obj) -> bool:
    """True if `obj` is an xbp Tensor (a Parameter included)."""
    return isinstance(obj, Tensor)


def _need_tensor(op, t):
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be an xbp.Tensor, not {type(t).__name__}")


def is_floating_point(input) -> bool:  # noqa: A002 - PyTorch's name
    """True if `input`'s dtype is a floating-point type (float16/32/64)."""
    _need_tensor("is_floating_point", input)
    return input.dtype.kind == "f"


def is_complex(input) -> bool:  # noqa: A002
    """True if `input`'s dtype is complex64 or complex128."""
    _need_tensor("is_complex", input)
    return input.dtype.kind == "c"


def numel(input) -> int:  # noqa: A002
    """The number of elements of `input`."""
    _need_tensor("numel", input)
    return input.numel()
