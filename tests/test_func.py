"""xbp.func, xbp.autograd.functional and xbp.inference_mode, against closed forms, finite
differences (gradcheck in float64) and torch.func / torch.autograd.functional on the same inputs."""
import threading

import numpy as np
import pytest

import xbp
from xbp import func as F
from xbp.autograd import functional as AF
from xbp.autograd import gradcheck

from conftest import rand, to_np


def T(a, device, requires_grad=False):
    return xbp.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


def close(x, y, **kw):
    kw.setdefault("rtol", 1e-10)
    kw.setdefault("atol", 1e-12)
    np.testing.assert_allclose(to_np(x) if isinstance(x, xbp.Tensor) else x, y, **kw)


# ----------------------------------------------------------------------------------------------
# grad, grad_and_value, vjp
# ----------------------------------------------------------------------------------------------
def test_grad_closed_form_argnums_and_aux(device):
    a = np.array([0.3, -0.7, 1.1])
    b = np.array([0.5, 2.0, -1.5])
    x, w = T(a, device), T(b, device)

    def f(x, w):
        return (x.sin() * w).sum()
    close(F.grad(f)(x, w), np.cos(a) * b)
    gx, gw = F.grad(f, argnums=(0, 1))(x, w)
    close(gx, np.cos(a) * b)
    close(gw, np.sin(a))
    close(F.grad(f, argnums=-1)(x, w), np.sin(a))
    g, (v, aux) = F.grad_and_value(lambda x: (f(x, w), x * 2), has_aux=True)(x)
    close(g, np.cos(a) * b)
    close(v, np.sum(np.sin(a) * b))
    close(aux, 2 * a)
    g, aux = F.grad(lambda x: (f(x, w), "note"), has_aux=True)(x)
    assert aux == "note"
    assert not g.requires_grad and g.grad_fn is None
    with pytest.raises(RuntimeError, match="one-element tensor"):
        F.grad(lambda x: x * 2)(x)
    with pytest.raises(ValueError, match="argnums"):
        F.grad(f, argnums=2)(x, w)


def test_grad_of_pytree_argument_matches_torch(device):
    torch = pytest.importorskip("torch")
    a, b = np.array([[0.2, -0.4], [1.0, 0.3]]), np.array([0.7, -0.1])
    params = {"W": T(a, device), "b": T(b, device)}
    x_np = np.array([1.5, -2.0])
    x = T(x_np, device)

    def loss(p, x):
        return ((p["W"] @ x + p["b"]).tanh() ** 2).sum()
    g = F.grad(loss)(params, x)
    pt = {"W": torch.tensor(a), "b": torch.tensor(b)}
    gt = torch.func.grad(lambda p, x: ((p["W"] @ x + p["b"]).tanh() ** 2).sum())(pt, torch.tensor(x_np))
    assert set(g) == {"W", "b"}
    close(g["W"], gt["W"].numpy())
    close(g["b"], gt["b"].numpy())


def test_vjp_multiple_primals_and_aux_match_torch(device):
    torch = pytest.importorskip("torch")
    a, b, c = np.array([0.4, -1.2, 0.9]), np.array([1.3, 0.2, -0.6]), np.array([2.0, -1.0, 0.5])

    out, fn = F.vjp(lambda x, y: ((x * y).exp(), x.sin() + y), T(a, device), T(b, device))
    gx, gy = fn((T(c, device), T(c * 2, device)))
    out_t, fn_t = torch.func.vjp(lambda x, y: ((x * y).exp(), x.sin() + y), torch.tensor(a), torch.tensor(b))
    gxt, gyt = fn_t((torch.tensor(c), torch.tensor(c * 2)))
    close(out[0], out_t[0].numpy())
    close(gx, gxt.numpy())
    close(gy, gyt.numpy())
    gx2, gy2 = fn((T(c, device), T(c * 2, device)))         # vjp_fn may be called again
    close(gx2, gxt.numpy())
    o, fn, aux = F.vjp(lambda x: (x * x, x + 1), T(a, device), has_aux=True)
    close(aux, a + 1)
    close(fn(T(c, device))[0], 2 * a * c)
    with pytest.raises(ValueError, match="cotangent of shape"):
        fn(T(c[:2], device))


# ----------------------------------------------------------------------------------------------
# jvp, jacrev, jacfwd, hessian
# ----------------------------------------------------------------------------------------------
def test_jvp_matches_torch_and_finite_differences(device):
    torch = pytest.importorskip("torch")
    a, b = np.array([0.3, -0.8, 1.4]), np.array([0.5, 0.25, -1.0])
    t_a, t_b = np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, 0.3])

    def f(x, y):
        return (x * y).tanh() * x, (x ** 2).sum() * y
    out, jv = F.jvp(f, (T(a, device), T(b, device)), (T(t_a, device), T(t_b, device)))
    out_t, jv_t = torch.func.jvp(f, (torch.tensor(a), torch.tensor(b)), (torch.tensor(t_a), torch.tensor(t_b)))
    for u, v in zip(jv, jv_t):
        close(u, v.numpy())
    eps = 1e-6
    num = [(np.tanh((a + eps * t_a) * (b + eps * t_b)) * (a + eps * t_a)
            - np.tanh((a - eps * t_a) * (b - eps * t_b)) * (a - eps * t_a)) / (2 * eps)]
    close(jv[0], num[0], rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="tangent must be a Tensor of its primal's shape"):
        F.jvp(f, (T(a, device), T(b, device)), (T(t_a[:2], device), T(t_b, device)))


def test_jacrev_jacfwd_tuple_outputs_and_argnums_match_torch(device):
    torch = pytest.importorskip("torch")
    a, b = np.array([0.3, -0.8, 1.4]), np.array([[0.5, 0.25], [-1.0, 2.0], [0.1, 0.7]])

    def f(x, M):
        return (x @ M).sin(), (x.exp() * x).sum()
    for ours, theirs in ((F.jacrev, torch.func.jacrev), (F.jacfwd, torch.func.jacfwd)):
        jac = ours(f, argnums=(0, 1))(T(a, device), T(b, device))
        jt = theirs(f, argnums=(0, 1))(torch.tensor(a), torch.tensor(b))
        for i in range(2):
            for j in range(2):
                assert jac[i][j].shape == tuple(jt[i][j].shape)
                close(jac[i][j], jt[i][j].numpy())
        J = ours(lambda x: (x @ T(b, device)).sin())(T(a, device))
        close(J, (np.cos(a @ b)[:, None] * b.T))                    # closed form: diag(cos) M^T


def test_hessian_closed_form_and_torch(device):
    torch = pytest.importorskip("torch")
    a = np.array([0.3, -0.8, 1.4])
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])

    def f(x):
        return 0.5 * (x @ (T(A, device) @ x)) + (x ** 3).sum()
    close(F.hessian(f)(T(a, device)), A + np.diag(6 * a))
    close(AF.hessian(f, T(a, device)), A + np.diag(6 * a))
    g = lambda x, y: (x.sin() * y * y).sum()              # noqa: E731
    b = np.array([0.5, -1.0, 2.0])
    H = F.hessian(g, argnums=(0, 1))(T(a, device), T(b, device))
    Ht = torch.func.hessian(g, argnums=(0, 1))(torch.tensor(a), torch.tensor(b))
    for i in range(2):
        for j in range(2):
            close(H[i][j], Ht[i][j].numpy())


def test_nested_transforms_closures_and_outer_autograd(device):
    a, b = np.array([0.3, -0.8, 1.4]), np.array([1.2, 0.4, -0.5])
    x0, y0 = T(a, device), T(b, device)
    # grad of grad (closed form: third derivative of sum x^4 / 4 summed -> 6x... d/dx sum(3x^2) = 6x)
    close(F.grad(lambda x: F.grad(lambda y: (y ** 4).sum() / 4)(x).sum())(x0), 3 * a ** 2)
    # mixed partial through a closure: d/dx sum_y d/dy sum(x^2 y^3) = 6 x y^2
    close(F.grad(lambda x: F.grad(lambda y: (x * x * y ** 3).sum())(y0).sum())(x0), 6 * a * b ** 2)
    # an input that already requires grad: the transform's result stays on the graph
    x = T(a, device, requires_grad=True)
    g = F.grad(lambda t: (t ** 3).sum())(x)
    assert g.requires_grad
    g.sum().backward()
    close(x.grad, 6 * a)
    # finite differences of the gradient function itself
    assert gradcheck(lambda t: F.grad(lambda u: (u.sin() * u).sum())(t), (T(a, device, True),))


def test_transforms_work_under_no_grad(device):
    a = np.array([0.2, 0.9])
    with xbp.no_grad():
        g = F.grad(lambda x: (x.exp()).sum())(T(a, device))
        _, jv = AF.jvp(lambda x: x.exp(), T(a, device), T([1.0, 1.0], device))
    close(g, np.exp(a))
    close(jv, np.exp(a))
    assert not g.requires_grad and xbp.is_grad_enabled()


# ----------------------------------------------------------------------------------------------
# vmap
# ----------------------------------------------------------------------------------------------
def test_vmap_in_out_dims_and_per_sample_grads_match_torch(device):
    torch = pytest.importorskip("torch")
    w_np = np.array([0.5, -1.0, 2.0])
    X = np.array([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0], [2.0, 1.0, -1.0], [0.1, 0.2, 0.3]])
    y_np = np.array([1.0, -1.0, 0.5, 2.0])

    def loss(w, x, y):
        return ((w * x).sum() - y) ** 2
    per = F.vmap(F.grad(loss), in_dims=(None, 0, 0))(T(w_np, device), T(X, device), T(y_np, device))
    per_t = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(
        torch.tensor(w_np), torch.tensor(X), torch.tensor(y_np))
    close(per, per_t.numpy())
    close(per, 2 * ((X @ w_np) - y_np)[:, None] * X)                   # closed form
    out = F.vmap(lambda x: (x * 2, x.sum()), in_dims=1, out_dims=(1, 0))(T(X, device))
    close(out[0], 2 * X)
    close(out[1], X.sum(axis=0))
    pair = F.vmap(lambda p: p[0] * p[1], in_dims=((0, None),))((T(X, device), T(w_np, device)))
    close(pair, X * w_np)


def test_vmap_is_differentiable_and_refuses_bad_dims(device):
    X, A = rand((3, 2), device)
    out = F.vmap(lambda r: (r ** 2).sum())(X)
    out.sum().backward()
    close(X.grad, 2 * A)
    with pytest.raises(ValueError, match="different sizes along their batch dims"):
        F.vmap(lambda a, b: a + b)(T(np.zeros((2, 3)), device), T(np.zeros((3, 3)), device))
    with pytest.raises(ValueError, match="no input is batched"):
        F.vmap(lambda a: a, in_dims=None)(T(np.zeros(2), device))
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.vmap(lambda a: a, in_dims=2)(T(np.zeros((2, 2)), device))
    with pytest.raises(ValueError, match="in_dims has 1 entries"):
        F.vmap(lambda a, b: a, in_dims=(0,))(T(np.zeros(2), device), T(np.zeros(2), device))


# ----------------------------------------------------------------------------------------------
# functional_call
# ----------------------------------------------------------------------------------------------
def test_functional_call_grads_match_torch_and_restore_params(device):
    torch = pytest.importorskip("torch")
    xbp.manual_seed(0)
    model = xbp.nn.Linear(3, 2).to(device).double()
    W0 = to_np(model.weight).copy()
    b0 = to_np(model.bias).copy()
    Wn = np.array([[0.1, 0.2, 0.3], [-0.4, 0.5, -0.6]])
    bn = np.array([0.05, -0.05])
    x_np = np.array([[1.0, -1.0, 2.0], [0.5, 0.5, 0.5]])
    params = {"weight": T(Wn, device), "bias": T(bn, device)}

    def loss(p, x):
        return (F.functional_call(model, p, (x,)) ** 2).sum()
    g = F.grad(loss)(params, T(x_np, device))
    tm = torch.nn.Linear(3, 2).double()
    gt = torch.func.grad(lambda p, x: (torch.func.functional_call(tm, p, (x,)) ** 2).sum())(
        {"weight": torch.tensor(Wn), "bias": torch.tensor(bn)}, torch.tensor(x_np))
    close(g["weight"], gt["weight"].numpy())
    close(g["bias"], gt["bias"].numpy())
    close(model.weight, W0)                    # the module's own parameters are back
    close(model.bias, b0)
    assert isinstance(model.weight, xbp.nn.Parameter)
    with pytest.raises(KeyError, match="no parameter or buffer named"):
        F.functional_call(model, {"wieght": T(Wn, device)}, (T(x_np, device),))
    with pytest.raises(RuntimeError, match="missing key"):
        F.functional_call(model, {"weight": T(Wn, device)}, (T(x_np, device),), strict=True)
    out = F.functional_call(model, ({"weight": T(Wn, device)}, {"bias": T(bn, device)}), T(x_np, device))
    close(out, x_np @ Wn.T + bn)


def test_functional_call_tied_weights(device):
    class Tied(xbp.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = xbp.nn.Linear(2, 2, bias=False)
            self.b = xbp.nn.Linear(2, 2, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))
    m = Tied().to(device).double()
    W = np.array([[1.0, 2.0], [0.0, -1.0]])
    x = np.array([1.0, 3.0])
    close(F.functional_call(m, {"a.weight": T(W, device)}, (T(x, device),)), W @ (W @ x))


# ----------------------------------------------------------------------------------------------
# xbp.autograd.functional
# ----------------------------------------------------------------------------------------------
def test_autograd_functional_matches_torch(device):
    torch = pytest.importorskip("torch")
    TAF = torch.autograd.functional
    a, b = np.array([0.3, -0.8, 1.4]), np.array([0.5, 0.25, -1.0])
    v3 = np.array([1.0, -2.0, 0.5])

    def f(x, y):
        return (x * y).sin(), (x.exp() * y).sum().reshape(1)

    def s(x, y):
        return (x.sin() * y * y).sum()
    X, Y = (T(a, device), T(b, device))
    Xt, Yt = torch.tensor(a), torch.tensor(b)
    for strategy in ("reverse-mode", "forward-mode"):
        J = AF.jacobian(f, (X, Y), strategy=strategy)
        Jt = TAF.jacobian(f, (Xt, Yt))
        for i in range(2):
            for j in range(2):
                close(J[i][j], Jt[i][j].numpy())
    H = AF.hessian(s, (X, Y))
    Ht = TAF.hessian(s, (Xt, Yt))
    for i in range(2):
        for j in range(2):
            close(H[i][j], Ht[i][j].numpy())
    cases = [
        (AF.vjp(f, (X, Y), (T(v3, device), T([2.0], device)))[1],
         TAF.vjp(f, (Xt, Yt), (torch.tensor(v3), torch.tensor([2.0])))[1]),
        (AF.jvp(f, (X, Y), (T(v3, device), T(v3 * 3, device)))[1],
         TAF.jvp(f, (Xt, Yt), (torch.tensor(v3), torch.tensor(v3 * 3)))[1]),
        (AF.vhp(s, (X, Y), (T(v3, device), T(b, device)))[1],
         TAF.vhp(s, (Xt, Yt), (torch.tensor(v3), torch.tensor(b)))[1]),
        (AF.hvp(s, (X, Y), (T(v3, device), T(b, device)))[1],
         TAF.hvp(s, (Xt, Yt), (torch.tensor(v3), torch.tensor(b)))[1]),
    ]
    for ours, theirs in cases:
        for u, w in zip(ours, theirs):
            close(u, w.numpy())
    J = AF.jacobian(lambda x: x.exp(), X)                  # Tensor in -> Tensor out
    assert isinstance(J, xbp.Tensor)
    close(J, np.diag(np.exp(a)))


def test_autograd_functional_create_graph_and_strict(device):
    a = np.array([0.3, -0.8, 1.4])
    x = T(a, device, requires_grad=True)
    _, g = AF.vjp(lambda t: (t ** 3).sum(), x)
    assert not g.requires_grad                             # create_graph=False: detached
    _, g = AF.vjp(lambda t: (t ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    g.sum().backward()
    close(x.grad, 6 * a)
    assert gradcheck(lambda t: AF.jacobian(lambda u: u.sin() * u, t, create_graph=True), (T(a, device, True),))
    y = T([1.0, 2.0, 3.0], device)
    J = AF.jacobian(lambda t, u: t * 2, (T(a, device), y))
    close(J[1], np.zeros((3, 3)))
    with pytest.raises(RuntimeError, match="strict=True.*independent of input 1"):
        AF.jacobian(lambda t, u: t * 2, (T(a, device), y), strict=True)
    with pytest.raises(RuntimeError, match="strict=True.*independent of input 1"):
        AF.vjp(lambda t, u: (t * 2).sum(), (T(a, device), y), strict=True)
    with pytest.raises(RuntimeError, match="may be None only"):
        AF.vjp(lambda t: t * 2, T(a, device))


# ----------------------------------------------------------------------------------------------
# inference_mode and grad-mode decorators
# ----------------------------------------------------------------------------------------------
def test_inference_mode_context_and_decorators(device):
    x, _ = rand((2,), device)
    assert not xbp.is_inference_mode_enabled()
    with xbp.inference_mode():
        y = x * 2
        assert xbp.is_inference_mode_enabled() and not xbp.is_grad_enabled()
        with xbp.inference_mode(False):
            assert xbp.is_grad_enabled() and not xbp.is_inference_mode_enabled()
            assert (x * 2).requires_grad
        assert xbp.is_inference_mode_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert xbp.is_grad_enabled() and not xbp.is_inference_mode_enabled()

    @xbp.inference_mode
    def bare(t):
        return t * 3, xbp.is_inference_mode_enabled()

    @xbp.inference_mode()
    def called(t):
        return t * 3

    out, flag = bare(x)
    assert flag and not out.requires_grad and not called(x).requires_grad
    assert xbp.autograd.inference_mode is xbp.inference_mode
    seen = []
    with xbp.inference_mode():
        th = threading.Thread(target=lambda: seen.append(xbp.is_inference_mode_enabled()))
        th.start()
        th.join()
    assert seen == [False]                     # per thread, like grad mode


def test_grad_mode_decorators(device):
    x, _ = rand((2,), device)

    @xbp.no_grad()
    def f1(t):
        return t * 2

    @xbp.no_grad
    def f2(t):
        return t * 2

    @xbp.set_grad_enabled(False)
    def f3(t):
        return t * 2

    assert xbp.is_grad_enabled()
    assert not f1(x).requires_grad and not f2(x).requires_grad and not f3(x).requires_grad
    with xbp.no_grad():
        @xbp.enable_grad()
        def f4(t):
            return t * 2
        assert f4(x).requires_grad


def test_public_import_paths():
    import importlib
    assert importlib.import_module("xbp.autograd.functional").jacobian is AF.jacobian
    fmod = importlib.import_module("xbp.autograd.function")
    assert fmod.Function is xbp.autograd.Function and callable(fmod.once_differentiable)
    assert importlib.import_module("xbp.func") is xbp.func
    for name in ("vjp", "jvp", "jacrev", "jacfwd", "hessian", "grad", "grad_and_value", "vmap",
                 "functional_call"):
        assert callable(getattr(xbp.func, name)), name
    for name in ("jacobian", "hessian", "hvp", "vhp", "vjp", "jvp"):
        assert callable(getattr(xbp.autograd.functional, name)), name


def test_linearize_matches_jvp_and_torch(device):
    torch = pytest.importorskip("torch")
    a = np.array([0.3, -0.8, 1.4])
    t1, t2 = np.array([1.0, 0.0, -1.0]), np.array([0.5, 2.0, 0.25])

    def f(x):
        return (x * x).sin() * x
    out, jvp_fn = F.linearize(f, T(a, device))
    out_t, jvp_t = torch.func.linearize(f, torch.tensor(a))
    close(out, out_t.numpy())
    for t in (t1, t2):                          # one backward per call, same graph
        close(jvp_fn(T(t, device)), jvp_t(torch.tensor(t)).numpy())
    close(jvp_fn(T(t1, device)), (np.cos(a * a) * 2 * a * a + np.sin(a * a)) * t1)   # closed form


def test_stack_module_state_ensemble_with_vmap_matches_torch(device):
    torch = pytest.importorskip("torch")
    xbp.manual_seed(0)
    models = [xbp.nn.Linear(3, 2).to(device).double() for _ in range(3)]
    params, buffers = F.stack_module_state(models)
    assert params["weight"].shape == (3, 2, 3) and params["weight"].requires_grad and buffers == {}
    x_np = np.array([[1.0, -1.0, 2.0], [0.5, 0.5, 0.5]])
    base = models[0]
    out = F.vmap(lambda p, b, x: F.functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))(
        params, buffers, T(x_np, device))
    tms = []
    for m in models:
        tm = torch.nn.Linear(3, 2).double()
        with torch.no_grad():
            tm.weight.copy_(torch.tensor(to_np(m.weight)))
            tm.bias.copy_(torch.tensor(to_np(m.bias)))
        tms.append(tm)
    tp, tb = torch.func.stack_module_state(tms)
    out_t = torch.func.vmap(lambda p, b, x: torch.func.functional_call(tms[0], (p, b), (x,)),
                            in_dims=(0, 0, None))(tp, tb, torch.tensor(x_np))
    close(out, out_t.detach().numpy())
    out.sum().backward()                       # gradients reach the stacked parameters
    close(params["bias"].grad, np.full((3, 2), 2.0))
    with pytest.raises(NotImplementedError, match="randomness='same'"):
        F.vmap(lambda t: t, randomness="same")


def test_hessians_are_differentiable_again(device):
    """Third derivatives through both hessians, against finite differences."""
    a = np.array([0.3, -0.8, 1.1])
    quartic = lambda u: (u ** 4 * u.sin()).sum()             # noqa: E731
    assert gradcheck(lambda t: AF.hessian(quartic, t, create_graph=True), (T(a, device, True),))
    assert gradcheck(lambda t: F.hessian(quartic)(t), (T(a, device, True),))
    H = AF.hessian(quartic, T(a, device, True))
    assert not H.requires_grad                              # create_graph=False: detached
