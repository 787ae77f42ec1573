"""xbp.compile on cuda as a CUDA graph (xbp/_cuda_graph.py) and the direct cuBLAS GEMM (xbp/_cublas.py).

CPU tests (always run): the GEMM layout logic with cuBLAS replaced by a NumPy GEMM that reads raw
memory by cuBLAS's documented (pointer, leading dimension, batch stride) rules; the capture state
machine (warm-up, capture, replay, guards, recapture, fallback warning, fullgraph error, device
scalars for lr and step) with the CuPy driver replaced by a fake one on NumPy.
GPU tests (``*_cuda``): real capture and replay against eager; they skip on a machine without a GPU
(and on the CuPy emulation, which models no graphs), with the reason shown.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp import _cublas, _cuda_graph
from xbp._backend import cuda_available, get_backend

PTR = (lambda a: a.ctypes.data)


# --- the GEMM layout (CPU) ------------------------------------------------------------------------
SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
          ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (1, 6, 4, 5)), ((1, 4), (4, 1)), ((1, 1), (1, 1)),
          ((0, 4), (4, 5)), ((3, 0), (0, 5)), ((2, 3, 4), (2, 4, 5)), ((64, 128), (128, 10))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_gemm_layout_matches_numpy(sa, sb, dtype):
    rs = np.random.RandomState(0)
    a, b = rs.randn(*sa).astype(dtype), rs.randn(*sb).astype(dtype)
    got = _cublas.matmul(np, a, b, _cublas.numpy_gemm, PTR)
    want = np.matmul(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def _views(rs):
    big = rs.randn(12, 14)
    t = rs.randn(3, 5, 4)
    return [  # (a, b) pairs with transposed, sliced, strided and broadcast layouts
        (big[:3, :5], big[:5, 2:6]),
        (big[:5, :3].T, big[:5, :4]),                  # a transposed (unit row stride)
        (big[:3, :5], big[:6, :5].T),                  # b transposed: x @ W.T
        (big[1:8:2, 1:4], big[2:5, ::3]),              # row strides > cols, column stride 3: copied
        (np.swapaxes(t, 1, 2), t),                     # batched transposed
        (t, np.swapaxes(t, 1, 2)),
        (t[:, 1:4, :], rs.randn(4, 2)),                # batch stride with sliced rows
        (np.broadcast_to(rs.randn(5, 4), (3, 5, 4)), rs.randn(3, 4, 2)),   # batch stride 0
        (rs.randn(2, 3, 5, 4)[:, ::2], rs.randn(4, 3)),                    # batch dims that do not flatten
        (rs.randn(5), rs.randn(3, 5, 2)),
    ]


def test_gemm_layout_views():
    for a, b in _views(np.random.RandomState(1)):
        got = _cublas.matmul(np, a, b, _cublas.numpy_gemm, PTR)
        np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-12, atol=1e-12)


def test_gemm_passes_transposed_operands_without_copy():
    """x @ W.T (the linear layer) and h.T @ g (its weight gradient) go to cuBLAS as op=T on the
    original memory: the recorded GEMM arguments say so."""
    calls = []

    def gemm(*args):
        calls.append(args)
        _cublas.numpy_gemm(*args)
    rs = np.random.RandomState(2)
    x, W = rs.randn(64, 128).astype(np.float32), rs.randn(10, 128).astype(np.float32)
    y = _cublas.matmul(np, x, W.T, gemm, PTR)
    np.testing.assert_allclose(y, x @ W.T, rtol=1e-5, atol=1e-5)
    char, ta, tb, m, n, k, pa, lda, _, pb, ldb, _, _, ldc, _, batch = calls[0]
    # column-major C^T = op(W.T)^T... : first operand is b = W.T, read transposed from W's memory
    assert (char, ta, tb, m, n, k, batch) == ("f", _cublas.OP_T, _cublas.OP_N, 10, 64, 128, 1)
    assert pa == W.ctypes.data and lda == 128 and pb == x.ctypes.data and ldb == 128 and ldc == 10


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_arguments_match_the_h100_probe(ta, tb):
    """The cuBLAS arguments equal those of ../shared/probes/cuda_graph_cublas.py's `mm` (which
    trained an MLP correctly as a CUDA graph on an H100) for op(A) @ op(B) of stored contiguous
    A and B: sgemm(h, tb, ta, n, m, k, 1, B, B.shape[1], A, A.shape[1], 0, C, n)."""
    rs = np.random.RandomState(4)
    m, k, n = 5, 7, 3
    A = rs.randn(*((k, m) if ta else (m, k))).astype(np.float32)
    B = rs.randn(*((n, k) if tb else (k, n))).astype(np.float32)
    calls = []

    def gemm(*args):
        calls.append(args)
        _cublas.numpy_gemm(*args)
    C = _cublas.matmul(np, A.T if ta else A, B.T if tb else B, gemm, PTR)
    np.testing.assert_allclose(C, (A.T if ta else A) @ (B.T if tb else B), rtol=1e-5, atol=1e-5)
    char, transa, transb, mm, nn_, kk, pa, lda, _, pb, ldb, _, pc, ldc, _, batch = calls[0]
    probe = (int(tb), int(ta), n, m, k, B.ctypes.data, B.shape[1], A.ctypes.data, A.shape[1], n)
    assert (transa, transb, mm, nn_, kk, pa, lda, pb, ldb, ldc) == probe and batch == 1


def test_gemm_refuses_other_dtypes():
    assert not _cublas.supports(np.ones((2, 2), np.float16), np.ones((2, 2), np.float16))
    assert not _cublas.supports(np.ones((2, 2), np.float32), np.ones((2, 2), np.float64))
    with pytest.raises(TypeError, match="float32/float64"):
        _cublas.matmul(np, np.ones((2, 2), np.int64), np.ones((2, 2), np.int64), _cublas.numpy_gemm, PTR)
    with pytest.raises(ValueError, match="inner dimensions"):
        _cublas.matmul(np, np.ones((2, 3)), np.ones((2, 3)), _cublas.numpy_gemm, PTR)


def test_matmul_fast_path_agrees_cuda(device, monkeypatch):
    """CupyBackend.matmul under capture (the cuBLAS fast path) == CuPy's matmul (portable). On the
    CuPy emulation the GEMM is the NumPy double (the emulation's arrays are host memory)."""
    if device != "cuda":
        pytest.skip("the fast path is CupyBackend's")
    be = xbp.zeros(1, device="cuda").xp
    if _cuda_graph.make_driver(be).unavailable() is not None:      # the emulation: host pointers
        monkeypatch.setattr(_cublas, "cublas_gemm", _cublas.numpy_gemm)
    rs = np.random.RandomState(3)
    for a, b in _views(rs) + [(rs.randn(64, 128), rs.randn(128, 10))]:
        for dt in (np.float32, np.float64):
            ga, gb = be.cupy.asarray(np.ascontiguousarray(a).astype(dt)), be.cupy.asarray(np.ascontiguousarray(b).astype(dt))
            if a.ndim == 2 and a.strides[0] < a.strides[1]:
                ga = be.cupy.asarray(np.ascontiguousarray(a.T).astype(dt)).T
            fast = be.matmul_cublas(ga, gb)
            portable = be.ns.matmul(ga, gb)
            tol = 1e-4 if dt == np.float32 else 1e-10
            np.testing.assert_allclose(be.to_numpy(fast), be.to_numpy(portable), rtol=tol, atol=tol)
    be.capturing = True
    try:
        ga = be.cupy.asarray(np.ones((2, 3), np.float32))
        np.testing.assert_allclose(be.to_numpy(be.matmul(ga, ga.T)), np.full((2, 2), 3.0))
    finally:
        be.capturing = False


# --- the capture state machine with a fake driver (CPU) ---------------------------------------------
class FakeGraph:
    def __init__(self):
        self.launches = 0


class FakeDriver:
    """The driver on NumPy: 'capture' runs the step (a real capture only records it) and a launch
    only counts, so call 3 is computed during capture and later calls check the bookkeeping."""

    def __init__(self, fail=None):
        self.fail = fail
        self.graphs = []
        self.fills = []

    def unavailable(self):
        return None

    def new_stream(self):
        return object()

    def new_pool(self):
        return object()

    def eager_on(self, stream, pool):
        return contextlib.nullcontext()

    def capture(self, stream, pool, fn):
        out = fn()
        if self.fail is not None:
            raise self.fail
        g = FakeGraph()
        self.graphs.append(g)
        return g, out

    def launch(self, graph):
        graph.launches += 1

    def copy_into(self, dst, src):
        dst[...] = src

    def clone(self, a):
        return a.copy()

    def scalar(self, v):
        return np.array(v, dtype=np.float64)

    def set_scalar(self, a, v):
        self.fills.append(v)
        a[...] = v


class ReplayingFakeDriver(FakeDriver):
    """A launch after the first re-runs the captured step on its static inputs, as the graph would
    (with the capture hook on, so the optimizers read the device scalars, and the host's step
    counts put back: a graph does not run host code), and writes the results into the captured
    output buffers. So a trajectory checks the data flow of replay: static inputs, device lr and
    step counts advanced and uploaded, host step counts mirrored, outputs refreshed."""

    def __init__(self):
        super().__init__()
        self.hook = None

    def capture(self, stream, pool, fn):
        from xbp.optim import optimizer as O
        self.hook = O.CAPTURE_HOOK[0]
        g, out = super().capture(stream, pool, fn)
        g.fn, g.out, g.hook = fn, out, self.hook
        return g, out

    def launch(self, graph):
        from xbp.optim import optimizer as O
        graph.launches += 1
        if graph.launches == 1:          # call 3 itself ran during the fake capture
            return
        saved = [(e[0], e[0]["step"]) for e in graph.hook.__self__.steps.values()]
        O.CAPTURE_HOOK[0] = graph.hook
        try:
            out = graph.fn()
        finally:
            O.CAPTURE_HOOK[0] = None
        for st, v in saved:
            st["step"] = v
        graph.out.array[...] = out.array


class CheckingReplayFakeDriver(ReplayingFakeDriver):
    """The replaying fake, and as a graph does with the deferred index checks it captured: a
    replay rewrites their spans in place (no host code runs, nothing new is queued)."""

    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    def capture(self, stream, pool, fn):
        n0 = len(self.backend._pending)
        g, out = super().capture(stream, pool, fn)
        g.checks = self.backend._pending[n0:]
        return g, out

    def launch(self, graph):
        n0 = len(self.backend._pending)
        super().launch(graph)
        new = self.backend._pending[n0:]
        del self.backend._pending[n0:]
        if new:
            for captured, e in zip(graph.checks, new):
                captured.span[...] = e.span


@pytest.fixture
def fake(monkeypatch):
    d = FakeDriver()
    monkeypatch.setattr(_cuda_graph, "handles", lambda compiled, tensors: True)
    monkeypatch.setattr(_cuda_graph, "make_driver", lambda backend: d)
    return d


def _model_and_step(opt_name="sgd", lr=0.1, sched=False):
    xbp.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    if opt_name == "sgd":
        opt = xbp.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = xbp.optim.Adam(model.parameters(), lr=lr)
    s = xbp.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5) if sched else None

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if s is not None:
            s.step()
        return loss.detach()
    return model, opt, step


def _batches(n):
    rs = np.random.RandomState(5)
    return [(xbp.tensor(rs.randn(6, 8).astype(np.float32)), xbp.tensor(rs.randint(0, 4, 6))) for _ in range(n)]


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_warmup_capture_replay(fake, opt_name):
    data = _batches(6)
    ref_model, _, ref_step = _model_and_step(opt_name)
    ref = [float(ref_step(x, y)) for x, y in data[:3]]
    model, opt, step = _model_and_step(opt_name)
    c = xbp.compile(step)
    got = [float(c(x, y)) for x, y in data[:3]]
    # calls 1-2 eager, call 3 computed during the (fake) capture with lr and step as device scalars
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert c.stats["captured"] == 1 and len(fake.graphs) == 1 and fake.graphs[0].launches == 1
    steps = [st["step"] for st in opt.state.values() if "step" in st]
    assert steps == [3] * len(steps)        # the capture call counted once (host), not twice
    for x, y in data[3:]:
        c(x, y)
    g = fake.graphs[0]
    assert g.launches == 4 and c.stats["replayed"] == 3
    step_obj = c.cache[next(iter(c.cache))]
    # the static input holds the last call's input (copied in before the launch)
    np.testing.assert_array_equal(step_obj.static[0][1].numpy(), data[-1][0].numpy())
    if opt_name == "adam":     # host step counts follow the replays; the device count was not re-written
        assert [st["step"] for st in opt.state.values()] == [s + 3 for s in steps]
        assert all(e[1] == 3 for e in step_obj.scalars.used.values())   # the device value at capture (fake)
        assert fake.fills == []


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_replayed_trajectory_matches_eager(monkeypatch, opt_name):
    d = ReplayingFakeDriver()
    monkeypatch.setattr(_cuda_graph, "handles", lambda compiled, tensors: True)
    monkeypatch.setattr(_cuda_graph, "make_driver", lambda backend: d)
    data = _batches(12)
    ref_model, ref_opt, ref_step = _model_and_step(opt_name, lr=0.05)
    ref_sched = xbp.optim.lr_scheduler.StepLR(ref_opt, step_size=3, gamma=0.5)
    model, opt, step = _model_and_step(opt_name, lr=0.05)
    sched = xbp.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    c = xbp.compile(step)
    ref, got = [], []
    for x, y in data:
        ref.append(float(ref_step(x, y)))
        ref_sched.step()
        got.append(float(c(x, y)))
        sched.step()
    assert c.stats["captured"] == 1 and c.stats["replayed"] == 9
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert [s.get("step") for s in opt.state.values()] == [s.get("step") for s in ref_opt.state.values()]
    assert len(d.fills) == 3            # lr halved at steps 3, 6, 9: one fill each after capture


def test_deferred_index_checks_are_read_for_every_replay(monkeypatch):
    """A class index out of range in a replayed step's batch raises at the next host read (the
    check rides along in the graph), even after later replays with valid batches."""
    be = get_backend("cpu")
    monkeypatch.setattr(be, "defers_checks", True)
    # CuPy's gather wraps an out-of-range index (NumPy raises at once): the check must catch it
    monkeypatch.setattr(be, "take_along_axis", lambda x, i, axis=-1: np.take_along_axis(x, i % x.shape[axis], axis))
    d = CheckingReplayFakeDriver(be)
    monkeypatch.setattr(_cuda_graph, "handles", lambda compiled, tensors: True)
    monkeypatch.setattr(_cuda_graph, "make_driver", lambda backend: d)
    model, opt, step = _model_and_step("sgd")
    c = xbp.compile(step)
    data = _batches(5)
    for x, y in data:
        c(x, y)
    be.synchronize()                                   # valid labels: nothing raises
    assert c.stats["captured"] == 1 and c.stats["replayed"] == 2
    step_obj = c.cache[next(iter(c.cache))]
    assert len(step_obj.checks) >= 1 and not be._pending
    bad = xbp.tensor(np.array([0, 1, 2, 3, 7, 1]))
    c(data[0][0], bad)                                 # a replay with class 7 of 4
    c(*data[1])                                        # and a valid one after it
    assert c.stats["replayed"] == 4
    with pytest.raises(IndexError, match="7"):
        be.synchronize()
    c(*data[2])
    be.synchronize()                                   # read: the queue is clean again


def test_module_forward_returns_fresh_copies(fake):
    """A compiled module's eval forward under no_grad: replays return copies of the graph's output
    buffer (the next replay overwrites it), so results kept by the caller stay as they were."""
    xbp.manual_seed(0)
    model = nn.Linear(4, 3)
    model.eval()
    c = xbp.compile(model)
    x = xbp.ones(2, 4)
    with xbp.no_grad():
        outs = [c(x) for _ in range(5)]
    assert c._compiled_call.stats["captured"] == 1
    buf = c._compiled_call.cache[next(iter(c._compiled_call.cache))].out[1]
    assert all(o.array is not buf for o in outs[2:])
    with xbp.no_grad():
        want = model(x).numpy()
    for o in outs[:3]:        # calls 1-3 computed (the fake's launches after capture compute nothing)
        np.testing.assert_allclose(o.numpy(), want, rtol=1e-6)


def test_same_tensor_twice_is_one_static_buffer(fake):
    model = nn.Linear(4, 4)
    model.eval()
    c = xbp.compile(lambda a, b: model(a) + b)
    rs = np.random.RandomState(0)
    with xbp.no_grad():
        for _ in range(5):
            x = xbp.tensor(rs.randn(2, 4).astype(np.float32))
            c(x, x)
    st = c.cache[next(iter(c.cache))]
    assert c.stats["captured"] == 1 and c.stats["replayed"] == 2 and len(st.static) == 1
    np.testing.assert_array_equal(st.static[0][1].numpy(), x.numpy())
    with xbp.no_grad():
        c(x, xbp.tensor(x.numpy().copy()))          # now two tensors: the graph's wiring no longer holds
    assert c.stats.get("recaptures") == 1


def test_handles_only_cuda():
    model = nn.Linear(2, 2)
    c = xbp.compile(lambda: model(xbp.ones(1, 2)))
    assert not _cuda_graph.handles(c, [xbp.ones(2)])
    assert not _cuda_graph.handles(c, [])          # no tensors: the closure's modules decide (cpu here)


def test_cache_eviction_releases_the_pool(fake, monkeypatch):
    released = []
    monkeypatch.setattr(_cuda_graph, "release_pool", lambda pool: released.append(pool))
    model, opt, step = _model_and_step()
    c = xbp.compile(step)
    c.cache_size = 1
    rs = np.random.RandomState(0)
    for n in (6, 6, 6, 5):
        c(xbp.tensor(rs.randn(n, 8).astype(np.float32)), xbp.tensor(rs.randint(0, 4, n)))
    assert len(c.cache) == 1 and len(released) == 1


def test_lr_and_step_changes_are_uploaded(fake):
    model, opt, step = _model_and_step("adam", lr=0.01)
    c = xbp.compile(step)
    data = _batches(5)
    for x, y in data[:3]:
        c(x, y)
    st = c.cache[next(iter(c.cache))]
    opt.param_groups[0]["lr"] = 0.005                   # by hand or by a scheduler outside the step
    c(*data[3])
    lr_entry = next(iter(st.scalars.lr.values()))
    assert float(lr_entry[1]) == 0.005 and fake.fills == [0.005]
    for s in opt.state.values():                         # e.g. an optimizer state loaded in place
        s["step"] = 100
    c(*data[4])
    assert all(float(e[1]) == 100.0 for e in st.scalars.used.values())
    assert all(s["step"] == 101 for s in opt.state.values())


def test_guard_flip_recaptures(fake):
    model, opt, step = _model_and_step()
    c = xbp.compile(step)
    data = _batches(8)
    for x, y in data[:4]:
        c(x, y)
    assert c.stats["captured"] == 1
    w = model[0].weight
    w.data = xbp.tensor(w.detach().numpy().copy())               # a new array: the graph's address is stale
    c(*data[4])                                         # warm-up again
    assert c.stats.get("recaptures") == 1 and c.stats["captured"] == 1
    c(*data[5])
    c(*data[6])
    assert c.stats["captured"] == 2 and len(fake.graphs) == 2


def test_manual_seed_after_capture_recaptures_without_giving_up(fake):
    # the graph draws from the generator current at capture; xbp.manual_seed makes a new one, so
    # the next call warms up and captures again (reaching the new seed), however often the user
    # reseeds (once per epoch, say): reseeds do not count against MAX_RECAPTURES
    model, opt, step = _model_and_step()
    c = xbp.compile(step)
    data = _batches(4)
    xbp.tensor(np.zeros(1)).uniform_()         # the default generator exists before capture
    for x, y in data[:4]:
        c(x, y)
    assert c.stats["captured"] == 1
    rounds = _cuda_graph.MAX_RECAPTURES + 2
    for epoch in range(rounds):
        xbp.manual_seed(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("error")         # no "running eagerly" give-up warning
            for x, y in data[:3]:                  # warm-up, warm-up, capture
                c(x, y)
        assert c.stats["captured"] == 2 + epoch
    c(*data[3])
    assert c.stats["replayed"] >= 2 and len(fake.graphs) == rounds + 1


class _FakeComm:
    """Stands for xbp.distributed's MPI/NCCL communicators (test_cuda_graph's classes are watched
    in their place)."""
    calls = 0

    def all_reduce(self, t, op, async_op):
        _FakeComm.calls += 1


def test_step_that_communicates_is_refused_before_capture(fake, monkeypatch):
    # DDP's all-reduce (or a collective in the step) runs host code a graph would not replay: the
    # warm-up sees it and the step stays eager, with the cause named, and nothing is captured
    monkeypatch.setattr(_cuda_graph, "_COMM_MODULES", (__name__,))
    model, opt, step = _model_and_step()
    comm = _FakeComm()

    def communicating_step(x, y):
        out = step(x, y)
        comm.all_reduce(out, "sum", False)
        return out
    c = xbp.compile(communicating_step)
    data = _batches(5)
    with pytest.warns(RuntimeWarning, match=r"running eagerly: the step communicates \(all_reduce"):
        c(*data[0])
    for x, y in data[1:]:
        c(x, y)
    assert c.stats.get("captured", 0) == 0 and not fake.graphs and c.stats["eager"] == 5
    assert _FakeComm.calls == 5                          # every call communicated, for real


LOSS_SCALE = 1.0


def test_a_python_value_baked_into_the_graph_recaptures_when_set_anew(fake):
    # the graph bakes in the Python numbers of the step (xbp/_pyguards.py): a new value of a global
    # the step reads drops the graph and captures again
    global LOSS_SCALE
    xbp.manual_seed(0)
    model = nn.Linear(8, 4)
    opt = xbp.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y) * LOSS_SCALE
        loss.backward()
        opt.step()
        return loss.detach()
    c = xbp.compile(step)
    data = _batches(8)
    try:
        for x, y in data[:4]:
            c(x, y)
        assert c.stats["captured"] == 1
        LOSS_SCALE = 2.0
        for x, y in data[4:7]:                     # warm-up, warm-up, capture
            c(x, y)
        assert c.stats.get("recaptures") == 1 and c.stats["captured"] == 2
        c(*data[7])
        assert c.stats["replayed"] >= 2
    finally:
        LOSS_SCALE = 1.0


def test_optimizer_load_state_dict_recaptures(fake):
    model, opt, step = _model_and_step("adam")
    c = xbp.compile(step)
    data = _batches(8)
    for x, y in data[:4]:
        c(x, y)
    opt.load_state_dict(opt.state_dict())      # new state and param_groups objects
    for x, y in data[4:7]:
        c(x, y)
    assert c.stats.get("recaptures") == 1 and c.stats["captured"] == 2


def test_new_signature_captures_again(fake):
    model, opt, step = _model_and_step()
    c = xbp.compile(step)
    rs = np.random.RandomState(0)
    for n in (6, 6, 6, 6, 3, 3, 3, 3):
        c(xbp.tensor(rs.randn(n, 8).astype(np.float32)), xbp.tensor(rs.randint(0, 4, n)))
    assert c.stats["captured"] == 2 and [g.launches for g in fake.graphs] == [2, 2]


def test_capture_failure_warns_once_and_runs_eagerly(fake):
    fake.fail = RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted when stream is capturing")
    data = _batches(6)
    _, ref_opt, ref_step = _model_and_step("adam")
    ref = [float(ref_step(x, y)) for x, y in data]
    model, opt, step = _model_and_step("adam")
    c = xbp.compile(step)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = [float(c(x, y)) for x, y in data]
    msgs = [str(m.message) for m in w if "CUDA-graph capture failed" in str(m.message)]
    assert len(msgs) == 1 and "cudaErrorStreamCaptureUnsupported" in msgs[0]
    # the failed capture's host changes (step counts) were undone before the eager re-run... but the
    # fake capture also ran the kernels, so only the step counts are compared here
    assert [s["step"] for s in opt.state.values()] == [s["step"] for s in ref_opt.state.values()]
    assert got[:2] == ref[:2]


def test_capture_failure_fullgraph_raises(fake):
    fake.fail = RuntimeError("cudaErrorStreamCaptureUnsupported")
    model, opt, step = _model_and_step()
    c = xbp.compile(step, fullgraph=True)
    data = _batches(3)
    c(*data[0])
    c(*data[1])
    with pytest.raises(xbp.CompileError if hasattr(xbp, "CompileError") else RuntimeError,
                       match="CUDA-graph capture failed"):
        c(*data[2])


def test_scheduler_inside_step_is_refused(fake):
    model, opt, step = _model_and_step(sched=True)
    c = xbp.compile(step)
    with pytest.warns(RuntimeWarning, match="changes a learning rate"):
        for x, y in _batches(4):
            c(x, y)
    assert c.stats.get("captured", 0) == 0


def test_step_returning_graph_tensor_is_refused(fake):
    model = nn.Linear(3, 2)
    c = xbp.compile(lambda x: model(x))
    x = xbp.ones(4, 3)
    with pytest.warns(RuntimeWarning, match="autograd graph"):
        for _ in range(4):
            c(x)


def test_unavailable_capture_falls_back_cuda(device):
    """On a CuPy without stream capture (the emulation) the step runs eagerly with one warning."""
    if device != "cuda":
        pytest.skip("the cuda path")
    be = xbp.zeros(1, device="cuda").xp
    why = _cuda_graph.make_driver(be).unavailable()
    if why is None:
        pytest.skip("this CuPy can capture graphs (see the *_graph_cuda tests)")
    model = nn.Linear(4, 2).to("cuda")
    opt = xbp.optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
        return loss.detach()
    c = xbp.compile(step)
    x = xbp.ones(3, 4, device="cuda")
    with pytest.warns(RuntimeWarning, match="CUDA-graph capture is unavailable"):
        vals = [float(c(x)) for _ in range(4)]
    assert vals[0] > vals[-1] and c.stats["eager"] == 4


# --- real GPU -------------------------------------------------------------------------------------------
def _real_graphs():
    if not cuda_available():
        return "cuda: no GPU (CuPy missing or sees none); run ci/gpu on a GPU machine"
    be = xbp.zeros(1, device="cuda").xp
    why = _cuda_graph.make_driver(be).unavailable()
    return None if why is None else f"cuda: {why}"


def _gpu_step(opt_name, dropout=False, device="cuda"):
    xbp.manual_seed(0)
    layers = [nn.Linear(64, 128), nn.ReLU()] + ([nn.Dropout(0.2)] if dropout else []) + [nn.Linear(128, 10)]
    model = nn.Sequential(*layers).to(device)
    opt = (xbp.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
           if opt_name == "sgd" else xbp.optim.AdamW(model.parameters(), lr=1e-3))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    return model, opt, step


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_compiled_graph_matches_eager_cuda(opt_name):
    why = _real_graphs()
    if why:
        pytest.skip(why)
    rs = np.random.RandomState(0)
    data = [(xbp.tensor(rs.randn(64, 64).astype(np.float32), device="cuda"),
             xbp.tensor(rs.randint(0, 10, 64), device="cuda")) for _ in range(30)]
    ref_model, ref_opt, ref_step = _gpu_step(opt_name)
    model, opt, step = _gpu_step(opt_name)
    ref_sched = xbp.optim.lr_scheduler.StepLR(ref_opt, step_size=5, gamma=0.5)
    sched = xbp.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    c = xbp.compile(step, fullgraph=True)
    ref, got = [], []
    for x, y in data:
        ref.append(float(ref_step(x, y)))
        ref_sched.step()
        got.append(float(c(x, y)))
        sched.step()
    assert c.stats["captured"] == 1 and c.stats["replayed"] == 27
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert [s["step"] for s in opt.state.values() if "step" in s] == \
        [s["step"] for s in ref_opt.state.values() if "step" in s]


def test_graph_batchnorm_running_stats_cuda():
    """BatchNorm's running statistics (updated in place on the device) advance on every replay
    as in eager mode."""
    why = _real_graphs()
    if why:
        pytest.skip(why)

    def make():
        xbp.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4)).to("cuda")
        opt = xbp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()
        return model, step
    rs = np.random.RandomState(1)
    data = [(xbp.tensor(rs.randn(32, 16).astype(np.float32), device="cuda"),
             xbp.tensor(rs.randint(0, 4, 32), device="cuda")) for _ in range(10)]
    ref_model, ref_step = make()
    model, step = make()
    c = xbp.compile(step, fullgraph=True)
    for x, y in data:
        ref_step(x, y)
        c(x, y)
    assert c.stats["replayed"] == 7
    bn, ref_bn = model[1], ref_model[1]
    np.testing.assert_allclose(bn.running_mean.numpy(), ref_bn.running_mean.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), ref_bn.running_var.numpy(), rtol=1e-4, atol=1e-6)
    assert int(bn.num_batches_tracked.item()) == 10


def test_graph_memory_flat_over_replays_cuda():
    """Replays allocate only the returned copies, which the caller drops: the default pool's use
    stays flat over 2,000 replays (the graph's own memory is in its private pool)."""
    why = _real_graphs()
    if why:
        pytest.skip(why)
    import cupy
    model, opt, step = _gpu_step("adam")
    c = xbp.compile(step, fullgraph=True)
    x = xbp.randn(64, 64, device="cuda")
    y = xbp.zeros(64, dtype=xbp.int64, device="cuda")
    for _ in range(10):
        c(x, y)
    xbp.cuda.synchronize()
    pool = cupy.get_default_memory_pool()
    before = pool.used_bytes()
    for _ in range(2000):
        c(x, y)
    xbp.cuda.synchronize()
    assert pool.used_bytes() <= before + 4096, (before, pool.used_bytes())


def test_graph_dropout_draws_fresh_numbers_cuda():
    why = _real_graphs()
    if why:
        pytest.skip(why)
    model, opt, step = _gpu_step("sgd", dropout=True)
    c = xbp.compile(step, fullgraph=True)
    x = xbp.ones(64, 64, device="cuda")
    y = xbp.zeros(64, dtype=xbp.int64, device="cuda")
    opt.param_groups[0]["lr"] = 0.0          # parameters fixed: only the dropout masks change the loss
    losses = [float(c(x, y)) for _ in range(6)]
    assert c.stats["captured"] == 1
    assert len(set(losses[2:])) == 4, losses


def test_cuda_graph_api_cuda():
    why = _real_graphs()
    if why:
        pytest.skip(why)
    a = xbp.randn(32, 16, device="cuda")
    w = xbp.randn(8, 16, device="cuda")
    out = (a @ w.T).relu()                   # warm-up
    g = xbp.cuda.CUDAGraph()
    with xbp.cuda.graph(g):
        out = (a @ w.T).relu()
    a.copy_(xbp.randn(32, 16, device="cuda"))
    g.replay()
    xbp.cuda.synchronize()
    np.testing.assert_allclose(out.numpy(), np.maximum(a.numpy() @ w.numpy().T, 0), rtol=1e-4, atol=1e-5)
    assert isinstance(g.pool(), type(xbp.cuda.graph_pool_handle()))


def test_cuda_graph_api_errors():
    g = xbp.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="nothing captured"):
        g.replay()
    with pytest.raises(RuntimeError, match="no capture in progress"):
        g.capture_end()
    with pytest.raises(RuntimeError, match="no pool"):
        g.pool()
    with pytest.raises(ValueError, match="capture_error_mode"):
        g.capture_begin(capture_error_mode="loose")
    with pytest.raises(TypeError, match="CUDAGraph"):
        xbp.cuda.graph(object())


def test_cuda_graph_api_without_capture_cuda(device):
    """Where CuPy cannot capture (no GPU: DeviceError; the emulation: RuntimeError naming why)."""
    if device != "cuda":
        pytest.skip("the cuda path")
    if _real_graphs() is None:
        pytest.skip("this CuPy can capture graphs (see test_cuda_graph_api_cuda)")
    with pytest.raises(RuntimeError, match="CUDA-graph capture is unavailable"):
        xbp.cuda.CUDAGraph().capture_begin()


def test_make_graphed_callables_not_implemented():
    with pytest.raises(NotImplementedError, match="xbp.compile"):
        xbp.cuda.make_graphed_callables(lambda x: x, ())


# --- the CUDAGraph API on a stand-in for CuPy's capture surface (CPU) ---------------------------------
def _capture_cupy():
    """A `cupy` module with CuPy 14.2's stream-capture calls as xbp.cuda's CUDAGraph makes them, and
    CUDA's rule that a capture begun in global or thread-local mode refuses cudaMalloc in the
    capturing thread (cudaErrorStreamCaptureUnsupported, which invalidates the capture). The CuPy
    behaviours mirrored, from the v14.2.0 source:
    - cupy/cuda/stream.pyx Stream.begin_capture(mode=None): None means streamCaptureModeRelaxed
      (lines 396-403, "the memory pool might need to increase size ... backed by cudaMalloc, which
      is an 'unsafe' API"); the default (legacy) stream is refused (line 394);
    - cupy_backends/cuda/api/runtime.pxd lines 126-128: Global 0, ThreadLocal 1, Relaxed 2;
    - cupy/cuda/memory.pyx: a pool with no free block of the size calls _try_malloc (line 1376),
      which ends in Memory.__init__'s runtime.malloc, i.e. cudaMalloc (line 119); a new
      MemoryPool has no free blocks;
    - cupy/cuda/__init__.py using_allocator: a thread-local allocator for the block."""
    import types
    cp = types.ModuleType("cupy")
    cu = types.ModuleType("cupy.cuda")
    cp.cuda = cu
    st = types.SimpleNamespace(capturing=None, allocator=None, modes=[], launches=[], ptr=100, set_streams=[])
    cp.state = st

    class Device:
        def __init__(self, i=None):
            self.id = 0

        def __enter__(self):
            return self

        def __exit__(self, *e):
            return False

        def synchronize(self):
            pass

    class Graph:
        def launch(self, stream=None):
            st.launches.append(stream)

    class Stream:
        def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
            if null:
                self.ptr = 0
            else:
                st.ptr += 1
                self.ptr = st.ptr

        def __enter__(self):
            stack.append(self)
            return self

        def __exit__(self, *e):
            stack.pop()

        def synchronize(self):
            pass

        def begin_capture(self, mode=None):
            if self.ptr in (0, 1):
                raise RuntimeError("cannot capture on the default (legacy) stream")
            mode = cu.runtime.streamCaptureModeRelaxed if mode is None else mode
            st.modes.append(mode)
            st.capturing = [self, mode, False]          # stream, mode, invalidated

        def end_capture(self):
            cap, st.capturing = st.capturing, None
            if cap[2]:
                raise RuntimeError("cudaErrorStreamCaptureInvalidated: operation failed due to a previous error "
                                   "during capture")
            return Graph()

    Stream.null = Stream(null=True)
    stack = [Stream.null]

    class MemoryPool:
        def malloc(self, size):
            cap = st.capturing
            if cap is not None and cap[1] != cu.runtime.streamCaptureModeRelaxed:
                cap[2] = True
                raise RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted when stream is "
                                   "capturing")
            return types.SimpleNamespace(ptr=4096, size=size)

        def free_all_blocks(self, stream=None):
            pass

    @contextlib.contextmanager
    def using_allocator(allocator=None):
        prev, st.allocator = st.allocator, allocator
        try:
            yield
        finally:
            st.allocator = prev

    cu.Device, cu.Stream, cu.MemoryPool, cu.using_allocator = Device, Stream, MemoryPool, using_allocator
    cu.alloc = lambda size: st.allocator(size)       # what a new array does (cupy.cuda.memory.alloc)
    cu.is_available = lambda: True
    cu.get_current_stream = lambda: stack[-1]
    cu.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, streamCaptureModeGlobal=0,
                                       streamCaptureModeThreadLocal=1, streamCaptureModeRelaxed=2)
    cu.cublas = types.SimpleNamespace(setStream=lambda h, s: st.set_streams.append((h, s)))
    cu.device = types.SimpleNamespace(get_cublas_handle=lambda: 7)
    return cp


@pytest.fixture
def capture_cupy(monkeypatch):
    import sys
    import types
    import xbp.cuda as xcuda
    cp = _capture_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cp.cuda)
    cp.backend = types.SimpleNamespace(capturing=False, cupy=cp)
    monkeypatch.setattr(xcuda, "get_backend", lambda spec=None: cp.backend)
    monkeypatch.setattr(xcuda, "_BACKENDS", {})
    return cp


def test_cuda_graph_default_mode_lets_the_private_pool_grow(capture_cupy):
    """xbp.cuda.graph's default capture mode is relaxed: a new private pool grows by cudaMalloc
    during the capture, which CUDA refuses in global mode (PyTorch's default, asked for here
    explicitly: the capture fails at its first allocation)."""
    cp, st = capture_cupy, capture_cupy.state
    g = xbp.cuda.CUDAGraph()
    with xbp.cuda.graph(g):
        assert cp.backend.capturing is True
        cp.cuda.alloc(1024)                  # a new array in the capture: the fresh pool cudaMallocs
    assert st.modes == [cp.cuda.runtime.streamCaptureModeRelaxed]
    assert st.set_streams and st.set_streams[-1][1] != 0      # cuBLAS pointed at the capture stream
    assert cp.backend.capturing is False and cp.cuda.get_current_stream() is cp.cuda.Stream.null
    g.replay()
    assert st.launches == [cp.cuda.Stream.null]
    g2 = xbp.cuda.CUDAGraph()
    with xbp.cuda.stream(xbp.cuda.Stream()):
        g2.capture_begin(pool=g.pool())
        cp.cuda.alloc(64)
        g2.capture_end()
    assert st.modes == [2, 2]
    with pytest.raises(RuntimeError, match="StreamCapture"):
        with xbp.cuda.graph(xbp.cuda.CUDAGraph(), capture_error_mode="global"):
            cp.cuda.alloc(1024)
    assert st.modes[-1] == cp.cuda.runtime.streamCaptureModeGlobal
    assert cp.backend.capturing is False and st.capturing is None and st.allocator is None


def test_cuda_graph_capture_begin_failing_leaves_no_allocator(capture_cupy):
    """A failure before the capture starts (here: CuPy's cuBLAS handle cannot be made) leaves the
    thread's allocator as it was (cupy.cuda.using_allocator is thread-local state)."""
    cp, st = capture_cupy, capture_cupy.state

    def no_handle():
        raise RuntimeError("CUBLAS_STATUS_NOT_INITIALIZED")
    cp.cuda.device.get_cublas_handle = no_handle
    g = xbp.cuda.CUDAGraph()                 # kept: its using_allocator generator is not collected
    with pytest.raises(RuntimeError, match="CUBLAS_STATUS_NOT_INITIALIZED"):
        with xbp.cuda.graph(g):
            pass
    assert st.allocator is None and cp.backend.capturing is False and st.modes == []
    assert cp.cuda.get_current_stream() is cp.cuda.Stream.null
