"""ci/gpu stage 0b: the CuPy behaviours xbp's cuda path relies on that no CPU test could settle (the
CuPy emulation models none of them), one line each, right after the preflight:

    risk NAME: ok|FAILED|UNEXPECTED|skipped (seconds): what was seen

Informative only: it always exits 0, and every check catches its own failure, so a surprise here
is one line, not a crashed run. xbp.compile (the most new kernels to compile) and NCCL (the
slowest, and the one that could hang) run last, and stage 1's tests cover both again; the stage's
timeout (ci/gpu) bounds the whole. Each check names the CuPy v14.2.0 source it probes.

    python ci/gpu_risks.py          # on the GPU machine (ci/gpu runs it)
"""
from __future__ import annotations

import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def say(name, verdict, t0, detail):
    detail = " ".join(str(detail).split())
    print(f"risk {name}: {verdict} ({time.perf_counter() - t0:.1f} s): {detail[:300]}", flush=True)


@check
def graph_api(cp, xbp):
    """xbp.cuda.graph with its default (relaxed) mode: a matmul (xbp/_cublas.py's direct GEMM)
    and a relu captured into a new private pool, replayed on new input."""
    a = xbp.randn(32, 16, device="cuda")
    w = xbp.randn(8, 16, device="cuda")
    (a @ w.T).relu()                             # warm-up: kernels compiled outside the capture
    g = xbp.cuda.CUDAGraph()
    with xbp.cuda.graph(g):
        out = (a @ w.T).relu()
    a.copy_(xbp.randn(32, 16, device="cuda"))
    g.replay()
    xbp.cuda.synchronize()
    err = float(np.abs(out.numpy() - np.maximum(a.numpy() @ w.numpy().T, 0)).max())
    return ("ok" if err < 1e-3 else "FAILED"), f"replay == NumPy on the new input (max err {err:.1e})"


@check
def cublas(cp, xbp):
    """xbp/_cublas.py outside capture: the libcublas it loaded, Sgemm/Dgemm/SgemmStridedBatched
    against cupy.matmul, and the handle's pointer mode (host, where alpha/beta live)."""
    from xbp import _cublas
    lib = _cublas._library()
    h = _cublas.handle()
    mode = cp.cuda.cublas.getPointerMode(h)      # cupy_backends/cuda/libs/cublas.pyx getPointerMode
    errs = []
    for dt, sa, sb in ((np.float32, (5, 7), (7, 3)), (np.float64, (5, 7), (7, 3)), (np.float32, (4, 5, 7), (7, 3))):
        a = cp.asarray(np.random.RandomState(0).randn(*sa).astype(dt))
        b = cp.asarray(np.random.RandomState(1).randn(*sb).astype(dt))
        ref = cp.matmul(a, b)                    # CuPy's own cuBLAS call (resets the handle's stream)
        _cublas.set_stream(cp.cuda.get_current_stream().ptr)
        got = _cublas.matmul(cp, a, b.T.copy().T)     # b as a transposed view: op = T
        errs.append(float(cp.abs(got - ref).max()))
    ok = max(errs) < 1e-4 and mode == 0
    return ("ok" if ok else "FAILED"), f"{lib._name}; pointer mode {mode} (0 = host); max err vs cupy.matmul " \
        f"{', '.join(f'{e:.1e}' for e in errs)} (S, D, S batched)"


@check
def cupy_refusals_under_capture(cp, xbp):
    """CuPy refuses cuBLAS during capture (cupy_backends/cuda/libs/cublas.pyx setStream, l.648),
    hence xbp/_cublas.py; and a D2H copy (cupy/cuda/memory.pyx, copy_to_host*, l.688-720)."""
    s = cp.cuda.Stream(non_blocking=True)
    a = cp.ones((4, 4), dtype=cp.float32)
    seen = []
    for what, fn in (("cupy.matmul", lambda: cp.matmul(a, a)), ("a.get()", lambda: a.get())):
        pool = cp.cuda.MemoryPool()
        with s, cp.cuda.using_allocator(pool.malloc):
            s.begin_capture()
            try:
                fn()
                seen.append(f"{what} allowed")
            except Exception as e:  # noqa: BLE001
                seen.append(f"{what} refused ({type(e).__name__})")
            finally:
                try:
                    s.end_capture()
                except Exception:  # noqa: BLE001
                    pass
    ok = all("refused" in x for x in seen)
    return ("ok" if ok else "UNEXPECTED"), "; ".join(seen)


@check
def capture_mode_global(cp, xbp):
    """Why xbp.cuda.graph defaults to relaxed: in global mode the first allocation of a new
    private pool (cudaMalloc) should be refused (cudaErrorStreamCaptureUnsupported)."""
    s = cp.cuda.Stream(non_blocking=True)
    pool = cp.cuda.MemoryPool()
    with s, cp.cuda.using_allocator(pool.malloc):
        s.begin_capture(cp.cuda.runtime.streamCaptureModeGlobal)
        try:
            cp.empty(1 << 20, dtype=cp.uint8)
            verdict, detail = "UNEXPECTED", "cudaMalloc allowed in a global-mode capture (relaxed default not needed)"
        except Exception as e:  # noqa: BLE001
            verdict, detail = "ok", f"refused as expected ({type(e).__name__}: {e})"
        finally:
            try:
                s.end_capture()
            except Exception:  # noqa: BLE001
                pass
    s.synchronize()
    return verdict, detail


@check
def events(cp, xbp):
    """xbp.cuda.Event/Stream: cupy.cuda.Event(block, disable_timing, interprocess), record on a
    stream, get_elapsed_time (cupy/cuda/stream.pyx l.121, l.142, l.168)."""
    s = xbp.cuda.Stream()
    e0, e1 = xbp.cuda.Event(enable_timing=True), xbp.cuda.Event(enable_timing=True)
    with xbp.cuda.stream(s):
        e0.record()
        x = xbp.randn(256, 256, device="cuda")
        (x @ x).sum()
        e1.record()
    e1.synchronize()
    ms = e0.elapsed_time(e1)
    return ("ok" if isinstance(ms, float) and ms >= 0 and e1.query() else "FAILED"), f"elapsed {ms:.3f} ms"


@check
def memory_hook(cp, xbp):
    """xbp.cuda.max_memory_allocated's CuPy memory hook: malloc_postprocess/free_postprocess
    keyword names (cupy/cuda/memory.pyx l.1344, l.1028)."""
    xbp.cuda.reset_peak_memory_stats()
    base = xbp.cuda.memory_allocated()
    x = xbp.empty(1 << 20, dtype=xbp.float32, device="cuda")      # 4 MiB
    del x
    peak = xbp.cuda.max_memory_allocated() - base
    now = xbp.cuda.memory_allocated() - base
    return ("ok" if peak >= 4 << 20 and now < 4 << 20 else "FAILED"), f"peak +{peak} B, now +{now} B"


@check
def pinned(cp, xbp):
    """Tensor.pin_memory: cupyx.empty_pinned's NumPy array over a PinnedMemoryPointer
    (cupyx/_pinned_array.py), recognised by is_pinned."""
    t = xbp.tensor(np.arange(6, dtype=np.float32)).pin_memory()
    base = t.array
    while getattr(base, "base", None) is not None:
        base = base.base
    ok = t.is_pinned() and not xbp.tensor(np.ones(2)).is_pinned()
    # CuPy's own test, the one that picks its unstaged asynchronous upload (core.pyx _array_default):
    # where it says pinned, xbp's uploads with non_blocking=False wait (CupyBackend.from_numpy)
    cupy_says = bool(cp.cuda.pinned_memory.is_memory_pinned(t.array.ctypes.data))
    ok = ok and cupy_says
    u = t.to("cuda")
    ok = ok and np.array_equal(u.numpy(), np.arange(6, dtype=np.float32))
    return ("ok" if ok else "FAILED"), (f"base {type(base).__module__}.{type(base).__name__}, CuPy's "
                                        f"is_memory_pinned {cupy_says}, upload ok")


@check
def dlpack(cp, xbp):
    """__dlpack_device__ codes (kDLCUDA 2, kDLCUDAHost 3, kDLCUDAManaged 13) and the exchange with
    CuPy and PyTorch (cupy/_core/dlpack.pyx from_dlpack: 2 and 13 taken, 3 refused)."""
    t = xbp.arange(6, dtype=xbp.float32, device="cuda")
    dev = t.__dlpack_device__()
    back = xbp.from_dlpack(cp.from_dlpack(t))
    ok = tuple(int(v) for v in dev) == (2, 0) and np.array_equal(back.numpy(), np.arange(6, dtype=np.float32))
    seen = [f"cuda tensor {tuple(int(v) for v in dev)}"]
    try:
        import torch
    except ImportError:
        seen.append("no torch")
    else:
        tt = torch.from_dlpack(t)
        ok = ok and tt.is_cuda and float(tt.sum()) == 15.0
        p = torch.arange(4, dtype=torch.float32).pin_memory()
        pd = tuple(int(v) for v in p.__dlpack_device__())
        xp = xbp.from_dlpack(p)
        ok = ok and np.array_equal(xp.numpy(), np.arange(4, dtype=np.float32))
        x2 = xbp.from_dlpack(torch.ones(3, device="cuda"))
        ok = ok and x2.device.type == "cuda" and float(x2.sum()) == 3.0
        seen.append(f"torch pinned {pd} -> xbp on {xp.device}; torch cuda -> xbp on {x2.device}")
    return ("ok" if ok else "FAILED"), "; ".join(seen)


@check
def compile_graph(cp, xbp):
    """xbp.compile of a Linear + Adam step on cuda: 2 warm-ups, a capture, a replay."""
    import xbp.nn as nn
    import xbp.nn.functional as F
    model = nn.Linear(16, 4).to("cuda")
    opt = xbp.optim.Adam(model.parameters(), lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    c = xbp.compile(step)
    x = xbp.randn(8, 16, device="cuda")
    y = xbp.zeros(8, dtype=xbp.int64, device="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [float(c(x, y)) for _ in range(5)]
    why = "; ".join(dict.fromkeys(str(w.message) for w in caught))
    ok = c.stats.get("captured", 0) == 1 and c.stats.get("replayed", 0) == 2 and losses[-1] < losses[0]
    return ("ok" if ok else "FAILED"), f"stats {dict(c.stats)}, losses {losses[0]:.3f} -> {losses[-1]:.3f}" + \
        (f"; warnings: {why}" if why else "")


@check
def nccl(cp, xbp):
    """cupy.cuda.nccl on this wheel (libnccl found?), and a 1-rank communicator's allReduce
    (cupy_backends/cuda/libs/nccl.pyx: NcclCommunicator(ndev, bytes commId, rank), l.323;
    allReduce(send, recv, count, datatype, op, stream), l.470; get_unique_id -> bytes, l.159)."""
    from xbp.distributed import _nccl
    why = _nccl.unavailable_reason()
    if why:
        return "FAILED", why
    nc = _nccl._nccl()
    comm = nc.NcclCommunicator(1, nc.get_unique_id(), 0)
    x = cp.arange(4, dtype=cp.float32)
    y = cp.empty_like(x)
    s = cp.cuda.Stream(non_blocking=True)
    comm.allReduce(x.data.ptr, y.data.ptr, 4, nc.NCCL_FLOAT32, nc.NCCL_SUM, s.ptr)
    s.synchronize()
    comm.destroy()
    libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps") if "libnccl" in ln})
    ok = bool(cp.all(y == x))
    return ("ok" if ok else "FAILED"), f"NCCL {nc.get_version()} from {', '.join(libs) or '?'}; 1-rank allReduce ok"


def main():
    t0 = time.perf_counter()
    try:
        import cupy as cp
        import xbp
        if not xbp.cuda.is_available():
            raise RuntimeError("CuPy sees no GPU")
    except Exception as e:  # noqa: BLE001
        say("all", "skipped", t0, f"no CuPy GPU here ({type(e).__name__}: {e})")
        return 0
    if "fakecupy" in (getattr(cp, "__file__", "") or ""):
        print("risk checks on the CuPy emulation: expect FAILED lines for what it does not model", flush=True)
    for fn in CHECKS:
        t = time.perf_counter()
        name = fn.__name__.replace("_", "-")
        try:
            verdict, detail = fn(cp, xbp)
        except Exception as e:  # noqa: BLE001 - one line per surprise, then the next check
            verdict, detail = "FAILED", f"{type(e).__name__}: {e}"
        say(name, verdict, t, detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
