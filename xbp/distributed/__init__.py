"""Collective communication between processes, with PyTorch's ``torch.distributed`` names.

Two engines that clusters already run, behind one API:

- ``"mpi"``: MPI through mpi4py (``pip install mpi4py mpich``), between processes and machines.
  Rank and world size come from the launcher (``mpiexec -n 4 python train.py``, ``srun``).
  Tensors of every device work: cpu (NumPy) in place, strict and cuda through a host copy.
- ``"nccl"``: NCCL through CuPy (``cupy.cuda.nccl``) between GPUs, on a CUDA stream; the NCCL
  unique id is exchanged over MPI, so the job is still started by ``mpiexec``. cuda tensors only.

``init_process_group()`` with no backend picks NCCL when a GPU is present and MPI otherwise.
Every collective works in place on its tensor arguments, as PyTorch's do; ``async_op=True``
returns a `Work` handle (``wait()``, ``is_completed()``) instead of blocking.

A process that raises an uncaught exception after ``init_process_group`` aborts the whole job
(every rank), printing which rank failed, so no rank waits forever on a dead peer.

Example (run with ``mpiexec -n 2 python script.py``)::

    import xbp, xbp.distributed as dist
    dist.init_process_group("mpi")
    t = xbp.tensor([float(dist.get_rank())])
    dist.all_reduce(t)                 # t == [0 + 1] on both ranks
"""
from __future__ import annotations

from typing import Any

import os
import time
from datetime import timedelta


from .._tensor import Tensor

__all__ = [
    "ReduceOp", "Work", "ProcessGroup", "GroupMember", "group", "is_available", "is_mpi_available",
    "is_nccl_available", "init_process_group", "is_initialized", "destroy_process_group", "get_rank",
    "get_world_size", "get_backend", "new_group", "barrier", "all_reduce", "reduce", "broadcast",
    "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "gather",
    "scatter", "send", "recv", "isend", "irecv", "default_pg_timeout",
]

default_pg_timeout = timedelta(minutes=30)


class ReduceOp:
    """How a reduction combines the ranks' values. AVG is for floating-point tensors; the bitwise
    ops (BAND, BOR, BXOR) for integer and bool tensors, on MPI only."""
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"


_OPS = (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX,
        ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR)


class Work:
    """The handle of a collective started with ``async_op=True``: ``wait()`` blocks until it has
    finished (and its result is in the tensors), ``is_completed()`` asks without blocking."""

    def __init__(self, test, wait, finish=None, tensors=()):
        self._test, self._wait, self._finish = test, wait, finish
        self._tensors = list(tensors)
        self._done = False

    @classmethod
    def completed(cls, tensors=()):
        """A Work that is already finished, holding `tensors` (for operations that complete at once)."""
        w = cls(None, None, None, tensors)
        w._done = True
        return w

    def _complete(self):
        self._done = True
        if self._finish is not None:
            fin, self._finish = self._finish, None
            fin()

    def is_completed(self) -> bool:
        """True once the operation has finished (asks without blocking)."""
        if not self._done and self._test():
            self._complete()
        return self._done

    def is_success(self) -> bool:
        """True once the operation has finished (as `is_completed`)."""
        return self.is_completed()

    def wait(self, timeout=None) -> bool:
        """Block until done (then the tensors hold the result). `timeout` (seconds or timedelta)
        raises RuntimeError if it takes longer."""
        if self._done:
            return True
        if timeout is None:
            self._wait()
        else:
            limit = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
            end = time.monotonic() + limit
            while not self._test():
                if time.monotonic() > end:
                    raise RuntimeError(f"Work.wait: the collective did not finish within {limit:g} s "
                                       "(a peer rank may have died or be stuck)")
                time.sleep(1e-4)
        self._complete()
        return True

    def result(self):
        """The tensors the operation wrote into."""
        return self._tensors


class ProcessGroup:
    """A set of ranks that run collectives together. `rank()`/`size()` are this process's place
    in the group; `ranks` the members' ranks in the default (world) group."""

    def __init__(self, backend: str, comm, ranks, timeout):
        self.backend = backend
        self.comm = comm            # the backend's communicator object (xbp.distributed._mpi/_nccl)
        self.ranks = list(ranks)
        self.timeout = timeout

    def rank(self) -> int:
        """This process's rank in the group."""
        return self.comm.rank

    def size(self) -> int:
        """The number of processes in the group."""
        return self.comm.size

    def __repr__(self):
        return f"<ProcessGroup {self.backend} rank {self.rank()} of {self.size()}>"


class GroupMember:
    """``GroupMember.WORLD`` is the default group; ``NON_GROUP_MEMBER`` is what `new_group`
    returns on ranks outside the new group."""
    WORLD: Any = None
    NON_GROUP_MEMBER = object()


class group:
    """``group.WORLD``: the default process group after `init_process_group` (None before), as in PyTorch."""
    WORLD: Any = None


_STATE: dict = {"pg": None, "world_comm": None}


# --- setup ----------------------------------------------------------------------------------------
def is_available() -> bool:
    """True: the package imports (the backends need mpi4py, and CuPy for NCCL)."""
    return True


def is_mpi_available() -> bool:
    """True when mpi4py can be imported (the 'mpi' backend needs it)."""
    from . import _mpi
    return _mpi.available()


def is_nccl_available() -> bool:
    """True when CuPy sees a GPU and was built with NCCL (the 'nccl' backend needs it)."""
    from . import _nccl
    return _nccl.available()


def is_initialized() -> bool:
    """True between `init_process_group` and `destroy_process_group`."""
    return _STATE["pg"] is not None


def _default_group():
    pg = _STATE["pg"]
    if pg is None:
        raise RuntimeError("xbp.distributed: the default process group is not initialized; call "
                           "xbp.distributed.init_process_group() first (and launch with mpiexec -n N)")
    return pg


def _group(g):
    return _default_group() if g is None else g


def init_process_group(backend=None, init_method=None, world_size: int = -1, rank: int = -1,
                       timeout=None, group_name: str = "", pg_options=None, device_id=None):
    """Join the default process group.

    Args:
        backend: "mpi", "nccl" or None (NCCL when a GPU and CuPy's NCCL are present, else MPI).
        init_method: only None, "env://" or "mpi://" (the launcher tells each process its rank).
        world_size, rank: -1 (from the launcher), or values that must match the launcher's.
        timeout: seconds or timedelta (default 30 minutes, as PyTorch): how long an NCCL
            operation may take before its communicator is aborted. On MPI a dead peer ends the
            job through the abort instead; ``Work.wait(timeout=...)`` limits one wait.
        device_id: for NCCL, the GPU index of this rank (default: local rank modulo the GPU count).
    """
    if _STATE["pg"] is not None:
        raise RuntimeError("init_process_group: the default process group is already initialized; "
                           "call destroy_process_group() first to make a new one")
    if init_method not in (None, "env://", "mpi://"):
        raise ValueError(f"init_process_group: init_method={init_method!r} is not supported; xbp takes rank "
                         "and world size from the MPI launcher (mpiexec -n N / srun): pass None")
    if timeout is None:
        timeout = default_pg_timeout
    elif not isinstance(timeout, timedelta):
        timeout = timedelta(seconds=float(timeout))
    from . import _mpi
    if backend is None:
        from . import _nccl
        backend = "nccl" if _nccl.available() else "mpi"
    backend = str(backend).lower()
    if backend == "gloo":
        raise ValueError("init_process_group: 'gloo' is PyTorch's own CPU transport; xbp's CPU backend is "
                         "'mpi' (pass backend='mpi' or None, and launch with mpiexec -n N)")
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: backend {backend!r} is not available; xbp has 'mpi' "
                         "(mpi4py: pip install mpi4py mpich) and 'nccl' (GPUs, through CuPy)")
    world = _mpi.world()
    env_size = os.environ.get("WORLD_SIZE")
    if env_size and env_size.isdigit() and int(env_size) != world.size:
        # torchrun-style environment, but MPI started a different number of processes
        raise RuntimeError(f"init_process_group: WORLD_SIZE={env_size} in the environment but the MPI launcher "
                           f"started {world.size} process(es); xbp takes ranks from MPI: launch with "
                           f"mpiexec -n {env_size} (torchrun is not supported)")
    if world_size not in (-1, None) and int(world_size) != world.size:
        raise ValueError(f"init_process_group: world_size={world_size} but the launcher started "
                         f"{world.size} processes; pass -1 or launch with mpiexec -n {world_size}")
    if rank not in (-1, None) and int(rank) != world.rank:
        raise ValueError(f"init_process_group: rank={rank} but the launcher gave this process rank "
                         f"{world.rank}; pass -1")
    if backend == "nccl":
        from . import _nccl
        comm = _nccl.NCCLComm.create(world, timeout.total_seconds(), device_id)
    else:
        comm = world
    pg = ProcessGroup(backend, comm, range(world.size), timeout)
    _STATE["pg"] = pg
    _STATE["world_comm"] = world
    GroupMember.WORLD = group.WORLD = pg
    from . import _fault
    _fault.install(world)
    return None


def destroy_process_group(group=None) -> None:
    """Leave the default group (or free a group from `new_group`). Collectives need a new
    `init_process_group` afterwards."""
    pg = _STATE["pg"]
    if group is not None and group is not pg:
        if group is not GroupMember.NON_GROUP_MEMBER:
            group.comm.destroy()
        return
    if pg is None:
        return
    from . import _fault
    _fault.uninstall()
    if pg.comm is not _STATE["world_comm"]:
        pg.comm.destroy()
    _STATE["pg"] = None
    _STATE["world_comm"] = None
    GroupMember.WORLD = None
    globals()["group"].WORLD = None     # the class `group` (this function's argument shadows it)


def get_rank(group=None) -> int:
    """This process's rank in `group` (default: the world); -1 outside `group`."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _group(group).rank()


def get_world_size(group=None) -> int:
    """The number of processes in `group` (default: the world group); -1 when `group` is
    ``GroupMember.NON_GROUP_MEMBER``."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _group(group).size()


def get_backend(group=None) -> str:
    """The backend of `group` (default: the world group): 'mpi' or 'nccl'."""
    return _group(group).backend


def new_group(ranks=None, timeout=None, backend=None, pg_options=None):
    """A group of the given world ranks (all ranks by default). Every rank of the world must call
    it, in the same order, as in PyTorch; ranks outside get ``GroupMember.NON_GROUP_MEMBER``,
    and collectives on it there are no-ops returning None."""
    pg = _default_group()
    world = _STATE["world_comm"]
    ranks = list(range(world.size)) if ranks is None else sorted(int(r) for r in ranks)
    if len(set(ranks)) != len(ranks) or any(r < 0 or r >= world.size for r in ranks):
        raise ValueError(f"new_group: ranks {ranks} must be distinct world ranks in [0, {world.size})")
    backend = pg.backend if backend is None else str(backend).lower()
    sub = world.split(ranks)              # collective over the world
    if sub is None:
        return GroupMember.NON_GROUP_MEMBER
    if backend == "nccl":
        from . import _nccl
        sub = _nccl.NCCLComm.create(sub, pg.timeout.total_seconds(), None)
    return ProcessGroup(backend, sub, ranks, pg.timeout if timeout is None else timeout)


def _local(pg, global_rank, what):
    try:
        return pg.ranks.index(int(global_rank))
    except ValueError:
        raise ValueError(f"{what}: rank {global_rank} is not in the group (its world ranks are {pg.ranks})") from None


# --- tensors <-> the backends' arrays -------------------------------------------------------------
def _check_tensor(t, what):
    if not isinstance(t, Tensor):
        raise TypeError(f"{what}: expected an xbp Tensor, got {type(t).__name__}")
    return t


def _check_op(op, t, what):
    if op not in _OPS:
        raise ValueError(f"{what}: op={op!r} is not a ReduceOp (SUM, AVG, PRODUCT, MIN, MAX, BAND, BOR, BXOR)")
    kind = t.dtype.kind
    if op == ReduceOp.AVG and kind not in "fc":
        raise TypeError(f"{what}: ReduceOp.AVG needs a floating-point tensor, got {t.dtype}; "
                        "use SUM and divide, or convert with .to(xbp.float32)")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and kind not in "iub":
        raise TypeError(f"{what}: bitwise {op} needs an integer or bool tensor, got {t.dtype}")
    if op in (ReduceOp.MIN, ReduceOp.MAX) and kind == "c":
        raise TypeError(f"{what}: {op} is undefined for complex tensors ({t.dtype})")


def _write(t, arr):
    """Store `arr` (this backend's array, t's shape) into t in place, bumping its version."""
    if arr is not t.array:
        t.xp.setitem(t.array, (Ellipsis,), arr)
    t._version[0] += 1


def _check_same(ts, what, like=None):
    ref = like if like is not None else ts[0]
    for t in ts:
        _check_tensor(t, what)
        if t.dtype != ref.dtype or t.device != ref.device:
            raise TypeError(f"{what}: tensors must share dtype and device, got {t.dtype} on {t.device} "
                            f"and {ref.dtype} on {ref.device}")


def _finish(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


# --- collectives ----------------------------------------------------------------------------------
def barrier(group=None, async_op: bool = False, device_ids=None):
    """Block until every rank of the group has reached this call."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    return _finish(_group(group).comm.barrier(async_op), async_op)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce `tensor` over all ranks, in place: afterwards every rank holds the result.
    Any shape; dtypes: float16/32/64, complex, integers, bool."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    _check_tensor(tensor, "all_reduce")
    _check_op(op, tensor, "all_reduce")
    return _finish(_group(group).comm.all_reduce(tensor, op, async_op), async_op)


def reduce(tensor, dst: int, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce `tensor` over all ranks into rank `dst`'s `tensor` (in place; others unchanged)."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    _check_tensor(tensor, "reduce")
    _check_op(op, tensor, "reduce")
    pg = _group(group)
    return _finish(pg.comm.reduce(tensor, op, _local(pg, dst, "reduce"), async_op), async_op)


def broadcast(tensor, src: int, group=None, async_op: bool = False):
    """Copy rank `src`'s `tensor` into `tensor` on every other rank (same shape and dtype)."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    _check_tensor(tensor, "broadcast")
    pg = _group(group)
    return _finish(pg.comm.broadcast(tensor, _local(pg, src, "broadcast"), async_op), async_op)


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Fill ``tensor_list[r]`` with rank r's `tensor` on every rank (world-size entries, each
    shaped like `tensor`)."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    _check_tensor(tensor, "all_gather")
    if len(tensor_list) != pg.size():
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the group has {pg.size()} ranks")
    _check_same(tensor_list, "all_gather", tensor)
    for t in tensor_list:
        if t.shape != tensor.shape:
            raise ValueError(f"all_gather: output tensor of shape {t.shape} for an input of shape {tensor.shape}")
    return _finish(pg.comm.all_gather(list(tensor_list), tensor, async_op), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Concatenate every rank's `input_tensor` along dim 0 into `output_tensor` (shape
    (world_size * n, ...) for inputs (n, ...)); or stack into (world_size, n, ...)."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    _check_same([output_tensor, input_tensor], "all_gather_into_tensor")
    if output_tensor.numel() != pg.size() * input_tensor.numel():
        raise ValueError(f"all_gather_into_tensor: output shape {output_tensor.shape} must hold {pg.size()} x "
                         f"the input shape {input_tensor.shape}")
    return _finish(pg.comm.all_gather_flat(output_tensor, input_tensor, async_op), async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``input_list[r]`` over all ranks into rank r's `output` (each shaped like it)."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    if len(input_list) != pg.size():
        raise ValueError(f"reduce_scatter: input_list has {len(input_list)} tensors, the group has {pg.size()} ranks")
    _check_same(list(input_list), "reduce_scatter", output)
    _check_op(op, output, "reduce_scatter")
    for t in input_list:
        if t.shape != output.shape:
            raise ValueError(f"reduce_scatter: input of shape {t.shape} for an output of shape {output.shape}")
    from .. import ops
    flat = ops.cat([ops.reshape(t.detach(), (-1,)) for t in input_list])
    return _finish(pg.comm.reduce_scatter_flat(output, flat, op, async_op), async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce `input` (world_size * n elements along dim 0) over all ranks; rank r keeps the r-th
    block of n in `output`."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    _check_same([output, input], "reduce_scatter_tensor")
    _check_op(op, output, "reduce_scatter_tensor")
    if input.numel() != pg.size() * output.numel():
        raise ValueError(f"reduce_scatter_tensor: input shape {input.shape} must hold {pg.size()} x the output "
                         f"shape {output.shape}")
    return _finish(pg.comm.reduce_scatter_flat(output, input, op, async_op), async_op)


def gather(tensor, gather_list=None, dst: int = 0, group=None, async_op: bool = False):
    """Rank `dst` receives every rank's `tensor` into ``gather_list`` (world-size tensors);
    other ranks pass ``gather_list=None``."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    _check_tensor(tensor, "gather")
    root = _local(pg, dst, "gather")
    if pg.rank() == root:
        if gather_list is None or len(gather_list) != pg.size():
            raise ValueError(f"gather: rank {dst} needs gather_list with {pg.size()} tensors")
        _check_same(list(gather_list), "gather", tensor)
    elif gather_list:
        raise ValueError("gather: gather_list must be None (or empty) on ranks other than dst")
    return _finish(pg.comm.gather(tensor, gather_list if pg.rank() == root else None, root, async_op), async_op)


def scatter(tensor, scatter_list=None, src: int = 0, group=None, async_op: bool = False):
    """Rank `src` sends ``scatter_list[r]`` into rank r's `tensor`; other ranks pass None."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    _check_tensor(tensor, "scatter")
    root = _local(pg, src, "scatter")
    if pg.rank() == root:
        if scatter_list is None or len(scatter_list) != pg.size():
            raise ValueError(f"scatter: rank {src} needs scatter_list with {pg.size()} tensors")
        _check_same(list(scatter_list), "scatter", tensor)
    elif scatter_list:
        raise ValueError("scatter: scatter_list must be None (or empty) on ranks other than src")
    return _finish(pg.comm.scatter(tensor, scatter_list if pg.rank() == root else None, root, async_op), async_op)


def isend(tensor, dst: int, group=None, tag: int = 0):
    """Start sending `tensor` to rank `dst`; returns a Work."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    _check_tensor(tensor, "send")
    return pg.comm.send(tensor, _local(pg, dst, "send"), int(tag))


def irecv(tensor, src=None, group=None, tag: int = 0):
    """Start receiving into `tensor` from rank `src` (any rank if None); returns a Work."""
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    pg = _group(group)
    _check_tensor(tensor, "recv")
    return pg.comm.recv(tensor, None if src is None else _local(pg, src, "recv"), int(tag))


def send(tensor, dst: int, group=None, tag: int = 0) -> None:
    """Send `tensor` to rank `dst` (blocks until it can be reused)."""
    w = isend(tensor, dst, group, tag)
    if w is not None:
        w.wait()


def recv(tensor, src=None, group=None, tag: int = 0) -> int:
    """Receive into `tensor` from rank `src` (any rank if None); returns the sender's rank."""
    w = irecv(tensor, src, group, tag)
    if w is None:
        return -1
    w.wait()
    pg = _group(group)
    return pg.ranks[w.source]
