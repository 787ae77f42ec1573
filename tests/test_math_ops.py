"""The elementwise math, special functions, scans and statistics of xbp/ops/math.py, scan.py,
statistics.py and sampling.py: values and gradients against PyTorch 2.13 on edge cases (0,
negative, inf, nan inputs where PyTorch defines them), the special functions against SciPy and
`math` on wide grids, dims out of range, axis=/keepdims= aliases, and multinomial's distribution."""
import math
import warnings

import numpy as np
import pytest

import xbp
from conftest import to_np

torch = pytest.importorskip("torch")

INF, NAN = math.inf, math.nan


def _both(values, device):
    """(xbp leaf on `device`, torch leaf) holding the same float64 values, both requiring grad."""
    a = np.asarray(values, dtype=np.float64)
    return xbp.tensor(a, device=device, requires_grad=True), torch.tensor(a, requires_grad=True)


def _check(xv, tv, what, rtol=1e-12):
    np.testing.assert_allclose(to_np(xv), tv.detach().numpy(), rtol=rtol, atol=1e-300, equal_nan=True,
                               err_msg=what)


# PyTorch's trigamma (the derivative of digamma, polygamma(1, x)) is accurate to about 5e-10
# relative (xbp's to 1e-15: compared with SciPy below), so gradients through it are compared at 2e-9
TRIGAMMA_RTOL = 2e-9


# --- unary functions: values and gradients on edge cases ----------------------------------------------
UNARY_EDGES = {
    "tan": [0.0, -0.5, 1.2, INF, NAN],
    "asin": [0.0, -0.5, 0.9, 1.0, -1.0, 2.0, NAN],
    "acos": [0.0, -0.5, 0.9, 1.0, -1.0, 2.0, NAN],
    "atan": [0.0, -3.0, INF, -INF, NAN],
    "sinh": [0.0, -2.0, 3.0, INF, -INF, NAN],
    "cosh": [0.0, -2.0, 3.0, INF, NAN],
    "asinh": [0.0, -2.0, 1e10, INF, NAN],
    "acosh": [1.0, 2.0, 0.5, INF, NAN],
    "atanh": [0.0, 0.5, 1.0, -1.0, 2.0, NAN],
    "log2": [0.0, 1.0, 2.0, -1.0, INF, NAN],
    "log10": [0.0, 1.0, 1000.0, -1.0, INF, NAN],
    "exp2": [0.0, -1.0, 3.0, 1100.0, INF, -INF, NAN],
    "reciprocal": [1.0, -2.0, 0.0, INF, NAN],
    "erfc": [0.0, -1.0, 3.0, 10.0, 26.0, INF, -INF, NAN],
    "erfinv": [0.0, 0.5, -0.9, 1.0 - 1e-12, 1.0, -1.0, 2.0, NAN],
    "lgamma": [1.0, 2.0, 0.5, 0.0, -1.0, -2.5, 1e-8, 100.0, 1e300, INF, -INF, NAN],
    "digamma": [1.0, 0.5, 0.0, -0.5, -2.5, 1e-8, 30.0, INF, NAN],
    "sinc": [0.0, 1.0, -0.5, 3.3, 1e-9, INF, NAN],
    "trunc": [-1.5, 1.5, 0.0, -0.7, INF, -INF, NAN],
    "frac": [-1.5, 1.5, 0.0, 2.0, INF, NAN],
    "nan_to_num": [NAN, INF, -INF, 1.0, -2.0],
    "sgn": [-2.0, 0.0, 3.0, INF, -INF],           # (NaN: xbp.sign follows the Array API, NaN; PyTorch 0)
    "square": [-2.0, 0.0, 3.0, INF, NAN],
}


@pytest.mark.parametrize("name", sorted(UNARY_EDGES))
def test_unary_values_and_gradients_match_torch(name, device):
    x, t = _both(UNARY_EDGES[name], device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # NumPy's own warnings for log(0) etc.
        y = getattr(xbp, name)(x)
        ty = getattr(torch, name)(t)
        _check(y, ty, f"{name} values")
        if name == "sgn":
            return
        y.backward(xbp.ones_like(y))
        ty.backward(torch.ones_like(ty))
    _check(x.grad, t.grad, f"{name} gradient", rtol=TRIGAMMA_RTOL if name == "digamma" else 1e-12)


def test_digamma_and_lgamma_poles_match_torch(device):
    x = xbp.tensor([-1.0, -2.0, 0.0, -0.0], dtype=xbp.float64, device=device)
    t = torch.tensor([-1.0, -2.0, 0.0, -0.0], dtype=torch.float64)
    _check(xbp.digamma(x), torch.digamma(t), "digamma poles")
    _check(xbp.lgamma(x), torch.lgamma(t), "lgamma poles")
    for n in (1, 2, 3):
        p = xbp.polygamma(n, x[:3]).numpy()            # +-inf by the parity of n (PyTorch: 0 gives +-inf)
        assert np.all(np.isinf(p)) and np.all(np.sign(p) == (1 if n % 2 else -1))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_polygamma_matches_torch_and_its_gradient_is_the_next_one(n, device):
    vals = [0.1, 0.5, 1.0, 2.5, 7.0, 40.0, -0.5, -1.5, -3.3]
    x, t = _both(vals, device)
    y, ty = xbp.polygamma(n, x), torch.polygamma(n, t)
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=TRIGAMMA_RTOL if n == 1 else 1e-11)
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), torch.polygamma(n + 1, t.detach()).numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="non-negative"):
        xbp.polygamma(-1, x)


def test_special_functions_against_scipy_and_math_on_wide_grids():
    sp = pytest.importorskip("scipy.special")
    x = np.concatenate([np.linspace(-30.7, 30.3, 2001), np.logspace(-10, 5, 200)])
    x = x[np.abs(x - np.round(x)) > 1e-6]                  # away from the poles at the integers <= 0
    xt = xbp.tensor(x, dtype=xbp.float64)
    lg = xbp.lgamma(xt).numpy()
    np.testing.assert_allclose(lg, [math.lgamma(v) for v in x], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lg, sp.gammaln(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xbp.digamma(xt).numpy(), sp.digamma(x), rtol=1e-11, atol=1e-12)
    pos = xbp.tensor(x[x > 0], dtype=xbp.float64)
    for n in (1, 2, 5):
        np.testing.assert_allclose(xbp.polygamma(n, pos).numpy(), sp.polygamma(n, x[x > 0]), rtol=1e-11)
    # erfinv in float64 to ~1e-15, including 1 - |y| down to 1e-300 (log-form Newton in the tails)
    y = np.concatenate([np.linspace(-0.999999, 0.999999, 2001), 1 - np.logspace(-300, -1, 200),
                        -1 + np.logspace(-15, -1, 50), [1e-300, 5e-324, 0.0]])
    np.testing.assert_allclose(xbp.erfinv(xbp.tensor(y, dtype=xbp.float64)).numpy(), sp.erfinv(y), rtol=1e-13,
                               atol=0)
    z = np.linspace(-6, 26.5, 3000)
    np.testing.assert_allclose(xbp.erfc(xbp.tensor(z, dtype=xbp.float64)).numpy(), sp.erfc(z), rtol=1e-13, atol=0)
    np.testing.assert_allclose(xbp.erfc(xbp.tensor(z, dtype=xbp.float64)).numpy(), [math.erfc(v) for v in z],
                               rtol=1e-13, atol=0)
    # float32 in, float32 out, to float32's resolution
    y32 = np.linspace(-0.9999, 0.9999, 1001).astype(np.float32)
    e32 = xbp.erfinv(xbp.tensor(y32)).numpy()
    assert e32.dtype == np.float32
    np.testing.assert_allclose(e32, sp.erfinv(y32.astype(np.float64)), rtol=1e-6)
    x32 = np.linspace(0.05, 30, 500).astype(np.float32)
    np.testing.assert_allclose(xbp.lgamma(xbp.tensor(x32)).numpy(), sp.gammaln(x32.astype(np.float64)), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(xbp.digamma(xbp.tensor(x32)).numpy(), sp.digamma(x32.astype(np.float64)), rtol=1e-6,
                               atol=1e-6)


def test_special_functions_portable_bodies_agree_on_strict():
    x = np.array([0.3, 1.5, 4.0, -2.5, 12.0])
    y = np.array([-0.99, -0.2, 0.0, 0.7, 1 - 1e-9])
    for name, v in [("lgamma", x), ("digamma", x), ("erfinv", y), ("erfc", x)]:
        a = getattr(xbp, name)(xbp.tensor(v, dtype=xbp.float64)).numpy()
        b = getattr(xbp, name)(xbp.tensor(v, dtype=xbp.float64, device="strict")).numpy()
        np.testing.assert_allclose(b, a, rtol=1e-14, err_msg=name)


def test_integer_inputs_give_the_default_float(device):
    i = xbp.tensor([1, 2, 3], device=device)
    for name in ("tan", "asinh", "log2", "exp2", "reciprocal", "erfinv", "lgamma", "digamma", "sinc", "erfc"):
        out = getattr(xbp, name)(i)
        assert out.dtype == xbp.float32, name
        np.testing.assert_allclose(out.numpy(), getattr(torch, name)(torch.tensor([1, 2, 3])).numpy(), rtol=1e-6)
    assert xbp.square(i).dtype == xbp.int64 and xbp.square(i).tolist() == [1, 4, 9]
    for name in ("trunc", "fix", "nan_to_num"):              # integers stay integers, as in PyTorch
        out = getattr(xbp, name)(i)
        assert out.dtype == xbp.int64 and out.tolist() == [1, 2, 3], name
    assert xbp.frac(i).tolist() == [0, 0, 0]


# --- binary functions ------------------------------------------------------------------------------------
BINARY_EDGES = {
    "atan2": ([0.0, 1.0, 0.0, -1.0, INF, 2.0, NAN], [0.0, 0.0, -1.0, -1.0, 1.0, INF, 1.0]),
    "hypot": ([0.0, 3.0, INF, 1.0, -2.0, NAN], [0.0, 4.0, 1.0, INF, 0.5, 1.0]),
    "logaddexp": ([0.0, -INF, 1000.0, -3.0, INF, NAN], [0.0, 0.0, -1000.0, 2.0, 1.0, 1.0]),
    "logaddexp2": ([0.0, -INF, 1000.0, -3.0, INF], [0.0, 0.0, -1000.0, 2.0, 1.0]),
    "fmod": ([5.0, -5.0, 5.0, -5.5, 5.5, 1.0, INF, -0.0], [3.0, 3.0, -3.0, -2.0, INF, 0.0, 2.0, 2.0]),
    "xlogy": ([0.0, 0.0, 0.0, 1.0, 2.0, -1.0, NAN], [0.0, -1.0, NAN, 0.0, 3.0, 2.0, 1.0]),
}


@pytest.mark.parametrize("name", sorted(BINARY_EDGES))
def test_binary_values_and_gradients_match_torch(name, device):
    av, bv = BINARY_EDGES[name]
    a, ta = _both(av, device)
    b, tb = _both(bv, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = getattr(xbp, name)(a, b)
        ty = getattr(torch, name)(ta, tb)
        _check(y, ty, f"{name} values")
        w = np.linspace(0.5, 2.0, len(av))
        (y * xbp.tensor(w, device=device)).sum().backward()
        (ty * torch.tensor(w)).sum().backward()
    _check(a.grad, ta.grad, f"{name} gradient wrt input")
    _check(b.grad, tb.grad, f"{name} gradient wrt other")


def test_logaddexp_gradient_is_finite_at_equal_infinities(device):
    # PyTorch gives NaN here (exp(inf - inf)); the derivative sigmoid(a - b) with a == b is 1/2 each
    a = xbp.tensor([-INF, INF], device=device, dtype=xbp.float64, requires_grad=True)
    b = xbp.tensor([-INF, INF], device=device, dtype=xbp.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # and no inf - inf is evaluated
        y = xbp.logaddexp(a, b)
        y.backward(xbp.ones_like(y))
    assert y.tolist() == [-INF, INF]
    assert a.grad.tolist() == [0.5, 0.5] and b.grad.tolist() == [0.5, 0.5]


def test_fmod_sign_and_integers_and_scalars(device):
    a = xbp.tensor([-7, 7, -7, 7], device=device)
    b = xbp.tensor([3, 3, -3, -3], device=device)
    assert xbp.fmod(a, b).tolist() == torch.fmod(torch.tensor([-7, 7, -7, 7]), torch.tensor([3, 3, -3, -3])).tolist()
    assert xbp.remainder(a, b).tolist() == [2, 1, -1, -2]             # the other sign convention
    assert a.fmod(2).tolist() == [-1, 1, -1, 1]
    with pytest.raises(ZeroDivisionError, match="fmod"):
        xbp.fmod(a, xbp.tensor([1, 0, 1, 1], device=device))
    x = xbp.tensor([-2.5, 2.5], device=device)
    np.testing.assert_array_equal(xbp.fmod(x, 1.5).numpy(), np.fmod([-2.5, 2.5], 1.5).astype(np.float32))


@pytest.mark.parametrize("weight", [0.0, 1.0, 0.3, 0.5, 1.7, -0.5])
def test_lerp_matches_torch_with_scalar_and_tensor_weights(weight, device):
    s, ts = _both([1.0, -2.0, 1e16, 0.1], device)
    e, te = _both([3.0, 5.0, 1.0, 0.3], device)
    w, tw = _both([weight, 0.25, weight, 0.9], device)
    y, ty = xbp.lerp(s, e, weight), torch.lerp(ts, te, weight)
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-15, atol=1e-15)
    if weight in (0.0, 1.0):                                        # exactly start / end there
        np.testing.assert_array_equal(to_np(y), to_np(s if weight == 0.0 else e))
    y2, ty2 = s.lerp(e, w), torch.lerp(ts, te, tw)
    np.testing.assert_allclose(to_np(y2), ty2.detach().numpy(), rtol=1e-15, atol=1e-15)
    (y + y2).sum().backward()
    (ty + ty2).sum().backward()
    for g, tg in ((s.grad, ts.grad), (e.grad, te.grad), (w.grad, tw.grad)):
        np.testing.assert_allclose(to_np(g), tg.numpy(), rtol=1e-12)
    with pytest.raises(TypeError, match="end"):
        xbp.lerp(s, 2.0, 0.5)


def test_clamp_min_max_heaviside_nan_to_num_sgn(device):
    x = xbp.tensor([-2.0, 0.0, 0.5, 3.0, NAN], device=device)
    t = torch.tensor([-2.0, 0.0, 0.5, 3.0, NAN])
    for got, want in [(xbp.clamp_min(x, 0.1), torch.clamp_min(t, 0.1)), (x.clamp_max(1.0), t.clamp_max(1.0)),
                      (x.clamp_min(xbp.tensor(0.2, device=device)), t.clamp_min(torch.tensor(0.2))),
                      (xbp.heaviside(x, xbp.tensor([0.5], device=device)), torch.heaviside(t, torch.tensor([0.5]))),
                      (x[:4].sgn(), t[:4].sgn()),
                      (xbp.nan_to_num(x, nan=7.0), torch.nan_to_num(t, nan=7.0))]:
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    y = xbp.tensor([NAN, INF, -INF, 1.0], device=device, dtype=xbp.float64)
    ty = torch.tensor([NAN, INF, -INF, 1.0], dtype=torch.float64)
    np.testing.assert_array_equal(y.nan_to_num(0.5, posinf=9.0, neginf=-9.0).numpy(),
                                  torch.nan_to_num(ty, 0.5, 9.0, -9.0).numpy())
    np.testing.assert_array_equal(xbp.nan_to_num(y).numpy(), torch.nan_to_num(ty).numpy())
    i = xbp.tensor([1, -2], device=device)
    assert xbp.nan_to_num(i).tolist() == [1, -2] and xbp.nan_to_num(i).dtype == xbp.int64


def test_isclose_and_allclose_match_torch(device):
    a = [1.0, INF, -INF, INF, NAN, 1.0, 0.0, 1e-9]
    b = [1.0 + 1e-6, INF, INF, 1.0, NAN, NAN, 1e-9, 0.0]
    xa, xb = xbp.tensor(a, device=device, dtype=xbp.float64), xbp.tensor(b, device=device, dtype=xbp.float64)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.0, "atol": 0.0}, {"rtol": 1e-3, "atol": 1e-10}):
        assert xbp.isclose(xa, xb, **kw).tolist() == torch.isclose(ta, tb, **kw).tolist(), kw
        assert xa.allclose(xb, **kw) is torch.allclose(ta, tb, **kw)
    assert xbp.allclose(xa[:2], xb[:2]) is True
    assert xbp.isclose(xbp.tensor([1, 2], device=device), xbp.tensor([1, 3], device=device)).tolist() == [True, False]
    with pytest.raises(ValueError, match="non-negative"):
        xbp.isclose(xa, xb, rtol=-1.0)


# --- second order against torch ------------------------------------------------------------------------
@pytest.mark.parametrize("name,vals", [("sinh", [0.3, -1.2]), ("asin", [0.2, -0.7]), ("lgamma", [0.7, 3.2, -1.5]),
                                       ("digamma", [0.7, 3.2]), ("erfinv", [0.1, -0.8]), ("erfc", [0.5, 2.5]),
                                       ("sinc", [0.4, -1.3]), ("exp2", [0.5, -2.0])])
def test_second_derivatives_match_torch(name, vals, device):
    x, t = _both(vals, device)
    (g,) = xbp.grad(getattr(xbp, name)(x).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad(getattr(torch, name)(t).sum(), [t], create_graph=True)
    g.sum().backward()
    tg.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), rtol=TRIGAMMA_RTOL if name == "lgamma" else 1e-10)


# --- scans -------------------------------------------------------------------------------------------
CUMPROD_CASES = [[2.0, 0.0, 3.0, 0.0, 4.0], [0.0, 2.0, 3.0], [1.5, -2.0, 0.0], [0.0, 0.0, 0.0], [0.5, 2.0, -3.0],
                 [3.0, 0.0, 0.5, 2.0]]


@pytest.mark.parametrize("vals", CUMPROD_CASES)
def test_cumprod_gradient_with_zeros_matches_torch_first_and_second_order(vals, device):
    x, t = _both(vals, device)
    w = np.linspace(1.0, 2.0, len(vals))
    y, ty = xbp.cumprod(x, 0), torch.cumprod(t, 0)
    np.testing.assert_array_equal(to_np(y), ty.detach().numpy())
    (g,) = xbp.grad((y * xbp.tensor(w, device=device)).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad((ty * torch.tensor(w)).sum(), [t], create_graph=True)
    np.testing.assert_allclose(to_np(g), tg.detach().numpy(), rtol=1e-13, atol=1e-13)
    (g * g).sum().backward()
    (tg * tg).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_cumprod_dtypes_and_2d(device):
    assert xbp.cumprod(xbp.tensor([1, 2, 3], device=device), 0).dtype == xbp.int64
    assert xbp.cumprod(xbp.tensor([True, True], device=device), 0).tolist() == [1, 1]
    assert xbp.cumprod(xbp.tensor([1, 2, 3], device=device), 0, dtype=xbp.float64).dtype == xbp.float64
    a = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]])
    x, t = _both(a, device)
    xbp.cumprod(x, 1).sum().backward()
    torch.cumprod(t, 1).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), t.grad.numpy())


CUM_TIES = np.array([[1.0, 3.0, 3.0, -2.0, 3.0], [2.0, 2.0, 0.0, 2.0, 5.0], [5.0, NAN, 5.0, NAN, 6.0]])


@pytest.mark.parametrize("op", ["cummax", "cummin"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin_values_indices_and_gradients_match_torch(op, dim, device):
    x, t = _both(CUM_TIES, device)
    v, i = getattr(xbp, op)(x, dim)
    tv, ti = getattr(torch, op)(t, dim)
    np.testing.assert_array_equal(to_np(v), tv.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert i.dtype == xbp.int64 and not i.requires_grad
    w = np.random.default_rng(0).normal(size=CUM_TIES.shape)
    (v * xbp.tensor(w, device=device)).sum().backward()
    (tv * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_cummax_integers_bool_0d_and_method(device):
    x = xbp.tensor([[3, 1, 4, 1, 5, 9, 2, 6]], device=device)
    t = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    for op in ("cummax", "cummin"):
        v, i = getattr(x, op)(1)
        tv, ti = getattr(t, op)(1)
        assert v.tolist() == tv.tolist() and i.tolist() == ti.tolist()
    b = xbp.tensor([False, True, False], device=device)
    assert b.cummax(0).values.tolist() == [False, True, True] and b.cummax(0).indices.tolist() == [0, 1, 1]
    s = xbp.tensor(2.5, device=device, requires_grad=True)
    v, i = xbp.cummin(s, 0)
    v.backward()
    assert v.shape == () and i.tolist() == 0 and s.grad.tolist() == 1.0


def test_logcumsumexp_matches_torch_and_is_stable(device):
    a = np.array([[-1000.0, 0.0, 1000.0, 3.0, -INF], [0.5, -0.5, 2.0, 80.0, 79.0]])
    x, t = _both(a, device)
    y, ty = xbp.logcumsumexp(x, 1), torch.logcumsumexp(t, 1)
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-14)
    assert to_np(y)[0, 0] == -1000.0                     # not lost to the later maximum
    w = np.random.default_rng(1).normal(size=a.shape)
    (y * xbp.tensor(w, device=device)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), rtol=1e-12, atol=1e-300)
    z = xbp.tensor(np.arange(13.0) - 6, device=device)     # odd length: several doubling steps
    np.testing.assert_allclose(z.logcumsumexp(0).numpy(), np.logaddexp.accumulate(np.arange(13.0) - 6), rtol=1e-6)


def test_diff_matches_torch(device):
    a = np.array([[1.0, 4.0, 9.0, 16.0], [2.0, -1.0, 0.5, 0.0]])
    x, t = _both(a, device)
    p, tp = _both([[0.0], [1.0]], device)
    cases = [((), {}), ((2,), {}), ((1, 0), {}), ((5,), {}), ((0,), {})]
    for args, kw in cases:
        np.testing.assert_array_equal(to_np(xbp.diff(x, *args, **kw)), torch.diff(t, *args, **kw).detach().numpy())
    y, ty = x.diff(1, 1, prepend=p, append=p), torch.diff(t, 1, 1, prepend=tp, append=tp)
    np.testing.assert_array_equal(to_np(y), ty.detach().numpy())
    y.pow(2).sum().backward()
    ty.pow(2).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), t.grad.numpy())
    np.testing.assert_array_equal(to_np(p.grad), tp.grad.numpy())
    b = xbp.tensor([True, False, False, True], device=device)
    assert xbp.diff(b).tolist() == torch.diff(torch.tensor([True, False, False, True])).tolist()
    assert xbp.diff(xbp.tensor([1, 2, 4], device=device), prepend=0).tolist() == [1, 1, 2]   # numbers too
    with pytest.raises(ValueError, match="non-negative"):
        xbp.diff(x, -1)
    with pytest.raises(RuntimeError, match="0-d"):
        xbp.diff(xbp.tensor(1.0, device=device))


# --- statistics --------------------------------------------------------------------------------------------
def test_var_mean_std_mean_match_torch(device):
    a = np.random.default_rng(2).normal(size=(3, 4))
    x, t = _both(a, device)
    for args, kw in [((), {}), ((1,), {}), ((0,), {"keepdim": True}), (((0, 1),), {"correction": 0}),
                     ((1,), {"unbiased": False}), ((False,), {})]:
        for name in ("var_mean", "std_mean"):
            got, want = getattr(xbp, name)(x, *args, **kw), getattr(torch, name)(t, *args, **kw)
            assert isinstance(got, tuple) and len(got) == 2
            for g, w in zip(got, want):
                np.testing.assert_allclose(to_np(g), w.detach().numpy(), rtol=1e-13)
    v, m = xbp.var_mean(x, 1)
    tv, tm = torch.var_mean(t, 1)
    (v + 2 * m).sum().backward()
    (tv + 2 * tm).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), rtol=1e-12)


def test_aminmax_matches_torch_with_ties(device):
    a = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, -1.0, -1.0]])
    for kw in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}):
        x, t = _both(a, device)
        r, tr = xbp.aminmax(x, **kw), torch.aminmax(t, **kw)
        assert r._fields == ("min", "max")
        np.testing.assert_array_equal(to_np(r.min), tr.min.detach().numpy())
        np.testing.assert_array_equal(to_np(r.max), tr.max.detach().numpy())
        (r.min + 2 * r.max).sum().backward()
        (tr.min + 2 * tr.max).sum().backward()
        np.testing.assert_allclose(to_np(x.grad), t.grad.numpy())
    with pytest.raises(RuntimeError, match="empty"):
        xbp.aminmax(xbp.zeros(0, device=device))


def test_count_nonzero_matches_torch(device):
    a = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, -3.0]])
    x, t = xbp.tensor(a, device=device), torch.tensor(a)
    for dim in (None, 0, 1, -1, (0, 1)):
        got = xbp.count_nonzero(x, dim) if dim is not None else x.count_nonzero()
        want = torch.count_nonzero(t, dim) if dim is not None else t.count_nonzero()
        assert got.tolist() == want.tolist() and got.dtype == xbp.int64


# --- dims: range checks and the Array API spellings ------------------------------------------------------------
DIM_OPS = {
    "cumprod": lambda x, d: xbp.cumprod(x, d),
    "cummax": lambda x, d: xbp.cummax(x, d),
    "cummin": lambda x, d: x.cummin(d),
    "logcumsumexp": lambda x, d: xbp.logcumsumexp(x, d),
    "diff": lambda x, d: xbp.diff(x, dim=d),
    "var_mean": lambda x, d: xbp.var_mean(x, d),
    "std_mean": lambda x, d: xbp.std_mean(x, (0, d)),
    "aminmax": lambda x, d: xbp.aminmax(x, dim=d),
    "count_nonzero": lambda x, d: xbp.count_nonzero(x, d),
}


@pytest.mark.parametrize("name", sorted(DIM_OPS))
@pytest.mark.parametrize("dim", [2, -3, 5])
def test_dims_out_of_range_raise_index_error(name, dim, device):
    x = xbp.ones(2, 3, device=device)
    with pytest.raises(IndexError, match="out of range"):
        DIM_OPS[name](x, dim)
    with pytest.raises(IndexError):
        getattr(torch, name)(torch.ones(2, 3), dim) if name not in ("aminmax", "diff", "std_mean") else (
            torch.aminmax(torch.ones(2, 3), dim=dim) if name == "aminmax" else
            torch.diff(torch.ones(2, 3), dim=dim) if name == "diff" else torch.std_mean(torch.ones(2, 3), (0, dim)))


def test_axis_and_keepdims_aliases(device):
    a = np.random.default_rng(3).uniform(0.5, 2.0, size=(2, 3))
    x = xbp.tensor(a, device=device)
    np.testing.assert_allclose(xbp.cumprod(x, axis=1).numpy(), np.cumprod(a, 1))
    np.testing.assert_allclose(x.cumprod(axis=0).numpy(), np.cumprod(a, 0))
    np.testing.assert_allclose(xbp.cummax(x, axis=-1).values.numpy(), np.maximum.accumulate(a, -1))
    np.testing.assert_allclose(xbp.cummin(x, axis=0).values.numpy(), np.minimum.accumulate(a, 0))
    np.testing.assert_allclose(xbp.logcumsumexp(x, axis=1).numpy(), np.logaddexp.accumulate(a, 1), rtol=1e-6)
    np.testing.assert_allclose(xbp.diff(x, axis=0).numpy(), np.diff(a, axis=0), rtol=1e-6)
    v, m = xbp.var_mean(x, axis=1, keepdims=True)
    assert v.shape == (2, 1) and m.shape == (2, 1)
    np.testing.assert_allclose(v.numpy(), a.var(1, ddof=1, keepdims=True), rtol=1e-6)
    s, m = xbp.std_mean(x, axis=(0, 1), keepdims=True, correction=0)
    np.testing.assert_allclose(s.numpy(), a.std(keepdims=True), rtol=1e-6)
    r = xbp.aminmax(x, axis=0, keepdims=True)
    assert r.min.shape == (1, 3)
    np.testing.assert_allclose(r.max.numpy(), a.max(0, keepdims=True), rtol=1e-6)
    assert xbp.count_nonzero(x, axis=(0, 1)).tolist() == 6
    with pytest.raises(TypeError, match="dim"):
        xbp.cumprod(x)


# --- Tensor.type / half ---------------------------------------------------------------------------------------
def test_tensor_type_names_and_conversions(device):
    x = xbp.tensor([1.5, -2.5], device=device)
    pre = "xbp.cuda." if device == "cuda" else "xbp."          # torch.cuda.FloatTensor on a GPU, as PyTorch
    assert x.type() == pre + "FloatTensor"
    assert xbp.tensor([1], device=device).type() == pre + "LongTensor"
    assert xbp.tensor([True], device=device).type() == pre + "BoolTensor"
    assert x.double().type() == pre + "DoubleTensor"
    if device == "strict":
        with pytest.raises(TypeError, match="float16"):
            x.half()
    else:
        assert x.half().type() == pre + "HalfTensor" and x.half().dtype == xbp.float16
        assert x.half().tolist() == torch.tensor([1.5, -2.5]).half().tolist()
    i = x.type(xbp.int32)
    assert i.dtype == xbp.int32 and i.tolist() == torch.tensor([1.5, -2.5]).type(torch.int32).tolist()
    assert x.type("torch.DoubleTensor").dtype == xbp.float64
    assert x.type("xbp.LongTensor").tolist() == [1, -2]
    assert x.type(xbp.float32) is x                          # already that type: itself, as PyTorch
    with pytest.raises(ValueError, match="unknown tensor type"):
        x.type("xbp.NoSuchTensor")
    w = xbp.tensor([1.0, 2.0], device=device, requires_grad=True)
    w.type(xbp.float64).sum().backward()                    # differentiable like .to()
    assert w.grad.tolist() == [1.0, 1.0]


# --- in-place variants ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,args,vals", [("tan_", (), [0.3, -0.5]), ("lgamma_", (), [0.7, 3.0]),
                                            ("clamp_min_", (0.0,), [-1.0, 2.0]), ("lerp_", (None, 0.25), [1.0, 2.0]),
                                            ("nan_to_num_", (), [NAN, 2.0]), ("fmod_", (0.7,), [1.5, -2.0]),
                                            ("reciprocal_", (), [2.0, -4.0]), ("trunc_", (), [1.5, -2.5])])
def test_inplace_variants_match_torch_values_and_gradients(name, args, vals, device):
    x, t = _both(vals, device)
    end = xbp.tensor([5.0, -1.0], dtype=xbp.float64, device=device)
    xargs = tuple(end if a is None else a for a in args)
    targs = tuple(torch.tensor([5.0, -1.0], dtype=torch.float64) if a is None else a for a in args)
    y = x * 1.0
    ty = t * 1.0
    assert getattr(y, name)(*xargs) is y
    getattr(ty, name)(*targs)
    _check(y, ty, f"{name} values")
    (y * 3.0).sum().backward()
    (ty * 3.0).sum().backward()
    _check(x.grad, t.grad, f"{name} gradient")


# --- multinomial ------------------------------------------------------------------------------------------------
def _chi_square(counts, probs):
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


# 99.9% quantiles of the chi-square distribution (df = 3 and 5): a correct sampler fails 1 run in 1000
CHI2_999 = {3: 16.27, 5: 20.52}


def test_multinomial_with_replacement_is_distributed_as_asked(device):
    xbp.manual_seed(123)
    w = np.array([0.1, 0.0, 0.4, 0.2, 0.3])               # a zero weight: never drawn
    n = 20000
    idx = xbp.multinomial(xbp.tensor(w * 7.0, device=device), n, replacement=True).numpy()
    assert idx.shape == (n,) and idx.dtype == np.int64
    counts = np.bincount(idx, minlength=5)
    assert counts[1] == 0
    keep = w > 0
    assert _chi_square(counts[keep], w[keep] / w.sum()) < CHI2_999[3]
    # batched rows, each its own distribution
    rows = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    out = xbp.tensor(rows, device=device).multinomial(6000, True).numpy()
    assert out.shape == (2, 6000)
    for r in range(2):
        assert _chi_square(np.bincount(out[r], minlength=6), rows[r] / rows[r].sum()) < CHI2_999[5]


def test_multinomial_without_replacement_distinct_and_sequentially_distributed(device):
    xbp.manual_seed(7)
    w = np.array([0.5, 0.3, 0.15, 0.05])
    trials = 6000
    probs = xbp.tensor(np.tile(w, (trials, 1)), device=device)
    draws = xbp.multinomial(probs, 2).numpy()              # (trials, 2), each row two distinct categories
    assert draws.shape == (trials, 2) and np.all(draws[:, 0] != draws[:, 1])
    # first draw ~ w; second, given the first i, ~ w_j / (1 - w_i): check the pair frequencies
    pair = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            if i != j:
                pair[i, j] = w[i] * w[j] / (1.0 - w[i])
    counts = np.zeros((4, 4))
    np.add.at(counts, (draws[:, 0], draws[:, 1]), 1)
    mask = ~np.eye(4, dtype=bool)
    stat = _chi_square(counts[mask], pair[mask])
    assert stat < 32.9                                    # chi-square 99.9% quantile, df = 11
    full = xbp.multinomial(xbp.tensor(w, device=device), 4).numpy()
    assert sorted(full.tolist()) == [0, 1, 2, 3]


def test_multinomial_is_seeded_and_validates(device):
    p = xbp.tensor([0.2, 0.3, 0.5], device=device)
    xbp.manual_seed(5)
    a = xbp.multinomial(p, 10, True).tolist()
    xbp.manual_seed(5)
    assert xbp.multinomial(p, 10, True).tolist() == a
    with pytest.raises(RuntimeError, match="without replacement"):
        xbp.multinomial(p, 4)
    with pytest.raises(RuntimeError, match="positive weight"):
        xbp.multinomial(xbp.tensor([0.5, 0.0, 0.5], device=device), 3)
    with pytest.raises(RuntimeError, match="inf, nan or an element < 0"):
        xbp.multinomial(xbp.tensor([0.5, -0.1], device=device), 1)
    with pytest.raises(RuntimeError, match="inf, nan"):
        xbp.multinomial(xbp.tensor([0.5, NAN], device=device), 1)
    with pytest.raises(RuntimeError, match="sum to 0"):
        xbp.multinomial(xbp.tensor([[1.0, 1.0], [0.0, 0.0]], device=device), 1, True)
    with pytest.raises(RuntimeError, match="<= 0"):
        xbp.multinomial(p, 0)
    with pytest.raises(RuntimeError, match="1-D or 2-D"):
        xbp.multinomial(xbp.ones(2, 2, 2, device=device), 1)
    with pytest.raises(TypeError, match="floating-point"):
        xbp.multinomial(xbp.tensor([1, 2], device=device), 1)


def test_multinomial_generator_draws_from_its_own_stream(device):
    if not hasattr(xbp, "Generator"):
        pytest.skip("xbp.Generator is not in this build (tensor-surface work area)")
    p = xbp.tensor([0.1, 0.2, 0.3, 0.4], device=device)
    xbp.manual_seed(3)
    plain = xbp.multinomial(p, 8, True).tolist()
    xbp.manual_seed(3)
    g1 = xbp.Generator(device=device).manual_seed(9)
    a = xbp.multinomial(p, 8, True, generator=g1).tolist() + xbp.multinomial(p, 3, generator=g1).tolist()
    assert xbp.multinomial(p, 8, True).tolist() == plain       # the default stream was not used
    g2 = xbp.Generator(device=device).manual_seed(9)
    assert xbp.multinomial(p, 8, True, generator=g2).tolist() + p.multinomial(3, generator=g2).tolist() == a


def test_multinomial_large_rows_use_the_search_path(device):
    xbp.manual_seed(11)
    w = np.ones((3, 2000))
    w[:, :1000] = 0.0                                      # only the upper half can be drawn
    out = xbp.multinomial(xbp.tensor(w, device=device), 800, True).numpy()   # 4.8e6 > the dense limit
    assert out.shape == (3, 800) and out.min() >= 1000 and out.max() < 2000
