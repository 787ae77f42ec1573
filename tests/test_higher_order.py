"""Second (and third) derivatives through create_graph, against closed forms."""
import numpy as np
import pytest

import xbp
from conftest import rand, to_np


def _d2(f, x):
    """Elementwise f: first and second derivatives at every element of x (the Hessian's diagonal)."""
    (g,) = xbp.grad(f(x).sum(), x, create_graph=True)
    (h,) = xbp.grad(g.sum(), x, create_graph=True)
    return g, h


@pytest.mark.parametrize("name,f,d1,d2", [
    ("tanh", xbp.tanh, lambda a: 1 - np.tanh(a) ** 2, lambda a: -2 * np.tanh(a) * (1 - np.tanh(a) ** 2)),
    ("sigmoid", xbp.sigmoid, lambda a: (s := 1 / (1 + np.exp(-a))) * (1 - s),
     lambda a: (s := 1 / (1 + np.exp(-a))) * (1 - s) * (1 - 2 * s)),
    ("exp", xbp.exp, np.exp, np.exp),
    ("log", xbp.log, lambda a: 1 / a, lambda a: -1 / a ** 2),
    ("sqrt", xbp.sqrt, lambda a: 0.5 / np.sqrt(a), lambda a: -0.25 * a ** -1.5),
    ("sin", xbp.sin, np.cos, lambda a: -np.sin(a)),
    ("softplus", xbp.softplus, lambda a: 1 / (1 + np.exp(-a)), lambda a: (s := 1 / (1 + np.exp(-a))) * (1 - s)),
    ("x_exp_x", lambda x: x * x.exp(), lambda a: (1 + a) * np.exp(a), lambda a: (2 + a) * np.exp(a)),
    ("pow3", lambda x: x ** 3, lambda a: 3 * a ** 2, lambda a: 6 * a),
    ("reciprocal", lambda x: 1.0 / x, lambda a: -1 / a ** 2, lambda a: 2 / a ** 3),
])
def test_second_derivative_closed_forms(device, name, f, d1, d2):
    x, a = rand((4,), device, low=0.3, high=1.5)
    g, h = _d2(f, x)
    np.testing.assert_allclose(to_np(g), d1(a), rtol=1e-10)
    np.testing.assert_allclose(to_np(h), d2(a), rtol=1e-10, atol=1e-12)


def test_third_derivative_of_tanh(device):
    x, a = rand((3,), device)
    _, h = _d2(xbp.tanh, x)
    (k,) = xbp.grad(h.sum(), x)
    t = np.tanh(a)
    # d3/dx3 tanh = -2 (1 - t^2)(1 - 3 t^2)
    np.testing.assert_allclose(to_np(k), -2 * (1 - t * t) * (1 - 3 * t * t), rtol=1e-10)


def test_mixed_partials_of_a_product(device):
    x, a = rand((3,), device)
    y, b = rand((3,), device, seed=1)
    f = (x * x * y).sum()                               # d/dx = 2xy, d2/dxdy = 2x, d2/dx2 = 2y
    gx, gy = xbp.grad(f, [x, y], create_graph=True)
    np.testing.assert_allclose(to_np(gx), 2 * a * b)
    np.testing.assert_allclose(to_np(gy), a * a)
    hxx, hxy = xbp.grad(gx.sum(), [x, y], retain_graph=True)
    np.testing.assert_allclose(to_np(hxx), 2 * b)
    np.testing.assert_allclose(to_np(hxy), 2 * a)
    (hyx,) = xbp.grad(gy.sum(), x)
    np.testing.assert_allclose(to_np(hyx), 2 * a)


def _hessian(f, x):
    """Full Hessian of a scalar f at x (n,) by one double-backward per row."""
    (g,) = xbp.grad(f(x), x, create_graph=True)
    rows = []
    for i in range(x.shape[0]):
        (hi,) = xbp.grad(g[i], x, retain_graph=True, allow_unused=True)
        rows.append(np.zeros(x.shape[0]) if hi is None else to_np(hi))
    return to_np(g), np.stack(rows)


def test_hessian_of_quadratic_form_via_matmul(device):
    x, a = rand((3,), device)
    A = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [4.0, 1.0, 2.0]])
    At = xbp.tensor(A, device=device)
    g, H = _hessian(lambda v: v @ (At @ v), x)
    np.testing.assert_allclose(g, (A + A.T) @ a)
    np.testing.assert_allclose(H, A + A.T)


def test_hessian_of_log_sum_exp(device):
    x, a = rand((3,), device)
    g, H = _hessian(lambda v: xbp.logsumexp(v, 0), x)
    p = np.exp(a) / np.exp(a).sum()
    np.testing.assert_allclose(g, p, rtol=1e-12)
    np.testing.assert_allclose(H, np.diag(p) - np.outer(p, p), atol=1e-12)


def test_second_derivatives_of_matmul_loss(device):
    # L(W) = 1/2 ||X W||^2: grad = X^T X W, Hessian-vector product along V = X^T X V
    X, xa = rand((4, 3), device)
    W, wa = rand((3, 2), device, seed=1)
    V = np.random.default_rng(2).standard_normal((3, 2))
    L = 0.5 * ((X @ W) ** 2).sum()
    (G,) = xbp.grad(L, W, create_graph=True)
    np.testing.assert_allclose(to_np(G), xa.T @ xa @ wa, rtol=1e-12)
    (Hv,) = xbp.grad((G * xbp.tensor(V, device=device)).sum(), W, retain_graph=True)
    np.testing.assert_allclose(to_np(Hv), xa.T @ xa @ V, rtol=1e-12)
    # and with respect to X: d/dX <G, V> = d/dX tr(V^T X^T X W) = X (W V^T + V W^T)
    (HX,) = xbp.grad((G * xbp.tensor(V, device=device)).sum(), X)
    np.testing.assert_allclose(to_np(HX), xa @ (wa @ V.T + V @ wa.T), rtol=1e-12)


def test_batched_matmul_double_backward(device):
    A, a = rand((2, 2, 3), device)
    B, b = rand((3, 2), device, seed=1)
    f = (A @ B).tanh().sum()
    assert xbp.autograd.gradgradcheck(lambda p, q: (p @ q).tanh().sum(), [A, B])
    (gA,) = xbp.grad(f, A)
    t = np.tanh(a @ b)
    np.testing.assert_allclose(to_np(gA), (1 - t * t) @ b.T, rtol=1e-12)


def test_grad_of_grad_through_softmax_cross_entropy(device):
    z, za = rand((2, 3), device)
    y = xbp.tensor(np.array([[0, 1.0, 0], [1.0, 0, 0]]), device=device)
    loss = -(xbp.log_softmax(z, -1) * y).sum()
    (g,) = xbp.grad(loss, z, create_graph=True)
    p = np.exp(za) / np.exp(za).sum(-1, keepdims=True)
    np.testing.assert_allclose(to_np(g), p - to_np(y), rtol=1e-12)
    # d/dz sum(g * v) = H v with H block-diagonal diag(p) - p p^T per row
    v = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    (hv,) = xbp.grad((g * xbp.tensor(v, device=device)).sum(), z)
    want = p * v - p * (p * v).sum(-1, keepdims=True)
    np.testing.assert_allclose(to_np(hv), want, rtol=1e-10, atol=1e-12)


def test_create_graph_with_broadcasting_and_reductions(device):
    x, a = rand((2, 3), device)
    b, bb = rand((3,), device, seed=1)
    f = ((x * b).sum(0) ** 2).mean()        # b broadcast over rows, then reduced
    gb, = xbp.grad(f, b, create_graph=True)
    s = (a * bb).sum(0)
    np.testing.assert_allclose(to_np(gb), 2 * s * a.sum(0) / 3)
    (h,) = xbp.grad(gb.sum(), b)
    # d/db_j sum_k 2 s_k c_k / 3 with c = a.sum(0), s_k = b_k c_k -> 2 c_j^2 / 3
    np.testing.assert_allclose(to_np(h), 2 * a.sum(0) ** 2 / 3)
