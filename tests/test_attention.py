"""Attention: scaled_dot_product_attention against NumPy (bool and additive masks, causal, scale,
dropout), MultiheadAttention against the per-head equations (masks, need_weights, batch_first),
gradcheck, and PyTorch weights through state dicts for MultiheadAttention and
TransformerEncoderLayer."""
import math

import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp.autograd import gradcheck

from conftest import rand, to_np


def np_softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_sdpa(q, k, v, add_mask=None, scale=None):
    s = q @ np.swapaxes(k, -1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if add_mask is not None:
        s = s + add_mask
    return np_softmax(s) @ v


def test_sdpa_plain_and_scale(device):
    q, qn = rand((2, 3, 4, 5), device, seed=1)
    k, kn = rand((2, 3, 6, 5), device, seed=2)
    v, vn = rand((2, 3, 6, 7), device, seed=3)
    np.testing.assert_allclose(to_np(F.scaled_dot_product_attention(q, k, v)), np_sdpa(qn, kn, vn), atol=1e-12)
    np.testing.assert_allclose(to_np(F.scaled_dot_product_attention(q, k, v, scale=0.3)),
                               np_sdpa(qn, kn, vn, scale=0.3), atol=1e-12)


def test_sdpa_masks(device):
    q, qn = rand((2, 4, 3), device, seed=4)
    k, kn = rand((2, 5, 3), device, seed=5)
    v, vn = rand((2, 5, 2), device, seed=6)
    allowed = np.random.default_rng(7).random((4, 5)) > 0.4
    allowed[:, 0] = True                                         # every query sees something
    add = np.where(allowed, 0.0, -np.inf)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=xbp.tensor(allowed, device=device))
    np.testing.assert_allclose(to_np(y), np_sdpa(qn, kn, vn, add), atol=1e-12)
    fm, fmn = rand((4, 5), device, seed=8, requires_grad=False)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=fm)
    np.testing.assert_allclose(to_np(y), np_sdpa(qn, kn, vn, fmn), atol=1e-12)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    causal = np.where(np.arange(5)[None, :] > np.arange(4)[:, None], -np.inf, 0.0)
    np.testing.assert_allclose(to_np(y), np_sdpa(qn, kn, vn, causal), atol=1e-12)
    with pytest.raises(ValueError, match="either"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=fm, is_causal=True)


def test_sdpa_gradcheck(device):
    q, _ = rand((1, 3, 2), device, seed=9)
    k, _ = rand((1, 4, 2), device, seed=10)
    v, _ = rand((1, 4, 2), device, seed=11)
    mask = xbp.tensor(np.array([[1, 1, 0, 1], [1, 0, 1, 1], [1, 1, 1, 0]], dtype=bool), device=device)
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), (q, k, v))
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (q, k, v))


def test_sdpa_dropout():
    q = xbp.randn(2, 8, 4, dtype=xbp.float64)
    y0 = F.scaled_dot_product_attention(q, q, q)
    y1 = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    assert y1.shape == y0.shape and not np.allclose(to_np(y0), to_np(y1))


def np_mha(m, q, k, v, add_mask=None):
    """Seq-first (L, N, E) query, (S, N, kdim) key, (S, N, vdim) value; returns (out, head-averaged
    weights). Separate q/k/v projections when the module has them; bias_k/bias_v and a zero row
    (add_zero_attn) appended to the projected keys and values; add_mask (N, L, S) for the original
    keys ((N, heads, L, S) for a mask per head), the added ones unmasked."""
    p = {n: to_np(t) for n, t in m.named_parameters()}
    E, Hn = m.embed_dim, m.num_heads
    hd = E // Hn
    if "in_proj_weight" in p:
        W = p["in_proj_weight"]
        Wq, Wk, Wv = W[:E], W[E:2 * E], W[2 * E:]
    else:
        Wq, Wk, Wv = p["q_proj_weight"], p["k_proj_weight"], p["v_proj_weight"]
    b = p.get("in_proj_bias", np.zeros(3 * E))
    Q, K, V = q @ Wq.T + b[:E], k @ Wk.T + b[E:2 * E], v @ Wv.T + b[2 * E:]
    L, N, _ = q.shape
    extra = []
    if "bias_k" in p:
        extra.append((p["bias_k"], p["bias_v"]))
    if getattr(m, "add_zero_attn", False):
        extra.append((np.zeros((1, 1, E)), np.zeros((1, 1, E))))
    for bk, bv in extra:
        K = np.concatenate([K, np.broadcast_to(bk, (1, N, E))])
        V = np.concatenate([V, np.broadcast_to(bv, (1, N, E))])
    S = K.shape[0]
    if add_mask is not None:
        add_mask = np.concatenate([add_mask, np.zeros(add_mask.shape[:-1] + (S - add_mask.shape[-1],))], -1)
    out = np.zeros((L, N, E))
    weights = np.zeros((N, L, S))
    for n in range(N):
        for h in range(Hn):
            sl = slice(h * hd, (h + 1) * hd)
            s = Q[:, n, sl] @ K[:, n, sl].T / math.sqrt(hd)
            if add_mask is not None:
                s = s + (add_mask[n, h] if add_mask.ndim == 4 else add_mask[n])
            a = np_softmax(s)
            out[:, n, sl] = a @ V[:, n, sl]
            weights[n] += a / Hn
    out = out @ p["out_proj.weight"].T + p.get("out_proj.bias", 0.0)
    return out, weights


def test_mha_matches_per_head_equations(device):
    m = nn.MultiheadAttention(6, 2, device=device).double()
    names = ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert [n for n, _ in m.named_parameters()] == names
    assert m.in_proj_weight.shape == (18, 6) and np.all(to_np(m.in_proj_bias) == 0)
    with xbp.no_grad():
        m.in_proj_bias.copy_(xbp.randn(18, dtype=xbp.float64, device=device))
        m.out_proj.bias.copy_(xbp.randn(6, dtype=xbp.float64, device=device))
    rng = np.random.default_rng(12)
    q, k = rng.standard_normal((3, 2, 6)), rng.standard_normal((4, 2, 6))
    kpm = np.array([[False, False, True, False], [False, False, False, True]])
    am = rng.random((3, 4)) > 0.8
    am[:, 0] = False
    Q, K = xbp.tensor(q, device=device), xbp.tensor(k, device=device)
    out, w = m(Q, K, K)
    ro, rw = np_mha(m, q, k, k)
    np.testing.assert_allclose(to_np(out), ro, atol=1e-12)
    np.testing.assert_allclose(to_np(w), rw, atol=1e-12)
    out, w = m(Q, K, K, key_padding_mask=xbp.tensor(kpm, device=device), attn_mask=xbp.tensor(am, device=device))
    add = np.where(am[None] | kpm[:, None, :], -np.inf, 0.0)
    ro, rw = np_mha(m, q, k, k, add)
    np.testing.assert_allclose(to_np(out), ro, atol=1e-12)
    np.testing.assert_allclose(to_np(w), rw, atol=1e-12)
    out, w = m(Q, Q, Q, need_weights=False)                       # self-attention path
    np.testing.assert_allclose(to_np(out), np_mha(m, q, q, q)[0], atol=1e-12)
    assert w is None
    _, wh = m(Q, K, K, average_attn_weights=False)
    assert wh.shape == (2, 2, 3, 4)
    mb = nn.MultiheadAttention(6, 2, batch_first=True, device=device).double()
    mb.load_state_dict(m.state_dict())
    ob, _ = mb(xbp.tensor(np.swapaxes(q, 0, 1), device=device), xbp.tensor(np.swapaxes(k, 0, 1), device=device),
               xbp.tensor(np.swapaxes(k, 0, 1), device=device))
    np.testing.assert_allclose(to_np(ob), np.swapaxes(np_mha(m, q, k, k)[0], 0, 1), atol=1e-12)


def test_mha_gradcheck(device):
    m = nn.MultiheadAttention(4, 2, device=device).double()
    x, _ = rand((2, 1, 4), device, seed=13)
    names = [n for n, _ in m.named_parameters()]
    ps = [xbp.tensor(to_np(p), device=device, requires_grad=device == "cpu") for _, p in m.named_parameters()]

    def fn(x, *ps):
        F_ = xbp.nn.functional
        return F_.multi_head_attention_forward(x, x, x, 4, 2, ps[0], ps[1], None, None, False, 0.0, ps[2], ps[3],
                                               need_weights=False)[0]
    assert names == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert gradcheck(fn, (x, *ps))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_layer_pytorch_weights(norm_first, activation):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(dim_feedforward=16, dropout=0.1, activation=activation, norm_first=norm_first, batch_first=True)
    tm, xm = torch.nn.TransformerEncoderLayer(8, 2, **kw), nn.TransformerEncoderLayer(8, 2, **kw)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    assert [n for n, _ in xm.named_modules()] == [n for n, _ in tm.named_modules()]
    xm.load_state_dict(sd)
    xm.eval()
    tm.eval()
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    kpm = np.zeros((2, 5), dtype=bool)
    kpm[1, 3:] = True
    yt = tm(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm))
    yx = xm(xbp.tensor(x), src_key_padding_mask=xbp.tensor(kpm))
    np.testing.assert_allclose(to_np(yx)[0], yt.detach().numpy()[0], atol=2e-5)
    np.testing.assert_allclose(to_np(yx)[1, :3], yt.detach().numpy()[1, :3], atol=2e-5)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    yt = tm(torch.tensor(x), src_mask=causal)
    yx = xm(xbp.tensor(x), src_mask=xbp.tensor(causal.numpy()))
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=2e-5)


def test_mha_pytorch_weights_and_gradients():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm, xm = torch.nn.MultiheadAttention(8, 4), nn.MultiheadAttention(8, 4)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.load_state_dict(sd)
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((3, 2, 8)).astype(np.float32), rng.standard_normal((5, 2, 8)).astype(np.float32)
    am = rng.random((3, 5)) > 0.7
    am[:, 0] = False
    qt, qx = torch.tensor(q, requires_grad=True), xbp.tensor(q, requires_grad=True)
    ot, wt = tm(qt, torch.tensor(k), torch.tensor(k), attn_mask=torch.tensor(am))
    ox, wx = xm(qx, xbp.tensor(k), xbp.tensor(k), attn_mask=xbp.tensor(am))
    np.testing.assert_allclose(to_np(ox), ot.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(to_np(wx), wt.detach().numpy(), atol=1e-5)
    (ot ** 2).sum().backward()
    (ox * ox).sum().backward()
    np.testing.assert_allclose(to_np(qx.grad), qt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_np(xm.in_proj_weight.grad), tm.in_proj_weight.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_transformer_encoder_layer_trains(device):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, device=device)
    x = xbp.randn(4, 3, 8, device=device)
    assert layer(x).shape == (4, 3, 8)
    params = list(layer.parameters())
    loss = (layer(x) ** 2).mean()
    loss.backward()
    assert all(p.grad is not None for p in params)


# --- kdim / vdim, add_bias_kv, add_zero_attn ------------------------------------------------------
MHA_OPTIONS = [
    dict(kdim=5, vdim=3),
    dict(add_bias_kv=True),
    dict(add_zero_attn=True),
    dict(kdim=5, vdim=3, add_bias_kv=True, add_zero_attn=True, bias=False),
]


@pytest.mark.parametrize("opts", MHA_OPTIONS)
def test_mha_options_match_per_head_equations(device, opts):
    m = nn.MultiheadAttention(6, 2, device=device, **opts).double()
    sep = "kdim" in opts
    kd, vd = opts.get("kdim", 6), opts.get("vdim", 6)
    names = [n for n, _ in m.named_parameters()]
    want = ((["q_proj_weight", "k_proj_weight", "v_proj_weight"] if sep else ["in_proj_weight"])
            + (["in_proj_bias"] if opts.get("bias", True) else []) + (["bias_k", "bias_v"] if "add_bias_kv" in opts else [])
            + ["out_proj.weight"] + (["out_proj.bias"] if opts.get("bias", True) else []))
    assert names == want and m._qkv_same_embed_dim == (not sep)
    if sep:
        assert m.in_proj_weight is None and m.q_proj_weight.shape == (6, 6)
        assert m.k_proj_weight.shape == (6, kd) and m.v_proj_weight.shape == (6, vd)
    else:
        assert m.q_proj_weight is None and m.in_proj_weight.shape == (18, 6)
    if "add_bias_kv" in opts:
        assert m.bias_k.shape == (1, 1, 6) and m.bias_v.shape == (1, 1, 6) and np.any(to_np(m.bias_k) != 0)
    else:
        assert m.bias_k is None and m.bias_v is None
    rng = np.random.default_rng(14)
    q, k, v = rng.standard_normal((3, 2, 6)), rng.standard_normal((4, 2, kd)), rng.standard_normal((4, 2, vd))
    Q, K, V = (xbp.tensor(a, device=device) for a in (q, k, v))
    kpm = np.array([[False, False, True, False], [True, True, True, True]])   # sample 1: only the added keys
    am = rng.random((3, 4)) > 0.7
    fam = rng.standard_normal((4, 3, 4))                                      # (N*heads, L, S), added
    out, w = m(Q, K, V)
    ro, rw = np_mha(m, q, k, v)
    np.testing.assert_allclose(to_np(out), ro, atol=1e-12)
    np.testing.assert_allclose(to_np(w), rw, atol=1e-12)
    extra = ("add_bias_kv" in opts) + ("add_zero_attn" in opts)
    assert w.shape == (2, 3, 4 + extra)
    if extra:        # the added keys stay visible through any mask
        out, w = m(Q, K, V, key_padding_mask=xbp.tensor(kpm, device=device), attn_mask=xbp.tensor(am, device=device))
        ro, rw = np_mha(m, q, k, v, np.where(am[None] | kpm[:, None, :], -np.inf, 0.0))
        np.testing.assert_allclose(to_np(out), ro, atol=1e-12)
        np.testing.assert_allclose(to_np(w), rw, atol=1e-12)
    out, w = m(Q, K, V, attn_mask=xbp.tensor(fam, device=device))
    ro, rw = np_mha(m, q, k, v, fam.reshape(2, 2, 3, 4))
    np.testing.assert_allclose(to_np(out), ro, atol=1e-12)
    np.testing.assert_allclose(to_np(w), rw, atol=1e-12)
    _, wh = m(Q, K, V, attn_mask=xbp.tensor(fam, device=device), average_attn_weights=False)
    assert wh.shape == (2, 2, 3, 4 + extra)
    np.testing.assert_allclose(to_np(wh).mean(1), rw, atol=1e-12)
    # unbatched, and batch_first
    o1, w1 = m(Q[:, 1], K[:, 1], V[:, 1])
    np.testing.assert_allclose(to_np(o1), np_mha(m, q, k, v)[0][:, 1], atol=1e-12)
    assert w1.shape == (3, 4 + extra)
    mb = nn.MultiheadAttention(6, 2, batch_first=True, device=device, **opts).double()
    mb.load_state_dict(m.state_dict())
    ob, _ = mb(*(xbp.tensor(np.swapaxes(a, 0, 1), device=device) for a in (q, k, v)))
    np.testing.assert_allclose(to_np(ob), np.swapaxes(np_mha(m, q, k, v)[0], 0, 1), atol=1e-12)
    with pytest.raises(ValueError, match="key has"):
        m(Q, Q, V) if sep else m(Q, V[..., :5], V)


@pytest.mark.parametrize("opts", [MHA_OPTIONS[3], dict(kdim=3, add_bias_kv=True)])
def test_mha_options_gradcheck(device, opts):
    m = nn.MultiheadAttention(4, 2, device=device, **opts).double()
    rng = np.random.default_rng(15)
    kd, vd = opts.get("kdim", 4), opts.get("vdim", 4)
    t = lambda *s: xbp.tensor(rng.standard_normal(s), device=device, requires_grad=True)  # noqa: E731
    q, k, v = t(2, 1, 4), t(3, 1, kd), t(3, 1, vd)
    kpm = xbp.tensor(np.array([[False, True, False]]), device=device)
    names = [n for n, _ in m.named_parameters()]
    new = ("q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k", "bias_v")
    # every parameter on cpu; strict checks the inputs and the new parameters, to stay fast
    ps = [xbp.tensor(to_np(p), device=device, requires_grad=device == "cpu" or n in new)
          for n, p in m.named_parameters()]

    def fn(q, k, v, *ps):
        for n, p in zip(names, ps):
            *mod, leaf = n.split(".")
            (m.get_submodule(mod[0]) if mod else m)._parameters[leaf] = p
        return m(q, k, v, key_padding_mask=kpm)
    assert gradcheck(fn, (q, k, v, *ps))


@pytest.mark.parametrize("opts", MHA_OPTIONS)
def test_mha_options_pytorch_weights_and_gradients(opts):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm, xm = torch.nn.MultiheadAttention(8, 4, **opts), nn.MultiheadAttention(8, 4, **opts)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    assert all(tuple(xm.state_dict()[k].shape) == v.shape for k, v in sd.items())
    xm.load_state_dict(sd)
    rng = np.random.default_rng(1)
    kd, vd = opts.get("kdim", 8), opts.get("vdim", 8)
    q = rng.standard_normal((3, 2, 8)).astype(np.float32)
    k, v = rng.standard_normal((5, 2, kd)).astype(np.float32), rng.standard_normal((5, 2, vd)).astype(np.float32)
    am = rng.random((3, 5)) > 0.7
    am[:, :2] = False                                    # no query loses every key
    kpm = np.zeros((2, 5), dtype=bool)
    kpm[1, 2:] = True
    qt, qx = torch.tensor(q, requires_grad=True), xbp.tensor(q, requires_grad=True)
    kt, kx = torch.tensor(k, requires_grad=True), xbp.tensor(k, requires_grad=True)
    ot, wt = tm(qt, kt, torch.tensor(v), attn_mask=torch.tensor(am), key_padding_mask=torch.tensor(kpm))
    ox, wx = xm(qx, kx, xbp.tensor(v), attn_mask=xbp.tensor(am), key_padding_mask=xbp.tensor(kpm))
    np.testing.assert_allclose(to_np(ox), ot.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(to_np(wx), wt.detach().numpy(), atol=1e-5)
    ((ot ** 2).sum() + wt.sum()).backward()
    ((ox * ox).sum() + wx.sum()).backward()
    np.testing.assert_allclose(to_np(qx.grad), qt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_np(kx.grad), kt.grad.numpy(), rtol=1e-4, atol=1e-4)
    for (n, p), (tn, tp) in zip(xm.named_parameters(), tm.named_parameters()):
        assert n == tn
        np.testing.assert_allclose(to_np(p.grad), tp.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_functional_mha_takes_pytorchs_positional_signature():
    # F.multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,
    # in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, ...):
    # the same call, argument for argument, as torch.nn.functional's
    torch = pytest.importorskip("torch")
    rs = np.random.RandomState(21)
    L, S, N, E, H = 3, 4, 2, 6, 2
    q, k, v = rs.randn(L, N, E), rs.randn(S, N, E), rs.randn(S, N, E)
    w_in, b_in = rs.randn(3 * E, E) * 0.3, rs.randn(3 * E) * 0.1
    bk, bv = rs.randn(1, 1, E), rs.randn(1, 1, E)
    w_out, b_out = rs.randn(E, E) * 0.3, rs.randn(E) * 0.1
    mask = np.zeros((N, S), bool)
    mask[1, -1] = True
    T = torch.tensor
    want, want_w = torch.nn.functional.multi_head_attention_forward(
        T(q), T(k), T(v), E, H, T(w_in), T(b_in), T(bk), T(bv), True, 0.0, T(w_out), T(b_out),
        training=False, key_padding_mask=T(mask))
    X = xbp.tensor
    got, got_w = xbp.nn.functional.multi_head_attention_forward(
        X(q), X(k), X(v), E, H, X(w_in), X(b_in), X(bk), X(bv), True, 0.0, X(w_out), X(b_out),
        training=False, key_padding_mask=X(mask))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_w.numpy(), want_w.numpy(), rtol=1e-10, atol=1e-12)
