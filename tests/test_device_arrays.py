"""Device arrays are recognised by the Backend, never by NumPy or `__array_namespace__` (CuPy arrays
have none): create_graph through indexing, load_state_dict, tensor([...]) and collation of raw
device arrays. array-api-strict arrays stand in for CuPy's here; the cuda rows run on a GPU (and on
the CuPy emulation, ../shared/tools/fakecupy)."""
import numpy as np
import pytest

import xbp
from xbp._backend import get_backend, is_device_array
from xbp.data import DataLoader, Dataset


def test_is_array_by_type(device):
    b = get_backend(device)
    a = b.asarray([1.0, 2.0])
    assert b.is_array(a) and is_device_array(a)
    assert not b.is_array(xbp.tensor([1.0], device=device)) and not is_device_array(np.float64(1.0))
    assert not b.is_array([1.0]) and not is_device_array(3)


def test_tensor_of_a_list_of_device_arrays_stacks_them_where_they_are(device):
    b = get_backend(device)
    t = xbp.tensor([b.asarray([1.0, 2.0]), b.asarray([3.0, 4.0])])
    assert t.device == b.device and t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    t = xbp.tensor([xbp.tensor([1, 2], device=device), b.asarray([3, 4])], dtype=xbp.float32)
    assert t.dtype == xbp.float32 and t.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_load_state_dict_accepts_raw_device_arrays(device):
    m = xbp.nn.Linear(2, 1).to(device)
    b = get_backend(device)
    m.load_state_dict({"weight": b.asarray([[1.0, 2.0]], dtype=b.dtype(np.dtype("float32"))),
                       "bias": b.asarray([0.5], dtype=b.dtype(np.dtype("float32")))})
    assert m.weight.tolist() == [[1.0, 2.0]] and m.bias.tolist() == [0.5]


def test_collating_a_dataset_of_device_arrays(device):
    b = get_backend(device)

    class DeviceArrays(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return b.asarray([float(i), float(i) * 10]), i

    (x, y), = list(DataLoader(DeviceArrays(), batch_size=4))
    assert x.tolist() == [[0.0, 0.0], [1.0, 10.0], [2.0, 20.0], [3.0, 30.0]] and y.tolist() == [0, 1, 2, 3]


def test_double_backward_through_gather_keeps_saved_index_arrays_as_tensors(device):
    x = xbp.tensor([[1.0, 2.0, 3.0]], dtype=xbp.float64, device=device, requires_grad=True)
    idx = xbp.tensor([[2, 0]], device=device)
    y = (xbp.gather(x, 1, idx) ** 2).sum()
    (g,) = xbp.grad(y, x, create_graph=True)
    assert g.tolist() == [[2.0, 0.0, 6.0]]
    (gg,) = xbp.grad(g.sum(), x)
    assert gg.tolist() == [[2.0, 0.0, 2.0]]


def test_randperm_is_a_permutation(device):
    p = xbp.randperm(50, device=device)
    assert sorted(p.tolist()) == list(range(50)) and p.dtype == xbp.int64


def test_seeding_is_lazy_and_reproducible(device):
    b = get_backend(device)
    xbp.manual_seed(123)
    if b.kind == "cupy":
        assert b._rng is None              # no generator (no curand init kernel) until the first draw
    a = xbp.rand(5, device=device).tolist()
    xbp.manual_seed(123)
    assert xbp.rand(5, device=device).tolist() == a


def test_erf_keeps_half_precision(device):
    if device == "strict":
        pytest.skip("array-api-strict has no float16")
    x = xbp.tensor([0.0, 0.5, -1.0], dtype=xbp.float16, device=device)
    y = xbp.erf(x)
    assert y.dtype == xbp.float16
    np.testing.assert_allclose(y.numpy().astype(np.float64), [0.0, 0.5204999, -0.8427008], atol=2e-3)


def test_from_dlpack_of_pinned_host_memory_goes_to_the_cpu():
    class Pinned:                                      # reports DLPack device type 3 (kDLCUDAHost)
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return (3, 0)

    a = np.arange(4.0)
    t = xbp.from_dlpack(Pinned(a))
    assert t.device == "cpu" and t.tolist() == [0.0, 1.0, 2.0, 3.0]
    a[0] = 7.0
    assert t.tolist()[0] == 7.0                        # zero-copy


def test_cuda_index_above_zero_is_refused_clearly():
    if not xbp.cuda_available():
        pytest.skip("cuda: CuPy is not installed or sees no GPU")
    import cupy
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    with pytest.raises(xbp.DeviceError, match="only cuda:0 is supported"):
        xbp.zeros(1, device="cuda:1")


def test_overlapping_copies_give_numpys_results(device):
    # CuPy has no overlap handling (undefined values); the backend copies an overlapping source first
    a = np.arange(6.0)
    x = xbp.tensor(a, device=device)
    x[1:] = x[:-1]
    ref = a.copy()
    ref[1:] = ref[:-1]
    assert x.tolist() == ref.tolist()
    x = xbp.tensor(a, device=device)
    x[1:] += x[:-1]
    ref = a.copy()
    ref[1:] += ref[:-1].copy()
    assert x.tolist() == ref.tolist()
    m = xbp.tensor(np.arange(9.0).reshape(3, 3), device=device)
    m.copy_(m.T)
    assert m.tolist() == np.arange(9.0).reshape(3, 3).T.tolist()


def test_tensor_always_copies_its_input(device):
    # torch.tensor(ndarray) copies; from_numpy / as_tensor are the sharing constructors
    for dt in (np.float32, np.float64, np.int64):
        a = np.arange(4, dtype=dt)
        x = xbp.tensor(a, device=device)
        x.add_(1)
        assert a.tolist() == [0, 1, 2, 3], (device, dt)
