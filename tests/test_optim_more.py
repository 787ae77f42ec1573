"""NAdam, RAdam, Adamax, ASGD, Rprop and LBFGS: 20-step float64 trajectories equal to PyTorch
2.13's from the same initial weights, maximize, PyTorch's implementation keywords, validation,
and state dicts (through xbp.save/xbp.load) that resume the same trajectory."""
import math

import numpy as np
import pytest

import xbp
from xbp import optim
from conftest import to_np


def _dev(device):
    """The device a tensor made on `device` reports (\"cuda\" -> \"cuda:0\")."""
    return xbp._backend.get_backend(device).device

SHAPES = [(3, 4), (5,)]
STEPS = 20


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    return ([rng.normal(size=s) for s in SHAPES], [rng.uniform(0.5, 2.0, size=s) for s in SHAPES],
            [rng.normal(size=s) for s in SHAPES])


def _loss(ps, cs, ds, sign=1.0):
    # not a quadratic, so sign changes and curvature changes happen (Rprop, LBFGS); with
    # maximize=True the objective is negated, so the runs converge instead of overflowing
    return sign * sum((c * p * p).sum() + (d * p).sum() + 0.1 * (p * p * p * p).sum() for p, c, d in zip(ps, cs, ds))


def _xbp_setup(device, p0=None):
    a0, c, d = _problem()
    p0 = a0 if p0 is None else p0
    ps = [xbp.tensor(a, device=device, requires_grad=True) for a in p0]
    return ps, [xbp.tensor(a, device=device) for a in c], [xbp.tensor(a, device=device) for a in d]


def _run_xbp(cls, kw, device, steps, opt=None, setup=None):
    ps, cs, ds = setup or _xbp_setup(device)
    opt = opt or cls(ps, **kw)

    def closure():
        opt.zero_grad()
        loss = _loss(ps, cs, ds, -1.0 if kw.get("maximize") else 1.0)
        loss.backward()
        return loss
    for _ in range(steps):
        opt.step(closure)
    return [to_np(p) for p in ps], opt, ps


@pytest.fixture
def torch64():
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)    # PyTorch's 0-d scalar state (ASGD's eta) in float64 too
    yield torch
    torch.set_default_dtype(old)


def _run_torch(torch, name, kw, steps):
    p0, c, d = _problem()
    ps = [torch.tensor(a, requires_grad=True) for a in p0]
    cs, ds = [torch.tensor(a) for a in c], [torch.tensor(a) for a in d]
    opt = getattr(torch.optim, name)(ps, **kw)

    def closure():
        opt.zero_grad()
        loss = _loss(ps, cs, ds, -1.0 if kw.get("maximize") else 1.0)
        loss.backward()
        return loss
    for _ in range(steps):
        opt.step(closure)
    return [p.detach().numpy() for p in ps]


CASES = [
    ("NAdam", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, betas=(0.8, 0.99), momentum_decay=1e-2, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.05)),
    ("RAdam", dict(lr=0.05, betas=(0.7, 0.9), weight_decay=0.1)),            # rho_t > 5 after a few steps
    ("RAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1, maximize=True)),
    ("ASGD", dict(lr=0.05)),
    ("ASGD", dict(lr=0.05, lambd=1e-2, alpha=0.5, t0=5, weight_decay=0.1)),   # averaging starts at step 5
    ("ASGD", dict(lr=0.05, t0=3, maximize=True)),
    ("Rprop", dict(lr=0.05)),
    ("Rprop", dict(lr=0.1, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2))),
    ("Rprop", dict(lr=0.05, maximize=True)),
    ("LBFGS", dict(lr=0.5, max_iter=3)),
    ("LBFGS", dict(lr=1, max_iter=4, history_size=2, line_search_fn="strong_wolfe")),
    ("LBFGS", dict(lr=1, max_iter=20, max_eval=7, line_search_fn="strong_wolfe")),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_trajectory_equals_torch(name, kw, torch64):
    steps = 5 if name == "LBFGS" else STEPS
    got, _, _ = _run_xbp(getattr(optim, name), kw, "cpu", steps)
    want = _run_torch(torch64, name, kw, steps)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    start = _problem()[0]
    assert any(not np.allclose(g, s) for g, s in zip(got, start))     # it moved


@pytest.mark.parametrize("name,kw", CASES[::2], ids=IDS[::2])
def test_other_devices_follow_cpu(name, kw, device):
    steps = 2 if name == "LBFGS" else 4
    got, _, ps = _run_xbp(getattr(optim, name), kw, device, steps)
    want, _, _ = _run_xbp(getattr(optim, name), kw, "cpu", steps)
    for g, w, p in zip(got, want, ps):
        assert str(p.device) == str(_dev(device))
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_rprop_and_asgd_against_hand_written_numpy():
    # Rprop on f(p) = sum(c p^2 + d p + 0.1 p^4), the rules written out elementwise
    p0, c, d = _problem()
    p, prev, size = p0[1].copy(), np.zeros(5), np.full(5, 0.05)
    for _ in range(STEPS):
        g = 2 * c[1] * p + d[1] + 0.4 * p ** 3
        s = np.sign(g * prev)
        size = np.clip(size * np.where(s > 0, 1.2, np.where(s < 0, 0.5, 1.0)), 1e-6, 50)
        g = np.where(s < 0, 0.0, g)
        p = p - np.sign(g) * size
        prev = g
    got, _, _ = _run_xbp(optim.Rprop, dict(lr=0.05), "cpu", STEPS)
    np.testing.assert_allclose(got[1], p, rtol=1e-12)
    # ASGD with lambd=0 is plain SGD; ax averages the iterates: with PyTorch's mu = 1 / max(1, t - t0),
    # set after step t and used at step t + 1, and t0 = 0, it is the mean of iterates 2..t
    got, opt, ps = _run_xbp(optim.ASGD, dict(lr=0.05, lambd=0.0, t0=0), "cpu", 6)
    q, iters = p0[1].copy(), []
    for t in range(1, 7):
        q = q - 0.05 * (2 * c[1] * q + d[1] + 0.4 * q ** 3)
        iters.append(q)
    np.testing.assert_allclose(got[1], q, rtol=1e-12)
    np.testing.assert_allclose(to_np(opt.state[ps[1]]["ax"]), np.mean(iters[1:], axis=0), rtol=1e-12)


def test_lbfgs_minimises_rosenbrock():
    x = xbp.tensor([-1.5, 2.0], dtype=xbp.float64, requires_grad=True)
    opt = optim.LBFGS([x], lr=1, max_iter=100, line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                      tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(to_np(x), [1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_state_dict_round_trip_resumes_the_trajectory(name, kw, tmp_path):
    pytest.importorskip("safetensors")
    cls = getattr(optim, name)
    steps = 4 if name == "LBFGS" else 10
    full, _, _ = _run_xbp(cls, kw, "cpu", 2 * steps)
    half, opt, ps = _run_xbp(cls, kw, "cpu", steps)
    xbp.save({"optimizer": opt.state_dict(), "params": [p.detach() for p in ps]}, tmp_path / "o.safetensors")
    ck = xbp.load(tmp_path / "o.safetensors")
    setup = _xbp_setup("cpu", p0=[to_np(p) for p in ck["params"]])
    opt2 = cls(setup[0], **kw)
    opt2.load_state_dict(ck["optimizer"])
    again, _, _ = _run_xbp(cls, kw, "cpu", steps, opt=opt2, setup=setup)
    for a, b in zip(again, full):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax",
                                  "ASGD", "Rprop"])
def test_implementation_keywords_are_accepted(name):
    kw = dict(lr=0.1) if name == "SGD" else {}
    ref, _, _ = _run_xbp(getattr(optim, name), kw, "cpu", 3)
    got, opt, _ = _run_xbp(getattr(optim, name), dict(kw, foreach=True, fused=False, capturable=False), "cpu", 3)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert opt.param_groups[0]["foreach"] is True and opt.param_groups[0]["differentiable"] is False
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        getattr(optim, name)([xbp.zeros(2, requires_grad=True)], differentiable=True, **kw)
    with pytest.raises(TypeError, match="foreach must be True, False or None"):
        getattr(optim, name)([xbp.zeros(2, requires_grad=True)], foreach="yes", **kw)


@pytest.mark.parametrize("name", ["NAdam", "RAdam", "Adamax", "ASGD", "Rprop"])
def test_maximize_is_minimising_the_negation(name):
    ps, cs, ds = _xbp_setup("cpu")
    opt = getattr(optim, name)(ps, lr=0.05, maximize=True)
    for _ in range(5):
        opt.zero_grad()
        (-_loss(ps, cs, ds)).backward()
        opt.step()
    want, _, _ = _run_xbp(getattr(optim, name), dict(lr=0.05), "cpu", 5)
    for p, w in zip(ps, want):
        np.testing.assert_allclose(to_np(p), w, rtol=1e-12)


def _p():
    return [xbp.zeros(2, requires_grad=True)]


@pytest.mark.parametrize("make,match", [
    (lambda: optim.NAdam(_p(), lr=math.nan), "Invalid learning rate"),
    (lambda: optim.NAdam(_p(), lr=math.inf), "Invalid learning rate"),
    (lambda: optim.NAdam(_p(), momentum_decay=-1.0), "Invalid momentum_decay"),
    (lambda: optim.NAdam(_p(), momentum_decay=math.nan), "Invalid momentum_decay"),
    (lambda: optim.NAdam(_p(), betas=(1.0, 0.9)), "Invalid beta"),
    (lambda: optim.RAdam(_p(), eps=math.nan), "Invalid eps"),
    (lambda: optim.RAdam(_p(), betas=(0.9, math.nan)), "Invalid beta"),
    (lambda: optim.Adamax(_p(), weight_decay=-0.1), "Invalid weight_decay"),
    (lambda: optim.Adamax(_p(), eps=math.inf), "Invalid eps"),
    (lambda: optim.ASGD(_p(), lambd=math.nan), "Invalid lambd"),
    (lambda: optim.ASGD(_p(), alpha=math.inf), "Invalid alpha"),
    (lambda: optim.ASGD(_p(), t0=math.nan), "Invalid t0"),
    (lambda: optim.ASGD(_p(), lr=-1.0), "Invalid learning rate"),
    (lambda: optim.Rprop(_p(), etas=(1.5, 1.2)), "Invalid eta values"),
    (lambda: optim.Rprop(_p(), etas=(0.5, math.nan)), "Invalid eta values"),
    (lambda: optim.Rprop(_p(), etas=(0.5, math.inf)), "Invalid eta values"),
    (lambda: optim.Rprop(_p(), step_sizes=(1.0, 0.1)), "Invalid step_sizes"),
    (lambda: optim.Rprop(_p(), step_sizes=(math.nan, 1.0)), "Invalid step_sizes"),
    (lambda: optim.Rprop(_p(), etas=0.5), "etas must be a pair"),
    (lambda: optim.LBFGS(_p(), lr=math.nan), "Invalid learning rate"),
    (lambda: optim.LBFGS(_p(), max_iter=0), "Invalid max_iter"),
    (lambda: optim.LBFGS(_p(), history_size=2.5), "Invalid history_size"),
    (lambda: optim.LBFGS(_p(), tolerance_grad=math.inf), "Invalid tolerance_grad"),
    (lambda: optim.LBFGS(_p(), line_search_fn="armijo"), "line_search_fn"),
    (lambda: optim.LBFGS([{"params": _p()}, {"params": _p()}]), "parameter groups"),
])
def test_validation(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_lbfgs_needs_a_closure():
    opt = optim.LBFGS(_p())
    with pytest.raises(TypeError, match="LBFGS.step needs a closure"):
        opt.step()


def test_torch_validation_agrees_where_torch_refuses(torch64):
    torch = torch64
    for name, kw in [("NAdam", dict(momentum_decay=-1.0)), ("RAdam", dict(lr=-1.0)), ("Adamax", dict(eps=-1.0)),
                     ("ASGD", dict(weight_decay=-1.0)), ("Rprop", dict(etas=(1.5, 1.2)))]:
        with pytest.raises(ValueError):
            getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw)
        with pytest.raises(ValueError):
            getattr(optim, name)(_p(), **kw)


@pytest.mark.parametrize("name,kw", CASES[::2], ids=IDS[::2])
def test_a_torch_state_dict_continues_in_xbp(name, kw, torch64, tmp_path):
    """torch runs 2*n steps; xbp loads torch's state after n (through a torch.save file) and runs
    the other n: the same weights."""
    pytest.importorskip("safetensors")
    torch = torch64
    n = 2 if name == "LBFGS" else 6
    want = _run_torch(torch, name, kw, 2 * n)
    p0, c, d = _problem()
    tps = [torch.tensor(a, requires_grad=True) for a in p0]
    tcs, tds = [torch.tensor(a) for a in c], [torch.tensor(a) for a in d]
    topt = getattr(torch.optim, name)(tps, **kw)

    def tclosure():
        topt.zero_grad()
        loss = _loss(tps, tcs, tds, -1.0 if kw.get("maximize") else 1.0)
        loss.backward()
        return loss
    for _ in range(n):
        topt.step(tclosure)
    torch.save({"opt": topt.state_dict(), "params": [t.detach() for t in tps]}, tmp_path / "t.pt")
    ck = xbp.load(tmp_path / "t.pt")
    setup = _xbp_setup("cpu", p0=[to_np(t) for t in ck["params"]])
    opt = getattr(optim, name)(setup[0], **kw)
    opt.load_state_dict(ck["opt"])
    got, _, _ = _run_xbp(getattr(optim, name), kw, "cpu", n, opt=opt, setup=setup)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
