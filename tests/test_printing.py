"""repr/str of tensors against PyTorch 2.13's own repr of the same values, character for character.

xbp prints dtypes as ``xbp.float64`` where PyTorch prints ``torch.float64``; the expected strings
are torch's with that one substitution. A tensor on the default device prints no device suffix
(as in PyTorch), so each device is compared with itself as the default device."""
import math

import numpy as np
import pytest

import xbp

torch = pytest.importorskip("torch")


@pytest.fixture
def on_default(device):
    """Make `device` the default device for the test (so no device suffix), restored after."""
    old = xbp.get_default_device()
    xbp.set_default_device(device)
    yield device
    xbp.set_default_device(old)


@pytest.fixture(autouse=True)
def _restore_printoptions():
    yield
    xbp.set_printoptions(profile="default")
    torch.set_printoptions(profile="default")


def _torch_repr(a, requires_grad=False):
    t = torch.from_numpy(np.array(a, copy=True))
    if requires_grad:
        t.requires_grad_(True)
    return repr(t).replace("torch.", "xbp.")


def _xbp(a, device, requires_grad=False):
    return xbp.tensor(np.array(a, copy=True), device=device, requires_grad=requires_grad)


rng = np.random.default_rng(7)
CASES = {
    "randn 3x4": rng.standard_normal((3, 4)).astype(np.float32),
    "vector 0.029": np.array([0.029, 1.0], np.float32),
    "tiny": (rng.standard_normal(5) * 1e-6).astype(np.float32),
    "huge": (rng.standard_normal(5) * 1e9).astype(np.float32),
    "mixed magnitudes": np.array([1e-3, 1.0, 5e3], np.float32),
    "ratio just under 1000": np.array([1.0, 999.0], np.float32),
    "ratio just over 1000": np.array([1.0, 1001.0], np.float32),
    "whole floats": np.array([1.0, 2.0, -3.0], np.float32),
    "whole floats large": np.array([1.0, 1e10], np.float32),
    "zeros": np.zeros((2, 2), np.float32),
    "negative zero": np.array([-0.0, 0.0], np.float32),
    "nan inf": np.array([np.nan, np.inf, -np.inf, 1.5], np.float32),
    "nan whole": np.array([np.nan, 1.0, 2.0], np.float32),
    "all nan": np.array([np.nan, np.nan], np.float32),
    "inf and zero": np.array([np.inf, 0.0], np.float32),
    "ints": np.array([[1, -20, 300], [4, 5, 6]], np.int64),
    "int32": np.array([1, 2, 3], np.int32),
    "uint8": np.array([0, 255], np.uint8),
    "int16 3d": np.arange(24, dtype=np.int16).reshape(2, 3, 4),
    "bools": np.array([[True, False], [False, True]]),
    "0-d float": np.array(3.14159, np.float32),
    "0-d whole": np.array(2.0, np.float32),
    "0-d int": np.array(7, np.int64),
    "0-d bool": np.array(True),
    "0-d nan": np.array(np.nan, np.float32),
    "empty": np.zeros((0,), np.float32),
    "empty 2d": np.zeros((0, 3), np.float32),
    "empty int": np.zeros((0,), np.int64),
    "empty 3d f64": np.zeros((2, 0, 4), np.float64),
    "nested 3-D": rng.standard_normal((2, 3, 4)).astype(np.float32),
    "4-D": rng.uniform(-5, 5, (2, 2, 2, 3)).astype(np.float32),
    "float64": rng.standard_normal((2, 3)),
    "float64 whole": np.array([1.0, 2.0]),
    "wide vector wraps": rng.standard_normal(30).astype(np.float32),
    "wide int vector": np.arange(100, dtype=np.int64) * 37,
    "wide rows": rng.standard_normal((3, 15)).astype(np.float32),
    "summarized ints": np.arange(2000, dtype=np.int64),
    "summarized floats": rng.standard_normal(2000).astype(np.float32),
    "summarized matrix": rng.standard_normal((50, 50)).astype(np.float32),
    "summarized 3-D": rng.standard_normal((10, 10, 20)).astype(np.float32),
    "summarized small dim": rng.standard_normal((2, 600)).astype(np.float32),
    "summarized sci": (rng.standard_normal((40, 40)) * 1e-7).astype(np.float32),
    "exactly threshold": rng.standard_normal(1000).astype(np.float32),
    "float16": np.array([0.5, 1.25, 3.0], np.float16),
    "complex64": np.array([1 + 2j, -3.5j, 0.25], np.complex64),
    "complex128 whole": np.array([1 + 2j, 3 - 4j]),
}


def _skip_unsupported(name, device):
    if device == "strict" and "float16" in name:
        pytest.skip("array-api-strict has no float16")


@pytest.mark.parametrize("name", list(CASES))
def test_repr_matches_torch(name, on_default):
    _skip_unsupported(name, on_default)
    a = CASES[name]
    t = _xbp(a, on_default)
    assert repr(t) == _torch_repr(a), name
    assert str(t) == repr(t)


@pytest.mark.parametrize("name", ["randn 3x4", "0-d float", "empty", "summarized matrix", "float64"])
def test_repr_requires_grad_and_grad_fn(name, on_default):
    a = CASES[name].astype(np.float32) if name != "float64" else CASES[name]
    x = _xbp(a, on_default, requires_grad=True)
    assert repr(x) == _torch_repr(a, requires_grad=True)
    tx = torch.from_numpy(np.array(a, copy=True)).requires_grad_(True)
    assert repr(x * 2) == repr(tx * 2).replace("torch.", "xbp.")
    assert "grad_fn=<MulBackward0>" in repr(x * 2)


@pytest.mark.parametrize("opts", [
    {"precision": 2}, {"precision": 8}, {"threshold": 5}, {"edgeitems": 1, "threshold": 10},
    {"linewidth": 40}, {"sci_mode": True}, {"sci_mode": False}, {"profile": "short"},
    {"profile": "full"}, {"edgeitems": 0, "threshold": 3},
])
@pytest.mark.parametrize("name", ["randn 3x4", "tiny", "wide int vector", "summarized matrix", "whole floats",
                                  "nested 3-D", "nan inf"])
def test_printoptions_match_torch(opts, name, on_default):
    a = CASES[name]
    xbp.set_printoptions(**opts)
    torch.set_printoptions(**opts)
    assert repr(_xbp(a, on_default)) == _torch_repr(a)


def test_printoptions_context_and_get():
    before = xbp.get_printoptions()
    assert before == {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None}
    with xbp.printoptions(precision=1):
        assert repr(xbp.tensor([1.25, 2.5])) == "tensor([1.2, 2.5])"
    assert xbp.get_printoptions() == before
    with pytest.raises(ValueError, match="precision"):
        xbp.set_printoptions(precision=-1)
    with pytest.raises(ValueError, match="profile"):
        xbp.set_printoptions(profile="long")


def test_device_suffix(device):
    """A tensor off the default device names its device; torch's own suffix layout is the oracle."""
    if device == "cpu":
        pytest.skip("cpu is the default device")
    from torch._tensor_str import _add_suffixes, _tensor_str
    for a in (CASES["randn 3x4"], CASES["float64"], CASES["wide rows"], np.zeros((0, 2), np.float32)):
        t = _xbp(a, device)
        ta = torch.from_numpy(np.array(a, copy=True))
        suffixes = [f"device='{xbp.device(t.device)}'"]
        if a.size == 0:
            suffixes.append("size=" + str(tuple(a.shape)))
        if a.dtype != np.float32:
            suffixes.append(f"dtype=xbp.{a.dtype.name}")
        expected = _add_suffixes("tensor(" + _tensor_str(ta, len("tensor(")), suffixes, len("tensor("), False)
        assert repr(t) == expected


def test_dtype_suffix_follows_default_dtype():
    old = xbp.get_default_dtype()
    try:
        xbp.set_default_dtype(xbp.float64)
        torch.set_default_dtype(torch.float64)
        for a in (np.array([1.5, 2.0]), np.array([1.5, 2.0], np.float32), np.zeros(0)):
            assert repr(xbp.tensor(a)) == _torch_repr(a)
    finally:
        xbp.set_default_dtype(old)
        torch.set_default_dtype(torch.float32)


def test_format_one_element_still_formats_value():
    assert f"{xbp.tensor(math.pi):.3f}" == "3.142"


def test_return_types_print_like_torch(on_default):
    a = np.array([[1.0, 5.0, -2.0], [3.0, 2.0, 7.5]], np.float32)
    x, t = _xbp(a, on_default), torch.from_numpy(a)
    for mine, theirs in ((x.max(0), t.max(0)), (x.min(1, keepdim=True), t.min(1, keepdim=True)),
                         (xbp.max(x, dim=1), torch.max(t, dim=1))):
        assert repr(mine) == repr(theirs).replace("torch.", "xbp.")
        assert type(mine).__name__ == type(theirs).__name__
        values, indices = mine
        assert values is mine.values and indices is mine.indices


def test_summarised_print_moves_only_the_edges(device):
    """A large tensor's repr reads only the printed edges off the device: the reduction there
    gives the same elements as PyTorch's summarised data (computed here with NumPy)."""
    from xbp._printing import edges
    a = np.arange(40 * 5 * 9, dtype=np.float32).reshape(40, 5, 9)
    t = xbp.tensor(a, device=device)
    got = t.xp.to_numpy(edges(t.xp, t.array, 3))
    idx = [np.r_[0:3, n - 3:n] if n > 6 else np.arange(n) for n in a.shape]
    np.testing.assert_array_equal(got, a[np.ix_(*idx)])
    assert got.shape == (6, 5, 6)
