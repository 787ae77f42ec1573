"""Gradients are finite where the limit is: the values are PyTorch 2.13's, written in (checked with
torch when it is installed)."""
import math

import numpy as np
import pytest

import xbp
import xbp.nn.functional as F

P_VALUES = [2, 1, 3, 1.5, 0.5, math.inf, -math.inf, "fro"]


@pytest.mark.parametrize("p", P_VALUES)
def test_norm_of_a_zero_vector_has_subgradient_zero(device, p):
    x = xbp.zeros(2, 3, dtype=xbp.float64, device=device, requires_grad=True)
    n = xbp.norm(x, p)
    n.backward()
    assert n.item() == 0.0
    assert x.grad.numpy().tolist() == [[0.0] * 3] * 2           # torch.norm(zeros, p).backward(): zeros


@pytest.mark.parametrize("p", [3, 1.5, 0.5])
def test_general_p_norm_values_and_gradients(device, p):
    a = np.array([[0.5, -2.0, 0.0], [1.0, 3.0, -1.5]])
    x = xbp.tensor(a, device=device, requires_grad=True)
    n = xbp.norm(x, p, dim=1)
    want = (np.abs(a) ** p).sum(1) ** (1 / p)
    np.testing.assert_allclose(n.detach().numpy(), want, rtol=1e-12)
    n.sum().backward()
    # closed form: sign(x) |x|^(p-1) / |x|_p^(p-1), 0 at x = 0
    gw = np.where(a == 0, 0.0, np.sign(a) * np.abs(np.where(a == 0, 1, a)) ** (p - 1) / want[:, None] ** (p - 1))
    np.testing.assert_allclose(x.grad.numpy(), gw, rtol=1e-12)


def test_std_of_a_constant_vector_has_gradient_zero(device):
    x = xbp.full((4,), 0.3, dtype=xbp.float64, device=device, requires_grad=True)
    xbp.std(x).backward()
    assert x.grad.numpy().tolist() == [0.0] * 4                 # torch: tensor([0., 0., 0., 0.])
    y = xbp.tensor([[1.0, 2.0], [1.0, 4.0]], dtype=xbp.float64, device=device, requires_grad=True)
    xbp.std(y, 0).sum().backward()                              # column 0 constant, column 1 not
    np.testing.assert_allclose(y.grad.numpy(), [[0.0, -1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]], rtol=1e-12)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_every_target_ignored_gives_nan_loss_and_zero_gradients(device, fn):
    x = xbp.tensor(np.random.default_rng(0).normal(size=(3, 4)), device=device, requires_grad=True)
    t = xbp.tensor([-100, -100, -100], device=device)
    loss = getattr(F, fn)(x, t)
    loss.backward()
    assert math.isnan(loss.item())                               # torch: nan (0 / 0)
    assert x.grad.numpy().tolist() == [[0.0] * 4] * 3            # torch: zeros
    x.grad = None
    getattr(F, fn)(x, t, reduction="sum").backward()
    assert x.grad.numpy().tolist() == [[0.0] * 4] * 3


def test_against_torch_when_installed():
    torch = pytest.importorskip("torch")
    a = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.0]])
    for p in (3, 0.5, 1.5):
        x, tx = xbp.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        xbp.norm(x, p, dim=1).sum().backward()
        torch.norm(tx, p, dim=1).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    lx = np.random.default_rng(1).normal(size=(3, 4))
    x, tx = xbp.tensor(lx, requires_grad=True), torch.tensor(lx, requires_grad=True)
    F.cross_entropy(x, xbp.tensor([-100, 2, -100])).backward()
    torch.nn.functional.cross_entropy(tx, torch.tensor([-100, 2, -100])).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
