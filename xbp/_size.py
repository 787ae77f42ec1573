"""`xbp.Size`: a tensor's shape, as PyTorch's `torch.Size` (a tuple of ints that prints as
``xbp.Size([3, 4])`` and has ``numel()``).

``print(t.shape)`` / ``str`` / ``repr`` show ``xbp.Size([3, 4])``; an f-string (``f"{t.shape}"``)
shows the tuple ``(3, 4)``, the form of xbp's error messages (PyTorch would show its Size form).
Shapes are plain tuples inside xbp (ops read ``x.array.shape``); a Size is built only when user
code reads ``t.shape`` / ``t.size()``, so it adds nothing to the per-op cost.
"""
from __future__ import annotations

import operator


class Size(tuple):
    """A shape: ``Size([3, 4]) == (3, 4)``; slicing and ``+`` give Sizes; ``numel()`` multiplies."""

    __slots__ = ()

    def __new__(cls, sizes=()):
        try:
            return tuple.__new__(cls, [operator.index(s) for s in sizes])
        except TypeError:
            raise TypeError(f"xbp.Size() takes an iterable of ints, got {sizes!r}") from None

    def numel(self) -> int:
        """The number of elements of a tensor of this shape (1 for ``Size([])``)."""
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, key):
        r = tuple.__getitem__(self, key)
        return tuple.__new__(Size, r) if isinstance(key, slice) else r

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(other, self))

    def __mul__(self, n):
        return tuple.__new__(Size, tuple.__mul__(self, n))

    __rmul__ = __mul__

    def __repr__(self):
        return f"xbp.Size([{', '.join(str(s) for s in self)}])"

    __str__ = __repr__

    def __format__(self, spec):
        # f"{t.shape}" keeps the plain tuple form "(3, 4)": xbp's error messages (and the tests
        # that match them) spell shapes that way; print()/str()/repr() give PyTorch's form
        return tuple.__repr__(self) if not spec else format(tuple.__repr__(self), spec)

    def __reduce__(self):
        return (Size, (tuple(self),))


_CACHE: dict = {}          # shape tuple -> its Size (immutable, so shared); a program uses few shapes


def as_size(shape) -> Size:
    """A backend shape tuple as a Size, without re-checking its entries (cached: a dict lookup
    costs half of building one)."""
    r = _CACHE.get(shape)
    if r is None:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        r = _CACHE[shape] = tuple.__new__(Size, shape)
    return r
