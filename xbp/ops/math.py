"""Elementwise math beyond the core: trigonometric and hyperbolic functions and their inverses,
two-argument functions (atan2, hypot, logaddexp, fmod, xlogy, lerp), rounding, and the special
functions erfc, erfinv, lgamma, digamma and polygamma.

Each primitive keeps its forward beside its VJP. The special functions are not in the Array API
standard (and NumPy has none of them), so their bodies are written here on the standard's
elementwise functions: series, recurrences and rational approximations, evaluated in float64
wherever the device has it (float32 results are the float64 ones rounded). Accuracy, measured
against SciPy and `math` in tests/test_math_ops.py: about 1e-14 relative in float64 for erfc,
erfinv, lgamma and digamma away from their poles (absolute near the zeros of lgamma).

Integer and bool inputs of the float-valued functions are first converted to the default float
dtype, as PyTorch does (``xbp.tan(xbp.tensor([1]))`` is float32).
"""
from __future__ import annotations

import math

from .._primitive import Primitive, apply
from .._tensor import Tensor
from ._tensor_ns import TensorNamespace
from ._util import no_grad_op
from . import elementwise as E

LN2 = math.log(2.0)
LN10 = math.log(10.0)
SQRT_PI = math.sqrt(math.pi)
TWO_OVER_SQRT_PI = 2.0 / SQRT_PI


# --- the namespace a VJP computes in -----------------------------------------------------------------
class _GradNamespace:
    """Under ``create_graph`` VJPs receive Tensors and the tensor namespace, which has only the
    core's functions; this adds the differentiable ones defined here (cosh for sinh's VJP, trunc
    for fmod's, cumulative_prod for cumprod's), so each VJP body serves every order of
    differentiation."""

    def __init__(self, base):
        self._base = base

    def __getattr__(self, name):
        f = _GRAD_OPS.get(name)
        return f if f is not None else getattr(self._base, name)


_GRAD_NS: dict = {}


def _ns(c):
    xp = c.xp
    if not isinstance(xp, TensorNamespace):
        return xp
    ns = _GRAD_NS.get(id(xp))
    if ns is None:
        ns = _GRAD_NS[id(xp)] = _GradNamespace(xp)
    return ns


def _floating(x):
    """Integer/bool tensors -> the default float dtype (PyTorch's rule for float-valued functions)."""
    if isinstance(x, Tensor) and x.array.dtype not in x.xp.float_dtypes:
        return x.to(dtype=E._default_float())
    return x


def _unary(name, fwd, vjp, save="in", doc=""):
    prim = Primitive(name, fwd, vjp, save=save)

    def op(input):  # noqa: A002 - PyTorch's name
        return apply(prim, (_floating(input),))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc or f"Elementwise {name}(input); same shape as input."
    op.prim = prim
    return op


def _work_dtype(xp, x):
    """The dtype the special functions compute in: float64 where the device has it."""
    return xp.float64 if xp.has_float64 else x.dtype


def _in_work(xp, x):
    wd = _work_dtype(xp, x)
    return x if x.dtype == wd else xp.astype(x, wd)


def _back(xp, y, like):
    return y if y.dtype == like.dtype else xp.astype(y, like.dtype)


# --- trigonometric and hyperbolic ----------------------------------------------------------------
tan = _unary("tan", lambda xp, x: xp.tan(x), lambda c, g: (g * (1.0 + c.out * c.out),), save="out")
asin = _unary("asin", lambda xp, x: xp.asin(x),
              lambda c, g: (g / _ns(c).sqrt(1.0 - c.ins[0] * c.ins[0]),))
acos = _unary("acos", lambda xp, x: xp.acos(x),
              lambda c, g: (-g / _ns(c).sqrt(1.0 - c.ins[0] * c.ins[0]),))
atan = _unary("atan", lambda xp, x: xp.atan(x), lambda c, g: (g / (1.0 + c.ins[0] * c.ins[0]),))
sinh = _unary("sinh", lambda xp, x: xp.sinh(x), lambda c, g: (g * _ns(c).cosh(c.ins[0]),))
cosh = _unary("cosh", lambda xp, x: xp.cosh(x), lambda c, g: (g * _ns(c).sinh(c.ins[0]),))
asinh = _unary("asinh", lambda xp, x: xp.asinh(x),
               lambda c, g: (g / _ns(c).sqrt(c.ins[0] * c.ins[0] + 1.0),))
acosh = _unary("acosh", lambda xp, x: xp.acosh(x),
               lambda c, g: (g / _ns(c).sqrt(c.ins[0] * c.ins[0] - 1.0),))
atanh = _unary("atanh", lambda xp, x: xp.atanh(x), lambda c, g: (g / (1.0 - c.ins[0] * c.ins[0]),))
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


# --- logs, exponentials, powers ----------------------------------------------------------------------
log2 = _unary("log2", lambda xp, x: xp.log2(x), lambda c, g: (g / (c.ins[0] * LN2),))
log10 = _unary("log10", lambda xp, x: xp.log10(x), lambda c, g: (g / (c.ins[0] * LN10),))
exp2 = _unary("exp2", lambda xp, x: 2.0 ** x, lambda c, g: (g * c.out * LN2,), save="out")
reciprocal = _unary("reciprocal", lambda xp, x: 1.0 / x, lambda c, g: (-g * c.out * c.out,), save="out")


def square(input):  # noqa: A002
    """input * input (integer tensors stay integer, as in PyTorch)."""
    return E.mul(input, input)


def clamp_min(input, min):  # noqa: A002
    """clamp(input, min=min): elementwise max(input, min); `min` a number or a tensor."""
    return E.clamp(input, min=min)


def clamp_max(input, max):  # noqa: A002
    """clamp(input, max=max): elementwise min(input, max); `max` a number or a tensor."""
    return E.clamp(input, max=max)


# --- rounding: zero gradient almost everywhere, as in PyTorch (not "no gradient") ----------------
trunc_p = Primitive("trunc", lambda xp, x: xp.trunc(x), lambda c, g: (_ns(c).zeros_like(g),))
frac_p = Primitive("frac", lambda xp, x: x - xp.trunc(x), lambda c, g: (g,))


def trunc(input):  # noqa: A002
    """Round toward zero; the gradient is 0 (PyTorch's convention for trunc/floor/ceil, which keeps
    a graph through them intact). Integer tensors come back unchanged (a copy)."""
    if input.dtype.kind != "f":
        from .device import clone
        return clone(input)
    return apply(trunc_p, (input,))


fix = trunc


def frac(input):  # noqa: A002
    """input - trunc(input), the fractional part with the sign of input; gradient 1. Integer
    tensors give zeros."""
    if input.dtype.kind != "f":
        return E.sub(input, input)
    return apply(frac_p, (input,))


def _sinc_fwd(xp, x):
    zero = x == 0
    px = math.pi * xp.where(zero, 1.0, x)
    return xp.where(zero, 1.0, xp.sin(px) / px)


def _sinc_vjp(c, g):
    # d/dx sin(pi x)/(pi x) = (cos(pi x) - sinc(x)) / x, 0 at x = 0 (the limit; PyTorch's value)
    xp = _ns(c)
    x = c.ins[0]
    zero = x == 0
    safe = xp.where(zero, 1.0, x)
    return (xp.where(zero, 0.0, g * (xp.cos(math.pi * safe) - c.out) / safe),)


sinc = _unary("sinc", _sinc_fwd, _sinc_vjp, save="in,out",
              doc="Normalised sinc: sin(pi x) / (pi x), 1 at x = 0.")


def _nan_to_num_fwd(xp, x, nan, posinf, neginf):
    fi = xp.finfo(x.dtype)
    hi = fi.max if posinf is None else posinf
    lo = fi.min if neginf is None else neginf
    y = xp.where(xp.isnan(x), nan, x)
    y = xp.where(y == math.inf, hi, y)
    return xp.where(y == -math.inf, lo, y)


nan_to_num_p = Primitive(
    "nan_to_num", _nan_to_num_fwd,
    # the replaced entries are constants: their gradient is 0, the others pass g through
    lambda c, g: (_ns(c).where(_ns(c).isfinite(c.ins[0]), g, 0.0),), save="in")


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):  # noqa: A002
    """NaN -> `nan`, +inf -> `posinf`, -inf -> `neginf` (default: the dtype's largest / lowest
    finite value). Integer and bool tensors are returned as a copy."""
    if input.dtype.kind != "f":
        from .device import clone
        return clone(input)
    return apply(nan_to_num_p, (input,), {"nan": float(nan), "posinf": None if posinf is None else float(posinf),
                                          "neginf": None if neginf is None else float(neginf)})


# --- two-argument functions ----------------------------------------------------------------------
def _binary(name, fwd, vjp, save="in", doc=""):
    prim = Primitive(name, fwd, vjp, save=save)

    def op(input, other):  # noqa: A002
        return apply(prim, E._promote(_floating(input), _floating(other)))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    op.prim = prim
    return op


def _atan2_vjp(c, g):
    # d atan2(y, x) = (x dy - y dx) / (x^2 + y^2); taken as 0 at (0, 0), as PyTorch does
    xp = _ns(c)
    y, x = c.ins
    den = x * x + y * y
    r = xp.where(den == 0, 0.0, g / xp.where(den == 0, 1.0, den))
    return (r * x if c.needs[0] else None, -r * y if c.needs[1] else None)


atan2 = _binary("atan2", lambda xp, y, x: xp.atan2(y, x), _atan2_vjp,
                doc="Elementwise angle of the point (other, input) in radians: atan2(input, other).")
arctan2 = atan2


def _hypot_vjp(c, g):
    # d sqrt(a^2 + b^2) = (a da + b db) / out; NaN at (0, 0), as in PyTorch
    a, b = c.ins
    r = g / c.out
    return (r * a if c.needs[0] else None, r * b if c.needs[1] else None)


hypot = _binary("hypot", lambda xp, a, b: xp.hypot(a, b), _hypot_vjp, save="in,out",
                doc="sqrt(input^2 + other^2) without intermediate overflow.")


def _sigmoid_pair(xp, d):
    """(sigmoid(d), sigmoid(-d)) without overflow, each accurate (1 - s would lose the small one)."""
    e = xp.exp(-xp.abs(d))
    pos = d >= 0
    big, small = 1.0 / (1.0 + e), e / (1.0 + e)
    return xp.where(pos, big, small), xp.where(pos, small, big)


def _logaddexp_vjp(c, g, scale=1.0):
    # d/da log(e^a + e^b) = sigmoid(a - b); equal arguments (infinite ones included) share it evenly
    xp = _ns(c)
    a, b = c.ins
    same = a == b
    d = xp.where(same, 0.0, a - xp.where(same, 0.0, b))     # (no inf - inf evaluated)
    sa, sb = _sigmoid_pair(xp, d * scale if scale != 1.0 else d)
    return (g * sa if c.needs[0] else None, g * sb if c.needs[1] else None)


logaddexp = _binary("logaddexp", lambda xp, a, b: xp.logaddexp(a, b), _logaddexp_vjp,
                    doc="log(exp(input) + exp(other)), without overflow.")


def _logaddexp2_fwd(xp, a, b):
    m = xp.maximum(a, b)
    same = a == b
    d = xp.where(same, 0.0, xp.abs(a - xp.where(same, 0.0, b)))
    return xp.where(same, a + 1.0, m + xp.log1p(2.0 ** -d) / LN2)


logaddexp2 = _binary("logaddexp2", _logaddexp2_fwd, lambda c, g: _logaddexp_vjp(c, g, LN2),
                     doc="log2(2^input + 2^other), without overflow.")


def _abs_any(xp, v):
    return xp.abs(v) if hasattr(v, "shape") else abs(v)


def _fmod_fwd(xp, a, b):
    # C's fmod (the result has the sign of the dividend): for non-negative operands remainder and
    # fmod agree exactly, so fmod(a, b) = copysign(remainder(|a|, |b|), a)
    r = xp.remainder(_abs_any(xp, a), _abs_any(xp, b))
    if not hasattr(a, "shape"):                     # a Python number
        return -r if math.copysign(1.0, a) < 0 else r
    if a.dtype in xp.float_dtypes:
        return xp.copysign(r, a)                    # keeps -0.0 and NaN as C does
    return xp.where(a < 0, -r, r)


def _fmod_vjp(c, g):
    # fmod(a, b) = a - trunc(a / b) b
    xp = _ns(c)
    a, b = c.ins
    return (g if c.needs[0] else None, -g * xp.trunc(a / b) if c.needs[1] else None)


fmod_p = Primitive("fmod", _fmod_fwd, _fmod_vjp, save="in")


def fmod(input, other):  # noqa: A002
    """C-style remainder: input - trunc(input / other) * other, with the sign of input (unlike
    `remainder`, which takes the sign of other). Integer division by zero raises."""
    a, b = E._promote(input, other)
    ints = (a.dtype.kind in "iub") if isinstance(a, Tensor) else (b.dtype.kind in "iub")
    if ints and (bool(E.eq(b, 0).any()) if isinstance(b, Tensor) else b == 0):
        raise ZeroDivisionError("fmod: integer division by zero (a divisor is 0)")
    return apply(fmod_p, (a, b))


def _xlogy_fwd(xp, x, y):
    zero = x == 0
    ly = xp.log(xp.where(zero, 1.0, y))
    out = xp.where(zero, 0.0, x * ly)
    return xp.where(xp.isnan(y), math.nan, out)           # 0 * log(nan) is nan, as in PyTorch


def _xlogy_vjp(c, g):
    xp = _ns(c)
    x, y = c.ins
    gx = gy = None
    if c.needs[0]:
        # log(y), taken as 0 where x = 0 and y <= 0 (PyTorch's convention: no -inf / nan there)
        dead = (x == 0) & (y <= 0)
        gx = xp.where(dead, 0.0, g * xp.log(xp.where(dead, 1.0, y)))
    if c.needs[1]:
        gy = g * x / y
    return gx, gy


xlogy_p = Primitive("xlogy", _xlogy_fwd, _xlogy_vjp, save="in")


def xlogy(input, other):  # noqa: A002
    """input * log(other), taken as 0 where input == 0 (unless other is NaN)."""
    return apply(xlogy_p, E._promote(_floating(input), _floating(other)))


def _lerp_fwd(xp, s, e, w):
    # PyTorch's two-sided form: exact at w = 0 (start) and at w = 1 (end)
    d = e - s
    if not hasattr(w, "shape"):
        return s + w * d if abs(w) < 0.5 else e - d * (1.0 - w)
    return xp.where(xp.abs(w) < 0.5, s + w * d, e - d * (1.0 - w))


def _lerp_vjp(c, g):
    s, e, w = c.ins
    return (g * (1.0 - w) if c.needs[0] else None, g * w if c.needs[1] else None,
            g * (e - s) if c.needs[2] else None)


lerp_p = Primitive("lerp", _lerp_fwd, _lerp_vjp, save="in")


def lerp(input, end, weight):  # noqa: A002
    """input + weight * (end - input); `weight` a number or a tensor (broadcasting).
    Differentiable in all three."""
    if not isinstance(end, Tensor):
        raise TypeError(f"lerp: end must be a Tensor, got {type(end).__name__}")
    if isinstance(weight, Tensor):
        s, e = E._promote(input, end)
        s, w = E._promote(s, weight)
        e, w = E._promote(e, w)
        return apply(lerp_p, (s, e, w))
    return apply(lerp_p, E._promote(input, end) + (float(weight),))


def _heaviside(xp, x, values):
    # PyTorch's definition: values where x == 0, else (x > 0) -- so NaN gives 0 (NumPy: NaN)
    dt = x.dtype
    return xp.where(x == 0, values, xp.astype(x > 0, dt))


_heaviside_op = no_grad_op("heaviside", _heaviside)


def heaviside(input, values):  # noqa: A002
    """Step function: 0 where input < 0, `values` where input == 0, 1 where input > 0. No gradient."""
    return _heaviside_op(*E._promote(input, values))


def sgn(input):  # noqa: A002
    """sign(input) (for real tensors PyTorch's sgn is sign)."""
    return E.sign(input)


# --- closeness -------------------------------------------------------------------------------------
def _check_tols(op, rtol, atol):
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"{op}: rtol ({rtol}) and atol ({atol}) must be non-negative numbers")


def _isclose(xp, a, b, rtol, atol, equal_nan):
    if a.dtype not in xp.float_dtypes:              # integers and bools: compared as floats
        wd = xp.float64 if xp.has_float64 else xp.float32
        a, b = xp.astype(a, wd), xp.astype(b, wd)
    finite = xp.isfinite(a) & xp.isfinite(b)
    diff = xp.abs(xp.where(finite, a, 0.0) - xp.where(finite, b, 0.0))
    close = (a == b) | (finite & (diff <= atol + rtol * xp.abs(xp.where(finite, b, 0.0))))
    if equal_nan:
        close = close | (xp.isnan(a) & xp.isnan(b))
    return close


_isclose_op = no_grad_op("isclose", _isclose)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):  # noqa: A002
    """Elementwise |input - other| <= atol + rtol * |other| (broadcasting), as a bool tensor.
    Equal infinities are close; NaNs are close to each other only with `equal_nan`."""
    _check_tols("isclose", rtol, atol)
    a, b = E._promote(input, other)
    if not isinstance(b, Tensor):
        from .._creation import full
        b = full(a.shape, b, dtype=a.dtype, device=a.xp)
    elif not isinstance(a, Tensor):
        from .._creation import full
        a = full(b.shape, a, dtype=b.dtype, device=b.xp)
    return _isclose_op(a, b, rtol=float(rtol), atol=float(atol), equal_nan=bool(equal_nan))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:  # noqa: A002
    """Whether every element of input is close to other (see `isclose`): a Python bool."""
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


# --- special functions -----------------------------------------------------------------------------
def _erfc_work(xp, x):
    """erfc in the work dtype, accurate relative to its (tiny) value in the right tail: 1 - erf(x)
    for x < 2 (erfc(2) = 0.0047, so the cancellation costs at most 2e-14), and for x >= 2 the
    continued fraction erfc(a) = e^(-a^2) / (sqrt(pi) (a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))))
    (48 terms: 7e-15 relative from a = 2 on); erfc(-x) = 2 - erfc(x)."""
    a = xp.abs(x)
    hi = xp.maximum(a, 2.0)
    f = hi
    for k in range(48, 0, -1):
        f = hi + (0.5 * k) / f
    tail = xp.exp(-hi * hi) / (SQRT_PI * f)
    pos = xp.where(a < 2.0, 1.0 - xp.erf(a), tail)
    return xp.where(x < 0, 2.0 - pos, pos)


def _erfc_fwd(xp, x):
    return _back(xp, _erfc_work(xp, _in_work(xp, x)), x)


erfc = _unary("erfc", _erfc_fwd,
              lambda c, g: (g * (-TWO_OVER_SQRT_PI) * _ns(c).exp(-c.ins[0] * c.ins[0]),),
              doc="Complementary error function 1 - erf(x), accurate in the right tail.")


# Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011): single precision
_GILES_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                  -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_GILES_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
               -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _horner(coefs, t):
    p = coefs[0]
    for c in coefs[1:]:
        p = p * t + c
    return p


def _erfinv_work(xp, y):
    """erfinv in the work dtype. Start: Giles' single-precision approximation (for
    -log(1 - y^2) <= 16, which covers every float32 input), or, further out, the asymptotic
    x^2 = L - log(sqrt(pi) x) with L = -log(1 - |y|). Then two Halley steps (cubic convergence:
    a 4e-7 start error becomes < 1e-16 after one): on erf(x) = |y| where |y| <= 1/2, and on
    log erfc(x) = log(1 - |y|) in the tails (1 - |y| is exact there, and in log form neither erfc
    nor its derivative underflows, down to 1 - |y| = 1e-308)."""
    a = xp.abs(y)
    inside = a < 1.0
    a_in = xp.where(inside, a, 0.5)                    # keeps the iterations finite at |y| >= 1
    q = 1.0 - a_in
    log_q = xp.log(q)
    w = -xp.log(q * (1.0 + a_in))
    s = xp.sqrt(w)
    x = xp.where(w < 5.0, _horner(_GILES_CENTRAL, w - 2.5), _horner(_GILES_TAIL, s - 3.0)) * a_in
    # the continued fraction is needed only where x >= 2 (1 - |y| < erfc(2) = 0.0047), the
    # asymptotic start only beyond w = 16: skip them (one device -> host read for both) when no
    # element is that far out, the common case
    far, very_far = (bool(v) for v in xp.to_numpy(xp.stack([xp.any(q < 0.01), xp.any(w > 16.0)])))
    if very_far:
        L = xp.where(w <= 16.0, 16.0, -log_q)
        asym = xp.sqrt(L)
        for _ in range(4):
            asym = xp.sqrt(L - xp.log(SQRT_PI * asym))
        x = xp.where(w <= 16.0, x, asym)
    central = a_in <= 0.5
    for _ in range(2):
        erf_x = xp.erf(x)
        # central: f = erf(x) - a, f' = 2/sqrt(pi) e^(-x^2), f''/f' = -2x
        step_c = (erf_x - a_in) * (SQRT_PI / 2.0) * xp.exp(x * x)
        halley_c = step_c / (1.0 + step_c * x)
        # tails: f = log erfc(x) - log q, f' = h = -2 / (sqrt(pi) erfcx(x)), f''/f' = -h - 2x
        le, erfcx = _log_erfc_and_erfcx(xp, x, erf_x, far)
        h = -2.0 / (SQRT_PI * erfcx)
        step_t = (le - log_q) / h
        halley_t = step_t / (1.0 + 0.5 * step_t * (h + 2.0 * x))
        x = x - xp.where(central, halley_c, halley_t)
    x = xp.where(inside, x, xp.where(a == 1.0, math.inf, xp.full(a.shape, math.nan, dtype=a.dtype)))
    return xp.where(y < 0, -x, x)


def _log_erfc_and_erfcx(xp, x, erf_x, far=True):
    """(log erfc(x), e^(x^2) erfc(x)) for x >= 0 without underflow: 1 - erf(x) below 2, and the
    continued fraction (which gives e^(x^2) erfc(x) directly) from 2 on, where `far` says some
    element may be there."""
    lo = xp.minimum(x, 2.0)
    erfc_lo = 1.0 - xp.where(x < 2.0, erf_x, 0.0)
    erfc_lo = xp.where(x < 2.0, erfc_lo, 1.0)
    le = xp.log(erfc_lo)
    erfcx = erfc_lo * xp.exp(lo * lo)
    if not far:
        return le, erfcx
    hi = xp.maximum(x, 2.0)
    f = hi
    for k in range(48, 0, -1):
        f = hi + (0.5 * k) / f
    erfcx_tail = 1.0 / (SQRT_PI * f)
    return (xp.where(x < 2.0, le, -hi * hi + xp.log(erfcx_tail)), xp.where(x < 2.0, erfcx, erfcx_tail))


def _erfinv_fwd(xp, x):
    return _back(xp, _erfinv_work(xp, _in_work(xp, x)), x)


erfinv = _unary("erfinv", _erfinv_fwd,
                # d erfinv(y)/dy = sqrt(pi)/2 e^(erfinv(y)^2)
                lambda c, g: (g * (SQRT_PI / 2.0) * _ns(c).exp(c.out * c.out),), save="out",
                doc="Inverse error function on [-1, 1] (+-inf at +-1, NaN outside).")


# Lanczos approximation, g = 7, n = 9 (Godfrey's coefficients): Gamma to ~1e-15 relative for x >= 1/2
_LANCZOS_G = 7.0
_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _lgamma_right(xp, x):
    """log Gamma(x) for x >= 1/2 (Lanczos)."""
    z = x - 1.0
    s = _LANCZOS[0]
    for i in range(1, len(_LANCZOS)):
        s = s + _LANCZOS[i] / (z + i)
    t = z + _LANCZOS_G + 0.5
    return _HALF_LOG_2PI + (z + 0.5) * xp.log(t) - t + xp.log(s)


def _sin_pi_abs(xp, x):
    """|sin(pi x)|, exact in its argument reduction: r = x - round(x) loses nothing, so the
    zeros at the integers are not smeared by the rounding of pi * x."""
    r = x - xp.round(x)
    return xp.abs(xp.sin(math.pi * r))


def _lgamma_work(xp, x):
    left = x < 0.5
    xr = xp.where(left, 1.0 - x, x)                   # >= 1/2 everywhere
    xr = xp.where(xp.isfinite(xr), xr, 1.0)
    right = _lgamma_right(xp, xr)
    # reflection: log|Gamma(x)| = log(pi / |sin(pi x)|) - log Gamma(1 - x); +inf at 0, -1, -2, ...
    xl = xp.where(left & xp.isfinite(x), x, 0.5)
    sin_pi = _sin_pi_abs(xp, xl)
    pole = sin_pi == 0
    refl = math.log(math.pi) - xp.log(xp.where(pole, 1.0, sin_pi)) - right
    out = xp.where(left, xp.where(pole, math.inf, refl), right)
    out = xp.where((x == 1.0) | (x == 2.0), 0.0, out)     # exact zeros (Lanczos leaves ~1e-15)
    return xp.where(xp.isinf(x), math.inf, xp.where(xp.isnan(x), math.nan, out))


def _lgamma_fwd(xp, x):
    return _back(xp, _lgamma_work(xp, _in_work(xp, x)), x)


def _lgamma_vjp(c, g):
    x = c.ins[0]
    return (g * (digamma(x) if isinstance(x, Tensor) else _polygamma_fwd(c.xp, x, 0)),)


lgamma = _unary("lgamma", _lgamma_fwd, _lgamma_vjp,
                doc="log |Gamma(x)| (+inf at 0, -1, -2, ... and at +-inf).")


# Bernoulli numbers B_2, B_4, ..., B_16 for the asymptotic expansions of psi and its derivatives
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)


def _cot_derivative_poly(n):
    """Coefficients (lowest power first) of Q_n with d^n/dx^n cot(pi x) = pi^n Q_n(cot(pi x)):
    Q_0(c) = c and Q_(k+1)(c) = -(1 + c^2) Q_k'(c), since d cot(pi x)/dx = -pi (1 + cot^2)."""
    q = [0.0, 1.0]
    for _ in range(n):
        d = [i * q[i] for i in range(1, len(q))]              # Q'
        new = [0.0] * (len(d) + 2)
        for i, v in enumerate(d):
            new[i] -= v
            new[i + 2] -= v
        q = new
    return q


def _polygamma_work(xp, n, x):
    """psi^(n)(x) (n = 0: digamma) in the work dtype.

    x >= 1/2: recurrence psi^(n)(x) = psi^(n)(x + 1) + (-1)^(n+1) n! / x^(n+1), applied 10 + n
    times, then the asymptotic expansion at z = x + 10 + n (8 Bernoulli terms: below 1e-16 there).
    x < 1/2: the reflection psi^(n)(x) = (-1)^n psi^(n)(1 - x) - pi^(n+1) Q_n(cot(pi x)), with the
    cotangent taken of the exactly reduced x - round(x). Poles at 0, -1, -2, ...: digamma is -inf at
    +0 and NaN at the negative integers, psi^(n) is (-1)^(n+1) inf (PyTorch's values)."""
    left = x < 0.5
    fin = xp.isfinite(x)
    xr = xp.where(left, 1.0 - x, x)
    xr = xp.where(fin, xr, 1.0)
    # every element is shifted by the same 10 + n steps (xr >= 1/2, so z >= 10.5 + n): no masks,
    # and for large x the extra terms are simply small
    acc = 0.0
    for k in range(10 + n):
        r = 1.0 / (xr + float(k))
        acc = acc + (r if n == 0 else r ** (n + 1.0))
    z = xr + float(10 + n)
    inv = 1.0 / z
    inv2 = inv * inv
    if n == 0:
        series = 0.0
        p = inv2
        for k, b in enumerate(_BERNOULLI, start=1):
            series = series + b / (2 * k) * p
            p = p * inv2
        right = xp.log(z) - 0.5 * inv - series - acc
    else:
        # psi^(n)(z) ~ (-1)^(n+1) [(n-1)!/z^n + n!/(2 z^(n+1)) + sum_k B_2k (2k+n-1)!/(2k)! / z^(2k+n)]
        zn = inv ** n
        tot = math.factorial(n - 1) * zn + math.factorial(n) * 0.5 * zn * inv
        p = zn * inv2
        for k, b in enumerate(_BERNOULLI, start=1):
            tot = tot + b * (math.factorial(2 * k + n - 1) / math.factorial(2 * k)) * p
            p = p * inv2
        sign = 1.0 if n % 2 == 1 else -1.0
        right = sign * (tot + math.factorial(n) * acc)
    # reflection for x < 1/2
    xl = xp.where(left & fin, x, 0.25)
    r = xl - xp.round(xl)
    pr = math.pi * r
    cot = xp.cos(pr) / xp.where(r == 0, 1.0, xp.sin(pr))
    poly = _horner(list(reversed(_cot_derivative_poly(n))), cot)
    refl = (1.0 if n % 2 == 0 else -1.0) * right - math.pi ** (n + 1) * poly
    out = xp.where(left, refl, right)
    pole = left & (r == 0)
    if n == 0:
        pole_value = xp.where(x == 0, -math.inf, xp.full(x.shape, math.nan, dtype=x.dtype))
        pole_value = xp.where((x == 0) & xp.signbit(x), math.inf, pole_value)
    else:
        pole_value = math.inf if n % 2 == 1 else -math.inf
    out = xp.where(pole, pole_value, out)
    # +inf: psi -> inf, psi^(n) -> 0; -inf and NaN: NaN
    at_inf = (math.inf if n == 0 else 0.0)
    return xp.where(x == math.inf, at_inf, xp.where(fin, out, math.nan))


def _polygamma_fwd(xp, x, n):
    return _back(xp, _polygamma_work(xp, n, _in_work(xp, x)), x)


def _polygamma_vjp(c, g):
    # d psi^(n) / dx = psi^(n+1): on Tensors (create_graph) through the differentiable op
    x, n1 = c.ins[0], c.p["n"] + 1
    return (g * (polygamma(n1, x) if isinstance(x, Tensor) else _polygamma_fwd(c.xp, x, n1)),)


polygamma_p = Primitive("polygamma", _polygamma_fwd, _polygamma_vjp, save="in")


def polygamma(n, input):  # noqa: A002
    """The n-th derivative of digamma: psi^(n)(input), for an integer n >= 0."""
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"polygamma: n must be a non-negative integer, got {n!r}")
    n = int(n)
    if n < 0:
        raise ValueError(f"polygamma: n must be a non-negative integer, got {n}")
    return apply(polygamma_p, (_floating(input),), {"n": n})


def digamma(input):  # noqa: A002
    """psi(x) = d/dx log Gamma(x) (-inf at +0, NaN at the negative integers, as PyTorch)."""
    return polygamma(0, input)


# the differentiable functions the VJPs above call under create_graph (see _GradNamespace)
_GRAD_OPS = {"cosh": cosh, "sinh": sinh, "trunc": trunc}
