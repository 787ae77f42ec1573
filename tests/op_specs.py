"""One row per differentiable function of the core: how to call it, an independent NumPy reference,
the input shapes to try (broadcasting, 0-d, size-1 and a non-contiguous view), the input domain,
and whether the function is smooth (then its second derivatives are checked too).

`tests/test_ops.py` sweeps this table over the devices: forward against NumPy, float32 in ->
float32 out, gradcheck in float64, and gradgradcheck for the smooth rows. Keep shapes tiny: every
element of every input costs two forward passes per check, and array-api-strict is slow.

Conventions
- `fn(*tensors)` calls xbp; `ref(*arrays)` is NumPy written here, never calling xbp. Either may
  return a tuple (several outputs). Constant arguments (index arrays, masks) are built inside `fn`
  on the device of the first input, and as NumPy arrays inside `ref`.
- An input spec is a shape tuple, or `NC(shape)`: the op then receives a transposed view of a leaf
  of the reversed shape (a non-contiguous array on NumPy and CuPy).
- `domain`: (low, high) for uniform inputs, "away0" for |x| in [0.3, 1] with random signs (for
  kinks at 0), or a list with one of these per input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import xbp


@dataclass(frozen=True)
class NC:
    """A non-contiguous input of `shape`: the transposed view of a leaf of shape reversed(shape)."""
    shape: tuple


@dataclass
class OpSpec:
    name: str
    fn: object
    ref: object
    cases: list
    domain: object = (-1.0, 1.0)
    smooth: bool = True          # run gradgradcheck
    grad: bool = True            # differentiable (False: forward only)
    atol: float = 1e-7           # forward tolerance (float64)
    rtol: float = 1e-7
    float32_ok: bool = True      # float32 in -> float32 out
    tags: tuple = field(default_factory=tuple)


def _dev(t):
    return t.device


def _itensor(values, like):
    return xbp.tensor(np.asarray(values, dtype=np.int64), device=_dev(like))


def _btensor(values, like):
    return xbp.tensor(np.asarray(values, dtype=bool), device=_dev(like))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    r = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _pad_ref(a, pad, value=0.0):
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return np.pad(a, widths, constant_values=value)


def _setitem(a, key, v):
    y = a * 1.0
    y[key] = v
    return y


def _np_setitem(a, key, v):
    y = a.copy()
    y[key] = v
    return y


_ZERO_MASK_NP = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]])


def _ZERO_MASK(like):
    return xbp.tensor(_ZERO_MASK_NP, dtype=like.dtype, device=_dev(like))


_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _erfinv(y):
    """Newton's method on math.erf, from 0 (erfinv is convex on [0, 1): monotone convergence)."""
    def one(v):
        x = 0.0
        for _ in range(100):
            step = (math.erf(x) - abs(v)) / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
            x -= step
            if abs(step) < 1e-17:
                break
        return math.copysign(x, v)
    return np.vectorize(one, otypes=[np.float64])(y)


def _polygamma(n, x):
    """psi^(n)(x), n >= 0, x > 0, written independently of xbp: n! sum_k (x+k)^-(n+1) summed to
    k = 2000, plus the integral tail and Euler-Maclaurin's half term (error ~ 1/2000^(n+2)); digamma
    from log(z) - 1/(2z) - 1/(12 z^2) + 1/(120 z^4) at z = x + 2000 minus sum 1/(x+k)."""
    x = np.asarray(x, dtype=np.float64)
    k = np.arange(2000.0).reshape((-1,) + (1,) * x.ndim)
    z = x + 2000.0
    if n == 0:
        return np.log(z) - 0.5 / z - 1 / (12 * z ** 2) + 1 / (120 * z ** 4) - (1.0 / (x + k)).sum(0)
    s = ((x + k) ** -(n + 1.0)).sum(0) + z ** -float(n) / n + 0.5 * z ** -(n + 1.0) + (n + 1) / 12 * z ** -(n + 2.0)
    return (-1) ** (n + 1) * math.factorial(n) * s


def _digamma(x):
    x = np.asarray(x, dtype=np.float64)
    # reflection for negative x: psi(x) = psi(1 - x) - pi cot(pi x)
    neg = x < 0
    xr = np.where(neg, 1.0 - x, x)
    return np.where(neg, _polygamma(0, xr) - np.pi / np.tan(np.pi * x), _polygamma(0, xr))
# --- references for the sorting, indexing, scatter and linear algebra rows ------------------------
def _np_scatter(a, dim, index, src):
    out = a.copy()
    np.put_along_axis(out, index, src[tuple(slice(0, s) for s in index.shape)], axis=dim)
    return out


def _np_scatter_targets(a, dim, index):
    for c in np.ndindex(*index.shape):
        t = list(c)
        t[dim] = index[c]
        yield c, tuple(t)


def _np_scatter_add(a, dim, index, src):
    out = a.copy()
    for c, t in _np_scatter_targets(a, dim, index):
        out[t] += src[c]
    return out


def _np_scatter_reduce(a, dim, index, src, f, include_self):
    groups = {}
    for c, t in _np_scatter_targets(a, dim, index):
        groups.setdefault(t, [a[t]] if include_self else []).append(src[c])
    out = a.copy()
    for t, vals in groups.items():
        out[t] = f(np.array(vals))
    return out


def _np_add_at(a, key, v):
    out = a.copy()
    np.add.at(out, key, v)
    return out


def _np_index_add(a, dim, index, src):
    out = np.moveaxis(a.copy(), dim, 0)
    np.add.at(out, index, np.moveaxis(src, dim, 0))
    return np.moveaxis(out, 0, dim)


def _np_block_diag(*ms):
    out = np.zeros((sum(m.shape[0] for m in ms), sum(m.shape[1] for m in ms)))
    r = c = 0
    for m in ms:
        out[r:r + m.shape[0], c:c + m.shape[1]] = m
        r, c = r + m.shape[0], c + m.shape[1]
    return out


def _np_expm(a):
    # eigen-decomposition reference (random matrices are diagonalisable), independent of xbp's series
    w, v = np.linalg.eig(a)
    return np.real(v @ (np.exp(w)[..., None] * np.linalg.inv(v)))


def _spd(a):
    return a @ a.mT + 3.0 * xbp.eye(a.shape[-1], dtype=a.dtype, device=a.device)


def _spd_np(a):
    return a @ np.swapaxes(a, -1, -2) + 3.0 * np.eye(a.shape[-1])


def _svd_gauge_free(r):
    # singular vectors are defined up to sign: compare functions that do not depend on it
    u, s, vh = r
    return u * u, s, vh * vh, (u * s[..., None, :]) @ vh


def _eigh_gauge_free(r):
    w, v = r
    return w, v * v


UNARY = [(2, 3), (), (1,), NC((3, 2))]
BINARY = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2,)), ((1,), ()), (NC((3, 2)), (3, 1))]
POS = (0.5, 2.0)

SPECS = [
    # --- arithmetic --------------------------------------------------------------------------------
    OpSpec("add", lambda a, b: a + b, lambda a, b: a + b, BINARY),
    OpSpec("sub", lambda a, b: a - b, lambda a, b: a - b, BINARY),
    OpSpec("mul", lambda a, b: a * b, lambda a, b: a * b, BINARY),
    OpSpec("div", lambda a, b: a / b, lambda a, b: a / b, BINARY, domain=[(-1, 1), "away0"]),
    OpSpec("neg", lambda a: -a, lambda a: -a, UNARY),
    OpSpec("add_scalar", lambda a: 2.5 + a - 1.0, lambda a: 2.5 + a - 1.0, UNARY),
    OpSpec("mul_scalar", lambda a: 3.0 * a * 0.5, lambda a: 3.0 * a * 0.5, UNARY),
    OpSpec("rdiv_scalar", lambda a: 2.0 / a, lambda a: 2.0 / a, UNARY, domain="away0"),
    OpSpec("pow", lambda a, b: a ** b, lambda a, b: a ** b, BINARY, domain=[POS, (-1.5, 1.5)]),
    OpSpec("pow_int", lambda a: a ** 3, lambda a: a ** 3, UNARY),
    OpSpec("pow_half", lambda a: xbp.pow(a, 0.5), lambda a: a ** 0.5, UNARY, domain=POS),
    OpSpec("rpow", lambda a: 2.0 ** a, lambda a: 2.0 ** a, UNARY),
    # --- exponentials, logs, powers ---------------------------------------------------------------
    OpSpec("exp", xbp.exp, np.exp, UNARY),
    OpSpec("log", xbp.log, np.log, UNARY, domain=POS),
    OpSpec("log1p", xbp.log1p, np.log1p, UNARY, domain=(-0.5, 1.0)),
    OpSpec("expm1", xbp.expm1, np.expm1, UNARY),
    OpSpec("sqrt", xbp.sqrt, np.sqrt, UNARY, domain=POS),
    OpSpec("rsqrt", xbp.rsqrt, lambda a: 1.0 / np.sqrt(a), UNARY, domain=POS),
    OpSpec("square", lambda a: a.square(), np.square, UNARY),
    OpSpec("abs", xbp.abs, np.abs, UNARY, domain="away0", smooth=False),
    OpSpec("sin", xbp.sin, np.sin, UNARY, domain=(-3, 3)),
    OpSpec("cos", xbp.cos, np.cos, UNARY, domain=(-3, 3)),
    OpSpec("erf", xbp.erf, _erf, UNARY, domain=(-2, 2), atol=2e-7),
    # --- activations ------------------------------------------------------------------------------
    OpSpec("tanh", xbp.tanh, np.tanh, UNARY, domain=(-2, 2)),
    OpSpec("sigmoid", xbp.sigmoid, _sigmoid, UNARY, domain=(-3, 3)),
    OpSpec("sigmoid_large", xbp.sigmoid, _sigmoid, [(4,)], domain=(-40, 40)),
    OpSpec("relu", xbp.relu, lambda a: np.maximum(a, 0), UNARY, domain="away0", smooth=False),
    OpSpec("leaky_relu", lambda a: xbp.leaky_relu(a, 0.1), lambda a: np.where(a > 0, a, 0.1 * a), UNARY,
           domain="away0", smooth=False),
    OpSpec("elu", lambda a: xbp.elu(a, 1.5), lambda a: np.where(a > 0, a, 1.5 * np.expm1(a)), UNARY,
           domain="away0", smooth=False),
    OpSpec("gelu", xbp.gelu, lambda a: 0.5 * a * (1 + _erf(a / np.sqrt(2))), UNARY, domain=(-3, 3), atol=2e-7),
    OpSpec("gelu_tanh", lambda a: xbp.gelu(a, approximate="tanh"),
           lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3))), UNARY, domain=(-3, 3)),
    OpSpec("silu", xbp.silu, lambda a: a * _sigmoid(a), UNARY, domain=(-3, 3)),
    OpSpec("softplus", xbp.softplus, lambda a: np.logaddexp(0, a), UNARY, domain=(-3, 3)),
    OpSpec("softplus_beta", lambda a: xbp.softplus(a, beta=2.0, threshold=3.0),
           lambda a: np.where(2 * a > 3, a, np.logaddexp(0, 2 * a) / 2), [(2, 3)], domain=[(0.1, 1.2)]),
    # --- selections ---------------------------------------------------------------------------------
    OpSpec("maximum", xbp.maximum, np.maximum, BINARY, smooth=False),
    OpSpec("minimum", xbp.minimum, np.minimum, BINARY, smooth=False),
    OpSpec("clamp", lambda a: xbp.clamp(a, -0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), UNARY,
           domain="away0", smooth=False),
    OpSpec("clamp_min", lambda a: a.clamp(min=0.5), lambda a: np.maximum(a, 0.5), UNARY, domain="away0",
           smooth=False),
    OpSpec("clip_tensor_bounds", lambda a, lo: xbp.clip(a, min=lo, max=0.6),
           lambda a, lo: np.minimum(np.maximum(a, lo), 0.6), [((2, 3), (3,))], smooth=False),
    OpSpec("where", lambda a, b: xbp.where(_btensor([True, False, True], a), a, b),
           lambda a, b: np.where(np.array([True, False, True]), a, b), [((2, 3), (2, 3)), ((2, 3), ()),
                                                                         ((1, 3), (2, 1))]),
    OpSpec("where_scalar", lambda a: xbp.where(a > 0, a, 0.0), lambda a: np.where(a > 0, a, 0.0), UNARY,
           domain="away0", smooth=False),
    OpSpec("masked_fill", lambda a: a.masked_fill(_btensor([[True, False, False], [False, False, True]], a), -2.0),
           lambda a: np.where(np.array([[True, False, False], [False, False, True]]), -2.0, a), [(2, 3)]),
    # --- reductions ---------------------------------------------------------------------------------
    OpSpec("sum", lambda a: a.sum(), lambda a: np.sum(a), UNARY),
    OpSpec("sum_dim", lambda a: a.sum(1), lambda a: a.sum(1), [(2, 3), NC((3, 2))]),
    OpSpec("sum_tuple_keepdim", lambda a: xbp.sum(a, (0, 2), keepdim=True),
           lambda a: a.sum((0, 2), keepdims=True), [(2, 2, 2)]),
    OpSpec("sum_axis_kw", lambda a: xbp.sum(a, axis=-1, keepdims=True), lambda a: a.sum(-1, keepdims=True),
           [(2, 3), (1,)]),
    OpSpec("mean", lambda a: a.mean(), lambda a: np.mean(a), UNARY),
    OpSpec("mean_dim", lambda a: a.mean((0, -1), keepdim=True), lambda a: a.mean((0, -1), keepdims=True),
           [(2, 3), (2, 1, 2)]),
    OpSpec("prod", lambda a: a.prod(), lambda a: np.prod(a), UNARY, domain="away0"),
    OpSpec("prod_dim", lambda a: a.prod(1), lambda a: a.prod(1), [(2, 3), NC((3, 2))], domain="away0"),
    OpSpec("amax", lambda a: a.amax(), lambda a: np.max(a), UNARY, smooth=False),
    OpSpec("amax_dim", lambda a: a.amax(-1, keepdim=True), lambda a: a.max(-1, keepdims=True),
           [(2, 3), NC((3, 2))], smooth=False),
    OpSpec("amin_dims", lambda a: xbp.amin(a, (0, 1)), lambda a: a.min((0, 1)), [(2, 3, 2)], smooth=False),
    OpSpec("max", lambda a: xbp.max(a), lambda a: np.max(a), UNARY, smooth=False),
    OpSpec("max_dim", lambda a: a.max(1).values, lambda a: a.max(1), [(2, 3)], smooth=False),
    OpSpec("min_dim_keepdim", lambda a: a.min(0, keepdim=True)[0], lambda a: a.min(0, keepdims=True), [(2, 3)],
           smooth=False),
    OpSpec("max_dim_neg_keepdim", lambda a: a.max(-1, keepdim=True).values, lambda a: a.max(-1, keepdims=True),
           [(2, 3), NC((3, 2)), (2, 1, 3)], smooth=False),
    OpSpec("min_dim_3d", lambda a: xbp.min(a, 1)[0], lambda a: a.min(1), [(2, 3, 2)], smooth=False),
    OpSpec("max_dim_0d", lambda a: a.max(0).values * 1.0, lambda a: a * 1.0, [()], smooth=False),
    OpSpec("max_binary", lambda a, b: xbp.max(a, b), np.maximum, [((2, 3), (3,))], smooth=False),
    OpSpec("var", lambda a: a.var(), lambda a: np.var(a, ddof=1), [(2, 3), NC((3, 2))]),
    OpSpec("var_dim_pop", lambda a: a.var(1, keepdim=True, correction=0), lambda a: a.var(1, keepdims=True),
           [(2, 3)]),
    OpSpec("var_tuple", lambda a: xbp.var(a, (0, 2)), lambda a: a.var((0, 2), ddof=1), [(2, 2, 2)]),
    OpSpec("std", lambda a: a.std(), lambda a: np.std(a, ddof=1), [(2, 3), NC((3, 2))]),
    OpSpec("std_dim", lambda a: xbp.std(a, 0, correction=0), lambda a: a.std(0), [(3, 2)]),
    OpSpec("logsumexp", lambda a: xbp.logsumexp(a, 1), lambda a: _logsumexp(a, 1), [(2, 3), NC((3, 2))]),
    OpSpec("logsumexp_all_keep", lambda a: xbp.logsumexp(a, (0, 1), keepdim=True),
           lambda a: _logsumexp(a, (0, 1), keepdims=True), [(2, 3)]),
    OpSpec("logsumexp_large", lambda a: xbp.logsumexp(a * 1000.0, -1), lambda a: _logsumexp(a * 1000.0, -1),
           [(3,)], atol=1e-9, rtol=1e-9),
    OpSpec("norm", lambda a: a.norm(), lambda a: np.sqrt(np.sum(a * a)), [(2, 3), NC((3, 2))]),
    OpSpec("norm_dim", lambda a: xbp.norm(a, dim=1, keepdim=True), lambda a: np.sqrt((a * a).sum(1, keepdims=True)),
           [(2, 3)]),
    OpSpec("norm_p1", lambda a: xbp.norm(a, 1), lambda a: np.abs(a).sum(), [(2, 3)], domain="away0", smooth=False),
    OpSpec("norm_p3", lambda a: xbp.norm(a, 3, dim=0), lambda a: (np.abs(a) ** 3).sum(0) ** (1 / 3), [(2, 3)],
           domain="away0"),
    OpSpec("norm_inf", lambda a: xbp.norm(a, float("inf")), lambda a: np.abs(a).max(), [(2, 3)], domain="away0",
           smooth=False),
    OpSpec("cumsum", lambda a: xbp.cumsum(a, 1), lambda a: np.cumsum(a, 1), [(2, 3), NC((3, 2))]),
    # --- matrix products ----------------------------------------------------------------------------
    OpSpec("matmul", lambda a, b: a @ b, np.matmul,
           [((2, 3), (3, 2)), ((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,)), ((2, 2, 3), (3, 2)),
            ((2, 1, 2, 3), (2, 3, 1)), (NC((2, 3)), NC((3, 2))), ((1, 1), (1, 1))]),
    OpSpec("linear", xbp.linear, lambda x, w, b: x @ w.T + b, [((2, 3), (2, 3), (2,)), ((3,), (1, 3), (1,)),
                                                              ((2, 2, 3), NC((2, 3)), (2,))]),
    OpSpec("linear_nobias", lambda x, w: xbp.linear(x, w), lambda x, w: x @ w.T, [((2, 3), (4, 3))]),
    OpSpec("einsum_matmul", lambda a, b: xbp.einsum("ij,jk->ik", a, b), lambda a, b: a @ b, [((2, 3), (3, 2))]),
    OpSpec("einsum_batch", lambda a, b: xbp.einsum("bij,bjk->bik", a, b), np.matmul, [((2, 2, 3), (2, 3, 2))]),
    OpSpec("einsum_outer", lambda a, b: xbp.einsum("i,j", a, b), np.multiply.outer, [((2,), (3,))]),
    OpSpec("einsum_sum", lambda a: xbp.einsum("ij->j", a), lambda a: a.sum(0), [(2, 3), NC((3, 2))]),
    OpSpec("einsum_transpose", lambda a: xbp.einsum("ijk->kij", a), lambda a: a.transpose(2, 0, 1), [(2, 1, 3)]),
    OpSpec("outer", xbp.outer, np.outer, [((2,), (3,))]),
    # --- shapes -------------------------------------------------------------------------------------
    OpSpec("reshape", lambda a: a.reshape(3, -1), lambda a: a.reshape(3, -1), [(2, 3), NC((3, 2))]),
    OpSpec("view", lambda a: a.view((-1,)), lambda a: a.reshape(-1), [(2, 3), ()]),
    OpSpec("flatten", lambda a: a.flatten(1), lambda a: a.reshape(a.shape[0], -1), [(2, 1, 3)]),
    OpSpec("flatten_0d", lambda a: xbp.flatten(a), lambda a: a.reshape(-1), [()]),
    OpSpec("transpose", lambda a: a.transpose(0, 2), lambda a: np.swapaxes(a, 0, 2), [(2, 1, 3)]),
    OpSpec("T", lambda a: a.T, lambda a: a.T, [(2, 3), (3,)]),
    OpSpec("mT", lambda a: a.mT, lambda a: np.swapaxes(a, -1, -2), [(2, 2, 3)]),
    OpSpec("permute", lambda a: a.permute(1, 2, 0), lambda a: a.transpose(1, 2, 0), [(2, 1, 3)]),
    OpSpec("swapaxes", lambda a: xbp.swapaxes(a, -1, 0), lambda a: np.swapaxes(a, -1, 0), [(2, 3), NC((3, 2))]),
    OpSpec("movedim", lambda a: xbp.movedim(a, 0, -1), lambda a: np.moveaxis(a, 0, -1), [(2, 1, 3)]),
    OpSpec("expand", lambda a: a.expand(2, -1, 3), lambda a: np.broadcast_to(a, (2, a.shape[0], 3)),
           [(2, 1), (1, 1)]),
    OpSpec("broadcast_to", lambda a: xbp.broadcast_to(a, (2, 2, 3)), lambda a: np.broadcast_to(a, (2, 2, 3)),
           [(3,), (), (2, 1, 1), NC((2, 1))]),
    OpSpec("squeeze", lambda a: a.squeeze(), lambda a: np.squeeze(a), [(2, 1, 3), (1,), (1, 1)]),
    OpSpec("squeeze_dim", lambda a: a.squeeze(1), lambda a: np.squeeze(a, 1), [(2, 1, 3)]),
    OpSpec("unsqueeze", lambda a: a.unsqueeze(-1), lambda a: a[..., None], [(2, 3), ()]),
    OpSpec("cat", lambda a, b: xbp.cat([a, b], 1), lambda a, b: np.concatenate([a, b], 1),
           [((2, 3), (2, 1)), (NC((2, 2)), (2, 3))]),
    OpSpec("concat_neg_dim", lambda a, b, c: xbp.concat((a, b, c), dim=-1), lambda a, b, c: np.concatenate([a, b, c], -1),
           [((2,), (1,), (3,))]),
    OpSpec("stack", lambda a, b: xbp.stack([a, b], 1), lambda a, b: np.stack([a, b], 1),
           [((2, 3), (2, 3)), ((1,), (1,))]),
    OpSpec("stack_0d", lambda a, b: xbp.stack([a, b]), lambda a, b: np.stack([a, b]), [((), ())]),
    OpSpec("split", lambda a: xbp.split(a, [1, 2], 1), lambda a: tuple(np.split(a, [1], 1)), [(2, 3)]),
    OpSpec("split_size", lambda a: a.split(2), lambda a: tuple(np.split(a, [2])), [(3, 2)]),
    OpSpec("chunk", lambda a: a.chunk(2, 1), lambda a: (a[:, :2], a[:, 2:]), [(2, 3), NC((3, 3))]),
    OpSpec("unbind", lambda a: xbp.unbind(a, 1), lambda a: tuple(a[:, i] for i in range(a.shape[1])), [(2, 3)]),
    OpSpec("flip", lambda a: a.flip(1), lambda a: np.flip(a, 1), [(2, 3), NC((3, 2))]),
    OpSpec("flip_dims", lambda a: xbp.flip(a, (0, 2)), lambda a: np.flip(a, (0, 2)), [(2, 1, 3)]),
    OpSpec("roll", lambda a: a.roll(1, 1), lambda a: np.roll(a, 1, 1), [(2, 3), NC((3, 2))]),
    OpSpec("roll_flat", lambda a: a.roll(-2), lambda a: np.roll(a, -2), [(2, 3)]),
    OpSpec("roll_multi", lambda a: xbp.roll(a, (1, -1), (0, 1)), lambda a: np.roll(a, (1, -1), (0, 1)), [(2, 3)]),
    OpSpec("pad", lambda a: xbp.pad(a, (1, 2)), lambda a: _pad_ref(a, (1, 2)), [(2, 3), NC((3, 2))]),
    OpSpec("pad_2d_value", lambda a: xbp.pad(a, (0, 1, 2, 0), value=-1.0), lambda a: _pad_ref(a, (0, 1, 2, 0), -1.0),
           [(2, 3)]),
    OpSpec("tile", lambda a: a.repeat(2, 1), lambda a: np.tile(a, (2, 1)), [(2, 3), (3,)]),
    OpSpec("repeat_interleave", lambda a: xbp.ops.repeat_interleave(a, 2, 1), lambda a: np.repeat(a, 2, 1), [(2, 3)]),
    OpSpec("clone", xbp.clone, lambda a: a.copy(), UNARY),
    OpSpec("astype_roundtrip", lambda a: a.to(xbp.float32).to(xbp.float64) * 1.0, lambda a: a.astype(np.float32).astype(np.float64),
           [(2, 3)], atol=1e-7, rtol=1e-6, float32_ok=False, grad=False),
    # --- indexing and gathering ---------------------------------------------------------------------
    OpSpec("getitem_int", lambda a: a[1], lambda a: a[1], [(2, 3), (3,)]),
    OpSpec("getitem_slices", lambda a: a[:, 1:], lambda a: a[:, 1:], [(2, 3), NC((3, 3))]),
    OpSpec("getitem_step", lambda a: a[::-1, ::2], lambda a: a[::-1, ::2], [(3, 3)]),
    OpSpec("getitem_none_ellipsis", lambda a: a[None, ..., 0], lambda a: a[None, ..., 0], [(2, 3), (3,)]),
    OpSpec("getitem_ellipsis_none", lambda a: a[..., None, 1:2], lambda a: a[..., None, 1:2], [(2, 3)]),
    OpSpec("getitem_ellipsis_int", lambda a: a[..., 2], lambda a: a[..., 2], [(2, 3), (2, 1, 3)]),
    OpSpec("getitem_int_ellipsis_int", lambda a: a[1, ..., -3], lambda a: a[1, ..., -3], [(2, 2, 3)]),
    OpSpec("getitem_past_ends", lambda a: a[-100:2, 1:100], lambda a: a[-100:2, 1:100], [(3, 3), NC((3, 4))]),
    OpSpec("getitem_neg_step_past_ends", lambda a: a[100::-2, None, 100:-100:-1],
           lambda a: a[100::-2, None, 100:-100:-1], [(3, 3)]),
    OpSpec("getitem_0d", lambda a: a[...] * 1.0, lambda a: a[...] * 1.0, [()]),
    OpSpec("getitem_list", lambda a: a[[2, 0, 2]], lambda a: a[[2, 0, 2]], [(3, 2), (3,)]),
    OpSpec("getitem_tensor_idx", lambda a: a[_itensor([[0, 1], [1, 1]], a)], lambda a: a[np.array([[0, 1], [1, 1]])],
           [(2, 3)]),
    OpSpec("getitem_two_arrays", lambda a: a[[0, 1, 1], [2, 0, 2]], lambda a: a[[0, 1, 1], [2, 0, 2]], [(2, 3)]),
    OpSpec("getitem_slice_array", lambda a: a[:, [2, 0]], lambda a: a[:, [2, 0]], [(2, 3), NC((3, 3))]),
    OpSpec("getitem_neg_index", lambda a: a[_itensor([-1, 0], a)], lambda a: a[np.array([-1, 0])], [(2, 3)]),
    OpSpec("getitem_mask", lambda a: a[_btensor([[True, False, True], [False, False, True]], a)],
           lambda a: a[np.array([[True, False, True], [False, False, True]])], [(2, 3)]),
    OpSpec("getitem_mask_rows", lambda a: a[_btensor([True, False, True], a)], lambda a: a[np.array([True, False, True])],
           [(3, 2)]),
    OpSpec("getitem_by_compare", lambda a: a[a > 0], lambda a: a[a > 0], [(2, 3)], domain="away0"),
    OpSpec("gather", lambda a: xbp.gather(a, 1, _itensor([[0, 2, 2], [1, 0, 0]], a)),
           lambda a: np.take_along_axis(a, np.array([[0, 2, 2], [1, 0, 0]]), 1), [(2, 3), NC((2, 3))]),
    OpSpec("gather_dim0", lambda a: a.gather(0, _itensor([[1, 0, 1]], a)),
           lambda a: np.take_along_axis(a, np.array([[1, 0, 1]]), 0), [(2, 3)]),
    OpSpec("take_along_dim", lambda a: xbp.take_along_dim(a, _itensor([[2], [0]], a), 1),
           lambda a: np.take_along_axis(a, np.array([[2], [0]]), 1), [(2, 3)]),
    OpSpec("index_select", lambda a: xbp.index_select(a, 1, _itensor([2, 0, 2], a)), lambda a: a[:, [2, 0, 2]],
           [(2, 3)]),
    OpSpec("setitem_basic", lambda a, v: _setitem(a, (1, slice(0, 2)), v),
           lambda a, v: _np_setitem(a, (1, slice(0, 2)), v),
           [((2, 3), (2,)), ((2, 3), ()), (NC((2, 3)), (1,))]),
    OpSpec("setitem_past_ends", lambda a, v: _setitem(a, (slice(-100, 100, 2), slice(1, 100)), v),
           lambda a, v: _np_setitem(a, (slice(-100, 100, 2), slice(1, 100)), v), [((3, 3), (2,)), ((3, 3), ())]),
    OpSpec("setitem_int_array", lambda a, v: _setitem(a, ([2, 0],), v), lambda a, v: _np_setitem(a, ([2, 0],), v),
           [((3, 2), (2, 2)), ((3, 2), (2,))]),
    OpSpec("setitem_two_arrays", lambda a, v: _setitem(a, ([0, 1], [2, 0]), v),
           lambda a, v: _np_setitem(a, ([0, 1], [2, 0]), v), [((2, 3), (2,))]),
    OpSpec("setitem_mask", lambda a, v: _setitem(a, (_btensor([[True, False, True], [False, True, False]], a),), v),
           lambda a, v: _np_setitem(a, (np.array([[True, False, True], [False, True, False]]),), v), [((2, 3), (3,))]),
    # --- fused --------------------------------------------------------------------------------------
    OpSpec("softmax", lambda a: xbp.softmax(a, -1), lambda a: _softmax(a, -1), [(2, 3), (3,), NC((3, 2))]),
    OpSpec("softmax_dim0", lambda a: a.softmax(0), lambda a: _softmax(a, 0), [(2, 3)]),
    OpSpec("softmax_large", lambda a: xbp.softmax(a * 1000.0, -1), lambda a: _softmax(a * 1000.0, -1), [(3,)],
           smooth=False),
    OpSpec("log_softmax", lambda a: xbp.log_softmax(a, 1), lambda a: a - _logsumexp(a, 1, keepdims=True),
           [(2, 3), NC((3, 2))]),
    OpSpec("log_softmax_large", lambda a: xbp.log_softmax(a * 1000.0, -1),
           lambda a: a * 1000.0 - _logsumexp(a * 1000.0, -1, keepdims=True), [(3,)], atol=1e-9, rtol=1e-9),
    # --- no gradient --------------------------------------------------------------------------------
    OpSpec("sign", xbp.sign, np.sign, UNARY, grad=False),
    OpSpec("floor_divide", lambda a: a // 0.3, lambda a: a // 0.3, [(2, 3)], grad=False),
    OpSpec("compare", lambda a, b: (a < b) | (a == b), lambda a, b: (a < b) | (a == b), [((2, 3), (3,))],
           grad=False, float32_ok=False),
    OpSpec("one_hot", lambda a: xbp.one_hot(_itensor([[0, 2], [1, 3]], a), 4),
           lambda a: np.eye(4, dtype=np.int64)[np.array([[0, 2], [1, 3]])], [(1,)], grad=False, float32_ok=False),
    OpSpec("argmax", lambda a: a.argmax(1), lambda a: a.argmax(1), [(2, 3)], grad=False, float32_ok=False),
    # --- elementwise math and reductions -----------------------------------------------------------
    OpSpec("tan", xbp.tan, np.tan, UNARY, domain=(-1.2, 1.2)),
    OpSpec("asin", xbp.asin, np.arcsin, UNARY, domain=(-0.9, 0.9)),
    OpSpec("acos", lambda a: a.arccos(), np.arccos, UNARY, domain=(-0.9, 0.9)),
    OpSpec("atan", xbp.arctan, np.arctan, UNARY, domain=(-2, 2)),
    OpSpec("sinh", xbp.sinh, np.sinh, UNARY, domain=(-2, 2)),
    OpSpec("cosh", lambda a: a.cosh(), np.cosh, UNARY, domain=(-2, 2)),
    OpSpec("asinh", xbp.asinh, np.arcsinh, UNARY, domain=(-2, 2)),
    OpSpec("acosh", xbp.arccosh, np.arccosh, UNARY, domain=(1.2, 3.0)),
    OpSpec("atanh", lambda a: a.atanh(), np.arctanh, UNARY, domain=(-0.9, 0.9)),
    OpSpec("atan2", xbp.atan2, np.arctan2, BINARY, domain=[(-1, 1), "away0"]),
    OpSpec("arctan2_method", lambda a, b: a.arctan2(b), np.arctan2, [((2, 3), (3,))], domain="away0"),
    OpSpec("hypot", xbp.hypot, np.hypot, BINARY, domain="away0"),
    OpSpec("logaddexp", xbp.logaddexp, np.logaddexp, BINARY, domain=(-3, 3)),
    OpSpec("logaddexp_large", lambda a, b: xbp.logaddexp(a * 800.0, b * 800.0),
           lambda a, b: np.logaddexp(a * 800.0, b * 800.0), [((3,), (3,))], atol=1e-9, rtol=1e-9),
    OpSpec("logaddexp2", lambda a, b: a.logaddexp2(b), np.logaddexp2, BINARY, domain=(-3, 3)),
    OpSpec("log2", xbp.log2, np.log2, UNARY, domain=POS),
    OpSpec("log10", lambda a: a.log10(), np.log10, UNARY, domain=POS),
    OpSpec("exp2", xbp.exp2, np.exp2, UNARY, domain=(-3, 3)),
    OpSpec("square_fn", xbp.square, np.square, UNARY),
    OpSpec("reciprocal", lambda a: a.reciprocal(), lambda a: 1.0 / a, UNARY, domain="away0"),
    OpSpec("clamp_min_fn", lambda a: xbp.clamp_min(a, -0.5), lambda a: np.maximum(a, -0.5), UNARY,
           domain="away0", smooth=False),
    OpSpec("clamp_max_tensor", lambda a, b: a.clamp_max(b), np.minimum, [((2, 3), (3,))], smooth=False),
    OpSpec("lerp_scalar", lambda a, b: xbp.lerp(a, b, 0.3), lambda a, b: a + 0.3 * (b - a),
           [((2, 3), (2, 3)), ((2, 3), (3,)), ((), (2,))]),
    OpSpec("lerp_scalar_high", lambda a, b: a.lerp(b, 0.8), lambda a, b: a + 0.8 * (b - a), [((2, 3), (2, 3))]),
    OpSpec("lerp_tensor", xbp.lerp, lambda a, b, w: a + w * (b - a),
           [((2, 3), (2, 3), (2, 3)), ((2, 1), (1, 3), (3,))], domain=[(-1, 1), (-1, 1), (0, 1)]),
    OpSpec("nan_to_num", xbp.nan_to_num, np.nan_to_num, UNARY),
    OpSpec("fmod", xbp.fmod, np.fmod, BINARY, domain=[(-3, 3), "away0"], smooth=False),
    OpSpec("fmod_scalar", lambda a: a.fmod(0.7), lambda a: np.fmod(a, 0.7), UNARY, domain=(-3, 3), smooth=False),
    OpSpec("frac", xbp.frac, lambda a: a - np.trunc(a), UNARY, domain=(-3, 3), smooth=False),
    OpSpec("trunc", lambda a: a.trunc() + a, lambda a: np.trunc(a) + a, UNARY, domain=(-3, 3), smooth=False),
    OpSpec("fix", xbp.fix, np.trunc, [(2, 3)], domain=(-3, 3), smooth=False),
    OpSpec("sinc", xbp.sinc, np.sinc, UNARY, domain=(-2, 2)),
    OpSpec("xlogy", xbp.xlogy, lambda a, b: a * np.log(b), BINARY, domain=[(-1, 1), POS]),
    OpSpec("erfc", xbp.erfc, lambda a: 1.0 - _erf(a), UNARY, domain=(-2, 2), atol=1e-14, rtol=1e-12),
    OpSpec("erfc_tail", lambda a: a.erfc(), _erfc, [(4,)], domain=(3, 6), atol=0, rtol=1e-12),
    OpSpec("erfinv", xbp.erfinv, lambda a: _erfinv(a), UNARY, domain=(-0.95, 0.95), atol=1e-13, rtol=1e-12),
    OpSpec("lgamma", xbp.lgamma, _lgamma, UNARY, domain=(0.2, 5.0), atol=1e-13, rtol=1e-12),
    OpSpec("lgamma_negative", lambda a: a.lgamma(), _lgamma, [(2, 3)], domain=(-2.9, -2.1), atol=1e-13, rtol=1e-12),
    OpSpec("digamma", xbp.digamma, _digamma, UNARY, domain=(0.3, 4.0), atol=1e-12, rtol=1e-12),
    OpSpec("digamma_negative", lambda a: a.digamma(), _digamma, [(2, 3)], domain=(-1.9, -1.1), atol=1e-12,
           rtol=1e-12),
    OpSpec("polygamma1", lambda a: xbp.polygamma(1, a), lambda a: _polygamma(1, a), UNARY, domain=(0.3, 4.0),
           atol=1e-12, rtol=1e-12),
    OpSpec("polygamma2_method", lambda a: a.polygamma(2), lambda a: _polygamma(2, a), [(2, 3)], domain=(0.3, 4.0),
           atol=1e-12, rtol=1e-12),
    OpSpec("cumprod", lambda a: xbp.cumprod(a, 1), lambda a: np.cumprod(a, 1), [(2, 3), NC((3, 2))], domain="away0"),
    OpSpec("cumprod_dim0_kw", lambda a: a.cumprod(axis=0), lambda a: np.cumprod(a, 0), [(3, 2)], domain="away0"),
    OpSpec("cumprod_zeros", lambda a: xbp.cumprod(a * _ZERO_MASK(a), -1), lambda a: np.cumprod(a * _ZERO_MASK_NP, -1),
           [(3, 4)], domain="away0"),
    OpSpec("cummax", lambda a: a.cummax(1).values, lambda a: np.maximum.accumulate(a, 1), [(2, 5), NC((3, 2))],
           smooth=False),
    OpSpec("cummin_dim0", lambda a: xbp.cummin(a, 0)[0], lambda a: np.minimum.accumulate(a, 0), [(4, 2)],
           smooth=False),
    OpSpec("logcumsumexp", lambda a: xbp.logcumsumexp(a, 1), lambda a: np.logaddexp.accumulate(a, 1),
           [(2, 5), NC((3, 2)), (2, 1)]),
    OpSpec("logcumsumexp_large", lambda a: (a * 900.0).logcumsumexp(0), lambda a: np.logaddexp.accumulate(a * 900.0, 0),
           [(6,)], atol=1e-9, rtol=1e-9),
    OpSpec("diff", lambda a: xbp.diff(a), lambda a: np.diff(a), [(2, 5), NC((3, 2)), (3,)]),
    OpSpec("diff_n2_dim0", lambda a: a.diff(2, 0), lambda a: np.diff(a, 2, 0), [(4, 2)]),
    OpSpec("diff_prepend_append", lambda a, p, q: xbp.diff(a, 1, 1, prepend=p, append=q),
           lambda a, p, q: np.diff(a, 1, 1, prepend=p, append=q), [((2, 3), (2, 1), (2, 2))]),
    OpSpec("var_mean", lambda a: xbp.var_mean(a, 1), lambda a: (a.var(1, ddof=1), a.mean(1)), [(2, 3), NC((3, 2))]),
    OpSpec("var_mean_pop_keepdim", lambda a: xbp.var_mean(a, axis=0, keepdims=True, unbiased=False),
           lambda a: (a.var(0, keepdims=True), a.mean(0, keepdims=True)), [(3, 2)]),
    OpSpec("std_mean", lambda a: xbp.std_mean(a, correction=0), lambda a: (a.std(), a.mean()), [(2, 3)]),
    OpSpec("aminmax", lambda a: tuple(xbp.aminmax(a)), lambda a: (a.min(), a.max()), UNARY, smooth=False),
    OpSpec("aminmax_dim", lambda a: tuple(a.aminmax(dim=-1, keepdim=True)),
           lambda a: (a.min(-1, keepdims=True), a.max(-1, keepdims=True)), [(2, 3)], smooth=False),
    OpSpec("count_nonzero", lambda a: xbp.count_nonzero(xbp.relu(a), dim=1),
           lambda a: np.count_nonzero(np.maximum(a, 0), axis=1), [(2, 3)], grad=False, float32_ok=False),
    OpSpec("isclose", lambda a, b: xbp.isclose(a, a + b * 1e-5, rtol=1e-5, atol=0.0),
           lambda a, b: np.isclose(a, a + b * 1e-5, rtol=1e-5, atol=0.0), [((2, 3), (2, 3))], grad=False,
           float32_ok=False),
    OpSpec("heaviside", lambda a: xbp.heaviside(xbp.trunc(a * 2.0), a), lambda a: np.heaviside(np.trunc(a * 2.0), a),
           [(2, 3)], grad=False),

    # --- sorting, indexing, scatter and linear algebra ---------------------------------------------
    OpSpec("sort", lambda a: a.sort(1).values, lambda a: np.sort(a, 1), [(2, 3), NC((3, 2))]),
    OpSpec("sort_desc_dim0", lambda a: xbp.sort(a, 0, descending=True)[0], lambda a: -np.sort(-a, 0), [(3, 2)]),
    OpSpec("sort_0d", lambda a: xbp.sort(a).values, lambda a: a * 1.0, [()]),
    OpSpec("msort", xbp.msort, lambda a: np.sort(a, 0), [(3, 2)]),
    OpSpec("topk", lambda a: a.topk(2).values, lambda a: -np.sort(-a, -1)[..., :2], [(2, 3), NC((3, 3))]),
    OpSpec("topk_smallest_dim0", lambda a: xbp.topk(a, 2, 0, largest=False)[0], lambda a: np.sort(a, 0)[:2],
           [(3, 2)]),
    OpSpec("kthvalue", lambda a: a.kthvalue(2, 1).values, lambda a: np.sort(a, 1)[:, 1], [(2, 3)]),
    OpSpec("kthvalue_keepdim", lambda a: xbp.kthvalue(a, 1, 0, keepdim=True)[0], lambda a: np.sort(a, 0)[:1],
           [(3, 2)]),
    OpSpec("median_all", lambda a: a.median(), lambda a: np.sort(a.reshape(-1))[(a.size - 1) // 2], [(2, 3), (4,)]),
    OpSpec("median_dim", lambda a: xbp.median(a, 1).values, lambda a: np.sort(a, 1)[:, (a.shape[1] - 1) // 2],
           [(2, 4), (2, 3)]),
    OpSpec("nanmedian_dim", lambda a: xbp.nanmedian(a, 0, keepdim=True).values,
           lambda a: np.sort(a, 0)[(a.shape[0] - 1) // 2][None], [(3, 2)]),
    OpSpec("quantile", lambda a: xbp.quantile(a, 0.3, dim=1), lambda a: np.quantile(a, 0.3, axis=1), [(2, 4)]),
    OpSpec("quantile_vector_all", lambda a: a.quantile(xbp.tensor([0.25, 0.9], dtype=a.dtype, device=a.device)),
           lambda a: np.quantile(a, [0.25, 0.9]), [(2, 3)]),
    OpSpec("quantile_keepdim", lambda a: xbp.quantile(a, [0.5, 1.0], 0, keepdim=True),
           lambda a: np.quantile(a, [0.5, 1.0], axis=0, keepdims=True), [(3, 2)]),
    OpSpec("nanquantile", lambda a: xbp.nanquantile(a, [0.2, 0.7], 1), lambda a: np.nanquantile(a, [0.2, 0.7], axis=1),
           [(2, 4)]),
    OpSpec("mode_distinct", lambda a: a.mode(1).values, lambda a: a.min(1), [(2, 3)], smooth=False),
    # --- matrix helpers and products ---
    OpSpec("tril", lambda a: a.tril(), np.tril, [(3, 3), (2, 3, 4), NC((2, 3))]),
    OpSpec("tril_offset", lambda a: xbp.tril(a, -1), lambda a: np.tril(a, -1), [(3, 4)]),
    OpSpec("triu", lambda a: a.triu(1), lambda a: np.triu(a, 1), [(3, 3), (2, 4, 3)]),
    OpSpec("diag_1d", lambda a: xbp.diag(a), np.diag, [(3,)]),
    OpSpec("diag_1d_offset", lambda a: a.diag(-2), lambda a: np.diag(a, -2), [(2,)]),
    OpSpec("diag_2d", lambda a: xbp.diag(a, 1), lambda a: np.diag(a, 1), [(3, 4), NC((3, 3))]),
    OpSpec("diagonal", lambda a: a.diagonal(), lambda a: np.diagonal(a), [(3, 4), (2, 3, 2)]),
    OpSpec("diagonal_dims", lambda a: xbp.diagonal(a, -1, 2, 0), lambda a: np.diagonal(a, -1, 2, 0), [(3, 2, 4)]),
    OpSpec("diag_embed", lambda a: xbp.diag_embed(a), lambda a: a[..., :, None] * np.eye(a.shape[-1]), [(2, 3)]),
    OpSpec("diag_embed_offset_dims", lambda a: xbp.diag_embed(a, 1, 0, 2),
           lambda a: np.moveaxis(np.stack([np.diag(r, 1) for r in a]), (1, 2), (0, 2)), [(2, 2)]),
    OpSpec("trace", lambda a: a.trace(), np.trace, [(3, 3), (2, 4), NC((3, 2))]),
    OpSpec("narrow", lambda a: a.narrow(1, -2, 2), lambda a: a[:, -2:], [(2, 3)]),
    OpSpec("mm", xbp.mm, np.matmul, [((2, 3), (3, 4)), (NC((2, 3)), (3, 1))]),
    OpSpec("bmm", xbp.bmm, np.matmul, [((2, 2, 3), (2, 3, 2))]),
    OpSpec("mv", lambda a, v: a.mv(v), np.matmul, [((2, 3), (3,))]),
    OpSpec("dot", xbp.dot, np.dot, [((3,), (3,))]),
    OpSpec("inner", lambda a, b: a.inner(b), np.inner, [((2, 3), (4, 3))]),
    OpSpec("addmm", lambda c, a, b: xbp.addmm(c, a, b, beta=0.5, alpha=2.0), lambda c, a, b: 0.5 * c + 2.0 * (a @ b),
           [((2, 2), (2, 3), (3, 2)), ((2,), (2, 3), (3, 2))]),
    OpSpec("addmm_beta0", lambda c, a, b: xbp.addmm(c, a, b, beta=0), lambda c, a, b: a @ b, [((2, 2), (2, 3), (3, 2))]),
    OpSpec("baddbmm", lambda c, a, b: c.baddbmm(a, b, alpha=-1.0), lambda c, a, b: c - a @ b,
           [((2, 2, 2), (2, 2, 3), (2, 3, 2)), ((1, 2), (2, 2, 3), (2, 3, 2))]),
    OpSpec("addmv", lambda c, a, v: xbp.addmv(c, a, v, beta=2.0), lambda c, a, v: 2.0 * c + a @ v,
           [((2,), (2, 3), (3,))]),
    OpSpec("cross", lambda a, b: xbp.cross(a, b, dim=1), lambda a, b: np.cross(a, b, axis=1),
           [((2, 3), (2, 3)), ((2, 3, 2), (1, 3, 2))]),
    OpSpec("linalg_cross", lambda a, b: xbp.linalg.cross(a, b), lambda a, b: np.cross(a, b), [((2, 3), (3,))]),
    OpSpec("block_diag", lambda a, b, c: xbp.block_diag(a, b, c),
           lambda a, b, c: _np_block_diag(a.reshape(1, 1), b.reshape(1, -1), c), [((), (2,), (2, 3))]),
    OpSpec("kron", xbp.kron, np.kron, [((2, 2), (2, 3)), ((2,), (3,)), ((2, 1, 2), (2, 2))]),
    OpSpec("cdist", xbp.cdist, lambda a, b: np.sqrt(((a[..., :, None, :] - b[..., None, :, :]) ** 2).sum(-1)),
           [((3, 2), (2, 2)), ((2, 2, 3), (2, 1, 3))]),
    OpSpec("cdist_p1", lambda a, b: xbp.cdist(a, b, p=1), lambda a, b: np.abs(a[:, None] - b[None]).sum(-1),
           [((3, 2), (2, 2))], smooth=False),
    OpSpec("cdist_p3", lambda a, b: xbp.cdist(a, b, p=3), lambda a, b: (np.abs(a[:, None] - b[None]) ** 3).sum(-1) ** (1 / 3),
           [((3, 2), (2, 2))]),
    # --- scatter family (unique indices: the gradient is checked by finite differences) ---
    OpSpec("scatter", lambda a, s: a.scatter(1, _itensor([[2, 0], [1, 2]], a), s),
           lambda a, s: _np_scatter(a, 1, np.array([[2, 0], [1, 2]]), s), [((2, 3), (2, 2)), ((2, 3), (2, 3))]),
    OpSpec("scatter_value", lambda a: xbp.scatter(a, 0, _itensor([[1, 0, 1]], a), value=-2.0),
           lambda a: _np_scatter(a, 0, np.array([[1, 0, 1]]), np.full((1, 3), -2.0)), [(2, 3)]),
    OpSpec("scatter_add", lambda a, s: a.scatter_add(0, _itensor([[1, 0, 1], [1, 1, 0]], a), s),
           lambda a, s: _np_scatter_add(a, 0, np.array([[1, 0, 1], [1, 1, 0]]), s), [((2, 3), (2, 3)), ((3, 3), (2, 4))]),
    OpSpec("scatter_reduce_sum", lambda a, s: a.scatter_reduce(1, _itensor([[0, 0, 2]], a), s, "sum", include_self=False),
           lambda a, s: _np_scatter_reduce(a, 1, np.array([[0, 0, 2]]), s, np.sum, False), [((2, 3), (1, 3))]),
    OpSpec("scatter_reduce_prod", lambda a, s: xbp.scatter_reduce(a, 0, _itensor([[1, 0, 1], [1, 1, 0]], a), s, "prod"),
           lambda a, s: _np_scatter_reduce(a, 0, np.array([[1, 0, 1], [1, 1, 0]]), s, np.prod, True), [((2, 3), (2, 3))]),
    OpSpec("scatter_reduce_mean", lambda a, s: xbp.scatter_reduce(a, 0, _itensor([[1, 0, 1], [1, 1, 0]], a), s, "mean"),
           lambda a, s: _np_scatter_reduce(a, 0, np.array([[1, 0, 1], [1, 1, 0]]), s, np.mean, True), [((2, 3), (2, 3))]),
    OpSpec("scatter_reduce_amax", lambda a, s: xbp.scatter_reduce(a, 0, _itensor([[1, 0, 1], [1, 1, 0]], a), s, "amax",
                                                                  include_self=False),
           lambda a, s: _np_scatter_reduce(a, 0, np.array([[1, 0, 1], [1, 1, 0]]), s, np.max, False), [((2, 3), (2, 3))],
           smooth=False),
    OpSpec("scatter_reduce_amin", lambda a, s: xbp.scatter_reduce(a, 0, _itensor([[1, 0, 1], [1, 1, 0]], a), s, "amin"),
           lambda a, s: _np_scatter_reduce(a, 0, np.array([[1, 0, 1], [1, 1, 0]]), s, np.min, True), [((2, 3), (2, 3))],
           smooth=False),
    OpSpec("index_add", lambda a, s: a.index_add(1, _itensor([2, 0, 2], a), s, alpha=0.5),
           lambda a, s: _np_index_add(a, 1, np.array([2, 0, 2]), 0.5 * s), [((2, 3), (2, 3)), (NC((2, 3)), (2, 3))]),
    OpSpec("index_copy", lambda a, s: xbp.index_copy(a, 0, _itensor([2, 0], a), s),
           lambda a, s: _np_setitem(a, ([2, 0],), s), [((3, 2), (2, 2))]),
    OpSpec("index_fill", lambda a: a.index_fill(1, _itensor([0, 2], a), 1.5),
           lambda a: _np_setitem(a, (slice(None), [0, 2]), 1.5), [(2, 3)]),
    OpSpec("index_fill_tensor_value", lambda a, v: xbp.index_fill(a, 0, _itensor([1], a), v),
           lambda a, v: _np_setitem(a, ([1],), v), [((2, 3), ())]),
    OpSpec("index_put_accumulate", lambda a, v: a.index_put((_itensor([0, 1, 0], a), _itensor([2, 0, 2], a)), v,
                                                           accumulate=True),
           lambda a, v: _np_add_at(a, (np.array([0, 1, 0]), np.array([2, 0, 2])), v), [((2, 3), (3,)), ((2, 3), ())]),
    OpSpec("index_put", lambda a, v: xbp.index_put(a, (_itensor([1, 0], a),), v),
           lambda a, v: _np_setitem(a, ([1, 0],), v), [((2, 3), (3,)), ((2, 3), (2, 3))]),
    OpSpec("take", lambda a: xbp.take(a, _itensor([[5, 0], [-1, 2]], a)), lambda a: a.reshape(-1)[[[5, 0], [-1, 2]]],
           [(2, 3), NC((3, 2))]),
    OpSpec("masked_scatter", lambda a, s: a.masked_scatter(_btensor([[True, False, True], [False, True, False]], a), s),
           lambda a, s: _np_setitem(a, (np.array([[True, False, True], [False, True, False]]),), s.reshape(-1)[:3]),
           [((2, 3), (4,)), ((2, 3), (3, 1))]),
    # --- linear algebra ---
    OpSpec("det", xbp.det, np.linalg.det, [(3, 3), (2, 2, 2), NC((3, 3))]),
    OpSpec("slogdet", lambda a: xbp.slogdet(a).logabsdet, lambda a: np.linalg.slogdet(a)[1], [(3, 3), (2, 2, 2)]),
    OpSpec("logdet", lambda a: xbp.logdet(_spd(a)), lambda a: np.linalg.slogdet(_spd_np(a))[1], [(3, 3)]),
    OpSpec("inverse", lambda a: a.inverse(), np.linalg.inv, [(3, 3), (2, 2, 2)], domain=[(-1, 1)]),
    OpSpec("linalg_inv", xbp.linalg.inv, np.linalg.inv, [NC((3, 3))]),
    OpSpec("solve", xbp.linalg.solve, np.linalg.solve, [((3, 3), (3, 2)), ((2, 2, 2), (2, 2, 1)), ((2, 2, 2), (2, 1))]),
    OpSpec("solve_vector", xbp.solve, lambda a, b: np.linalg.solve(a, b[:, None])[:, 0], [((3, 3), (3,))]),
    OpSpec("cholesky", lambda a: xbp.linalg.cholesky(_spd(a)), lambda a: np.linalg.cholesky(_spd_np(a)),
           [(3, 3), (2, 2, 2)]),
    OpSpec("qr", lambda a: tuple(xbp.linalg.qr(a)), lambda a: tuple(np.linalg.qr(a)), [(4, 3), (3, 3), (2, 3, 2)]),
    OpSpec("svd_reduced", lambda a: _svd_gauge_free(xbp.linalg.svd(a, full_matrices=False)),
           lambda a: _svd_gauge_free(np.linalg.svd(a, full_matrices=False)), [(4, 3), (2, 3), (3, 3)]),
    OpSpec("svd_full_values", lambda a: xbp.linalg.svd(a).S, lambda a: np.linalg.svd(a)[1], [(4, 3)]),
    OpSpec("svdvals", xbp.linalg.svdvals, lambda a: np.linalg.svd(a, compute_uv=False), [(2, 3), (2, 3, 2)]),
    OpSpec("eigh", lambda a: _eigh_gauge_free(xbp.linalg.eigh(a + a.mT)),
           lambda a: _eigh_gauge_free(np.linalg.eigh(a + np.swapaxes(a, -1, -2))), [(3, 3), (2, 2, 2)]),
    OpSpec("eigvalsh", lambda a: xbp.linalg.eigvalsh(a + a.mT), lambda a: np.linalg.eigvalsh(a + a.T), [(3, 3)]),
    OpSpec("linalg_det", xbp.linalg.det, np.linalg.det, [(2, 2)]),
    OpSpec("matrix_norm_fro", xbp.linalg.matrix_norm, lambda a: np.linalg.norm(a, "fro", axis=(-2, -1)), [(2, 3), (2, 2, 3)]),
    OpSpec("matrix_norm_nuc", lambda a: xbp.linalg.matrix_norm(a, "nuc"), lambda a: np.linalg.norm(a, "nuc"), [(2, 3)]),
    OpSpec("matrix_norm_2", lambda a: xbp.linalg.matrix_norm(a, 2), lambda a: np.linalg.norm(a, 2), [(3, 2)]),
    OpSpec("matrix_norm_1", lambda a: xbp.linalg.matrix_norm(a, 1), lambda a: np.linalg.norm(a, 1), [(2, 3)],
           domain="away0", smooth=False),
    OpSpec("matrix_norm_inf", lambda a: xbp.linalg.matrix_norm(a, float("inf"), dim=(0, 2)),
           lambda a: np.linalg.norm(np.moveaxis(a, 1, 0), np.inf, axis=(1, 2)), [(2, 2, 3)], domain="away0", smooth=False),
    OpSpec("vector_norm", lambda a: xbp.linalg.vector_norm(a, 3, dim=(0, 1)), lambda a: (np.abs(a) ** 3).sum((0, 1)) ** (1 / 3),
           [(2, 3, 2)], domain="away0"),
    OpSpec("linalg_norm", xbp.linalg.norm, lambda a: np.sqrt((a * a).sum()), [(2, 3)]),
    OpSpec("matrix_power", lambda a: xbp.linalg.matrix_power(a, 3), lambda a: a @ a @ a, [(2, 2)]),
    OpSpec("matrix_power_neg", lambda a: a.matrix_power(-2), lambda a: np.linalg.matrix_power(a, -2), [(2, 2)],
           domain=[(0.5, 1.5)]),
    OpSpec("pinv", xbp.linalg.pinv, np.linalg.pinv, [(3, 2)]),
    OpSpec("cond_fro", lambda a: xbp.linalg.cond(a, "fro"), lambda a: np.linalg.cond(a, "fro"), [(3, 3)]),
    OpSpec("solve_triangular", lambda a, b: xbp.linalg.solve_triangular(a, b, upper=False),
           lambda a, b: np.linalg.solve(np.tril(a), b), [((3, 3), (3, 2))], domain=[(0.5, 1.5), (-1, 1)]),
    OpSpec("matrix_exp", xbp.matrix_exp, lambda a: _np_expm(a), [(2, 2), (2, 3, 3)], domain=(-2, 2), atol=1e-12,
           rtol=1e-12),
    OpSpec("multi_dot", lambda a, b, c: xbp.linalg.multi_dot([a, b, c]), lambda a, b, c: a @ b @ c,
           [((3,), (3, 2), (2, 2))]),
    # --- no gradient ---
    OpSpec("argsort", lambda a: a.argsort(0, descending=True), lambda a: np.argsort(-a, 0, kind="stable"), [(3, 2)],
           grad=False, float32_ok=False),
    OpSpec("searchsorted", lambda a: xbp.searchsorted(xbp.tensor([-0.5, 0.0, 0.5], dtype=a.dtype, device=a.device), a),
           lambda a: np.searchsorted(np.array([-0.5, 0.0, 0.5]), a), [(2, 3)], grad=False, float32_ok=False),
    OpSpec("bucketize_right", lambda a: xbp.bucketize(a, xbp.tensor([-0.5, 0.5], dtype=a.dtype, device=a.device), right=True),
           lambda a: np.searchsorted(np.array([-0.5, 0.5]), a, side="right"), [(4,)], grad=False, float32_ok=False),
    OpSpec("nonzero", lambda a: (a > 0).nonzero(), lambda a: np.argwhere(a > 0), [(2, 3)], grad=False,
           float32_ok=False),
    OpSpec("unique", lambda a: xbp.unique(xbp.round(a * 2.0)), lambda a: np.unique(np.round(a * 2.0)), [(3, 3)],
           grad=False),
    OpSpec("matrix_rank", lambda a: xbp.linalg.matrix_rank(a), lambda a: np.linalg.matrix_rank(a), [(3, 2), (2, 3, 3)],
           grad=False, float32_ok=False),

    # --- tensor surface ----------------------------------------------------------------------------
    OpSpec("add_alpha", lambda a, b: xbp.add(a, b, alpha=-2.5), lambda a, b: a - 2.5 * b, BINARY),
    OpSpec("sub_alpha_kw", lambda a, b: xbp.sub(input=a, other=b, alpha=0.5), lambda a, b: a - 0.5 * b,
           [((2, 3), (3,))]),
    OpSpec("matmul_kw", lambda a, b: xbp.matmul(input=a, other=b), lambda a, b: a @ b, [((2, 3), (3, 2))]),
    OpSpec("stack_axis_neg", lambda a, b: xbp.stack([a, b], axis=-1), lambda a, b: np.stack([a, b], -1),
           [((2, 3), (2, 3)), (NC((2, 3)), (2, 3))]),
    OpSpec("max_axis_3d", lambda a: a.max(axis=2).values, lambda a: a.max(2), [(2, 3, 2)], smooth=False),
    OpSpec("softmax_axis", lambda a: xbp.softmax(a, axis=0), lambda a: _softmax(a, 0), [(2, 3), NC((3, 2))]),
    OpSpec("cumsum_axis", lambda a: xbp.cumsum(a, axis=-1), lambda a: np.cumsum(a, -1), [(2, 3)]),
    OpSpec("sum_axis_keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), lambda a: a.sum((0, 2), keepdims=True),
           [(2, 3, 2)]),
    OpSpec("swapaxes_axis", lambda a: xbp.swapaxes(a, axis0=0, axis1=2), lambda a: np.swapaxes(a, 0, 2), [(2, 3, 2)]),
]

SPEC_BY_NAME = {s.name: s for s in SPECS}
assert len(SPEC_BY_NAME) == len(SPECS), "duplicate op spec names"
