"""Every backend's native fast paths agree with the portable bodies (and with NumPy written here).

`Backend` holds a portable body for each named operation the standard lacks; `NumpyBackend`,
`StrictBackend` and `CupyBackend` replace some with native code (np.add.at, strided windows,
cupyx.scatter_add, cupy.sign/clip, ...). For each backend the `device` fixture gives (cpu, strict,
and cuda on a GPU or the CuPy emulation), each case runs the backend's own method, and, where the
backend overrides it, the portable one too, and compares both with a NumPy reference.
"""
import math

import numpy as np
import pytest

from xbp._backend import Backend, get_backend

RS = np.random.RandomState(7)


def _erf_ref(a):
    return np.vectorize(math.erf)(a.astype(np.float64))


def _windows_ref(x, kernel, stride, dilation, out_hw):
    (kh, kw), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_hw
    out = np.empty((x.shape[0], kh, kw, Ho, Wo, x.shape[3]), x.dtype)
    for i in range(kh):
        for j in range(kw):
            for h in range(Ho):
                for w in range(Wo):
                    out[:, i, j, h, w, :] = x[:, h * sh + i * dh, w * sw + j * dw, :]
    return out


_VALS = RS.randn(6).astype(np.float64)
_IDX = np.array([0, 2, 2, 4, 0, 4])
_ROWS = RS.randn(6, 3)
_G = RS.randn(4, 3).astype(np.float32)
_KEEP = RS.rand(4, 3) > 0.5
_X = RS.randn(2, 5, 6, 3).astype(np.float32)
_ERF_IN = np.array([-3.5, -1.0, -0.2, 0.0, 0.3, 1.7, 4.0])
_SIGNED = np.array([-2.0, -0.0, 0.0, 3.0, np.nan, np.inf, -np.inf], dtype=np.float32)

# name -> (arguments as NumPy arrays or plain values, NumPy reference, rtol)
CASES = {
    "scatter_add_flat": ((5, _IDX, _VALS), np.bincount(_IDX, _VALS, minlength=5), 1e-12),
    "index_add_rows": ((5, _IDX, _ROWS), np.stack([_ROWS[_IDX == r].sum(0) for r in range(5)]), 1e-12),
    "mask": ((_G, _KEEP), np.where(_KEEP, _G, np.float32(0)), 0),
    "erf": ((_ERF_IN,), _erf_ref(_ERF_IN), 1e-13),
    "erf float32": ((_ERF_IN.astype(np.float32),), _erf_ref(_ERF_IN).astype(np.float32), 1e-6),
    "window_columns": ((_X, (2, 3), (2, 1), (1, 2), (2, 2)), _windows_ref(_X, (2, 3), (2, 1), (1, 2), (2, 2)), 0),
    "int_range": ((np.array([3, -7, 12, 0]),), (-7, 12), 0),
    "row_major": ((_ROWS.T,), _ROWS.T.copy(), 0),
}


def _to_device(be, v):
    return be.asarray(v) if isinstance(v, np.ndarray) else v


def _host(be, r):
    return r if isinstance(r, tuple) else be.to_numpy(r)


@pytest.mark.parametrize("case", list(CASES))
def test_native_and_portable_bodies_agree(device, case):
    be = get_backend(device)
    name = case.split()[0]
    args, want, rtol = CASES[case]
    dargs = [_to_device(be, a) for a in args]
    bodies = {"backend": getattr(be, name)}
    if getattr(type(be), name) is not getattr(Backend, name):
        bodies["portable"] = getattr(Backend, name).__get__(be)
    for which, fn in bodies.items():
        got = _host(be, fn(*dargs))
        if isinstance(want, tuple):
            assert got == want, which
            continue
        assert got.shape == want.shape, which
        assert got.dtype == want.dtype, (which, got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7 if rtol else 0, err_msg=which)


def test_row_major_lays_out_rows_on_numpy():
    # the one backend where layout changes speed: the NumPy fast path must really be C-ordered
    # (and copy nothing when it already is)
    be = get_backend("cpu")
    got = be.row_major(_ROWS.T)
    assert got.flags["C_CONTIGUOUS"] and not np.shares_memory(got, _ROWS)
    assert be.row_major(_ROWS) is _ROWS


def test_erf_keeps_float16(device):
    be = get_backend(device)
    if not be.has_float64 or device == "strict":
        pytest.skip("strict has no float16")
    x = be.asarray(_ERF_IN.astype(np.float16))
    got = be.to_numpy(be.erf(x))
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float64), _erf_ref(_ERF_IN), atol=2e-3)


def test_sign_and_clip_agree_with_the_namespace(device):
    # CupyBackend replaces array-api-compat's sign/clip (their NaN handling reads the host); the
    # namespace's own functions are the portable bodies
    be = get_backend(device)
    x = be.asarray(_SIGNED)
    want_sign = np.sign(_SIGNED)
    np.testing.assert_array_equal(be.to_numpy(be.sign(x)), want_sign)
    np.testing.assert_array_equal(be.to_numpy(be.ns.sign(x)), want_sign)
    for lo, hi in ((-1.0, 1.0), (None, 0.5), (0.0, None)):
        want = np.clip(_SIGNED, lo, hi)
        np.testing.assert_array_equal(be.to_numpy(be.clip(x, lo, hi)), want)
        np.testing.assert_array_equal(be.to_numpy(be.ns.clip(x, lo, hi)), want)


def test_index_positions_agree(device):
    be = get_backend(device)
    key = (be.asarray(np.array([1, 0, 1])), be.asarray(np.array([2, 2, 0])))
    want = np.arange(12).reshape(3, 4)[np.array([1, 0, 1]), np.array([2, 2, 0])]
    np.testing.assert_array_equal(be.to_numpy(be.index_positions((3, 4), key)), want)
    if type(be).index_positions is not Backend.index_positions and device != "strict":
        np.testing.assert_array_equal(be.to_numpy(Backend.index_positions(be, (3, 4), key)), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [0.5, 1.0 / 3.0, 1.0])
def test_copy_scaled_agrees_with_the_portable_body(device, dtype, scale):
    # DistributedDataParallel copies each gradient into a view of its bucket, divided by the
    # world size; the native bodies (np.multiply / cupy.multiply with out=) write in place
    be = get_backend(device)
    src = RS.randn(3, 4).astype(dtype)
    want = (src * dtype(scale)).astype(dtype)
    for body in ([be.copy_scaled] + ([] if type(be).copy_scaled is Backend.copy_scaled
                                     else [lambda d, s, k: Backend.copy_scaled(be, d, s, k)])):
        buf = be.zeros((14,), dtype=be.dtype(np.dtype(dtype)))
        view = be.reshape(buf[1:13], (3, 4))          # a slice of the flat bucket
        body(view, be.asarray(src), scale)
        got = be.to_numpy(buf)
        np.testing.assert_allclose(got[1:13].reshape(3, 4), want, rtol=1e-7 if dtype == np.float32 else 1e-15)
        assert got[0] == 0 and got[13] == 0            # nothing outside the view was written
        assert got.dtype == dtype


def test_refcounts_see_every_new_holder_of_a_buffer():
    # NumPy: a view (of the buffer, or of one of its views) or a memoryview raises the owner's
    # count; dropping it restores the count. The portable body answers None (unknown).
    be = get_backend("cpu")
    buf = np.zeros(8)
    views = [buf[:4].reshape(2, 2), buf[4:]]
    arrays = [buf] + views

    def counts():
        return be.refcounts(arrays)
    base = counts()
    held = views[0][0]                 # a view of a view: its base is the owner
    assert counts() != base
    del held
    assert counts() == base
    kept = views[1]                    # the view object itself, held elsewhere
    assert counts() != base
    del kept
    mv = memoryview(buf)
    assert counts() != base
    mv.release()
    del mv
    assert counts() == base
    assert Backend.refcounts(be, arrays) is None
    assert get_backend("strict").refcounts([get_backend("strict").zeros((2,))]) is None
