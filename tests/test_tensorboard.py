"""xbp.utils.tensorboard.SummaryWriter writes event files TensorBoard reads: scalars, scalars
groups, histograms, text and the DOT graph, read back here with a TFRecord reader written out in
the test and the event protocol buffers."""
import glob
import os
import struct

import numpy as np
import pytest

import xbp
from xbp import nn

tbx = pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402
from xbp.utils.tensorboard import SummaryWriter  # noqa: E402


def _events(log_dir):
    """Every Event in the event files under log_dir (TFRecord framing: length, crc, data, crc)."""
    out = []
    for path in sorted(glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            ev = event_pb2.Event()
            ev.ParseFromString(data[pos + 12:pos + 12 + n])
            out.append((os.path.relpath(path, log_dir), ev))
            pos += 12 + n + 4
    return out


def _values(events):
    return [(f, e.step, v) for f, e in events for v in e.summary.value]


def test_scalars_histograms_text_and_graph_read_back(tmp_path, device):
    log = str(tmp_path / "run")
    w = xbp.arange(12, device=device, dtype=xbp.float32).reshape(3, 4) / 4
    with SummaryWriter(log) as writer:
        assert writer.get_logdir() == log
        for step in range(3):
            writer.add_scalar("loss", xbp.tensor(1.0 / (step + 1), device=device), step)
        writer.add_scalar("lr", 0.5, global_step=7)
        writer.add_scalars("acc", {"train": 0.9, "test": xbp.tensor([0.8], device=device)}, 3)
        writer.add_histogram("w", w, 1)
        writer.add_text("config", "lr **0.5**", 0)
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).to(device)
        dot = writer.add_graph(model, xbp.ones(2, 4, device=device))
    vals = _values(_events(log))
    scal = {(v.tag, s): v.simple_value for f, s, v in vals if v.HasField("simple_value")}
    assert scal[("loss", 0)] == 1.0 and scal[("loss", 1)] == 0.5 and abs(scal[("loss", 2)] - 1 / 3) < 1e-7
    assert scal[("lr", 7)] == 0.5
    # add_scalars: one event file per curve, in <main_tag>/<name>/
    groups = {os.path.dirname(f): v.simple_value for f, s, v in vals if v.tag == "acc" and s == 3}
    assert groups.keys() == {os.path.join("acc", "train"), os.path.join("acc", "test")}
    assert abs(groups[os.path.join("acc", "train")] - 0.9) < 1e-7 and abs(groups[os.path.join("acc", "test")] - 0.8) < 1e-7
    h = next(v.histo for f, s, v in vals if v.tag == "w")
    a = np.arange(12) / 4
    assert h.num == 12 and h.min == 0.0 and h.max == a.max() and abs(h.sum - a.sum()) < 1e-9
    assert abs(h.sum_squares - (a * a).sum()) < 1e-9 and sum(h.bucket) == 12
    texts = {v.tag: v.tensor.string_val[0].decode() for f, s, v in vals if v.tensor.string_val}
    assert texts["config/text_summary"] == "lr **0.5**"
    assert "digraph" in dot and dot in texts["graph/text_summary"]


def test_bad_values_are_clear_errors(tmp_path):
    with SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="a scalar needs one value"):
            writer.add_scalar("x", xbp.ones(3))
        with pytest.raises(ValueError, match="NaN or inf"):
            writer.add_histogram("h", np.array([1.0, np.nan]))
        with pytest.raises(TypeError, match="global_step must be an integer"):
            writer.add_scalar("x", 1.0, global_step=1.5)
        with pytest.raises(TypeError, match="expected a str"):
            writer.add_text("t", 3)
        with pytest.raises(TypeError, match="Tensor, NumPy array or number"):
            writer.add_scalar("x", "1.0")


def test_missing_tensorboardx_names_the_install(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_tbx(name, *a, **k):
        if name.startswith("tensorboardX"):
            raise ImportError("No module named 'tensorboardX'")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_tbx)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        SummaryWriter("unused")
