"""Transformer, TransformerEncoder, TransformerDecoder(Layer): PyTorch 2.13 weights through state
dicts give PyTorch's outputs and input gradients (masks, key padding, batch_first, norm_first,
activations), the causal-mask helper, the state-dict layout and argument checks; grouped-query
scaled_dot_product_attention (enable_gqa)."""
import numpy as np
import pytest

import xbp
import xbp.nn as nn

from conftest import to_np


def _load(xm, tm):
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.load_state_dict(sd)


def _pair(torch, arr, requires_grad=False):
    return torch.tensor(arr, requires_grad=requires_grad), xbp.tensor(arr, requires_grad=requires_grad)


@pytest.mark.parametrize("norm_first,activation,batch_first",
                         [(False, "relu", False), (True, "gelu", True), (False, "gelu", True)])
def test_transformer_matches_pytorch(norm_first, activation, batch_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=12, dropout=0.0,
              activation=activation, norm_first=norm_first, batch_first=batch_first)
    tm, xm = torch.nn.Transformer(**kw), nn.Transformer(**kw)
    assert [n for n, _ in xm.named_modules()] == [n for n, _ in tm.named_modules()]
    _load(xm, tm)
    rng = np.random.default_rng(0)
    S, T, N = 5, 4, 2
    shape = (lambda L: (N, L, 8)) if batch_first else (lambda L: (L, N, 8))
    src = rng.standard_normal(shape(S)).astype(np.float32)
    tgt = rng.standard_normal(shape(T)).astype(np.float32)
    st, sx = _pair(torch, src, True)
    tt, tx = _pair(torch, tgt, True)
    spm = np.zeros((N, S), dtype=bool)
    spm[1, 3:] = True
    tpm = np.zeros((N, T), dtype=bool)
    tpm[0, 3:] = True
    mask_t = torch.nn.Transformer.generate_square_subsequent_mask(T)
    mask_x = nn.Transformer.generate_square_subsequent_mask(T)
    np.testing.assert_array_equal(to_np(mask_x), mask_t.numpy())
    yt = tm(st, tt, tgt_mask=mask_t, src_key_padding_mask=torch.tensor(spm), tgt_key_padding_mask=torch.tensor(tpm),
            memory_key_padding_mask=torch.tensor(spm))
    yx = xm(sx, tx, tgt_mask=mask_x, src_key_padding_mask=xbp.tensor(spm), tgt_key_padding_mask=xbp.tensor(tpm),
            memory_key_padding_mask=xbp.tensor(spm))
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=3e-5)
    w = rng.standard_normal(yt.shape).astype(np.float32)
    (yt * torch.tensor(w)).sum().backward()
    (yx * xbp.tensor(w)).sum().backward()
    np.testing.assert_allclose(to_np(sx.grad), st.grad.numpy(), atol=3e-5)
    np.testing.assert_allclose(to_np(tx.grad), tt.grad.numpy(), atol=3e-5)
    p = dict(xm.named_parameters())
    for name, tp in tm.named_parameters():
        np.testing.assert_allclose(to_np(p[name].grad), tp.grad.numpy(), atol=5e-5, err_msg=name)


def test_decoder_layer_memory_mask_and_causal_flags():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tm = torch.nn.TransformerDecoderLayer(8, 4, dim_feedforward=16, dropout=0.0)
    xm = nn.TransformerDecoderLayer(8, 4, dim_feedforward=16, dropout=0.0)
    _load(xm, tm)
    rng = np.random.default_rng(1)
    tgt, mem = rng.standard_normal((3, 2, 8)).astype(np.float32), rng.standard_normal((5, 2, 8)).astype(np.float32)
    mm = rng.random((3, 5)) > 0.6
    mm[:, 0] = False
    causal = torch.nn.Transformer.generate_square_subsequent_mask(3)
    yt = tm(torch.tensor(tgt), torch.tensor(mem), tgt_mask=causal, memory_mask=torch.tensor(mm), tgt_is_causal=True)
    yx = xm(xbp.tensor(tgt), xbp.tensor(mem), tgt_mask=xbp.tensor(causal.numpy()), memory_mask=xbp.tensor(mm),
            tgt_is_causal=True)
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=2e-5)
    # unbatched (T, E) / (S, E)
    yt = tm(torch.tensor(tgt[:, 0]), torch.tensor(mem[:, 0]))
    yx = xm(xbp.tensor(tgt[:, 0]), xbp.tensor(mem[:, 0]))
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=2e-5)


def test_encoder_stack_with_norm_and_causal_detection():
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    tm = torch.nn.TransformerEncoder(tl, 3, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    xl = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    xm = nn.TransformerEncoder(xl, 3, norm=nn.LayerNorm(8))
    _load(xm, tm)
    assert len(xm.layers) == 3 and xm.layers[0] is not xl
    x = np.random.default_rng(2).standard_normal((2, 4, 8)).astype(np.float32)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(4)
    yt = tm(torch.tensor(x), mask=causal)
    yx = xm(xbp.tensor(x), mask=nn.Transformer.generate_square_subsequent_mask(4))
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=2e-5)


def test_transformer_trains_on_device(device):
    m = nn.Transformer(8, 2, 1, 1, 8, dropout=0.0, device=device)
    src = xbp.randn(3, 2, 8, device=device)
    tgt = xbp.randn(2, 2, 8, device=device)
    y = m(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(2, device=device))
    assert y.shape == (2, 2, 8) and str(y.device) == str(src.device)
    (y ** 2).mean().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_transformer_checks_shapes():
    m = nn.Transformer(8, 2, 1, 1, 8)
    with pytest.raises(RuntimeError, match="batch number"):
        m(xbp.randn(3, 2, 8), xbp.randn(3, 3, 8))
    with pytest.raises(RuntimeError, match="d_model"):
        m(xbp.randn(3, 2, 6), xbp.randn(3, 2, 6))


def test_eval_mode_fast_path_and_unbatched():
    # in eval, PyTorch's encoder takes its nested-tensor fast path (padded positions come out as
    # zeros); xbp computes them like the others, so only the real positions are compared there
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=12, dropout=0.2,
              batch_first=True)
    tm, xm = torch.nn.Transformer(**kw).eval(), nn.Transformer(**kw).eval()
    _load(xm, tm)
    rng = np.random.default_rng(3)
    src, tgt = rng.standard_normal((2, 5, 8)).astype(np.float32), rng.standard_normal((2, 3, 8)).astype(np.float32)
    spm = np.zeros((2, 5), dtype=bool)
    spm[1, 3:] = True
    with torch.no_grad():
        yt = tm(torch.tensor(src), torch.tensor(tgt), src_key_padding_mask=torch.tensor(spm),
                memory_key_padding_mask=torch.tensor(spm))
        mt = tm.encoder(torch.tensor(src), src_key_padding_mask=torch.tensor(spm)).numpy()
    yx = xm(xbp.tensor(src), xbp.tensor(tgt), src_key_padding_mask=xbp.tensor(spm),
            memory_key_padding_mask=xbp.tensor(spm))
    np.testing.assert_allclose(to_np(yx), yt.numpy(), atol=2e-5)
    mx = to_np(xm.encoder(xbp.tensor(src), src_key_padding_mask=xbp.tensor(spm)))
    np.testing.assert_allclose(mx[0], mt[0], atol=2e-5)
    np.testing.assert_allclose(mx[1, :3], mt[1, :3], atol=2e-5)
    with torch.no_grad():
        yt = tm(torch.tensor(src[0]), torch.tensor(tgt[0]))
    np.testing.assert_allclose(to_np(xm(xbp.tensor(src[0]), xbp.tensor(tgt[0]))), yt.numpy(), atol=2e-5)


@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_grouped_query_attention(device, is_causal):
    torch = pytest.importorskip("torch")
    import xbp.nn.functional as F
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((2, 6, 3, 4)), rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((2, 2, 5, 3))]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    xs = [xbp.tensor(a, device=device, requires_grad=True) for a in arrays]
    yt = torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=is_causal, enable_gqa=True)
    yx = F.scaled_dot_product_attention(*xs, is_causal=is_causal, enable_gqa=True)
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=1e-12)
    (yt ** 2).sum().backward()
    (yx ** 2).sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="multiple"):
        F.scaled_dot_product_attention(xs[0], xbp.randn(2, 4, 5, 4, device=device, dtype=np.float64),
                                       xbp.randn(2, 4, 5, 3, device=device, dtype=np.float64), enable_gqa=True)
