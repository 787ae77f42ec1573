"""nn.utils.parametrize and parametrizations (weight_norm, spectral_norm), and the original
hook-based nn.utils.weight_norm / spectral_norm, against PyTorch 2.13:
state-dict keys, outputs and gradients with PyTorch's weights (train and eval), chained and
custom parametrizations, setting through right_inverse, cached(), removal."""
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
