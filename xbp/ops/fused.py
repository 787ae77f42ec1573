"""Fused primitives, each for a stated reason.

softmax / log_softmax: composing them from exp, sum and div overflows for large inputs and needs
five saved arrays; as primitives they subtract the max once and save only their output.
"""
from __future__ import annotations

from .._primitive import Primitive, apply
from ._util import norm_axis, pick_dim


def _softmax_fwd(xp, x, axis):
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _softmax_vjp(c, g):
    # y = softmax(x): dx = y * (g - sum(g * y))
    y = c.out
    return (y * (g - c.xp.sum(g * y, axis=c.p["axis"], keepdims=True)),)


softmax_p = Primitive("softmax", _softmax_fwd, _softmax_vjp, save="out")


def _log_softmax_fwd(xp, x, axis):
    z = x - xp.max(x, axis=axis, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))


def _log_softmax_vjp(c, g):
    # y = log_softmax(x): dx = g - softmax(x) * sum(g), with softmax(x) = exp(y)
    xp = c.xp
    return (g - xp.exp(c.out) * xp.sum(g, axis=c.p["axis"], keepdims=True),)


log_softmax_p = Primitive("log_softmax", _log_softmax_fwd, _log_softmax_vjp, save="out")


def softmax(x, dim=-1, dtype=None, *, axis=None):
    """exp(x) / sum(exp(x)) along `dim`, stable for large inputs; `dtype` casts x first."""
    dim = pick_dim("softmax", dim, axis, default=-1)
    if dtype is not None:
        x = x.to(dtype=dtype)
    axis = norm_axis(dim, x.ndim, op="softmax")[0]
    if x.ndim and x.array.shape[axis] == 0:
        return x * 1.0                   # nothing to normalise: an empty result, as in PyTorch
    return apply(softmax_p, (x,), {"axis": axis})


def log_softmax(x, dim=-1, dtype=None, *, axis=None):
    """log(softmax(x)) along `dim`, computed as x - logsumexp(x) (stable); `dtype` casts x first."""
    dim = pick_dim("log_softmax", dim, axis, default=-1)
    if dtype is not None:
        x = x.to(dtype=dtype)
    axis = norm_axis(dim, x.ndim, op="log_softmax")[0]
    if x.ndim and x.array.shape[axis] == 0:
        return x * 1.0                   # nothing to normalise: an empty result, as in PyTorch
    return apply(log_softmax_p, (x,), {"axis": axis})
