"""Batch, layer and group normalisation: forward against NumPy, float64 gradcheck of the input and
the affine parameters, running statistics (momentum, cumulative average, unbiased variance) and
eval mode, second order, and PyTorch weights through state dicts."""
import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp.autograd import gradcheck, gradgradcheck

from conftest import rand, to_np


def ref_norm(x, axes, eps):
    m = x.mean(axis=axes, keepdims=True)
    v = x.var(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 5), (2, 3, 3, 4)])
def test_batch_norm_training_forward_and_gradcheck(device, shape):
    x, xn = rand(shape, device, seed=1)
    C = shape[1]
    w, wn = rand((C,), device, seed=2)
    b, bn = rand((C,), device, seed=3)
    axes = (0,) + tuple(range(2, len(shape)))
    view = (1, C) + (1,) * (len(shape) - 2)
    y = F.batch_norm(x, None, None, w, b, training=True, eps=1e-3)
    np.testing.assert_allclose(to_np(y), ref_norm(xn, axes, 1e-3) * wn.reshape(view) + bn.reshape(view), atol=1e-12)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.1, 1e-3), (x, w, b))


def test_batch_norm_eval_forward_and_gradcheck(device):
    x, xn = rand((3, 2, 2, 3), device, seed=4)
    w, wn = rand((2,), device, seed=5)
    b, bn = rand((2,), device, seed=6)
    rm, rmn = rand((2,), device, seed=7, requires_grad=False)
    rv, rvn = rand((2,), device, seed=8, low=0.5, high=2.0, requires_grad=False)
    y = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5)
    v = (1, 2, 1, 1)
    ref = (xn - rmn.reshape(v)) / np.sqrt(rvn.reshape(v) + 1e-5) * wn.reshape(v) + bn.reshape(v)
    np.testing.assert_allclose(to_np(y), ref, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, False), (x, w, b))


def test_batch_norm_running_statistics(device):
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3, momentum=0.3, device=device).double()
    assert [k for k in bn.state_dict()] == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        xn = rng.normal(2.0, 3.0, (4, 3, 2, 2))
        bn(xbp.tensor(xn, device=device))
        rm = 0.7 * rm + 0.3 * xn.mean(axis=(0, 2, 3))
        rv = 0.7 * rv + 0.3 * xn.var(axis=(0, 2, 3), ddof=1)        # unbiased, as PyTorch
    np.testing.assert_allclose(to_np(bn.running_mean), rm, rtol=1e-12)
    np.testing.assert_allclose(to_np(bn.running_var), rv, rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 3
    # eval: normalise with the running statistics, and leave them alone
    bn.eval()
    xn = rng.normal(size=(2, 3, 2, 2))
    y = bn(xbp.tensor(xn, device=device))
    np.testing.assert_allclose(to_np(y), (xn - rm.reshape(1, 3, 1, 1)) / np.sqrt(rv.reshape(1, 3, 1, 1) + 1e-5),
                               atol=1e-12)
    np.testing.assert_allclose(to_np(bn.running_mean), rm, rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 3


def test_batch_norm_cumulative_average_and_options(device):
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm1d(2, momentum=None, affine=False, device=device).double()
    assert bn.weight is None and list(bn.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    xs = [rng.normal(1.0, 2.0, (5, 2, 3)) for _ in range(4)]
    for xn in xs:
        bn(xbp.tensor(xn, device=device))
    np.testing.assert_allclose(to_np(bn.running_mean), np.mean([x.mean(axis=(0, 2)) for x in xs], axis=0), rtol=1e-12)
    # (the cumulative average also starts from the initial running_var of 1 with weight 0)
    np.testing.assert_allclose(to_np(bn.running_var), np.mean([x.var(axis=(0, 2), ddof=1) for x in xs], axis=0),
                               rtol=1e-12)
    # no running statistics: batch statistics in train and eval
    nb = nn.BatchNorm1d(2, track_running_stats=False, device=device).double()
    assert nb.running_mean is None and list(nb.state_dict()) == ["weight", "bias"]
    nb.eval()
    np.testing.assert_allclose(to_np(nb(xbp.tensor(xs[0], device=device))), ref_norm(xs[0], (0, 2), 1e-5), atol=1e-12)
    with pytest.raises(ValueError, match="more than 1 value"):
        nn.BatchNorm1d(2, device=device)(xbp.randn(1, 2, device=device))
    with pytest.raises(ValueError, match="4-D"):
        nn.BatchNorm2d(2, device=device)(xbp.randn(3, 2, device=device))


def test_batch_norm_float32_stays_float32(device):
    bn = nn.BatchNorm2d(3, device=device)
    x = xbp.randn(4, 3, 2, 2, device=device, requires_grad=True)
    y = bn(x)
    assert y.dtype == xbp.float32 and bn.running_var.dtype == xbp.float32
    y.sum().backward()
    assert x.grad.dtype == xbp.float32 and bn.weight.grad.dtype == xbp.float32


@pytest.mark.parametrize("nshape", [(4,), (3, 4)])
def test_layer_norm(device, nshape):
    x, xn = rand((2, 3, 4), device, seed=9)
    w, wn = rand(nshape, device, seed=10)
    b, bn = rand(nshape, device, seed=11)
    axes = tuple(range(3 - len(nshape), 3))
    y = F.layer_norm(x, nshape, w, b, 1e-4)
    np.testing.assert_allclose(to_np(y), ref_norm(xn, axes, 1e-4) * wn + bn, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, nshape, w, b, 1e-4), (x, w, b))
    ln = nn.LayerNorm(nshape, elementwise_affine=False, device=device)
    assert list(ln.state_dict()) == []
    np.testing.assert_allclose(to_np(ln(x)), ref_norm(xn, axes, 1e-5), atol=1e-12)


def test_group_norm(device):
    x, xn = rand((2, 6, 2, 3), device, seed=12)
    w, wn = rand((6,), device, seed=13)
    b, bn = rand((6,), device, seed=14)
    y = F.group_norm(x, 3, w, b, 1e-5)
    ref = ref_norm(xn.reshape(2, 3, -1), (2,), 1e-5).reshape(xn.shape) * wn.reshape(1, 6, 1, 1) + bn.reshape(1, 6, 1, 1)
    np.testing.assert_allclose(to_np(y), ref, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.group_norm(x, 3, w, b), (x, w, b))
    gn = nn.GroupNorm(2, 6, device=device)
    assert gn.weight.shape == (6,) and list(gn.state_dict()) == ["weight", "bias"]
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)


def test_normalisation_gradgradcheck():
    x, _ = rand((3, 2, 2), "cpu", seed=15)
    w, _ = rand((2,), "cpu", seed=16)
    assert gradgradcheck(lambda x, w: F.batch_norm(x, None, None, w, None, True), (x, w))
    assert gradgradcheck(lambda x: F.layer_norm(x, (2,)), (x,))
    assert gradgradcheck(lambda x: F.group_norm(x, 1), (x,))


@pytest.mark.parametrize("kind", ["batch_norm", "layer_norm", "group_norm"])
def test_pytorch_weights_give_pytorch_outputs(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if kind == "batch_norm":
        tm, xm = torch.nn.BatchNorm2d(3), nn.BatchNorm2d(3)
    elif kind == "layer_norm":
        tm, xm = torch.nn.LayerNorm((2, 4)), nn.LayerNorm((2, 4))
    else:
        tm, xm = torch.nn.GroupNorm(2, 4), nn.GroupNorm(2, 4)
    with torch.no_grad():
        for p in tm.parameters():
            p.uniform_(0.5, 1.5)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.load_state_dict(sd)
    shape = (4, 3, 2, 4) if kind != "group_norm" else (3, 4, 2, 2)
    for _ in range(2):                    # (batch norm: two training steps update the running stats)
        x = rng.normal(1.0, 2.0, shape).astype(np.float32)
        xt, xx = torch.tensor(x, requires_grad=True), xbp.tensor(x, requires_grad=True)
        yt, yx = tm(xt), xm(xx)
        np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=2e-5)
    (yt * yt).sum().backward()
    (yx * yx).sum().backward()
    np.testing.assert_allclose(to_np(xx.grad), xt.grad.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(to_np(xm.weight.grad), tm.weight.grad.numpy(), rtol=1e-3, atol=1e-3)
    if kind == "batch_norm":
        np.testing.assert_allclose(to_np(xm.running_mean), tm.running_mean.numpy(), rtol=1e-5)
        np.testing.assert_allclose(to_np(xm.running_var), tm.running_var.numpy(), rtol=1e-5)
        xm.eval()
        tm.eval()
        np.testing.assert_allclose(to_np(xm(xbp.tensor(x))), tm(torch.tensor(x)).detach().numpy(), atol=2e-5)
