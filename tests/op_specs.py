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

    # --- sorting, indexing, scatter and linear algebra ---------------------------------------------

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
