"""DistributedDataParallel: k steps on each rank's shard equal single-process training on the
concatenated batch (float64, 1e-10). Each rank computes the single-process reference itself.
Run under mpiexec by tests/test_distributed.py (see mpi_plugin.py)."""
import numpy as np
import pytest

import xbp
import xbp.distributed as dist
from xbp import nn
from xbp.nn.parallel import DistributedDataParallel as DDP

B = 4          # rows per rank


def batch(size, seed=0, d_in=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B * size, d_in)), rng.normal(size=(B * size, 2))


def mlp(seed, device="cpu"):
    xbp.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2)).to(
        xbp.float64).to(device)


def shard(a, rank, device="cpu"):
    return xbp.tensor(a[rank * B:(rank + 1) * B], device=device)


def params_np(m):
    return [p.detach().to("cpu").numpy() for p in m.parameters()]


def assert_same(got, want, tol=1e-10):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def loss_fn(out, y):
    return ((out - y) ** 2).mean()


def test_ddp_matches_single_process_with_momentum(dev_group, world):
    device, group = dev_group                      # cuda: over an NCCL group
    rank, size = world
    X, Y = batch(size)
    model = mlp(100 + rank, device)                 # different on each rank: DDP broadcasts rank 0's
    ddp = DDP(model, bucket_cap_mb=0.001, process_group=group)   # ~1 KB buckets: several, launched in backward
    assert ddp.module is model and len(ddp._buckets) > 1
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    ref = mlp(100, device)
    ropt = xbp.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        Xs, Ys = batch(size, seed=step)
        opt.zero_grad()
        loss_fn(ddp(shard(Xs, rank, device)), shard(Ys, rank, device)).backward()
        opt.step()
        ropt.zero_grad()
        loss_fn(ref(xbp.tensor(Xs, device=device)), xbp.tensor(Ys, device=device)).backward()
        ropt.step()
    assert_same(params_np(model), params_np(ref))
    assert ddp.buckets_launched_early > 0            # communication started before backward ended
    # identical on every rank, bit for bit
    flat = np.concatenate([a.ravel() for a in params_np(model)])
    mine = xbp.tensor(flat, device=device)
    lo, hi = mine.clone(), mine.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=group)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=group)
    assert np.array_equal(lo.to("cpu").numpy(), hi.to("cpu").numpy())


def test_no_sync_accumulates_then_averages(world):
    rank, size = world
    model = mlp(7)
    ddp = DDP(model)
    ref = mlp(7)
    micro = [batch(size, seed=s) for s in (10, 11, 12)]
    with ddp.no_sync():
        for Xs, Ys in micro[:2]:
            loss_fn(ddp(shard(Xs, rank)), shard(Ys, rank)).backward()
    local = [p.grad.numpy().copy() for p in model.parameters()]
    Xs, Ys = micro[2]
    loss_fn(ddp(shard(Xs, rank)), shard(Ys, rank)).backward()
    for Xs, Ys in micro:
        loss_fn(ref(xbp.tensor(Xs)), xbp.tensor(Ys)).backward()
    assert_same([p.grad.numpy() for p in model.parameters()], [p.grad.numpy() for p in ref.parameters()])
    if size > 1:   # inside no_sync nothing was averaged: local gradients differ from the reference
        assert not all(np.allclose(a, p.grad.numpy()) for a, p in zip(local, ref.parameters()))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(5, 2)
        self.extra = nn.Linear(5, 2)      # used only when asked
        self.never = nn.Linear(5, 2)      # never used

    def forward(self, x, use_extra):
        y = self.trunk(x)
        return y + self.extra(x) if use_extra else y


def branchy(seed):
    xbp.manual_seed(seed)
    return Branchy().to(xbp.float64)


def test_unused_parameters(world):
    rank, size = world
    X, Y = batch(size, seed=3)
    model = branchy(1)
    ddp = DDP(model, find_unused_parameters=True)
    ref = branchy(1)
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.5)
    ropt = xbp.optim.SGD(ref.parameters(), lr=0.1, momentum=0.5)
    for step in range(2):
        opt.zero_grad()
        # rank 0 uses `extra`, the others do not: its gradient is averaged with their zeros
        loss_fn(ddp(shard(X, rank), rank == 0), shard(Y, rank)).backward()
        assert model.never.weight.grad is None       # unused on every rank: stays None
        opt.step()
        ropt.zero_grad()
        total = sum(loss_fn(ref(shard(X, r), r == 0), shard(Y, r)) for r in range(size)) / size
        total.backward()
        ropt.step()
    assert_same(params_np(model), params_np(ref))


def test_unused_parameter_without_the_flag_names_it(world):
    rank, size = world
    X, Y = batch(size)
    ddp = DDP(branchy(2))
    with pytest.raises(RuntimeError, match="never.weight.*find_unused_parameters=True"):
        loss_fn(ddp(shard(X, rank), True), shard(Y, rank)).backward()
    # the wrapper is usable again afterwards
    ddp2 = DDP(branchy(2), find_unused_parameters=True)
    loss_fn(ddp2(shard(X, rank), True), shard(Y, rank)).backward()


def test_batchnorm_buffers_broadcast_from_rank0(world):
    rank, size = world
    xbp.manual_seed(5 + rank)
    model = nn.Sequential(nn.BatchNorm1d(5), nn.Linear(5, 2)).to(xbp.float64)
    ddp = DDP(model)
    seen = []
    model[0].register_forward_pre_hook(lambda m, args: seen.append(m.running_mean.numpy().copy()))
    opt = xbp.optim.SGD(ddp.parameters(), lr=0.05)
    shards0 = []
    for step in range(3):
        X, Y = batch(size, seed=20 + step)
        shards0.append(X[:B])
        opt.zero_grad()
        loss_fn(ddp(shard(X, rank)), shard(Y, rank)).backward()
        opt.step()
    # at each forward the buffers are rank 0's: running mean of rank 0's shards only (closed form)
    m, expect = 0.1, np.zeros(5)
    for step in range(3):
        np.testing.assert_allclose(seen[step], expect, rtol=1e-12, atol=1e-15)
        expect = (1 - m) * expect + m * shards0[step].mean(axis=0)
    if rank == 0:
        np.testing.assert_allclose(model[0].running_mean.numpy(), expect, rtol=1e-12)
    # and the same on every rank
    t = xbp.tensor(seen[-1])
    hi = t.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    assert np.array_equal(hi.numpy(), seen[-1])


def test_state_dict_has_the_module_keys(world):
    model = mlp(3)
    ddp = DDP(model)
    sd = ddp.state_dict()
    assert list(sd) == list(model.state_dict())
    plain = mlp(4)
    plain.load_state_dict(sd)
    assert_same(params_np(plain), params_np(model), tol=0)
    prefixed = {"module." + k: v for k, v in sd.items()}
    other = DDP(mlp(4))
    other.load_state_dict(prefixed)                   # PyTorch-style keys load too
    assert_same(params_np(other.module), params_np(model), tol=0)


def test_rewrapping_a_model_reduces_once(world):
    import gc
    import weakref
    rank, size = world
    X, Y = batch(size, seed=9)
    model = mlp(11)
    first = DDP(model)
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None                            # the hooks on the parameters do not keep it alive
    ddp = DDP(model)
    ref = mlp(11)
    loss_fn(ddp(shard(X, rank)), shard(Y, rank)).backward()
    loss_fn(ref(xbp.tensor(X)), xbp.tensor(Y)).backward()
    assert_same([p.grad.numpy() for p in model.parameters()], [p.grad.numpy() for p in ref.parameters()])


def test_every_gradient_hook_drives_mpi_progress(world):
    """Each parameter's gradient hook tests the oldest bucket in flight (MPI progresses
    non-blocking collectives only inside MPI calls), not only the hook that fills a bucket; the
    gradients are still the single-process ones."""
    rank, size = world
    X, Y = batch(size, seed=5)
    model = mlp(13)
    ddp = DDP(model, bucket_cap_mb=0.001)
    r = ddp._reducer
    n_buckets = len(r.buckets)
    assert n_buckets >= 2
    tests = []                                       # (bucket tested, buckets launched then)
    launch = r.launch

    def counting_launch(b):
        launch(b)
        # count the tests, and report "in flight" for all of them (the real wait still runs at
        # the end), so how often each hook tests does not depend on the peer's timing
        b.test = lambda: (tests.append((b.index, r.next)), False)[1]
    r.launch = counting_launch
    ref = mlp(13)
    loss_fn(ddp(shard(X, rank)), shard(Y, rank)).backward()
    loss_fn(ref(xbp.tensor(X)), xbp.tensor(Y)).backward()
    assert tests and tests[0][0] == 0                # the first bucket was tested (MPI_Test) first
    polled = len(tests)
    assert 0 <= ddp.buckets_completed_early <= n_buckets
    assert_same([p.grad.numpy() for p in model.parameters()], [p.grad.numpy() for p in ref.parameters()])
    # the measurement switch: tests only when a bucket fills, and at the end
    tests.clear()
    r.poll_in_hooks = False
    for p in model.parameters():
        p.grad = None
    loss_fn(ddp(shard(X, rank)), shard(Y, rank)).backward()
    # the hooks that filled no bucket while one was in flight tested too (here at least layer 1's
    # bias or weight hook, whichever comes first)
    assert len(tests) < polled, (len(tests), polled)
    assert_same([p.grad.numpy() for p in model.parameters()], [p.grad.numpy() for p in ref.parameters()])


@pytest.mark.parametrize("manual", [False, True], ids=["ddp", "all_reduce_in_step"])
def test_compiled_step_that_communicates_runs_eagerly_and_trains_right(world, manual):
    # a plan cannot replay communication (DDP's buckets and waits, or a collective the step calls):
    # xbp.compile refuses it with a warning naming the cause and every call runs eagerly, so the
    # ranks stay in step and training equals single-process training
    import warnings
    rank, size = world
    model = mlp(100 + rank)
    net = model if manual else DDP(model, bucket_cap_mb=0.001)
    if manual:                                     # hand-written data parallelism: same start, averaged grads
        for p in model.parameters():
            dist.broadcast(p.detach(), 0)
    opt = xbp.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        if manual:
            for p in model.parameters():
                dist.all_reduce(p.grad)
                p.grad /= size
        opt.step()
        return loss.detach()
    compiled = xbp.compile(step)
    ref = mlp(100)
    ropt = xbp.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(4):
            Xs, Ys = batch(size, seed=k)
            compiled(shard(Xs, rank), shard(Ys, rank))
            ropt.zero_grad()
            loss_fn(ref(xbp.tensor(Xs)), xbp.tensor(Ys)).backward()
            ropt.step()
    assert compiled.stats["replayed"] == 0 and compiled.stats["eager"] >= 3
    assert any("running eagerly: the step communicates (" in str(w.message) for w in caught)
    assert_same(params_np(model), params_np(ref))
