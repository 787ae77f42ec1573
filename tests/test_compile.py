"""xbp.compile: a compiled training step gives the eager step's numbers (bit for bit: the plan runs
the same NumPy calls in the same order), honours what changes between calls, and falls back to
eager (with a warning, or an error under fullgraph=True) where it cannot."""
import gc
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F


def _data(n=6, batch=16, d=8, classes=4, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    xs = [xbp.tensor(rng.standard_normal((batch, d)).astype(dtype)) for _ in range(n)]
    ys = [xbp.tensor(np.arange(batch) % classes) for _ in range(n)]     # every class in every batch
    return xs, ys


def _model(kind="mlp", dtype=xbp.float32, d=8, classes=4):
    xbp.manual_seed(0)
    if kind == "mlp":
        m = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, classes))
    elif kind == "bn":
        m = nn.Sequential(nn.Linear(d, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, classes))
    elif kind == "dropout":
        m = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, classes))
    return m.to(dtype=dtype)


def _plain_step(m, opt):
    """The training step most tests compile: zero_grad, cross-entropy, backward, optimizer step."""
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


OPTIMIZERS = {
    "sgd": lambda p: xbp.optim.SGD(p, lr=0.1),
    "sgd_momentum_nesterov_wd": lambda p: xbp.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: xbp.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: xbp.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "rmsprop": lambda p: xbp.optim.RMSprop(p, lr=1e-2, momentum=0.5),
}


def _train(compiled, opt_name="sgd", kind="mlp", steps=30, dtype=np.float32, clip=None, sched=None,
           batch_sizes=None):
    xbp.manual_seed(0)
    m = _model(kind, dtype=xbp.float64 if dtype == np.float64 else xbp.float32)
    opt = OPTIMIZERS[opt_name](m.parameters())
    scheduler = xbp.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5) if sched else None

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_value_(m.parameters(), clip)
        opt.step()
        return loss.detach()
    f = xbp.compile(step) if compiled else step
    losses = []
    for i in range(steps):
        b = batch_sizes[i % len(batch_sizes)] if batch_sizes else 16
        xs, ys = _data(batch=b, dtype=dtype, seed=i % 3)
        losses.append(float(f(xs[i % 6], ys[i % 6])))
        if scheduler is not None:
            scheduler.step()
    state = {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}
    return losses, state, f


def _assert_same(a, b):
    la, sa = a[0], a[1]
    lb, sb = b[0], b[1]
    np.testing.assert_array_equal(la, lb)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_compiled_step_equals_eager(opt_name):
    eager = _train(False, opt_name)
    comp = _train(True, opt_name)
    _assert_same(eager, comp)
    stats = comp[2].stats
    assert stats["replayed"] >= 25 and stats["eager"] == 0, stats


def test_float64_and_scheduler_and_clipping():
    kw = dict(opt_name="adam", dtype=np.float64, sched=True, clip=0.05)
    eager = _train(False, **kw)
    comp = _train(True, **kw)
    _assert_same(eager, comp)
    assert comp[2].stats["replayed"] >= 25


def test_batchnorm_running_stats_and_dropout_masks():
    for kind in ("bn", "dropout"):
        eager = _train(False, "sgd_momentum_nesterov_wd", kind=kind)
        comp = _train(True, "sgd_momentum_nesterov_wd", kind=kind)
        _assert_same(eager, comp)           # running_mean/var in the state dict; masks from the seeded stream
        assert comp[2].stats["replayed"] >= 25, (kind, comp[2].stats, comp[2].cache)


def test_batch_size_change_records_a_second_plan():
    eager = _train(False, batch_sizes=[16, 16, 16, 8, 8, 8])
    comp = _train(True, batch_sizes=[16, 16, 16, 8, 8, 8])
    _assert_same(eager, comp)
    plans = [v for v in comp[2].cache.values() if hasattr(v, "run")]
    assert len(plans) == 2


def test_lr_set_by_hand_and_state_loaded_between_calls():
    xs, ys = _data()
    results = []
    for compiled in (False, True):
        xbp.manual_seed(0)
        m = _model()
        opt = xbp.optim.Adam(m.parameters(), lr=1e-2)

        step = _plain_step(m, opt)
        f = xbp.compile(step) if compiled else step
        snapshot = None
        for i in range(20):
            if i == 10:
                for g in opt.param_groups:
                    g["lr"] = 3e-3
            if i == 5:
                snapshot = {k: v.detach().clone() for k, v in m.state_dict().items()}
            if i == 15:
                m.load_state_dict(snapshot)
            f(xs[i % 6], ys[i % 6])
        results.append({k: v.detach().numpy().copy() for k, v in m.state_dict().items()})
    for k in results[0]:
        np.testing.assert_array_equal(results[0][k], results[1][k])


def test_module_forward_in_eval_and_train_flags():
    xbp.manual_seed(0)
    m = _model("bn")
    cm = xbp.compile(m)
    assert set(dict(cm.named_parameters())) == set(dict(m.named_parameters()))
    assert cm.state_dict().keys() == m.state_dict().keys()
    xs, _ = _data()
    m.eval()
    with xbp.no_grad():
        for i in range(6):
            np.testing.assert_array_equal(cm(xs[i]).numpy(), m(xs[i]).numpy())
    assert cm._compiled_call.stats["replayed"] >= 2
    m.train()                                   # another signature: records anew
    with xbp.no_grad():
        for i in range(6):
            before = m[1].running_mean.numpy().copy()
            got = cm(xs[i]).numpy()
            m[1].running_mean.copy_(xbp.tensor(before))   # undo the compiled call's update, run eagerly
            np.testing.assert_allclose(got, m(xs[i]).numpy(), rtol=0, atol=0)


def test_host_read_inside_the_step_falls_back_with_a_warning():
    xs, ys = _data()
    m = _model()
    opt = xbp.optim.SGD(m.parameters(), lr=0.1)
    seen = []

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        if loss.item() > 1e9:                  # a branch on a value: differs from call to call
            seen.append(1)
        loss.backward()
        opt.step()
        return loss.detach()
    f = xbp.compile(step)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i in range(8):
            f(xs[i % 6], ys[i % 6])
    assert f.stats["replayed"] == 0
    assert any("running eagerly" in str(x.message) for x in w)
    g = xbp.compile(step, fullgraph=True)
    with pytest.raises(xbp.CompileError, match="step"):
        for i in range(8):
            g(xs[i % 6], ys[i % 6])


def test_returning_a_graph_tensor_falls_back():
    m = _model()
    xs, _ = _data()
    f = xbp.compile(lambda x: m(x).sum())
    with pytest.warns(RuntimeWarning, match="autograd graph"):
        out = f(xs[0])
    out.backward()                              # eager result: its graph works
    assert m[0].weight.grad is not None


def _twins(make_model, make_step, lr=0.1):
    """The same model twice (same seed): an eager step on one, the compiled step on the other."""
    m_eager, m_comp = make_model(), make_model()
    eager = make_step(m_eager, xbp.optim.SGD(m_eager.parameters(), lr=lr))
    compiled = xbp.compile(make_step(m_comp, xbp.optim.SGD(m_comp.parameters(), lr=lr)))
    return m_eager, eager, m_comp, compiled


def _params(m):
    return [p.detach().numpy().copy() for p in m.parameters()]


def test_targets_of_any_range_replay_checked_and_match_eager():
    # Random targets from 1000 classes: every batch spans another [min, max]. The class check is
    # replayed on every call (only its result is guarded), so nothing falls back to eager; before,
    # the recorded span was a guard and every such batch ran eagerly.
    rng = np.random.default_rng(1)
    batches = [(xbp.tensor(rng.standard_normal((16, 8)).astype(np.float32)),
                xbp.tensor(rng.integers(0, 1000, 16))) for _ in range(12)]
    m_eager, eager, m_comp, f = _twins(lambda: _model(classes=1000), _plain_step)
    for x, y in batches:
        assert float(f(x, y)) == float(eager(x, y))
    assert f.stats["eager"] == 0 and f.stats["guard_failures"] == 0
    assert f.stats["replayed"] == len(batches) - f.stats["recorded"] >= 8
    for a, b in zip(_params(m_eager), _params(m_comp)):
        np.testing.assert_array_equal(a, b)


def test_bad_targets_raise_on_replay_and_change_nothing():
    xs, ys = _data()
    m = _model()
    f = xbp.compile(_plain_step(m, xbp.optim.SGD(m.parameters(), lr=0.1)))
    for i in range(5):
        f(xs[i % 6], ys[i % 6])
    assert f.stats["replayed"] >= 1
    before, replayed = _params(m), f.stats["replayed"]
    bad = np.arange(16) % 4
    bad[3] = 4                                   # one class id past the 4 classes
    with pytest.raises(IndexError, match=r"cross_entropy: target class index out of range: targets span \[0, 4\]"):
        f(xs[0], xbp.tensor(bad))
    bad[3] = -1                                  # -1 is not ignore_index (-100): refused, never wrapped
    with pytest.raises(IndexError, match=r"targets span \[-1, 3\].*\[0, 3\]"):
        f(xs[0], xbp.tensor(bad))
    for a, b in zip(before, _params(m)):         # the failed calls changed no parameter
        np.testing.assert_array_equal(a, b)
    f(xs[0], xbp.tensor(np.arange(16) % 3))     # a valid batch without class 3: replayed, not eager
    assert f.stats["replayed"] == replayed + 1 and f.stats["guard_failures"] == 0


def test_ignored_targets_take_the_masked_path_and_match_eager():
    # a batch holding ignore_index needs the loss's masked path: the guard on check_span's result
    # sends it to a plan of its own; the unmasked plan keeps replaying the other batches
    xs, ys = _data()
    m_eager, eager, m_comp, f = _twins(_model, _plain_step)
    ignored = np.arange(16) % 4
    ignored[::5] = -100
    for i in range(10):
        y = xbp.tensor(ignored) if i in (5, 7) else ys[i % 6]
        assert float(f(xs[i % 6], y)) == float(eager(xs[i % 6], y))
    assert f.stats["guard_failures"] >= 1 and f.stats["replayed"] >= 5
    for a, b in zip(_params(m_eager), _params(m_comp)):
        np.testing.assert_array_equal(a, b)


def test_embedding_ids_and_bce_probabilities_are_checked_on_every_replay():
    rng = np.random.default_rng(2)

    def make_model():
        xbp.manual_seed(0)
        return nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(24, 1))

    def make_step(m, opt):
        def step(ids, t, scale):
            opt.zero_grad()
            p = xbp.sigmoid(m(ids)).reshape(-1) * scale     # scale > 1 can push p past 1
            loss = F.binary_cross_entropy(p, t)
            loss.backward()
            opt.step()
            return loss.detach()
        return step

    m_eager, eager, m_comp, f = _twins(make_model, make_step)
    one = xbp.tensor(np.float32(1.0))
    for _ in range(8):
        ids = xbp.tensor(rng.integers(0, 50, (16, 3)))
        t = xbp.tensor((rng.random(16) < 0.5).astype(np.float32))
        assert float(f(ids, t, one)) == float(eager(ids, t, one))
    assert f.stats["eager"] == 0 and f.stats["guard_failures"] == 0 and f.stats["replayed"] >= 4
    before = _params(m_comp)
    with pytest.raises(IndexError, match=r"embedding: ids span \[50, 50\], outside \[0, 50\)"):
        f(xbp.tensor(np.full((16, 3), 50)), t, one)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must hold probabilities in \[0, 1\]"):
        f(ids, t, xbp.tensor(np.float32(3.0)))
    for a, b in zip(before, _params(m_comp)):
        np.testing.assert_array_equal(a, b)


def test_strict_runs_eagerly_and_agrees():
    xbp.manual_seed(0)
    m = _model().to("strict")
    opt = xbp.optim.SGD(m.parameters(), lr=0.1)
    xs, ys = _data()
    xs = [x.to("strict") for x in xs]
    ys = [y.to("strict") for y in ys]

    step = _plain_step(m, opt)
    f = xbp.compile(step)
    with pytest.warns(RuntimeWarning, match="NumPy"):
        f(xs[0], ys[0])
    f(xs[1], ys[1])
    assert f.stats["eager"] >= 1 and f.stats["replayed"] == 0


def test_replays_keep_memory_flat():
    xs, ys = _data()
    m = _model()
    opt = xbp.optim.Adam(m.parameters(), lr=1e-3)

    step = _plain_step(m, opt)
    f = xbp.compile(step)
    for i in range(10):
        f(xs[i % 6], ys[i % 6])
    gc.collect()
    tracemalloc.start()
    for i in range(500):
        f(xs[i % 6], ys[i % 6])
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(2000):
        f(xs[i % 6], ys[i % 6])
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - base < 64 * 1024, (base, after)
    # and over 10,000 replays (the figure; without tracemalloc, which would make it slow):
    # Python's allocated blocks, which count every array and Tensor object a replay might keep
    blocks = sys.getallocatedblocks()
    for i in range(10_000):
        f(xs[i % 6], ys[i % 6])
    gc.collect()
    assert sys.getallocatedblocks() - blocks < 200, (blocks, sys.getallocatedblocks())


class _FakeComm:
    """Stands for xbp.distributed's MPI/NCCL communicators (this module's classes are watched in
    their place; the MPI tests run the real ones: tests/distributed/mpi_ddp.py)."""
    calls = 0

    def all_reduce(self, t, op, async_op):
        _FakeComm.calls += 1


def test_step_that_communicates_runs_eagerly(monkeypatch):
    from xbp import _cuda_graph
    monkeypatch.setattr(_cuda_graph, "_COMM_MODULES", (__name__,))
    xs, ys = _data()
    m_eager, eager, m_comp, f = _twins(_model, _plain_step)
    comm = _FakeComm()

    def step(x, y):
        out = f_inner(x, y)
        comm.all_reduce(out, "sum", False)
        return out
    f_inner = f.fn
    g = xbp.compile(step)
    with pytest.warns(RuntimeWarning, match=r"running eagerly: the step communicates \(all_reduce"):
        g(xs[0], ys[0])
    for i in range(1, 5):
        g(xs[i], ys[i])
    for i in range(5):
        eager(xs[i], ys[i])
    assert g.stats["replayed"] == 0 and g.stats["eager"] == 4 and _FakeComm.calls == 5
    for a, b in zip(_params(m_eager), _params(m_comp)):
        np.testing.assert_array_equal(a, b)
