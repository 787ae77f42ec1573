"""The main job resumes exactly: 4 epochs straight and 2 epochs + --resume for 2 more give
bit-identical weights, optimizer state, learning rate and history (the checkpoint holds the
model, optimizer, scheduler, data-loader and RNG state), and --resume refuses what it cannot
continue with one-line errors."""
import importlib.util
import os

import numpy as np
import pytest

import xbp

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCRIPT = os.path.join(ROOT, "examples", "train_digits.py")


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(capsys, monkeypatch):
    """train_digits.main(argv) in this process (a subprocess per run is seconds of imports)."""
    monkeypatch.delenv("XBP_DEVICE", raising=False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    spec = importlib.util.spec_from_file_location("train_digits_resume", SCRIPT)
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)
    default = xbp.get_default_device()

    def go(*args):
        capsys.readouterr()
        code = 0
        try:
            td.main(["--no-plot", *args])
        except SystemExit as e:
            code = e.code
        finally:
            xbp.set_default_device(default)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)
    return go


def _same(a, b, where=""):
    if isinstance(a, xbp.Tensor):
        assert isinstance(b, xbp.Tensor) and a.dtype == b.dtype, where
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("extra", [["--optimizer", "sgd", "--batch-size", "64"]])
def test_two_plus_two_epochs_equal_four(tmp_path, extra, run):
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    r = run("--epochs", "4", "--out", a, *extra)
    assert r.returncode == 0, r.stderr
    r = run("--epochs", "4", "--stop-after", "2", "--out", b, *extra)
    assert r.returncode == 0 and "stopped after epoch 2 of 4" in r.stdout, r.stdout + r.stderr
    half = xbp.load(os.path.join(b, "digits_mlp.safetensors"))
    assert half["epoch"] == 2 and half["loader"]["epoch"] == 2
    assert half["optimizer"]["param_groups"][0]["lr"] > 0           # mid-schedule, not at 0.0
    r = run("--resume", os.path.join(b, "digits_mlp.safetensors"), "--out", b)
    assert r.returncode == 0, r.stderr
    assert "after epoch 2 (lr " in r.stdout and "(2 epochs in" in r.stdout, r.stdout
    full = xbp.load(os.path.join(a, "digits_mlp.safetensors"))
    resumed = xbp.load(os.path.join(b, "digits_mlp.safetensors"))
    for k in ("model", "optimizer", "scheduler", "loader", "epoch", "history", "test_accuracy", "config"):
        _same(full[k], resumed[k], k)


def test_resume_refuses_what_it_cannot_continue(tmp_path, run):
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    out = str(tmp_path)
    ck = os.path.join(out, "digits_mlp.safetensors")
    assert run("--epochs", "3", "--stop-after", "1", "--out", out).returncode == 0
    cases = [(["--resume", ck, "--hidden", "64"], "--hidden 64 contradicts the checkpoint's 128"),
             (["--resume", ck, "--epochs", "5"], "--epochs 5 contradicts"),       # the cosine plan is fixed
             (["--resume", ck, "--stop-after", "1"], "already finished epoch 1"),
             (["--resume", os.path.join(out, "missing.safetensors")], "no such file")]
    for args, msg in cases:
        r = run(*args, "--out", out)
        err = r.stderr.strip()
        assert r.returncode == 2 and len(err.splitlines()) == 1 and msg in err, (args, err)
    assert run("--resume", ck, "--out", out).returncode == 0
    r = run("--resume", ck, "--out", out)
    assert r.returncode == 2 and "already finished epoch 3 of 3" in r.stderr
    bad = os.path.join(out, "bad.safetensors")
    with open(bad, "wb") as f:
        f.write(b"\x00" * 40)
    r = run("--resume", bad, "--out", out)
    assert r.returncode == 2 and "--resume: xbp.load" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    xbp.save({"model": {}}, bad)
    r = run("--resume", bad, "--out", out)
    assert r.returncode == 2 and "not a train_digits.py checkpoint" in r.stderr


def test_without_a_schedule_a_run_can_be_extended(tmp_path, run):
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    out = str(tmp_path)
    assert run("--epochs", "1", "--schedule", "none", "--out", out).returncode == 0
    r = run("--resume", os.path.join(out, "digits_mlp.safetensors"), "--epochs", "2", "--out", out)
    assert r.returncode == 0 and "(1 epochs in" in r.stdout, r.stdout + r.stderr
    assert xbp.load(os.path.join(out, "digits_mlp.safetensors"))["epoch"] == 2
