"""Checkpoints (xbp.save / xbp.load): safetensors round trips of nested state, PyTorch interop both
ways, atomic writes, clear errors for bad files, and an exactly resumable training run."""
import builtins
import json
import math
import os

import numpy as np
import pytest

import xbp
from xbp._backend import get_backend
import xbp.data
import xbp.nn as nn
from xbp import optim
from xbp.optim import lr_scheduler
from xbp.serialization import CheckpointError, load, save
from conftest import to_np

pytest.importorskip("safetensors")


def _nested(device):
    return {
        "weights": {"0.weight": xbp.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device),
                    "0.bias": xbp.tensor(np.array([1.5, -2.0], np.float64), device=device)},
        "state": {0: {"step": 3, "buf": xbp.tensor(np.array(2.5), device=device)},
                  7: {"count": xbp.tensor(np.array([1, 2, 3], np.int64), device=device)}},
        "mask": xbp.tensor(np.array([True, False]), device=device),
        "empty": xbp.tensor(np.zeros((0, 4), np.float32), device=device),
        "numbers": [1, 2.5, -0.0, math.inf, -math.inf, True, None, "min"],
        "pair": (0.9, 0.999),
        "epoch": 4,
    }


def _check_nested(got, device):
    want = _nested("cpu")
    assert sorted(got, key=str) == sorted(want, key=str)
    w = got["weights"]
    assert list(w) == ["0.weight", "0.bias"]
    assert w["0.weight"].dtype == np.float32 and w["0.bias"].dtype == np.float64
    np.testing.assert_array_equal(to_np(w["0.weight"]), to_np(want["weights"]["0.weight"]))
    assert sorted(got["state"]) == [0, 7]                       # int keys stay ints
    assert got["state"][0]["step"] == 3 and got["state"][0]["buf"].shape == ()
    assert float(got["state"][0]["buf"]) == 2.5
    assert got["state"][7]["count"].dtype == np.int64
    assert got["mask"].dtype == np.bool_ and to_np(got["mask"]).tolist() == [True, False]
    assert got["empty"].shape == (0, 4)
    assert got["numbers"][:3] == [1, 2.5, -0.0] and math.copysign(1, got["numbers"][2]) == -1
    assert got["numbers"][3:] == [math.inf, -math.inf, True, None, "min"]
    assert type(got["numbers"][0]) is int and type(got["numbers"][1]) is float
    assert got["pair"] == (0.9, 0.999) and got["epoch"] == 4
    for t in (w["0.weight"], got["state"][0]["buf"], got["mask"]):
        assert t.device == get_backend(device).device and not t.requires_grad


def test_round_trip_nested_structure(device, tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save(_nested(device), path)
    _check_nested(load(path, device=device), device)
    _check_nested(load(path, device="cpu"), "cpu")            # any device can read it
    got = load(str(path), device=device)
    got["weights"]["0.weight"] += 1.0                          # loaded tensors are writable
    assert float(got["weights"]["0.weight"][0, 0]) == 1.0


def test_nan_and_top_level_values(tmp_path):
    p = tmp_path / "x.safetensors"
    save({"best": math.nan}, p)
    assert math.isnan(load(p)["best"])
    save(xbp.tensor([1.0, 2.0]), p)
    t = load(p)
    assert isinstance(t, xbp.Tensor) and to_np(t).tolist() == [1.0, 2.0]
    save([xbp.tensor([1.0]), 3], p)
    assert load(p)[1] == 3


def test_the_file_is_plain_safetensors_with_state_dict_names(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file
    sd = {"0.weight": xbp.tensor(np.ones((2, 3), np.float32)), "2.bias": xbp.tensor(np.zeros(2, np.float32))}
    p = tmp_path / "m.safetensors"
    save(sd, p)
    raw = load_file(str(p))
    assert sorted(raw) == ["0.weight", "2.bias"]
    np.testing.assert_array_equal(raw["0.weight"], np.ones((2, 3), np.float32))
    with safe_open(str(p), framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "pt"
    json.loads(meta["xbp"])                                     # the structure is JSON, not pickle
    nested = tmp_path / "n.safetensors"
    save({"model": sd, "optimizer": {"state": {0: {"exp_avg": sd["0.weight"]}}}}, nested)
    assert sorted(load_file(str(nested))) == ["model.0.weight", "model.2.bias", "optimizer.state.0.exp_avg"]


def test_a_foreign_safetensors_file_loads_as_a_flat_dict(device, tmp_path):
    from safetensors.numpy import save_file
    p = tmp_path / "foreign.safetensors"
    save_file({"b": np.arange(3, dtype=np.int32), "a": np.ones((2, 2), np.float32)}, str(p))
    got = load(p, device=device)
    assert sorted(got) == ["a", "b"] and got["b"].dtype == np.int32 and got["a"].device == get_backend(device).device


def test_unsupported_objects_are_refused(tmp_path):
    p = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="no pickle"):
        save({"f": lambda: 1}, p)
    with pytest.raises(TypeError, match=r"only numeric and bool arrays"):      # NumPy arrays save, objects do not
        save({"a": np.array([1, "x"], dtype=object)}, p)
    with pytest.raises(TypeError, match="only str, int, finite float, bool and None keys"):
        save({(1, 2): 3}, p)
    assert not p.exists() and os.listdir(tmp_path) == []


# --- atomic writes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_a_failed_write_leaves_the_previous_file_intact(failing, tmp_path, monkeypatch):
    p = tmp_path / "ckpt.safetensors"
    save({"w": xbp.tensor([1.0, 2.0]), "epoch": 1}, p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError(f"simulated crash in {failing}")

    if failing == "write":                      # die halfway through writing the new bytes
        real_write = os.write

        def half(fd, data):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError("simulated crash in write")

        monkeypatch.setattr(os, "write", half)
    else:
        monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="simulated crash"):
        save({"w": xbp.tensor([3.0, 4.0, 5.0]), "epoch": 2}, p)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert load(p)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]        # no temp file left behind


def test_overwrite_keeps_the_file_mode(tmp_path):
    p = tmp_path / "ckpt.safetensors"
    save({"a": 1}, p)
    os.chmod(p, 0o640)
    save({"a": 2}, p)
    assert load(p)["a"] == 2 and (os.stat(p).st_mode & 0o777) == 0o640


# --- bad files ------------------------------------------------------------------------------------------
def test_truncated_files_give_a_clear_error(tmp_path):
    p = tmp_path / "ckpt.safetensors"
    save({"w": xbp.tensor(np.ones((8, 8), np.float32)), "epoch": 3}, p)
    data = p.read_bytes()
    for cut in (0, 5, 8, 40, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|not a safetensors|not valid JSON"):
            load(bad)


def test_garbage_files_give_a_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"this is not a checkpoint at all, just some text in a file" * 10,
        "json_header_lie": (20).to_bytes(8, "little") + b'{"a": {"dtype": "F32"}}'[:20],
        "bad_offsets": (lambda h: len(h).to_bytes(8, "little") + h)(
            b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}') + b"\0" * 8,
    }
    for name, blob in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(blob)
        with pytest.raises(CheckpointError, match="not a valid safetensors checkpoint|could not be decoded"):
            load(p)
    assert issubclass(CheckpointError, ValueError)


def test_missing_safetensors_names_the_install(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_safetensors(name, *a, **k):
        if name.startswith("safetensors"):
            raise ImportError("No module named 'safetensors'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_safetensors)
    with pytest.raises(ImportError, match="pip install safetensors"):
        save({"a": 1}, tmp_path / "x.safetensors")
    with pytest.raises(ImportError, match="pip install safetensors"):
        load(tmp_path / "x.safetensors")


# --- optimizer and scheduler state ----------------------------------------------------------------------
@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.1, amsgrad=True)),
                                    (optim.AdamW, {}), (optim.RMSprop, dict(centered=True, momentum=0.5)),
                                    (optim.Adagrad, dict(lr_decay=0.1))])
def test_optimizer_state_round_trip(cls, kw, device, tmp_path):
    def make():
        ps = [xbp.tensor(np.linspace(-1, 1, 6).reshape(2, 3), device=device, requires_grad=True),
              xbp.tensor([0.5], device=device, requires_grad=True)]
        return ps, cls([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}], **kw)

    def steps(ps, opt, n):
        for _ in range(n):
            opt.zero_grad()
            ((ps[0] ** 2).sum() * 0.5 + (ps[1] ** 3).sum()).backward()
            opt.step()

    ps, opt = make()
    steps(ps, opt, 2)
    save({"params": [p.detach() for p in ps], "optimizer": opt.state_dict()}, tmp_path / "o.safetensors")
    steps(ps, opt, 2)
    ck = load(tmp_path / "o.safetensors", device=device)
    qs, opt2 = make()
    with xbp.no_grad():
        for q, saved in zip(qs, ck["params"]):
            q.copy_(saved)
    opt2.load_state_dict(ck["optimizer"])
    assert opt2.param_groups[1]["lr"] == 0.05
    steps(qs, opt2, 2)
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(to_np(q), to_np(p))


def test_scheduler_state_round_trip(tmp_path):
    def make():
        o = optim.SGD([xbp.tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
        return o, [lr_scheduler.MultiStepLR(o, [2, 4, 4]), lr_scheduler.ReduceLROnPlateau(o, patience=1),
                   lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=30)]

    o, ss = make()
    for e in range(5):
        o.step()
        ss[0].step()
        ss[1].step(1.0 / (1 + e % 2))
        ss[2].step()
    save({"opt": o.state_dict(), "scheds": [s.state_dict() for s in ss]}, tmp_path / "s.safetensors")
    ck = load(tmp_path / "s.safetensors")
    o2, ss2 = make()
    o2.load_state_dict(ck["opt"])
    for s, sd in zip(ss2, ck["scheds"]):
        s.load_state_dict(sd)
    assert ss2[1].best == ss[1].best and ss2[0].milestones == ss[0].milestones
    assert ss2[2]._schedule_phases == ss[2]._schedule_phases
    for _ in range(3):
        for opt_, s_ in ((o, ss), (o2, ss2)):
            opt_.step()
            s_[0].step()
            s_[1].step(2.0)
            s_[2].step()
        assert o2.param_groups[0]["lr"] == o.param_groups[0]["lr"]
        assert o2.param_groups[0]["momentum"] == o.param_groups[0]["momentum"]


# --- modules: PyTorch interop both ways, wrong models, and an exactly resumable training run -------------


def _mlp(h=7):
    return nn.Sequential(nn.Linear(5, h), nn.Tanh(), nn.Linear(h, 3))


def test_xbp_checkpoint_loads_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    model = _mlp()
    p = tmp_path / "model.safetensors"
    save(model.state_dict(), p)
    sd = load_file(str(p))
    assert sorted(sd) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    tm = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    tm.load_state_dict(sd)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(to_np(model(xbp.tensor(x))), want, rtol=1e-5, atol=1e-6)


def test_torch_checkpoint_loads_into_xbp(device, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    p = tmp_path / "torch.safetensors"
    save_file(tm.state_dict(), str(p))
    model = _mlp().to(device)
    params = list(model.parameters())
    model.load_state_dict(load(p, device=device))
    assert all(a is b for a, b in zip(params, model.parameters()))     # same Parameter objects
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(to_np(model(xbp.tensor(x, device=device))), want, rtol=1e-5, atol=1e-6)


def test_loading_into_the_wrong_model_is_a_clear_error(tmp_path):
    p = tmp_path / "model.safetensors"
    save(_mlp().state_dict(), p)
    sd = load(p)
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight"):
        _mlp(h=6).load_state_dict(sd)
    with pytest.raises(RuntimeError, match="Missing key"):
        nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.Tanh(), nn.Linear(3, 3)).load_state_dict(sd)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        nn.Sequential(nn.Linear(5, 7)).load_state_dict(sd)
    opt_file = tmp_path / "opt.safetensors"
    m = _mlp()
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(xbp.ones(2, 5)).sum().backward()
    opt.step()
    save(opt.state_dict(), opt_file)
    with pytest.raises(ValueError, match="shape"):
        optim.SGD(_mlp(h=6).parameters(), lr=0.1, momentum=0.9).load_state_dict(load(opt_file))


def _train(device, epochs, ckpt_in=None, ckpt_out=None, seed=0):
    """Train a small MLP; optionally start from / end with a checkpoint. Returns the losses."""
    xbp.manual_seed(seed)                      # a resumed run starts from different random weights
    rng = np.random.default_rng(42)
    X = xbp.tensor(rng.normal(size=(40, 5)).astype(np.float32))
    y = xbp.tensor(rng.integers(0, 3, size=40))
    loader = xbp.data.DataLoader(xbp.data.TensorDataset(X, y), batch_size=8, shuffle=True, seed=3, device=device)
    model = _mlp().to(device)
    opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3, amsgrad=True)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    start = 0
    if ckpt_in is not None:
        ck = load(ckpt_in, device=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        loader.load_state_dict(ck["loader"])
        start = ck["epoch"]
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for epoch in range(start, start + epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss))
        sched.step()
    if ckpt_out is not None:
        save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
              "loader": loader.state_dict(), "epoch": start + epochs}, ckpt_out)
    return losses


def test_resumed_training_matches_an_uninterrupted_run(device, tmp_path):
    straight = _train(device, 4)
    p = tmp_path / "ckpt.safetensors"
    first = _train(device, 2, ckpt_out=p)
    second = _train(device, 2, ckpt_in=p, seed=123)
    assert len(straight) == 20
    assert first + second == straight                           # bit for bit
