"""The MPI backend: collectives through mpi4py on host (NumPy) buffers.

cpu tensors are communicated in place (their NumPy array is the MPI buffer when it is
C-contiguous); strict and cuda tensors go through a host copy (the backend's `to_numpy` /
`from_numpy`) and are written back when the operation completes. Non-blocking collectives
(``Iallreduce`` and friends) back ``async_op=True``.

MPI has no AVG (SUM, then a division here), no float16 arithmetic everywhere (reduced in float32)
and only logical operations on booleans (SUM/MAX are OR, MIN/PRODUCT are AND, as PyTorch's).
"""
from __future__ import annotations

import numpy as np

# imported by xbp.distributed's functions only, so the package is initialised by now (module-level
# names: the per-collective path makes no import calls)
from . import Work, _write

_MPI = [None]
_WORLD: "list[MPIComm | None]" = [None]


def available() -> bool:
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


def mpi():
    if _MPI[0] is None:
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise RuntimeError("xbp.distributed: the 'mpi' backend needs mpi4py and an MPI library: "
                               "pip install mpi4py mpich (or pip install -e '.[mpi]')") from e
        _MPI[0] = MPI
    return _MPI[0]


def world() -> "MPIComm":
    """A private duplicate of MPI_COMM_WORLD (so xbp's messages never match a user's own MPI
    calls), made once per process."""
    comm = _WORLD[0]
    if comm is None:
        comm = _WORLD[0] = MPIComm(mpi().COMM_WORLD.Dup())
    return comm


def abort(code: int = 1) -> None:
    mpi().COMM_WORLD.Abort(code)


def _ops(MPI):
    return {"sum": MPI.SUM, "avg": MPI.SUM, "product": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX,
            "band": MPI.BAND, "bor": MPI.BOR, "bxor": MPI.BXOR}


def _bool_ops(MPI):
    return {"sum": MPI.LOR, "max": MPI.LOR, "bor": MPI.LOR, "min": MPI.LAND, "product": MPI.LAND,
            "band": MPI.LAND, "bxor": MPI.LXOR}


class _Host:
    """A tensor's data as a C-contiguous NumPy buffer for MPI, and the way back into the tensor.
    `reduce_dtype` widens float16 to float32 for reductions."""

    __slots__ = ("t", "buf", "shared", "dtype")

    def __init__(self, t, reduce: bool = False):
        a = t.xp.to_numpy(t.array)
        shared = a is t.array
        self.dtype = a.dtype
        if reduce and a.dtype == np.float16:
            a, shared = a.astype(np.float32), False
        elif not a.flags.c_contiguous or not a.flags.writeable:
            a, shared = np.ascontiguousarray(a).copy(), False
        self.t, self.buf, self.shared = t, a, shared

    def store(self, a=None):
        """Write `a` (default: the buffer) back into the tensor, in place."""
        t = self.t
        a = self.buf if a is None else a
        if self.shared and a is self.buf:
            t._version[0] += 1
            return
        a = np.asarray(a).reshape(t.shape)
        if a.dtype != self.dtype:
            a = a.astype(self.dtype)
        _write(t, t.xp.from_numpy(np.ascontiguousarray(a)))


def _host_stack(tensors):
    """The tensors' data concatenated into one flat NumPy array (a copy)."""
    return np.concatenate([np.ravel(t.xp.to_numpy(t.array)) for t in tensors])


class MPIComm:
    """One MPI communicator; methods take xbp Tensors and return a `Work`."""

    def __init__(self, comm):
        self.c = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.MPI = MPI = mpi()
        self._ops, self._bool_ops = _ops(MPI), _bool_ops(MPI)

    # --- plumbing ---
    def _work(self, req, finish=None, tensors=(), status=None):
        if status is None:
            return Work(req.Test, req.Wait, finish, tensors)
        return Work(lambda: req.Test(status), lambda: req.Wait(status), finish, tensors)

    def _mpi_op(self, op, dtype):
        if dtype == np.bool_:
            if op not in self._bool_ops:
                raise TypeError(f"{op} is undefined for bool tensors")
            return self._bool_ops[op]
        return self._ops[op]

    def progress(self) -> None:
        """One turn of MPI's progress engine (``MPI_Iprobe`` on this communicator: it moves every
        outstanding non-blocking operation and touches no request, so another thread may call it
        while this one waits or tests; needs MPI_THREAD_MULTIPLE, see `threads_ok`)."""
        self.c.Iprobe(source=self.MPI.ANY_SOURCE, tag=self.MPI.ANY_TAG)

    def threads_ok(self) -> bool:
        """Whether MPI was initialised with MPI_THREAD_MULTIPLE (mpi4py's default)."""
        return self.MPI.Query_thread() == self.MPI.THREAD_MULTIPLE

    def split(self, ranks):
        MPI = mpi()
        member = self.rank in ranks
        sub = self.c.Split(0 if member else MPI.UNDEFINED, self.rank)
        return MPIComm(sub) if member else None

    def destroy(self):
        if self.c is not None and self.c != mpi().COMM_NULL:
            self.c.Free()
        self.c = None
        if _WORLD[0] is self:
            _WORLD[0] = None

    # --- collectives ---
    def barrier(self, async_op):
        return self._work(self.c.Ibarrier())

    def all_reduce(self, t, op, async_op):
        h = _Host(t, reduce=True)
        mop = self._ops[op] if h.buf.dtype != np.bool_ else self._mpi_op(op, h.buf.dtype)
        MPI = self.MPI
        if not async_op:
            self.c.Allreduce(MPI.IN_PLACE, h.buf, op=mop)
            self._done_reduce(h, op)
            return Work.completed([t])
        req = self.c.Iallreduce(MPI.IN_PLACE, h.buf, op=mop)
        return self._work(req, lambda: self._done_reduce(h, op), [t])

    def _done_reduce(self, h, op, a=None):
        a = h.buf if a is None else a
        if op == "avg" and self.size > 1:
            if h.shared:
                a /= self.size
            else:
                a = a / self.size
        h.store(a)

    def reduce(self, t, op, root, async_op):
        h = _Host(t, reduce=True)
        mop = self._mpi_op(op, h.buf.dtype)
        MPI = mpi()
        if self.rank == root:
            req = self.c.Ireduce(MPI.IN_PLACE, h.buf, op=mop, root=root)
            return self._work(req, lambda: self._done_reduce(h, op), [t])
        req = self.c.Ireduce(h.buf, None, op=mop, root=root)
        return self._work(req, None, [t])

    def broadcast(self, t, root, async_op):
        h = _Host(t)
        if not async_op:
            self.c.Bcast(h.buf, root=root)
            if self.rank != root:
                h.store()
            return Work.completed([t])
        req = self.c.Ibcast(h.buf, root=root)
        return self._work(req, None if self.rank == root else h.store, [t])

    def all_gather(self, outs, t, async_op):
        h = _Host(t)
        out = np.empty((self.size,) + h.buf.shape, h.buf.dtype)
        req = self.c.Iallgather(h.buf, out)

        def finish():
            for r, o in enumerate(outs):
                _store_into(o, out[r])
        return self._work(req, finish, outs)

    def all_gather_flat(self, out_t, t, async_op):
        h = _Host(t)
        out = np.empty(out_t.numel(), h.buf.dtype)
        req = self.c.Iallgather(h.buf, out)
        return self._work(req, lambda: _store_into(out_t, out), [out_t])

    def reduce_scatter_flat(self, out_t, in_t, op, async_op):
        h = _Host(in_t, reduce=True)
        mop = self._mpi_op(op, h.buf.dtype)
        out = np.empty(out_t.numel(), h.buf.dtype)
        req = self.c.Ireduce_scatter_block(np.ravel(h.buf), out, op=mop)
        ho = _Host.__new__(_Host)
        ho.t, ho.buf, ho.shared, ho.dtype = out_t, out, False, out_t.dtype
        return self._work(req, lambda: self._done_reduce(ho, op), [out_t])

    def gather(self, t, outs, root, async_op):
        h = _Host(t)
        out = np.empty((self.size,) + h.buf.shape, h.buf.dtype) if outs is not None else None
        req = self.c.Igather(h.buf, out, root=root)

        def finish():
            for r, o in enumerate(outs):
                _store_into(o, out[r])
        return self._work(req, finish if outs is not None else None, outs or [])

    def scatter(self, t, ins, root, async_op):
        h = _Host(t)
        src = None
        if ins is not None:
            src = np.ascontiguousarray(np.stack([np.reshape(x.xp.to_numpy(x.array), h.buf.shape) for x in ins]))
        req = self.c.Iscatter(src, h.buf, root=root)
        return self._work(req, lambda: h.store(), [t])

    def send(self, t, dst, tag):
        h = _Host(t)
        return self._work(self.c.Isend(h.buf, dest=dst, tag=tag), None, [t])

    def recv(self, t, src, tag):
        MPI = mpi()
        h = _Host(t)
        st = MPI.Status()
        req = self.c.Irecv(h.buf, source=MPI.ANY_SOURCE if src is None else src, tag=tag)
        work = None

        def finish():
            work.source = st.Get_source()
            h.store()
        work = self._work(req, finish, [t], status=st)
        return work


def _store_into(t, a):
    """Write host array `a` (t's number of elements) into tensor t in place."""
    a = np.ascontiguousarray(np.reshape(a, t.shape))
    if a.dtype != t.dtype:
        a = a.astype(t.dtype)
    _write(t, t.xp.from_numpy(a))
