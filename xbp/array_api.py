"""xbp tensors as standard arrays: the Python Array API (2024.12) namespace over `xbp.Tensor`.

``t.__array_namespace__()`` (and so ``array_api_compat.array_namespace(t)``) returns this module,
so code written for any conforming library runs on xbp tensors, on every device, and gradients
flow through it::

    xp = array_api_compat.array_namespace(x)      # x: an xbp.Tensor with requires_grad=True
    y = xp.sum(xp.exp(x) * 2, axis=0)             # an xbp.Tensor on the graph
    y.sum().backward()

How a call is computed:
- when no input needs a gradient (grad mode off, or no input with ``requires_grad``), the call
  goes straight to the tensor's backend namespace (NumPy through array-api-compat, CuPy, or
  array-api-strict: each conforming), and the result is wrapped as a Tensor;
- when an input needs a gradient, it goes through xbp's differentiable ops, so the result is on
  the graph. A function that has no gradient by nature (comparisons, argmax, floor, bitwise
  ops, ...) gives a result that does not require grad, as in PyTorch. A differentiable function
  without an xbp VJP raises NotImplementedError naming it: never a silently missing gradient.

The standard's names differ from PyTorch's in places (``axis``/``keepdims``, ``concat``,
``permute_dims``, ``expand_dims``, ``pow``, ``unique_*``); ``xbp`` itself keeps PyTorch's, and both
operate on the same tensors. Default dtypes are the backend's (float64 and int64 on NumPy), as the
standard leaves them to the library; ``__array_namespace_info__().default_dtypes()`` says which.
"""
from __future__ import annotations

import builtins
import math

from collections import namedtuple

import numpy as np

from ._backend import canonical_dtype, device as _device_type, get_backend, get_default_device
from ._primitive import GRAD_STATE
from ._tensor import Tensor, _wrap
# xbp's differentiable functions (PyTorch's names) that this namespace calls when an input needs a
# gradient: the ops, two creation functions, and xbp.linalg for the standard's linalg extension
from . import linalg as _torch_linalg, ops as _ops
from ._creation import from_dlpack as _from_dlpack, full as _full

__array_api_version__ = "2024.12"
SUPPORTED_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")

# --- constants and dtypes (NumPy dtype objects: what `Tensor.dtype` returns on every device) ----
e = math.e
inf = math.inf
nan = math.nan
pi = math.pi
newaxis = None

bool = np.dtype("bool")  # noqa: A001
int8, int16, int32, int64 = (np.dtype(n) for n in ("int8", "int16", "int32", "int64"))
uint8, uint16, uint32, uint64 = (np.dtype(n) for n in ("uint8", "uint16", "uint32", "uint64"))
float32, float64 = np.dtype("float32"), np.dtype("float64")
complex64, complex128 = np.dtype("complex64"), np.dtype("complex128")

_np_ns = None


def _npx():
    """array-api-compat's NumPy namespace: dtype questions (isdtype, finfo, result_type) are
    answered on NumPy dtypes, which is what every xbp tensor reports."""
    global _np_ns
    if _np_ns is None:
        import array_api_compat.numpy as ns
        _np_ns = ns
    return _np_ns


# --- plumbing ----------------------------------------------------------------------------------
def _signature_of(name):
    """The standard's signature for `name` ("sum", "linalg.det"), read off array-api-compat's
    NumPy namespace, so that `inspect.signature` of a generic wrapper shows the real arguments."""
    import inspect
    obj = _npx()
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def _named(f, name, doc):
    f.__name__ = f.__qualname__ = name.rpartition(".")[2]
    f.__doc__ = doc
    sig = _signature_of(name)
    if sig is not None:
        f.__signature__ = sig
    return f


def _backend(args, device=None):
    if device is not None:
        return get_backend(device)
    for a in args:
        if isinstance(a, Tensor):
            return a.xp
        if isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, Tensor):
                    return b.xp
    return get_backend(None)


def _unwrap(v, b):
    if isinstance(v, Tensor):
        if v.xp is not b:
            raise ValueError(f"array_api: arrays on different devices ({v.device} and {b.device}); "
                             "move them to one device with to_device() first")
        return v.array
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(e, b) for e in v)
    if isinstance(v, np.dtype):
        return b.dtype(v)
    return v


def _rewrap(r, b):
    if isinstance(r, b.array_type):
        return _wrap(r, b)
    if isinstance(r, np.generic):          # NumPy returns scalars for some 0-d results
        return _wrap(np.asarray(r), b)
    if isinstance(r, tuple) and hasattr(r, "_fields"):
        return type(r)(*(_rewrap(e, b) for e in r))
    if isinstance(r, (list, tuple)):
        return type(r)(_rewrap(e, b) for e in r)
    return r


def _dt(dtype, b):
    return None if dtype is None else b.dtype(canonical_dtype(dtype))


def _native(name, args, kw, device=None, ext=None):
    """Call the backend namespace's own `name` (in its extension `ext`, e.g. "linalg") on the
    arrays of `args` (no gradient)."""
    b = _backend(args, device if device is not None else kw.get("device"))
    ns = b.ns if ext is None else getattr(b.ns, ext, None)
    if ns is None:
        raise NotImplementedError(f"array_api.{ext}.{name}: the {b.device} backend has no {ext} extension")
    if "dtype" in kw:
        kw = dict(kw, dtype=_dt(kw["dtype"], b))
    if device is not None or "device" in kw:
        kw = dict(kw, device=b.native_device)
    r = getattr(ns, name)(*_unwrap(args, b), **{k: _unwrap(v, b) for k, v in kw.items()})
    return _rewrap(r, b)


def _needs_grad(args) -> builtins.bool:
    if not GRAD_STATE.enabled:
        return False
    for a in args:
        if isinstance(a, Tensor):
            if a.requires_grad:
                return True
        elif isinstance(a, (list, tuple)):
            if _needs_grad(a):
                return True
    return False


def _no_vjp(name):
    raise NotImplementedError(f"array_api.{name}: xbp has no gradient for this function yet; call it on "
                              "tensors that do not require grad (x.detach()) or under xbp.no_grad()")


def _xbp_op(name, std_name):
    f = getattr(_ops, name, None)
    if f is None:
        _no_vjp(std_name)
    return f


# --- elementwise functions ---------------------------------------------------------------------
def _elementwise(std_name, xbp_name=None, nograd=False, diff=None):
    """A standard elementwise function: the backend's when no gradient is needed, else xbp's
    differentiable op `xbp_name` (or the composite `diff`). `nograd`: no gradient by nature."""
    def f(*args, **kw):
        if nograd or not _needs_grad(args):
            return _native(std_name, args, kw)
        if diff is not None:
            return diff(*args, **kw)
        return _xbp_op(xbp_name or std_name, std_name)(*args, **kw)
    return _named(f, std_name, f"Array API ``{std_name}``: element by element, with broadcasting. "
                  + ("No gradient (piecewise constant or not real-valued)." if nograd else
                     f"Differentiable through xbp.{xbp_name or std_name} when an input requires grad."))


# differentiable through the xbp op of the same meaning
abs = _elementwise("abs", "abs")  # noqa: A001
acos = _elementwise("acos", "acos")
acosh = _elementwise("acosh", "acosh")
asin = _elementwise("asin", "asin")
asinh = _elementwise("asinh", "asinh")
atan = _elementwise("atan", "atan")
atanh = _elementwise("atanh", "atanh")
cos = _elementwise("cos", "cos")
cosh = _elementwise("cosh", "cosh")
exp = _elementwise("exp", "exp")
expm1 = _elementwise("expm1", "expm1")
log = _elementwise("log", "log")
log1p = _elementwise("log1p", "log1p")
log2 = _elementwise("log2", "log2")
log10 = _elementwise("log10", "log10")
negative = _elementwise("negative", "neg")
sin = _elementwise("sin", "sin")
sinh = _elementwise("sinh", "sinh")
sqrt = _elementwise("sqrt", "sqrt")
tan = _elementwise("tan", "tan")
tanh = _elementwise("tanh", "tanh")
reciprocal = _elementwise("reciprocal", "reciprocal")
add = _elementwise("add", "add")
subtract = _elementwise("subtract", "sub")
multiply = _elementwise("multiply", "mul")
divide = _elementwise("divide", "div")
pow = _elementwise("pow", "pow")  # noqa: A001
atan2 = _elementwise("atan2", "atan2")
hypot = _elementwise("hypot", "hypot")
maximum = _elementwise("maximum", "maximum")
minimum = _elementwise("minimum", "minimum")
# piecewise constant (zero gradient almost everywhere), comparisons, logic, bits, predicates
ceil = _elementwise("ceil", nograd=True)
floor = _elementwise("floor", nograd=True)
round = _elementwise("round", nograd=True)
trunc = _elementwise("trunc", nograd=True)
sign = _elementwise("sign", nograd=True)
signbit = _elementwise("signbit", nograd=True)
floor_divide = _elementwise("floor_divide", nograd=True)
nextafter = _elementwise("nextafter", nograd=True)
equal = _elementwise("equal", nograd=True)
not_equal = _elementwise("not_equal", nograd=True)
greater = _elementwise("greater", nograd=True)
greater_equal = _elementwise("greater_equal", nograd=True)
less = _elementwise("less", nograd=True)
less_equal = _elementwise("less_equal", nograd=True)
logical_and = _elementwise("logical_and", nograd=True)
logical_or = _elementwise("logical_or", nograd=True)
logical_xor = _elementwise("logical_xor", nograd=True)
logical_not = _elementwise("logical_not", nograd=True)
isfinite = _elementwise("isfinite", nograd=True)
isinf = _elementwise("isinf", nograd=True)
isnan = _elementwise("isnan", nograd=True)
bitwise_and = _elementwise("bitwise_and", nograd=True)
bitwise_or = _elementwise("bitwise_or", nograd=True)
bitwise_xor = _elementwise("bitwise_xor", nograd=True)
bitwise_invert = _elementwise("bitwise_invert", nograd=True)
bitwise_left_shift = _elementwise("bitwise_left_shift", nograd=True)
bitwise_right_shift = _elementwise("bitwise_right_shift", nograd=True)
square = _elementwise("square", diff=lambda x: x * x)
positive = _elementwise("positive", diff=lambda x: x * 1)
# real inputs: conj and real are the identity, imag is zero
conj = _elementwise("conj", diff=lambda x: x * 1)
real = _elementwise("real", diff=lambda x: x * 1)
imag = _elementwise("imag", nograd=True)


def _remainder_diff(x1, x2):
    # x1 - floor(x1 / x2) * x2, with the floor as a constant (its gradient is zero)
    q = floor_divide(_detach(x1), _detach(x2))
    return x1 - q * x2


def _copysign_diff(x1, x2):
    neg = signbit(_detach(x2))                    # a constant: no gradient flows to x2
    s = 1.0 - 2.0 * astype(neg, x1.dtype if isinstance(x1, Tensor) else float64)
    return _ops.abs(x1) * s if isinstance(x1, Tensor) else builtins.abs(x1) * s


def _detach(v):
    return v.detach() if isinstance(v, Tensor) else v


remainder = _elementwise("remainder", diff=_remainder_diff)
copysign = _elementwise("copysign", diff=_copysign_diff)


def _logaddexp_diff(x1, x2):
    f = getattr(_ops, "logaddexp", None)
    if f is not None:
        return f(x1, x2)
    m = maximum(_detach(x1), _detach(x2))          # log(e^a + e^b) = m + log(e^(a-m) + e^(b-m))
    return m + _ops.log(_ops.exp(x1 - m) + _ops.exp(x2 - m))


logaddexp = _elementwise("logaddexp", diff=_logaddexp_diff)


def clip(x, /, min=None, max=None):  # noqa: A002
    """Array API ``clip``: `x` limited to [min, max] (scalars or arrays, either may be None)."""
    if not _needs_grad((x, min, max)):
        return _native("clip", (x,), {"min": min, "max": max})
    return _ops.clamp(x, min, max)


def where(condition, x1, x2, /):
    """Array API ``where``: `x1` where `condition` is true, else `x2` (arrays or scalars)."""
    if not _needs_grad((x1, x2)):
        return _native("where", (condition, x1, x2), {})
    return _ops.where(condition, x1, x2)


# --- data types ----------------------------------------------------------------------------------
def astype(x, dtype, /, *, copy=True, device=None):
    """Array API ``astype``: `x` converted to `dtype` (on `device` if given)."""
    if device is not None:
        x = to_device(x, device)
    if not copy and x.dtype == canonical_dtype(dtype):
        return x
    if _needs_grad((x,)):
        return _ops.astype(x, canonical_dtype(dtype))
    return _native("astype", (x, canonical_dtype(dtype)), {"copy": copy})


def _dtype_arg(v):
    if isinstance(v, Tensor):
        return v.dtype
    return canonical_dtype(v) if not isinstance(v, (builtins.bool, int, float, complex)) else v


def can_cast(from_, to, /):
    """Whether `from_` (a dtype or array) casts to `to` under the standard's promotion rules."""
    return _npx().can_cast(_dtype_arg(from_), canonical_dtype(to))


finfo_object = namedtuple("finfo_object", "bits eps max min smallest_normal dtype")
finfo_object.__doc__ = """What `finfo` returns for a floating dtype: bits, eps, max, min and smallest_normal
(Python numbers) and the dtype, as the standard specifies."""
iinfo_object = namedtuple("iinfo_object", "bits max min dtype")
iinfo_object.__doc__ = """What `iinfo` returns for an integer dtype: bits, max and min (Python ints) and the dtype."""


def finfo(type, /):  # noqa: A002
    """Machine limits of a floating dtype (or of an array's dtype), as Python floats."""
    f = np.finfo(_dtype_arg(type))
    return finfo_object(int(f.bits), float(f.eps), float(f.max), float(f.min), float(f.smallest_normal), f.dtype)


def iinfo(type, /):  # noqa: A002
    """Machine limits of an integer dtype (or of an array's dtype), as Python ints."""
    i = np.iinfo(_dtype_arg(type))
    return iinfo_object(int(i.bits), int(i.max), int(i.min), i.dtype)


def isdtype(dtype, kind):
    """Whether `dtype` is of `kind` ('bool', 'signed integer', 'real floating', ... or dtypes)."""
    if isinstance(kind, tuple):
        kind = tuple(canonical_dtype(k) if not isinstance(k, str) else k for k in kind)
    elif not isinstance(kind, str):
        kind = canonical_dtype(kind)
    return _npx().isdtype(canonical_dtype(dtype), kind)


def result_type(*arrays_and_dtypes):
    """The dtype the standard's promotion rules give for these arrays, dtypes and scalars."""
    return _npx().result_type(*[_dtype_arg(a) for a in arrays_and_dtypes])


# --- creation --------------------------------------------------------------------------------------
def asarray(obj, /, *, dtype=None, device=None, copy=None):
    """Array API ``asarray``: a tensor from a tensor, array, scalar or nested sequence. `copy`:
    True always copies, False never (ValueError if it must), None copies only if needed."""
    if isinstance(obj, Tensor):
        b = obj.xp
        target = get_backend(device) if device is not None else b
        dt = canonical_dtype(dtype)
        same = target is b and (dt is None or dt == obj.dtype)
        if copy is False and not same:
            raise ValueError("asarray: copy=False but a copy is needed (another device or dtype)")
        if same and not copy:
            return obj
        t = obj.to(target.device) if target is not b else obj
        if dt is not None and dt != t.dtype:
            return astype(t, dt)
        return _native("asarray", (t,), {"copy": True}) if copy or t is obj else t
    if isinstance(obj, (list, tuple)) and any(isinstance(e, Tensor) for e in obj):
        obj = [e.detach().numpy() if isinstance(e, Tensor) else e for e in obj]
    return _native("asarray", (obj,), {"dtype": dtype, "copy": copy}, device=_device_or_default(device))


def _device_or_default(device):
    return device if device is not None else get_default_device()


def _creation(name):
    def f(*args, device=None, **kw):
        return _native(name, args, kw, device=_device_or_default(device))
    return _named(f, name, f"Array API ``{name}`` on `device` (default: xbp's default device).")


arange = _creation("arange")
empty = _creation("empty")
eye = _creation("eye")
full = _creation("full")
linspace = _creation("linspace")
ones = _creation("ones")
zeros = _creation("zeros")


def _like(name):
    def f(x, /, *args, dtype=None, device=None, **kw):
        return _native(name, (x,) + args, dict(kw, dtype=dtype), device=device or x.device)
    return _named(f, name, f"Array API ``{name}``: shaped like `x`, with its dtype and device unless given.")


empty_like = _like("empty_like")
full_like = _like("full_like")
ones_like = _like("ones_like")
zeros_like = _like("zeros_like")


def from_dlpack(x, /, *, device=None, copy=None):
    """Array API ``from_dlpack``: a tensor sharing memory with a DLPack-capable array."""
    t = _from_dlpack(x)
    return asarray(t, device=device, copy=copy) if (device is not None or copy) else t


def meshgrid(*arrays, indexing="xy"):
    """Array API ``meshgrid`` of 1-D arrays (differentiable: broadcasts of the inputs)."""
    if not _needs_grad(arrays):
        return list(_native("meshgrid", arrays, {"indexing": indexing}))
    shape = [a.shape[0] for a in arrays]
    if indexing == "xy" and len(arrays) >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, a in enumerate(arrays):
        axis = i
        if indexing == "xy" and len(arrays) >= 2 and i < 2:
            axis = 1 - i
        view = [1] * len(arrays)
        view[axis] = a.shape[0]
        out.append(_ops.broadcast_to(a.reshape(tuple(view)), tuple(shape)))
    return out


def _tri(name):
    def f(x, /, *, k=0):
        if not _needs_grad((x,)):
            return _native(name, (x,), {"k": k})
        keep = _native(name, (ones_like(x.detach()),), {"k": k})      # a constant 0/1 mask
        return x * keep
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Array API ``{name}``: the matrices in the last two dims with the other triangle zeroed."
    return f


tril = _tri("tril")
triu = _tri("triu")


# --- linear algebra --------------------------------------------------------------------------------
def matmul(x1, x2, /):
    """Array API ``matmul`` (the ``@`` operator)."""
    if not _needs_grad((x1, x2)):
        return _native("matmul", (x1, x2), {})
    return _ops.matmul(x1, x2)


def matrix_transpose(x, /):
    """The last two dims swapped (``x.mT``)."""
    return x.mT if _needs_grad((x,)) else _native("matrix_transpose", (x,), {})


def vecdot(x1, x2, /, *, axis=-1):
    """Array API ``vecdot``: the dot product along `axis`, with broadcasting (real dtypes)."""
    if not _needs_grad((x1, x2)):
        return _native("vecdot", (x1, x2), {"axis": axis})
    return _ops.sum(x1 * x2, dim=axis)


def tensordot(x1, x2, /, *, axes=2):
    """Array API ``tensordot``: contract the last `axes` dims of x1 with the first of x2, or the
    explicit pairs `axes` = (dims of x1, dims of x2)."""
    if not _needs_grad((x1, x2)):
        return _native("tensordot", (x1, x2), {"axes": axes})
    if isinstance(axes, int):
        a1 = list(range(x1.ndim - axes, x1.ndim))
        a2 = list(range(axes))
    else:
        a1 = [d % x1.ndim for d in axes[0]]
        a2 = [d % x2.ndim for d in axes[1]]
    free1 = [d for d in range(x1.ndim) if d not in a1]
    free2 = [d for d in range(x2.ndim) if d not in a2]
    n = math.prod(x1.shape[d] for d in a1)
    m1 = x1.permute(*free1, *a1).reshape(-1, n) if x1.ndim else x1.reshape(1, 1)
    m2 = x2.permute(*a2, *free2).reshape(n, -1) if x2.ndim else x2.reshape(1, 1)
    out = _ops.matmul(m1, m2)
    return out.reshape(tuple(x1.shape[d] for d in free1) + tuple(x2.shape[d] for d in free2))


# --- manipulation ----------------------------------------------------------------------------------
def broadcast_arrays(*arrays):
    """Array API ``broadcast_arrays``: every array broadcast to their common shape."""
    if not _needs_grad(arrays):
        return list(_native("broadcast_arrays", arrays, {}))
    shape = np.broadcast_shapes(*[tuple(a.shape) for a in arrays])
    return [_ops.broadcast_to(a, shape) for a in arrays]


def broadcast_to(x, /, shape):
    """Array API ``broadcast_to``."""
    if not _needs_grad((x,)):
        return _native("broadcast_to", (x, tuple(shape)), {})
    return _ops.broadcast_to(x, tuple(shape))


def concat(arrays, /, *, axis=0):
    """Array API ``concat``; ``axis=None`` joins the flattened arrays."""
    arrays = tuple(arrays)
    if not _needs_grad(arrays):
        return _native("concat", (arrays,), {"axis": axis})
    if axis is None:
        return _ops.cat([a.reshape(-1) for a in arrays], dim=0)
    return _ops.cat(list(arrays), dim=axis)


def stack(arrays, /, *, axis=0):
    """Array API ``stack``: join along a new `axis`."""
    arrays = tuple(arrays)
    if not _needs_grad(arrays):
        return _native("stack", (arrays,), {"axis": axis})
    return _ops.stack(list(arrays), dim=axis)


def expand_dims(x, /, axis=0):
    """Array API ``expand_dims``: a size-1 dim inserted at `axis`."""
    if not _needs_grad((x,)):
        return _native("expand_dims", (x,), {"axis": axis})
    return _ops.unsqueeze(x, axis)


def squeeze(x, /, axis):
    """Array API ``squeeze``: remove the size-1 dims `axis` (an int or a tuple)."""
    if not _needs_grad((x,)):
        return _native("squeeze", (x,), {"axis": axis})
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = sorted({a % x.ndim if -x.ndim <= a < x.ndim else _bad_axis("squeeze", a, x.ndim) for a in axes})
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1 (shape {x.shape})")
    return x.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))


def _bad_axis(op, a, ndim):
    raise IndexError(f"{op}: axis {a} is out of range for an array of {ndim} dims")


def flip(x, /, *, axis=None):
    """Array API ``flip``: reverse the order along `axis` (an int, a tuple, or None for all)."""
    if not _needs_grad((x,)):
        return _native("flip", (x,), {"axis": axis})
    dims = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    return _ops.flip(x, dims)


def roll(x, /, shift, *, axis=None):
    """Array API ``roll``: shift elements along `axis` (None: the flattened array, reshaped back)."""
    if not _needs_grad((x,)):
        return _native("roll", (x, shift), {"axis": axis})
    if axis is None:
        return _ops.roll(x.reshape(-1), shift, 0).reshape(x.shape)
    return _ops.roll(x, shift, axis)


def moveaxis(x, source, destination, /):
    """Array API ``moveaxis``."""
    if not _needs_grad((x,)):
        return _native("moveaxis", (x, source, destination), {})
    return _ops.movedim(x, source, destination)


def permute_dims(x, /, axes):
    """Array API ``permute_dims``: the dims of `x` in the order `axes`."""
    if not _needs_grad((x,)):
        return _native("permute_dims", (x, tuple(axes)), {})
    return _ops.permute(x, tuple(axes))


def reshape(x, /, shape, *, copy=None):
    """Array API ``reshape``. `copy=False` raises if a copy is needed (as NumPy's reshape)."""
    if not _needs_grad((x,)):
        return _native("reshape", (x, tuple(shape)), {"copy": copy})
    return _ops.reshape(x, tuple(shape))


def tile(x, repetitions, /):
    """Array API ``tile``."""
    if not _needs_grad((x,)):
        return _native("tile", (x, tuple(repetitions)), {})
    return _ops.tile(x, tuple(repetitions))


def repeat(x, repeats, /, *, axis=None):
    """Array API ``repeat``: each element repeated `repeats` times (an int, or one count per
    element along `axis`); ``axis=None`` works on the flattened array."""
    if not _needs_grad((x,)):
        return _native("repeat", (x, repeats), {"axis": axis})
    if axis is None:
        x, axis = x.reshape(-1), 0
    if isinstance(repeats, Tensor):
        idx = _native("repeat", (arange(x.shape[axis], device=x.device), repeats), {})
        return _ops.index_select(x, axis, idx)
    return _ops.repeat_interleave(x, int(repeats), axis)


def unstack(x, /, *, axis=0):
    """Array API ``unstack``: the slices of `x` along `axis`, as a tuple."""
    if not _needs_grad((x,)):
        return tuple(_native("unstack", (x,), {"axis": axis}))
    return tuple(_ops.unbind(x, axis))


# --- indexing ------------------------------------------------------------------------------------
def _nonneg(indices, n):
    """Standard indexing allows -n <= i < n; xbp's gather ops (as PyTorch's) take only i >= 0."""
    return where(indices < 0, indices + n, indices)


def take(x, indices, /, *, axis=None):
    """Array API ``take``: the entries at 1-D `indices` along `axis` (optional for 1-D `x`)."""
    if not _needs_grad((x,)):
        return _native("take", (x, indices), {"axis": axis})
    if axis is None:
        if x.ndim != 1:
            raise ValueError("take: axis is required for arrays of more than one dim")
        axis = 0
    return _ops.index_select(x, axis, _nonneg(indices, x.shape[axis]))


def take_along_axis(x, indices, /, *, axis=-1):
    """Array API ``take_along_axis``: the entries at `indices` (x's shape but along `axis`)."""
    if not _needs_grad((x,)):
        return _native("take_along_axis", (x, indices), {"axis": axis})
    return _ops.take_along_dim(x, _nonneg(indices, x.shape[axis]), axis)


# --- statistics ------------------------------------------------------------------------------------
def _reduction(name, xbp_name, extra=()):
    def f(x, /, *, axis=None, keepdims=False, **kw):
        if not _needs_grad((x,)):
            return _native(name, (x,), dict(kw, axis=axis, keepdims=keepdims))
        dtype = kw.pop("dtype", None)
        if dtype is not None and canonical_dtype(dtype) != x.dtype:
            x = astype(x, dtype)
        if x.ndim == 0 and axis in ((), None):
            r = x * 1
        else:
            r = getattr(_ops, xbp_name)(x, axis=axis, keepdims=keepdims, **kw)
        return r
    return _named(f, name, f"Array API ``{name}`` over `axis` (an int, a tuple, or None for all), keeping "
                  "the reduced dims as size 1 if `keepdims`. Differentiable.")


sum = _reduction("sum", "sum")  # noqa: A001
prod = _reduction("prod", "prod")
mean = _reduction("mean", "mean")
max = _reduction("max", "amax")  # noqa: A001
min = _reduction("min", "amin")  # noqa: A001
std = _reduction("std", "std")
var = _reduction("var", "var")


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial=False):
    """Array API ``cumulative_sum`` (axis optional for 1-D); `include_initial` prepends zeros."""
    if not _needs_grad((x,)):
        return _native("cumulative_sum", (x,), {"axis": axis, "dtype": dtype, "include_initial": include_initial})
    if axis is None:
        if x.ndim != 1:
            raise ValueError("cumulative_sum: axis is required for arrays of more than one dim")
        axis = 0
    if dtype is not None:
        x = astype(x, dtype)
    out = _ops.cumsum(x, axis)
    return _with_initial(out, axis, 0.0) if include_initial else out


def cumulative_prod(x, /, *, axis=None, dtype=None, include_initial=False):
    """Array API ``cumulative_prod`` (axis optional for 1-D); `include_initial` prepends ones."""
    if not _needs_grad((x,)):
        return _native("cumulative_prod", (x,), {"axis": axis, "dtype": dtype, "include_initial": include_initial})
    if axis is None:
        axis = 0
    if dtype is not None:
        x = astype(x, dtype)
    out = _xbp_op("cumprod", "cumulative_prod")(x, axis)
    return _with_initial(out, axis, 1.0) if include_initial else out


def _with_initial(out, axis, fill):
    """`out` with a slice of `fill` (the scan's identity) prepended along `axis`."""
    shape = list(out.shape)
    shape[axis] = 1
    return _ops.cat([_full(tuple(shape), fill, dtype=out.dtype, device=out.device), out], dim=axis)


def diff(x, /, *, axis=-1, n=1, prepend=None, append=None):
    """Array API ``diff``: the `n`-th forward difference along `axis`, after joining `prepend`
    and `append`. Differentiable."""
    if not _needs_grad((x, prepend, append)):
        kw = {"axis": axis, "n": n}
        if prepend is not None:
            kw["prepend"] = prepend
        if append is not None:
            kw["append"] = append
        return _native("diff", (x,), kw)
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = concat(parts, axis=axis)
    ax = axis % x.ndim
    for _ in range(n):
        k = x.shape[ax]
        lead = (slice(None),) * ax
        x = x[lead + (slice(1, k),)] - x[lead + (slice(0, k - 1),)]
    return x


# --- searching, sorting, sets, utilities (no gradient by nature, except sort's values) -----------
def _nograd_fn(name, doc):
    def f(*args, **kw):
        return _native(name, args, kw)
    return _named(f, name, f"Array API ``{name}``: {doc} No gradient.")


argmax = _nograd_fn("argmax", "the index of the largest entry (first on ties).")
argmin = _nograd_fn("argmin", "the index of the smallest entry (first on ties).")
argsort = _nograd_fn("argsort", "indices that sort `x` along `axis`.")
count_nonzero = _nograd_fn("count_nonzero", "the number of nonzero entries.")
nonzero = _nograd_fn("nonzero", "a tuple of index arrays of the nonzero entries.")
searchsorted = _nograd_fn("searchsorted", "insertion points of `x2` into the sorted 1-D `x1`.")
all = _nograd_fn("all", "whether every entry is true.")  # noqa: A001
any = _nograd_fn("any", "whether some entry is true.")  # noqa: A001
unique_all = _nograd_fn("unique_all", "unique values, first indices, inverse indices and counts.")
unique_counts = _nograd_fn("unique_counts", "unique values and their counts.")
unique_inverse = _nograd_fn("unique_inverse", "unique values and the inverse indices.")
unique_values = _nograd_fn("unique_values", "the unique values.")


def sort(x, /, *, axis=-1, descending=False, stable=True):
    """Array API ``sort``: `x` sorted along `axis`. Differentiable: the values are gathered at the
    sorting indices, so the gradient flows back to where each value came from."""
    if not _needs_grad((x,)):
        return _native("sort", (x,), {"axis": axis, "descending": descending, "stable": stable})
    idx = argsort(x.detach(), axis=axis, descending=descending, stable=stable)
    return _ops.take_along_dim(x, idx, axis)


# --- inspection ------------------------------------------------------------------------------------
class _Info:
    """What `__array_namespace_info__()` returns: capabilities, devices and default dtypes."""

    def capabilities(self):
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self):
        return get_default_device()

    def devices(self):
        from ._backend import cuda_available
        out = [_device_type("cpu")]
        if cuda_available():
            out.append(_device_type("cuda:0"))
        return out

    def default_dtypes(self, *, device=None):
        b = get_backend(device)
        d = b.ns.__array_namespace_info__().default_dtypes(device=b.native_device)
        return {k: canonical_dtype(v) for k, v in d.items()}

    def dtypes(self, *, device=None, kind=None):
        b = get_backend(device)
        d = b.ns.__array_namespace_info__().dtypes(device=b.native_device, kind=kind)
        return {k: canonical_dtype(v) for k, v in d.items()}


def __array_namespace_info__():
    """The standard's inspection object (capabilities, devices, default dtypes, dtypes)."""
    return _Info()


def to_device(x, device, /, *, stream=None):
    """`x` on `device` (an xbp device or its name)."""
    return x.to(device)


# --- extensions: linalg and fft --------------------------------------------------------------------
_LINALG = ("cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "matmul", "matrix_norm",
           "matrix_power", "matrix_rank", "matrix_transpose", "outer", "pinv", "qr", "slogdet", "solve",
           "svd", "svdvals", "tensordot", "trace", "vecdot", "vector_norm")
_FFT = ("fft", "ifft", "fftn", "ifftn", "rfft", "irfft", "rfftn", "irfftn", "hfft", "ihfft", "fftfreq",
        "rfftfreq", "fftshift", "ifftshift")


def _extension_fn(ext, name):
    """`ext.name` of the standard: the backend's own (no gradient) unless an input requires grad,
    then xbp's differentiable `xbp.<ext>.<name>` (NotImplementedError if xbp has none)."""
    def f(*args, **kw):
        if _needs_grad(args):
            g = _EXTENSION_VJPS.get((ext, name))
            if g is None:
                mod = _TORCH_EXTENSIONS.get(ext)
                g = getattr(mod, name, None) if mod is not None else None
            if g is None:
                _no_vjp(f"{ext}.{name}")
            return g(*args, **kw)
        return _native(name, args, kw, ext=ext)
    return _named(f, f"{ext}.{name}", f"Array API ``{ext}.{name}`` (see the standard).")


def _fftshift(x, /, *, axes=None, inverse=False):
    axes = tuple(range(x.ndim)) if axes is None else ((axes,) if isinstance(axes, int) else tuple(axes))
    shifts = tuple((-(x.shape[a] // 2) if inverse else x.shape[a] // 2) for a in axes)
    return _ops.roll(x, shifts, axes)


_TORCH_EXTENSIONS = {"linalg": _torch_linalg}   # xbp's module of each extension's differentiable functions

# differentiable forms of extension functions that are compositions of xbp ops
_EXTENSION_VJPS = {
    ("linalg", "outer"): lambda x1, x2, /: _ops.outer(x1, x2),
    ("linalg", "matmul"): lambda x1, x2, /: _ops.matmul(x1, x2),
    ("linalg", "matrix_transpose"): lambda x, /: x.mT,
    ("linalg", "vecdot"): lambda x1, x2, /, *, axis=-1: vecdot(x1, x2, axis=axis),
    ("linalg", "tensordot"): lambda x1, x2, /, *, axes=2: tensordot(x1, x2, axes=axes),
    ("fft", "fftshift"): lambda x, /, *, axes=None: _fftshift(x, axes=axes),
    ("fft", "ifftshift"): lambda x, /, *, axes=None: _fftshift(x, axes=axes, inverse=True),
}


class _Extension:
    """An extension namespace of the standard (``linalg``, ``fft``) over xbp tensors."""

    def __init__(self, ext, names):
        self.__name__ = f"xbp.array_api.{ext}"
        for n in names:
            setattr(self, n, _extension_fn(ext, n))

    def __repr__(self):
        return f"<namespace {self.__name__}>"


linalg = _Extension("linalg", _LINALG)
fft = _Extension("fft", _FFT)

