"""Elementwise primitives: each forward beside its vector-Jacobian product.

VJPs see `c.ins` (inputs), `c.out` (output), `c.p` (keyword parameters) and `c.needs`; they return
one gradient per input (None where not needed). Broadcasting is undone by the engine.
"""
from __future__ import annotations

import math

from .._primitive import Primitive, apply, apply2
from .._tensor import Tensor
from ._util import no_grad_op

SQRT_2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_K = math.sqrt(2.0 / math.pi)


def _unary(name, fwd, vjp, save="", res=False, doc=""):
    prim = Primitive(name, fwd, vjp, save=save, res=res)

    def op(input, *, out=None):  # noqa: A002 - PyTorch's names
        if out is not None:
            return _with_out(name, lambda: apply(prim, (input,)), out, input)
        return apply(prim, (input,))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (doc or f"Elementwise {name}(input).") + _UNARY_TAIL
    op.prim = prim
    return op


_UNARY_TAIL = ("\n\n    Same shape and device as `input`; differentiable. ``out=`` writes the result into an existing"
               "\n    tensor (refused when autograd is involved).")


def _documented(op, doc):
    """Gives a factory-made op its docstring (the factories in _util.py take none)."""
    op.__doc__ = doc
    return op


# --- arithmetic -------------------------------------------------------------------------------------
add_p = Primitive("add", lambda xp, a, b: a + b, lambda c, g: (g, g), passthrough=True)
sub_p = Primitive("sub", lambda xp, a, b: a - b, lambda c, g: (g, -g), passthrough=True)


def _mul_vjp(c, g):
    a, b = c.ins
    return (g * b if c.needs[0] else None, g * a if c.needs[1] else None)


mul_p = Primitive("mul", lambda xp, a, b: a * b, _mul_vjp, save="in")


def _div_vjp(c, g):
    a, b = c.ins
    return (g / b if c.needs[0] else None, -g * c.out / b if c.needs[1] else None)


div_p = Primitive("div", lambda xp, a, b: a / b, _div_vjp, save="in,out")


def _pow_fwd(xp, a, b):
    return a ** b


def _pow_vjp(c, g):
    xp = c.xp
    a, b = c.ins
    ga = gb = None
    if c.needs[0]:
        if not hasattr(b, "shape") and b == 0:
            ga = g * 0.0                      # x ** 0 is constant (0 * 0 ** -1 would be nan)
        else:
            ga = g * b * a ** (b - 1)
    if c.needs[1]:
        # d(a^b)/db = a^b log a; 0^b contributes 0 (the limit for b > 0), a < 0 gives nan
        if not hasattr(a, "shape"):
            loga = math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
        else:
            loga = xp.log(xp.where(a > 0, a, 1.0))
        gb = g * c.out * loga
    return ga, gb


pow_p = Primitive("pow", _pow_fwd, _pow_vjp, save="in,out")


def _default_float():
    from .._creation import DEFAULT_FLOAT
    return DEFAULT_FLOAT[0]


from .._backend import HOST_FLOAT_TYPES as _FLOATS  # noqa: E402  (float and NumPy float scalars)


def _promote(a, b):
    """Operands of a binary op, cast where NumPy, strict and PyTorch disagree, PyTorch's way:
    an integer/bool tensor with a float tensor takes the float dtype (NumPy would give float64 for
    float32 + int64, strict refuses), with a Python float the default float dtype; bool with an
    integer tensor becomes that integer dtype. Float tensors with Python numbers pass straight on."""
    if isinstance(a, Tensor):
        fa = a.array.dtype in a.xp.float_dtypes
        if isinstance(b, Tensor):
            if fa == (b.array.dtype in b.xp.float_dtypes):
                if fa or a.array.dtype == b.array.dtype:
                    return a, b
                return _promote_ints(a, b)
            return (a, b.to(dtype=a.dtype)) if fa else (a.to(dtype=b.dtype), b)
        if not fa and isinstance(b, _FLOATS):
            return a.to(dtype=_default_float()), b
        return a, b
    if isinstance(b, Tensor) and isinstance(a, _FLOATS) and b.array.dtype not in b.xp.float_dtypes:
        return a, b.to(dtype=_default_float())
    return a, b


def _promote_ints(a, b):
    ka, kb = a.dtype.kind, b.dtype.kind
    if ka == "b" and kb != "b":
        return a.to(dtype=b.dtype), b
    if kb == "b" and ka != "b":
        return a, b.to(dtype=a.dtype)
    return a, b


def _same_float(a, b) -> bool:
    """The common case needing no promotion: a float Tensor with a Tensor of its dtype or a Python
    float (checked inline by the arithmetic ops to skip `_promote` and `apply`'s dispatch)."""
    if a.__class__ is not Tensor:
        return False
    dt = a.array.dtype
    if b.__class__ is float:
        return dt in a.xp.float_dtypes
    return b.__class__ is Tensor and b.xp is a.xp and b.array.dtype == dt and dt in a.xp.float_dtypes


def _with_out(op, compute, out, *inputs):
    """``op(..., out=out)``: refuse it when autograd is involved, else compute and write into out."""
    from ._out import check_out, write_out
    check_out(op, out, *inputs)
    return write_out(op, compute(), out)


# The Tensor operators call these two-argument bodies directly (x + y never pays for the keyword
# handling of the public functions below).
def _add(a, b):
    if _same_float(a, b):
        return apply2(add_p, a, b)
    return apply(add_p, _promote(a, b))


def _sub(a, b):
    if _same_float(a, b):
        return apply2(sub_p, a, b)
    return apply(sub_p, _promote(a, b))


def _mul(a, b):
    if _same_float(a, b):
        return apply2(mul_p, a, b)
    return apply(mul_p, _promote(a, b))


def add(input, other, *, alpha=1, out=None):  # noqa: A002 - PyTorch's names
    """input + alpha * other (broadcasting); `out`: write the result into that tensor."""
    if alpha == 1 and out is None:       # the common call, inline (no extra call)
        if _same_float(input, other):
            return apply2(add_p, input, other)
        return apply(add_p, _promote(input, other))
    if alpha != 1:
        other = _mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    if out is not None:
        return _with_out("add", lambda: _add(input, other), out, input, other)
    return _add(input, other)


def sub(input, other, *, alpha=1, out=None):  # noqa: A002
    """input - alpha * other (broadcasting); `out`: write the result into that tensor."""
    if alpha == 1 and out is None:       # the common call, inline (no extra call)
        if _same_float(input, other):
            return apply2(sub_p, input, other)
        return apply(sub_p, _promote(input, other))
    if alpha != 1:
        other = _mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    if out is not None:
        return _with_out("sub", lambda: _sub(input, other), out, input, other)
    return _sub(input, other)


def mul(input, other, *, out=None):  # noqa: A002
    """input * other (broadcasting); `out`: write the result into that tensor."""
    if out is None:
        if _same_float(input, other):
            return apply2(mul_p, input, other)
        return apply(mul_p, _promote(input, other))
    return _with_out("mul", lambda: _mul(input, other), out, input, other)


_trunc = no_grad_op("trunc", lambda xp, x: xp.trunc(x))
# integer division rounded toward zero: floor division, plus one where the signs differ and it
# was inexact (exact in integers, unlike truncating a float quotient)
_trunc_div_int = no_grad_op("div", lambda xp, a, b: xp.where((a % b != 0) & ((a < 0) != (b < 0)), a // b + 1, a // b))


def div(input, other, *, rounding_mode=None, out=None):  # noqa: A002
    """input / other (true division, broadcasting); integer / integer gives the default float
    dtype. ``rounding_mode="trunc"`` / ``"floor"`` round the quotient (no gradient), as PyTorch."""
    if out is not None:
        return _with_out("div", lambda: div(input, other, rounding_mode=rounding_mode), out, input, other)
    if rounding_mode is not None:
        if rounding_mode == "floor":
            return floor_divide(input, other)
        if rounding_mode != "trunc":
            raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
        if _int_like(input) and _int_like(other):
            return _trunc_div_int(*_promote(input, other))
        return _trunc(div(input, other).detach())
    return _div(input, other)


def _div(a, b):
    if _same_float(a, b):
        return apply2(div_p, a, b)
    if _int_like(a) and _int_like(b):
        a = a.to(dtype=_default_float()) if isinstance(a, Tensor) else float(a)
        b = b.to(dtype=_default_float()) if isinstance(b, Tensor) else float(b)
    return apply(div_p, _promote(a, b))


true_divide = divide = div
multiply = mul
subtract = sub


def _int_like(v):
    if isinstance(v, Tensor):
        return v.array.dtype not in v.xp.float_dtypes
    return isinstance(v, int)


def pow(input, exponent, *, out=None):  # noqa: A001,A002 - PyTorch's names
    """input ** exponent; either may be a Python number. `out`: write the result into that tensor."""
    if out is not None:
        return _with_out("pow", lambda: pow(input, exponent), out, input, exponent)
    a, b = input, exponent
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        b = float(b) if isinstance(a, Tensor) and a.array.dtype in a.xp.float_dtypes else b
    return apply(pow_p, _promote(a, b))


neg = _unary("neg", lambda xp, x: -x, lambda c, g: (-g,), doc="Elementwise negation, -input.")

# --- exponentials and powers ----------------------------------------------------------------------
exp = _unary("exp", lambda xp, x: xp.exp(x), lambda c, g: (g * c.out,), save="out",
             doc="Elementwise exponential e ** input.")
log = _unary("log", lambda xp, x: xp.log(x), lambda c, g: (g / c.ins[0],), save="in",
             doc="Elementwise natural logarithm (nan below 0, -inf at 0).")
log1p = _unary("log1p", lambda xp, x: xp.log1p(x), lambda c, g: (g / (c.ins[0] + 1.0),), save="in",
               doc="Elementwise log(1 + input), accurate for small `input`.")
expm1 = _unary("expm1", lambda xp, x: xp.expm1(x), lambda c, g: (g * (c.out + 1.0),), save="out",
               doc="Elementwise exp(input) - 1, accurate for small `input`.")
sqrt = _unary("sqrt", lambda xp, x: xp.sqrt(x), lambda c, g: (g * 0.5 / c.out,), save="out",
              doc="Elementwise square root (nan below 0).")
# rsqrt: y = x^-1/2, dy/dx = -y^3 / 2
rsqrt = _unary("rsqrt", lambda xp, x: 1.0 / xp.sqrt(x), lambda c, g: (g * -0.5 * c.out * c.out * c.out,), save="out",
               doc="Elementwise reciprocal square root, 1 / sqrt(input).")
# d|x|/dx = sign(x), 0 at x = 0 (as PyTorch)
abs = _unary("abs", lambda xp, x: xp.abs(x), lambda c, g: (g * c.xp.sign(c.ins[0]),), save="in",  # noqa: A001
             doc="Elementwise absolute value |input|; the gradient at 0 is 0, as in PyTorch.")
sin = _unary("sin", lambda xp, x: xp.sin(x), lambda c, g: (g * c.xp.cos(c.ins[0]),), save="in",
             doc="Elementwise sine (radians).")
cos = _unary("cos", lambda xp, x: xp.cos(x), lambda c, g: (-g * c.xp.sin(c.ins[0]),), save="in",
             doc="Elementwise cosine (radians).")
erf = _unary("erf", lambda xp, x: xp.erf(x),
             lambda c, g: (g * (2.0 / math.sqrt(math.pi)) * c.xp.exp(-c.ins[0] * c.ins[0]),), save="in",
             doc="Elementwise Gauss error function erf(x) = 2/sqrt(pi) * integral of exp(-t^2) from 0 to x.")

# --- activations ------------------------------------------------------------------------------------
tanh = _unary("tanh", lambda xp, x: xp.tanh(x), lambda c, g: (g * (1.0 - c.out * c.out),), save="out",
              doc="Elementwise hyperbolic tangent.")


def _sigmoid_fwd(xp, x):
    # 1/(1+e^-x) overflows e^-x for very negative x; e^x/(1+e^x) is exact there
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid = _unary("sigmoid", _sigmoid_fwd, lambda c, g: (g * c.out * (1.0 - c.out),), save="out",
                 doc="Elementwise logistic sigmoid 1 / (1 + exp(-input)), computed without overflow for large |input|.")
relu = _unary("relu", lambda xp, x: xp.maximum(x, 0),
              lambda c, g: (c.xp.mask(g, c.out > 0),), save="out",
              doc="Elementwise rectifier max(input, 0); the gradient at 0 is 0.")

leaky_relu_p = Primitive(
    "leaky_relu", lambda xp, x, negative_slope: xp.where(x > 0, x, x * negative_slope),
    lambda c, g: (c.xp.where(c.ins[0] > 0, g, g * c.p["negative_slope"]),), save="in")


def leaky_relu(x, negative_slope: float = 0.01):
    """Elementwise x where x > 0, else negative_slope * x. Same shape as `x`; differentiable."""
    return apply(leaky_relu_p, (x,), {"negative_slope": float(negative_slope)})


# elu: alpha (e^x - 1) for x <= 0, whose derivative alpha e^x = out + alpha
elu_p = Primitive(
    "elu", lambda xp, x, alpha: xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0.0))),
    lambda c, g: (c.xp.where(c.ins[0] > 0, g, g * (c.out + c.p["alpha"])),), save="in,out")


def elu(x, alpha: float = 1.0):
    """Elementwise ELU: x where x > 0, else alpha * (exp(x) - 1). Same shape as `x`; differentiable."""
    return apply(elu_p, (x,), {"alpha": float(alpha)})


def _gelu_fwd(xp, x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + xp.tanh(GELU_K * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + xp.erf(x / SQRT_2))


def _gelu_vjp(c, g):
    xp = c.xp
    x = c.ins[0]
    if c.p["approximate"] == "tanh":
        t = xp.tanh(GELU_K * (x + 0.044715 * x * x * x))
        du = GELU_K * (1.0 + 3 * 0.044715 * x * x)
        return (g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du),)
    # d/dx x Phi(x) = Phi(x) + x phi(x)
    return (g * (0.5 * (1.0 + xp.erf(x / SQRT_2)) + x * INV_SQRT_2PI * xp.exp(-0.5 * x * x)),)


gelu_p = Primitive("gelu", _gelu_fwd, _gelu_vjp, save="in")


def gelu(x, approximate: str = "none"):
    """GELU: x Phi(x) (``approximate="none"``) or its tanh approximation (``"tanh"``)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply(gelu_p, (x,), {"approximate": approximate})


def _silu_vjp(c, g):
    x = c.ins[0]
    s = _sigmoid_fwd(c.xp, x)
    return (g * (s * (1.0 + x * (1.0 - s))),)


silu = _unary("silu", lambda xp, x: x * _sigmoid_fwd(xp, x), _silu_vjp, save="in",
              doc="Elementwise SiLU (swish), input * sigmoid(input).")


def _softplus_fwd(xp, x, beta, threshold):
    bx = x * beta
    soft = (xp.maximum(bx, 0.0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
    return xp.where(bx > threshold, x, soft)


def _softplus_vjp(c, g):
    xp = c.xp
    bx = c.ins[0] * c.p["beta"]
    # the derivative is sigmoid(beta x), in the form that never overflows
    return (xp.where(bx > c.p["threshold"], g, g * _sigmoid_fwd(xp, bx)),)


softplus_p = Primitive("softplus", _softplus_fwd, _softplus_vjp, save="in")


def softplus(x, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (PyTorch's definition)."""
    return apply(softplus_p, (x,), {"beta": float(beta), "threshold": float(threshold)})


# --- selections -------------------------------------------------------------------------------------
def _max_vjp(c, g):
    xp = c.xp
    a, b = c.ins
    first, tie, half = a > b, a == b, g * 0.5
    return (xp.where(first, g, xp.where(tie, half, 0.0)) if c.needs[0] else None,
            xp.where(first, 0.0, xp.where(tie, half, g)) if c.needs[1] else None)


def _min_vjp(c, g):
    xp = c.xp
    a, b = c.ins
    first, tie, half = a < b, a == b, g * 0.5
    return (xp.where(first, g, xp.where(tie, half, 0.0)) if c.needs[0] else None,
            xp.where(first, 0.0, xp.where(tie, half, g)) if c.needs[1] else None)


maximum_p = Primitive("maximum", lambda xp, a, b: xp.maximum(a, b), _max_vjp, save="in")
minimum_p = Primitive("minimum", lambda xp, a, b: xp.minimum(a, b), _min_vjp, save="in")


def maximum(input, other, *, out=None):  # noqa: A002
    """Elementwise maximum (gradient split evenly at ties)."""
    if out is not None:
        return _with_out("maximum", lambda: maximum(input, other), out, input, other)
    return apply(maximum_p, _promote(input, other))


def minimum(input, other, *, out=None):  # noqa: A002
    """Elementwise minimum (gradient split evenly at ties)."""
    if out is not None:
        return _with_out("minimum", lambda: minimum(input, other), out, input, other)
    return apply(minimum_p, _promote(input, other))


def _clip_vjp(c, g):
    x = c.ins[0]
    lo, hi = c.p["min"], c.p["max"]
    inside = None
    if lo is not None:
        inside = x >= lo
    if hi is not None:
        inside = (x <= hi) if inside is None else (inside & (x <= hi))
    return (g if inside is None else c.xp.mask(g, inside),)


clip_p = Primitive("clamp", lambda xp, x, min, max: xp.clip(x, min, max), _clip_vjp, save="in")


def clamp(input, min=None, max=None, *, out=None):  # noqa: A002 - PyTorch's names
    """Limit input to [min, max]; bounds may be numbers, tensors or None."""
    if out is not None:
        return _with_out("clamp", lambda: clamp(input, min, max), out, input, min, max)
    x = input
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    if min is not None and max is not None and min > max:
        raise ValueError(f"clamp: min ({min}) is greater than max ({max})")
    kind_f = x.dtype.kind == "f"
    return apply(clip_p, (x,), {"min": None if min is None else (float(min) if kind_f else min),
                                "max": None if max is None else (float(max) if kind_f else max)})


clip = clamp


def _where_vjp(c, g):
    xp = c.xp
    cond = c.ins[0]
    return (None,
            xp.where(cond, g, 0.0) if c.needs[1] else None,
            xp.where(cond, 0.0, g) if c.needs[2] else None)


where_p = Primitive("where", lambda xp, cond, a, b: xp.where(cond, a, b), _where_vjp, save="in")


def where(condition, input, other, *, out=None):  # noqa: A002
    """Elementwise select: `input` where `condition` is true, else `other`."""
    if out is not None:
        return _with_out("where", lambda: where(condition, input, other), out, input, other)
    if isinstance(condition, Tensor) and condition.dtype.kind != "b":
        raise TypeError(f"where: condition must be a bool tensor, got dtype {condition.dtype}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor) and isinstance(condition, Tensor):
        # two Python numbers (strict refuses): the first becomes a tensor of its default dtype
        from .._creation import tensor
        input = tensor(input, device=condition.xp)
    return apply(where_p, (condition,) + _promote(input, other))


# --- no gradient ------------------------------------------------------------------------------------
sign = _documented(
    no_grad_op("sign", lambda xp, x: xp.sign(x)),
    "Elementwise sign: -1, 0 or 1 in `input`'s dtype. No gradient (the result never requires grad).")


def _binary_no_grad(name, f):
    op = no_grad_op(name, f)

    def binary(input, other, *, out=None):  # noqa: A002 - PyTorch's names
        if out is not None:
            return _with_out(name, lambda: op(*_promote(input, other)), out)
        return op(*_promote(input, other))
    binary.__name__ = binary.__qualname__ = name
    return binary


floor_divide = _documented(
    _binary_no_grad("floor_divide", lambda xp, a, b: xp.floor_divide(a, b)),
    "Elementwise floor(input / other) (rounds toward -inf, as Python's //), broadcasting; no gradient.")
remainder = _documented(
    _binary_no_grad("remainder", lambda xp, a, b: xp.remainder(a, b)),
    "Elementwise input - floor(input / other) * other: the remainder takes the sign of `other`\n"
    "    (Python's %), broadcasting; no gradient.")
floor = _documented(no_grad_op("floor", lambda xp, x: xp.floor(x)),
                    "Elementwise largest integer <= input, in `input`'s dtype; no gradient.")
ceil = _documented(no_grad_op("ceil", lambda xp, x: xp.ceil(x)),
                   "Elementwise smallest integer >= input, in `input`'s dtype; no gradient.")
round = _documented(
    no_grad_op("round", lambda xp, x: xp.round(x)),  # noqa: A001
    'Elementwise round to the nearest integer, halves to even (as NumPy and PyTorch); no gradient.')
eq = _documented(_binary_no_grad("eq", lambda xp, a, b: a == b),
                 'Elementwise input == other (broadcasting): a bool tensor, no gradient.')
ne = _documented(_binary_no_grad("ne", lambda xp, a, b: a != b),
                 'Elementwise input != other (broadcasting): a bool tensor, no gradient.')
lt = _documented(_binary_no_grad("lt", lambda xp, a, b: a < b),
                 'Elementwise input < other (broadcasting): a bool tensor, no gradient.')
le = _documented(_binary_no_grad("le", lambda xp, a, b: a <= b),
                 'Elementwise input <= other (broadcasting): a bool tensor, no gradient.')
gt = _documented(_binary_no_grad("gt", lambda xp, a, b: a > b),
                 'Elementwise input > other (broadcasting): a bool tensor, no gradient.')
ge = _documented(_binary_no_grad("ge", lambda xp, a, b: a >= b),
                 'Elementwise input >= other (broadcasting): a bool tensor, no gradient.')
logical_and = _documented(no_grad_op("logical_and", lambda xp, a, b: xp.logical_and(a, b)),
                          'Elementwise logical AND of two bool tensors (broadcasting): a bool tensor. NumPy also takes\n'
                          '    nonzero as true; the strict device accepts bool inputs only.')
logical_or = _documented(no_grad_op("logical_or", lambda xp, a, b: xp.logical_or(a, b)),
                         'Elementwise logical OR of two bool tensors (broadcasting): a bool tensor. NumPy also takes\n'
                         '    nonzero as true; the strict device accepts bool inputs only.')
logical_xor = _documented(no_grad_op("logical_xor", lambda xp, a, b: xp.logical_xor(a, b)),
                          'Elementwise logical XOR of two bool tensors (broadcasting): a bool tensor. NumPy also takes\n'
                          '    nonzero as true; the strict device accepts bool inputs only.')
logical_not = _documented(no_grad_op("logical_not", lambda xp, x: xp.logical_not(x)),
                          'Elementwise logical NOT of a bool tensor: a bool tensor.')
isfinite = _documented(no_grad_op("isfinite", lambda xp, x: xp.isfinite(x)),
                       'Elementwise test for finite values (not inf, -inf or nan): a bool tensor.')
isnan = _documented(no_grad_op("isnan", lambda xp, x: xp.isnan(x)),
                    'Elementwise test for nan: a bool tensor.')
isinf = _documented(no_grad_op("isinf", lambda xp, x: xp.isinf(x)),
                    'Elementwise test for inf or -inf: a bool tensor.')
