"""Optimizers: trajectories against the formulas written out in NumPy here and against PyTorch,
dtype preservation, in-place updates, param groups, validation, state dicts."""
import math

import numpy as np
import pytest

import xbp
from xbp._backend import get_backend
from xbp import optim
from conftest import to_np

# the objective: loss = sum(c * p**2) + sum(d * p), so grad = 2 c p + d (known in closed form)
SHAPES = [(3, 4), (5,)]
STEPS = 6


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    p0 = [rng.normal(size=s) for s in SHAPES]
    c = [rng.uniform(0.5, 2.0, size=s) for s in SHAPES]
    d = [rng.normal(size=s) for s in SHAPES]
    return p0, c, d


def _run_xbp(cls, kw, device, dtype=np.float64, steps=STEPS, seed=0):
    p0, c, d = _problem(seed)
    ps = [xbp.tensor(a.astype(dtype), device=device, requires_grad=True) for a in p0]
    cs = [xbp.tensor(a.astype(dtype), device=device) for a in c]
    ds = [xbp.tensor(a.astype(dtype), device=device) for a in d]
    opt = cls(ps, **kw)
    for _ in range(steps):
        opt.zero_grad()
        loss = sum((ci * p * p).sum() + (di * p).sum() for p, ci, di in zip(ps, cs, ds))
        loss.backward()
        opt.step()
    return [to_np(p) for p in ps], opt, ps


# --- the formulas, written out independently (textbook forms, float64) ------------------------------
def _ref_sgd(p, g, st, t, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    if maximize:
        g = -g
    g = g + weight_decay * p
    if momentum:
        st["b"] = g.copy() if t == 1 else momentum * st["b"] + (1 - dampening) * g
        g = g + momentum * st["b"] if nesterov else st["b"]
    return p - lr * g


def _ref_adam(p, g, st, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              maximize=False, decoupled=False):
    b1, b2 = betas
    if maximize:
        g = -g
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
    v = st["v"]
    if amsgrad:
        st["vmax"] = np.maximum(st.get("vmax", 0.0), v)
        v = st["vmax"]
    m_hat = st["m"] / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def _ref_adamw(p, g, st, t, weight_decay=1e-2, **kw):
    return _ref_adam(p, g, st, t, weight_decay=weight_decay, decoupled=True, **kw)


def _ref_rmsprop(p, g, st, t, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
    if maximize:
        g = -g
    g = g + weight_decay * p
    st["sq"] = alpha * st.get("sq", 0.0) + (1 - alpha) * g * g
    if centered:
        st["ga"] = alpha * st.get("ga", 0.0) + (1 - alpha) * g
        avg = np.sqrt(st["sq"] - st["ga"] ** 2) + eps
    else:
        avg = np.sqrt(st["sq"]) + eps
    if momentum > 0:
        st["b"] = momentum * st.get("b", 0.0) + g / avg
        return p - lr * st["b"]
    return p - lr * g / avg


def _ref_adagrad(p, g, st, t, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, maximize=False):
    if maximize:
        g = -g
    g = g + weight_decay * p
    st["s"] = st.get("s", initial_accumulator_value) + g * g
    clr = lr / (1 + (t - 1) * lr_decay)
    return p - clr * g / (np.sqrt(st["s"]) + eps)


def _run_ref(ref, kw, steps=STEPS, seed=0):
    p0, c, d = _problem(seed)
    ps = [a.copy() for a in p0]
    states = [{} for _ in ps]
    for t in range(1, steps + 1):
        ps = [ref(p, 2 * ci * p + di, st, t, **kw) for p, ci, di, st in zip(ps, c, d, states)]
    return ps


CASES = [
    (optim.SGD, "SGD", _ref_sgd, dict(lr=0.1)),
    (optim.SGD, "SGD", _ref_sgd, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, "SGD", _ref_sgd, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    (optim.SGD, "SGD", _ref_sgd, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (optim.SGD, "SGD", _ref_sgd, dict(lr=0.05, weight_decay=0.2, maximize=True)),
    (optim.SGD, "SGD", _ref_sgd, dict(lr=0.05, momentum=0.5, weight_decay=0.1, maximize=True)),
    (optim.Adam, "Adam", _ref_adam, dict(lr=0.1)),
    (optim.Adam, "Adam", _ref_adam, dict(lr=0.1, betas=(0.8, 0.99), amsgrad=True)),
    (optim.Adam, "Adam", _ref_adam, dict(lr=0.1, weight_decay=0.1, eps=1e-6)),
    (optim.Adam, "Adam", _ref_adam, dict(lr=0.1, amsgrad=True, weight_decay=0.1, maximize=True)),
    (optim.AdamW, "AdamW", _ref_adamw, dict(lr=0.1)),
    (optim.AdamW, "AdamW", _ref_adamw, dict(lr=0.1, weight_decay=0.3, amsgrad=True)),
    (optim.AdamW, "AdamW", _ref_adamw, dict(lr=0.1, weight_decay=0.1, maximize=True)),
    (optim.RMSprop, "RMSprop", _ref_rmsprop, dict(lr=0.01)),
    (optim.RMSprop, "RMSprop", _ref_rmsprop, dict(lr=0.01, alpha=0.9, centered=True)),
    (optim.RMSprop, "RMSprop", _ref_rmsprop, dict(lr=0.01, momentum=0.7)),
    (optim.RMSprop, "RMSprop", _ref_rmsprop, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1, eps=1e-4)),
    (optim.RMSprop, "RMSprop", _ref_rmsprop, dict(lr=0.01, maximize=True)),
    (optim.Adagrad, "Adagrad", _ref_adagrad, dict(lr=0.1)),
    (optim.Adagrad, "Adagrad", _ref_adagrad, dict(lr=0.1, lr_decay=0.05)),
    (optim.Adagrad, "Adagrad", _ref_adagrad, dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.2)),
    (optim.Adagrad, "Adagrad", _ref_adagrad, dict(lr=0.1, eps=1e-3, maximize=True)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for _, name, _, kw in CASES]


@pytest.mark.parametrize("cls,name,ref,kw", CASES, ids=IDS)
def test_matches_numpy_formulas(cls, name, ref, kw, device):
    got, _, _ = _run_xbp(cls, kw, device, steps=STEPS if device == "cpu" else 3)
    want = _run_ref(ref, kw, steps=STEPS if device == "cpu" else 3)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,name,ref,kw", CASES, ids=IDS)
def test_matches_torch(cls, name, ref, kw):
    torch = pytest.importorskip("torch")
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        got, _, ps = _run_xbp(cls, kw, "cpu", dtype=dtype)
        p0, c, d = _problem()
        tps = [torch.tensor(a.astype(dtype), requires_grad=True) for a in p0]
        tc = [torch.tensor(a.astype(dtype)) for a in c]
        td = [torch.tensor(a.astype(dtype)) for a in d]
        topt = getattr(torch.optim, name)(tps, **kw)
        for _ in range(STEPS):
            topt.zero_grad()
            sum((ci * p * p).sum() + (di * p).sum() for p, ci, di in zip(tps, tc, td)).backward()
            topt.step()
        for g, t, p in zip(got, tps, ps):
            assert p.dtype == dtype
            np.testing.assert_allclose(g, t.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad])
def test_float32_stays_float32_with_numpy_scalar_hyperparameters(cls, device):
    p = xbp.tensor(np.ones((2, 3), np.float32), device=device, requires_grad=True)
    kw = dict(lr=np.float64(0.1), weight_decay=np.float64(0.01))
    if cls is optim.SGD:
        kw["momentum"] = np.float64(0.9)
    opt = cls([p], **kw)
    for _ in range(2):
        p.grad = xbp.tensor(np.full((2, 3), 0.5, np.float32), device=device)
        opt.step()
    assert p.dtype == np.float32 and p.array.dtype == p.xp.dtype(np.dtype("float32"))
    assert type(opt.param_groups[0]["lr"]) is float
    for v in opt.state[p].values():
        if isinstance(v, xbp.Tensor):
            assert v.dtype == np.float32 and v.device == p.device


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.RMSprop, optim.Adagrad])
def test_updates_in_place_and_bumps_version(cls, device):
    p = xbp.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    view = p.detach()                     # shares the array and the version counter
    arr, v0 = p.array, p._version[0]
    opt = cls([p], lr=0.1, **({"momentum": 0.9} if cls is optim.SGD else {}))
    p.grad = xbp.tensor([1.0, 1.0, 1.0], device=device)
    opt.step()
    assert p.array is arr
    assert p._version[0] == v0 + 1
    np.testing.assert_allclose(to_np(view), to_np(p))
    assert not np.allclose(to_np(p), [1.0, 2.0, 3.0])


def test_step_does_not_touch_the_gradient_array(device):
    p = xbp.tensor([1.0, -2.0], device=device, requires_grad=True)
    q = xbp.tensor([3.0, 4.0], device=device, requires_grad=True)
    g = xbp.tensor([0.5, 0.5], device=device)
    p.grad, q.grad = g, g                  # shared gradient array
    opt = optim.SGD([p, q], lr=1.0, momentum=0.9, weight_decay=0.1, maximize=True)
    opt.step()
    opt.step()
    np.testing.assert_array_equal(to_np(g), [0.5, 0.5])


def test_params_without_grad_are_skipped(device):
    p = xbp.tensor([1.0, 2.0], device=device, requires_grad=True)
    q = xbp.tensor([3.0], device=device, requires_grad=True)
    opt = optim.Adam([p, q], lr=0.1)
    p.grad = xbp.tensor([1.0, 1.0], device=device)
    opt.step()
    np.testing.assert_array_equal(to_np(q), [3.0])
    assert q not in opt.state and opt.state[p]["step"] == 1


def test_param_groups_have_their_own_hyperparameters():
    a = xbp.tensor([1.0], requires_grad=True)
    b = xbp.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.0
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    a.grad = xbp.tensor([1.0])
    b.grad = xbp.tensor([1.0])
    opt.step()
    np.testing.assert_allclose(to_np(a), [0.9])
    np.testing.assert_allclose(to_np(b), [0.5])
    c = xbp.tensor([2.0], requires_grad=True)
    opt.add_param_group({"params": c, "lr": 1.0})
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["momentum"] == 0.0
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_validation_errors():
    p = xbp.tensor([1.0], requires_grad=True)
    bad = [
        (optim.SGD, dict(lr=-0.1), "learning rate"),
        (optim.SGD, dict(lr=0.1, momentum=-0.5), "momentum"),
        (optim.SGD, dict(lr=0.1, weight_decay=-1.0), "weight_decay"),
        (optim.SGD, dict(lr=0.1, nesterov=True), "Nesterov"),
        (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
        (optim.Adam, dict(lr=-1.0), "learning rate"),
        (optim.Adam, dict(betas=(1.0, 0.999)), "beta parameter at index 0"),
        (optim.Adam, dict(betas=(0.9, -0.1)), "beta parameter at index 1"),
        (optim.Adam, dict(betas=(0.9,)), "betas"),
        (optim.AdamW, dict(eps=-1e-8), "epsilon"),
        (optim.AdamW, dict(weight_decay=-0.1), "weight_decay"),
        (optim.RMSprop, dict(alpha=-0.1), "alpha"),
        (optim.RMSprop, dict(eps=-1.0), "epsilon"),
        (optim.RMSprop, dict(momentum=-1.0), "momentum"),
        (optim.Adagrad, dict(lr_decay=-1.0), "lr_decay"),
        (optim.Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
        (optim.Adagrad, dict(eps=-1.0), "epsilon"),
    ]
    for cls, kw, msg in bad:
        with pytest.raises(ValueError, match=msg):
            cls([p], **kw)
    opt = optim.Adam([p])
    with pytest.raises(ValueError, match="learning rate"):       # per-group values are checked too
        opt.add_param_group({"params": [xbp.tensor([1.0], requires_grad=True)], "lr": -1.0})
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)


def test_zero_grad(device):
    p = xbp.tensor([1.0, 2.0], device=device, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    g = xbp.tensor([3.0, 4.0], device=device)
    p.grad = g
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(to_np(p.grad), [0.0, 0.0])
    assert p.grad.device == p.device
    np.testing.assert_array_equal(to_np(g), [3.0, 4.0])    # a new array: the old one may be shared
    opt.zero_grad()
    assert p.grad is None


def test_step_with_closure():
    p = xbp.tensor([2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with xbp.no_grad():                  # the closure records a graph even under no_grad
        loss = opt.step(closure)
    assert float(loss) == 4.0
    np.testing.assert_allclose(to_np(p), [1.0])            # 2 - 0.25 * 4


def test_state_dict_layout_and_resume(device):
    kw = dict(lr=0.05, amsgrad=True, weight_decay=0.1)
    full, _, _ = _run_xbp(optim.Adam, kw, device, steps=4)
    half, opt, ps = _run_xbp(optim.Adam, kw, device, steps=2)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999) and sd["param_groups"][0]["lr"] == 0.05
    assert sorted(sd["state"]) == [0, 1]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert sd["state"][0]["step"] == 2
    # a fresh optimizer on fresh parameters (holding the same values) continues identically
    p0, c, d = _problem()
    qs = [xbp.tensor(to_np(p), device=device, requires_grad=True) for p in ps]
    opt2 = optim.Adam(qs, lr=1.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.05 and opt2.param_groups[0]["params"][0] is qs[0]
    assert opt2.state[qs[0]]["exp_avg"].array is not opt.state[ps[0]]["exp_avg"].array   # copied
    cs = [xbp.tensor(a, device=device) for a in c]
    ds = [xbp.tensor(a, device=device) for a in d]
    for _ in range(2):
        opt2.zero_grad()
        sum((ci * q * q).sum() + (di * q).sum() for q, ci, di in zip(qs, cs, ds)).backward()
        opt2.step()
    for q, f in zip(qs, full):
        np.testing.assert_allclose(to_np(q), f, rtol=1e-12)


def test_load_state_dict_moves_state_to_the_parameters_device(device):
    _, opt, ps = _run_xbp(optim.SGD, dict(lr=0.1, momentum=0.9), "cpu", steps=2)
    sd = opt.state_dict()
    qs = [xbp.tensor(to_np(p), device=device, dtype=xbp.float32, requires_grad=True) for p in ps]
    opt2 = optim.SGD(qs, lr=0.1, momentum=0.9)
    opt2.load_state_dict(sd)
    buf = opt2.state[qs[0]]["momentum_buffer"]
    assert buf.device == get_backend(device).device and buf.dtype == np.float32
    np.testing.assert_allclose(to_np(buf), to_np(opt.state[ps[0]]["momentum_buffer"]), rtol=1e-6)


def test_load_state_dict_mismatch_errors():
    _, opt, ps = _run_xbp(optim.Adam, {}, "cpu", steps=1)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="parameter group"):
        optim.Adam([{"params": [ps[0]]}, {"params": [ps[1]]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="has 2 parameter"):
        optim.Adam([ps[0]]).load_state_dict(sd)
    wrong = [xbp.tensor(np.zeros((4, 3)), requires_grad=True), xbp.tensor(np.zeros(5), requires_grad=True)]
    with pytest.raises(ValueError, match="shape"):
        optim.Adam(wrong).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        optim.Adam(ps).load_state_dict({"weight": 1})


def test_adagrad_state_exists_before_the_first_step():
    p = xbp.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adagrad([p], initial_accumulator_value=0.5)
    assert opt.state[p]["step"] == 0
    np.testing.assert_array_equal(to_np(opt.state[p]["sum"]), [0.5, 0.5])


def test_repr_lists_groups():
    opt = optim.SGD([xbp.tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
    r = repr(opt)
    assert r.startswith("SGD (") and "lr: 0.1" in r and "momentum: 0.9" in r


def test_update_functions_are_pure_array_functions():
    """The maths is a function of arrays (a fused kernel can replace it): call one directly."""
    xp = xbp.tensor([0.0]).xp
    p = np.array([1.0, 2.0])
    g = np.array([0.5, -0.5])
    buf = optim.sgd_update(xp, p, g, None, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(p, [0.95, 2.05])
    np.testing.assert_allclose(buf, g)
    m, v = np.zeros(2), np.zeros(2)
    optim.adam_update(xp, p, g, m, v, None, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=0.0)
    np.testing.assert_allclose(p, [0.85, 2.15])            # first Adam step moves by lr * sign(g)
    assert math.isclose(float(m[0]), 0.05)


# --- xbp.nn.utils: gradient clipping ------------------------------------------------------------------
from xbp.nn.utils import clip_grad_norm_, clip_grad_value_  # noqa: E402


def _grad_params(device, dtype=np.float64, scale=1.0):
    rng = np.random.default_rng(3)
    gs = [rng.normal(size=s).astype(dtype) * scale for s in [(3, 4), (5,), ()]]
    ps = []
    for g in gs:
        p = xbp.tensor(np.zeros(g.shape, dtype), device=device, requires_grad=True)
        p.grad = xbp.tensor(g, device=device)
        ps.append(p)
    return ps, gs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_formula(norm_type, max_norm, device):
    ps, gs = _grad_params(device)
    flat = np.concatenate([g.ravel() for g in gs])
    total = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    shared = [p.grad for p in ps]
    out = clip_grad_norm_(iter(ps), max_norm, norm_type)        # any iterable, as in PyTorch
    assert isinstance(out, xbp.Tensor) and out.shape == () and out.device == get_backend(device).device
    np.testing.assert_allclose(float(out), total, rtol=1e-12)
    coef = min(max_norm / (total + 1e-6), 1.0)
    for p, g, s in zip(ps, gs, shared):
        np.testing.assert_allclose(to_np(p.grad), g * coef, rtol=1e-12)
        np.testing.assert_array_equal(to_np(s), g)             # the old (maybe shared) array is untouched


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    for norm_type in (2.0, math.inf, 1.5):
        ps, gs = _grad_params("cpu", np.float32, scale=3.0)
        tps = [torch.zeros(g.shape, requires_grad=True) for g in gs]
        for t, g in zip(tps, gs):
            t.grad = torch.tensor(g)
        want = torch.nn.utils.clip_grad_norm_(tps, 1.0, norm_type)
        got = clip_grad_norm_(ps, 1.0, norm_type)
        assert got.dtype == np.float32
        np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
        for p, t in zip(ps, tps):
            assert p.grad.dtype == np.float32
            np.testing.assert_allclose(to_np(p.grad), t.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_edge_cases():
    p = xbp.tensor([1.0, 2.0], requires_grad=True)
    out = clip_grad_norm_([p], 1.0)                               # no gradients at all
    assert float(out) == 0.0 and p.grad is None
    p.grad = xbp.tensor([3.0, 4.0])
    out = clip_grad_norm_(p, 1.0)                                 # a single tensor
    np.testing.assert_allclose(float(out), 5.0)
    np.testing.assert_allclose(to_np(p.grad), [3.0 / (5 + 1e-6), 4.0 / (5 + 1e-6)])
    p.grad = xbp.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_([p], 1.0, norm_type=0)


def test_clip_grad_value(device):
    ps, gs = _grad_params(device, np.float32)
    shared = [p.grad for p in ps]
    clip_grad_value_(ps, 0.5)
    for p, g, s in zip(ps, gs, shared):
        assert p.grad.dtype == np.float32
        np.testing.assert_array_equal(to_np(p.grad), np.clip(g, -0.5, 0.5))
        np.testing.assert_array_equal(to_np(s), g)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(ps, -1.0)
    torch = pytest.importorskip("torch")
    t = torch.zeros(3, requires_grad=True)
    t.grad = torch.tensor([-2.0, 0.1, 3.0])
    torch.nn.utils.clip_grad_value_([t], 1.0)
    q = xbp.tensor([0.0, 0.0, 0.0], device=device, requires_grad=True)
    q.grad = xbp.tensor([-2.0, 0.1, 3.0], device=device)
    clip_grad_value_(q, 1.0)
    np.testing.assert_array_equal(to_np(q.grad), t.grad.numpy())
