"""The main job (and every example with --device/--out) never loses work: arguments are checked
before any data is loaded (one line on stderr, exit 2), the output directory is checked first,
an explicit --device beats XBP_DEVICE, and a diverged run never replaces a good checkpoint."""
import hashlib
import os
import stat
import subprocess
import sys

import pytest

import xbp

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
EXAMPLES = os.path.join(ROOT, "examples")


def run(script, *args, timeout=180, **env_extra):
    env = {k: v for k, v in os.environ.items() if k != "XBP_DEVICE"}
    env.update(env_extra)
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.mark.parametrize("bad", [["--lr", "nan"], ["--lr", "inf"], ["--lr", "-1"], ["--lr", "x"],
                                 ["--seed", "-1"], ["--epochs", "0"], ["--batch-size", "0"], ["--hidden", "2.5"]])
def test_bad_arguments_are_one_line_exit_2(tmp_path, bad):
    r = run("train_digits.py", *bad, "--out", str(tmp_path / "o"))
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert bad[0] in err
    assert not (tmp_path / "o").exists()              # checked before anything was done


def test_bad_output_directory_fails_first(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    cases = [str(f / "sub"), ""]
    if os.geteuid() != 0:                              # root writes into read-only directories
        cases.append(str(ro))
    for out in cases:
        r = run("train_digits.py", "--out", out, "--epochs", "30", timeout=60)
        err = r.stderr.strip()
        assert r.returncode == 2 and len(err.splitlines()) == 1 and "--out" in err, err
        assert "epoch" not in r.stdout                 # no training happened


def test_explicit_device_beats_the_environment(tmp_path):
    if xbp.cuda_available():
        pytest.skip("needs a machine where cuda is unavailable")
    for script, args in [("train_digits.py", ["--epochs", "1", "--no-plot", "--out", str(tmp_path)]),
                         ("train_digits_cnn.py", ["--epochs", "1"]),
                         ("char_lstm.py", ["--steps", "2", "--sample-chars", "5"]),
                         ("graph_tour.py", ["--out", str(tmp_path / "g")])]:
        pytest.importorskip("sklearn")
        r = run(script, "--device", "cpu", *args, XBP_DEVICE="cuda")
        assert r.returncode == 0, (script, r.stderr[-2000:])
        r = run(script, *args, XBP_DEVICE="cuda")     # the environment alone: a one-line error naming it
        err = r.stderr.strip()
        assert r.returncode == 2 and len(err.splitlines()) == 1 and "from XBP_DEVICE" in err, (script, err)
        assert "cupy-cuda12x" in err and 'pip install "xbp' not in err


def test_a_diverged_run_keeps_the_last_good_checkpoint(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    out = str(tmp_path)
    r = run("train_digits.py", "--epochs", "1", "--no-plot", "--out", out)
    assert r.returncode == 0, r.stderr
    ckpt = os.path.join(out, "digits_mlp.safetensors")
    before = hashlib.sha256(open(ckpt, "rb").read()).hexdigest()
    r = run("train_digits.py", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "2", "--no-plot", "--out", out)
    assert r.returncode == 1 and "diverged" in r.stderr and "kept" in r.stderr, r.stderr
    assert hashlib.sha256(open(ckpt, "rb").read()).hexdigest() == before
    assert sorted(os.listdir(out)) == ["digits_mlp.safetensors"]        # nothing else left behind


def test_checkpoint_guard_refuses_non_finite_parameters(tmp_path):
    sys.path.insert(0, EXAMPLES)
    try:
        import _cli
    finally:
        sys.path.remove(EXAMPLES)
    m = xbp.nn.Linear(2, 2)
    with xbp.no_grad():
        m.weight[0, 0] = float("nan")
    p = str(tmp_path / "c.safetensors")
    assert _cli.save_checkpoint({"model": m.state_dict()}, p, m) is False and not os.path.exists(p)
    assert _cli.non_finite(m) == ["weight"]
