"""Learning-rate schedulers: lr sequences against the closed forms written here and against
PyTorch; get_last_lr; state dicts (resume mid-schedule)."""
import math
import warnings
from bisect import bisect_right

import numpy as np
import pytest

import xbp
from xbp import optim
from xbp.optim import lr_scheduler as S

BASE = [0.1, 0.04]          # two param groups with different base lrs
EPOCHS = 25


def _opt(cls=optim.SGD, **kw):
    groups = [{"params": [xbp.tensor([1.0], requires_grad=True)], "lr": lr} for lr in BASE]
    return cls(groups, **kw)


def _lrs(sched, epochs=EPOCHS, metrics=None):
    """[lrs after construction, after step 1, ...] (one list per epoch); steps the optimizer first."""
    out = [sched.get_last_lr()]
    for e in range(epochs):
        sched.optimizer.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[e])
        out.append(sched.get_last_lr())
    return np.array(out)


def _closed(f, epochs=EPOCHS):
    return np.array([[f(b, e) for b in BASE] for e in range(epochs + 1)])


def _cos_at(b, e, lo, T):
    return lo + (b - lo) * (1 + math.cos(math.pi * e / T)) / 2


def _onecycle(b_max, step, total, pct=0.3, div=25.0, final_div=1e4, anneal="cos", lo_m=0.85, hi_m=0.95):
    init = b_max / div
    end1 = pct * total - 1
    ann = ((lambda s, e, p: e + (s - e) / 2 * (math.cos(math.pi * p) + 1)) if anneal == "cos"
           else (lambda s, e, p: (e - s) * p + s))
    if step <= end1:
        p = step / end1
        return ann(init, b_max, p), ann(hi_m, lo_m, p)
    p = (step - end1) / (total - 1 - end1)
    return ann(b_max, init / final_div, p), ann(lo_m, hi_m, p)


CASES = {
    "StepLR": (lambda o: S.StepLR(o, step_size=3, gamma=0.5),
               lambda b, e: b * 0.5 ** (e // 3)),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, milestones=[2, 7, 7, 15], gamma=0.3),
                    lambda b, e: b * 0.3 ** bisect_right([2, 7, 7, 15], e)),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, gamma=0.9),
                      lambda b, e: b * 0.9 ** e),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
                          lambda b, e: _cos_at(b, e, 0.001, 10)),
    "LambdaLR": (lambda o: S.LambdaLR(o, lambda e: 1.0 / (1 + e)),
                 lambda b, e: b / (1 + e)),
    "LinearLR": (lambda o: S.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=8),
                 lambda b, e: b * (0.25 + 0.5 * min(e, 8) / 8)),
}


def _torch_make(name):
    return {
        "StepLR": lambda T, o: T.StepLR(o, step_size=3, gamma=0.5),
        "MultiStepLR": lambda T, o: T.MultiStepLR(o, milestones=[2, 7, 7, 15], gamma=0.3),
        "ExponentialLR": lambda T, o: T.ExponentialLR(o, gamma=0.9),
        "CosineAnnealingLR": lambda T, o: T.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
        "LambdaLR": lambda T, o: T.LambdaLR(o, lambda e: 1.0 / (1 + e)),
        "LinearLR": lambda T, o: T.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=8),
    }[name]


def _torch_lrs(torch, make, epochs=EPOCHS, metrics=None, opt_cls="SGD", **kw):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in BASE]
    o = getattr(torch.optim, opt_cls)(groups, **kw)
    s = make(torch.optim.lr_scheduler, o)
    out = [s.get_last_lr()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in range(epochs):
            o.step()
            s.step() if metrics is None else s.step(metrics[e])
            out.append(s.get_last_lr())
    return np.array(out), o


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_closed_form(name):
    make, f = CASES[name]
    opt = _opt()
    got = _lrs(make(opt))
    np.testing.assert_allclose(got, _closed(f), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose([g["lr"] for g in opt.param_groups], got[-1])
    assert all(type(g["lr"]) is float for g in opt.param_groups)


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_torch(name):
    torch = pytest.importorskip("torch")
    want, _ = _torch_lrs(torch, _torch_make(name))
    np.testing.assert_allclose(_lrs(CASES[name][0](_opt())), want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR"])
def test_step_with_epoch_uses_the_closed_form(name):
    make, f = CASES[name]
    s = make(_opt())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.step(13)
    np.testing.assert_allclose(s.get_last_lr(), [f(b, 13) for b in BASE], rtol=1e-12)


def test_lambda_lr_one_function_per_group():
    opt = _opt()
    s = S.LambdaLR(opt, [lambda e: 0.5 ** e, lambda e: 1.0 + e])
    got = _lrs(s, 4)
    np.testing.assert_allclose(got[:, 0], [0.1 * 0.5 ** e for e in range(5)])
    np.testing.assert_allclose(got[:, 1], [0.04 * (1 + e) for e in range(5)])
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        S.LambdaLR(_opt(), [lambda e: 1.0])


@pytest.mark.parametrize("opt_cls,kw", [("SGD", dict(momentum=0.9)), ("Adam", {})])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle(opt_cls, kw, anneal):
    total = 20
    opt = _opt(getattr(optim, opt_cls), **kw)
    s = S.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=total, anneal_strategy=anneal)
    lrs, moms = [s.get_last_lr()], []

    def mom():
        return [g["momentum"] if opt_cls == "SGD" else g["betas"][0] for g in opt.param_groups]

    moms.append(mom())
    for _ in range(total - 1):
        opt.step()
        s.step()
        lrs.append(s.get_last_lr())
        moms.append(mom())
    want = [[_onecycle(m, st, total, anneal=anneal) for m in (1.0, 0.5)] for st in range(total)]
    np.testing.assert_allclose(lrs, [[w[0] for w in row] for row in want], rtol=1e-12)
    np.testing.assert_allclose(moms, [[w[1] for w in row] for row in want], rtol=1e-12)
    assert math.isclose(lrs[-1][0], 1.0 / 25 / 1e4)
    with pytest.raises(ValueError, match="Tried to step"):
        s.step()
        s.step()
    torch = pytest.importorskip("torch")
    want_t, _ = _torch_lrs(torch, lambda T, o: T.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=total,
                                                          anneal_strategy=anneal),
                           epochs=total - 1, opt_cls=opt_cls, **kw)
    np.testing.assert_allclose(lrs, want_t, rtol=1e-13)


def test_one_cycle_three_phase_and_epochs_matches_torch():
    torch = pytest.importorskip("torch")
    make = lambda T, o: T.OneCycleLR(o, max_lr=0.3, epochs=4, steps_per_epoch=5, pct_start=0.25,  # noqa: E731
                                     three_phase=True, div_factor=10.0, final_div_factor=100.0)
    got = _lrs(make(S, _opt(optim.SGD, momentum=0.9)), 19)
    want, _ = _torch_lrs(torch, make, epochs=19, momentum=0.9)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_one_cycle_validation():
    with pytest.raises(ValueError, match="total_steps OR"):
        S.OneCycleLR(_opt(momentum=0.9), max_lr=1.0)
    with pytest.raises(ValueError, match="pct_start"):
        S.OneCycleLR(_opt(momentum=0.9), max_lr=1.0, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        S.OneCycleLR(_opt(momentum=0.9), max_lr=1.0, total_steps=10, anneal_strategy="step")
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(_opt(optim.Adagrad), max_lr=1.0, total_steps=10)
    with pytest.raises(ValueError, match="max_lr must have 2 values"):
        S.OneCycleLR(_opt(momentum=0.9), max_lr=[1.0], total_steps=10)


METRICS = [1.0, 0.9, 0.9, 0.9, 0.95, 0.89, 0.89, 0.89, 0.89, 0.89, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]


def test_reduce_lr_on_plateau_hand_computed():
    opt = _opt()
    s = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=[0.0, 0.015], threshold=0.01)
    got = _lrs(s, len(METRICS), METRICS)
    # best 1.0 -> 0.9 (epoch 2); 3 bad epochs (0.9, 0.9, 0.95 are not 1% better) -> halve at epoch 5;
    # 0.89 at 6 is a new best (cooldown ends); 7, 8, 9 bad -> halve at 9; cooldown swallows 10's
    # count; 0.5 new best at 11; 12, 13, 14 bad -> halve at 14 (group 2 is held at min_lr 0.015).
    f = np.ones(len(METRICS) + 1)
    f[5:] *= 0.5
    f[9:] *= 0.5
    f[14:] *= 0.5
    want0 = 0.1 * f
    want1 = np.maximum(0.04 * f, 0.015)
    np.testing.assert_allclose(got[:, 0], want0)
    np.testing.assert_allclose(got[:, 1], want1)


@pytest.mark.parametrize("kw", [dict(factor=0.5, patience=2, cooldown=1, min_lr=[0.0, 0.015], threshold=0.01),
                                dict(mode="max", factor=0.2, patience=1, threshold_mode="abs", threshold=0.05),
                                dict(patience=0, eps=0.05)])
def test_reduce_lr_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    got = _lrs(S.ReduceLROnPlateau(_opt(), **kw), len(METRICS), METRICS)
    want, _ = _torch_lrs(torch, lambda T, o: T.ReduceLROnPlateau(o, **kw), len(METRICS), METRICS)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_reduce_lr_on_plateau_validation_and_tensor_metric():
    with pytest.raises(ValueError, match="Factor"):
        S.ReduceLROnPlateau(_opt(), factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        S.ReduceLROnPlateau(_opt(), mode="up")
    with pytest.raises(ValueError, match="threshold mode"):
        S.ReduceLROnPlateau(_opt(), threshold_mode="pct")
    s = S.ReduceLROnPlateau(_opt(), patience=0)
    s.step(xbp.tensor(2.0))
    s.step(xbp.tensor(3.0))
    assert s.get_last_lr() == pytest.approx([0.01, 0.004])


def _resume_check(make, n_before=7, n_after=9, metrics=None):
    straight = _lrs(make(_opt(momentum=0.9)), n_before + n_after, metrics)
    opt = _opt(momentum=0.9)
    s = make(opt)
    _lrs(s, n_before, metrics)
    osd, ssd = opt.state_dict(), s.state_dict()
    assert "optimizer" not in ssd
    opt2 = _opt(momentum=0.9)
    s2 = make(opt2)                          # PyTorch's order: build, then load both
    opt2.load_state_dict(osd)
    s2.load_state_dict(ssd)
    rest = _lrs(s2, n_after, None if metrics is None else metrics[n_before:])
    np.testing.assert_allclose(rest, straight[n_before:], rtol=1e-14)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_resume(name):
    _resume_check(CASES[name][0])


def test_state_dict_resume_one_cycle_and_plateau():
    _resume_check(lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=20))
    _resume_check(lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1), metrics=METRICS)


def test_multistep_state_dict_is_plain_data():
    s = S.MultiStepLR(_opt(), milestones=[3, 3, 5])
    sd = s.state_dict()
    assert type(sd["milestones"]) is dict and sd["milestones"] == {3: 2, 5: 1}
    s2 = S.MultiStepLR(_opt(), milestones=[1])
    s2.load_state_dict(sd)
    assert s2.milestones[3] == 2


def test_resume_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_opt(), step_size=2, last_epoch=3)
    opt = _opt()
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    for g, b in zip(opt.param_groups, BASE):
        g["lr"] = _cos_at(b, 4, 0.0, 10)
    got = _lrs(S.CosineAnnealingLR(opt, T_max=10, last_epoch=4), 3)
    np.testing.assert_allclose(got[0], [_cos_at(b, 4, 0.0, 10) for b in BASE])   # building leaves lrs alone
    torch = pytest.importorskip("torch")                 # and the rest follows PyTorch, quirks included

    def make(T, o):
        for g, b in zip(o.param_groups, BASE):
            g["initial_lr"], g["lr"] = g["lr"], _cos_at(b, 4, 0.0, 10)
        return T.CosineAnnealingLR(o, T_max=10, last_epoch=4)

    want, _ = _torch_lrs(torch, make, epochs=3)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_rejects_non_optimizer():
    with pytest.raises(TypeError, match="not an xbp Optimizer"):
        S.StepLR(object(), step_size=1)
