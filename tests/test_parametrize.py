"""nn.utils.parametrize and parametrizations (weight_norm, spectral_norm), and the original
hook-based nn.utils.weight_norm / spectral_norm, against PyTorch 2.13:
state-dict keys, outputs and gradients with PyTorch's weights (train and eval), chained and
custom parametrizations, setting through right_inverse, cached(), removal; nn.utils.prune (unstructured,
structured, global, custom masks, remove) against torch.nn.utils.prune."""
import copy

import numpy as np
import pytest

import xbp
import xbp.nn as nn
from xbp.nn.utils import parametrizations as XP
from xbp.nn.utils import parametrize as XZ

from conftest import to_np

torch = pytest.importorskip("torch")
TP = torch.nn.utils.parametrizations


CASES = [
    ("weight_norm", lambda L: L.Linear(3, 4), dict(dim=0), (2, 3)),
    ("weight_norm", lambda L: L.Conv1d(2, 3, 2), dict(dim=None), (1, 2, 5)),
    ("spectral_norm", lambda L: L.Conv2d(2, 3, 2), {}, (1, 2, 4, 4)),
    ("spectral_norm", lambda L: L.ConvTranspose2d(2, 3, 2), {}, (1, 2, 3, 3)),
]


@pytest.mark.parametrize("fn,make,kw,shape", CASES)
def test_parametrizations_match_pytorch(device, fn, make, kw, shape):
    torch.manual_seed(0)
    tm = getattr(TP, fn)(make(torch.nn).double(), **kw)
    xm = getattr(XP, fn)(make(nn).double(), **kw)
    assert type(xm).__name__ == type(tm).__name__
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.load_state_dict(sd)
    xm.to(device)
    x = np.random.default_rng(0).standard_normal(shape)
    for mode in ("train", "eval", "train"):
        getattr(tm, mode)()
        getattr(xm, mode)()
        xt, xx = torch.tensor(x, requires_grad=True), xbp.tensor(x, device=device, requires_grad=True)
        yt, yx = tm(xt), xm(xx)
        np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=1e-12)
        (yt ** 2).sum().backward()
        (yx ** 2).sum().backward()
        np.testing.assert_allclose(to_np(xx.grad), xt.grad.numpy(), atol=1e-12)
        params = dict(xm.named_parameters())
        for name, p in tm.named_parameters():
            np.testing.assert_allclose(to_np(params[name].grad), p.grad.numpy(), atol=1e-11, err_msg=name)
        tm.zero_grad()
        xm.zero_grad()
    for name, b in tm.named_buffers():            # the power-iteration vectors advanced alike
        np.testing.assert_allclose(to_np(dict(xm.named_buffers())[name]), b.numpy(), atol=1e-12)
    torch.nn.utils.parametrize.remove_parametrizations(tm, "weight")
    XZ.remove_parametrizations(xm, "weight")
    assert type(xm) is type(make(nn)) and list(xm.state_dict()) == list(tm.state_dict())
    np.testing.assert_allclose(to_np(xm.weight), tm.weight.detach().numpy(), atol=1e-12)


class Symmetric(nn.Module):
    def forward(self, X):
        return X.triu() + X.triu(1).transpose(-1, -2) if hasattr(X, "triu") else _sym(X)

    def right_inverse(self, A):
        return A


def _sym(X):
    n = X.shape[0]
    upper = xbp.tensor(np.triu(np.ones((n, n))), dtype=X.dtype, device=X.device)
    strict = xbp.tensor(np.triu(np.ones((n, n)), 1), dtype=X.dtype, device=X.device)
    return X * upper + (X * strict).transpose(0, 1)


class Double(nn.Module):
    def forward(self, X):
        return X * 2.0

    def right_inverse(self, A):
        return A * 0.5


def test_custom_chained_set_cached_and_copy(device):
    m = nn.Linear(3, 3, device=device, dtype=np.float64)
    XZ.register_parametrization(m, "weight", Symmetric())
    w = to_np(m.weight)
    np.testing.assert_allclose(w, w.T)
    XZ.register_parametrization(m, "weight", Double())
    np.testing.assert_allclose(to_np(m.weight), 2 * w)
    assert XZ.is_parametrized(m) and XZ.is_parametrized(m, "weight") and not XZ.is_parametrized(m, "bias")
    target = np.arange(9.0).reshape(3, 3)
    target = target + target.T
    m.weight = xbp.tensor(target, device=device)               # through the right inverses
    np.testing.assert_allclose(to_np(m.weight), target)
    with XZ.cached():
        assert m.weight is m.weight
    assert m.weight is not m.weight
    c = copy.deepcopy(m)
    np.testing.assert_allclose(to_np(c.weight), target)
    assert XZ.type_before_parametrizations(m) is nn.Linear
    y = m(xbp.ones(1, 3, device=device, dtype=np.float64))
    y.sum().backward()
    assert m.parametrizations.weight.original.grad is not None
    with pytest.raises(ValueError, match="shape"):
        XZ.register_parametrization(nn.Linear(2, 2), "weight", _Bad())


class _Bad(nn.Module):
    def forward(self, X):
        return X[0]


LEGACY = [
    ("weight_norm", lambda L: L.Conv1d(2, 3, 2), {}, (1, 2, 5)),
    ("weight_norm", lambda L: L.Linear(3, 4), dict(dim=None), (2, 3)),
    ("spectral_norm", lambda L: L.Linear(3, 4), {}, (2, 3)),
    ("spectral_norm", lambda L: L.ConvTranspose2d(2, 3, 2), {}, (1, 2, 3, 3)),
]


@pytest.mark.parametrize("fn,make,kw,shape", LEGACY)
def test_hook_based_norms_match_pytorch(device, fn, make, kw, shape):
    # torch.nn.utils.weight_norm / spectral_norm (the original, hook-based forms and their keys)
    torch.manual_seed(0)
    with pytest.warns(FutureWarning) if fn == "weight_norm" else _nothing():
        tm = getattr(torch.nn.utils, fn)(make(torch.nn).double(), **kw)
    xm = getattr(nn.utils, fn)(make(nn).double(), **kw)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.load_state_dict(sd)
    xm.to(device)
    x = np.random.default_rng(1).standard_normal(shape)
    for mode in ("train", "eval", "train"):
        getattr(tm, mode)()
        getattr(xm, mode)()
        xt, xx = torch.tensor(x, requires_grad=True), xbp.tensor(x, device=device, requires_grad=True)
        yt, yx = tm(xt), xm(xx)
        np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=1e-12)
        (yt ** 2).sum().backward()
        (yx ** 2).sum().backward()
        params = dict(xm.named_parameters())
        for name, p in tm.named_parameters():
            np.testing.assert_allclose(to_np(params[name].grad), p.grad.numpy(), atol=1e-11, err_msg=name)
        tm.zero_grad()
        xm.zero_grad()
    getattr(torch.nn.utils, "remove_" + fn)(tm)
    getattr(nn.utils, "remove_" + fn)(xm)
    assert list(xm.state_dict()) == list(tm.state_dict())
    np.testing.assert_allclose(to_np(xm.weight), tm.weight.detach().numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="not found"):
        getattr(nn.utils, "remove_" + fn)(xm)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- nn.utils.prune ----------------------------------------------------------------------------------
def _pair(make):
    torch.manual_seed(0)
    tm, xm = make(torch.nn).double(), make(nn).double()
    xm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, xm


def test_prune_unstructured_structured_global_remove(device):
    import torch.nn.utils.prune as TP
    XPr = nn.utils.prune
    tm, xm = _pair(lambda L: L.Linear(4, 5))
    xm.to(device)
    for args in [("weight", 0.3), ("weight", 3), ("bias", 0.4)]:        # repeated: among the unpruned only
        TP.l1_unstructured(tm, *args)
        XPr.l1_unstructured(xm, *args)
    assert list(xm.state_dict()) == list(tm.state_dict())
    np.testing.assert_array_equal(to_np(xm.weight_mask), tm.weight_mask.numpy())
    x = np.random.default_rng(0).standard_normal((2, 4))
    yt, yx = tm(torch.tensor(x)), xm(xbp.tensor(x, device=device))
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=1e-12)
    (yt ** 2).sum().backward()
    (yx ** 2).sum().backward()
    np.testing.assert_allclose(to_np(xm.weight_orig.grad), tm.weight_orig.grad.numpy(), atol=1e-12)
    TP.remove(tm, "weight")
    XPr.remove(xm, "weight")
    assert list(xm.state_dict()) == list(tm.state_dict()) and XPr.is_pruned(xm)
    np.testing.assert_allclose(to_np(xm.weight), tm.weight.detach().numpy(), atol=1e-12)

    tc, xc = _pair(lambda L: L.Conv2d(3, 6, 2))
    for amount, n, dim in [(0.34, 2, 0), (1, 1, 0), (1, float("inf"), 1)]:
        TP.ln_structured(tc, "weight", amount, n, dim)
        XPr.ln_structured(xc, "weight", amount, n, dim)
    np.testing.assert_array_equal(to_np(xc.weight_mask), tc.weight_mask.numpy())

    ta, xa = _pair(lambda L: L.Sequential(L.Linear(3, 4), L.Linear(4, 2)))
    TP.global_unstructured([(ta[0], "weight"), (ta[1], "weight")], TP.L1Unstructured, amount=0.5)
    XPr.global_unstructured([(xa[0], "weight"), (xa[1], "weight")], XPr.l1_unstructured, amount=0.5)
    for i in range(2):
        np.testing.assert_array_equal(to_np(xa[i].weight_mask), ta[i].weight_mask.numpy())

    mask = (np.random.default_rng(1).random((5, 4)) > 0.5).astype(np.float64)
    tm2, xm2 = _pair(lambda L: L.Linear(4, 5))
    TP.custom_from_mask(tm2, "weight", torch.tensor(mask))
    XPr.custom_from_mask(xm2, "weight", mask)
    np.testing.assert_allclose(to_np(xm2.weight), tm2.weight.detach().numpy(), atol=1e-12)
    r = nn.Linear(10, 10, device=device)
    XPr.random_unstructured(r, "weight", 0.25)
    assert (to_np(r.weight_mask) == 0).sum() == 25
    with pytest.raises(ValueError, match="float in the range"):
        XPr.l1_unstructured(nn.Linear(2, 2), "weight", 1.5)
    with pytest.raises(ValueError, match="pruned before"):
        XPr.remove(nn.Linear(2, 2), "weight")
