"""Collectives against NumPy: every rank can rebuild every other rank's input from its seed, so
the expected result is NumPy's reduction of the stacked inputs, computed here.
Run under mpiexec by tests/test_distributed.py (see mpi_plugin.py)."""
import numpy as np
import pytest

import xbp
import xbp.distributed as dist
from xbp.distributed import ReduceOp

DTYPES = ["float32", "float64", "float16", "int8", "int32", "int64", "uint8", "bool", "complex128"]
OPS = [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX]
SHAPE = (3, 4)


def data(rank, dtype, shape=SHAPE, seed=0):
    """Rank `rank`'s input: small values, so integer products do not overflow."""
    rng = np.random.default_rng([seed, rank])
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        lo = 0 if dt.kind == "u" else -3
        return rng.integers(lo, 4, size=shape).astype(dt)
    if dt.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dt)
    return rng.normal(size=shape).astype(dt)


def reference(op, stack):
    dt = stack.dtype
    wide = stack.astype(np.float32) if dt == np.float16 else stack
    if dt == np.bool_:
        r = {"sum": np.any, "max": np.any, "min": np.all, "product": np.all}[op](stack, axis=0)
        return r
    if op == "sum":
        r = np.sum(wide, axis=0, dtype=wide.dtype)
    elif op == "avg":
        r = np.sum(wide, axis=0) / stack.shape[0]
    elif op == "product":
        r = np.prod(wide, axis=0, dtype=wide.dtype)
    elif op == "min":
        r = np.min(wide, axis=0)
    else:
        r = np.max(wide, axis=0)
    return r.astype(dt)


def check(got, want):
    got = np.asarray(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind in "fc":
        tol = {2: 2e-3, 4: 1e-5, 8: 1e-12, 16: 1e-12}[want.dtype.itemsize if want.dtype.kind == "f" else 8]
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, want)


def tensor(a, device):
    if device == "strict" and a.dtype == np.float16:
        pytest.skip("strict: array-api-strict has no float16")
    return xbp.tensor(a, device=device)


def host(t):
    return t.detach().numpy() if t.device == "cpu" else t.detach().to("cpu").numpy()


def _valid(op, dtype, device):
    """False where the op is refused with a TypeError: AVG of integers, MIN/MAX of complex
    numbers, and on NCCL the product of complex numbers."""
    dt = np.dtype(dtype)
    if op == "avg" and dt.kind not in "fc":
        return False
    if dt.kind == "c" and op in ("min", "max"):
        return False
    if dt.kind == "c" and op == "product" and device == "cuda":
        return False
    return True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_all_reduce(dev_group, op, dtype, world):
    device, group = dev_group
    rank, size = world
    if not _valid(op, dtype, device):
        t = tensor(data(rank, dtype), device)
        with pytest.raises(TypeError):
            dist.all_reduce(t, op=op, group=group)
        return
    t = tensor(data(rank, dtype), device)
    before = t._version[0]
    assert dist.all_reduce(t, op=op, group=group) is None
    want = reference(op, np.stack([data(r, dtype) for r in range(size)]))
    check(host(t), want)
    assert t._version[0] > before            # in place: the version counter moved


@pytest.mark.parametrize("op", [ReduceOp.SUM, ReduceOp.MAX, ReduceOp.AVG])
def test_all_reduce_async(dev_group, op, world):
    device, group = dev_group
    rank, size = world
    ts = [tensor(data(rank, "float64", seed=s), device) for s in range(3)]
    works = [dist.all_reduce(t, op=op, group=group, async_op=True) for t in ts]
    for w in works:
        assert isinstance(w, dist.Work)
        assert w.wait() is True
        assert w.is_completed()
    for s, t in enumerate(ts):
        check(host(t), reference(op, np.stack([data(r, "float64", seed=s) for r in range(size)])))


def test_all_reduce_non_contiguous_cpu(world):
    rank, size = world
    base = xbp.tensor(data(rank, "float64", (4, 3)))
    t = base.transpose(0, 1)                  # a strided view on NumPy
    dist.all_reduce(t)
    want = np.sum([data(r, "float64", (4, 3)) for r in range(size)], axis=0)
    np.testing.assert_allclose(host(t), want.T, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool"])
@pytest.mark.parametrize("op", [ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR])
def test_all_reduce_bitwise_mpi(op, dtype, world):
    rank, size = world
    t = xbp.tensor(data(rank, dtype))
    dist.all_reduce(t, op=op)
    stack = np.stack([data(r, dtype) for r in range(size)])
    f = {"band": np.bitwise_and, "bor": np.bitwise_or, "bxor": np.bitwise_xor}[op]
    check(host(t), f.reduce(stack, axis=0))


def test_bad_arguments_are_refused(world):
    rank, size = world
    with pytest.raises(TypeError, match="AVG"):
        dist.all_reduce(xbp.tensor([1, 2]), op=ReduceOp.AVG)
    with pytest.raises(ValueError, match="ReduceOp"):
        dist.all_reduce(xbp.tensor([1.0]), op="mean")
    with pytest.raises(TypeError, match="Tensor"):
        dist.all_reduce(np.zeros(2))
    with pytest.raises(ValueError, match="ranks"):
        dist.all_gather([xbp.zeros(2)], xbp.zeros(2)) if size > 1 else dist.all_gather([], xbp.zeros(2))
    with pytest.raises(ValueError, match="not in the group"):
        dist.broadcast(xbp.zeros(2), src=size)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_broadcast(dev_group, dtype, world):
    device, group = dev_group
    rank, size = world
    for src in range(size):
        t = tensor(data(rank, dtype), device)
        dist.broadcast(t, src, group=group)
        check(host(t), data(src, dtype))
    t = tensor(data(rank, dtype), device)
    w = dist.broadcast(t, size - 1, group=group, async_op=True)
    w.wait()
    check(host(t), data(size - 1, dtype))


@pytest.mark.parametrize("dtype", ["float64", "int32"])
def test_all_gather(dev_group, dtype, world):
    device, group = dev_group
    rank, size = world
    outs = [tensor(np.zeros(SHAPE, dtype), device) for _ in range(size)]
    dist.all_gather(outs, tensor(data(rank, dtype), device), group=group)
    for r, o in enumerate(outs):
        check(host(o), data(r, dtype))
    flat = tensor(np.zeros((size * 3, 4), dtype), device)
    dist.all_gather_into_tensor(flat, tensor(data(rank, dtype), device), group=group)
    check(host(flat), np.concatenate([data(r, dtype) for r in range(size)]))
    stacked = tensor(np.zeros((size, 3, 4), dtype), device)
    dist.all_gather_into_tensor(stacked, tensor(data(rank, dtype), device), group=group)
    check(host(stacked), np.stack([data(r, dtype) for r in range(size)]))


@pytest.mark.parametrize("op", [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MAX])
def test_reduce_scatter(dev_group, op, world):
    device, group = dev_group
    rank, size = world
    full = [data(r, "float64", (size * 2, 3)) for r in range(size)]
    want = reference(op, np.stack(full))[rank * 2:(rank + 1) * 2]
    out = tensor(np.zeros((2, 3)), device)
    dist.reduce_scatter_tensor(out, tensor(full[rank], device), op=op, group=group)
    check(host(out), want)
    out2 = tensor(np.zeros((2, 3)), device)
    chunks = [tensor(full[rank][i * 2:(i + 1) * 2], device) for i in range(size)]
    w = dist.reduce_scatter(out2, chunks, op=op, group=group, async_op=True)
    w.wait()
    check(host(out2), want)


def test_reduce_gather_scatter(dev_group, world):
    device, group = dev_group
    rank, size = world
    dst = size - 1
    t = tensor(data(rank, "float64"), device)
    dist.reduce(t, dst, group=group)
    if rank == dst:
        check(host(t), np.sum([data(r, "float64") for r in range(size)], axis=0))
    else:
        check(host(t), data(rank, "float64"))        # unchanged off the destination
    outs = [tensor(np.zeros(SHAPE), device) for _ in range(size)] if rank == 0 else None
    dist.gather(tensor(data(rank, "float64"), device), outs, dst=0, group=group)
    if rank == 0:
        for r, o in enumerate(outs):
            check(host(o), data(r, "float64"))
    ins = [tensor(data(r, "float64", seed=7), device) for r in range(size)] if rank == 0 else None
    got = tensor(np.zeros(SHAPE), device)
    dist.scatter(got, ins, src=0, group=group)
    check(host(got), data(rank, "float64", seed=7))


def test_send_recv_ring(dev_group, world):
    device, group = dev_group
    rank, size = world
    if size == 1:
        pytest.skip("send/recv needs 2 ranks")
    nxt, prv = (rank + 1) % size, (rank - 1) % size
    out = tensor(data(rank, "float32"), device)
    got = tensor(np.zeros(SHAPE, np.float32), device)
    if device == "cuda":
        import cupy.cuda.nccl as nccl
        nccl.groupStart()
        ws = dist.isend(out, nxt, group=group), dist.irecv(got, prv, group=group)
        nccl.groupEnd()
    else:
        ws = dist.isend(out, nxt, group=group), dist.irecv(got, prv, group=group)
    for w in ws:
        w.wait()
    check(host(got), data(prv, "float32"))
    if device != "cuda":
        got2 = tensor(np.zeros(SHAPE, np.float32), device)
        if rank == 0:
            src = dist.recv(got2, None, tag=5)        # any source
            assert src == 1
            check(host(got2), data(1, "float32"))
        elif rank == 1:
            dist.send(out, 0, tag=5)
    dist.barrier(group=group)


def test_process_group_queries(world):
    rank, size = world
    assert dist.is_available() and dist.is_initialized() and dist.is_mpi_available()
    assert dist.get_backend() == "mpi"
    assert (dist.get_rank(), dist.get_world_size()) == (rank, size)
    with pytest.raises(RuntimeError, match="already initialized"):
        dist.init_process_group("mpi")
    w = dist.barrier(async_op=True)
    w.wait(timeout=30)
    assert w.is_completed()


def test_new_group(world):
    rank, size = world
    members = [0] if size < 3 else [0, 2]
    g = dist.new_group(members)
    if rank in members:
        assert dist.get_world_size(g) == len(members)
        assert dist.get_rank(g) == members.index(rank)
        t = xbp.tensor([float(rank)])
        dist.all_reduce(t, group=g)
        assert host(t)[0] == sum(members)
        b = xbp.tensor([float(rank)])
        dist.broadcast(b, members[-1], group=g)     # src is a world rank, as in PyTorch
        assert host(b)[0] == members[-1]
        dist.destroy_process_group(g)
    else:
        assert g is dist.GroupMember.NON_GROUP_MEMBER
        assert dist.get_rank(g) == -1
        assert dist.all_reduce(xbp.tensor([1.0]), group=g) is None
    dist.barrier()
