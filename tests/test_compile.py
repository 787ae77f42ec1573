"""xbp.compile: a compiled training step gives the eager step's numbers (bit for bit: the plan runs
the same NumPy calls in the same order), honours what changes between calls, and falls back to
eager (with a warning, or an error under fullgraph=True) where it cannot."""
import gc
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


def test_bad_targets_still_raise_and_other_ranges_run_eagerly():
    xs, ys = _data()
    m = _model()
    opt = xbp.optim.SGD(m.parameters(), lr=0.1)

    step = _plain_step(m, opt)
    f = xbp.compile(step)
    for i in range(5):
        f(xs[i % 6], ys[i % 6])
    assert f.stats["replayed"] >= 1
    with pytest.raises(IndexError, match="class index out of range"):
        f(xs[0], xbp.tensor(np.full(16, 7)))
    f(xs[0], xbp.tensor(np.arange(16) % 3))     # a valid batch without class 3: the guard sends it eager
    assert f.stats["guard_failures"] >= 1


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
