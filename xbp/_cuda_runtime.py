"""The CuPy side of `xbp.cuda`: device queries, the memory pool, streams, events, pinned memory.

Like `_backend.py` (whose `_cupy_or_error` it uses), this module imports CuPy lazily, inside each
function, so ``import xbp`` works and stays truthful on a machine without CuPy or without a GPU.
Every function here names the CuPy call it makes; `xbp/cuda.py` is the PyTorch-shaped surface.
"""
from __future__ import annotations

import numpy as np

from ._backend import DeviceError, _cupy_or_error, cuda_available

__all__ = [
    "cupy", "device_count", "device_index", "current_device", "use_device", "synchronize",
    "device_properties", "pool_used_bytes", "pool_total_bytes", "free_cached_blocks", "PeakTracker",
    "new_event", "new_stream", "current_stream", "null_stream", "elapsed_ms", "pinned_empty",
]


def cupy(what: str):
    """The `cupy` module, or DeviceError naming `what` and the fix (install CuPy / no GPU)."""
    return _cupy_or_error(what)


def device_count() -> int:
    """Number of CUDA GPUs CuPy sees (``cupy.cuda.runtime.getDeviceCount``); 0 without CuPy/GPU."""
    if not cuda_available():
        return 0
    import cupy as cp
    return int(cp.cuda.runtime.getDeviceCount())


def device_index(spec, what: str) -> int:
    """A device spec (None, int, "cuda", "cuda:N", xbp.device) -> a CUDA ordinal, checked in range.

    None means the current CuPy device (``cupy.cuda.Device().id``)."""
    cp = cupy(what)
    if spec is None:
        return int(cp.cuda.Device().id)
    if isinstance(spec, bool):
        raise TypeError(f"{what}: device must be an int or 'cuda:N', got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        idx = int(spec)
    else:
        name = str(spec.device if hasattr(spec, "native_device") else spec).strip().lower()   # Backend or name
        if name == "cuda":
            return int(cp.cuda.Device().id)
        if not (name.startswith("cuda:") and name[5:].isdigit()):
            raise ValueError(f"{what}: expected a CUDA device (an int, 'cuda' or 'cuda:N'), got {spec!r}")
        idx = int(name[5:])
    n = int(cp.cuda.runtime.getDeviceCount())
    if not 0 <= idx < n:
        raise DeviceError(f"{what}: device index {idx} out of range; this machine has {n} CUDA GPU(s) "
                          f"(indices 0..{n - 1})")
    return idx


def current_device() -> int:
    return device_index(None, "xbp.cuda.current_device")


def use_device(idx: int) -> None:
    """Make GPU `idx` CuPy's current device (``cupy.cuda.Device(idx).use()``)."""
    cupy("xbp.cuda.set_device").cuda.Device(idx).use()


def synchronize(idx: int) -> None:
    """Wait for all queued work on GPU `idx` (``cupy.cuda.Device(idx).synchronize()``)."""
    cupy("xbp.cuda.synchronize").cuda.Device(idx).synchronize()


def device_properties(idx: int) -> dict:
    """``cupy.cuda.runtime.getDeviceProperties(idx)`` with the name decoded to str."""
    cp = cupy("xbp.cuda.get_device_properties")
    props = dict(cp.cuda.runtime.getDeviceProperties(idx))
    name = props.get("name", b"")
    props["name"] = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    if "major" not in props:
        # Device.compute_capability is "90" for 9.0, "100" for 10.0
        cc = str(cp.cuda.Device(idx).compute_capability)
        props["major"], props["minor"] = int(cc[:-1] or 0), int(cc[-1:] or 0)
    return props


# --- memory -----------------------------------------------------------------------------------
# CuPy allocates device memory through a pool (cupy.get_default_memory_pool()); "allocated" is what
# live arrays hold (used_bytes), "reserved" what the pool holds from the driver (total_bytes).
def pool_used_bytes(idx: int, what: str) -> int:
    cp = cupy(what)
    with cp.cuda.Device(idx):
        return int(cp.get_default_memory_pool().used_bytes())


def pool_total_bytes(idx: int, what: str) -> int:
    cp = cupy(what)
    with cp.cuda.Device(idx):
        return int(cp.get_default_memory_pool().total_bytes())


def free_cached_blocks() -> None:
    """Return the pools' unused blocks to the driver (device pool and pinned host pool)."""
    import cupy as cp
    cp.get_default_memory_pool().free_all_blocks()
    cp.get_default_pinned_memory_pool().free_all_blocks()


class PeakTracker:
    """Peak of the memory pool's used bytes per device, from a CuPy memory hook.

    CuPy keeps no peak statistic, so xbp counts it with a ``cupy.cuda.memory_hook.MemoryHook``
    that sees every pool allocation and free. CuPy's hooks are per thread: the hook is entered in
    the thread that starts tracking and counts that thread's allocations.
    """

    def __init__(self):
        self.hook = None
        self.peak: dict = {}
        self.current: dict = {}

    @property
    def active(self) -> bool:
        return self.hook is not None

    def start(self, what: str) -> None:
        if self.hook is not None:
            return
        cp = cupy(what)
        from cupy.cuda import memory_hook
        tracker = self

        class _Peak(memory_hook.MemoryHook):
            name = "xbp_peak"

            # CuPy calls hooks with keyword arguments (device_id, size, mem_size, mem_ptr, pmem_id),
            # malloc_postprocess also after a failed malloc, with mem_ptr 0 (an OutOfMemoryError on
            # its way: cupy/cuda/memory.pyx v14.2.0 SingleDeviceMemoryPool.malloc's finally)
            def malloc_postprocess(self, **kw):
                if not kw.get("mem_ptr"):
                    return                  # nothing was allocated (or 0 bytes), and no free will follow
                dev = kw["device_id"]
                cur = tracker.current.get(dev, 0) + kw["mem_size"]
                tracker.current[dev] = cur
                if cur > tracker.peak.get(dev, 0):
                    tracker.peak[dev] = cur

            def free_postprocess(self, **kw):
                dev = kw["device_id"]
                tracker.current[dev] = tracker.current.get(dev, 0) - kw["mem_size"]

        for i in range(int(cp.cuda.runtime.getDeviceCount())):
            with cp.cuda.Device(i):
                self.current[i] = self.peak[i] = int(cp.get_default_memory_pool().used_bytes())
        self.hook = _Peak()
        self.hook.__enter__()           # stays installed for this thread (a context CuPy keeps per thread)

    def reset(self, idx: int, what: str) -> None:
        self.start(what)
        self.current[idx] = pool_used_bytes(idx, what)
        self.peak[idx] = self.current[idx]

    def max_used(self, idx: int) -> int:
        return int(self.peak.get(idx, 0))


# --- streams and events -----------------------------------------------------------------------
def new_event(what: str, enable_timing: bool, blocking: bool, interprocess: bool):
    """``cupy.cuda.Event(block=..., disable_timing=..., interprocess=...)``."""
    return cupy(what).cuda.Event(block=blocking, disable_timing=not enable_timing, interprocess=interprocess)


def new_stream(what: str, idx: int, priority: int):
    """``cupy.cuda.Stream(non_blocking=True)`` created on GPU `idx` (priority 0 = CuPy's default)."""
    cp = cupy(what)
    with cp.cuda.Device(idx):
        if priority:
            return cp.cuda.Stream(non_blocking=True, priority=priority)
        return cp.cuda.Stream(non_blocking=True)


def current_stream(idx: int):
    cp = cupy("xbp.cuda.current_stream")
    with cp.cuda.Device(idx):
        return cp.cuda.get_current_stream()


def null_stream():
    return cupy("xbp.cuda.default_stream").cuda.Stream.null


def elapsed_ms(start, end) -> float:
    """``cupy.cuda.get_elapsed_time(start, end)``: milliseconds between two recorded events."""
    return float(cupy("xbp.cuda.Event.elapsed_time").cuda.get_elapsed_time(start, end))


# --- pinned (page-locked) host memory -----------------------------------------------------------
def pinned_empty(shape, dtype) -> np.ndarray:
    """A NumPy array over page-locked host memory (``cupyx.empty_pinned``): host->GPU copies from
    it are DMA transfers that need no staging copy and can run asynchronously."""
    cupy("pin_memory")
    import cupyx
    return cupyx.empty_pinned(shape, dtype=dtype)


def pinned_copy(a) -> np.ndarray:
    """A copy of the host array `a` in page-locked memory (`Tensor.pin_memory`)."""
    out = pinned_empty(a.shape, a.dtype)
    out[...] = a
    return out

