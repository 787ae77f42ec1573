"""Tensor API, creation functions, dtypes and devices."""
import os
import subprocess
import sys

import numpy as np
import pytest

import xbp
from conftest import raises_checked, rand, to_np


# --- devices ------------------------------------------------------------------------------------
def test_strict_backend_pins_api_version_and_uses_a_non_default_device():
    import array_api_strict
    b = xbp.zeros(1, device="strict").xp
    assert b.API_VERSION == "2024.12"
    assert array_api_strict.get_array_api_strict_flags()["api_version"] == "2024.12"
    assert b.native_device != array_api_strict.Device()          # not the CPU_DEVICE default
    assert xbp.zeros(2, device="strict").array.device == b.native_device


def test_device_names(device):
    t = xbp.zeros(2, device=device)
    assert isinstance(t.device, xbp.device) and isinstance(t.device, str)
    assert t.device.type == device
    if device == "cuda":
        assert t.device == "cuda:0" and t.device.index == 0
    else:
        assert t.device == device and t.device.index is None


def test_unknown_device_is_a_device_error():
    with pytest.raises(xbp.DeviceError, match="unknown device 'tpu'.*'cpu', 'cuda'"):
        xbp.zeros(2, device="tpu")


@pytest.mark.skipif(xbp.cuda_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_gpu_names_what_is_missing_and_the_install_command(spec):
    with pytest.raises(xbp.DeviceError) as e:
        xbp.zeros(2, device=spec)
    msg = str(e.value)
    assert "cuda" in msg
    try:
        import cupy  # noqa: F401
        assert "no CUDA GPU" in msg
    except ImportError:
        # the real distributions: "xbp" on the package index is an unrelated project
        assert "CuPy is not installed" in msg and "pip install cupy-cuda12x" in msg and "cupy-cuda13x" in msg
        assert 'pip install "xbp' not in msg and 'pip install -e ".[cuda12]"' in msg
    with pytest.raises(xbp.DeviceError):
        xbp.tensor([1.0]).cuda()
    with pytest.raises(xbp.DeviceError):
        xbp.tensor([1.0]).to("cuda")
    assert xbp.cuda_available() is False


def test_import_without_cupy_and_xbp_device_env():
    # a fresh interpreter where `import cupy` fails: import works, the env var sets the default
    code = ("import sys; sys.modules['cupy'] = None\n"
            "import xbp\n"
            "assert xbp.get_default_device() == 'strict', xbp.get_default_device()\n"
            "t = xbp.ones(2)\n"
            "assert t.device == 'strict'\n"
            "try:\n    xbp.zeros(1, device='cuda')\nexcept xbp.DeviceError as e:\n"
            "    assert 'CuPy is not installed' in str(e) and 'cupy-cuda12x' in str(e)\n"
            "else:\n    raise SystemExit('no DeviceError')\n")
    root = os.path.dirname(os.path.dirname(xbp.__file__))   # prepended: packages may come from PYTHONPATH
    env = dict(os.environ, XBP_DEVICE="strict",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_set_default_device():
    prev = xbp.get_default_device()
    try:
        xbp.set_default_device("strict")
        assert xbp.zeros(2).device == "strict"
        assert xbp.tensor([1.0]).device == "strict"
        assert xbp.arange(3).device == "strict"
        assert xbp.randn(2).device == "strict"
        xbp.set_default_device("cpu")
        assert xbp.ones(1).device == "cpu"
        with pytest.raises(xbp.DeviceError):
            xbp.set_default_device("nope")
    finally:
        xbp.set_default_device(prev)


def test_mixing_devices_names_the_op_and_both_devices():
    a = xbp.ones(2, device="cpu", requires_grad=True)
    b = xbp.ones(2, device="strict")
    for f, op in [(lambda: a + b, "add"), (lambda: a * b, "mul"), (lambda: xbp.maximum(a, b), "maximum"),
                  (lambda: xbp.where(b > 0, a, a), "where"), (lambda: xbp.cat([a, b]), "concat")]:
        with pytest.raises(xbp.DeviceError) as e:
            f()
        msg = str(e.value)
        assert op in msg and "cpu" in msg and "strict" in msg, msg
    with pytest.raises(xbp.DeviceError, match="matmul.*cpu.*strict"):
        xbp.ones(2, 2) @ xbp.ones(2, 2, device="strict")
    with pytest.raises(xbp.DeviceError, match="linear.*cpu.*strict"):
        xbp.linear(xbp.ones(2, 2), xbp.ones(2, 2, device="strict"))
    with pytest.raises(xbp.DeviceError, match="copy_.*strict.*cpu"):
        xbp.ones(2).copy_(b)
    with pytest.raises(xbp.DeviceError, match="setitem.*cpu.*strict"):
        xbp.ones(2)[0] = b[0]
    with pytest.raises(xbp.DeviceError, match="index: index tensor is on strict.*cpu"):
        xbp.ones(2)[xbp.tensor([0], device="strict")]
    with pytest.raises(xbp.DeviceError, match="gather: index is on strict, input on cpu"):
        xbp.gather(xbp.ones(2, 2), 1, xbp.tensor([[0], [1]], device="strict"))
    with pytest.raises(xbp.DeviceError, match="backward: gradient is on strict"):
        (a * 2.0).backward(b)
    with pytest.raises(xbp.DeviceError, match="eq.*cpu.*strict"):
        a == b


def test_to_moves_between_devices_and_back_differentiably(device):
    x, a = rand((2, 3), "cpu")
    y = x.to(device)
    assert y.device == xbp.tensor(0.0, device=device).device and y.requires_grad
    np.testing.assert_array_equal(to_np(y), a)
    (y * 2.0).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), np.full((2, 3), 2.0))
    z = y.to("cpu", xbp.float32)
    assert z.device == "cpu" and z.dtype == xbp.float32
    assert x.cpu().device == "cpu"
    assert x.to(x.device) is x
    w = x.to(device=device, dtype="float32")
    assert w.dtype == xbp.float32


# --- dtypes ---------------------------------------------------------------------------------------
def test_dtype_names():
    assert xbp.float32 == np.float32 and xbp.float64 == np.float64 and xbp.int64 == np.int64
    assert xbp.bool == np.bool_ and xbp.int32 == np.int32 and xbp.float16 == np.float16
    assert xbp.long == xbp.int64 and xbp.double == xbp.float64 and xbp.float == xbp.float32


def test_python_data_dtypes(device):
    assert xbp.tensor(1.5, device=device).dtype == xbp.float32
    assert xbp.tensor([[1.0, 2.0]], device=device).dtype == xbp.float32
    assert xbp.tensor([1, 2], device=device).dtype == xbp.int64
    assert xbp.tensor(3, device=device).dtype == xbp.int64
    assert xbp.tensor([True, False], device=device).dtype == xbp.bool
    assert xbp.tensor([1, 2], dtype=xbp.float64, device=device).dtype == xbp.float64
    assert xbp.tensor([1.0], dtype="float64", device=device).dtype == xbp.float64


def test_numpy_data_keeps_its_dtype(device):
    for dt in (np.float64, np.float32, np.int32, np.int64, np.bool_):
        t = xbp.tensor(np.zeros(3, dtype=dt), device=device)
        assert t.dtype == dt
    assert xbp.tensor(np.float64(2.0), device=device).dtype == xbp.float64
    assert xbp.tensor(np.float64(2.0), device=device).shape == ()
    assert xbp.tensor(np.ones(2), dtype=xbp.float32, device=device).dtype == xbp.float32


def test_tensor_copies_its_data():
    a = np.ones(3)
    t = xbp.tensor(a)
    a[0] = 5.0
    assert t.tolist() == [1.0, 1.0, 1.0]
    f = xbp.from_numpy(a)            # from_numpy shares memory
    a[1] = 7.0
    assert f.tolist() == [5.0, 7.0, 1.0]


def test_python_scalars_take_the_tensors_dtype(device):
    x = xbp.ones(3, device=device)
    for y in (x * 2.0, 2.0 * x, x + 1, x - 0.5, 1.0 - x, x / 3.0, 3.0 / x, x ** 2, x ** 2.0, 2.0 ** x,
              xbp.maximum(x, 0.5), xbp.where(x > 0, x, 0.0), x * np.float64(2.0), np.float64(2.0) * x,
              x + np.float32(1.0), x - np.int64(1), x * np.array(2.0)):
        assert isinstance(y, xbp.Tensor)
        assert y.dtype == xbp.float32, y
    x64 = xbp.ones(3, dtype=xbp.float64, device=device)
    assert (x64 * 2.0).dtype == xbp.float64
    assert (x64 * np.float32(2.0)).dtype == xbp.float64


def test_mixed_tensor_dtypes_promote(device):
    a = xbp.ones(2, device=device)
    b = xbp.ones(2, dtype=xbp.float64, device=device)
    assert (a + b).dtype == xbp.float64
    i = xbp.tensor([1, 2], device=device)
    assert (i + 1).dtype == xbp.int64
    assert (i / i).dtype == xbp.float32
    assert (i / 2).dtype == xbp.float32
    assert (i // 2).dtype == xbp.int64
    assert (a + i).dtype == xbp.float32 and (i - a).dtype == xbp.float32
    assert (i * 1.5).dtype == xbp.float32 and (i * 1.5).tolist() == [1.5, 3.0]
    assert (i * np.float32(1.5)).dtype == xbp.float32 and (np.float64(0.5) + i).dtype == xbp.float32
    assert (1.5 - i).dtype == xbp.float32 and (i ** 0.5).dtype == xbp.float32
    assert (i < 1.5).tolist() == [True, False]
    m = xbp.tensor([True, False], device=device)
    assert (m + i).dtype == xbp.int64 and (m + i).tolist() == [2, 2]
    assert xbp.where(m, i, a).dtype == xbp.float32
    assert xbp.maximum(i, b).dtype == xbp.float64
    assert m.sum().dtype == xbp.int64 and m.sum().item() == 1


def test_int_and_bool_tensors_cannot_require_grad(device):
    for make in (lambda: xbp.tensor([1, 2], device=device, requires_grad=True),
                 lambda: xbp.zeros(2, dtype=xbp.int64, device=device, requires_grad=True),
                 lambda: xbp.tensor([True], device=device).requires_grad_(),
                 lambda: xbp.arange(3, device=device, requires_grad=True)):
        with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients.*int64|bool"):
            make()


def test_casts(device):
    x = xbp.tensor([1.7, -2.2], device=device, requires_grad=True)
    assert x.double().dtype == xbp.float64 and x.float().dtype == xbp.float32
    i = x.long()
    assert i.dtype == xbp.int64 and i.tolist() == [1, -2] and not i.requires_grad
    assert x.int().dtype == xbp.int32
    assert x.bool().tolist() == [True, True]
    assert x.to(xbp.float64).requires_grad
    assert x.type_as(xbp.zeros(1, dtype=xbp.float64, device=device)).dtype == xbp.float64
    x.double().sum().backward()
    assert x.grad.dtype == xbp.float32
    with pytest.raises(TypeError, match="unknown dtype"):
        x.to(dtype="floaty")


# --- creation --------------------------------------------------------------------------------------
def test_creation_functions(device):
    assert to_np(xbp.zeros(2, 3, device=device)).tolist() == [[0.0] * 3] * 2
    assert xbp.zeros((2, 3), device=device).shape == (2, 3)
    assert xbp.zeros((), device=device).shape == ()
    assert xbp.ones(2, device=device, dtype=xbp.int64).tolist() == [1, 1]
    assert xbp.full((2,), 7.0, device=device).tolist() == [7.0, 7.0]
    assert xbp.full((2,), 7, device=device).dtype == xbp.int64
    assert xbp.full((1,), True, device=device).dtype == xbp.bool
    assert xbp.full(3, 1.5, device=device).shape == (3,)
    assert xbp.arange(4, device=device).tolist() == [0, 1, 2, 3]
    assert xbp.arange(4, device=device).dtype == xbp.int64
    assert xbp.arange(1, 7, 2, device=device).tolist() == [1, 3, 5]
    assert xbp.arange(0, 1, 0.25, device=device).dtype == xbp.float32
    np.testing.assert_allclose(to_np(xbp.linspace(0, 1, 5, device=device)), [0, 0.25, 0.5, 0.75, 1.0])
    assert xbp.linspace(0, 1, 3, dtype=xbp.float64, device=device).dtype == xbp.float64
    assert to_np(xbp.eye(2, 3, device=device)).tolist() == [[1, 0, 0], [0, 1, 0]]
    assert xbp.eye(2, device=device).dtype == xbp.float32
    x = xbp.tensor([[1, 2]], device=device)
    for f, v in ((xbp.zeros_like, 0), (xbp.ones_like, 1)):
        y = f(x)
        assert y.shape == (1, 2) and y.dtype == xbp.int64 and y.device == x.device and y.tolist() == [[v, v]]
    assert xbp.full_like(x, 5).tolist() == [[5, 5]]
    assert xbp.zeros_like(x, dtype=xbp.float32).dtype == xbp.float32
    assert xbp.empty(2, 2, device=device).shape == (2, 2)
    assert xbp.empty_like(x).shape == (1, 2)
    t = xbp.zeros(2, device=device, requires_grad=True)
    assert t.requires_grad and t.is_leaf


def test_random_creation(device):
    xbp.manual_seed(1)
    u = xbp.rand(1000, device=device)
    assert u.dtype == xbp.float32 and u.shape == (1000,)
    a = to_np(u)
    assert 0.0 <= a.min() and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.05
    n = to_np(xbp.randn(2000, dtype=xbp.float64, device=device))
    assert abs(n.mean()) < 0.1 and abs(n.std() - 1.0) < 0.1
    r = xbp.randint(3, 7, (500,), device=device)
    assert r.dtype == xbp.int64 and set(r.tolist()) == {3, 4, 5, 6}
    assert set(xbp.randint(2, size=(50,), device=device).tolist()) <= {0, 1}
    p = xbp.randperm(5, device=device)
    assert sorted(p.tolist()) == [0, 1, 2, 3, 4]
    x = xbp.randn(2, 3, device=device, requires_grad=True)
    assert x.requires_grad and xbp.rand_like(x).shape == (2, 3) and xbp.randn_like(x).device == x.device
    with pytest.raises(TypeError, match="rand: dtype must be a floating-point dtype"):
        xbp.rand(3, dtype=xbp.int64, device=device)


def test_manual_seed_is_reproducible_per_backend(device):
    xbp.manual_seed(123)
    a = (to_np(xbp.rand(4, device=device)), to_np(xbp.randn(3, device=device)),
         xbp.randint(0, 100, (5,), device=device).tolist())
    xbp.manual_seed(123)
    b = (to_np(xbp.rand(4, device=device)), to_np(xbp.randn(3, device=device)),
         xbp.randint(0, 100, (5,), device=device).tolist())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    xbp.manual_seed(124)
    assert not np.array_equal(to_np(xbp.rand(4, device=device)), a[0])


# --- Tensor API ------------------------------------------------------------------------------------
def test_metadata(device):
    x = xbp.zeros(2, 3, device=device, requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.dtype == xbp.float32 and len(x) == 2
    assert x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6 and x.dim() == 2
    assert x.is_leaf and x.grad_fn is None and x.grad is None and x.requires_grad
    y = x * 2.0
    assert not y.is_leaf and y.grad_fn is not None and y.grad_fn.name() == "MulBackward0"
    assert y.grad_fn.prim.name == "mul"     # the primitive's own name, which xbp.viz shows
    assert x.is_floating_point() and not xbp.tensor([1], device=device).is_floating_point()
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(xbp.tensor(1.0, device=device))


def test_data_is_the_backend_array(device):
    x = xbp.tensor([1.0, 2.0], device=device)
    assert x.array.shape == (2,)
    assert type(x.array).__module__.split(".")[0] in ("numpy", "array_api_strict", "cupy")


def test_host_conversions(device):
    x = xbp.tensor([[1.5, 2.0]], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad.*detach"):
        x.numpy()
    a = x.detach().numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.tolist() == [[1.5, 2.0]]
    a[0, 0] = 9.0                               # as PyTorch: shared on the CPU, a copy elsewhere
    assert x.tolist() == ([[9.0, 2.0]] if device == "cpu" else [[1.5, 2.0]])
    a[0, 0] = 1.5
    assert x.sum().item() == 3.5 and isinstance(x.sum().item(), float)
    assert xbp.tensor([[3]], device=device).item() == 3
    with pytest.raises(ValueError, match="one element.*\\(1, 2\\)"):
        x.item()
    assert float(x[0, 0]) == 1.5 and int(xbp.tensor(4, device=device)) == 4
    assert bool(xbp.tensor([True], device=device))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(xbp.tensor([1.0, 2.0], device=device))
    np.testing.assert_array_equal(np.asarray(x.detach()), [[1.5, 2.0]])
    assert [t.item() for t in xbp.tensor([1.0, 2.0], device=device)] == [1.0, 2.0]
    assert list(range(5))[xbp.tensor(2, device=device)] == 2


def test_zero_dim_tensors(device):
    s = xbp.tensor([[1.0, 2.0], [3.0, 4.0]], device=device).sum()       # NumPy would give a scalar
    assert s.shape == () and s.ndim == 0 and s.numel() == 1
    assert type(s.array).__module__.split(".")[0] in ("numpy", "array_api_strict", "cupy")
    assert hasattr(s.array, "__dlpack__")
    assert repr(s).startswith("tensor(10.")
    assert s.item() == 10.0 and s.tolist() == 10.0
    s += 1
    assert s.item() == 11.0
    s.mul_(2.0)
    assert s.item() == 22.0
    s.fill_(3.0)
    assert s.item() == 3.0
    s[...] = 5.0
    assert s.item() == 5.0
    s.zero_()
    assert s.item() == 0.0
    s.copy_(xbp.tensor(7.0, device=device))
    assert s.item() == 7.0
    e = xbp.tensor(2.0, device=device).exp()
    assert e.shape == () and abs(e.item() - np.exp(2.0)) < 1e-5
    y = xbp.tensor(2.0, device=device, requires_grad=True)
    z = (y * y).exp()
    z.backward()
    assert abs(y.grad.item() - 4.0 * np.exp(4.0)) < 1e-2 and y.grad.shape == ()
    assert xbp.tensor(3.0, device=device).reshape(1).shape == (1,)
    assert xbp.zeros((), device=device).unsqueeze(0).shape == (1,)


def test_repr(device):
    r = repr(xbp.tensor([1.0, 2.5], device=device))
    assert r.startswith("tensor([1.0000, 2.5000]")      # PyTorch's layout (tests/test_printing.py)
    if device == "cpu":
        assert r == "tensor([1.0000, 2.5000])"
    else:
        assert f"device='{xbp.zeros(1, device=device).device}'" in r
    assert "dtype=xbp.float64" in repr(xbp.zeros(1, dtype=xbp.float64, device=device))
    assert "dtype" not in repr(xbp.zeros(1, dtype=xbp.int64, device=device))
    x = xbp.zeros(1, device=device, requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward0>" in repr(x * 2.0)
    assert "..." in repr(xbp.zeros(5000, device=device))
    assert repr(xbp.tensor(1.5, device=device)).startswith("tensor(1.5")


def test_operators(device):
    x, a = rand((2, 3), device, low=0.5, high=2.0)
    y, b = rand((3,), device, low=0.5, high=2.0, seed=1)
    for got, want in [(x + y, a + b), (x - y, a - b), (x * y, a * b), (x / y, a / b), (x ** y, a ** b),
                      (x // y, a // b), (x % y, a % b), (-x, -a), (+x, a), (abs(-x), a),
                      (x @ x.T, a @ a.T), (x.T, a.T), (x.mT, a.T), (x[1], a[1]), (x[:, ::2], a[:, ::2])]:
        np.testing.assert_allclose(to_np(got), want, rtol=1e-12)
    for got, want in [(x < y, a < b), (x <= y, a <= b), (x > y, a > b), (x >= y, a >= b),
                      (x == x, a == a), (x != y, a != b), ((x > 1) & (y > 1), (a > 1) & (b > 1)),
                      ((x > 1) | (y > 1), (a > 1) | (b > 1)), (~(x > 1), ~(a > 1)), ((x > 1) ^ (y > 1), (a > 1) ^ (b > 1))]:
        assert got.dtype == xbp.bool and not got.requires_grad
        np.testing.assert_array_equal(to_np(got), want)


def test_comparisons_and_sign_carry_no_gradient(device):
    x = xbp.tensor([1.0, -2.0], device=device, requires_grad=True)
    for t in (x > 0, x == 1.0, xbp.sign(x), x.argmax(), x // 1.0, xbp.floor(x), xbp.isfinite(x)):
        assert not t.requires_grad and t.grad_fn is None
    np.testing.assert_array_equal(to_np(xbp.sign(x)), [1.0, -1.0])


def test_tensor_methods_match_functions(device):
    x, a = rand((2, 3), device, low=0.5, high=2.0)
    for got, want in [(x.exp(), np.exp(a)), (x.log(), np.log(a)), (x.sqrt(), np.sqrt(a)), (x.sum(0), a.sum(0)),
                      (x.mean(1, keepdim=True), a.mean(1, keepdims=True)), (x.var(), a.var(ddof=1)),
                      (x.reshape(3, 2), a.reshape(3, 2)), (x.view(-1), a.reshape(-1)), (x.flatten(), a.reshape(-1)),
                      (x.permute(1, 0), a.T), (x.transpose(0, 1), a.T), (x.unsqueeze(0), a[None]),
                      (x.clamp(0.7, 1.5), np.clip(a, 0.7, 1.5)), (x.softmax(-1), np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
                      (x.pow(2), a ** 2), (x.sigmoid(), 1 / (1 + np.exp(-a))), (x.tanh(), np.tanh(a)),
                      (x.relu(), a), (x.logsumexp(1), np.log(np.exp(a).sum(1))), (x.norm(), np.linalg.norm(a))]:
        np.testing.assert_allclose(to_np(got), want, rtol=1e-10)


def test_dlpack_roundtrip_with_numpy():
    x = xbp.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=xbp.float64)
    a = np.from_dlpack(x)
    np.testing.assert_array_equal(a, [[1.0, 2.0], [3.0, 4.0]])
    a[0, 0] = 10.0                                          # zero-copy: shares memory
    assert x[0, 0].item() == 10.0
    b = np.arange(6.0).reshape(2, 3)
    t = xbp.from_dlpack(b)
    assert t.shape == (2, 3) and t.dtype == xbp.float64 and t.device == "cpu"
    b[1, 2] = -1.0
    assert t[1, 2].item() == -1.0
    s = xbp.tensor([1.0, 2.0]).sum()                        # 0-d
    assert np.from_dlpack(s).shape == ()
    st = xbp.tensor([1.0, 2.0], device="strict")            # strict exports through DLPack too
    np.testing.assert_array_equal(np.from_dlpack(st), [1.0, 2.0])


def test_dlpack_roundtrip_with_torch():
    torch = pytest.importorskip("torch")
    tt = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    x = xbp.from_dlpack(tt)
    assert x.shape == (2, 3) and x.dtype == xbp.float32
    tt[0, 0] = 42.0
    assert x[0, 0].item() == 42.0
    back = torch.from_dlpack(x)
    assert torch.equal(back, tt)
    z = torch.from_dlpack(xbp.tensor([3.0, 4.0]).sum())
    assert z.shape == () and z.item() == 7.0
    xi = xbp.from_dlpack(torch.tensor([1, 2, 3]))
    assert xi.dtype == xbp.int64 and xi.tolist() == [1, 2, 3]


def test_detach_shares_data_and_version(device):
    x = xbp.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.detach()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    y += 1.0
    assert x.tolist() == [2.0, 3.0]
    assert x._version[0] == 1


def test_requires_grad_and_detach_in_place(device):
    x = xbp.ones(2, device=device)
    assert x.requires_grad_() is x and x.requires_grad
    y = x * 2.0
    with pytest.raises(RuntimeError, match="non-leaf.*detach"):
        y.requires_grad_(False)
    y.detach_()
    assert y.grad_fn is None and not y.requires_grad


def test_register_hook_needs_requires_grad(device):
    with pytest.raises(RuntimeError, match="does not require grad"):
        xbp.ones(2, device=device).register_hook(lambda g: g)


def test_len_iter_and_getitem_errors(device):
    x = xbp.arange(6.0, device=device).reshape(2, 3)
    with pytest.raises(IndexError, match="index 2 is out of bounds for dim 0 of size 2"):
        x[2]
    with pytest.raises(IndexError, match="out of bounds for dim 1 of size 3"):
        x[0, -4]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with raises_checked(IndexError, match="out of range.*\\[5, 5\\].*size 2"):
        x[[5]]
    with raises_checked(IndexError, match="out of range.*size 3"):
        x[:, xbp.tensor([0, 3], device=device)]
    with pytest.raises(IndexError, match="boolean mask of shape \\(3,\\) does not match.*\\(2,\\)"):
        x[xbp.tensor([True, False, True], device=device)]
    with pytest.raises(IndexError, match="bool"):
        x[True]
    with pytest.raises(IndexError, match="must be integer or bool"):
        x[xbp.tensor([0.0], device=device)]
    with pytest.raises(IndexError, match="out of bounds"):
        x[0, 5] = 1.0


def test_more_pytorch_methods(device):
    x, a = rand((2, 3), device)
    np.testing.assert_allclose(to_np(x.t()), a.T)
    with pytest.raises(ValueError, match="t\\(\\) expects"):
        xbp.zeros(1, 1, 1, device=device).t()
    y = xbp.tensor([1.0, 2.0], device=device)
    assert y.eq(1.0).tolist() == [True, False] and y.gt(1.0).tolist() == [False, True]
    assert y.le(1.0).tolist() == [True, False] and y.ne(1.0).tolist() == [False, True]
    assert xbp.tensor([1.5, -1.5], device=device).floor().tolist() == [1.0, -2.0]
    assert x.cumsum(1).shape == (2, 3) and x.tile(2, 1).shape == (4, 3)
    assert x.unflatten(1, (3, 1)).shape == (2, 3, 1) and x.movedim(0, 1).shape == (3, 2)
    assert len(x.unbind(1)) == 3 and x.repeat_interleave(2, 0).shape == (4, 3)
    n = x.new_zeros(2, 2)
    assert n.device == x.device and n.dtype == xbp.float64 and not n.requires_grad
    assert x.new_ones((3,), dtype=xbp.float32).dtype == xbp.float32
    assert x.new_full((2,), 4.0).tolist() == [4.0, 4.0]
    assert x.new_tensor([1, 2]).dtype == xbp.float64 and x.new_empty(1).shape == (1,)
    z = x * 1.0
    z.masked_fill_(z > 0, 0.0)
    z.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), (a <= 0).astype(float))
    for name in ("logical_xor", "repeat_interleave", "unflatten", "swapdims", "view", "floor_divide"):
        assert callable(getattr(xbp, name))


def test_randint_size_forms(device):
    assert xbp.randint(0, 3, 4, device=device).shape == (4,)
    assert xbp.randint(0, 3, (2, 2), device=device).shape == (2, 2)
    assert xbp.randint(5, device=device).shape == ()


def test_setitem_and_copy_accept_host_values(device):
    x = xbp.zeros(2, 3, device=device)
    x[0] = [1.0, 2.0, 3.0]
    x[1] = np.array([4.0, 5.0, 6.0])
    x[1, 0] = np.float64(9.0)
    assert x.tolist() == [[1.0, 2.0, 3.0], [9.0, 5.0, 6.0]] and x.dtype == xbp.float32
    x.copy_(np.ones((2, 3)))
    assert x.tolist() == [[1.0] * 3] * 2
    x.copy_([[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
    assert x.sum().item() == 15.0


def test_format_and_reflected_mod(device):
    loss = xbp.tensor([0.123456], device=device).sum()
    assert f"{loss:.3f}" == "0.123"
    assert f"{xbp.tensor([1.0, 2.0], device=device)}".startswith("tensor(")
    assert (7.0 % xbp.tensor([2.0, 4.0], device=device)).tolist() == [1.0, 3.0]


def test_ellipsis_then_int_indexes_the_last_dims(device):
    x = xbp.arange(6.0, device=device).reshape(2, 3)
    assert x[..., 2].tolist() == [2.0, 5.0]
    with pytest.raises(IndexError, match="index 3 is out of bounds for dim 1 of size 3"):
        x[..., 3]
    x[..., 2] = 0.0
    assert x.tolist() == [[0.0, 1.0, 0.0], [3.0, 4.0, 0.0]]


def test_numpy_shares_memory_on_cpu_as_pytorch():
    t = xbp.zeros(3)
    n = t.numpy()
    t.add_(1.0)
    assert n.tolist() == [1.0, 1.0, 1.0]


def test_data_is_a_detached_tensor_sharing_memory(device):
    p = xbp.tensor([1.0, 2.0], device=device, requires_grad=True)
    d = p.data
    assert isinstance(d, xbp.Tensor) and not d.requires_grad and d.grad_fn is None
    assert d.array is p.array
    d.add_(1.0)                                 # p.data.add_(...) changes p, as in PyTorch
    assert p.tolist() == [2.0, 3.0]
    y = (p * p).sum()
    p.data.zero_()                              # invisible to autograd: no version error at backward
    y.backward()
    assert to_np(p.grad).tolist() == [0.0, 0.0]  # d(p*p)/dp = 2p, read at backward time (p is zero now)
    p.data = xbp.tensor([5.0, 6.0, 7.0], device=device)   # layer.weight.data = t
    assert p.shape == (3,) and p.requires_grad and p.tolist() == [5.0, 6.0, 7.0]
    with pytest.raises(TypeError, match="needs a Tensor"):
        p.data = [1.0]
