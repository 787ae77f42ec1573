"""ci/gpu's own pieces that run without a GPU: the failure digest and the stage arguments.

The first GPU run gets one 10-minute call, so what it prints must be readable and a rerun of just
what failed must be one short command."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _digest(*logs):
    out = subprocess.run([sys.executable, str(ROOT / "ci" / "digest.py"), *map(str, logs)],
                         capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_digest_groups_failures_by_message_and_names_the_rerun(tmp_path):
    cuda = tmp_path / "pytest_cuda.log"
    cuda.write_text(
        "FAILED tests/test_a.py::test_x[cuda] - TypeError: bad dtype at 0x7f00aa\n"
        "FAILED tests/test_a.py::test_y[cuda] - TypeError: bad dtype at 0x7f00bb\n"
        "ERROR tests/test_b.py::test_z[cuda] - RuntimeError: no device\n"
        "=== 2 failed, 10 passed, 1 error in 3.0s ===\n")
    rest = tmp_path / "pytest_rest.log"
    rest.write_text("FAILED tests/test_c.py::test_w - AssertionError\n"
                    "=== 1 failed, 5 passed in 1.0s ===\n")
    lines = _digest(cuda, rest)
    assert lines[0] == "pytest_cuda.log: 2 failed, 10 passed, 1 error in 3.0s"
    assert lines[1] == "pytest_rest.log: 1 failed, 5 passed in 1.0s"
    assert lines[2] == "4 failures in 3 groups:"
    # the two TypeErrors differ only in an address: one group, the larger first
    assert lines[3] == "     2 x TypeError: bad dtype at 0x…"
    assert lines[4:6] == ["         tests/test_a.py::test_x[cuda]", "         tests/test_a.py::test_y[cuda]"]
    assert lines[-1] == ("rerun: bash ci/gpu cuda_tests other_tests -- "
                         "tests/test_a.py tests/test_b.py tests/test_c.py")


def test_digest_of_a_stage_that_printed_no_summary(tmp_path):
    log = tmp_path / "pytest_cuda.log"
    log.write_text("........\n")
    assert _digest(log) == ["pytest_cuda.log: no summary (timed out?)", "no failures"]


def test_digest_rerun_stays_under_the_device_tools_command_limit(tmp_path):
    log = tmp_path / "pytest_rest.log"
    log.write_text("".join(f"FAILED tests/test_{'x' * 40}_{i}.py::t - E\n" for i in range(60)))
    rerun = _digest(log)[-1]
    assert rerun == "rerun: failures in 60 files, too many to name: bash ci/gpu other_tests"


@pytest.mark.skipif(shutil.which("bash") is None, reason="ci/gpu is a bash script")
def test_ci_gpu_refuses_an_unknown_stage_before_doing_anything(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "ci" / "gpu"), "cuda_test"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out")}, timeout=30)
    assert out.returncode == 2
    assert "unknown stage 'cuda_test'" in out.stdout and "cuda_tests other_tests" in out.stdout
    assert not (tmp_path / "out").exists()          # refused before creating anything


def test_gpu_benchmarks_compare_torch_in_plain_float32():
    """PyTorch lets cuDNN convolutions and RNNs use TF32 by default, CuPy never does (without
    CUPY_TF32=1): the GPU benchmarks switch it off, so xbp and torch run the same precision."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT))
    from bench.common import torch_cuda_in_plain_float32
    b = torch.backends
    if not all(hasattr(t, "fp32_precision") for t in (b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn)):
        pytest.skip("a PyTorch before 2.9 (no fp32_precision controls)")
    before = [t.fp32_precision for t in (b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn)]
    try:
        note = torch_cuda_in_plain_float32(torch)
        assert [t.fp32_precision for t in (b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn)] == ["ieee"] * 3
        assert "no TF32" in note
    finally:
        for t, v in zip((b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn), before):
            t.fp32_precision = v


def test_digest_reads_a_summary_of_skips_alone(tmp_path):
    log = tmp_path / "pytest_cuda.log"
    log.write_text("s\n1 skipped in 15.86s\n")
    assert _digest(log) == ["pytest_cuda.log: 1 skipped in 15.86s", "no failures"]
