"""The NumPy backend binds NumPy's C entry points in place of array_api_compat's wrappers for the
hot functions (sum, max, min, mean, matmul, reshape, ...). They must agree with the standard's
definitions, which array_api_compat implements: compared here on dtypes, axes and keepdims."""
import threading

import warnings

import numpy as np
import pytest

import array_api_compat.numpy as compat

import xbp
from xbp._backend import get_backend

CPU = get_backend("cpu")

ARRAYS = {
    "f32 2-D": np.random.RandomState(0).randn(4, 5).astype(np.float32),
    "f64 3-D": np.random.RandomState(1).randn(2, 3, 4),
    "f16": np.random.RandomState(2).randn(3, 4).astype(np.float16),
    "int32": np.arange(12, dtype=np.int32).reshape(3, 4),
    "int64": np.arange(-6, 6, dtype=np.int64).reshape(4, 3),
    "bool": np.arange(12).reshape(3, 4) % 3 == 0,
    "0-d": np.array(2.5, dtype=np.float32),
}


def _axes(a):
    out = [None]
    if a.ndim:
        out += [0, -1, tuple(range(a.ndim))]
    return out


def _same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-6 if got.dtype != np.float16 else 1e-3)


@pytest.mark.parametrize("name", list(ARRAYS))
@pytest.mark.parametrize("fn", ["sum", "max", "min", "mean"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_match_the_standard(name, fn, keepdims):
    a = ARRAYS[name]
    if fn == "mean" and a.dtype.kind not in "f":
        pytest.skip("mean is defined for floating-point arrays")
    for axis in _axes(a):
        _same(getattr(CPU, fn)(a, axis=axis, keepdims=keepdims),
              getattr(compat, fn)(a, axis=axis, keepdims=keepdims))


def test_sum_with_dtype_and_empty_mean():
    a = ARRAYS["int32"]
    _same(CPU.sum(a, axis=1, dtype=np.float64), compat.sum(a, axis=1, dtype=np.float64))
    e = np.zeros((0, 3), np.float32)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        _same(CPU.mean(e, axis=0), compat.mean(e, axis=0))


def test_shape_functions_and_matmul_match_the_standard():
    a = ARRAYS["f64 3-D"]
    _same(CPU.reshape(a, (6, 4)), compat.reshape(a, (6, 4)))
    r = CPU.reshape(a, (4, 6), copy=True)
    assert not np.shares_memory(r, a)
    _same(CPU.permute_dims(a, (2, 0, 1)), compat.permute_dims(a, (2, 0, 1)))
    _same(CPU.matrix_transpose(a), compat.matrix_transpose(a))
    for axis in (0, 1, 3, -1, -4):
        _same(CPU.expand_dims(a, axis=axis), compat.expand_dims(a, axis=axis))
    b = np.random.RandomState(3).randn(4, 2)
    _same(CPU.matmul(a, b), compat.matmul(a, b))
    _same(CPU.astype(a, np.float32), compat.astype(a, np.float32))
    same = CPU.astype(a, np.float64, copy=False)
    assert same is a


def test_take_along_axis_fast_path_matches_numpy():
    rs = np.random.RandomState(4)
    z = rs.randn(6, 5).astype(np.float32)
    t = rs.randint(0, 5, (6, 1))
    _same(CPU.take_along_axis(z, t, axis=1), np.take_along_axis(z, t, axis=1))
    t3 = rs.randint(0, 5, (6, 3))
    _same(CPU.take_along_axis(z, t3, axis=-1), np.take_along_axis(z, t3, axis=-1))
    z3 = rs.randn(2, 5, 3)
    t3d = rs.randint(0, 5, (2, 1, 3))
    _same(CPU.take_along_axis(z3, t3d, axis=1), np.take_along_axis(z3, t3d, axis=1))


def test_mask_and_int_range_agree_with_the_portable_bodies():
    rs = np.random.RandomState(5)
    g = rs.randn(4, 3).astype(np.float32)
    keep = rs.rand(4, 3) > 0.5
    _same(CPU.mask(g, keep), np.where(keep, g, np.float32(0)))
    t = rs.randint(-3, 9, 20)
    assert CPU.int_range(t) == (int(t.min()), int(t.max()))
    strict = get_backend("strict")
    assert strict.int_range(strict.from_numpy(t)) == (int(t.min()), int(t.max()))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_mask_with_non_finite_gradients_matches_where_and_pytorch(bad):
    # PyTorch: relu's backward of an infinite (or NaN) upstream gradient is 0 where the input was
    # dropped, the gradient itself where it was kept (where(), not g * keep = inf * 0 = NaN)
    g = np.array([[bad, 1.0, bad], [2.0, bad, -3.0]], dtype=np.float32)
    keep = np.array([[False, True, True], [True, False, False]])
    want = np.where(keep, g, np.float32(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # and no "invalid value" warning on the way
        _same(CPU.mask(g, keep), want)
    _same(CPU.mask(np.full((), bad, np.float32), np.array(False)), np.float32(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_mask_fast_finiteness_check_agrees_with_where(dtype):
    """The BLAS self-dot finiteness test: every layout, a non-finite value at a kept or a dropped
    place, and finite values so large that the dot overflows (those take where(): same values)."""
    from xbp._backend import Backend
    rs = np.random.RandomState(7)
    keep = rs.rand(16, 9) > 0.5
    big = np.finfo(dtype).max / 4
    for g, overflows in ((rs.randn(16, 9), False), (rs.randn(9, 16).T, False), (np.full((16, 9), big), True),
                         (rs.randn(16, 9) * 1e30, True)):
        with np.errstate(over="ignore"):
            g = g.astype(dtype)
        for bad in (None, np.inf, -np.inf, np.nan):
            h = g.copy() if bad is None else np.where(rs.rand(16, 9) > 0.8, dtype(bad), g)
            with warnings.catch_warnings():
                # no warning for inf or NaN; finite values overflowing the test warn (as NumPy's
                # sum did before)
                warnings.simplefilter("ignore" if overflows else "error")
                got = CPU.mask(h, keep)
                want = Backend.mask(CPU, h, keep)
            assert got.dtype == h.dtype
            np.testing.assert_array_equal(got, want.astype(dtype))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float32])
def test_check_span_fast_path_agrees_with_the_portable_body(dtype):
    from xbp._backend import Backend
    msg = "span [{lo}, {hi}]"
    cases = [[0, 3, 9], [9, 9], [0], [1, 5], [-1, 3], [0, 10], [3, -100], [-100, -100], [5, 12, -7]]
    for vals in cases:
        if np.dtype(dtype).kind == "u" and min(vals) < 0:
            continue
        for x in (np.array(vals, dtype), np.repeat(np.array(vals, dtype), 3)[::3]):
            for ignore in (None, -100, 0, 4, 12):
                results = []
                for fn in (CPU.check_span, lambda *a, **k: Backend.check_span(CPU, *a, **k)):
                    try:
                        results.append(fn(x, 0, 9, msg, IndexError, ignore=ignore))
                    except IndexError as e:
                        results.append(("raised", str(e)))
                assert results[0] == results[1], (vals, ignore, results)


def test_relu_and_clamp_backward_of_an_infinite_gradient_is_zero_where_dropped(device):
    # the common sqrt(clamp(E[x^2] - E[x]^2, min=0)) on a constant feature: d sqrt at 0 is inf
    # (0.1, 0.1, 0.1) in float64: E[x^2] - E[x]^2 = -1.7e-18, so clamp drops it and PyTorch's
    # gradient is exactly 0 (not inf * 0 = NaN)
    x = xbp.full((3, 1), 0.1, dtype=xbp.float64, device=device, requires_grad=True)
    var = (x * x).mean(0) - x.mean(0) ** 2
    assert var.item() < 0
    xbp.sqrt(xbp.clamp(var, min=0.0)).sum().backward()
    assert x.grad.numpy().tolist() == [[0.0], [0.0], [0.0]]
    r = xbp.tensor([-1.0, 2.0], device=device, requires_grad=True)
    xbp.relu(r).backward(xbp.tensor([np.inf, np.inf], device=device))
    assert r.grad.tolist() == [0.0, np.inf]          # torch 2.13: tensor([0., inf])


def test_grad_mode_is_per_thread():
    x = xbp.tensor([1.0, 2.0], requires_grad=True)
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def evaluator():
        with xbp.no_grad():
            inside.set()
            release.wait(5)
            seen["worker"] = (x * 2).requires_grad

    th = threading.Thread(target=evaluator)
    th.start()
    inside.wait(5)
    seen["main"] = (x * 2).requires_grad            # the other thread is inside no_grad right now
    release.set()
    th.join()
    assert seen == {"main": True, "worker": False}


def test_cupy_sign_and_clip_agree_with_the_portable_bodies():
    # CupyBackend's native sign/clip against array-api-compat's (the portable body); needs CuPy
    # (a GPU, or the emulation in ../shared/tools/fakecupy)
    if not xbp.cuda_available():
        pytest.skip("cuda: CuPy is not installed or sees no GPU (run on a GPU machine or the emulation)")
    be = get_backend("cuda")
    x = be.asarray(np.array([-2.0, -0.0, 0.0, 3.0, np.nan, np.inf], dtype=np.float32))
    np.testing.assert_array_equal(be.to_numpy(be.sign(x)), be.to_numpy(be.ns.sign(x)))
    for lo, hi in ((-1.0, 1.0), (None, 0.5), (0.0, None)):
        np.testing.assert_array_equal(be.to_numpy(be.clip(x, lo, hi)), be.to_numpy(be.ns.clip(x, lo, hi)))
