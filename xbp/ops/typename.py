"""PyTorch's legacy type names: ``t.type()`` -> ``'xbp.FloatTensor'`` and ``t.type(spec)`` to convert."""
from __future__ import annotations

import numpy as np

from .._backend import canonical_dtype

_NAMES = {
    "float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor", "int64": "LongTensor",
    "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
    "bool": "BoolTensor", "complex64": "ComplexFloatTensor", "complex128": "ComplexDoubleTensor",
}
_BY_NAME = {v: np.dtype(k) for k, v in _NAMES.items()}


def type_name(t) -> str:
    """'xbp.FloatTensor', 'xbp.cuda.LongTensor', ... (PyTorch's spelling with xbp's prefix)."""
    name = _NAMES.get(t.dtype.name, f"{t.dtype.name}Tensor")
    return ("xbp.cuda." if t.device.type == "cuda" else "xbp.") + name


def tensor_type(t, dtype=None, non_blocking=False):
    """``t.type()``: the type name; ``t.type(dtype)``: `t` converted to `dtype` (a dtype, or a
    name such as 'xbp.FloatTensor' / 'torch.cuda.LongTensor', which also moves to the GPU).
    Returns `t` itself when it already has that type, as PyTorch does."""
    if dtype is None:
        return type_name(t)
    device = None
    if isinstance(dtype, str) and dtype.endswith("Tensor"):
        spec = dtype
        for prefix in ("torch.", "xbp."):
            if spec.startswith(prefix):
                spec = spec[len(prefix):]
        if spec.startswith("cuda."):
            device, spec = "cuda", spec[len("cuda."):]
        elif t.device.type == "cuda":
            device = "cpu"                      # 'xbp.FloatTensor' names a CPU type in PyTorch
        if spec not in _BY_NAME:
            raise ValueError(f"type: unknown tensor type {dtype!r}; use e.g. 'xbp.FloatTensor', "
                             f"'xbp.LongTensor' or a dtype such as xbp.float32")
        dt = _BY_NAME[spec]
    else:
        dt = canonical_dtype(dtype)
    if dt == t.dtype and (device is None or t.device.type == device):
        return t
    return t.to(device=device, dtype=dt) if device is not None else t.to(dtype=dt)


def half(t):
    """`t` as float16 (differentiable); refused clearly on a device without float16 (strict)."""
    try:
        t.xp.dtype(np.dtype("float16"))
    except KeyError:
        raise TypeError(f"half: device {t.device!r} has no float16 dtype (array-api-strict has none); "
                        "use float32 there") from None
    return t.to(dtype=np.float16)
