"""ci/gpu_risks.py (ci/gpu's stage 0b) never stops the GPU run: one line per check, whatever fails,
and exit status 0. Checked here on a `cupy` that has nothing (every check fails at its first CuPy
call); on the GPU machine ci/gpu runs the real thing."""
import importlib.machinery
import importlib.util
import pathlib
import subprocess
import sys
import types

import pytest

from xbp._backend import cuda_available

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "ci" / "gpu_risks.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_risks", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_cupy_it_says_skipped_in_one_line():
    if cuda_available():
        pytest.skip("this machine has a GPU: ci/gpu runs the checks for real")
    p = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("risk all: skipped"), p.stdout


def test_every_check_reports_one_line_and_exits_0(monkeypatch, capsys):
    if cuda_available():
        pytest.skip("this machine has a GPU: ci/gpu runs the checks for real")
    import xbp.cuda
    risks = _load()
    cp = types.ModuleType("cupy")                # a CuPy with nothing in it
    cp.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setattr(xbp.cuda, "is_available", lambda: True)
    assert risks.main() == 0
    lines = capsys.readouterr().out.splitlines()
    names = [fn.__name__.replace("_", "-") for fn in risks.CHECKS]
    assert len(lines) == len(names) >= 10
    for line, name in zip(lines, names):
        assert line.startswith(f"risk {name}: FAILED ("), line
