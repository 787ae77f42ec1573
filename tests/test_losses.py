"""Losses: values against NumPy written here (and PyTorch where installed), float64 gradchecks,
the fused cross-entropy's create_graph path, stability, and error messages."""
import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp.autograd import gradcheck, gradgradcheck

from conftest import raises_checked, rand, to_np


# --- NumPy references -------------------------------------------------------------------------------
def np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def np_cross_entropy(x, t, w=None, ignore_index=-100, eps=0.0, reduction="mean"):
    """PyTorch's definition, written out: class axis 1, smoothing term weighted by w, weighted
    mean divided by the summed weights of the non-ignored targets."""
    C = x.shape[1]
    logp = np.moveaxis(np_log_softmax(x, 1), 1, -1).reshape(-1, C)
    tl = t.reshape(-1)
    valid = tl != ignore_index
    ts = np.where(valid, tl, 0)
    wv = np.ones(C) if w is None else w
    nll = -logp[np.arange(len(tl)), ts] * wv[ts] * valid
    smooth = -(logp * wv).sum(1) * valid
    loss = (1 - eps) * nll + eps / C * smooth
    if reduction == "none":
        return loss.reshape(t.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (wv[ts] * valid).sum()


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def targets(shape, C, seed=1, ignore=None, ignore_index=-100):
    t = np.random.default_rng(seed).integers(0, C, size=shape)
    if ignore is not None:
        t.reshape(-1)[list(ignore)] = ignore_index
    return t


# --- cross entropy: values ----------------------------------------------------------------------------
CE_CASES = [
    # (input shape, kwargs, ignored flat positions)
    ((5, 4), {}, None),
    ((5, 4), {"reduction": "sum"}, None),
    ((5, 4), {"reduction": "none"}, None),
    ((5, 4), {"weight": True}, None),
    ((5, 4), {"label_smoothing": 0.2}, None),
    ((5, 4), {"ignore_index": -100}, (1, 3)),
    ((5, 4), {"ignore_index": 2}, None),                    # an in-range ignore_index
    ((5, 4), {"weight": True, "label_smoothing": 0.1}, (0,)),
    ((5, 4), {"weight": True, "label_smoothing": 0.1, "reduction": "none"}, (0,)),
    ((5, 4), {"weight": True, "label_smoothing": 0.1, "reduction": "sum"}, (0,)),
    ((2, 3, 2, 2), {}, None),                               # (N, C, d1, d2)
    ((2, 3, 4), {"weight": True, "label_smoothing": 0.3}, (1, 5)),
    ((2, 3, 4), {"reduction": "none"}, (2,)),
]


@pytest.mark.parametrize("shape,kw,ignore", CE_CASES)
def test_cross_entropy_matches_numpy(device, shape, kw, ignore):
    x, xn = rand(shape, device, low=-3, high=3)
    C = shape[1]
    ii = kw.get("ignore_index", -100)
    tn = targets((shape[0],) + shape[2:], C, ignore=ignore, ignore_index=ii)
    t = xbp.tensor(tn, device=device)
    kw = dict(kw)
    wn = None
    if kw.pop("weight", False):
        wn = np.array([0.5, 2.0, 1.0, 3.0][:C])
        kw["weight"] = xbp.tensor(wn, device=device)
    out = F.cross_entropy(x, t, **kw)
    ref = np_cross_entropy(xn, tn, wn, ii, kw.get("label_smoothing", 0.0), kw.get("reduction", "mean"))
    assert out.shape == np.shape(ref)
    np.testing.assert_allclose(to_np(out), ref, rtol=1e-10, atol=1e-12)


def test_cross_entropy_hot_path_gradient(device):
    x, xn = rand((6, 5), device, low=-2, high=2)
    tn = targets((6,), 5)
    loss = F.cross_entropy(x, xbp.tensor(tn, device=device))
    loss.backward()
    p = np.exp(np_log_softmax(xn, 1))
    ref = (p - np.eye(5)[tn]) / 6
    np.testing.assert_allclose(to_np(x.grad), ref, rtol=1e-10, atol=1e-12)


GRAD_CASES = [
    ((3, 4), {}, None),
    ((3, 4), {"reduction": "none"}, None),
    ((3, 4), {"reduction": "sum", "label_smoothing": 0.2}, None),
    ((3, 4), {"weight": True, "label_smoothing": 0.1}, (1,)),
    ((2, 3, 2), {"weight": True}, (0,)),
    ((2, 3, 2), {"reduction": "none", "label_smoothing": 0.3}, (3,)),
]


@pytest.mark.parametrize("shape,kw,ignore", GRAD_CASES)
def test_cross_entropy_gradcheck(device, shape, kw, ignore):
    x, _ = rand(shape, device, low=-2, high=2)
    t = xbp.tensor(targets((shape[0],) + shape[2:], shape[1], ignore=ignore), device=device)
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = xbp.tensor([0.5, 2.0, 1.0, 3.0][:shape[1]], dtype=xbp.float64, device=device)
    assert gradcheck(lambda x: F.cross_entropy(x, t, **kw), (x,))


@pytest.mark.parametrize("kw", [{}, {"weight": True, "label_smoothing": 0.2, "reduction": "none"}])
def test_cross_entropy_second_order(device, kw):
    """The VJP under create_graph recomputes the probabilities differentiably from the logits."""
    x, _ = rand((3, 4), device, low=-2, high=2)
    t = xbp.tensor(targets((3,), 4, ignore=(2,) if kw else None), device=device)
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = xbp.tensor([0.5, 2.0, 1.0, 3.0], dtype=xbp.float64, device=device)
    assert gradgradcheck(lambda x: F.cross_entropy(x, t, **kw), (x,))


def test_cross_entropy_hessian_matches_closed_form():
    # d^2 mean CE / dx_i dx_i = (diag(p_i) - p_i p_i^T) / N
    x, xn = rand((2, 3), "cpu")
    t = xbp.tensor([0, 2])
    (g,) = xbp.grad(F.cross_entropy(x, t), x, create_graph=True)
    v = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    (hv,) = xbp.grad(g, x, xbp.tensor(v))
    p = np.exp(np_log_softmax(xn, 1))
    ref = np.stack([(np.diag(p[i]) - np.outer(p[i], p[i])) @ v[i] / 2 for i in range(2)])
    np.testing.assert_allclose(to_np(hv), ref, rtol=1e-10, atol=1e-12)


def test_cross_entropy_extreme_logits_finite(device):
    x = xbp.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], device=device, requires_grad=True)
    t = xbp.tensor([1, 0], device=device)
    for kw in ({}, {"label_smoothing": 0.1, "weight": xbp.tensor([1.0, 2.0, 3.0], device=device)}):
        x.grad = None
        loss = F.cross_entropy(x, t, **kw)
        loss.backward()
        assert loss.dtype == xbp.float32 and np.isfinite(loss.item())
        assert np.isfinite(to_np(x.grad)).all()
    assert F.cross_entropy(x, t).item() == pytest.approx((2e4 + (2e4 + np.log(2))) / 2, rel=1e-6)


def test_cross_entropy_float32_stays_float32(device):
    x = xbp.randn(4, 3, device=device, requires_grad=True)
    t = xbp.tensor([0, 1, 2, 1], device=device)
    for w in (xbp.tensor([1.0, 2.0, 0.5], device=device), xbp.tensor([1.0, 2.0, 0.5], dtype=xbp.float64, device=device)):
        x.grad = None
        loss = F.cross_entropy(x, t, weight=w, label_smoothing=0.1)
        loss.backward()
        assert loss.dtype == xbp.float32 and x.grad.dtype == xbp.float32
        assert F.nll_loss(x, t, weight=w).dtype == xbp.float32


def test_cross_entropy_unbatched(device):
    x, xn = rand((4,), device)
    out = F.cross_entropy(x, xbp.tensor(2, device=device))
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), -np_log_softmax(xn, 0)[2], rtol=1e-12)
    assert F.cross_entropy(x, xbp.tensor(2, device=device), reduction="none").shape == ()


def test_cross_entropy_probability_targets(device):
    x, xn = rand((4, 3), device)
    tn = np.random.default_rng(2).dirichlet(np.ones(3), size=4)
    t = xbp.tensor(tn, device=device, requires_grad=True)
    wn = np.array([1.0, 2.0, 0.5])
    eps = 0.2
    out = F.cross_entropy(x, t, weight=xbp.tensor(wn, device=device), label_smoothing=eps)
    ts = tn * (1 - eps) + eps / 3
    ref = -(np_log_softmax(xn, 1) * ts * wn).sum() / 4          # "mean" divides by N, not the weights
    np.testing.assert_allclose(out.item(), ref, rtol=1e-12)
    assert gradcheck(lambda x, t: F.cross_entropy(x, t, reduction="none"), (x, t))


def test_cross_entropy_errors(device):
    x = xbp.randn(3, 4, device=device)
    with raises_checked(IndexError, match=r"out of range.*\[0, 4\].*4 classes"):
        F.cross_entropy(x, xbp.tensor([0, 4, 1], device=device))
    with raises_checked(IndexError, match="out of range"):
        F.cross_entropy(x, xbp.tensor([0, -1, 1], device=device))
    with raises_checked(IndexError, match="out of range"):       # an ignored target does not hide a bad one
        F.cross_entropy(x, xbp.tensor([-100, 7, 1], device=device))
    with pytest.raises(ValueError, match="class probabilities.*input's shape"):
        F.cross_entropy(x, xbp.tensor([0.0, 1.0, 2.0], device=device))
    with pytest.raises(ValueError, match="class-index target must have shape"):
        F.cross_entropy(x, xbp.tensor([0, 1], device=device))
    with pytest.raises(TypeError, match="integer class indices or float probabilities"):
        F.cross_entropy(x, xbp.tensor([True, False, True], device=device))
    with pytest.raises(ValueError, match="weight must have shape"):
        F.cross_entropy(x, xbp.tensor([0, 1, 2], device=device), weight=xbp.ones(3, device=device))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, xbp.tensor([0, 1, 2], device=device), reduction="avg")


def test_cross_entropy_all_ignored_mean_is_nan():
    x = xbp.randn(2, 3)
    with np.errstate(invalid="ignore"):
        assert np.isnan(F.cross_entropy(x, xbp.tensor([-100, -100])).item())


def test_cross_entropy_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    xn = rng.normal(size=(6, 4, 3)) * 3
    tn = rng.integers(0, 4, size=(6, 3))
    tn[0, 1] = tn[3, 2] = -100
    wn = np.array([0.3, 1.0, 2.5, 0.7])
    for red in ("mean", "sum", "none"):
        x = xbp.tensor(xn, requires_grad=True)
        out = F.cross_entropy(x, xbp.tensor(tn), weight=xbp.tensor(wn), label_smoothing=0.15, reduction=red)
        xt = torch.tensor(xn, requires_grad=True)
        ref = torch.nn.functional.cross_entropy(xt, torch.tensor(tn), weight=torch.tensor(wn),
                                                label_smoothing=0.15, reduction=red)
        np.testing.assert_allclose(to_np(out), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
        out.sum().backward()
        ref.sum().backward()
        np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    # probability targets with weight and smoothing
    pn = rng.dirichlet(np.ones(4), size=(6, 3)).transpose(0, 2, 1)
    out = F.cross_entropy(xbp.tensor(xn), xbp.tensor(pn), weight=xbp.tensor(wn), label_smoothing=0.1)
    ref = torch.nn.functional.cross_entropy(torch.tensor(xn), torch.tensor(pn), weight=torch.tensor(wn),
                                            label_smoothing=0.1)
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-10)


# --- nll_loss ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_cross_entropy_of_log_softmax(device, reduction):
    x, xn = rand((5, 4), device)
    tn = targets((5,), 4, ignore=(2,))
    w = xbp.tensor([0.5, 2.0, 1.0, 3.0], dtype=xbp.float64, device=device)
    t = xbp.tensor(tn, device=device)
    out = F.nll_loss(F.log_softmax(x, 1), t, weight=w, reduction=reduction)
    ref = np_cross_entropy(xn, tn, np.array([0.5, 2.0, 1.0, 3.0]), reduction=reduction)
    np.testing.assert_allclose(to_np(out), ref, rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda lp: F.nll_loss(lp, t, weight=w, reduction=reduction), (x,))


def test_nll_loss_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    xn = rng.normal(size=(4, 3, 2))
    tn = rng.integers(0, 3, size=(4, 2))
    tn[1, 0] = 1
    wn = np.array([1.0, 0.2, 3.0])
    out = F.nll_loss(xbp.tensor(xn), xbp.tensor(tn), weight=xbp.tensor(wn), ignore_index=1)
    ref = torch.nn.functional.nll_loss(torch.tensor(xn), torch.tensor(tn), weight=torch.tensor(wn), ignore_index=1)
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-12)


def test_nll_loss_errors(device):
    with raises_checked(IndexError, match="out of range"):
        F.nll_loss(xbp.randn(2, 3, device=device), xbp.tensor([0, 3], device=device))
    with pytest.raises(TypeError, match="integer tensor"):
        F.nll_loss(xbp.randn(2, 3, device=device), xbp.tensor([0.0, 1.0], device=device))


# --- regression losses ------------------------------------------------------------------------------
def _np_reduce(l, reduction):
    return {"mean": l.mean(), "sum": l.sum(), "none": l}[reduction]


REGRESSION = [
    ("mse_loss", {}, lambda d: d * d),
    ("l1_loss", {}, np.abs),
    ("smooth_l1_loss", {"beta": 0.5}, lambda d: np.where(np.abs(d) < 0.5, 0.5 * d * d / 0.5, np.abs(d) - 0.25)),
    ("smooth_l1_loss", {"beta": 0.0}, np.abs),
    ("huber_loss", {"delta": 0.7}, lambda d: np.where(np.abs(d) < 0.7, 0.5 * d * d, 0.7 * (np.abs(d) - 0.35))),
]


@pytest.mark.parametrize("name,kw,ref", REGRESSION)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(device, name, kw, ref, reduction):
    x, xn = rand((3, 4), device, low=-1.5, high=1.5)
    y, yn = rand((3, 4), device, seed=1)
    fn = getattr(F, name)
    out = fn(x, y, reduction=reduction, **kw)
    np.testing.assert_allclose(to_np(out), _np_reduce(ref(xn - yn), reduction), rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda a, b: fn(a, b, reduction=reduction, **kw), (x, y))


def test_regression_losses_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)) * 2, rng.normal(size=(5, 3))
    for name, kw in [("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.3}),
                     ("huber_loss", {"delta": 1.5})]:
        out = getattr(F, name)(xbp.tensor(a), xbp.tensor(b), **kw)
        ref = getattr(torch.nn.functional, name)(torch.tensor(a), torch.tensor(b), **kw)
        np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-12)


def test_mse_loss_warns_on_broadcast():
    with pytest.warns(UserWarning, match="broadcast"):
        F.mse_loss(xbp.randn(4, 1), xbp.randn(4))


# --- binary cross entropy -----------------------------------------------------------------------------
def test_binary_cross_entropy(device):
    p, pn = rand((3, 4), device, low=0.05, high=0.95)
    t, tn = rand((3, 4), device, low=0.0, high=1.0, seed=3)
    w, wn = rand((4,), device, low=0.5, high=2.0, seed=4, requires_grad=False)
    out = F.binary_cross_entropy(p, t, weight=w)
    ref = (-wn * (tn * np.log(pn) + (1 - tn) * np.log(1 - pn))).mean()
    np.testing.assert_allclose(out.item(), ref, rtol=1e-12)
    assert gradcheck(lambda p, t: F.binary_cross_entropy(p, t, weight=w, reduction="none"), (p, t))


def test_binary_cross_entropy_clamps_at_0_and_1(device):
    p = xbp.tensor([0.0, 1.0, 0.0, 1.0], dtype=xbp.float64, device=device, requires_grad=True)
    t = xbp.tensor([0.0, 1.0, 1.0, 0.0], dtype=xbp.float64, device=device)
    out = F.binary_cross_entropy(p, t, reduction="none")
    np.testing.assert_allclose(to_np(out), [0.0, 0.0, 100.0, 100.0])
    out.sum().backward()
    assert np.isfinite(to_np(p.grad)).all()
    with raises_checked(ValueError, match=r"probabilities in \[0, 1\]"):
        F.binary_cross_entropy(xbp.tensor([1.5], device=device), xbp.tensor([1.0], device=device))


def test_bce_with_logits(device):
    x, xn = rand((3, 4), device, low=-3, high=3)
    t, tn = rand((3, 4), device, low=0.0, high=1.0, seed=3)
    pw, pwn = rand((4,), device, low=0.5, high=3.0, seed=5)
    w, wn = rand((3, 1), device, low=0.5, high=2.0, seed=6, requires_grad=False)
    out = F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction="sum")
    s = np_sigmoid(xn)
    ref = (-wn * (pwn * tn * np.log(s) + (1 - tn) * np.log(1 - s))).sum()
    np.testing.assert_allclose(out.item(), ref, rtol=1e-12)
    assert gradcheck(lambda x, t, pw: F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw), (x, t, pw))
    assert gradgradcheck(lambda x: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw), (x,))


def test_bce_with_logits_stable(device):
    x = xbp.tensor([-1e4, 1e4, -200.0, 200.0], device=device, requires_grad=True)
    t = xbp.tensor([1.0, 0.0, 0.0, 1.0], device=device)
    out = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(to_np(out), [1e4, 1e4, 0.0, 0.0], atol=1e-30)
    out.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), [-1.0, 1.0, 0.0, 0.0], atol=1e-30)


def test_bce_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    xn, tn = rng.normal(size=(5, 3)) * 4, rng.uniform(size=(5, 3))
    pwn, wn = np.array([0.5, 2.0, 4.0]), rng.uniform(0.5, 2, size=(5, 1))
    x, xt = xbp.tensor(xn, requires_grad=True), torch.tensor(xn, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(x, xbp.tensor(tn), weight=xbp.tensor(wn), pos_weight=xbp.tensor(pwn))
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(tn), weight=torch.tensor(wn), pos_weight=torch.tensor(pwn))
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-12)
    out.backward()
    ref.backward()
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-10)
    pn = np_sigmoid(xn)
    out = F.binary_cross_entropy(xbp.tensor(pn), xbp.tensor(tn), weight=xbp.tensor(wn), reduction="sum")
    ref = torch.nn.functional.binary_cross_entropy(torch.tensor(pn), torch.tensor(tn), weight=torch.tensor(wn),
                                                   reduction="sum")
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-12)


def test_bce_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must match"):
        F.binary_cross_entropy_with_logits(xbp.randn(4, 1), xbp.rand(4))


# --- kl_div ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["batchmean", "mean", "sum", "none"])
def test_kl_div(device, reduction):
    x, xn = rand((3, 4), device)
    lp = F.log_softmax(x, 1)
    tn = np.random.default_rng(7).dirichlet(np.ones(4), size=3)
    tn[0, 1] = 0.0                                            # 0 log 0 = 0
    t = xbp.tensor(tn, device=device, requires_grad=True)
    out = F.kl_div(lp, t, reduction=reduction)
    lpn = np_log_softmax(xn, 1)
    pointwise = np.where(tn > 0, tn * (np.log(np.where(tn > 0, tn, 1)) - lpn), 0.0)
    ref = pointwise.sum() / 3 if reduction == "batchmean" else _np_reduce(pointwise, reduction)
    np.testing.assert_allclose(to_np(out), ref, rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda x: F.kl_div(F.log_softmax(x, 1), t, reduction=reduction), (x,))
    # log_target: the same divergence from log-probabilities
    tl = xbp.tensor(np.log(np.clip(tn, 1e-300, None)), device=device)
    out2 = F.kl_div(lp, tl, reduction=reduction, log_target=True)
    np.testing.assert_allclose(to_np(out2), ref, rtol=1e-10, atol=1e-14)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_kl_div_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    lpn = np_log_softmax(rng.normal(size=(4, 5)), 1)
    tn = rng.dirichlet(np.ones(5), size=4)
    for red in ("batchmean", "mean", "sum"):
        for log_target in (False, True):
            tt = np.log(tn) if log_target else tn
            out = F.kl_div(xbp.tensor(lpn), xbp.tensor(tt), reduction=red, log_target=log_target)
            ref = torch.nn.functional.kl_div(torch.tensor(lpn), torch.tensor(tt), reduction=red,
                                             log_target=log_target)
            np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-12)


# --- loss modules ------------------------------------------------------------------------------------
def test_loss_modules_call_functional(device):
    x, _ = rand((4, 3), device)
    y, _ = rand((4, 3), device, seed=2, low=0.0)
    t = xbp.tensor([0, 2, 1, 2], device=device)
    w = xbp.tensor([1.0, 2.0, 0.5], dtype=xbp.float64, device=device)
    pairs = [
        (nn.MSELoss(), F.mse_loss(x, y)),
        (nn.L1Loss(reduction="sum"), F.l1_loss(x, y, reduction="sum")),
        (nn.SmoothL1Loss(beta=0.5), F.smooth_l1_loss(x, y, beta=0.5)),
        (nn.HuberLoss(delta=0.3), F.huber_loss(x, y, delta=0.3)),
        (nn.BCEWithLogitsLoss(pos_weight=w), F.binary_cross_entropy_with_logits(x, y, pos_weight=w)),
        (nn.KLDivLoss(reduction="batchmean"), F.kl_div(x, y, reduction="batchmean")),
    ]
    for mod, ref in pairs:
        np.testing.assert_allclose(to_np(mod(x, y)), to_np(ref), rtol=1e-14)
    ce = nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)
    np.testing.assert_allclose(to_np(ce(x, t)), to_np(F.cross_entropy(x, t, weight=w, label_smoothing=0.1)))
    nll = nn.NLLLoss(weight=w, ignore_index=2)
    np.testing.assert_allclose(to_np(nll(x, t)), to_np(F.nll_loss(x, t, weight=w, ignore_index=2)))
    sig = F.sigmoid(x)
    np.testing.assert_allclose(to_np(nn.BCELoss(weight=w)(sig, y)), to_np(F.binary_cross_entropy(sig, y, weight=w)))
    # a weight is a buffer: saved in state_dict and moved by .to()
    assert list(ce.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
