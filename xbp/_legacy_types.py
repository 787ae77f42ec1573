"""PyTorch's legacy tensor types: ``xbp.FloatTensor([1, 2])``, ``xbp.LongTensor(2, 3)``,
``isinstance(t, xbp.FloatTensor)`` and ``t.type()`` / ``t.type("xbp.LongTensor")``.

They are not subclasses: calling one makes an `xbp.Tensor` of its dtype (a copy of the data, or
zeros of the given sizes where PyTorch leaves memory uninitialised), and `isinstance` checks the
dtype, as PyTorch does.
"""
from __future__ import annotations

import numpy as np

from ._tensor import Tensor

_TYPES: dict = {}    # name -> class
_BY_DTYPE: dict = {}  # dtype -> name


class _LegacyType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype

    def __repr__(cls):
        return f"<class 'xbp.{cls.__name__}'>"


def _make(name, dtype):
    dtype = np.dtype(dtype)

    def __new__(cls, *args, device=None):
        from ._creation import tensor, zeros
        if len(args) == 1 and isinstance(args[0], Tensor):
            return args[0].to(dtype=cls.dtype)
        if len(args) == 1 and not hasattr(args[0], "__index__"):
            return tensor(args[0], dtype=cls.dtype, device=device)
        shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], tuple) else (args or (0,))
        return zeros(*shape, dtype=cls.dtype, device=device)

    cls = _LegacyType(name, (), {"__new__": __new__, "dtype": dtype, "__module__": "xbp",
                                 "__doc__": f"``xbp.{name}(data)`` / ``xbp.{name}(*sizes)``: a {dtype} tensor."})
    _TYPES[name] = cls
    _BY_DTYPE[dtype] = name
    return cls


FloatTensor = _make("FloatTensor", "float32")
DoubleTensor = _make("DoubleTensor", "float64")
HalfTensor = _make("HalfTensor", "float16")
LongTensor = _make("LongTensor", "int64")
IntTensor = _make("IntTensor", "int32")
ShortTensor = _make("ShortTensor", "int16")
CharTensor = _make("CharTensor", "int8")
ByteTensor = _make("ByteTensor", "uint8")
BoolTensor = _make("BoolTensor", "bool")
# names without a class (PyTorch has none either): what t.type() says of complex tensors
_BY_DTYPE[np.dtype("complex64")] = "ComplexFloatTensor"
_BY_DTYPE[np.dtype("complex128")] = "ComplexDoubleTensor"
_NAMES_ONLY = {"ComplexFloatTensor": np.dtype("complex64"), "ComplexDoubleTensor": np.dtype("complex128")}


def type_name(t: Tensor) -> str:
    """``t.type()``: 'xbp.FloatTensor', or 'xbp.cuda.FloatTensor' on a GPU."""
    name = _BY_DTYPE.get(t.dtype, f"{t.dtype.name}Tensor")
    return f"xbp.cuda.{name}" if t.device.type == "cuda" else f"xbp.{name}"


def legacy_dtype(spec):
    """The dtype of a legacy type given as a class or a name ('xbp.LongTensor', 'torch.FloatTensor',
    'torch.cuda.FloatTensor'), or None if `spec` is not one."""
    if isinstance(spec, _LegacyType):
        return spec.dtype
    if isinstance(spec, str) and spec.endswith("Tensor"):
        name = spec.rsplit(".", 1)[-1]
        cls = _TYPES.get(name)
        return cls.dtype if cls is not None else _NAMES_ONLY.get(name)
    return None
