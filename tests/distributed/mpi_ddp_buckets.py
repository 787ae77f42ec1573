"""DistributedDataParallel's bucket buffers: allocated once and reused across steps, the
gradients as views of them (``gradient_as_bucket_view``), gradients copied in pre-divided by the
world size and summed. Training still equals single-process training on the concatenated batch
(float64, 1e-10). Run under mpiexec by tests/test_distributed.py (see mpi_plugin.py)."""
import numpy as np
import pytest

import xbp
import xbp.distributed as dist
from xbp import nn
from xbp.nn.parallel import DistributedDataParallel as DDP

B = 4          # rows per rank


def batch(size, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B * size, 5)), rng.normal(size=(B * size, 2))


def mlp(seed, device="cpu"):
    xbp.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2)).to(
        xbp.float64).to(device)


def shard(a, rank, device="cpu"):
    return xbp.tensor(a[rank * B:(rank + 1) * B], device=device)


def loss_fn(out, y):
    return ((out - y) ** 2).mean()


def host(t):
    return t.detach().to("cpu").numpy()


def buffers(ddp):
    return [b.flat for b in ddp._buckets]


def reuses(device):
    """Whether the backend can tell that a buffer is no longer held (NumPy: reference counts)."""
    be = xbp.zeros(1, device=device).xp
    return be.refcounts([be.zeros((1,))]) is not None


def step(ddp, opt, X, Y, rank, device, set_to_none=True):
    opt.zero_grad(set_to_none=set_to_none)
    loss_fn(ddp(shard(X, rank, device)), shard(Y, rank, device)).backward()
    opt.step()


def views_of_buffers(ddp, model):
    """Every .grad is a view of its bucket's buffer (NumPy memory check on cpu)."""
    for b in ddp._buckets:
        buf = b.flat.array
        for p, v in zip(b.params, b.views):
            if isinstance(buf, np.ndarray):
                assert np.shares_memory(p.grad.array, buf)
            assert p.grad.array is v


@pytest.mark.parametrize("as_view", [False, True], ids=["copy_semantics", "gradient_as_bucket_view"])
def test_buffers_allocated_once_and_reused(dev_group, world, as_view):
    device, group = dev_group
    rank, size = world
    model = mlp(3, device)
    ddp = DDP(model, bucket_cap_mb=0.001, process_group=group, gradient_as_bucket_view=as_view)
    n = len(ddp._buckets)
    assert n >= 2 and ddp.buckets_allocated == 0     # allocated at first use
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.1)
    X, Y = batch(size)
    step(ddp, opt, X, Y, rank, device)
    first = [id(f.array) for f in buffers(ddp)]
    assert ddp.buckets_allocated == n
    for k in range(4):
        step(ddp, opt, X, Y, rank, device, set_to_none=k % 2 == 0)
        if as_view or reuses(device):
            assert ddp.buckets_allocated == n, (k, ddp.buckets_allocated)
            assert [id(f.array) for f in buffers(ddp)] == first
        else:                                       # cannot tell: a new buffer per step, never a shared one
            assert ddp.buckets_allocated == n * (k + 2)
        views_of_buffers(ddp, model)


def test_a_kept_gradient_keeps_its_values(world):
    # default (gradient_as_bucket_view=False): a .grad kept by the user is never overwritten
    rank, size = world
    model = mlp(4)
    ddp = DDP(model, bucket_cap_mb=0.001)
    n = len(ddp._buckets)
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.1)
    X, Y = batch(size, seed=1)
    step(ddp, opt, X, Y, rank, "cpu")
    kept = model[0].weight.grad                      # a Tensor that wraps a bucket view
    derived = model[4].bias.grad.numpy()[:1]         # a NumPy view of another bucket's view
    want_kept, want_derived = kept.numpy().copy(), derived.copy()
    X2, Y2 = batch(size, seed=2)
    step(ddp, opt, X2, Y2, rank, "cpu")
    assert ddp.buckets_allocated == n + 2            # the two held buckets got new buffers
    np.testing.assert_array_equal(kept.numpy(), want_kept)
    np.testing.assert_array_equal(derived, want_derived)
    assert not np.array_equal(model[0].weight.grad.numpy(), want_kept)
    del kept, derived
    for s in range(3):                               # nothing held any more: reused again
        step(ddp, opt, X, Y, rank, "cpu")
    assert ddp.buckets_allocated == n + 2


def test_gradient_as_bucket_view_overwrites_a_kept_gradient(world):
    # PyTorch's semantics: the gradients are the bucket views, so one kept from a step is
    # the next step's gradient (same memory), and there is no copy back
    rank, size = world
    model = mlp(5)
    ddp = DDP(model, gradient_as_bucket_view=True)
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.1)
    X, Y = batch(size, seed=1)
    step(ddp, opt, X, Y, rank, "cpu")
    kept = model[0].weight.grad
    step(ddp, opt, *batch(size, seed=2), rank, "cpu")
    assert np.shares_memory(kept.numpy(), model[0].weight.grad.numpy())
    np.testing.assert_array_equal(kept.numpy(), model[0].weight.grad.numpy())
    assert ddp.buckets_allocated == len(ddp._buckets)


@pytest.mark.parametrize("as_view", [False, True], ids=["copy_semantics", "gradient_as_bucket_view"])
def test_training_equals_single_process(dev_group, world, as_view):
    """k steps with momentum, zero_grad both ways, a no_sync accumulation step, several buckets:
    the same weights as one process on the concatenated batch (float64, 1e-10)."""
    device, group = dev_group
    rank, size = world
    model = mlp(100 + rank, device)                  # DDP broadcasts rank 0's weights
    ddp = DDP(model, bucket_cap_mb=0.001, process_group=group, gradient_as_bucket_view=as_view)
    ref = mlp(100, device)
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    ropt = xbp.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for k in range(4):
        X, Y = batch(size, seed=10 + k)
        opt.zero_grad(set_to_none=k % 2 == 0)
        ropt.zero_grad(set_to_none=k % 2 == 0)
        if k == 2:                                   # gradient accumulation over two micro-batches
            X0, Y0 = batch(size, seed=50)
            with ddp.no_sync():
                loss_fn(ddp(shard(X0, rank, device)), shard(Y0, rank, device)).backward()
            loss_fn(ref(xbp.tensor(X0, device=device)), xbp.tensor(Y0, device=device)).backward()
        loss_fn(ddp(shard(X, rank, device)), shard(Y, rank, device)).backward()
        loss_fn(ref(xbp.tensor(X, device=device)), xbp.tensor(Y, device=device)).backward()
        for p, q in zip(model.parameters(), ref.parameters()):
            np.testing.assert_allclose(host(p.grad), host(q.grad), rtol=1e-10, atol=1e-10)
        opt.step()
        ropt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(host(p), host(q), rtol=1e-10, atol=1e-10)


def test_buckets_sum_prescaled_gradients(world):
    """The bucket holds this rank's gradient divided by the world size before the all-reduce
    (SUM), and the reduced bucket is the average: checked against an all_gather of the local
    gradients, averaged in NumPy here."""
    rank, size = world
    model = mlp(6)
    ddp = DDP(model)
    X, Y = batch(size, seed=3)
    seen = []
    r = ddp._reducer
    comm_all_reduce = r.comm.all_reduce

    def spy(t, op, async_op):
        seen.append((op, t.numpy().copy()))
        return comm_all_reduce(t, op, async_op)
    r.comm = type("Spy", (), {"all_reduce": staticmethod(spy)})()
    with ddp.no_sync():
        loss_fn(ddp(shard(X, rank)), shard(Y, rank)).backward()
    local = [p.grad.numpy().copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    loss_fn(ddp(shard(X, rank)), shard(Y, rank)).backward()
    assert [op for op, _ in seen] == ["sum"] * len(ddp._buckets)
    b0 = ddp._buckets[0]
    ids = [id(p) for p in model.parameters()]
    idx = [ids.index(id(p)) for p in b0.params]
    want_in = np.concatenate([local[i].ravel() for i in idx]) / size
    np.testing.assert_allclose(seen[0][1], want_in, rtol=1e-15)
    g = xbp.tensor(np.concatenate([a.ravel() for a in local]))
    outs = [xbp.zeros(g.shape[0], dtype=xbp.float64) for _ in range(size)]
    dist.all_gather(outs, g)
    avg = np.mean([o.numpy() for o in outs], axis=0)
    got = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
    np.testing.assert_allclose(got, avg, rtol=1e-12, atol=1e-15)


def test_progress_thread_keeps_the_values_and_stops(world):
    """mpi_progress_interval: a helper thread turns MPI's progress engine while buckets are in
    flight; gradients are unchanged, the thread is parked between backwards and ends with the
    wrapper."""
    import gc
    rank, size = world
    model = mlp(8)
    ddp = DDP(model, bucket_cap_mb=0.001)
    with pytest.raises(ValueError, match="mpi_progress_interval must be > 0"):
        ddp.mpi_progress_interval = 0
    ddp.mpi_progress_interval = 1e-4
    ref = mlp(8)
    X, Y = batch(size, seed=4)
    for _ in range(2):
        for m in (model, ref):
            for p in m.parameters():
                p.grad = None
        loss_fn(ddp(shard(X, rank)), shard(Y, rank)).backward()
        loss_fn(ref(xbp.tensor(X)), xbp.tensor(Y)).backward()
        for p, q in zip(model.parameters(), ref.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-10)
    pr = ddp._reducer.progress
    assert pr is not None and pr.thread.is_alive() and not pr.go.is_set()
    del ddp
    gc.collect()
    pr.thread.join(timeout=5)
    assert not pr.thread.is_alive()
