"""xbp.cuda: truthful answers without CuPy / a GPU, and the CuPy calls each function makes
(checked against a recording stand-in for the `cupy` module, since CuPy's memory pool, events,
memory hooks and pinned memory need a real GPU to exist)."""
import sys
import types

import numpy as np
import pytest

import xbp
import xbp.cuda as cuda
from xbp import DeviceError
from xbp._backend import cuda_available
from xbp._cuda_runtime import PeakTracker
from xbp.data._collate import move_batch

NEEDS_GPU = ["current_device", "synchronize", "get_device_name", "get_device_capability", "get_device_properties",
             "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "memory_reserved",
             "mem_get_info", "current_stream", "default_stream"]


@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU")
def test_truthful_without_a_gpu():
    assert cuda.is_available() is False and xbp.cuda_available() is False
    assert cuda.device_count() == 0 and cuda.is_initialized() is False and cuda.is_bf16_supported() is False
    cuda.manual_seed(1)                  # no-ops, as in PyTorch: scripts seed and free unconditionally
    cuda.manual_seed_all(1)
    cuda.seed()
    cuda.empty_cache()
    cuda.set_device(-1)
    for name in NEEDS_GPU:
        with pytest.raises(DeviceError, match=rf"xbp\.cuda\.{name}: CuPy (is not installed; install|is installed "
                                              r"but sees no CUDA GPU)"):
            getattr(cuda, name)()
    with pytest.raises(DeviceError, match=r"xbp\.cuda\.Event: CuPy"):
        cuda.Event()
    with pytest.raises(DeviceError):
        cuda.Stream()
    with pytest.raises(DeviceError):
        cuda.set_device(0)


# --- the CuPy path, on a recording stand-in -------------------------------------------------------
class _Rec(list):
    def __call__(self, *a):
        self.append(a)


@pytest.fixture
def stub(monkeypatch):
    """A `cupy` with two GPUs whose every call is recorded in `stub.calls`."""
    calls = _Rec()
    cp = types.ModuleType("cupy")
    cp.calls = calls
    cu = types.ModuleType("cupy.cuda")
    cp.cuda = cu
    current = [0]

    class Device:
        def __init__(self, i=None):
            self.id = current[0] if i is None else int(i)

        def use(self):
            calls("use", self.id)
            current[0] = self.id

        def synchronize(self):
            calls("synchronize", self.id)

        def __enter__(self):
            calls("enter", self.id)
            self.prev, current[0] = current[0], self.id
            return self

        def __exit__(self, *e):
            current[0] = self.prev
            return False

    class Pool:
        def __init__(self, name):
            self.name = name

        def used_bytes(self):
            calls(self.name + ".used_bytes", current[0])
            return 1000 + current[0]

        def total_bytes(self):
            calls(self.name + ".total_bytes", current[0])
            return 4096

        def free_all_blocks(self):
            calls(self.name + ".free_all_blocks")

    pool, pinned_pool = Pool("pool"), Pool("pinned_pool")
    cp.get_default_memory_pool = lambda: pool
    cp.get_default_pinned_memory_pool = lambda: pinned_pool

    class Event:
        def __init__(self, block=False, disable_timing=False, interprocess=False):
            calls("Event", block, disable_timing, interprocess)
            self.done = True

        def record(self, stream=None):
            calls("Event.record", stream)

        def synchronize(self):
            calls("Event.synchronize")

    class Stream:
        null = "null-stream"

        def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
            calls("Stream", non_blocking, priority, current[0])
            self.done = False

        def synchronize(self):
            calls("Stream.synchronize")

        def wait_event(self, e):
            calls("Stream.wait_event", e)

        def __enter__(self):
            calls("Stream.enter")
            return self

        def __exit__(self, *e):
            calls("Stream.exit")
            return False

    cu.Device, cu.Event, cu.Stream = Device, Event, Stream
    cu.is_available = lambda: True
    cu.get_current_stream = lambda: calls("get_current_stream", current[0]) or "current-stream"
    cu.get_elapsed_time = lambda a, b: calls("get_elapsed_time") or 1.5
    cu.runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 2,
        getDeviceProperties=lambda i: calls("getDeviceProperties", i) or {
            "name": b"Stub GPU", "totalGlobalMem": 80 << 30, "major": 9, "minor": 0, "multiProcessorCount": 132},
        memGetInfo=lambda: calls("memGetInfo", current[0]) or (10, 80))
    mh = types.ModuleType("cupy.cuda.memory_hook")

    class MemoryHook:
        def __enter__(self):
            calls("hook.enter", type(self).__name__)
            cp.hook = self
            return self

    mh.MemoryHook = MemoryHook
    cu.memory_hook = mh
    cupyx = types.ModuleType("cupyx")
    cupyx.empty_pinned = lambda shape, dtype: calls("empty_pinned", tuple(shape), np.dtype(dtype)) or \
        np.empty(shape, dtype)
    for name, mod in {"cupy": cp, "cupy.cuda": cu, "cupy.cuda.memory_hook": mh, "cupyx": cupyx}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(cuda, "_PEAK", PeakTracker())
    return cp


def test_device_queries_call_cupy(stub):
    assert cuda.is_available() and cuda.device_count() == 2 and cuda.current_device() == 0
    assert cuda.get_device_name(1) == "Stub GPU" and ("getDeviceProperties", 1) in stub.calls
    assert cuda.get_device_capability() == (9, 0)
    p = cuda.get_device_properties("cuda:1")
    assert (p.name, p.total_memory, p.major, p.multi_processor_count) == ("Stub GPU", 80 << 30, 9, 132)
    cuda.synchronize()
    cuda.synchronize("cuda:1")
    assert ("synchronize", 0) in stub.calls and ("synchronize", 1) in stub.calls
    cuda.set_device(0)
    cuda.set_device("cuda:0")
    assert stub.calls.count(("use", 0)) == 2
    with pytest.raises(DeviceError, match="CUDA_VISIBLE_DEVICES=1"):
        cuda.set_device(1)                   # xbp computes on cuda:0 only so far: refuse, do not mislead
    with pytest.raises(DeviceError, match="out of range; this machine has 2 CUDA GPU"):
        cuda.synchronize(5)
    with pytest.raises(ValueError, match="expected a CUDA device"):
        cuda.synchronize("cpu")
    assert cuda.mem_get_info() == (10, 80)


def test_memory_statistics_read_the_pool(stub):
    assert cuda.memory_allocated() == 1000 and cuda.memory_allocated(1) == 1001
    assert ("enter", 1) in stub.calls and ("pool.used_bytes", 1) in stub.calls
    assert cuda.memory_reserved() == 4096
    cuda.empty_cache()
    assert ("pool.free_all_blocks",) in stub.calls and ("pinned_pool.free_all_blocks",) in stub.calls


def test_peak_is_counted_by_a_memory_hook(stub):
    with pytest.warns(RuntimeWarning, match="counts it from now on"):
        assert cuda.max_memory_allocated() == 1000
    assert ("hook.enter", "_Peak") in stub.calls
    hook = stub.hook
    # CuPy calls hooks with keyword arguments; sizes are the pool's rounded chunk sizes
    hook.malloc_postprocess(device_id=0, size=500, mem_size=512, mem_ptr=1, pmem_id=1)
    hook.malloc_postprocess(device_id=0, size=100, mem_size=512, mem_ptr=2, pmem_id=2)
    hook.free_postprocess(device_id=0, mem_size=512, mem_ptr=1, pmem_id=1)
    hook.malloc_postprocess(device_id=0, size=10, mem_size=256, mem_ptr=3, pmem_id=3)
    # a failed malloc (OutOfMemoryError): CuPy still calls malloc_postprocess, with mem_ptr 0 and
    # pmem_id 0 (cupy/cuda/memory.pyx v14.2.0, SingleDeviceMemoryPool.malloc, lines 1336-1349)
    hook.malloc_postprocess(device_id=0, size=1 << 40, mem_size=1 << 40, mem_ptr=0, pmem_id=0)
    assert cuda.max_memory_allocated() == 1000 + 1024            # the peak, not the current 1000 + 768
    cuda.reset_peak_memory_stats()                               # from the bytes in use now (the pool's 1000)
    assert cuda.max_memory_allocated() == 1000
    hook.malloc_postprocess(device_id=0, size=1, mem_size=2048, mem_ptr=4, pmem_id=4)
    assert cuda.max_memory_allocated() == 3048
    assert cuda.max_memory_allocated(1) == 1001                  # the other device saw nothing new
    assert stub.calls.count(("hook.enter", "_Peak")) == 1        # installed once


def test_events_and_streams_wrap_cupy(stub):
    start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    assert ("Event", False, False, False) in stub.calls
    s = cuda.Stream()
    assert ("Stream", True, None, 0) in stub.calls
    start.record(s)
    assert ("Event.record", s.cupy_stream) in stub.calls
    end.record()
    assert start.elapsed_time(end) == 1.5 and end.query() is True
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        cuda.Event().elapsed_time(end)
    assert ("Event", False, True, False) in stub.calls
    s.wait_event(start)
    assert ("Stream.wait_event", start.cupy_event) in stub.calls
    with cuda.stream(s):
        assert stub.calls[-1] == ("Stream.enter",)
    assert stub.calls[-1] == ("Stream.exit",)
    assert cuda.current_stream().cupy_stream == "current-stream"
    assert cuda.default_stream().cupy_stream == "null-stream"
    cuda.Stream(priority=-1)
    assert ("Stream", True, -1, 0) in stub.calls


def test_manual_seed_seeds_the_cuda_backend(stub, monkeypatch):
    seeded = []
    monkeypatch.setattr(cuda, "get_backend", lambda spec: types.SimpleNamespace(seed=lambda s: seeded.append((spec, s))))
    cuda.manual_seed(7)
    cuda.manual_seed_all(8)
    assert seeded == [("cuda", 7), ("cuda", 8)]


def test_pin_memory_stages_gpu_bound_batches_in_pinned_memory(stub):
    got, waits = [], []
    target = types.SimpleNamespace(kind="cupy",
                                   from_numpy=lambda a, non_blocking=False: waits.append(non_blocking) or got.append(a) or a)
    x = xbp.tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    out = move_batch({"x": x, "meta": ["a"]}, target, pin=True)
    assert ("empty_pinned", (3, 2), np.dtype(np.float32)) in stub.calls
    assert got[0] is not x.array and np.array_equal(got[0], x.numpy())
    assert waits == [True]              # a fresh pinned buffer per batch: its upload is not waited for
    assert out["meta"] == ["a"]
    got.clear()
    waits.clear()
    move_batch([x], target, pin=False)                            # pin_memory=False: straight upload
    assert got[0] is not None and stub.calls.count(("empty_pinned", (3, 2), np.dtype(np.float32))) == 1
    assert waits == [False]
