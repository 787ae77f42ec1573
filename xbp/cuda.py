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
from typing import Any

from . import _cuda_graph
from . import _cuda_runtime as _rt
from ._backend import DeviceError, _BACKENDS, cuda_available, get_backend

__all__ = [
    "is_available", "is_bf16_supported", "is_initialized", "init", "device_count", "current_device", "set_device",
    "device", "synchronize", "manual_seed", "manual_seed_all", "seed", "seed_all",
    "get_device_name", "get_device_capability", "get_device_properties",
    "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "reset_max_memory_allocated",
    "memory_reserved", "empty_cache", "mem_get_info",
    "Event", "Stream", "current_stream", "default_stream", "stream",
    "CUDAGraph", "graph", "graph_pool_handle", "make_graphed_callables",
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


# --- CUDA graphs (torch.cuda.CUDAGraph / graph / graph_pool_handle); NOT YET RUN ON A GPU ----------
class _GraphPool:
    """An opaque memory-pool handle (`graph_pool_handle`): graphs captured with it share its memory."""

    def __init__(self, cupy_pool):
        self.cupy_pool = cupy_pool


def graph_pool_handle() -> _GraphPool:
    """A new private memory pool (a ``cupy.cuda.MemoryPool``) to pass as ``pool=`` to several
    captures, so they share memory (they must then be replayed in capture order)."""
    return _GraphPool(_cuda_graph.keep_pool(_rt.cupy("xbp.cuda.graph_pool_handle").cuda.MemoryPool()))


class CUDAGraph:
    """A CUDA graph (``torch.cuda.CUDAGraph`` on CuPy): ``capture_begin()`` ... ``capture_end()`` on a
    non-default stream records the kernels queued in between (nothing runs); ``replay()`` launches
    them again on the current stream, reading and writing the same device addresses.

    Allocations during capture come from a private pool kept alive with the graph (``pool()``
    returns it for another capture to share). Float32/float64 matmuls go to cuBLAS directly
    (CuPy refuses cuBLAS under capture, see xbp/_cublas.py); host reads (``.item()``), other CUDA
    libraries and host-to-device copies raise during capture. Python numbers (an optimizer's
    learning rate, Adam's step count) are frozen into the graph: for a training step use
    ``xbp.compile(step)``, which captures on cuda with those values in device memory."""

    def __init__(self, keep_graph: bool = False):
        self._graph: Any = None
        self._pool: Any = None
        self._stream: Any = None
        self._alloc: Any = None
        self._backend: Any = None

    def capture_begin(self, pool=None, capture_error_mode: str = "relaxed") -> None:
        """Starts capturing the current stream (which must not be the default stream; use
        ``with xbp.cuda.graph(g):`` to get a side stream). `pool`: a `graph_pool_handle()` or
        another graph's ``pool()`` (default: a new private pool). `capture_error_mode`: "relaxed"
        (the default), "global" or "thread_local" (CUDA's stream-capture modes).

        The default differs from PyTorch's "global" on purpose: CuPy's memory pool grows by
        ``cudaMalloc``, which CUDA refuses while this thread captures in global or thread-local
        mode, so there the first allocation that a pool cannot serve from its free blocks (every
        allocation of a new private pool) fails the capture. PyTorch's allocator switches the
        thread to relaxed around its own ``cudaMalloc``; CuPy offers no such switch, and its
        ``Stream.begin_capture`` defaults to relaxed for this reason (cupy/cuda/stream.pyx)."""
        from . import _cublas
        modes = {"global": "streamCaptureModeGlobal", "thread_local": "streamCaptureModeThreadLocal",
                 "relaxed": "streamCaptureModeRelaxed"}
        if capture_error_mode not in modes:
            raise ValueError(f"CUDAGraph.capture_begin: capture_error_mode must be one of {sorted(modes)}, "
                             f"got {capture_error_mode!r}")
        if self._stream is not None:
            raise RuntimeError("CUDAGraph.capture_begin: a capture is already in progress")
        cp = _rt.cupy("xbp.cuda.CUDAGraph.capture_begin")
        why = _cuda_graph.make_driver(get_backend("cuda")).unavailable()
        if why is not None:
            raise RuntimeError(f"CUDAGraph.capture_begin: {why}")
        stream = cp.cuda.get_current_stream()
        if stream.ptr == 0:
            raise RuntimeError("CUDAGraph.capture_begin: the current stream is the default stream, which cannot be "
                               "captured; use `with xbp.cuda.graph(g):` or `with xbp.cuda.stream(xbp.cuda.Stream()):`")
        if isinstance(pool, _GraphPool):
            self._pool = pool.cupy_pool
        elif pool is None:
            self._pool = _cuda_graph.keep_pool(cp.cuda.MemoryPool())   # outlives the graph (see there)
        else:
            self._pool = pool
        self._backend = get_backend("cuda")
        # before the allocator is entered: if making CuPy's cuBLAS handle fails here, nothing is
        # left behind (an entered using_allocator would send this thread's allocations to the pool)
        _cublas.set_stream(stream.ptr)
        self._alloc = cp.cuda.using_allocator(self._pool.malloc)
        self._alloc.__enter__()
        self._backend.capturing = True
        self._stream = stream
        try:
            mode = getattr(cp.cuda.runtime, modes[capture_error_mode], None)
            stream.begin_capture(mode) if mode is not None else stream.begin_capture()
        except BaseException:
            self._end_context()
            raise

    def _end_context(self):
        self._backend.capturing = False
        self._alloc.__exit__(None, None, None)
        self._alloc = None
        self._stream = None

    def capture_end(self) -> None:
        """Ends the capture begun by `capture_begin`; the graph is ready for `replay`."""
        if self._stream is None:
            raise RuntimeError("CUDAGraph.capture_end: no capture in progress (call capture_begin first)")
        stream = self._stream
        try:
            self._graph = stream.end_capture()
        finally:
            self._end_context()

    def replay(self) -> None:
        """Launches the captured kernels on the current stream."""
        if self._graph is None:
            raise RuntimeError("CUDAGraph.replay: nothing captured yet (capture_begin/capture_end, or xbp.cuda.graph)")
        self._graph.launch(_rt.cupy("xbp.cuda.CUDAGraph.replay").cuda.get_current_stream())

    def reset(self) -> None:
        """Drops the graph; its pool gives its free blocks back (tensors allocated during capture
        keep their memory)."""
        self._graph = None
        if self._pool is not None:
            _cuda_graph.release_pool(self._pool)
        self._pool = None

    def pool(self) -> _GraphPool:
        """This graph's memory pool, to share with another capture (``capture_begin(pool=...)``)."""
        if self._pool is None:
            raise RuntimeError("CUDAGraph.pool: no pool yet (capture first)")
        return _GraphPool(self._pool)


class graph:
    """``with xbp.cuda.graph(g):`` captures the block into `g` (a `CUDAGraph`) on a side stream
    (`stream`, default a new one), with `pool` shared if given, as ``torch.cuda.graph``. The device
    is synchronised before and after. Warm the code up eagerly (a few calls) before capturing.
    `capture_error_mode` defaults to "relaxed", not PyTorch's "global" (see `CUDAGraph.capture_begin`)."""

    def __init__(self, cuda_graph: CUDAGraph, pool=None, stream=None, capture_error_mode: str = "relaxed"):
        if not isinstance(cuda_graph, CUDAGraph):
            raise TypeError(f"xbp.cuda.graph: expected an xbp.cuda.CUDAGraph, got {type(cuda_graph).__name__}")
        self.cuda_graph = cuda_graph
        self.pool = pool
        self.capture_error_mode = capture_error_mode
        self.capture_stream = stream

    def __enter__(self):
        synchronize()
        if self.capture_stream is None:
            self.capture_stream = Stream()
        self._ctx = self.capture_stream
        self._ctx.__enter__()
        try:
            self.cuda_graph.capture_begin(pool=self.pool, capture_error_mode=self.capture_error_mode)
        except BaseException:
            self._ctx.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.cuda_graph.capture_end()
        finally:
            self._ctx.__exit__(*exc)
            synchronize()
        return False


def make_graphed_callables(callables, sample_args, num_warmup_iters: int = 3, allow_unused_input: bool = False,
                           pool=None):
    """Not implemented in xbp: capturing a callable's forward and backward as two graphs behind
    an autograd function is not built. Raises NotImplementedError; capture a whole training step
    with ``xbp.compile(step)`` on cuda, or use `CUDAGraph` / `graph` directly."""
    raise NotImplementedError("xbp.cuda.make_graphed_callables is not implemented: compile the whole training "
                              "step with xbp.compile(step) (on cuda it is captured as one CUDA graph), or capture "
                              "code yourself with xbp.cuda.graph(g)")
