"""CuPy's own rules, where they differ from NumPy's, and what xbp does about them (an audit of the cuda
path against the CuPy v14.2.0 source). Each test runs on every device (the CuPy rows on a GPU or on
the emulation in ../shared/tools/fakecupy) against NumPy written here; the rule it guards is cited
with its CuPy file and line."""
import math

import numpy as np
import pytest

import xbp
from xbp._backend import get_backend


# --- scatter-add of the dtypes CUDA's atomicAdd lacks ------------------------------------------------
# cupyx.scatter_add raises TypeError for every dtype but int32, int64, uint32, uint64, float16/32/64
# (cupy/_core/_routines_indexing.pyx:944-952); np.add.at takes them all (wrapping on overflow).
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "bool", "int32", "float16"])
def test_index_add_rows_and_scatter_add_flat_take_every_integer_dtype(device, dtype):
    be = get_backend(device)
    if dtype == "float16" and device == "strict":
        pytest.skip("array-api-strict has no float16")
    rng = np.random.default_rng(0)
    idx = np.array([0, 2, 2, 1, 2, 0, 4], dtype=np.int64)
    if dtype == "bool":
        vals = np.array([True, False, True, False, False, False, True])
    else:
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        hi = min(info.max, 100) if info is not None else 4
        lo = max(info.min, -100) if info is not None else -4
        vals = rng.integers(lo, hi, size=7).astype(dtype)
        if info is not None and info.bits == 8:
            vals[1:3] = info.max                  # position 2 overflows: wraps, as np.add.at does
    want = np.zeros(5, dtype=dtype)
    np.add.at(want, idx, vals)
    got = be.to_numpy(be.scatter_add_flat(5, be.from_numpy(idx), be.from_numpy(vals)))
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    rows = np.stack([vals, vals[::-1]], axis=1)     # (7, 2)
    want2 = np.zeros((5, 2), dtype=dtype)
    np.add.at(want2, idx, rows)
    got2 = be.to_numpy(be.index_add_rows(5, be.from_numpy(idx), be.from_numpy(rows)))
    assert got2.dtype == want2.dtype
    np.testing.assert_array_equal(got2, want2)


def test_scatter_add_of_an_int16_tensor_matches_numpy(device):
    x = np.arange(6, dtype=np.int16).reshape(2, 3)
    idx = np.array([[0, 1, 0], [1, 1, 0]])
    src = np.array([[5, -7, 300], [2, 1, -4]], dtype=np.int16)
    want = x.copy()
    for i in range(2):
        for j in range(3):
            want[idx[i, j], j] += src[i, j]
    got = xbp.tensor(x, device=device).scatter_add(0, xbp.tensor(idx, device=device), xbp.tensor(src, device=device))
    assert got.dtype == xbp.int16
    np.testing.assert_array_equal(got.numpy(), want)


# --- erf of integers ---------------------------------------------------------------------------------
# cupyx.scipy.special.erf has loops 'e->d', 'f->f', 'd->d' (cupyx/scipy/special/_erf.py:6-8): an int64
# input runs the 'd' loop and gives float64, as scipy.special.erf does. Casting that back to the input's
# dtype (right for float16 only) truncated erf(1) = 0.84 to 0.
# (and cupyx's first safe loop for int16/uint16 is 'f->f': float32 unless cast first)
@pytest.mark.parametrize("dtype", ["int64", "int16", "uint8", "int32"])
def test_erf_of_an_integer_tensor_is_float64_on_every_device(device, dtype):
    v = [0, 1, 2, 3] if dtype == "uint8" else [0, 1, -2, 3]
    y = xbp.erf(xbp.tensor(v, dtype=dtype, device=device))
    assert y.dtype == xbp.float64
    np.testing.assert_allclose(y.numpy(), [math.erf(a) for a in v], rtol=1e-14, atol=1e-15)


def test_portable_erf_of_integers_matches_math_erf():
    from xbp._backend import Backend
    cpu = get_backend("cpu")
    y = Backend.erf(cpu, np.array([0, 1, -2, 3, 7], dtype=np.int32))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, [math.erf(a) for a in (0, 1, -2, 3, 7)], rtol=1e-14, atol=1e-15)


# --- clip of integers --------------------------------------------------------------------------------
# CupyBackend.clip is maximum/minimum (array-api-compat's clip writes through boolean masks: a host
# read per call). The portable clip keeps x's dtype and drops an int bound beyond the dtype's range
# (array_api_compat/common/_aliases.py:412-418); CuPy 14 raises OverflowError for an out-of-range
# Python int (cupy/_core/_scalar.pyx:379) and promotes int with a float bound to float64.
@pytest.mark.parametrize("dtype,lo,hi", [("int64", 0.5, 2.5), ("int64", -1.5, None), ("uint8", -1, 200),
                                         ("int8", -1000, 1000), ("int16", None, -0.5), ("uint8", 3, 300)])
def test_cuda_clip_of_integers_matches_the_portable_body(dtype, lo, hi):
    if not xbp.cuda_available():
        pytest.skip("cuda: CuPy is not installed or sees no GPU (run on a GPU machine or the emulation)")
    be = get_backend("cuda")
    a = np.array([-3, -1, 0, 1, 2, 3, 100], dtype=np.int64)
    a = a[(a >= np.iinfo(dtype).min) & (a <= np.iinfo(dtype).max)].astype(dtype)
    x = be.from_numpy(a)
    want = be.to_numpy(be.ns.clip(x, lo, hi))
    got = be.to_numpy(be.clip(x, lo, hi))
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def test_clamp_of_an_integer_tensor_keeps_its_dtype_on_every_device(device):
    x = xbp.tensor([-3, 0, 1, 5], dtype=xbp.int8, device=device)
    y = xbp.clamp(x, -1000, 2)                  # -1000 is below int8's range: no lower bound
    assert y.dtype == xbp.int8
    np.testing.assert_array_equal(y.numpy(), [-3, 0, 1, 2])


# --- linalg errors -----------------------------------------------------------------------------------
class _CuPyLinalgDouble:
    """Mirrors CuPy 14.2's contract: cuSOLVER's status is read, and LinAlgError raised, only under
    cupyx.errstate(linalg='raise'); the default 'ignore' returns whatever the solver left
    (cupy/linalg/_util.py:110-131, cupyx/_ufunc_config.py:42-51)."""

    def __init__(self, config):
        self.config = config
        self.calls = []

    def _solver(self, name, a):
        self.calls.append((name, self.config["linalg"]))
        bad = abs(np.linalg.det(a)) < 1e-12 if name != "cholesky" else np.any(np.linalg.eigvalsh(a) <= 0)
        if bad and self.config["linalg"] == "raise":
            raise np.linalg.LinAlgError(f"Error reported by {name} in cuSOLVER. devInfo = [2].")
        return np.full_like(a, np.nan) if bad else np.linalg.inv(a)

    def inv(self, a):
        return self._solver("inv", a)

    def solve(self, a, b):
        return self._solver("solve", a) @ b

    def cholesky(self, a):
        return self._solver("cholesky", a)

    def svd(self, a, full_matrices=True):
        self.calls.append(("svd", self.config["linalg"]))
        return np.linalg.svd(a, full_matrices=full_matrices)


def test_cuda_linalg_raises_for_singular_and_indefinite_matrices(monkeypatch):
    import contextlib
    import sys
    import types
    from xbp._backend import _RaisingLinalg
    config = {"linalg": "ignore"}

    @contextlib.contextmanager
    def errstate(*, linalg=None):
        old = config["linalg"]
        config["linalg"] = linalg
        try:
            yield
        finally:
            config["linalg"] = old
    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(errstate=errstate))
    ns = _CuPyLinalgDouble(config)
    la = _RaisingLinalg(ns)
    s = np.array([[1.0, 2.0], [2.0, 4.0]])
    for name, args in (("inv", (s,)), ("solve", (s, s)), ("cholesky", (-np.eye(2),))):
        assert np.isnan(getattr(ns, name)(*args)).all()           # CuPy's default: no error, garbage
        with pytest.raises(np.linalg.LinAlgError):
            getattr(la, name)(*args)
    good = np.array([[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(la.inv(good), np.linalg.inv(good))
    la.svd(good)                                                   # not wrapped: no status read
    assert ns.calls[-1] == ("svd", "ignore") and config["linalg"] == "ignore"


# --- uploads from pinned memory ------------------------------------------------------------------------
# cupy.asarray copies a page-locked source straight from its buffer and returns before the copy is done;
# a pageable one goes through a staging buffer of CuPy's own (_array_default, cupy/_core/core.pyx
# v14.2.0). So after `t.to("cuda")` from pinned memory, a write to t raced the copy. PyTorch's
# non_blocking=False means the source may be reused at once: xbp waits for that copy (blocking=True),
# and only that one (a pageable upload, the usual batch, stays asynchronous).
class PinnedMemoryPointer(bytearray):
    """Named as CuPy's cupy.cuda.pinned_memory.PinnedMemoryPointer, the buffer under cupyx.empty_pinned."""


def _pinned(a):
    buf = PinnedMemoryPointer(a.nbytes)
    out = np.ndarray(a.shape, dtype=a.dtype, buffer=buf)
    out[...] = a
    return out


def test_host_is_pinned_follows_the_base_chain_to_cupys_pinned_buffer():
    from xbp._backend import host_is_pinned
    a = _pinned(np.arange(6.0).reshape(2, 3))
    assert host_is_pinned(a) and host_is_pinned(a[1:]) and host_is_pinned(a.reshape(-1))
    assert not host_is_pinned(a.T.reshape(-1))            # a copy, in pageable memory
    assert not host_is_pinned(np.arange(6.0)) and not host_is_pinned(np.arange(6.0)[::2])


def test_cuda_upload_waits_only_for_a_pinned_source_unless_non_blocking(device, monkeypatch):
    if device != "cuda":
        pytest.skip("the upload rule is CupyBackend's")
    be = get_backend(device)
    calls = []
    real = be.cupy

    class Recording:
        def __getattr__(self, name):
            return getattr(real, name)

        def asarray(self, a, **kw):
            calls.append(kw.get("blocking"))
            return real.asarray(a, **kw)
    monkeypatch.setattr(be, "cupy", Recording())
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    pinned = _pinned(host)
    for src, kw, blocking in [(host, {}, False), (pinned, {}, True), (pinned, {"non_blocking": True}, False),
                              (host, {"non_blocking": True}, False)]:
        calls.clear()
        t = xbp.from_numpy(src).to("cuda", **kw)
        assert calls == [blocking], (src is pinned, kw)
        np.testing.assert_array_equal(t.numpy(), host)
    calls.clear()
    xbp.from_numpy(pinned).cuda()                       # Tensor.cuda's default: the same wait
    assert calls == [True]
    calls.clear()
    xbp.from_numpy(pinned).to("cuda", True)             # PyTorch's positional non_blocking
    assert calls == [False]


# --- float floor division and remainder ------------------------------------------------------------
# CuPy's float // is floor(a / b) and its % is a - floor(a / b) * b (cupy/_core/include/cupy/carray.cuh
# `_floor_divide`, cupy/_core/_routines_math.pyx, v14.2.0): 1.0 // 0.1 gave 10.0 on cuda and 9.0 on
# the CPU (NumPy, Python and PyTorch use C's divmod). CupyBackend composes NumPy's divmod from
# ufuncs (`_backend.float_divmod`); run on NumPy here, it must give NumPy's own results exactly.
_DIVMOD_VALUES = [1.0, -1.0, 0.1, -0.1, 0.3, 7.5, -7.5, 3.0, -3.0, 0.0, -0.0, 1e-30, 1e30, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_divmod_is_numpys_floor_divide_and_remainder(dtype):
    from xbp._backend import float_divmod
    a, b = np.meshgrid(np.array(_DIVMOD_VALUES, dtype=dtype), np.array(_DIVMOD_VALUES, dtype=dtype))
    with np.errstate(all="ignore"):
        q, r = float_divmod(np, a, b)
        want_q, want_r = np.floor_divide(a, b), np.remainder(a, b)
        # Python-number operands on either side (weak: the array's dtype is kept)
        q1, r1 = float_divmod(np, a, 0.1)
        q2, r2 = float_divmod(np, 1.0, b)
        want = [(np.floor_divide(a, 0.1), np.remainder(a, 0.1)), (np.floor_divide(1.0, b), np.remainder(1.0, b))]
    for got, ref in [(q, want_q), (r, want_r), (q1, want[0][0]), (r1, want[0][1]), (q2, want[1][0]), (r2, want[1][1])]:
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))     # the signs of zeros too


def test_floor_divide_and_remainder_of_floats_agree_with_numpy_on_every_device(device):
    a = np.array([1.0, -1.0, 0.3, 7.5, -7.5, 2.0], dtype=np.float32)
    b = np.array([0.1, 0.1, 0.1, -2.0, 2.0, 0.5], dtype=np.float32)
    x, y = xbp.tensor(a, device=device), xbp.tensor(b, device=device)
    np.testing.assert_array_equal((x // y).numpy(), np.floor_divide(a, b))
    np.testing.assert_array_equal((x % y).numpy(), np.remainder(a, b))
    np.testing.assert_array_equal(xbp.floor_divide(x, 0.1).numpy(), np.floor_divide(a, np.float32(0.1)))
    np.testing.assert_array_equal((1.0 % y).numpy(), np.remainder(np.float32(1.0), b))
    np.testing.assert_array_equal(xbp.fmod(x, 0.1).numpy(), np.fmod(a, np.float32(0.1)))
    np.testing.assert_array_equal(x.div(y, rounding_mode="floor").numpy(), np.floor_divide(a, b))
    i = xbp.tensor(np.array([7, -7, 5]), device=device)                  # integers keep their kernels
    np.testing.assert_array_equal((i // 2).numpy(), np.array([3, -4, 2]))
    np.testing.assert_array_equal((i % -3).numpy(), np.array([-2, -1, -1]))
