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
