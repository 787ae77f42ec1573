"""ConstantLR, PolynomialLR, CosineAnnealingWarmRestarts, CyclicLR, SequentialLR and
ChainedScheduler: lr (and momentum) sequences equal to PyTorch 2.13's and to closed forms written
here, state dicts that resume mid-schedule (through xbp.save/xbp.load), and validation."""
import math
import warnings

import numpy as np
import pytest

import xbp
from xbp import optim
from xbp.optim import lr_scheduler as S

BASE = [0.1, 0.04]
EPOCHS = 30

# each maker takes the scheduler module (xbp's or torch's) and an optimizer: the same code for both
MAKERS = {
    "ConstantLR": lambda M, o: M.ConstantLR(o, factor=0.25, total_iters=4),
    "ConstantLR-0": lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=0),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, total_iters=12, power=2.0),
    "PolynomialLR-linear": lambda M, o: M.PolynomialLR(o, total_iters=7),
    "CAWR": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=0.001),
    "CAWR-mult": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.0),
    "CyclicLR-triangular": lambda M, o: M.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.05], step_size_up=4),
    "CyclicLR-triangular2": lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=5, mode="triangular2"),
    "CyclicLR-exp_range": lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=4, mode="exp_range", gamma=0.95,
                                                  base_momentum=0.7, max_momentum=0.95),
    "CyclicLR-scale_fn": lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=lambda x: 0.5 ** x,
                                                 scale_mode="iterations", cycle_momentum=False),
    "SequentialLR": lambda M, o: M.SequentialLR(o, [M.LinearLR(o, start_factor=0.1, total_iters=4),
                                                    M.CosineAnnealingLR(o, T_max=10),
                                                    M.ExponentialLR(o, gamma=0.9)], milestones=[5, 15]),
    "SequentialLR-cawr": lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, factor=0.5, total_iters=3),
                                                         M.CosineAnnealingWarmRestarts(o, T_0=4)], milestones=[6]),
    "ChainedScheduler": lambda M, o: M.ChainedScheduler([M.ConstantLR(o, factor=0.5, total_iters=5),
                                                         M.ExponentialLR(o, gamma=0.9)]),
    "ChainedScheduler-opt": lambda M, o: M.ChainedScheduler([M.StepLR(o, 3, gamma=0.5),
                                                             M.PolynomialLR(o, total_iters=20)], optimizer=o),
}


def _xbp_opt(cls=optim.SGD, **kw):
    return cls([{"params": [xbp.tensor([1.0], requires_grad=True)], "lr": lr} for lr in BASE], **kw)


def _sequence(sched, opt, epochs=EPOCHS):
    """lrs and momenta (momentum or beta1 per group) after construction and after each step."""
    def moms():
        return [g["betas"][0] if "betas" in g else g.get("momentum", 0.0) for g in opt.param_groups]
    lrs, ms = [sched.get_last_lr()], [moms()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr())
            ms.append(moms())
    return np.array(lrs, dtype=float), np.array(ms, dtype=float)


def _torch_sequence(torch, name, opt_name="SGD", **kw):
    o = getattr(torch.optim, opt_name)([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr}
                                        for lr in BASE], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = MAKERS[name](torch.optim.lr_scheduler, o)
    return _sequence(s, o)


@pytest.mark.parametrize("opt_name,kw", [("SGD", dict(momentum=0.9)), ("Adam", {})])
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_sequences_equal_torch(name, opt_name, kw):
    torch = pytest.importorskip("torch")
    opt = _xbp_opt(getattr(optim, opt_name), **kw)
    got_lr, got_m = _sequence(MAKERS[name](S, opt), opt)
    want_lr, want_m = _torch_sequence(torch, name, opt_name, **kw)
    np.testing.assert_allclose(got_lr, want_lr, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(got_m, want_m, rtol=1e-13, atol=1e-16)


def _closed(f):
    return np.array([[f(b, e) for b in BASE] for e in range(EPOCHS + 1)])


def _cos(b, lo, t, T):
    return lo + (b - lo) * (1 + math.cos(math.pi * t / T)) / 2


def _cawr_mult(b, e, T0=3, mult=2):
    T = T0
    while e >= T:
        e, T = e - T, T * mult
    return _cos(b, 0.0, e, T)


def _triangle(b_lr, m_lr, e, up, down, scale=1.0):
    e = e % (up + down)
    frac = e / up if e <= up else 1 - (e - up) / down
    return b_lr + (m_lr - b_lr) * frac * scale


CLOSED = {
    "ConstantLR": lambda b, e: b * (0.25 if e < 4 else 1.0),
    "PolynomialLR": lambda b, e: b * (1 - min(e, 12) / 12) ** 2,
    "CAWR": lambda b, e: _cos(b, 0.001, e % 5, 5),
    "CAWR-mult": _cawr_mult,
    "CyclicLR-triangular2": lambda b, e: _triangle(0.01, 0.1, e, 3, 5, 0.5 ** (e // 8)),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_sequences_equal_closed_forms(name):
    opt = _xbp_opt()
    got, _ = _sequence(MAKERS[name](S, opt), opt)
    np.testing.assert_allclose(got, _closed(CLOSED[name]), rtol=1e-12, atol=1e-15)


def test_cyclic_lr_triangle_and_momentum_written_out():
    opt = _xbp_opt(momentum=0.9)
    got, moms = _sequence(MAKERS["CyclicLR-triangular"](S, opt), opt)
    for e in range(EPOCHS + 1):
        want = [_triangle(0.01, m, e, 4, 4) for m in (0.1, 0.05)]
        np.testing.assert_allclose(got[e], want, rtol=1e-12)
        frac = (want[0] - 0.01) / 0.09
        np.testing.assert_allclose(moms[e], 0.9 - 0.1 * frac, rtol=1e-12)


def test_sequential_lr_switches_at_the_milestones():
    opt = _xbp_opt()
    got, _ = _sequence(MAKERS["SequentialLR"](S, opt), opt)
    for e in range(EPOCHS + 1):
        for b, lr in zip(BASE, got[e]):
            if e < 5:
                want = b * (0.1 + 0.9 * min(e, 4) / 4)
            elif e < 15:
                want = _cos(b, 0.0, e - 5, 10)
            else:
                want = b * 0.9 ** (e - 15)
            assert lr == pytest.approx(want, rel=1e-12, abs=1e-15), (e, lr, want)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_state_dict_resumes_mid_schedule(name, tmp_path):
    pytest.importorskip("safetensors")
    opt = _xbp_opt(momentum=0.9)
    straight, straight_m = _sequence(MAKERS[name](S, opt), opt)
    opt = _xbp_opt(momentum=0.9)
    sched = MAKERS[name](S, opt)
    first, _ = _sequence(sched, opt, epochs=11)
    xbp.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "s.safetensors")
    ck = xbp.load(tmp_path / "s.safetensors")
    opt2 = _xbp_opt(momentum=0.9)
    sched2 = MAKERS[name](S, opt2)
    opt2.load_state_dict(ck["optimizer"])
    sched2.load_state_dict(ck["scheduler"])
    rest, rest_m = _sequence(sched2, opt2, epochs=EPOCHS - 11)
    np.testing.assert_array_equal(rest, straight[11:])
    np.testing.assert_array_equal(rest_m, straight_m[11:])


def test_warm_restarts_fractional_epochs_match_torch():
    torch = pytest.importorskip("torch")
    epochs = [0, 0.5, 1.25, 2.0, 3.7, 9.0, 10.5, 21.0, 44.9]
    o = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ts = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01)
    opt = optim.SGD([xbp.zeros(1, requires_grad=True)], lr=0.1)
    xs = S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in epochs:
            o.step()
            ts.step(e)
            xs.step(e)
            assert xs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13)


def _one():
    return _xbp_opt()


@pytest.mark.parametrize("make,match", [
    (lambda o: S.ConstantLR(o, factor=math.nan), "factor must be a finite number"),
    (lambda o: S.ConstantLR(o, factor=1.5), r"factor must be in \(0, 1\]"),
    (lambda o: S.ConstantLR(o, factor=0.0), "factor must be a finite number > 0"),
    (lambda o: S.ConstantLR(o, total_iters=-1), "total_iters must be >= 0"),
    (lambda o: S.PolynomialLR(o, total_iters=0), "total_iters must be >= 1"),
    (lambda o: S.PolynomialLR(o, power=math.inf), "power must be a finite number"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=0), "T_0 must be >= 1"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2.5), "T_0 must be an integer"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), "T_mult must be >= 1"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, eta_min=math.nan), "eta_min must be a finite number"),
    (lambda o: S.CyclicLR(o, 0.01, math.inf), "max_lr must be a finite number"),
    (lambda o: S.CyclicLR(o, math.nan, 0.1), "base_lr must be a finite number"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=0), "step_size_up must be a finite number > 0"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, mode="sawtooth"), "mode 'sawtooth' is invalid"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, mode="exp_range", gamma=math.nan), "gamma must be a finite number"),
    (lambda o: S.CyclicLR(o, 0.01, [0.1, 0.2, 0.3]), "max_lr must have 2 values"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, base_momentum=math.nan), "base_momentum must be a finite number"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)], milestones=[3]), "one milestone fewer"),
    (lambda o: S.SequentialLR(o, [], milestones=[]), "at least one scheduler"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(_one(), 2)], milestones=[3]), "same optimizer"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.ReduceLROnPlateau(o)], milestones=[3]), "ReduceLROnPlateau"),
    (lambda o: S.ChainedScheduler([]), "at least one scheduler"),
    (lambda o: S.ChainedScheduler([S.StepLR(o, 2), S.StepLR(_one(), 2)]), "same optimizer"),
])
def test_validation(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(_one())


def test_cyclic_lr_needs_momentum_to_cycle_it():
    opt = optim.Adagrad([xbp.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.CyclicLR(opt, 0.01, 0.1)
    S.CyclicLR(opt, 0.01, 0.1, cycle_momentum=False)
