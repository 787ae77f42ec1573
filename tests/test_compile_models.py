"""xbp.compile on the models of bench/bench_layers.py (tiny sizes): a LeNet-style CNN (conv with
padding, BatchNorm2d, max-pooling, dropout) and a 2-layer LSTM with dropout between the layers,
trained 30 steps compiled and eagerly from the same seed, for each optimizer, with a scheduler
and gradient-norm clipping; the same step on every device (strict and cuda run eagerly and must
agree with eager); the errors of fullgraph=True; memory flat over 10,000 replays.

The reference is always the eager run of the same step: a plan replays the NumPy calls the eager
step made, so float64 results are equal bit for bit, float32 to 1e-6 relative (the issue's bound;
plan passes that reuse buffers must not change more than that)."""
import gc
import sys
import warnings

import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F


# --- the models (bench_layers' shapes, shrunk) ------------------------------------------------------------------
def _lenet():
    # 1x10x10 -> conv3 pad1 (4x10x10) -> BN -> relu -> pool (4x5x5) -> conv3 (6x3x3) -> relu -> pool (6x1x1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6, 8), nn.ReLU(),
                         nn.Dropout(0.25), nn.Linear(8, 4))


class _LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 5, num_layers=2, dropout=0.25)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def _batches(kind, n, dtype, device="cpu", seq=3):
    """`n` (input, target) pairs; every class in every target so the class-index guard holds."""
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        if kind == "lenet":
            x = rng.standard_normal((4, 1, 10, 10)).astype(dtype)
            y = rng.permutation(4)
        else:
            x = rng.standard_normal((seq, 2, 6)).astype(dtype)
            y = np.arange(seq * 2) % 4
        out.append((xbp.tensor(x, device=device), xbp.tensor(y, device=device)))
    return out


OPTIMIZERS = {
    "sgd": lambda p: xbp.optim.SGD(p, lr=0.05),
    "sgd_momentum": lambda p: xbp.optim.SGD(p, lr=0.05, momentum=0.9),
    "sgd_nesterov": lambda p: xbp.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "sgd_weight_decay": lambda p: xbp.optim.SGD(p, lr=0.05, weight_decay=1e-2),
    "adam": lambda p: xbp.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: xbp.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "rmsprop": lambda p: xbp.optim.RMSprop(p, lr=1e-2, momentum=0.5),
}


def _train(kind, compiled, opt_name="adam", dtype=np.float32, steps=30, device="cpu", sched=False, clip=None,
           seqs=None):
    """Train `steps` steps; returns (losses, state dict as NumPy, the step function)."""
    xbp.manual_seed(0)
    model = (_lenet() if kind == "lenet" else _LSTMNet()).to(
        device=device, dtype=xbp.float64 if dtype == np.float64 else xbp.float32)
    opt = OPTIMIZERS[opt_name](model.parameters())
    scheduler = xbp.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.5) if sched else None

    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss.detach()
    f = xbp.compile(step) if compiled else step
    data = {s: _batches(kind, 5, dtype, device, seq=s) for s in (seqs or [3])}
    losses = []
    for i in range(steps):
        s = seqs[i % len(seqs)] if seqs else 3
        x, y = data[s][i % 5]
        losses.append(float(f(x, y)))
        if scheduler is not None:
            scheduler.step()
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return losses, state, f


def _assert_close(eager, comp, dtype):
    rtol = 0 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(comp[0], eager[0], rtol=rtol, atol=0)
    assert eager[1].keys() == comp[1].keys()
    for k in eager[1]:
        np.testing.assert_allclose(comp[1][k], eager[1][k], rtol=rtol, atol=1e-7 if rtol else 0, err_msg=k)


def _assert_replayed(f, at_least=25):
    assert f.stats["replayed"] >= at_least and f.stats["eager"] == 0, (f.stats, f.cache)


# --- LeNet and the LSTM -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["lenet", "lstm"])
def test_models_compiled_equal_eager_adam(kind, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no fallback warning: the plan is used
        comp = _train(kind, True, dtype=dtype)
    eager = _train(kind, False, dtype=dtype)
    _assert_close(eager, comp, dtype)
    _assert_replayed(comp[2])


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_lenet_every_optimizer_float64(opt_name):
    # BatchNorm's running stats and num_batches_tracked are in the state dict; dropout masks come from
    # the seeded generator in eager order, so a replay that reused a mask would differ
    eager = _train("lenet", False, opt_name, np.float64)
    comp = _train("lenet", True, opt_name, np.float64)
    _assert_close(eager, comp, np.float64)
    _assert_replayed(comp[2])


def test_lstm_with_scheduler_and_grad_norm_clipping():
    kw = dict(opt_name="sgd_momentum", dtype=np.float64, sched=True, clip=0.1)
    eager = _train("lstm", False, **kw)
    comp = _train("lstm", True, **kw)
    _assert_close(eager, comp, np.float64)
    _assert_replayed(comp[2])


def test_lstm_sequence_length_change_records_a_plan_per_signature():
    kw = dict(dtype=np.float64, seqs=[3, 3, 3, 5, 5])
    eager = _train("lstm", False, **kw)
    comp = _train("lstm", True, **kw)
    _assert_close(eager, comp, np.float64)
    plans = [v for v in comp[2].cache.values() if hasattr(v, "run")]
    assert len(plans) == 2, comp[2].cache


def test_lenet_module_forward_eval_and_train():
    xbp.manual_seed(0)
    m = _lenet()
    cm = xbp.compile(m)
    data = _batches("lenet", 5, np.float32)
    m.eval()
    with xbp.no_grad():
        for x, _ in data:
            np.testing.assert_array_equal(cm(x).numpy(), m(x).numpy())
    assert cm._compiled_call.stats["replayed"] >= 2
    m.train()                                   # BatchNorm updates its running stats; dropout draws masks
    bn = m[1]
    for x, _ in data:
        with xbp.no_grad():
            state = xbp.get_rng_state()
            before = (bn.running_mean.numpy().copy(), bn.running_var.numpy().copy())
            got = cm(x).numpy()
            after = (bn.running_mean.numpy().copy(), bn.running_var.numpy().copy())
            bn.running_mean.copy_(xbp.tensor(before[0]))
            bn.running_var.copy_(xbp.tensor(before[1]))
            xbp.set_rng_state(state)            # the eager call draws the same dropout mask
            want = m(x).numpy()
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(after[0], bn.running_mean.numpy())
        np.testing.assert_array_equal(after[1], bn.running_var.numpy())
    assert cm._compiled_call.stats["replayed"] >= 4


# --- every device ---------------------------------------------------------------------------------------------
def test_compiled_step_on_every_device_agrees_with_eager(device):
    """cpu replays a plan; strict (and, until the CUDA graph lands, cuda) run the step eagerly with a
    one-time warning; on every device the compiled function's results are the eager ones."""
    kw = dict(opt_name="adam", dtype=np.float32, steps=8, device=device)
    eager = _train("lenet", False, **kw)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        comp = _train("lenet", True, **kw)
    _assert_close(eager, comp, np.float32)
    f = comp[2]
    if device == "cpu":
        assert f.stats["replayed"] >= 5 and not w, (f.stats, [str(x.message) for x in w])
    else:
        assert f.stats["replayed"] + f.stats["eager"] >= 1
        fallback = [x for x in w if "running eagerly" in str(x.message)]
        assert len(fallback) <= 1                   # a one-time warning, not one per call


# --- fallbacks and errors --------------------------------------------------------------------------------------
def _strict_step():
    xbp.manual_seed(0)
    m = nn.Linear(3, 2).to("strict")
    opt = xbp.optim.SGD(m.parameters(), lr=0.1)
    x = xbp.tensor(np.ones((2, 3), np.float32), device="strict")

    def step(x):
        opt.zero_grad()
        loss = (m(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.detach()
    return step, x


def test_fullgraph_raises_naming_the_cause():
    step, x = _strict_step()
    with pytest.raises(xbp.CompileError, match="NumPy"):
        xbp.compile(step, fullgraph=True)(x)
    m = nn.Linear(3, 2)
    with pytest.raises(xbp.CompileError, match="autograd graph"):
        xbp.compile(lambda x: m(x).sum(), fullgraph=True)(xbp.ones(2, 3))


def test_fallback_warns_once_and_keeps_working():
    step, x = _strict_step()
    f = xbp.compile(step)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        losses = [float(f(x)) for _ in range(6)]
    assert len([m for m in w if "running eagerly" in str(m.message)]) == 1, [str(m.message) for m in w]
    assert f.stats["eager"] >= 5 and f.stats["replayed"] == 0
    assert losses[-1] < losses[0]                   # the eager step trained


# --- memory ---------------------------------------------------------------------------------------------------
def test_ten_thousand_replays_keep_memory_flat():
    """A replay allocates its temporaries afresh and drops them: no plan, closure or cache keeps old
    activations. Counted as Python allocator blocks (every NumPy array object is one), which costs
    nothing per call, unlike tracemalloc (tests/test_compile.py measures bytes over 2,000 replays)."""
    xbp.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.2), nn.Linear(3, 3))
    opt = xbp.optim.Adam(m.parameters(), lr=1e-3)
    x = xbp.randn(2, 4)
    y = xbp.tensor(np.array([0, 2]))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    f = xbp.compile(step)
    for _ in range(200):
        f(x, y)
    gc.collect()
    base = sys.getallocatedblocks()
    for _ in range(10_000):
        f(x, y)
    gc.collect()
    grown = sys.getallocatedblocks() - base
    assert f.stats["replayed"] >= 10_000 and f.stats["eager"] == 0, f.stats
    assert grown < 200, f"{grown} Python blocks more after 10,000 replays"


def test_numpy_scatter_and_copy_into_a_buffer_are_recorded():
    """np.add.at (ufunc.at) and np.copyto write into their first argument and return None: the
    recorder logs them as in-place calls, so a replay repeats them on the buffer's current array."""
    index = xbp.tensor(np.array([0, 2, 2, 1]))
    for compiled in (False, True):
        buf = xbp.zeros(4, dtype=xbp.float64)
        last = xbp.zeros(4, dtype=xbp.float64)
        x = xbp.tensor(np.array([1.0, 2.0, 3.0, 4.0]))

        def step(x):
            np.add.at(buf.array, index.array, x.array)      # a scatter-add with a repeated index
            np.copyto(last.array, x.array * 2.0)
        f = xbp.compile(step) if compiled else step
        for _ in range(6):
            f(x)
        if compiled:
            assert f.stats["replayed"] >= 3 and f.stats["eager"] == 0, (f.stats, f.cache)
        np.testing.assert_array_equal(buf.numpy(), 6 * np.array([1.0, 4.0, 5.0, 0.0]))
        np.testing.assert_array_equal(last.numpy(), [2.0, 4.0, 6.0, 8.0])
