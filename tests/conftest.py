"""The device fixture: every device-parameterised test runs on `cpu` (NumPy) and `strict`
(array-api-strict on a non-default device, so NumPy-only calls and forgotten `device=` fail),
and on `cuda` (CuPy) where a GPU is present; elsewhere `cuda` is skipped with the reason shown."""
import contextlib
import os

# One BLAS thread per test process (and the examples the tests start): the suite runs as two xdist
# workers on two cores, and multi-threaded BLAS on small matrices under that load made the
# char-LSTM example 6x slower (29 s instead of 4.5 s for 8 steps, measured 2026-12-03).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import xbp  # noqa: E402
from xbp import _backend  # noqa: E402
from xbp._backend import cuda_available  # noqa: E402

DEVICES = ["cpu", "strict", "cuda"]
# ci/gpu sets XBP_REQUIRE_CUDA=1: there a missing GPU is an error, never a silent skip
REQUIRE_CUDA = os.environ.get("XBP_REQUIRE_CUDA") == "1"


def _cuda_skip_reason():
    if cuda_available():
        return None
    try:
        import cupy  # noqa: F401
        return "cuda: CuPy is installed but sees no GPU on this machine"
    except ImportError:
        return "cuda: CuPy is not installed (CPU-only machine); run ci/gpu on a GPU machine"


@pytest.fixture(params=DEVICES)
def device(request):
    """A device name for xbp creation functions: 'cpu', 'strict' or 'cuda'."""
    if request.param == "cuda":
        reason = _cuda_skip_reason()
        if reason:
            if REQUIRE_CUDA:
                pytest.fail(reason)
            pytest.skip(reason)
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    xbp.manual_seed(0)
    yield
    # a check deferred by a test (a bad index on cuda) and never read must not fail the next test
    for b in set(_backend._BACKENDS.values()):
        b._pending.clear()


def _read_deferred_checks():
    for b in set(_backend._BACKENDS.values()):
        b.check_pending()


@contextlib.contextmanager
def raises_checked(exc, match=None):
    """``pytest.raises`` for a value check (an index range) on any device: the error comes from the
    block itself where checks are immediate (cpu, strict), or at the next synchronisation where
    they are deferred (cuda: `Backend.defer_check`), which this reads after the block. Where the
    op raised something itself first (the CuPy emulation bounds-checks its kernels; CuPy wraps),
    the deferred check must still be pending, and its error is the one that must match."""
    with pytest.raises(exc, match=match):
        try:
            yield
        except Exception:
            _read_deferred_checks()
            raise
        _read_deferred_checks()


def to_np(t):
    """Host NumPy copy of a tensor (detached)."""
    return t.detach().numpy()


def rand(shape, device, dtype=np.float64, low=-1.0, high=1.0, seed=0, requires_grad=True):
    """A tensor of uniform values built from NumPy (so references can use the same numbers)."""
    a = np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)
    return xbp.tensor(a, device=device, requires_grad=requires_grad), a


def pytest_terminal_summary(terminalreporter):
    """Skips summarised by reason, one line each (the per-test list is `-rs`)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons = {}
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.section("skips by reason")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.line(f"{n:6d}  {reason}")
