"""xbp tensors as standard arrays: `Tensor.__array_namespace__()` is `xbp.array_api`, code written
against the standard runs on xbp tensors, and gradients flow through it. References: NumPy written
here, closed forms, and float64 finite differences (gradcheck)."""
import math

import numpy as np
import pytest

import xbp
from xbp.autograd import gradcheck
from conftest import rand, to_np


def _dev(device):
    """The device a tensor made on `device` reports (\"cuda\" -> \"cuda:0\")."""
    return xbp._backend.get_backend(device).device

array_api_compat = pytest.importorskip("array_api_compat")


def test_array_namespace_is_xbp_array_api(device):
    x = xbp.ones(3, device=device)
    xp = array_api_compat.array_namespace(x)
    assert xp is xbp.array_api
    assert x.__array_namespace__(api_version="2024.12") is xbp.array_api
    assert xp.__array_api_version__ == "2024.12"
    with pytest.raises(ValueError, match="api_version"):
        x.__array_namespace__(api_version="2099.01")


def _logsumexp_softmax(x):
    """Library code written against the standard only (as SciPy's or scikit-learn's array-API paths)."""
    xp = array_api_compat.array_namespace(x)
    m = xp.max(x, axis=-1, keepdims=True)
    z = x - m
    lse = xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True)) + m
    return xp.exp(x - lse)


def test_standard_code_runs_and_differentiates(device):
    x, _ = rand((3, 4), device)
    y = _logsumexp_softmax(x)
    a = to_np(x)
    e = np.exp(a - a.max(-1, keepdims=True))
    np.testing.assert_allclose(to_np(y), e / e.sum(-1, keepdims=True), rtol=1e-12)
    assert y.requires_grad
    assert gradcheck(lambda t: _logsumexp_softmax(t) * xbp.arange(4, dtype=xbp.float64, device=device), (x,))


def test_no_grad_path_returns_plain_tensors(device):
    xp = xbp.array_api
    x = xp.asarray([1.5, -2.0, 3.0], device=device)
    assert isinstance(x, xbp.Tensor) and not x.requires_grad
    np.testing.assert_array_equal(to_np(xp.floor(x)), [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(to_np(xp.argsort(x)), [1, 0, 2])
    u = xp.unique_counts(xp.asarray([3, 1, 3, 3], device=device))
    np.testing.assert_array_equal(to_np(u.values), [1, 3])
    np.testing.assert_array_equal(to_np(u.counts), [1, 3])


@pytest.mark.parametrize("name,fn,ref", [
    ("exp_mul", lambda xp, x: xp.sum(xp.exp(x) * x), lambda a: np.exp(a) * (1 + a)),
    ("square", lambda xp, x: xp.sum(xp.square(x)), lambda a: 2 * a),
    ("negative", lambda xp, x: xp.sum(xp.negative(x) * x), lambda a: -2 * a),
    ("clip", lambda xp, x: xp.sum(xp.clip(x, min=-0.5, max=0.5)), lambda a: ((a > -0.5) & (a < 0.5)) * 1.0),
    ("where", lambda xp, x: xp.sum(xp.where(x > 0, x, 2 * x)), lambda a: np.where(a > 0, 1.0, 2.0)),
    ("mean", lambda xp, x: xp.mean(x, axis=0)[1], lambda a: np.eye(a.shape[1])[1][None, :].repeat(a.shape[0], 0) / a.shape[0]),
])
def test_gradients_closed_form(device, name, fn, ref):
    xp = xbp.array_api
    x, _ = rand((3, 4), device)
    fn(xp, x).backward()
    np.testing.assert_allclose(to_np(x.grad), ref(to_np(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,fn,shapes", [
    ("concat_axis_none", lambda xp, a, b: xp.concat([a, b], axis=None), [(2, 3), (4,)]),
    ("stack", lambda xp, a, b: xp.stack([a, b], axis=1), [(2, 3), (2, 3)]),
    ("tensordot", lambda xp, a, b: xp.tensordot(a, b, axes=([1, 0], [0, 2])), [(3, 2), (2, 4, 3)]),
    ("tensordot_int", lambda xp, a, b: xp.tensordot(a, b, axes=1), [(2, 3), (3, 2)]),
    ("vecdot", lambda xp, a, b: xp.vecdot(a, b), [(2, 3), (3,)]),
    ("matmul", lambda xp, a, b: xp.matmul(a, b), [(2, 3), (3, 2)]),
    ("broadcast_arrays", lambda xp, a, b: xp.broadcast_arrays(a, b)[0] * xp.broadcast_arrays(a, b)[1],
     [(2, 1), (1, 3)]),
    ("meshgrid", lambda xp, a, b: xp.meshgrid(a, b)[0] * xp.meshgrid(a, b)[1] ** 2, [(2,), (3,)]),
    ("logaddexp", lambda xp, a, b: xp.logaddexp(a, b), [(2, 3), (3,)]),
    ("remainder", lambda xp, a, b: xp.remainder(a, b + 3.0), [(2, 3), (2, 3)]),
    ("copysign", lambda xp, a, b: xp.copysign(a, b), [(2, 3), (2, 3)]),
])
def test_binary_gradcheck(device, name, fn, shapes):
    xp = xbp.array_api
    ins = tuple(rand(s, device, seed=i, low=0.2 if name == "remainder" else -1.0)[0] for i, s in enumerate(shapes))
    assert gradcheck(lambda *t: fn(xp, *t), ins)


@pytest.mark.parametrize("name,fn,shape", [
    ("squeeze_tuple", lambda xp, x: xp.squeeze(x, axis=(0, 2)), (1, 3, 1)),
    ("expand_dims", lambda xp, x: xp.expand_dims(x, axis=-1), (2, 3)),
    ("flip_all", lambda xp, x: xp.flip(x), (2, 3)),
    ("roll_flat", lambda xp, x: xp.roll(x, 2), (2, 3)),
    ("roll_axis", lambda xp, x: xp.roll(x, -1, axis=1), (2, 3)),
    ("moveaxis", lambda xp, x: xp.moveaxis(x, 0, -1), (2, 3, 1)),
    ("permute_dims", lambda xp, x: xp.permute_dims(x, (1, 0)), (2, 3)),
    ("reshape", lambda xp, x: xp.reshape(x, (3, 2)), (2, 3)),
    ("tile", lambda xp, x: xp.tile(x, (2, 1)), (2, 3)),
    ("repeat_int", lambda xp, x: xp.repeat(x, 2, axis=1), (2, 3)),
    ("repeat_flat", lambda xp, x: xp.repeat(x, 3), (2, 2)),
    ("unstack", lambda xp, x: xp.unstack(x, axis=1)[2], (2, 3)),
    ("take_negative", lambda xp, x: xp.take(x, xp.asarray([-1, 0, -1], device=x.device), axis=1), (2, 3)),
    ("take_along_axis", lambda xp, x: xp.take_along_axis(
        x, xp.asarray([[2, 0], [-1, 1]], device=x.device), axis=1), (2, 3)),
    ("tril", lambda xp, x: xp.tril(x, k=-1), (3, 3)),
    ("triu", lambda xp, x: xp.triu(x, k=1), (2, 3, 3)),
    ("sort_desc", lambda xp, x: xp.sort(x, axis=0, descending=True), (3, 2)),
    ("cumulative_sum", lambda xp, x: xp.cumulative_sum(x, axis=1, include_initial=True), (2, 3)),
    ("diff", lambda xp, x: xp.diff(x, axis=0, n=2), (4, 2)),
    ("diff_prepend", lambda xp, x: xp.diff(x, prepend=x[:, :1] * 2.0), (2, 3)),
    ("std", lambda xp, x: xp.std(x, axis=1, correction=1), (2, 3)),
    ("var_keepdims", lambda xp, x: xp.var(x, axis=(0, 1), keepdims=True), (2, 3)),
    ("prod", lambda xp, x: xp.prod(x, axis=0), (3, 2)),
    ("max", lambda xp, x: xp.max(x, axis=1), (2, 3)),
    ("matrix_transpose", lambda xp, x: xp.matrix_transpose(x), (2, 2, 3)),
])
def test_unary_gradcheck(device, name, fn, shape):
    xp = xbp.array_api
    x, _ = rand(shape, device)
    assert gradcheck(lambda t: fn(xp, t), (x,))


def test_astype_gradient_is_cast_back(device):
    xp = xbp.array_api
    x, a = rand((2, 3), device)
    y = xp.astype(x, xp.float32)
    assert y.dtype == xp.float32 and y.requires_grad
    (xp.sum(y * xbp.tensor(np.arange(6.0).reshape(2, 3), dtype=xbp.float32, device=device))).backward()
    assert x.grad.dtype == xp.float64
    np.testing.assert_array_equal(to_np(x.grad), np.arange(6.0).reshape(2, 3))


def test_values_match_numpy(device):
    xp = xbp.array_api
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7.0
    x, _ = rand((2, 3, 4), device)
    x.data.copy_(xbp.tensor(a, device=device))
    np.testing.assert_allclose(to_np(xp.tensordot(x, x, axes=([1, 2], [1, 2]))),
                               np.tensordot(a, a, axes=([1, 2], [1, 2])), rtol=1e-12)
    np.testing.assert_allclose(to_np(xp.diff(x, axis=1, n=2)), np.diff(a, axis=1, n=2), rtol=1e-12)
    np.testing.assert_allclose(to_np(xp.repeat(x, 2, axis=2)), np.repeat(a, 2, axis=2))
    np.testing.assert_allclose(to_np(xp.cumulative_sum(x, axis=2, include_initial=True)),
                               np.concatenate([np.zeros((2, 3, 1)), np.cumsum(a, axis=2)], axis=2), rtol=1e-12)


def test_int_operators_are_bitwise(device):
    a = xbp.tensor([3, 5, 12], device=device)
    b = xbp.tensor([6, 1, 10], device=device)
    na, nb = np.array([3, 5, 12]), np.array([6, 1, 10])
    np.testing.assert_array_equal(to_np(a & b), na & nb)
    np.testing.assert_array_equal(to_np(a | b), na | nb)
    np.testing.assert_array_equal(to_np(a ^ b), na ^ nb)
    np.testing.assert_array_equal(to_np(~a), ~na)
    np.testing.assert_array_equal(to_np(a << 2), na << 2)
    np.testing.assert_array_equal(to_np(b >> 1), nb >> 1)
    t = xbp.tensor([True, False, True], device=device)
    np.testing.assert_array_equal(to_np(t & xbp.tensor([True, True, False], device=device)), [True, False, False])
    np.testing.assert_array_equal(to_np(~t), [False, True, False])
    a &= b
    np.testing.assert_array_equal(to_np(a), na & nb)


def test_missing_gradient_is_an_error_not_a_silent_zero(device):
    xp = xbp.array_api
    x, _ = rand((4,), device)
    with pytest.raises(NotImplementedError, match="fft.rfft"):
        xp.fft.rfft(x)
    with xbp.no_grad():                  # without a gradient the backend computes it
        np.testing.assert_allclose(to_np(xp.fft.rfft(x)), np.fft.rfft(to_np(x)), rtol=1e-12, atol=1e-12)


def test_info_and_dtype_functions(device):
    xp = xbp.array_api
    info = xp.__array_namespace_info__()
    assert "cpu" in info.devices()
    assert info.default_dtypes(device="cpu")["real floating"] == xp.float64
    assert xp.isdtype(xp.float32, "real floating") and not xp.isdtype(xp.int8, "real floating")
    assert xp.result_type(xp.int8, xp.uint8) == xp.int16
    f = xp.finfo(xp.float32)
    assert isinstance(f.eps, float) and f.eps == float(np.finfo(np.float32).eps)
    assert xp.iinfo(xp.int8).max == 127
    z = xp.zeros((2, 3), dtype=xp.float32, device=device)
    assert z.shape == (2, 3) and z.dtype == xp.float32 and z.device == _dev(device)
    assert xp.asarray(z, copy=False) is z
    with pytest.raises(ValueError, match="copy=False"):
        xp.asarray(z, dtype=xp.float64, copy=False)


def test_constants():
    xp = xbp.array_api
    assert xp.pi == math.pi and xp.e == math.e and math.isinf(xp.inf) and math.isnan(xp.nan)
    assert xp.newaxis is None
