"""Padding layers with PyTorch's names: ConstantPad1d/2d/3d, ZeroPad1d/2d/3d, ReflectionPad1d/2d/3d,
ReplicationPad1d/2d/3d, CircularPad1d/2d/3d. `padding` is an int (every side) or PyTorch's tuple
(left, right[, top, bottom[, front, back]]); all call F.pad."""
from __future__ import annotations

from . import functional as F
from .module import Module

__all__ = [f"{kind}Pad{n}d" for kind in ("Constant", "Zero", "Reflection", "Replication", "Circular")
           for n in (1, 2, 3)]


class _PadNd(Module):
    _n = 1
    _mode = "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        if isinstance(padding, int):
            padding = (padding,) * (2 * self._n)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 2 * self._n:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of {2 * self._n} ints, "
                             f"got {padding}")
        self.padding = padding
        self.value = value

    def forward(self, input):
        """Pads the last dims of `input` by `padding` with this class's mode (constant `value`, zeros,
        reflect, replicate or circular), as `xbp.nn.functional.pad`."""
        if self._mode == "constant":
            return F.pad(input, self.padding, "constant", self.value)
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"{self.padding}, value={self.value}" if self._mode == "constant" else f"{self.padding}"


def _make(kind, mode, n, fixed_value=None):
    doc = f"Pad the last {n} dim(s) ({mode}{', with zeros' if fixed_value is not None else ''})."
    if kind == "Constant":
        def __init__(self, padding, value):
            _PadNd.__init__(self, padding, value)
    elif fixed_value is not None:
        def __init__(self, padding):  # type: ignore[misc]  # one constructor per generated class
            _PadNd.__init__(self, padding, 0.0)
    else:
        def __init__(self, padding):  # type: ignore[misc]
            _PadNd.__init__(self, padding)
    return type(f"{kind}Pad{n}d", (_PadNd,), {"_n": n, "_mode": mode, "__init__": __init__, "__doc__": doc,
                                               "__module__": __name__})


ConstantPad1d, ConstantPad2d, ConstantPad3d = (_make("Constant", "constant", n) for n in (1, 2, 3))
ZeroPad1d, ZeroPad2d, ZeroPad3d = (_make("Zero", "constant", n, 0.0) for n in (1, 2, 3))
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = (_make("Reflection", "reflect", n) for n in (1, 2, 3))
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = (_make("Replication", "replicate", n) for n in (1, 2, 3))
CircularPad1d, CircularPad2d, CircularPad3d = (_make("Circular", "circular", n) for n in (1, 2, 3))
