"""xbp.onnx.export: the file passes onnx.checker and onnxruntime computes xbp's outputs (eval mode)
for MLPs, CNNs, norms, embeddings and every exported activation; dynamic axes run other batch
sizes; what cannot be exported is refused by name."""
import io

import numpy as np
import pytest

import xbp
from xbp import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path_or_bytes, x):
    sess = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _randomise_norm_stats(model):
    rng = np.random.default_rng(3)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(xbp.tensor(rng.normal(size=m.num_features).astype(np.float32)))
            m.running_var.copy_(xbp.tensor(rng.uniform(0.5, 2, size=m.num_features).astype(np.float32)))


MODELS = {
    "mlp": (lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)), (4, 6)),
    "activations": (lambda: nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Sigmoid(), nn.LeakyReLU(0.1), nn.ELU(0.7),
                                          nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Softplus(),
                                          nn.Softplus(beta=2.0), nn.Identity(), nn.LogSoftmax(dim=1)), (5, 6)),
    "cnn": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(4, 5, 3, stride=2, dilation=1, groups=1, padding="valid"),
                                  nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(5, 2), nn.Softmax(dim=-1)),
            (2, 3, 12, 12)),
    "cnn-global": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding="same", groups=2), nn.AdaptiveAvgPool2d(1),
                                         nn.Flatten()), (3, 2, 7, 9)),
    "cnn-bins": (lambda: nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.AdaptiveAvgPool2d((2, 3)),
                                       nn.Flatten(0, 1)), (2, 2, 8, 9)),
    "conv1d-norms": (lambda: nn.Sequential(nn.Conv1d(3, 4, 3, padding=2, dilation=2), nn.Flatten(1, 2),
                                           nn.BatchNorm1d(40), nn.LayerNorm(40)), (3, 3, 10)),
    "nested": (lambda: nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Sequential(nn.Linear(4, 2))),
               (3, 4)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_computes_xbps_outputs(name, tmp_path):
    make, shape = MODELS[name]
    xbp.manual_seed(0)
    model = make()
    _randomise_norm_stats(model)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    p = tmp_path / "m.onnx"
    model.train()
    xbp.onnx.export(model, (xbp.tensor(x),), str(p), input_names=["x"], output_names=["y"])
    assert model.training                               # restored
    onnx.checker.check_model(onnx.load(str(p)))
    model.eval()
    with xbp.no_grad():
        want = model(xbp.tensor(x)).numpy()
    np.testing.assert_allclose(_run(str(p), x), want, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_and_file_objects():
    model = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 2))
    buf = io.BytesIO()
    xbp.onnx.export(model, xbp.zeros(2, 3), buf, dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    x = np.random.default_rng(2).normal(size=(7, 3)).astype(np.float32)
    with xbp.no_grad():
        want = model(xbp.tensor(x)).numpy()
    np.testing.assert_allclose(_run(buf.getvalue(), x), want, rtol=1e-5, atol=1e-6)
    dims = onnx.load_from_string(buf.getvalue()).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 3


def test_embedding_takes_int64_ids(tmp_path):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    ids = np.array([[1, 2, 9], [0, 0, 5]], dtype=np.int64)
    p = tmp_path / "e.onnx"
    xbp.onnx.export(model, xbp.tensor(ids), p)
    with xbp.no_grad():
        want = model(xbp.tensor(ids)).numpy()
    np.testing.assert_allclose(_run(str(p), ids), want, rtol=1e-5, atol=1e-6)


def test_float64_models_export_in_float64(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2, dtype=xbp.float64), nn.Tanh())
    x = np.random.default_rng(0).normal(size=(2, 3))
    xbp.onnx.export(model, xbp.tensor(x), tmp_path / "d.onnx")
    with xbp.no_grad():
        want = model(xbp.tensor(x)).numpy()
    np.testing.assert_allclose(_run(str(tmp_path / "d.onnx"), x), want, rtol=1e-12)


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) * 2


def test_what_cannot_be_exported_is_refused_by_name(tmp_path):
    with pytest.raises(NotImplementedError, match=r"cannot export _Custom at 1"):
        xbp.onnx.export(nn.Sequential(nn.Identity(), _Custom()), xbp.zeros(1, 2), tmp_path / "c.onnx")
    with pytest.raises(NotImplementedError, match="unequal bins"):
        xbp.onnx.export(nn.AdaptiveAvgPool2d(3), xbp.zeros(1, 1, 5, 5), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="dim=None"):
        xbp.onnx.export(nn.Softmax(), xbp.zeros(1, 2), tmp_path / "s.onnx")
    with pytest.raises(ValueError, match="opset_version must be an integer >= 13"):
        xbp.onnx.export(nn.ReLU(), xbp.zeros(1, 2), tmp_path / "r.onnx", opset_version=11)
    with pytest.raises(ValueError, match="dynamic_axes names"):
        xbp.onnx.export(nn.ReLU(), xbp.zeros(1, 2), tmp_path / "r.onnx", dynamic_axes={"x": [0]})
    with pytest.raises(TypeError, match="one Tensor"):
        xbp.onnx.export(nn.ReLU(), (xbp.zeros(1), xbp.zeros(1)), tmp_path / "r.onnx")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind,kw", [("LSTM", {}), ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
                                     ("GRU", dict(num_layers=2)), ("GRU", dict(bidirectional=True, batch_first=True)),
                                     ("RNN", dict(nonlinearity="relu", num_layers=2)), ("RNN", dict(bias=False))])
def test_recurrent_layers_match_onnxruntime(kind, kw, tmp_path):
    xbp.manual_seed(0)
    model = getattr(nn, kind)(4, 5, **kw)
    T, B = 6, 3
    shape = (B, T, 4) if kw.get("batch_first") else (T, B, 4)
    x = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    p = tmp_path / "r.onnx"
    names = ["out", "h_n", "c_n"] if kind == "LSTM" else ["out", "h_n"]
    xbp.onnx.export(model, xbp.tensor(x), p, output_names=names)
    with xbp.no_grad():
        want = model(xbp.tensor(x))
    want = [want[0], *want[1]] if kind == "LSTM" else list(want)
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})
    assert [o.name for o in sess.get_outputs()] == names
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)


# --- attention: MultiheadAttention (self-attention), TransformerEncoderLayer, TransformerEncoder ---

def _export_bytes(model, args, **kw):
    buf = io.BytesIO()
    xbp.onnx.export(model, args, buf, **kw)
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
    return buf.getvalue()


def _xbp_out(model, x, **kw):
    model.eval()
    with xbp.no_grad():
        if isinstance(model, nn.MultiheadAttention):
            return model(x, x, x, need_weights=False, **kw)[0].numpy()
        return model(x, **kw).numpy()


def _enc_layer(**kw):
    return nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, **kw)      # dropout 0.1: off in eval


ATTENTION = {
    "mha": (lambda: nn.MultiheadAttention(8, 2), (5, 3, 8)),
    "mha-batch-first-no-bias": (lambda: nn.MultiheadAttention(8, 4, bias=False, batch_first=True), (3, 5, 8)),
    "mha-one-head-unbatched": (lambda: nn.MultiheadAttention(6, 1), (4, 6)),
    "layer-post-norm-relu": (lambda: _enc_layer(), (5, 3, 8)),
    "layer-pre-norm-gelu-batch-first": (lambda: _enc_layer(norm_first=True, activation="gelu", batch_first=True),
                                        (3, 5, 8)),
    "layer-no-bias-gelu-module": (lambda: _enc_layer(bias=False, activation=nn.GELU(approximate="tanh")), (4, 2, 8)),
    "layer-unbatched": (lambda: _enc_layer(norm_first=True), (4, 8)),
    "encoder-with-norm": (lambda: nn.TransformerEncoder(_enc_layer(batch_first=True), 2, norm=nn.LayerNorm(8)),
                          (2, 6, 8)),
    "encoder-pre-norm": (lambda: nn.TransformerEncoder(_enc_layer(norm_first=True, activation="gelu"), 3), (6, 2, 8)),
    "sequential-of-layers": (lambda: nn.Sequential(nn.Linear(5, 8), _enc_layer(batch_first=True),
                                                   _enc_layer(norm_first=True, batch_first=True), nn.Linear(8, 2)),
                             (2, 4, 5)),
    "sequential-with-encoder": (lambda: nn.Sequential(nn.Embedding(11, 8), nn.TransformerEncoder(
        _enc_layer(batch_first=True), 2), nn.LayerNorm(8)), (3, 5)),
}


@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_attention_layers_match_onnxruntime(name):
    make, shape = ATTENTION[name]
    xbp.manual_seed(0)
    model = make()
    rng = np.random.default_rng(5)
    if name.startswith("sequential-with-encoder"):
        x = rng.integers(0, 11, size=shape).astype(np.int64)
    else:
        x = rng.normal(size=shape).astype(np.float32)
    with xbp.no_grad():                # nonzero biases, so a bias slice in the wrong place would show
        for mod in model.modules():
            if isinstance(mod, nn.MultiheadAttention) and mod.in_proj_bias is not None:
                mod.in_proj_bias.copy_(xbp.tensor(rng.normal(size=mod.in_proj_bias.shape).astype(np.float32)))
                mod.out_proj.bias.copy_(xbp.tensor(rng.normal(size=mod.out_proj.bias.shape).astype(np.float32)))
    model.train()
    data = _export_bytes(model, xbp.tensor(x))
    assert model.training
    np.testing.assert_allclose(_run(data, x), _xbp_out(model, xbp.tensor(x)), rtol=1e-5, atol=1e-5)
    ops_used = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"MatMul", "Softmax", "Reshape", "Transpose"} <= ops_used


@pytest.mark.parametrize("batch_first", [False, True])
def test_attention_dynamic_batch_and_sequence(batch_first):
    xbp.manual_seed(1)
    model = nn.TransformerEncoder(_enc_layer(batch_first=batch_first), 2, norm=nn.LayerNorm(8))
    b_ax, s_ax = (0, 1) if batch_first else (1, 0)
    axes = {b_ax: "batch", s_ax: "seq"}
    shape = (2, 3, 8) if batch_first else (3, 2, 8)
    data = _export_bytes(model, xbp.zeros(*shape), dynamic_axes={"input": axes, "output": axes})
    rng = np.random.default_rng(6)
    for n, s in ((5, 7), (1, 2)):
        x = rng.normal(size=(n, s, 8) if batch_first else (s, n, 8)).astype(np.float32)
        np.testing.assert_allclose(_run(data, x), _xbp_out(model, xbp.tensor(x)), rtol=1e-5, atol=1e-5)
    dims = onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim
    assert dims[b_ax].dim_param == "batch" and dims[s_ax].dim_param == "seq"


def _run_feeds(data, feeds):
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess, sess.run(None, feeds)[0]


def test_mha_masks_become_graph_inputs():
    xbp.manual_seed(2)
    L, N, E = 5, 3, 8
    model = nn.MultiheadAttention(E, 2)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(L, N, E)).astype(np.float32)
    am = np.triu(np.ones((L, L), bool), 1)                    # bool: True = may not attend
    kpm = np.zeros((N, L), bool)
    kpm[0, 3:] = True
    kpm[2, :] = True                                          # every key masked: zero output rows, not NaN
    data = _export_bytes(model, (xbp.tensor(x), {"attn_mask": xbp.tensor(am), "key_padding_mask": xbp.tensor(kpm)}),
                         input_names=["x", "am", "kpm"])
    sess, got = _run_feeds(data, {"x": x, "am": am, "kpm": kpm})
    assert [i.name for i in sess.get_inputs()] == ["x", "am", "kpm"]
    want = _xbp_out(model, xbp.tensor(x), attn_mask=xbp.tensor(am), key_padding_mask=xbp.tensor(kpm))
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    kpm2 = np.zeros((N, L), bool)                             # another mask through the same file
    kpm2[1, :2] = True
    _, got = _run_feeds(data, {"x": x, "am": am, "kpm": kpm2})
    want = _xbp_out(model, xbp.tensor(x), attn_mask=xbp.tensor(am), key_padding_mask=xbp.tensor(kpm2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_mha_float_per_head_mask_and_causal():
    xbp.manual_seed(3)
    N, L, E, H = 2, 4, 8, 4
    model = nn.MultiheadAttention(E, H, batch_first=True)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(N, L, E)).astype(np.float32)
    am = rng.normal(size=(N * H, L, L)).astype(np.float32)
    data = _export_bytes(model, (xbp.tensor(x), {"attn_mask": xbp.tensor(am), "need_weights": False}))
    _, got = _run_feeds(data, {"input": x, "attn_mask": am})
    np.testing.assert_allclose(got, _xbp_out(model, xbp.tensor(x), attn_mask=xbp.tensor(am)), rtol=1e-5, atol=1e-5)
    # is_causal without a mask: built in the graph for whatever length comes
    axes = {0: "batch", 1: "seq"}
    data = _export_bytes(model, (xbp.tensor(x), {"is_causal": True}), dynamic_axes={"input": axes, "output": axes})
    for shape in ((N, L, E), (3, 7, E)):
        x2 = rng.normal(size=shape).astype(np.float32)
        _, got = _run_feeds(data, {"input": x2})
        np.testing.assert_allclose(got, _xbp_out(model, xbp.tensor(x2), is_causal=True), rtol=1e-5, atol=1e-5)


def test_encoder_masks_match_onnxruntime():
    xbp.manual_seed(4)
    S, N, E = 6, 2, 8
    rng = np.random.default_rng(9)
    x = rng.normal(size=(N, S, E)).astype(np.float32)
    kpm = np.zeros((N, S), bool)
    kpm[1, 4:] = True
    layer = _enc_layer(batch_first=True, norm_first=True)
    data = _export_bytes(layer, (xbp.tensor(x), {"src_key_padding_mask": xbp.tensor(kpm), "is_causal": True}))
    _, got = _run_feeds(data, {"input": x, "src_key_padding_mask": kpm})
    want = _xbp_out(layer, xbp.tensor(x), src_key_padding_mask=xbp.tensor(kpm), is_causal=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    enc = nn.TransformerEncoder(_enc_layer(batch_first=True), 2, norm=nn.LayerNorm(E))
    mask = nn.Transformer.generate_square_subsequent_mask(S).numpy()          # float, -inf above the diagonal
    data = _export_bytes(enc, (xbp.tensor(x), {"mask": xbp.tensor(mask), "src_key_padding_mask": xbp.tensor(kpm)}),
                         opset_version=18)
    _, got = _run_feeds(data, {"input": x, "mask": mask, "src_key_padding_mask": kpm})
    want = _xbp_out(enc, xbp.tensor(x), mask=xbp.tensor(mask), src_key_padding_mask=xbp.tensor(kpm))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_onnx_matches_pytorch_encoder_layer():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(8, 2, 12, activation="gelu", batch_first=True).eval()
    model = _enc_layer(activation="gelu", batch_first=True)
    model.load_state_dict({k: xbp.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    x = np.random.default_rng(10).normal(size=(2, 5, 8)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(_export_bytes(model, xbp.tensor(x)), x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [13, 16])
def test_attention_before_opset_17_decomposes_layer_norm(opset):
    xbp.manual_seed(5)
    model = nn.TransformerEncoder(_enc_layer(activation="gelu"), 2, norm=nn.LayerNorm(8, bias=False))
    x = np.random.default_rng(11).normal(size=(4, 3, 8)).astype(np.float32)
    kpm = np.zeros((3, 4), bool)
    kpm[0, 2:] = True
    data = _export_bytes(model, (xbp.tensor(x), {"src_key_padding_mask": xbp.tensor(kpm)}), opset_version=opset)
    assert "LayerNormalization" not in {n.op_type for n in onnx.load_from_string(data).graph.node}
    _, got = _run_feeds(data, {"input": x, "src_key_padding_mask": kpm})
    want = _xbp_out(model, xbp.tensor(x), src_key_padding_mask=xbp.tensor(kpm))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


class _MyLayer(nn.TransformerEncoderLayer):
    def forward(self, src, **kw):
        return super().forward(src, **kw) * 2


def test_attention_options_that_cannot_be_exported_are_refused(tmp_path):
    x = xbp.zeros(3, 2, 8)
    f = tmp_path / "m.onnx"
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        xbp.onnx.export(nn.MultiheadAttention(8, 2, add_bias_kv=True), x, f)
    with pytest.raises(NotImplementedError, match="add_zero_attn"):
        xbp.onnx.export(nn.MultiheadAttention(8, 2, add_zero_attn=True), x, f)
    with pytest.raises(NotImplementedError, match="need_weights=False"):
        xbp.onnx.export(nn.MultiheadAttention(8, 2), (x, {"need_weights": True}), f)
    with pytest.raises(NotImplementedError, match="activation"):
        xbp.onnx.export(_enc_layer(activation=lambda t: t * 2), x, f)
    with pytest.raises(NotImplementedError, match=r"cannot export _MyLayer at layers\.0"):
        xbp.onnx.export(nn.TransformerEncoder(_MyLayer(8, 2, 12), 1), x, f)
    with pytest.raises(NotImplementedError, match="cannot export TransformerDecoderLayer at 0"):
        xbp.onnx.export(nn.Sequential(nn.TransformerDecoderLayer(8, 2, 12)), x, f)
    with pytest.raises(TypeError, match="keyword arguments"):
        xbp.onnx.export(_enc_layer(), (x, {"attn_mask": xbp.zeros(3, 3)}), f)      # the layer's is src_mask
    with pytest.raises(TypeError, match="keyword-argument dict"):
        xbp.onnx.export(nn.Sequential(_enc_layer()), (x, {"src_mask": xbp.zeros(3, 3)}), f)
    with pytest.raises(ValueError, match=r"is_causal .* opset_version >= 14"):
        xbp.onnx.export(nn.MultiheadAttention(8, 2), (x, {"is_causal": True}), f, opset_version=13)
    assert not any(tmp_path.iterdir())
