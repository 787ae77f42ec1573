"""RNN, LSTM, GRU and their cells: against the gate equations written out in NumPy (multi-layer,
bidirectional, batch_first, initial states), float64 gradcheck, dropout between layers, PyTorch's
parameter names/shapes/init, and PyTorch weights through state dicts."""
import math

import numpy as np
import pytest

import xbp
import xbp.nn as nn
from xbp.autograd import gradcheck

from conftest import to_np


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of the gate equations (PyTorch's documentation), x (B, I), h (B, H) (LSTM: c (B, H))."""
    H = (h if c is None else c).shape[1]
    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    if mode == "RNN_TANH":
        return np.tanh(gi + gh), None
    if mode == "RNN_RELU":
        return np.maximum(gi + gh, 0.0), None
    if mode == "LSTM":
        g = gi + gh
        i, f, gg, o = sig(g[:, :H]), sig(g[:, H:2 * H]), np.tanh(g[:, 2 * H:3 * H]), sig(g[:, 3 * H:])
        c = f * c + i * gg
        return o * np.tanh(c), c
    r = sig(gi[:, :H] + gh[:, :H])
    z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h, None


def np_rnn(mode, module, x, h0=None, c0=None):
    """The whole network in NumPy from the module's parameters. x (T, B, I) (seq-first)."""
    p = {k: to_np(v) for k, v in module.named_parameters()}
    L, H = module.num_layers, module.hidden_size
    P = getattr(module, "proj_size", 0)          # LSTM with projections: h = (o tanh c) W_hr^T
    D = 2 if module.bidirectional else 1
    T, B = x.shape[:2]
    h0 = np.zeros((L * D, B, P or H)) if h0 is None else h0
    c0 = np.zeros((L * D, B, H)) if c0 is None else c0
    hn, cn = [], []
    inp = x
    for layer in range(L):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            h, c = h0[layer * D + d], c0[layer * D + d]
            seq = [None] * T
            for t in (reversed(range(T)) if d else range(T)):
                h, c = np_step(mode, inp[t], h, c, p["weight_ih" + sfx], p["weight_hh" + sfx],
                               p.get("bias_ih" + sfx, 0.0), p.get("bias_hh" + sfx, 0.0))
                if P:
                    h = h @ p["weight_hr" + sfx].T
                seq[t] = h
            outs.append(np.stack(seq))
            hn.append(h)
            cn.append(c)
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(hn), (np.stack(cn) if mode == "LSTM" else None)


CASES = [  # mode, layers, bidirectional, batch_first, with initial state
    ("LSTM", 1, False, False, False),
    ("LSTM", 2, True, True, True),
    ("GRU", 2, False, False, True),
    ("GRU", 1, True, True, False),
    ("RNN_TANH", 2, True, False, True),
    ("RNN_RELU", 1, False, True, False),
]


def _make(mode, I, H, L, bidir, bf, device):
    kw = dict(num_layers=L, bidirectional=bidir, batch_first=bf, device=device)
    if mode == "LSTM":
        return nn.LSTM(I, H, **kw)
    if mode == "GRU":
        return nn.GRU(I, H, **kw)
    return nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)


@pytest.mark.parametrize("case", CASES)
def test_recurrent_layers_match_gate_equations(device, case):
    mode, L, bidir, bf, init_state = case
    T, B, I, H = 4, 2, 3, 5
    m = _make(mode, I, H, L, bidir, bf, device).double()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    D = 2 if bidir else 1
    h0 = rng.standard_normal((L * D, B, H)) if init_state else None
    c0 = rng.standard_normal((L * D, B, H)) if init_state else None
    xin = xbp.tensor(np.swapaxes(x, 0, 1) if bf else x, device=device)
    if init_state:
        h0t, c0t = xbp.tensor(h0, device=device), xbp.tensor(c0, device=device)
        hx = (h0t, c0t) if mode == "LSTM" else h0t
    else:
        hx = None
    out, state = m(xin, hx)
    ref_out, ref_h, ref_c = np_rnn(mode, m, x, h0, c0 if mode == "LSTM" else None)
    np.testing.assert_allclose(to_np(out), np.swapaxes(ref_out, 0, 1) if bf else ref_out, atol=1e-12)
    if mode == "LSTM":
        np.testing.assert_allclose(to_np(state[0]), ref_h, atol=1e-12)
        np.testing.assert_allclose(to_np(state[1]), ref_c, atol=1e-12)
    else:
        np.testing.assert_allclose(to_np(state), ref_h, atol=1e-12)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_recurrent_gradcheck(device, mode):
    m = _make(mode, 2, 2, 1, mode != "RNN_TANH", False, device).double()
    params = [p for _, p in m.named_parameters()]
    names = [n for n, _ in m.named_parameters()]
    x = xbp.tensor(np.random.default_rng(1).standard_normal((3, 1, 2)), device=device, requires_grad=True)
    h0 = xbp.tensor(np.random.default_rng(2).standard_normal((2 if mode != "RNN_TANH" else 1, 1, 2)), device=device,
                    requires_grad=True)

    def fn(x, h0, *ps):
        for n, p in zip(names, ps):
            m._parameters[n] = p
        hx = (h0, h0 * 0.5) if mode == "LSTM" else h0
        out, state = m(x, hx)
        return out, (state[1] if mode == "LSTM" else state)
    ps = [xbp.tensor(to_np(p), device=device, requires_grad=True) for p in params]
    # (the weights are checked on cpu; strict checks the input and state, to stay fast)
    if device != "cpu":
        ps = [p.detach() for p in ps]
    assert gradcheck(fn, (x, h0, *ps))


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_gate_equations_and_gradcheck(device, cell):
    rng = np.random.default_rng(3)
    m = getattr(nn, cell)(3, 4, device=device).double()
    assert [n for n, _ in m.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    G = {"RNNCell": 1, "LSTMCell": 4, "GRUCell": 3}[cell]
    assert m.weight_ih.shape == (G * 4, 3) and m.weight_hh.shape == (G * 4, 4)
    p = {k: to_np(v) for k, v in m.named_parameters()}
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    mode = {"RNNCell": "RNN_TANH", "LSTMCell": "LSTM", "GRUCell": "GRU"}[cell]
    rh, rc = np_step(mode, x, h, c, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
    X, Hh, Cc = (xbp.tensor(a, device=device, requires_grad=True) for a in (x, h, c))
    if cell == "LSTMCell":
        oh, oc = m(X, (Hh, Cc))
        np.testing.assert_allclose(to_np(oh), rh, atol=1e-12)
        np.testing.assert_allclose(to_np(oc), rc, atol=1e-12)
        assert gradcheck(lambda X, Hh, Cc: m(X, (Hh, Cc)), (X, Hh, Cc))
    else:
        np.testing.assert_allclose(to_np(m(X, Hh)), rh, atol=1e-12)
        assert gradcheck(lambda X, Hh: m(X, Hh), (X, Hh))
    # no state: zeros; unbatched input
    out = m(X[0, ...])
    assert (out[0] if cell == "LSTMCell" else out).shape == (4,)


def test_parameter_names_shapes_and_init():
    m = nn.LSTM(3, 16, num_layers=2, bidirectional=True)
    names = [n for n, _ in m.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse"]
    assert len(names) == 16 and names[-1] == "bias_hh_l1_reverse"
    assert m.weight_ih_l0.shape == (64, 3) and m.weight_ih_l1.shape == (64, 32) and m.weight_hh_l1.shape == (64, 16)
    bound = 1 / math.sqrt(16)
    for _, p in m.named_parameters():
        v = to_np(p)
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.8 * bound
    g = nn.GRU(3, 5, bias=False)
    assert [n for n, _ in g.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert g.weight_ih_l0.shape == (15, 3)
    out, h = g(xbp.randn(4, 2, 3))
    assert out.shape == (4, 2, 5) and h.shape == (1, 2, 5)
    out, h = g(xbp.randn(4, 3))                                       # unbatched
    assert out.shape == (4, 5) and h.shape == (1, 5)
    with pytest.raises(ValueError, match="initial state"):
        g(xbp.randn(4, 2, 3), xbp.zeros(2, 2, 5))


def test_dropout_between_layers():
    m = nn.LSTM(3, 8, num_layers=2, dropout=0.5).double()
    x = xbp.randn(5, 2, 3, dtype=xbp.float64)
    m.eval()
    e1, _ = m(x)
    e2, _ = m(x)
    np.testing.assert_array_equal(to_np(e1), to_np(e2))
    m.train()
    t1, _ = m(x)
    assert not np.allclose(to_np(t1), to_np(e1))
    np.testing.assert_allclose(to_np(e1), np_rnn("LSTM", m, to_np(x))[0], atol=1e-12)   # eval: no dropout
    # dropout=1 zeroes the first layer's outputs: the second layer then sees zeros
    out, _ = xbp.nn.functional.rnn("LSTM", x, None, [p for _, p in m.named_parameters()], 2, dropout=1.0,
                                          training=True)
    second = nn.LSTM(8, 8).double()
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items() if "_l1" in k})
    np.testing.assert_allclose(to_np(out), np_rnn("LSTM", second, np.zeros((5, 2, 8)))[0], atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_pytorch_weights_give_pytorch_outputs(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    xm = getattr(nn, kind)(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    xt, xx = torch.tensor(x, requires_grad=True), xbp.tensor(x, requires_grad=True)
    (ot, st), (ox, sx) = tm(xt), xm(xx)
    np.testing.assert_allclose(to_np(ox), ot.detach().numpy(), atol=1e-5)
    st, sx = (st[1], sx[1]) if kind == "LSTM" else (st, sx)
    np.testing.assert_allclose(to_np(sx), st.detach().numpy(), atol=1e-5)
    ((ot ** 2).sum() + st.sum()).backward()
    ((ox * ox).sum() + sx.sum()).backward()
    np.testing.assert_allclose(to_np(xx.grad), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    for (n, p), (tn, tp) in zip(xm.named_parameters(), tm.named_parameters()):
        assert n == tn
        np.testing.assert_allclose(to_np(p.grad), tp.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_recurrence_second_order(mode, reverse):
    """The fused layer primitive's VJP recomputes the states from its inputs under create_graph,
    so second derivatives (through the gates and the states) are right."""
    from xbp.autograd import gradgradcheck
    from xbp.ops.recurrence import recurrence
    rng = np.random.default_rng(4)
    G = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    T, B, H = 3, 1, 2
    t = lambda *s: xbp.tensor(rng.standard_normal(s) * 0.8, requires_grad=True)  # noqa: E731
    xs, h0, w, b = t(T, B, G * H), t(B, H), t(G * H, H), t(G * H)
    c0 = t(B, H) if mode == "LSTM" else None
    if mode == "RNN_RELU":
        xs = xbp.tensor(np.abs(rng.standard_normal((T, B, H))) + 0.5, requires_grad=True)   # away from the kink
    args = (xs, h0, w, b) + ((c0,) if c0 is not None else ())
    fn = lambda xs, h0, w, b, *c: recurrence(mode, xs, h0, c[0] if c else None, w, b, reverse)  # noqa: E731
    assert gradcheck(fn, args)
    assert gradgradcheck(fn, args)


# --- LSTM with projections (proj_size) ----------------------------------------------------------------
@pytest.mark.parametrize("case", [  # layers, bidirectional, batch_first, bias, initial state
    (1, False, False, True, False), (2, True, True, True, True), (2, False, False, False, True)])
def test_lstm_proj_size_matches_equations(device, case):
    L, bidir, bf, bias, init_state = case
    T, B, I, H, P = 4, 2, 3, 5, 2
    D = 2 if bidir else 1
    m = nn.LSTM(I, H, num_layers=L, bias=bias, bidirectional=bidir, batch_first=bf, proj_size=P,
                device=device).double()
    assert m.weight_hr_l0.shape == (P, H) and m.weight_hh_l0.shape == (4 * H, P)
    if L > 1:
        assert m.weight_ih_l1.shape == (4 * H, D * P)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, P)) if init_state else None
    c0 = rng.standard_normal((L * D, B, H)) if init_state else None
    hx = (xbp.tensor(h0, device=device), xbp.tensor(c0, device=device)) if init_state else None
    out, (hn, cn) = m(xbp.tensor(np.swapaxes(x, 0, 1) if bf else x, device=device), hx)
    ref_out, ref_h, ref_c = np_rnn("LSTM", m, x, h0, c0)
    assert out.shape == ((B, T, D * P) if bf else (T, B, D * P)) and hn.shape == (L * D, B, P)
    assert cn.shape == (L * D, B, H)
    np.testing.assert_allclose(to_np(out), np.swapaxes(ref_out, 0, 1) if bf else ref_out, atol=1e-12)
    np.testing.assert_allclose(to_np(hn), ref_h, atol=1e-12)
    np.testing.assert_allclose(to_np(cn), ref_c, atol=1e-12)
    # unbatched input: a batch of one
    o1, (h1, c1) = m(xbp.tensor(x[:, 0], device=device),
                     None if hx is None else (hx[0][:, 0], hx[1][:, 0]))
    assert o1.shape == (T, D * P) and h1.shape == (L * D, P) and c1.shape == (L * D, H)
    np.testing.assert_allclose(to_np(o1), ref_out[:, 0], atol=1e-12)


def test_lstm_proj_size_gradcheck(device):
    L = 2 if device == "cpu" else 1                   # (strict is slow: one layer there)
    m = nn.LSTM(2, 3, num_layers=L, bidirectional=True, proj_size=2, device=device).double()
    names = [n for n, _ in m.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"]
    rng = np.random.default_rng(6)
    t = lambda *s: xbp.tensor(rng.standard_normal(s), device=device, requires_grad=True)  # noqa: E731
    x, h0, c0 = t(3, 1, 2), t(2 * L, 1, 2), t(2 * L, 1, 3)

    def fn(x, h0, c0, *ps):
        for n, p in zip(names, ps):
            m._parameters[n] = p
        out, (hn, cn) = m(x, (h0, c0))
        return out, hn, cn
    ps = [xbp.tensor(to_np(p), device=device, requires_grad=True) for _, p in m.named_parameters()]
    # every weight (weight_hr too) on cpu; strict checks the input, states and projections, to stay fast
    if device != "cpu":
        ps = [p if "weight_hr" in n else p.detach() for n, p in zip(names, ps)]
    assert gradcheck(fn, (x, h0, c0, *ps))


def test_lstm_proj_size_arguments():
    with pytest.raises(ValueError, match="smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="positive integer or zero"):
        nn.LSTM(3, 4, proj_size=-1)
    m = nn.LSTM(3, 4, num_layers=2, proj_size=2)
    assert [n for n, _ in m.named_parameters()][-1] == "weight_hr_l1" and repr(m).endswith("proj_size=2)")
    bound = 1 / math.sqrt(4)                                  # U(-1/sqrt(hidden_size), ...), as PyTorch
    assert max(np.abs(to_np(p)).max() for p in m.parameters()) <= bound
    x = xbp.randn(5, 2, 3)
    with pytest.raises(ValueError, match="initial state"):
        m(x, (xbp.zeros(2, 2, 4), xbp.zeros(2, 2, 4)))        # h0 must have proj_size features
    with pytest.raises(ValueError, match="initial state"):
        m(x, (xbp.zeros(2, 2, 2), xbp.zeros(2, 2, 2)))        # c0 keeps hidden_size
    out, (h, c) = m(x, (xbp.zeros(2, 2, 2), xbp.zeros(2, 2, 4)))
    assert out.shape == (5, 2, 2) and h.shape == (2, 2, 2) and c.shape == (2, 2, 4)
    m.train()
    m.dropout = 0.5
    assert m(x)[0].shape == (5, 2, 2)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_lstm_proj_size_pytorch_weights_give_pytorch_outputs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True, proj_size=3)
    tm, xm = torch.nn.LSTM(4, 6, **kw), nn.LSTM(4, 6, **kw)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    assert all(tuple(xm.state_dict()[k].shape) == v.shape for k, v in sd.items())
    xm.load_state_dict(sd)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    h0 = rng.standard_normal((4, 2, 3)).astype(np.float32)
    c0 = rng.standard_normal((4, 2, 6)).astype(np.float32)
    xt, xx = torch.tensor(x, requires_grad=True), xbp.tensor(x, requires_grad=True)
    ht, hx = torch.tensor(h0, requires_grad=True), xbp.tensor(h0, requires_grad=True)
    (ot, (hnt, cnt)), (ox, (hnx, cnx)) = tm(xt, (ht, torch.tensor(c0))), xm(xx, (hx, xbp.tensor(c0)))
    for a, b in ((ox, ot), (hnx, hnt), (cnx, cnt)):
        np.testing.assert_allclose(to_np(a), b.detach().numpy(), atol=1e-5)
    ((ot ** 2).sum() + hnt.sum() + cnt.sum()).backward()
    ((ox * ox).sum() + hnx.sum() + cnx.sum()).backward()
    np.testing.assert_allclose(to_np(xx.grad), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_np(hx.grad), ht.grad.numpy(), rtol=1e-4, atol=1e-4)
    for (n, p), (tn, tp) in zip(xm.named_parameters(), tm.named_parameters()):
        assert n == tn
        np.testing.assert_allclose(to_np(p.grad), tp.grad.numpy(), rtol=1e-4, atol=1e-4)
