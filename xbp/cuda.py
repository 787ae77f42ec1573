"""`xbp.cuda`: PyTorch's `torch.cuda` namespace on CuPy.

Importable everywhere. On a machine without CuPy, or where CuPy sees no GPU, the queries answer
truthfully (``is_available()`` is False, ``device_count()`` is 0), seeding is a no-op (as in
PyTorch, so scripts can seed unconditionally), ``empty_cache()`` has nothing to free, and every
function that needs a GPU (memory statistics, synchronize, device names, streams, events) raises
`xbp.DeviceError` naming the fix.

Memory figures come from CuPy's default memory pool: `memory_allocated` is the bytes held by live
arrays (``pool.used_bytes()``), `memory_reserved` the bytes the pool holds from the driver
(``pool.total_bytes()``). CuPy keeps no peak, so `max_memory_allocated` is counted by a CuPy memory
hook that xbp installs at the first `reset_peak_memory_stats()` or `max_memory_allocated()` call:
the peak is measured from that moment, for allocations made by the thread that started it.

Only ``cuda:0`` runs xbp tensors so far (see `xbp._backend.get_backend`); select another GPU with
``CUDA_VISIBLE_DEVICES``.
"""
from __future__ import annotations

import contextlib
import warnings

from . import _cuda_runtime as _rt
from ._backend import DeviceError, _BACKENDS, cuda_available, get_backend

__all__ = [
    "is_available", "is_bf16_supported", "is_initialized", "init", "device_count", "current_device", "set_device",
    "device", "synchronize", "manual_seed", "manual_seed_all", "seed", "seed_all",
    "get_device_name", "get_device_capability", "get_device_properties",
    "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "reset_max_memory_allocated",
    "memory_reserved", "empty_cache", "mem_get_info",
    "Event", "Stream", "current_stream", "default_stream", "stream",
]

def is_available() -> bool:
    """True where CuPy is installed and sees at least one CUDA GPU."""
    return cuda_available()


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """False: xbp has no bfloat16 dtype (NumPy and CuPy have none), so scripts that pick bfloat16
    when this is True fall back to float16/float32."""
    return False


def is_initialized() -> bool:
    """True once xbp has created its CUDA backend (the first tensor on 'cuda')."""
    return any(getattr(b, "kind", None) == "cupy" for b in _BACKENDS.values())


def init() -> None:
    """Create xbp's CUDA backend now (else it is made at the first tensor on 'cuda')."""
    get_backend("cuda")


def device_count() -> int:
    """Number of CUDA GPUs visible (0 without CuPy or without a GPU)."""
    return _rt.device_count()


def current_device() -> int:
    """Index of the current CUDA device (CuPy's current device)."""
    return _rt.current_device()


def set_device(device) -> None:
    """Make `device` (an int, 'cuda:N' or xbp.device) the current GPU. A negative int is a no-op,
    as in PyTorch. xbp runs tensors on cuda:0 only so far: another index is refused."""
    if isinstance(device, int) and not isinstance(device, bool) and device < 0:
        return
    idx = _rt.device_index(device, "xbp.cuda.set_device")
    if idx != 0:
        raise DeviceError(f"xbp.cuda.set_device({device!r}): xbp runs tensors on cuda:0 only so far; select "
                          f"the GPU with CUDA_VISIBLE_DEVICES={idx} and use 'cuda'")
    _rt.use_device(idx)


class device:
    """Context manager that makes `device` the current GPU (`set_device`) and restores the
    previous one on exit."""

    def __init__(self, device):
        self.idx = device if isinstance(device, int) else _rt.device_index(device, "xbp.cuda.device")
        self.prev = None

    def __enter__(self):
        if self.idx is not None and self.idx >= 0:
            self.prev = current_device()
            set_device(self.idx)
        return self

    def __exit__(self, *exc):
        if self.prev is not None:
            set_device(self.prev)
        return False


def synchronize(device=None) -> None:
    """Wait until all work queued on `device` (default: the current GPU) has finished, then read
    the index checks deferred on it (one transfer) and raise the IndexError of a failed one (see
    ``Backend.defer_check``: on CUDA a bad index is reported at the next sync, not at the op)."""
    idx = _rt.device_index(device, "xbp.cuda.synchronize")
    _rt.synchronize(idx)
    backend = _BACKENDS.get(f"cuda:{idx}")
    if backend is not None:
        backend.check_pending()


def manual_seed(seed: int) -> None:
    """Seed the GPU's random generator (xbp's CUDA backend). Without a GPU it does nothing, as in
    PyTorch, so scripts can call it unconditionally; `xbp.manual_seed` seeds every device."""
    seed = int(seed)
    if cuda_available():
        get_backend("cuda").seed(seed)


def manual_seed_all(seed: int) -> None:
    """Seed the random generator of every GPU (xbp uses one: cuda:0)."""
    manual_seed(seed)


def seed() -> None:
    """Seed the GPU's generator with a fresh random seed (no-op without a GPU)."""
    import secrets
    manual_seed(secrets.randbits(63))


seed_all = seed


def get_device_properties(device=None):
    """Properties of a GPU, with PyTorch's field names: ``name``, ``total_memory`` (bytes),
    ``major``, ``minor``, ``multi_processor_count`` (from ``cupy.cuda.runtime.getDeviceProperties``)."""
    idx = _rt.device_index(device, "xbp.cuda.get_device_properties")
    p = _rt.device_properties(idx)
    return _DeviceProperties(name=p["name"], total_memory=int(p.get("totalGlobalMem", 0)),
                             major=int(p.get("major", 0)), minor=int(p.get("minor", 0)),
                             multi_processor_count=int(p.get("multiProcessorCount", 0)))


class _DeviceProperties:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        return ("_CudaDeviceProperties(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")")


def get_device_name(device=None) -> str:
    """The GPU's name, e.g. ``'NVIDIA H100 80GB HBM3'``."""
    return _rt.device_properties(_rt.device_index(device, "xbp.cuda.get_device_name"))["name"]


def get_device_capability(device=None) -> tuple:
    """The GPU's compute capability as ``(major, minor)``."""
    p = _rt.device_properties(_rt.device_index(device, "xbp.cuda.get_device_capability"))
    return int(p.get("major", 0)), int(p.get("minor", 0))


# --- memory -----------------------------------------------------------------------------------
_PEAK = _rt.PeakTracker()


def memory_allocated(device=None) -> int:
    """Bytes of GPU memory held by live arrays on `device` (CuPy pool's ``used_bytes``)."""
    what = "xbp.cuda.memory_allocated"
    return _rt.pool_used_bytes(_rt.device_index(device, what), what)


def memory_reserved(device=None) -> int:
    """Bytes of GPU memory the CuPy memory pool holds on `device`, used or cached (``total_bytes``)."""
    what = "xbp.cuda.memory_reserved"
    return _rt.pool_total_bytes(_rt.device_index(device, what), what)


def max_memory_allocated(device=None) -> int:
    """Peak of `memory_allocated` since the last `reset_peak_memory_stats()`.

    CuPy keeps no peak: xbp counts it from the first call of `reset_peak_memory_stats()` or of
    this function (then it warns that the peak starts now), in the thread that made that call."""
    what = "xbp.cuda.max_memory_allocated"
    idx = _rt.device_index(device, what)
    if not _PEAK.active:
        warnings.warn("xbp.cuda.max_memory_allocated: CuPy keeps no peak statistic, so xbp counts it from "
                      "now on; call xbp.cuda.reset_peak_memory_stats() before the code you measure",
                      RuntimeWarning, stacklevel=2)
        _PEAK.start(what)
    return max(_PEAK.max_used(idx), _rt.pool_used_bytes(idx, what))


def reset_peak_memory_stats(device=None) -> None:
    """Start counting the peak of `memory_allocated` afresh (from the bytes in use now)."""
    what = "xbp.cuda.reset_peak_memory_stats"
    _PEAK.reset(_rt.device_index(device, what), what)


reset_max_memory_allocated = reset_peak_memory_stats


def empty_cache() -> None:
    """Return the cached, unused blocks of CuPy's device and pinned-memory pools to the driver.
    Without a GPU nothing is cached and this does nothing (as in PyTorch)."""
    if cuda_available():
        _rt.free_cached_blocks()


def mem_get_info(device=None) -> tuple:
    """``(free_bytes, total_bytes)`` of the GPU as the driver reports them (``cudaMemGetInfo``)."""
    what = "xbp.cuda.mem_get_info"
    idx = _rt.device_index(device, what)
    cp = _rt.cupy(what)
    with cp.cuda.Device(idx):
        free, total = cp.cuda.runtime.memGetInfo()
    return int(free), int(total)


# --- streams and events -----------------------------------------------------------------------
class Event:
    """A CUDA event (wraps ``cupy.cuda.Event``): ``record(stream)``, ``wait(stream)``, ``query()``,
    ``synchronize()``, ``elapsed_time(end)`` in milliseconds (needs ``enable_timing=True``)."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False):
        self.enable_timing = bool(enable_timing)
        self.cupy_event = _rt.new_event("xbp.cuda.Event", self.enable_timing, bool(blocking), bool(interprocess))

    def record(self, stream=None) -> None:
        """Records the event on `stream` (default: the current stream)."""
        self.cupy_event.record(_cupy_stream(stream))

    def wait(self, stream=None) -> None:
        """Makes `stream` (default: the current stream) wait until the event has happened."""
        s = _cupy_stream(stream) if stream is not None else _rt.current_stream(current_device())
        s.wait_event(self.cupy_event)

    def query(self) -> bool:
        """True when the work recorded before the event has finished."""
        return bool(self.cupy_event.done)

    def synchronize(self) -> None:
        """Blocks the host until the event has happened."""
        self.cupy_event.synchronize()

    def elapsed_time(self, end_event: "Event") -> float:
        """Milliseconds from this event to `end_event`; both need ``enable_timing=True``."""
        if not (self.enable_timing and end_event.enable_timing):
            raise RuntimeError("xbp.cuda.Event.elapsed_time: both events need enable_timing=True")
        return _rt.elapsed_ms(self.cupy_event, end_event.cupy_event)


class Stream:
    """A CUDA stream (wraps a non-blocking ``cupy.cuda.Stream``). ``with xbp.cuda.stream(s):`` makes
    it current, so CuPy queues xbp's kernels on it."""

    def __init__(self, device=None, priority: int = 0):
        self.device_index = _rt.device_index(device, "xbp.cuda.Stream")
        self.cupy_stream = _rt.new_stream("xbp.cuda.Stream", self.device_index, int(priority))

    @classmethod
    def _wrap(cls, cupy_stream, idx):
        s = cls.__new__(cls)
        s.cupy_stream, s.device_index = cupy_stream, idx
        return s

    def synchronize(self) -> None:
        """Blocks the host until all work queued on the stream has finished."""
        self.cupy_stream.synchronize()

    def query(self) -> bool:
        """True when all work queued on the stream has finished."""
        return bool(self.cupy_stream.done)

    def wait_event(self, event: Event) -> None:
        """Makes later work on this stream wait for `event`."""
        self.cupy_stream.wait_event(event.cupy_event)

    def wait_stream(self, other: "Stream") -> None:
        """Makes later work on this stream wait for the work queued so far on `other`."""
        self.wait_event(other.record_event())

    def record_event(self, event: "Event | None" = None) -> Event:
        """Records `event` (a new Event when None) on this stream and returns it."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def __enter__(self):
        self.cupy_stream.__enter__()
        return self

    def __exit__(self, *exc):
        return self.cupy_stream.__exit__(*exc)

    def __eq__(self, other):
        return isinstance(other, Stream) and self.cupy_stream == other.cupy_stream

    __hash__ = object.__hash__


def _cupy_stream(stream):
    if stream is None:
        return None
    return stream.cupy_stream if isinstance(stream, Stream) else stream


def current_stream(device=None) -> Stream:
    """The stream CuPy queues work on now (``cupy.cuda.get_current_stream``)."""
    idx = _rt.device_index(device, "xbp.cuda.current_stream")
    return Stream._wrap(_rt.current_stream(idx), idx)


def default_stream(device=None) -> Stream:
    """The device's default (null) stream (``cupy.cuda.Stream.null``)."""
    idx = _rt.device_index(device, "xbp.cuda.default_stream")
    return Stream._wrap(_rt.null_stream(), idx)


@contextlib.contextmanager
def stream(s):
    """``with xbp.cuda.stream(s):`` queues work on `s` inside the block (None: no change)."""
    if s is None:
        yield
        return
    with s:
        yield
