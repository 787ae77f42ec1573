"""The NCCL backend: collectives between GPUs through CuPy's ``cupy.cuda.nccl``.

The job is started by the MPI launcher; rank 0 makes the NCCL unique id and MPI broadcasts it,
then every rank joins one NCCL communicator on its own GPU (local rank modulo the GPU count,
unless ``device_id`` is given). Collectives run on a dedicated stream that first waits for the
work already queued on the current stream (so they see the tensors' final values); a `Work`
is complete when an event recorded after the collective has fired. `Work.wait` polls that
event against the process group's timeout and aborts the communicator when it expires, so a
dead peer cannot hang a rank forever.

NCCL lacks int16 and bool arithmetic (int16 reduced in int32, bool as uint8 with SUM/MAX = OR,
MIN/PRODUCT = AND), complex numbers (SUM/AVG on the float pairs; no PRODUCT) and the bitwise ops.
"""
from __future__ import annotations

import os
import time

import numpy as np


def _nccl():
    from cupy.cuda import nccl
    return nccl


def available() -> bool:
    """True when CuPy sees a GPU and was built with NCCL."""
    from .._backend import cuda_available
    if not cuda_available():
        return False
    try:
        nccl = _nccl()
    except Exception:
        return False
    return bool(getattr(nccl, "available", True))


def unavailable_reason() -> str:
    """Why NCCL cannot run here ('' when it can)."""
    import importlib.util
    from .._backend import cuda_available
    if importlib.util.find_spec("cupy") is None:
        return "nccl: CuPy is not installed (CPU-only machine); the NCCL tests run on a GPU machine"
    if not cuda_available():
        return "nccl: CuPy is installed but sees no GPU on this machine"
    try:
        nccl = _nccl()
    except Exception as e:
        return f"nccl: cupy.cuda.nccl does not import ({e}); pip install nvidia-nccl-cu12 (or -cu13)"
    if not getattr(nccl, "available", True):
        # cupy/cuda/nccl.py (v14.2.0) catches the ImportError of its NCCL extension (libnccl not
        # found) and sets available = False: the module imports, without NcclCommunicator
        return (f"nccl: CuPy did not load libnccl ({_nccl_import_error()}); "
                + _nccl_library_hint())
    return ""


def _nccl_import_error() -> str:
    """The ImportError CuPy swallowed (importing its NCCL extension again raises it again)."""
    import importlib
    try:
        importlib.import_module("cupy_backends.cuda.libs.nccl")
    except Exception as e:  # noqa: BLE001 - reported, not handled
        return f"{type(e).__name__}: {e}"
    return "its NCCL extension imports now"


def _nccl_library_hint() -> str:
    """Where an installed nvidia-nccl wheel keeps libnccl (PyTorch's dependency), else how to get one."""
    import glob
    import importlib.util
    try:
        spec = importlib.util.find_spec("nvidia.nccl")
    except (ImportError, ValueError):
        spec = None
    for d in (spec.submodule_search_locations or []) if spec is not None else []:
        libs = sorted(glob.glob(os.path.join(d, "lib", "libnccl.so*")))
        if libs:
            return (f"an nvidia-nccl wheel has {libs[0]}: start Python with "
                    f"LD_LIBRARY_PATH={os.path.dirname(libs[0])}")
    return "pip install nvidia-nccl-cu12 (or -cu13, for cupy-cuda13x)"


def version_at_least(code: int, major: int, minor: int) -> bool:
    """Whether NCCL version `code` (``ncclGetVersion``: major*1000 + minor*100 + patch before
    2.9, major*10000 + minor*100 + patch since) is at least major.minor."""
    code = int(code)
    if code >= 10000:
        have = (code // 10000, code % 10000 // 100)
    else:
        have = (code // 1000, code % 1000 // 100)
    return have >= (major, minor)


def _local_rank(mpicomm):
    for k in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"):
        if k in os.environ:
            return int(os.environ[k])
    from . import _mpi
    MPI = _mpi.mpi()
    node = mpicomm.c.Split_type(MPI.COMM_TYPE_SHARED, mpicomm.rank)
    r = node.Get_rank()
    node.Free()
    return r


class NCCLComm:
    """One NCCL communicator (and the MPI communicator it was made over)."""

    @classmethod
    def create(cls, mpicomm, timeout_s, device_id):
        import cupy
        nccl = _nccl()
        if device_id is None:
            device_id = _local_rank(mpicomm) % cupy.cuda.runtime.getDeviceCount()
        elif not isinstance(device_id, int):          # "cuda", "cuda:1", xbp.device(...)
            text = str(device_id)
            device_id = int(text.rsplit(":", 1)[1]) if ":" in text else 0
        cupy.cuda.Device(device_id).use()
        uid = nccl.get_unique_id() if mpicomm.rank == 0 else None
        uid = mpicomm.c.bcast(uid, root=0)
        self = cls()
        self.cupy, self.nccl = cupy, nccl
        self.mpi = mpicomm
        self.device_id = device_id
        self.rank, self.size = mpicomm.rank, mpicomm.size
        self.timeout_s = float(timeout_s)
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        with cupy.cuda.Device(device_id):
            self.stream = cupy.cuda.Stream(non_blocking=True)
        self.types = {np.dtype(k): getattr(nccl, v) for k, v in (
            ("float16", "NCCL_FLOAT16"), ("float32", "NCCL_FLOAT32"), ("float64", "NCCL_FLOAT64"),
            ("int8", "NCCL_INT8"), ("uint8", "NCCL_UINT8"), ("int32", "NCCL_INT32"),
            ("uint32", "NCCL_UINT32"), ("int64", "NCCL_INT64"), ("uint64", "NCCL_UINT64"))}
        self.ops = {"sum": nccl.NCCL_SUM, "product": nccl.NCCL_PROD, "min": nccl.NCCL_MIN,
                    "max": nccl.NCCL_MAX}
        # ncclAvg exists since NCCL 2.10; CuPy may export the constant while linking an older NCCL,
        # so the library's own version decides (else SUM, then a division)
        self.version = int(nccl.get_version())
        avg = getattr(nccl, "NCCL_AVG", None)
        self.native_avg = avg if avg is not None and version_at_least(self.version, 2, 10) else None
        return self

    # --- plumbing ---
    def _array(self, t, what):
        if t.xp.kind != "cupy":
            raise TypeError(f"{what}: the nccl backend takes cuda tensors, got one on {t.device}; move it "
                            "with .to('cuda') or use init_process_group('mpi') for cpu tensors")
        gpu = getattr(t.xp.native_device, "id", self.device_id)
        if gpu != self.device_id:
            # NCCL would read the other GPU's pointer from this communicator's device: refuse
            raise ValueError(f"{what}: the tensor is on cuda:{gpu} but this rank's NCCL communicator is on "
                             f"cuda:{self.device_id}; move it with .to('cuda:{self.device_id}'), or give each "
                             "rank one GPU (CUDA_VISIBLE_DEVICES=<gpu> per rank, then every rank uses 'cuda', "
                             "see docs/guides/distributed.md)")
        return t.array

    def _native(self, a, op=None):
        """(contiguous array NCCL can reduce, element count, NCCL dtype, NCCL op, post-fix)."""
        cp = self.cupy
        dt = np.dtype(a.dtype)
        a = cp.ascontiguousarray(a)
        if dt == np.bool_:
            a = a.view(np.uint8)
            op = {"sum": "max", "max": "max", "min": "min", "product": "min", None: None}.get(op, op)
        elif dt.kind == "c":
            if op not in (None, "sum", "avg"):
                raise TypeError(f"nccl: {op} is not supported for complex tensors (only SUM and AVG)")
            a = a.view(np.float32 if dt == np.complex64 else np.float64)
        elif dt in (np.dtype(np.int16), np.dtype(np.uint16)):
            a = a.astype(np.int32)
        if op in ("band", "bor", "bxor"):
            raise TypeError(f"nccl: bitwise {op} is not available in NCCL; use the mpi backend")
        ndt = self.types[np.dtype(a.dtype)]
        post = None
        if op == "avg":
            if self.native_avg is not None:
                nop = self.native_avg
            else:
                nop, post = self.ops["sum"], (lambda x: x.__itruediv__(self.size))
        else:
            nop = None if op is None else self.ops[op]
        return a, a.size, ndt, nop, post

    def _begin(self):
        """Make the comm stream wait for the work queued so far on the current stream."""
        cp = self.cupy
        ev = cp.cuda.Event(disable_timing=True)
        ev.record(cp.cuda.get_current_stream())
        self.stream.wait_event(ev)
        return self.stream.ptr

    def _work(self, finish, tensors, keep):
        """The Work of a collective just queued on the comm stream. `keep`: every array whose
        device pointer NCCL was given. They stay referenced until the event has fired: CuPy's
        pool hands a freed block to the next allocation on the stream that allocated it (the
        current stream, cupy/cuda/memory.pyx: arenas per stream), which does not wait for the
        comm stream, so a temporary freed on return (a contiguous or widened copy, the barrier's
        buffer) could be overwritten while NCCL still reads or writes it."""
        from . import Work
        cp = self.cupy
        done = cp.cuda.Event(disable_timing=True)
        done.record(self.stream)
        end = [None]
        keep = list(keep)

        def test():
            if done.done:
                keep.clear()
                return True
            return False

        def wait():
            end[0] = time.monotonic() + self.timeout_s
            while not done.done:
                if time.monotonic() > end[0]:
                    self.comm.abort()
                    raise RuntimeError(f"nccl: a collective on rank {self.rank} did not finish within "
                                       f"{self.timeout_s:g} s; the communicator was aborted (a peer rank may "
                                       "have died)")
                time.sleep(2e-5)
            keep.clear()

        return Work(test, wait, finish, tensors)

    def _put(self, t, a, orig_dtype):
        """Write the collective's result `a` back into tensor t (if it was not done in place)."""
        from . import _write
        cp = self.cupy
        if a is t.array:
            t._version[0] += 1
            return
        if np.dtype(a.dtype) != np.dtype(orig_dtype):
            # bool and complex travelled as reinterpreted bytes, int16 widened to int32
            a = a.view(orig_dtype) if np.dtype(orig_dtype).kind in "bc" else a.astype(orig_dtype)
        _write(t, cp.reshape(a, t.shape))

    def split(self, ranks):
        raise NotImplementedError("new_group makes NCCL groups from MPI sub-communicators")

    def destroy(self):
        if self.comm is not None:
            self.comm.destroy()
            self.comm = None

    # --- collectives ---
    def barrier(self, async_op):
        cp = self.cupy
        with cp.cuda.Device(self.device_id):
            x = cp.zeros(1, np.int32)
            s = self._begin()
            self.comm.allReduce(x.data.ptr, x.data.ptr, 1, self.types[np.dtype(np.int32)], self.ops["sum"], s)
            return self._work(None, [], [x])

    def all_reduce(self, t, op, async_op):
        arr = self._array(t, "all_reduce")
        a, n, dt, nop, post = self._native(arr, op)
        s = self._begin()
        self.comm.allReduce(a.data.ptr, a.data.ptr, n, dt, nop, s)

        def finish():
            if post is not None:
                post(a)
            self._put(t, a, arr.dtype)
        return self._work(finish, [t], [a])

    def reduce(self, t, op, root, async_op):
        arr = self._array(t, "reduce")
        a, n, dt, nop, post = self._native(arr, op)
        s = self._begin()
        self.comm.reduce(a.data.ptr, a.data.ptr, n, dt, nop, root, s)

        def finish():
            if self.rank == root:
                if post is not None:
                    post(a)
                self._put(t, a, arr.dtype)
        return self._work(finish, [t], [a])

    def broadcast(self, t, root, async_op):
        arr = self._array(t, "broadcast")
        a, n, dt, _, _ = self._native(arr)
        s = self._begin()
        self.comm.bcast(a.data.ptr, n, dt, root, s)
        return self._work(lambda: self._put(t, a, arr.dtype), [t], [a])

    def all_gather(self, outs, t, async_op):
        cp = self.cupy
        arr = self._array(t, "all_gather")
        a, n, dt, _, _ = self._native(arr)
        out = cp.empty((self.size,) + a.shape, a.dtype)
        s = self._begin()
        self.comm.allGather(a.data.ptr, out.data.ptr, n, dt, s)

        def finish():
            for r, o in enumerate(outs):
                self._put(o, out[r], arr.dtype)
        return self._work(finish, list(outs), [a, out])

    def all_gather_flat(self, out_t, t, async_op):
        cp = self.cupy
        arr = self._array(t, "all_gather_into_tensor")
        self._array(out_t, "all_gather_into_tensor")
        a, n, dt, _, _ = self._native(arr)
        out = cp.empty(self.size * a.size, a.dtype)
        s = self._begin()
        self.comm.allGather(a.data.ptr, out.data.ptr, n, dt, s)
        return self._work(lambda: self._put(out_t, out, arr.dtype), [out_t], [a, out])

    def reduce_scatter_flat(self, out_t, in_t, op, async_op):
        cp = self.cupy
        arr = self._array(in_t, "reduce_scatter")
        self._array(out_t, "reduce_scatter")
        a, n, dt, nop, post = self._native(arr, op)
        out = cp.empty(n // self.size, a.dtype)
        s = self._begin()
        self.comm.reduceScatter(a.data.ptr, out.data.ptr, n // self.size, dt, nop, s)

        def finish():
            if post is not None:
                post(out)
            self._put(out_t, out, arr.dtype)
        return self._work(finish, [out_t], [a, out])

    def gather(self, t, outs, root, async_op):
        cp = self.cupy
        nccl = self.nccl
        arr = self._array(t, "gather")
        a, n, dt, _, _ = self._native(arr)
        s = self._begin()
        bufs = [cp.empty_like(a) for _ in range(self.size)] if outs is not None else None
        nccl.groupStart()
        if bufs is not None:
            for r in range(self.size):
                self.comm.recv(bufs[r].data.ptr, n, dt, r, s)
        self.comm.send(a.data.ptr, n, dt, root, s)
        nccl.groupEnd()

        def finish():
            if bufs is not None:
                for o, b in zip(outs, bufs):
                    self._put(o, b, arr.dtype)
        return self._work(finish, outs or [], [a] + (bufs or []))

    def scatter(self, t, ins, root, async_op):
        nccl = self.nccl
        arr = self._array(t, "scatter")
        a, n, dt, _, _ = self._native(arr)
        srcs = [self._native(self._array(x, "scatter"))[0] for x in ins] if ins is not None else None
        s = self._begin()
        nccl.groupStart()
        if srcs is not None:
            for r in range(self.size):
                self.comm.send(srcs[r].data.ptr, n, dt, r, s)
        self.comm.recv(a.data.ptr, n, dt, root, s)
        nccl.groupEnd()
        return self._work(lambda: self._put(t, a, arr.dtype), [t], [a] + (srcs or []))

    def send(self, t, dst, tag):
        arr = self._array(t, "send")
        a, n, dt, _, _ = self._native(arr)
        s = self._begin()
        self.comm.send(a.data.ptr, n, dt, dst, s)
        return self._work(None, [t], [a])

    def recv(self, t, src, tag):
        if src is None:
            raise ValueError("recv: the nccl backend needs an explicit src rank (NCCL has no any-source receive)")
        arr = self._array(t, "recv")
        a, n, dt, _, _ = self._native(arr)
        s = self._begin()
        self.comm.recv(a.data.ptr, n, dt, src, s)
        w = self._work(lambda: self._put(t, a, arr.dtype), [t], [a])
        w.source = src
        return w
