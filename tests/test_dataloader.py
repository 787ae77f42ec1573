"""xbp.data.DataLoader: PyTorch's argument rules, automatic batching on/off, worker processes
(in order, seeded, sharding of iterable datasets, errors with the worker's traceback, timeout,
persistent workers, no processes left behind after an exception, `del`, Ctrl-C or a killed main
process), and pin_memory. Worker tests use tiny datasets and generous waits (a loaded 2-core
machine)."""
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import xbp
from xbp.data import (
    BatchSampler, DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler, TensorDataset,
    get_worker_info,
)
from xbp._backend import get_backend
from conftest import to_np

pytestmark = pytest.mark.timeout(180)          # a stuck worker must fail the test, not hang the suite
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Info(Dataset):
    """Samples say who made them: index, worker pid, worker id, worker seed, np.random draw."""

    def __init__(self, n=12):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        w = get_worker_info()
        return {"i": i, "x": np.full(2, i, dtype=np.float32), "pid": os.getpid(),
                "wid": -1 if w is None else w.id, "seed": -1 if w is None else w.seed,
                "np": float(np.random.random())}


class Fails(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise KeyError(f"sample {i} is missing from the table")
        return i


class Slow(Dataset):
    def __init__(self, delay):
        self.delay = delay

    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(self.delay)
        return i


class Crashes(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        os._exit(3)


class Shards(IterableDataset):
    """0..n-1 split between workers by worker id (PyTorch's documented pattern)."""

    def __init__(self, n, shard=True):
        self.n, self.shard = n, shard

    def __iter__(self):
        w = get_worker_info()
        if w is None or not self.shard:
            return iter(range(self.n))
        return iter(range(w.id, self.n, w.num_workers))

    def __len__(self):
        return self.n


def _gone(pid, wait=10.0):
    """True once process `pid` no longer runs (gone, or a zombie nobody reaps yet)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _worker_pids_left():
    return [p.pid for p in mp.active_children() if p.name.startswith("xbp-dataloader-worker")]


# --- arguments ------------------------------------------------------------------------------------
CONFLICTS = [
    (dict(num_workers=-1), "num_workers option should be non-negative"),
    (dict(timeout=-1), "timeout option should be non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified in multiprocessing"),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    (dict(sampler=SequentialSampler(range(6)), shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=BatchSampler(range(6), 2, False), batch_size=2),
     "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=BatchSampler(range(6), 2, False), shuffle=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=BatchSampler(range(6), 2, False), drop_last=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=BatchSampler(range(6), 2, False), sampler=SequentialSampler(range(6))),
     "batch_sampler option is mutually exclusive"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
]


@pytest.mark.parametrize("kwargs,msg", CONFLICTS)
def test_argument_conflicts_raise_like_torch(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        DataLoader(list(range(6)), **kwargs)
    torch = pytest.importorskip("torch")
    tk = dict(kwargs)
    for k in ("sampler", "batch_sampler"):
        if k in tk:
            tk[k] = (torch.utils.data.SequentialSampler(range(6)) if k == "sampler"
                     else torch.utils.data.BatchSampler(range(6), 2, False))
    with pytest.raises(ValueError, match=msg.split(" option")[0]):
        torch.utils.data.DataLoader(list(range(6)), **tk)


@pytest.mark.parametrize("kwargs", [dict(shuffle=True), dict(sampler=[0, 1]), dict(batch_sampler=[[0, 1]])])
def test_iterable_dataset_refuses_shuffle_and_samplers(kwargs):
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified"):
        DataLoader(Shards(4), **kwargs)


def test_attributes_are_locked_after_init():
    dl = DataLoader(list(range(4)), batch_size=2)
    for name in ("batch_size", "sampler", "batch_sampler", "drop_last", "dataset", "persistent_workers"):
        with pytest.raises(ValueError, match=f"{name} attribute should not be set after DataLoader is initialized"):
            setattr(dl, name, None)
    dl.num_workers = 0                    # others can change, as in PyTorch


def test_lengths_samplers_and_collate_fn():
    dl = DataLoader(list(range(10)), batch_size=4)
    assert len(dl) == 3 and [b.tolist() for b in dl] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(DataLoader(list(range(10)), batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(Shards(10), batch_size=4)) == 3
    assert len(DataLoader(Shards(10), batch_size=4, drop_last=True)) == 2
    # batch_size=None: samples one at a time through default_convert (a tuple becomes a list)
    assert list(DataLoader([(np.float64(1.0), 2)], batch_size=None))[0][1] == 2
    bs = BatchSampler(SequentialSampler(range(5)), 2, False)
    assert [b.tolist() for b in DataLoader(list(range(10, 15)), batch_sampler=bs)] == [[10, 11], [12, 13], [14]]
    assert [b.tolist() for b in DataLoader(list(range(5)), sampler=[4, 3, 2], batch_size=2)] == [[4, 3], [2]]
    assert list(DataLoader(list(range(5)), batch_size=2, collate_fn=list)) == [[0, 1], [2, 3], [4]]
    assert [b.tolist() for b in DataLoader(Shards(5), batch_size=2, drop_last=True)] == [[0, 1], [2, 3]]
    dl = DataLoader(list(range(6)), batch_size=6, shuffle=True, generator=np.random.default_rng(0))
    assert isinstance(dl.sampler, RandomSampler) and sorted(next(iter(dl)).tolist()) == list(range(6))


def test_getitems_is_called_once_per_batch():
    class Batched(Dataset):
        calls = []

        def __len__(self):
            return 5

        def __getitem__(self, i):
            raise AssertionError("per-sample indexing")

        def __getitems__(self, idx):
            self.calls.append(list(idx))
            return [i * 10 for i in idx]

    out = [b.tolist() for b in DataLoader(Batched(), batch_size=3)]
    assert out == [[0, 10, 20], [30, 40]] and Batched.calls == [[0, 1, 2], [3, 4]]


# --- workers ----------------------------------------------------------------------------------------
def test_workers_give_the_same_batches_in_order():
    ref = list(DataLoader(Info(11), batch_size=3))
    got = list(DataLoader(Info(11), batch_size=3, num_workers=2))
    assert [b["i"].tolist() for b in got] == [b["i"].tolist() for b in ref] == \
        [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(to_np(a["x"]), to_np(b["x"]))
    pids = {int(p) for b in got for p in b["pid"]}
    assert len(pids) == 2 and os.getpid() not in pids                  # two real worker processes
    assert [int(b["wid"][0]) for b in got] == [0, 1, 0, 1]              # tasks go round-robin
    assert set(ref[0]["wid"].tolist()) == {-1} and get_worker_info() is None
    assert _worker_pids_left() == []                                     # shut down at the end of the epoch


def test_shuffled_tensor_dataset_with_workers_matches_in_process():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    ds = TensorDataset(xbp.tensor(X), xbp.tensor(np.arange(20)))
    a = [to_np(y).tolist() for _, y in DataLoader(ds, batch_size=6, shuffle=True, seed=4)]
    b = [(to_np(x), to_np(y)) for x, y in DataLoader(ds, batch_size=6, shuffle=True, seed=4, num_workers=2)]
    assert [y.tolist() for _, y in b] == a
    for x, y in b:
        np.testing.assert_array_equal(x, X[y])


def test_worker_seeds_and_worker_init_fn():
    def init(worker_id):
        info = get_worker_info()
        assert info.id == worker_id and info.num_workers == 3 and isinstance(info.dataset, Info)
        np.random.seed(1000 + worker_id)           # a worker_init_fn runs after xbp's seeding

    def run(seed, init_fn=None):
        out = list(DataLoader(Info(6), batch_size=1, num_workers=3, generator=np.random.default_rng(seed),
                              worker_init_fn=init_fn))
        return [int(b["seed"][0]) for b in out], [float(b["np"][0]) for b in out]

    seeds, draws = run(0)
    base = seeds[0]
    assert seeds == [base, base + 1, base + 2] * 2                      # base_seed + worker id
    assert run(0) == (seeds, draws)                                      # same generator, same seeds
    assert run(1)[0] != seeds
    assert len({draws[0], draws[1], draws[2]}) == 3                      # NumPy's global RNG differs per worker
    _, init_draws = run(0, init)
    assert init_draws[:3] == [float(np.random.RandomState(1000 + w).random_sample()) for w in range(3)]


def test_iterable_dataset_sharded_by_worker_info():
    got = [b.tolist() for b in DataLoader(Shards(10), batch_size=3, num_workers=2)]
    assert got == [[0, 2, 4], [1, 3, 5], [6, 8], [7, 9]]
    assert sorted(x for b in got for x in b) == list(range(10))
    # without sharding every worker yields the whole stream (PyTorch's documented behaviour)
    dup = [x for b in DataLoader(Shards(4, shard=False), batch_size=2, num_workers=2) for x in b.tolist()]
    assert sorted(dup) == [0, 0, 1, 1, 2, 2, 3, 3]
    dropped = [b.tolist() for b in DataLoader(Shards(10), batch_size=3, num_workers=2, drop_last=True)]
    assert dropped == [[0, 2, 4], [1, 3, 5]]
    assert _worker_pids_left() == []


def test_worker_error_is_reraised_with_the_worker_traceback():
    dl = DataLoader(Fails(), batch_size=2, num_workers=2)
    with pytest.raises(KeyError) as ei:
        list(dl)
    msg = str(ei.value)
    assert "Caught KeyError in DataLoader worker process 0" in msg
    assert "Traceback (most recent call last)" in msg and "sample 5 is missing from the table" in msg
    assert "test_dataloader.py" in msg and "raise KeyError" in msg       # the worker's own frames
    del ei
    assert _worker_pids_left() == []


def test_no_worker_left_after_an_exception_in_the_loop():
    pids = set()
    with pytest.raises(ZeroDivisionError):
        for b in DataLoader(Info(12), batch_size=2, num_workers=2):
            pids.update(int(p) for p in b["pid"])
            if len(pids) == 2:
                1 / 0
    assert len(pids) == 2 and all(_gone(p) for p in pids) and _worker_pids_left() == []


def test_keyboard_interrupt_in_the_loop_and_del_leave_no_workers():
    dl = DataLoader(Info(12), batch_size=2, num_workers=2, persistent_workers=True)
    pids = set()
    try:
        for b in dl:
            pids.update(int(p) for p in b["pid"])
            if len(pids) == 2:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert not any(_gone(p, wait=0.2) for p in pids)       # persistent: still there for the next epoch
    assert [b["i"].tolist() for b in dl][0] == [0, 1]       # the next epoch starts afresh
    del dl, b
    assert all(_gone(p) for p in pids) and _worker_pids_left() == []


def test_persistent_workers_keep_their_processes_across_epochs():
    dl = DataLoader(Info(8), batch_size=2, num_workers=2, persistent_workers=True)
    epochs = [list(dl) for _ in range(3)]
    for e in epochs:
        assert [b["i"].tolist() for b in e] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    pid_sets = [{int(p) for b in e for p in b["pid"]} for e in epochs]
    assert pid_sets[0] == pid_sets[1] == pid_sets[2] and len(pid_sets[0]) == 2
    it = iter(dl)
    next(it)                                                 # abandon an epoch midway
    assert [b["i"].tolist() for b in dl] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    sh = DataLoader(Shards(6), batch_size=2, num_workers=2, persistent_workers=True)
    assert [b.tolist() for b in sh] == [b.tolist() for b in sh] == [[0, 2], [1, 3], [4], [5]]
    del dl, it, sh
    assert all(_gone(p) for p in pid_sets[0])


def test_timeout_is_honoured():
    dl = DataLoader(Slow(20.0), batch_size=1, num_workers=1, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.5 seconds"):
        next(iter(dl))
    assert time.monotonic() - t0 < 8.0                      # not the 20 s the sample takes (slack for load)
    assert _worker_pids_left() == []
    assert [b.tolist() for b in DataLoader(Slow(0.01), batch_size=2, num_workers=1, timeout=30)] == [[0, 1], [2, 3]]


def test_a_worker_that_dies_is_reported():
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid \d+ exit code 3\) exited unexpectedly"):
        list(DataLoader(Crashes(), batch_size=1, num_workers=1))
    assert _worker_pids_left() == []


def test_a_batch_that_cannot_be_pickled_is_an_error_not_a_hang():
    with pytest.raises(Exception, match="pickling the batch"):
        list(DataLoader(list(range(2)), batch_size=1, num_workers=1, collate_fn=lambda b: [lambda: b]))


def test_workers_with_a_target_device(device):
    X = np.arange(24, dtype=np.float32).reshape(12, 2)
    ds = TensorDataset(xbp.tensor(X), xbp.tensor(np.arange(12)))
    got = list(DataLoader(ds, batch_size=5, num_workers=2, device=device))
    assert all(x.device == get_backend(device).device for x, _ in got)
    np.testing.assert_array_equal(np.concatenate([to_np(x) for x, _ in got]), X)


_SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import numpy as np
    from xbp.data import DataLoader, Dataset

    class Pids(Dataset):
        def __len__(self):
            return 10 ** 6
        def __getitem__(self, i):
            time.sleep(0.01)
            return os.getpid()

    LOADER = DataLoader(Pids(), batch_size=2, num_workers=2, persistent_workers=True)
    ITER = iter(LOADER)                  # module globals: still alive when the interpreter exits
    pids = set()
    for b in ITER:
        pids.update(b.tolist())
        if len(pids) == 2:
            print(" ".join(map(str, sorted(pids))), flush=True)
            if {mode!r} == "exit":
                sys.exit(0)
            # short sleeps: a SIGINT that lands just before the sleep's system call starts does
            # not interrupt it (CPython checks for signals between bytecodes), so one long sleep
            # would hold the KeyboardInterrupt for its whole length
            for _ in range(600):
                time.sleep(0.1)
""")


@pytest.mark.parametrize("mode", ["ctrl-c", "kill", "exit"])
def test_ctrl_c_a_killed_main_process_or_exit_leave_no_workers(mode):
    """Ctrl-C goes to the whole process group (the workers ignore it; the main process shuts them
    down); after SIGKILL of the main process the workers notice their parent is gone and exit; at
    a normal exit with a live iterator the exit handler shuts them down."""
    p = subprocess.Popen([sys.executable, "-c", _SCRIPT.format(root=ROOT, mode=mode)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = p.stdout.readline()
        pids = [int(x) for x in line.split()]
        assert len(pids) == 2, (line, p.stderr.read() if p.poll() is not None else "")
        if mode == "ctrl-c":
            os.killpg(p.pid, signal.SIGINT)
        elif mode == "kill":
            p.kill()
        # an uncaught KeyboardInterrupt ends Python by SIGINT (exit status -2)
        assert p.wait(timeout=30) == {"ctrl-c": -signal.SIGINT, "kill": -signal.SIGKILL, "exit": 0}[mode]
        assert all(_gone(pid, wait=15.0) for pid in pids)
        if mode == "ctrl-c":
            assert "KeyboardInterrupt" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# --- pin_memory ---------------------------------------------------------------------------------------
def test_pin_memory_is_a_no_op_without_a_gpu(monkeypatch):
    monkeypatch.setattr("xbp.data.dataloader.cuda_available", lambda: False)
    with pytest.warns(UserWarning, match="pin_memory"):
        dl = DataLoader(list(range(4)), batch_size=2, pin_memory=True)
    assert [b.tolist() for b in dl] == [[0, 1], [2, 3]]


def test_pin_memory_copies_host_batches_into_pinned_buffers(monkeypatch):
    """With a GPU present and no target device, host batches come back over memory from CuPy's
    pinned allocator (here recorded by a stand-in for cupyx.empty_pinned)."""
    buffers = []

    def fake_pinned(shape, dtype):
        buffers.append(np.empty(shape, dtype))
        return buffers[-1]

    monkeypatch.setattr("xbp.data.dataloader.cuda_available", lambda: True)
    monkeypatch.setattr("xbp._cuda_runtime.pinned_empty", fake_pinned)
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    dl = DataLoader(TensorDataset(xbp.tensor(X), xbp.tensor(np.arange(4))), batch_size=3, pin_memory=True)
    batches = list(dl)
    assert len(buffers) == 4                                 # two tensors per batch, two batches
    assert batches[0][0].array is buffers[0] and batches[1][1].array is buffers[3]
    np.testing.assert_array_equal(to_np(batches[0][0]), X[:3])
    # a CPU target device: nothing to pin
    buffers.clear()
    list(DataLoader(TensorDataset(xbp.tensor(X)), batch_size=2, pin_memory=True, device="cpu"))
    assert buffers == []


class UnevenShards(IterableDataset):
    """Worker w yields w*100 .. w*100 + sizes[w]-1: streams of different lengths."""

    def __init__(self, sizes, info):
        self.sizes, self.info = sizes, info

    def __iter__(self):
        w = self.info()
        wid = 0 if w is None else w.id
        return iter(range(wid * 100, wid * 100 + self.sizes[wid]))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")      # torch's note on 3 workers on 2 cores
@pytest.mark.parametrize("sizes,bs,drop_last", [((5, 2), 2, False), ((1, 6, 3), 2, False), ((4, 0), 3, True),
                                                ((3, 7), 2, True)])
def test_uneven_iterable_shards_arrive_as_torch_orders_them(sizes, bs, drop_last):
    ours = [b.tolist() for b in DataLoader(UnevenShards(sizes, get_worker_info), batch_size=bs,
                                           num_workers=len(sizes), drop_last=drop_last)]
    flat = sorted(x for b in ours for x in b)
    full = sorted(x for w, n in enumerate(sizes) for x in range(w * 100, w * 100 + n))
    assert flat == full if not drop_last else set(flat) <= set(full)
    torch = pytest.importorskip("torch")
    TorchUneven = type("TorchUneven", (torch.utils.data.IterableDataset,), {
        "__init__": UnevenShards.__init__, "__iter__": UnevenShards.__iter__})
    theirs = [b.tolist() for b in torch.utils.data.DataLoader(
        TorchUneven(sizes, torch.utils.data.get_worker_info), batch_size=bs, num_workers=len(sizes),
        drop_last=drop_last)]
    assert ours == theirs
