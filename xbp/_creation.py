"""Creating tensors: from data, filled, ranges, and random (seeded by `xbp.manual_seed`)."""
from __future__ import annotations

import numpy as np

from ._backend import backend_of, canonical_dtype, get_backend, is_device_array
from ._random import native_rng
from ._tensor import Tensor, _wrap
from .ops._util import check_size

DEFAULT_FLOAT = [np.dtype("float32")]


def _is_array(obj):
    return is_device_array(obj)


def _finish(arr, b, requires_grad):
    t = _wrap(arr, b)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (a number, nested list, NumPy/CuPy/strict array or
    Tensor). Python floats become float32; a NumPy/CuPy array keeps its dtype (as in PyTorch).
    An array from CuPy or array-api-strict stays on its device unless `device` is given."""
    if isinstance(data, Tensor):
        data = data.detach().array
    dt = canonical_dtype(dtype)
    if isinstance(data, np.generic):          # a NumPy scalar keeps its dtype, like an array
        data = np.asarray(data)
    if _is_array(data):
        src = backend_of(data)
        b = get_backend(device) if device is not None else (src if src.kind != "numpy" else get_backend(None))
        if src is b:
            arr = src.asarray(data, copy=True)
        else:                                    # a host array may be shared by from_numpy: copy it
            host = src.to_numpy(data)
            arr = b.from_numpy(np.array(host, copy=True) if host is data else host)
        if dt is not None and b.canonical(arr.dtype) != dt:
            arr = b.astype(arr, b.dtype(dt))
        return _finish(arr, b, requires_grad)
    if isinstance(data, (list, tuple)) and data and all(_is_array(d) or isinstance(d, Tensor) for d in data):
        # a list of device arrays or tensors (tensor([cupy_a, cupy_b])): stacked where they live
        parts = [tensor(d, dtype=dtype, device=device) for d in data]
        src = parts[0].xp
        if any(p.xp is not src for p in parts):
            raise ValueError(f"tensor: the arrays in the list live on different devices "
                             f"({sorted({str(p.device) for p in parts})})")
        return _finish(src.stack([p.array for p in parts], axis=0), src, requires_grad)
    b = get_backend(device)
    host = np.asarray(data)
    if host.dtype == object:
        raise TypeError(f"tensor: cannot build a tensor from {type(data).__name__} data; "
                        "pass numbers, (nested) lists of numbers or an array")
    if dt is None:
        dt = DEFAULT_FLOAT[0] if host.dtype.kind == "f" else (np.dtype("int64") if host.dtype.kind in "iu" else host.dtype)
    # (not np.ascontiguousarray: it turns a 0-d array into shape (1,))
    # np.array(copy=True): tensor() always copies (as torch.tensor); from_numpy/as_tensor share
    return _finish(b.from_numpy(np.array(host, dtype=dt, copy=True)), b, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like `tensor`, but without a copy when `data` is already a Tensor/array of that device and dtype."""
    if isinstance(data, Tensor) and dtype is None and (device is None or get_backend(device) is data.xp):
        return data
    if _is_array(data) and device is None and dtype is None:
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(a: np.ndarray) -> Tensor:
    """Wrap a NumPy array on the CPU without copying."""
    return Tensor(np.asarray(a))


def from_dlpack(x) -> Tensor:
    """Zero-copy import of any DLPack-capable array (PyTorch, JAX, CuPy, NumPy)."""
    dev_type, dev_id = x.__dlpack_device__()
    if int(dev_type) in (1, 3):  # kDLCPU, kDLCUDAHost (pinned host memory): host memory, NumPy's
        return Tensor(np.from_dlpack(x))
    b = get_backend(f"cuda:{dev_id}")
    return Tensor(b.cupy.from_dlpack(x))


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    if len(size) == 1 and hasattr(size[0], "shape") and not hasattr(size[0], "__index__"):
        raise TypeError(f"size must be a tuple of integers, got a {type(size[0]).__name__}")
    return tuple(check_size("tensor creation", s, "size") for s in size)


def _float_dtype(dtype, op=None):
    dt = canonical_dtype(dtype) if dtype is not None else DEFAULT_FLOAT[0]
    if op is not None and dt.kind != "f":
        raise TypeError(f"{op}: dtype must be a floating-point dtype, got {dt}; use randint for integers")
    return dt


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of zeros of shape `size` (ints, or one tuple/list: ``zeros(2, 3)`` or ``zeros((2, 3))``).

    dtype: default the default float dtype (`get_default_dtype`, float32 unless changed); device:
    default `get_default_device`. ``requires_grad=True`` makes it a leaf that records operations."""
    b = get_backend(device)
    return _finish(b.zeros(_shape(size), dtype=b.dtype(_float_dtype(dtype))), b, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ones of shape `size` (ints, or one tuple/list), in the default float dtype unless
    `dtype` is given, on `device` (default `get_default_device`)."""
    b = get_backend(device)
    return _finish(b.ones(_shape(size), dtype=b.dtype(_float_dtype(dtype))), b, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of shape `size` (ints, or one tuple/list) whose values are not initialised (the
    backend's ``empty``), in the default float dtype unless `dtype` is given. Fill it before use."""
    b = get_backend(device)
    return _finish(b.empty(_shape(size), dtype=b.dtype(_float_dtype(dtype))), b, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of shape `size` (an int, tuple or list) filled with `fill_value`. Without `dtype` the dtype
    follows the value: bool for a bool, int64 for an int, the default float dtype otherwise.

    Example: ``xbp.full((2, 2), 7)`` is an int64 tensor of sevens."""
    b = get_backend(device)
    if dtype is None:
        dtype = np.dtype("bool") if isinstance(fill_value, bool) else (
            np.dtype("int64") if isinstance(fill_value, int) else DEFAULT_FLOAT[0])
    return _finish(b.full(_shape((size,)), fill_value, dtype=b.dtype(canonical_dtype(dtype))), b, requires_grad)


def _like(x, dtype, device):
    return (get_backend(device) if device is not None else x.xp), (canonical_dtype(dtype) if dtype is not None else x.dtype)


def zeros_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros of `x`'s shape, with `x`'s dtype and device unless `dtype` / `device` are given."""
    b, dt = _like(x, dtype, device)
    return _finish(b.zeros(x.shape, dtype=b.dtype(dt)), b, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones of `x`'s shape, with `x`'s dtype and device unless `dtype` / `device` are given."""
    b, dt = _like(x, dtype, device)
    return _finish(b.ones(x.shape, dtype=b.dtype(dt)), b, requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of `x`'s shape filled with `fill_value`, with `x`'s dtype and device unless `dtype` /
    `device` are given."""
    b, dt = _like(x, dtype, device)
    return _finish(b.full(x.shape, fill_value, dtype=b.dtype(dt)), b, requires_grad)


def empty_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of `x`'s shape, dtype and device (unless given). xbp fills it with zeros (it is
    `zeros_like`), where PyTorch leaves the memory uninitialised."""
    return zeros_like(x, dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from start (or 0) to end, exclusive. Integer arguments give int64, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.dtype("int64") if ints else DEFAULT_FLOAT[0]
    b = get_backend(device)
    return _finish(b.arange(start, end, step, dtype=b.dtype(canonical_dtype(dtype))), b, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    """`steps` evenly spaced values from `start` to `end`, both included: shape (steps,), in the
    default float dtype unless `dtype` is given."""
    b = get_backend(device)
    return _finish(b.linspace(start, end, steps, dtype=b.dtype(_float_dtype(dtype))), b, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """The identity matrix: shape (n, m) (m defaults to n) with ones on the diagonal, in the default
    float dtype unless `dtype` is given."""
    b = get_backend(device)
    return _finish(b.eye(n, m, dtype=b.dtype(_float_dtype(dtype))), b, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform [0, 1) samples of shape `size`, from the device's seeded stream or `generator`."""
    b = get_backend(device)
    rng = native_rng(generator, b, "rand")
    return _finish(b.random_uniform(_shape(size), _float_dtype(dtype, "rand"), rng=rng), b, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples of shape `size`, from the device's seeded stream or `generator`."""
    b = get_backend(device)
    rng = native_rng(generator, b, "randn")
    return _finish(b.random_normal(_shape(size), _float_dtype(dtype, "randn"), rng=rng), b, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False) -> Tensor:
    """Integers in [low, high) of shape `size` (int64 by default). PyTorch's two overloads:
    ``randint(low, high, size)`` and ``randint(high, size)`` (low = 0); `size` may also be an int."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high            # randint(high, size)
    elif high is None:
        low, high = 0, low
    if size is None:
        size = ()                                 # xbp also allows no size: a 0-d tensor
    low, high = int(low), int(high)
    if low >= high:
        raise RuntimeError(f"randint: expects low < high, got low={low}, high={high}")
    b = get_backend(device)
    rng = native_rng(generator, b, "randint")
    size = (check_size("randint", size, "size"),) if hasattr(size, "__index__") else _shape((size,))
    t = _wrap(b.random_integers(low, high, size, canonical_dtype(dtype or "int64"), rng=rng), b)
    if requires_grad:
        t.requires_grad_(True)
    return t


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A random permutation of 0..n-1 (int64 unless `dtype`)."""
    b = get_backend(device)
    n = check_size("randperm", n, "n")
    a = b.random_permutation(n, rng=native_rng(generator, b, "randperm"))
    t = _wrap(a, b)
    if dtype is not None and canonical_dtype(dtype) != t.dtype:
        t = _wrap(b.astype(a, b.dtype(canonical_dtype(dtype))), b)
    if requires_grad:
        t.requires_grad_(True)
    return t


def rand_like(x, dtype=None, device=None, requires_grad=False, *, generator=None):
    """Uniform [0, 1) samples of `x`'s shape (as `rand`), with `x`'s dtype and device unless given;
    `generator` picks the random stream."""
    return rand(*x.shape, generator=generator, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False, *, generator=None):
    """Standard normal samples of `x`'s shape (as `randn`), with `x`'s dtype and device unless given;
    `generator` picks the random stream."""
    return randn(*x.shape, generator=generator, dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)


def randint_like(x, low, high=None, *, dtype=None, device=None, generator=None) -> Tensor:
    """``randint_like(x, high)`` or ``randint_like(x, low, high)``: integers of x's shape (and dtype)."""
    if high is None:
        low, high = 0, low
    return randint(low, high, tuple(x.shape), generator=generator, dtype=dtype or x.dtype,
                   device=device or x.device)


def get_default_dtype():
    """The dtype Python floats and float creation functions give (xbp.float32 unless changed)."""
    return DEFAULT_FLOAT[0]


def set_default_dtype(dtype) -> None:
    """Make `dtype` (a floating-point dtype: xbp.float32, float64 or float16) the default for
    Python floats and float creation functions, as `torch.set_default_dtype`."""
    dt = canonical_dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got {dt}")
    DEFAULT_FLOAT[0] = dt
