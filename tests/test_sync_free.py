"""No device -> host read inside a training step, and still no silent wrong value for a bad index.

On CuPy a host read waits for the GPU, so index checks are deferred (`Backend.defer_check`): a
step records (min, max) of its class ids / embedding ids / gather indices on the device, and the
next host read (`.item()`, printing, ...) or `synchronize()` reads them all in one transfer and
raises for a bad one. CI has no GPU, so these tests run the same machinery on `SyncCountedNumpy`: a
NumPy backend that says a host read is a sync (it defers its checks), counts its reads through
the generic `Backend.to_numpy` path, and wraps out-of-range indices silently as CuPy's kernels do
(so only the deferred check can catch them). References: the same steps on the plain NumPy
backend, where every check is immediate.
"""
import array_api_compat.numpy as compat_numpy
import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp import _backend
from xbp._backend import Backend, NumpyBackend, check_range, count_host_reads, get_backend
from conftest import REQUIRE_CUDA, raises_checked

NAME = "sync-counted"


class SyncCountedNumpy(NumpyBackend):
    """NumPy posing as a device where a host read is a sync (see the module docstring)."""

    kind = "sync-counted"
    defers_checks = True
    IMMEDIATE_CHECKS_HINT = "set defers_checks = False"
    to_numpy = Backend.to_numpy          # the generic path: pending checks first, counted
    int_range = Backend.int_range        # through to_numpy (counted), not NumPy's direct read

    def __init__(self):
        Backend.__init__(self, compat_numpy, NAME, "cpu")

    # CuPy's kernels wrap an out-of-range index instead of raising (NumPy raises)
    def take(self, x, indices, axis=None):
        n = x.size if axis is None else x.shape[axis]
        return np.take(x, indices % n, axis=axis)

    def take_along_axis(self, x, indices, axis=-1):
        return np.take_along_axis(x, indices % x.shape[axis], axis)

    def index_add_rows(self, n, index, values):
        return NumpyBackend.index_add_rows(self, n, index % n, values)

    def scatter_add_flat(self, n, index, values):
        return NumpyBackend.scatter_add_flat(self, n, index % n, values)

    @staticmethod
    def _wrap_key(shape, key):
        keys = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in keys):
            return key
        out = tuple(k % shape[d] if isinstance(k, np.ndarray) and k.dtype.kind in "iu" else k
                    for d, k in enumerate(keys))
        return out if isinstance(key, tuple) else out[0]

    def index_positions(self, shape, key):
        return NumpyBackend.index_positions(self, shape, self._wrap_key(shape, key))

    def getitem(self, x, key):
        return x[self._wrap_key(x.shape, key)]


@pytest.fixture
def dev(monkeypatch):
    be = SyncCountedNumpy()
    monkeypatch.setitem(_backend._BACKENDS, NAME, be)
    yield NAME
    be._pending.clear()


def _digits_step(device, opt_cls, **okw):
    xbp.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
    opt = opt_cls(model.parameters(), **okw)
    rng = np.random.default_rng(0)

    def step():
        x = xbp.tensor(rng.standard_normal((8, 16)).astype(np.float32), device=device)
        y = xbp.tensor(rng.integers(0, 10, 8), device=device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return model, step


@pytest.mark.parametrize("opt", [(xbp.optim.Adam, {"lr": 1e-2}), (xbp.optim.SGD, {"lr": 0.1, "momentum": 0.9})],
                         ids=["adam", "sgd-momentum"])
def test_digits_mlp_step_reads_nothing_and_matches_the_cpu(dev, opt):
    model, step = _digits_step(dev, opt[0], **opt[1])
    step()                                        # warm: optimizer state
    with count_host_reads(dev) as c:
        for _ in range(3):
            loss = step()
        assert c.reads == 0
        assert len(get_backend(dev)._pending) == 4          # one class check per step, none read
        value = loss.item()
    assert c.reads == 2                           # the pending checks (one transfer), then the loss
    assert not get_backend(dev)._pending
    # the deferred path (masked cross-entropy, no reads) computes what the cpu computes
    ref_model, ref_step = _digits_step("cpu", opt[0], **opt[1])
    for _ in range(4):
        ref_loss = ref_step()
    assert value == pytest.approx(ref_loss.item(), rel=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_step_reads_nothing(dev):
    xbp.manual_seed(0)
    emb, head = nn.Embedding(20, 4).to(dev), nn.Linear(4, 20).to(dev)
    opt = xbp.optim.SGD(list(emb.parameters()) + list(head.parameters()), lr=0.1)
    rng = np.random.default_rng(1)
    batches = [(xbp.tensor(rng.integers(0, 20, (3, 5)), device=dev), xbp.tensor(rng.integers(0, 20, 15), device=dev))
               for _ in range(3)]
    with count_host_reads(dev) as c:
        for ids, y in batches:
            loss = F.cross_entropy(head(emb(ids)).reshape(-1, 20), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert c.reads == 0
        xbp_value = loss.item()
    assert c.reads == 2
    assert np.isfinite(xbp_value)


def test_nll_loss_one_hot_gather_step_reads_nothing(dev):
    x = xbp.tensor(np.random.default_rng(2).standard_normal((6, 4)), device=dev, requires_grad=True)
    t = xbp.tensor([0, 3, 1, 2, 3, -100], device=dev)
    with count_host_reads(dev) as c:
        logp = F.log_softmax(x, 1)
        loss = F.nll_loss(logp, t)
        oh = F.one_hot(xbp.tensor([0, 3, 1], device=dev), 4)
        g = xbp.gather(logp, 1, xbp.tensor([[0], [1], [2], [3], [0], [1]], device=dev))
        (loss + g.sum() + (oh * 1.0).sum()).backward()
        assert c.reads == 0
        assert len(get_backend(dev)._pending) == 3
    # the same values as NumPy's immediate path (x's numbers, independent reference)
    xn = x.detach().numpy()
    lp = xn - xn.max(1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
    keep = [0, 1, 2, 3, 4]
    assert loss.item() == pytest.approx(-np.mean(lp[keep, [0, 3, 1, 2, 3]]), rel=1e-12)
    assert oh.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]


def test_a_bad_class_id_raises_at_the_next_item_naming_the_op(dev):
    x = xbp.randn(3, 4, device=dev, requires_grad=True)
    loss = F.cross_entropy(x, xbp.tensor([0, 7, 1], device=dev))     # no error yet: nothing was read
    loss.backward()
    with pytest.raises(IndexError, match=r"cross_entropy: target class index out of range: targets span \[0, 7\]"
                                         r".*4 classes; class indices must be in \[0, 3\]") as e:
        loss.item()
    assert "to raise at the op itself" in str(e.value)
    assert not get_backend(dev)._pending                  # reported once; the program can go on
    assert np.isfinite(F.cross_entropy(x, xbp.tensor([0, 3, 1], device=dev)).item())
    # an ignored target does not hide a bad one; a negative id is caught too
    F.cross_entropy(x, xbp.tensor([-100, -2, 1], device=dev))
    with pytest.raises(IndexError, match=r"targets span \[-2, 1\]"):
        get_backend(dev).synchronize()


@pytest.mark.parametrize("sync", ["item", "tolist", "numpy", "repr", "float", "cpu", "synchronize", "save"])
def test_every_natural_sync_reads_the_pending_checks(dev, sync, tmp_path):
    w = xbp.randn(5, 2, device=dev)
    out = F.embedding(xbp.tensor([1, 5], device=dev), w)           # id 5 of a 5-row table
    s = out.sum()
    reads = {"item": s.item, "tolist": out.tolist, "numpy": out.numpy, "repr": lambda: repr(out),
             "float": lambda: float(s), "cpu": out.cpu, "synchronize": get_backend(dev).synchronize,
             "save": lambda: xbp.save({"out": out}, str(tmp_path / "ckpt.pt"))}
    with pytest.raises(IndexError, match=r"embedding: ids span \[1, 5\], outside \[0, 5\) for a table of 5 rows"):
        reads[sync]()


def test_other_deferred_checks_name_their_op(dev):
    x = xbp.arange(6.0, device=dev).reshape(2, 3)
    cases = [
        (lambda: x[xbp.tensor([0, 2], device=dev)], r"index \(dim 0 of a tensor of shape \(2, 3\)\).*\[0, 2\]"),
        (lambda: xbp.gather(x, 1, xbp.tensor([[0], [3]], device=dev)), r"gather \(dim 1.*values span \[0, 3\]"),
        (lambda: xbp.index_select(x, 0, xbp.tensor([-1], device=dev)), r"values span \[-1, -1\], outside \[0, 2\)"),
        (lambda: F.one_hot(xbp.tensor([0, 4], device=dev), 3), r"one_hot: class index out of range \[0, 4\]"),
        (lambda: F.nll_loss(x, xbp.tensor([0, 3], device=dev)), r"nll_loss: target class index out of range"),
        (lambda: xbp.take(x, xbp.tensor([6], device=dev)), r"take \(input of 6 elements\)"),
    ]
    for op, match in cases:
        with count_host_reads(dev) as c:
            op()
        assert c.reads == 0, match
        with pytest.raises(IndexError, match=match):
            get_backend(dev).synchronize()


def test_probabilities_check_is_deferred_too_and_mixed_dtypes_read_once(dev):
    p = xbp.tensor([0.5, 1.5], device=dev)
    with count_host_reads(dev) as c:
        F.binary_cross_entropy(p, xbp.tensor([0.0, 1.0], device=dev))
        F.embedding(xbp.tensor([1], device=dev), xbp.randn(3, 2, device=dev))     # int64 check, valid
        assert c.reads == 0
        with pytest.raises(ValueError, match=r"probabilities in \[0, 1\], got values in \[0.5, 1.5\]"):
            get_backend(dev).synchronize()
    assert c.reads == 1                                   # float and int checks: one transfer
    nan = xbp.tensor([float("nan")], device=dev)
    F.binary_cross_entropy(nan, xbp.tensor([1.0], device=dev))
    with pytest.raises(ValueError, match="probabilities"):                  # NaN is not in [0, 1]
        get_backend(dev).synchronize()


def test_pending_checks_stay_bounded_without_reads(dev):
    be = get_backend(dev)
    w = xbp.randn(10, 2, device=dev)
    ids = xbp.tensor([[1, 2, 3]], device=dev)
    with count_host_reads(dev) as c:
        for _ in range(500):                              # a long loop that never reads a value
            F.embedding(ids, w)
        assert c.reads == 0                               # repeats merge on the device
        assert len(be._pending) < be.PENDING_CHECKS_LIMIT
        F.embedding(xbp.tensor([[1, 10, 3]], device=dev), w)             # the same check, a bad id
        for _ in range(100):
            F.embedding(ids, w)                           # merged with the bad one
        assert c.reads == 0
    with pytest.raises(IndexError, match=r"ids span \[1, 10\].*one of those \d+ calls"):
        be.synchronize()
    # many distinct checks (different table sizes) cannot merge: read at once past the limit
    with count_host_reads(dev) as c:
        for n in range(2, 2 + be.PENDING_CHECKS_LIMIT):
            F.embedding(xbp.tensor([0], device=dev), xbp.randn(n, 2, device=dev))
    assert 1 <= c.reads <= 2 and len(be._pending) <= be.PENDING_CHECKS_LIMIT // 2 + 1


def test_one_hot_without_num_classes_reads_once(dev):
    with count_host_reads(dev) as c:
        oh = F.one_hot(xbp.tensor([2, 0], device=dev))
    assert c.reads == 1 and oh.shape == (2, 3)


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_checks_stay_immediate_where_data_is_on_the_host(device):
    be = get_backend(device)
    assert not be.defers_checks
    with pytest.raises(IndexError, match=r"class index out of range: targets span \[0, 7\]"):
        F.cross_entropy(xbp.randn(2, 4, device=device), xbp.tensor([0, 7], device=device))
    with pytest.raises(ValueError, match=r"values in \[-1.0, 2.0\]"):
        check_range(be, be.asarray([-1.0, 2.0]), 0.0, 1.0, "op: values in [{lo}, {hi}]", ValueError)
    assert not be._pending


def test_count_host_reads_counts_the_strict_transfers():
    t = xbp.tensor([1.0, 2.0], device="strict")
    with count_host_reads("strict") as c:
        t.tolist()
        t.sum().item()
    assert c.reads == 2


def test_cuda_training_step_reads_nothing():
    # the real thing where CuPy is present (a GPU, or the emulation): 0 transfers in a step, and
    # a bad class id still raises, at the next read
    if not xbp.cuda_available():
        if REQUIRE_CUDA:
            pytest.fail("cuda: CuPy is not installed or sees no GPU")
        pytest.skip("cuda: CuPy is not installed or sees no GPU (run on a GPU machine or the emulation)")
    assert get_backend("cuda").defers_checks
    _, step = _digits_step("cuda", xbp.optim.Adam, lr=1e-3)
    step()
    with count_host_reads("cuda") as c:
        for _ in range(2):
            loss = step()
        assert c.reads == 0
        assert np.isfinite(loss.item())
    x = xbp.randn(3, 4, device="cuda")
    with raises_checked(IndexError, match=r"cross_entropy: target class index out of range.*\[0, 7\]"):
        F.cross_entropy(x, xbp.tensor([0, 7, 1], device="cuda")).item()
