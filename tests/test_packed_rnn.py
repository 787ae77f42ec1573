"""nn.utils.rnn against PyTorch 2.13: pad_sequence (batch_first, padding_value, padding_side),
pack_padded_sequence / pack_sequence (sorted and not), pad_packed_sequence (total_length),
unpad/unpack, and RNN/LSTM/GRU on packed input with PyTorch's weights: packed outputs, final
states and gradients agree."""
import numpy as np
import pytest

import xbp
import xbp.nn as nn
from xbp.nn.utils import rnn as xr

from conftest import to_np

torch = pytest.importorskip("torch")
tr = torch.nn.utils.rnn

LENGTHS = (2, 5, 3, 4)


def _seqs(device, lengths=LENGTHS, features=3, seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal((n, features)) for n in lengths]
    return ([xbp.tensor(a, device=device, requires_grad=True) for a in arrs],
            [torch.tensor(a, requires_grad=True) for a in arrs])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence(device, batch_first, side):
    xs, ts = _seqs(device)
    a = xr.pad_sequence(xs, batch_first=batch_first, padding_value=-1.5, padding_side=side)
    b = tr.pad_sequence(ts, batch_first=batch_first, padding_value=-1.5, padding_side=side)
    np.testing.assert_array_equal(to_np(a), b.detach().numpy())
    w = np.random.default_rng(1).standard_normal(tuple(b.shape))
    (a * xbp.tensor(w, device=device)).sum().backward()
    (b * torch.tensor(w)).sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_array_equal(to_np(x.grad), t.grad.numpy())


def test_pack_and_unpack_round_trip(device):
    xs, ts = _seqs(device)
    with pytest.raises(RuntimeError, match="decreasing"):
        xr.pack_sequence(xs)
    px, pt = xr.pack_sequence(xs, enforce_sorted=False), tr.pack_sequence(ts, enforce_sorted=False)
    np.testing.assert_array_equal(to_np(px.data), pt.data.detach().numpy())
    np.testing.assert_array_equal(px.batch_sizes.numpy(), pt.batch_sizes.numpy())
    np.testing.assert_array_equal(to_np(px.sorted_indices), pt.sorted_indices.numpy())
    np.testing.assert_array_equal(to_np(px.unsorted_indices), pt.unsorted_indices.numpy())
    ux, lx = xr.pad_packed_sequence(px, batch_first=True, padding_value=7.0, total_length=6)
    ut, lt = tr.pad_packed_sequence(pt, batch_first=True, padding_value=7.0, total_length=6)
    np.testing.assert_array_equal(to_np(ux), ut.detach().numpy())
    np.testing.assert_array_equal(lx.numpy(), lt.numpy())
    for a, b in zip(xr.unpack_sequence(px), tr.unpack_sequence(pt)):
        np.testing.assert_array_equal(to_np(a), b.detach().numpy())
    # sorted input, pack_padded_sequence with a batch_first padded batch
    order = np.argsort(-np.array(LENGTHS), kind="stable")
    padded = xr.pad_sequence([xs[i] for i in order], batch_first=True)
    p2 = xr.pack_padded_sequence(padded, [LENGTHS[i] for i in order], batch_first=True)
    assert p2.sorted_indices is None
    np.testing.assert_array_equal(p2.batch_sizes.numpy(), pt.batch_sizes.numpy())
    np.testing.assert_array_equal(to_np(p2.data), pt.data.detach().numpy())


MODELS = [
    lambda L: L.LSTM(3, 4, num_layers=2, bidirectional=True),
    lambda L: L.GRU(3, 4, batch_first=True),
    lambda L: L.RNN(3, 4, bidirectional=True, nonlinearity="relu"),
    lambda L: L.LSTM(3, 4, proj_size=2),
]


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("with_hx", [False, True])
def test_rnns_on_packed_input(device, make, with_hx):
    torch.manual_seed(0)
    tm = make(torch.nn).double()
    xm = make(nn).double()
    xm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    xm.to(device)
    xs, ts = _seqs(device, seed=2)
    pt, px = tr.pack_sequence(ts, enforce_sorted=False), xr.pack_sequence(xs, enforce_sorted=False)
    hx_t = hx_x = None
    if with_hx:
        rng = np.random.default_rng(3)
        D, L = (2 if tm.bidirectional else 1), tm.num_layers
        H = tm.proj_size or tm.hidden_size
        h0 = rng.standard_normal((L * D, len(LENGTHS), H))
        hx_t, hx_x = torch.tensor(h0), xbp.tensor(h0, device=device)
        if isinstance(tm, torch.nn.LSTM):
            c0 = rng.standard_normal((L * D, len(LENGTHS), tm.hidden_size))
            hx_t, hx_x = (hx_t, torch.tensor(c0)), (hx_x, xbp.tensor(c0, device=device))
    ot, st = tm(pt, hx_t)
    ox, sx = xm(px, hx_x)
    assert isinstance(ox, xr.PackedSequence)
    np.testing.assert_array_equal(ox.batch_sizes.numpy(), ot.batch_sizes.numpy())
    np.testing.assert_allclose(to_np(ox.data), ot.data.detach().numpy(), atol=1e-12)
    st = st if isinstance(st, tuple) else (st,)
    sx = sx if isinstance(sx, tuple) else (sx,)
    for a, b in zip(sx, st):
        np.testing.assert_allclose(to_np(a), b.detach().numpy(), atol=1e-12)
    w = np.random.default_rng(4).standard_normal(tuple(ot.data.shape))
    (ot.data * torch.tensor(w)).sum().add(st[0].sum()).backward()
    ((ox.data * xbp.tensor(w, device=device)).sum() + sx[0].sum()).backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), atol=1e-12)
    params = dict(xm.named_parameters())
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(to_np(params[name].grad), p.grad.numpy(), atol=1e-11, err_msg=name)


def test_packed_sequence_to_and_checks(device):
    xs, _ = _seqs(device)
    p = xr.pack_sequence(xs, enforce_sorted=False)
    q = p.to(dtype=np.float32)
    assert q.data.dtype == np.float32 and q.batch_sizes is p.batch_sizes
    with pytest.raises(ValueError, match="features"):
        nn.GRU(5, 2)(p)
    with pytest.raises(RuntimeError, match="lengths"):
        xr.pack_padded_sequence(xbp.zeros(3, 2, 1, device=device), [4, 1])
