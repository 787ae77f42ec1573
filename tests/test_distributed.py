"""xbp.distributed: the multi-process tests run under ``mpiexec`` in a subprocess (collectives
on 2 and 3 ranks, DDP on 2, a crashing rank); DistributedSampler is tested here in-process.
The MPI tests skip, with the reason, where mpi4py or mpiexec is missing (pip install mpi4py mpich)."""
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xbp.distributed.sampler import DistributedSampler

ROOT = Path(__file__).resolve().parent.parent
DIST_TESTS = ROOT / "tests" / "distributed"


def _mpi_skip_reason():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi: mpi4py is not installed (pip install mpi4py mpich, or pip install -e '.[mpi]')"
    if shutil.which("mpiexec") is None:
        return "mpi: no mpiexec on PATH (pip install mpich provides one)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_skip_reason() is not None, reason=_mpi_skip_reason() or "")


def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(DIST_TESTS), env.get("PYTHONPATH", "")]))
    return env


def _mpiexec(n, args, timeout):
    cmd = ["mpiexec", "-n", str(n), sys.executable] + args
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t0


PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mpi_plugin", "-x"]


def _pytest_under_mpi(n, files):
    p, _ = _mpiexec(n, PYTEST + [str(DIST_TESTS / f) for f in files], timeout=240)
    assert p.returncode == 0, f"mpiexec -n {n} pytest failed (rc {p.returncode}):\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}"
    assert " passed" in p.stdout


@needs_mpi
def test_collectives_and_ddp_on_2_ranks():
    _pytest_under_mpi(2, ["mpi_collectives.py", "mpi_ddp.py", "mpi_ddp_buckets.py"])


@needs_mpi
def test_collectives_on_3_ranks():
    _pytest_under_mpi(3, ["mpi_collectives.py"])


def _nccl_skip_reason():
    from xbp.distributed import _nccl
    return _mpi_skip_reason() or _nccl.unavailable_reason() or None


@pytest.mark.skipif(_nccl_skip_reason() is not None, reason=_nccl_skip_reason() or "")
def test_nccl_cuda_on_1_rank():   # ('cuda' in the name: ci/gpu runs it in its cuda stage)
    """On a GPU machine: the cuda cases (an NCCL communicator of one rank) of both suites."""
    p, _ = _mpiexec(1, PYTEST + ["-k", "cuda", str(DIST_TESTS / "mpi_collectives.py"), str(DIST_TESTS / "mpi_ddp.py")],
                    timeout=240)
    assert p.returncode == 0, f"rc {p.returncode}:\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}"
    assert " passed" in p.stdout


@needs_mpi
def test_a_crashing_rank_ends_the_job():
    p, took = _mpiexec(2, [str(DIST_TESTS / "crash_rank.py")], timeout=60)
    assert p.returncode != 0
    assert took < 30, f"the job took {took:.1f} s to end after a rank crashed"
    assert "rank 1 of 2 failed" in p.stderr and "deliberate failure on rank 1" in p.stderr
    assert "got past the collective" not in p.stderr


# --- DistributedSampler (no MPI needed) --------------------------------------------------------
@pytest.mark.parametrize("n,replicas", [(10, 3), (9, 3), (2, 4), (17, 2), (1, 1)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_sampler_covers_with_padding(n, replicas, shuffle):
    parts = [list(DistributedSampler(range(n), replicas, r, shuffle=shuffle, seed=3)) for r in range(replicas)]
    size = -(-n // replicas)                       # ceil: PyTorch pads by repeating the start
    assert all(len(p) == size for p in parts)
    assert all(len(s) == size for s in (DistributedSampler(range(n), replicas, r) for r in range(replicas)))
    everything = sorted(i for p in parts for i in p)
    assert set(everything) == set(range(n))        # covering
    assert len(everything) == size * replicas
    if n % replicas == 0:                          # no padding: disjoint
        assert len(set(everything)) == n
    if not shuffle:                                # rank r takes r, r + R, r + 2R, ... of the padded order
        padded = (list(range(n)) * (size * replicas // n + 1))[:size * replicas]
        for r in range(replicas):
            assert parts[r] == padded[r::replicas]


@pytest.mark.parametrize("n,replicas", [(10, 3), (9, 3), (11, 4)])
def test_sampler_drop_last_is_disjoint(n, replicas):
    parts = [list(DistributedSampler(range(n), replicas, r, drop_last=True)) for r in range(replicas)]
    assert all(len(p) == n // replicas for p in parts)
    flat = [i for p in parts for i in p]
    assert len(set(flat)) == len(flat) == (n // replicas) * replicas


def test_sampler_is_epoch_seeded():
    a = DistributedSampler(range(50), 2, 0, seed=1)
    b = DistributedSampler(range(50), 2, 0, seed=1)
    e0 = list(a)
    assert list(b) == e0                           # same seed and epoch: same order on every process
    a.set_epoch(1)
    e1 = list(a)
    assert e1 != e0                                # a new permutation each epoch
    b.set_epoch(1)
    assert list(b) == e1
    other = DistributedSampler(range(50), 2, 1, seed=1)
    other.set_epoch(1)
    assert not set(e1) & set(other)               # disjoint across ranks within the epoch
    assert list(DistributedSampler(range(50), 2, 0, seed=2)) != e0
    assert list(DistributedSampler(range(50), 2, 0, shuffle=False)) == list(range(0, 50, 2))


def test_sampler_matches_pytorch_without_shuffle():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler
    for n, R, drop in [(10, 3, False), (10, 3, True), (2, 4, False), (13, 5, False)]:
        for r in range(R):
            ours = list(DistributedSampler(range(n), R, r, shuffle=False, drop_last=drop))
            theirs = list(TorchSampler(range(n), R, r, shuffle=False, drop_last=drop))
            assert ours == theirs, (n, R, r, drop)
            assert len(DistributedSampler(range(n), R, r, drop_last=drop)) == len(TorchSampler(range(n), R, r, drop_last=drop))
    del torch


def test_sampler_refuses_bad_arguments():
    with pytest.raises(ValueError, match="invalid rank 3"):
        DistributedSampler(range(4), 3, 3)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(range(4), 0, 0)
    with pytest.raises(TypeError, match="rank"):
        DistributedSampler(range(4), 2, 1.0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(4))


def test_sampler_indices_array():
    s = DistributedSampler(range(7), 2, 1, shuffle=False)
    idx = s.indices()
    assert idx.dtype == np.int64 and idx.tolist() == [1, 3, 5, 0]


def test_package_imports_without_mpi4py_loaded():
    code = ("import sys, xbp, xbp.distributed, xbp.distributed.sampler, xbp.nn.parallel; "
            "assert 'mpi4py' not in sys.modules; assert not xbp.distributed.is_initialized(); "
            "import xbp.distributed as d\n"
            "try:\n    d.get_rank()\nexcept RuntimeError as e:\n    assert 'init_process_group' in str(e)\n"
            "else:\n    raise SystemExit('get_rank without a group did not raise')")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


@needs_mpi
@pytest.mark.slow
def test_train_digits_ddp_example_on_2_ranks(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    p, _ = _mpiexec(2, [str(ROOT / "examples" / "train_digits_ddp.py"), "--epochs", "2", "--out", str(tmp_path)],
                    timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.count("epoch   2/2") == 1              # rank 0 alone logs
    assert "weights identical on all 2 ranks: True" in p.stdout
    import xbp
    state = xbp.load(str(tmp_path / "digits_mlp_ddp.safetensors"))
    assert state["world_size"] == 2 and set(state["model"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    acc = float(p.stdout.rsplit("final test accuracy:", 1)[1].split()[0])
    assert acc > 0.85


# --- NCCL checks that need no GPU -------------------------------------------------------------
def test_nccl_version_rule_for_native_avg():
    from xbp.distributed._nccl import version_at_least
    # ncclGetVersion codes: 2.8.4 (old encoding), 2.9.6, 2.10.3, 2.18.3, 2.21.5 (new encoding)
    assert not version_at_least(2804, 2, 10)
    assert not version_at_least(20906, 2, 10)
    assert version_at_least(21003, 2, 10)
    assert version_at_least(21803, 2, 10)
    assert version_at_least(22105, 2, 10)
    assert version_at_least(30000, 2, 10)


def test_nccl_refuses_a_tensor_on_another_gpu():
    from types import SimpleNamespace
    from xbp.distributed._nccl import NCCLComm
    comm = NCCLComm()
    comm.device_id = 0

    def fake(gpu):
        xp = SimpleNamespace(kind="cupy", native_device=SimpleNamespace(id=gpu))
        return SimpleNamespace(xp=xp, device=f"cuda:{gpu}", array=object())
    ok = fake(0)
    assert comm._array(ok, "all_reduce") is ok.array
    with pytest.raises(ValueError, match=r"all_reduce: the tensor is on cuda:1 but this rank's NCCL communicator "
                                         r"is on cuda:0.*CUDA_VISIBLE_DEVICES"):
        comm._array(fake(1), "all_reduce")
    with pytest.raises(TypeError, match="takes cuda tensors"):
        comm._array(SimpleNamespace(xp=SimpleNamespace(kind="numpy"), device="cpu"), "all_reduce")


def test_nccl_reports_a_libnccl_that_cupy_did_not_load(monkeypatch, tmp_path):
    """cupy/cuda/nccl.py (CuPy v14.2.0) catches the ImportError of its NCCL extension (libnccl
    not found) and sets ``available = False``: ``from cupy.cuda import nccl`` succeeds, without
    NcclCommunicator. The reason must say so (else the NCCL tests run and fail with an
    AttributeError, and ci/gpu's preflight claims NCCL is available)."""
    import importlib.machinery
    import sys
    import types
    import xbp._backend
    from xbp.distributed import _nccl
    cp = types.ModuleType("cupy")
    cp.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    cu = types.ModuleType("cupy.cuda")
    cu.nccl = types.ModuleType("cupy.cuda.nccl")
    cu.nccl.available = False                      # what cupy/cuda/nccl.py leaves when the import failed
    cp.cuda = cu
    for name, mod in {"cupy": cp, "cupy.cuda": cu, "cupy.cuda.nccl": cu.nccl,
                      "cupy_backends.cuda.libs.nccl": None}.items():   # None: importing it raises ImportError
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(xbp._backend, "cuda_available", lambda: True)
    why = _nccl.unavailable_reason()
    assert why.startswith("nccl: CuPy did not load libnccl (ModuleNotFoundError: ") and "nvidia-nccl" in why, why
    assert _nccl.available() is False
    lib = tmp_path / "nvidia" / "nccl" / "lib"     # the nvidia-nccl-cu13 wheel's layout (PyTorch installs it)
    lib.mkdir(parents=True)
    (lib / "libnccl.so.2").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("nvidia", "nvidia.nccl"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert f"LD_LIBRARY_PATH={lib}" in _nccl.unavailable_reason()
    cu.nccl.available = True                       # the import worked
    assert _nccl.unavailable_reason() == "" and _nccl.available() is True


class _DevArr(np.ndarray):
    """A host array standing in for a CuPy array: ``.data.ptr`` as CuPy's, and every pointer
    handed out is remembered (weakly) so the test can see which arrays NCCL was given."""
    handed: dict = {}

    @property
    def data(self):
        import types
        import weakref
        _DevArr.handed[self.ctypes.data] = weakref.ref(self)
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _nccl_on_stand_ins():
    """An NCCLComm over stand-ins: the NcclCommunicator methods with CuPy v14.2.0's signatures
    (cupy_backends/cuda/libs/nccl.pyx: allReduce l.470, reduce l.479, bcast l.504,
    reduceScatter l.512, allGather l.521, send l.529, recv l.538: pointers, count, datatype,
    [op], [root/peer], stream pointer), a comm stream whose event fires when the test says, and
    a `cupy` whose ascontiguousarray copies (as CuPy does for a non-contiguous input)."""
    import types
    from xbp.distributed._nccl import NCCLComm
    st = types.SimpleNamespace(fired=False, calls=[])
    comm = NCCLComm()
    comm.rank, comm.size, comm.device_id, comm.timeout_s = 0, 2, 0, 5.0
    comm.types = {np.dtype(np.float32): 7, np.dtype(np.int32): 2}
    comm.ops = {"sum": 0, "product": 1, "max": 2, "min": 3}
    comm.native_avg = None
    comm.stream = types.SimpleNamespace(ptr=55, wait_event=lambda e: None)

    class Event:
        def __init__(self, block=False, disable_timing=False, interprocess=False):
            pass

        def record(self, stream=None):
            pass

        @property
        def done(self):
            return st.fired

    class Device:
        def __init__(self, i=None):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *e):
            return False
    dev = (lambda a: np.array(a).view(_DevArr))
    comm.cupy = types.SimpleNamespace(
        cuda=types.SimpleNamespace(Event=Event, Device=Device, get_current_stream=lambda: "current"),
        ascontiguousarray=lambda a: dev(a), zeros=lambda n, dt: dev(np.zeros(n, dt)),
        empty=lambda shape, dt: dev(np.empty(shape, dt)), empty_like=lambda a: dev(np.empty_like(a)),
        reshape=lambda a, shape: a.reshape(shape))

    def rec(name, nptr):
        def call(*args):
            assert args[-1] == 55, "NCCL runs on the comm stream"
            st.calls.append((name, args[:nptr]))
        return call
    comm.comm = types.SimpleNamespace(allReduce=rec("allReduce", 2), reduce=rec("reduce", 2), bcast=rec("bcast", 1),
                                      reduceScatter=rec("reduceScatter", 2), allGather=rec("allGather", 2),
                                      send=rec("send", 1), recv=rec("recv", 1), abort=lambda: None)
    return comm, st


def _dev_tensor(a):
    import types
    xp = types.SimpleNamespace(kind="cupy", native_device=types.SimpleNamespace(id=0),
                               setitem=lambda x, k, v: x.__setitem__(k, v))
    arr = np.asarray(a).view(_DevArr)
    return types.SimpleNamespace(xp=xp, device="cuda:0", array=arr, shape=arr.shape, dtype=arr.dtype, _version=[0])


@pytest.mark.parametrize("op", ["barrier", "all_reduce", "reduce", "broadcast", "all_gather_flat",
                                "reduce_scatter_flat", "send", "recv"])
def test_nccl_keeps_its_buffers_alive_until_the_collective_is_done(op):
    """Every array whose pointer NCCL got stays referenced until the comm stream's event has
    fired, then is let go. CuPy's pool (cupy/cuda/memory.pyx v14.2.0, free chunks kept per
    stream arena) hands a freed block to the next allocation on the current stream without
    waiting for the comm stream, so a temporary freed at return (here every buffer is one: the
    stand-in's ascontiguousarray copies) could be overwritten while NCCL reads or writes it."""
    import gc
    comm, st = _nccl_on_stand_ins()
    t = _dev_tensor(np.arange(4, dtype=np.float32))
    out = _dev_tensor(np.zeros(8 if op == "all_gather_flat" else 2, np.float32))
    _DevArr.handed.clear()
    work = {"barrier": lambda: comm.barrier(True), "all_reduce": lambda: comm.all_reduce(t, "sum", True),
            "reduce": lambda: comm.reduce(t, "sum", 0, True), "broadcast": lambda: comm.broadcast(t, 0, True),
            "all_gather_flat": lambda: comm.all_gather_flat(out, t, True),
            "reduce_scatter_flat": lambda: comm.reduce_scatter_flat(out, t, "sum", True),
            "send": lambda: comm.send(t, 1, 0), "recv": lambda: comm.recv(t, 1, 0)}[op]()
    ptrs = {p for _, args in st.calls for p in args}
    assert ptrs, st.calls
    refs = [_DevArr.handed[p] for p in ptrs]
    gc.collect()
    assert all(r() is not None for r in refs), f"{op}: a buffer NCCL still uses was freed"
    st.fired = True
    work.wait()
    gc.collect()
    assert all(r() is None for r in refs), f"{op}: buffers kept after the collective finished"
