"""Embedding: lookup, scatter-add gradient (repeated ids add up), padding_idx without gradient,
out-of-range ids raising IndexError on every device, and PyTorch's init and names."""
import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp.autograd import gradcheck, gradgradcheck

from conftest import raises_checked, rand, to_np


def test_embedding_forward_and_scatter_add_gradient(device):
    w, wn = rand((5, 3), device, seed=1)
    ids = np.array([[0, 2, 2], [4, 2, 1]])
    idx = xbp.tensor(ids, device=device)
    y = F.embedding(idx, w)
    assert y.shape == (2, 3, 3)
    np.testing.assert_array_equal(to_np(y), wn[ids])
    g = np.random.default_rng(2).standard_normal((2, 3, 3))
    y.backward(xbp.tensor(g, device=device))
    ref = np.zeros((5, 3))
    np.add.at(ref, ids.reshape(-1), g.reshape(-1, 3))
    np.testing.assert_allclose(to_np(w.grad), ref, atol=1e-12)
    assert gradcheck(lambda w: F.embedding(idx, w), (w,))


def test_padding_idx_row_gets_no_gradient(device):
    w, wn = rand((4, 2), device, seed=3)
    idx = xbp.tensor([1, 3, 1, 0], device=device)
    y = F.embedding(idx, w, padding_idx=1)
    np.testing.assert_array_equal(to_np(y), wn[[1, 3, 1, 0]])      # the row is still read
    y.sum().backward()
    np.testing.assert_array_equal(to_np(w.grad), [[1, 1], [0, 0], [0, 0], [1, 1]])
    emb = nn.Embedding(6, 3, padding_idx=-1, device=device)
    assert emb.padding_idx == 5 and np.all(to_np(emb.weight)[5] == 0)
    emb(xbp.tensor([5, 0], device=device)).sum().backward()
    assert np.all(to_np(emb.weight.grad)[5] == 0) and np.all(to_np(emb.weight.grad)[0] == 1)


@pytest.mark.parametrize("bad", [[0, 5], [-1, 0], [7]])
def test_out_of_range_ids_raise_on_every_device(device, bad):
    emb = nn.Embedding(5, 2, device=device)
    with raises_checked(IndexError, match="outside"):
        emb(xbp.tensor(bad, device=device))


def test_embedding_module(device):
    emb = nn.Embedding(100, 8, device=device)
    assert emb.weight.shape == (100, 8) and list(emb.state_dict()) == ["weight"]
    wv = to_np(emb.weight)
    assert abs(wv.mean()) < 0.15 and 0.85 < wv.std() < 1.15          # N(0, 1), as PyTorch
    out = emb(xbp.tensor([[1, 2], [3, 4]], device=device))
    assert out.shape == (2, 2, 8) and out.dtype == xbp.float32
    pre = nn.Embedding.from_pretrained(xbp.tensor(np.arange(6.0).reshape(3, 2), device=device))
    assert not pre.weight.requires_grad
    np.testing.assert_array_equal(to_np(pre(xbp.tensor([2], device=device))), [[4.0, 5.0]])
    with pytest.raises(TypeError, match="integer"):
        emb(xbp.tensor([1.0], device=device))


def test_embedding_gradgradcheck():
    w, _ = rand((4, 3), "cpu", seed=4)
    idx = xbp.tensor([[0, 3], [3, 2]])
    assert gradgradcheck(lambda w: F.embedding(idx, w, padding_idx=2) ** 2, (w,))


def test_pytorch_weights_give_pytorch_outputs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm, xm = torch.nn.Embedding(10, 4, padding_idx=0), nn.Embedding(10, 4, padding_idx=0)
    xm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    ids = np.array([[0, 3, 3], [9, 0, 1]])
    yt, yx = tm(torch.tensor(ids)), xm(xbp.tensor(ids))
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy())
    (yt ** 2).sum().backward()
    (yx ** 2).sum().backward()
    np.testing.assert_allclose(to_np(xm.weight.grad), tm.weight.grad.numpy(), rtol=1e-6)
