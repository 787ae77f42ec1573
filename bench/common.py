"""Shared pieces of the benchmarks: interleaved timing, the environment header, tables, JSON.

Timing rule: every implementation being compared runs in the same process, in interleaved
blocks (A B C A B C ...), and the median over blocks of the mean time per call is reported, so
a slow spell of the machine hits all of them alike. Device work is synchronised at the end of
each block (and, for training steps, after every step: see `time_blocks`).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402


def _noop():
    return None


def time_blocks(runners: dict, calls: int, blocks: int, warm: int = 3, pause: float = 0.0,
                sync_each: bool = False) -> dict:
    """Interleaved timing. `runners`: name -> (fn, sync). Each block runs `fn` `calls` times
    (then `sync()`, or after every call with `sync_each`), runners taking turns; returns
    name -> {"us": median µs per call over blocks, "min": fastest block, "max": slowest block}."""
    for fn, sync in runners.values():
        for _ in range(warm):
            fn()
        sync()
    per = {name: [] for name in runners}
    for _ in range(blocks):
        for name, (fn, sync) in runners.items():
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            if sync_each:
                for _ in range(calls):
                    fn()
                    sync()
            else:
                for _ in range(calls):
                    fn()
                sync()
            per[name].append((time.perf_counter() - t0) / calls * 1e6)
    return {name: {"us": statistics.median(ts), "min": min(ts), "max": max(ts)} for name, ts in per.items()}


def _git_rev() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except Exception:  # noqa: BLE001 - informational only
        return None


def environment(device: str) -> dict:
    """What the numbers were measured on: versions, CPU/GPU, BLAS and its threads, env caveats."""
    import xbp
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([os.path.basename(sys.executable)] + [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "device": device, "git": _git_rev(), "xbp": xbp.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "processor": _cpu_name(),
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }
    try:
        import threadpoolctl
        info["blas"] = [f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} "
                        f"threads={p.get('num_threads')}" for p in threadpoolctl.threadpool_info()
                        if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = None
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    if device.startswith("cuda"):
        try:
            import cupy
            info["cupy"] = cupy.__version__
            info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        except Exception as e:  # noqa: BLE001 - informational only
            info["gpu"] = f"unknown ({e})"
    return info


def torch_cuda_in_plain_float32(torch) -> str:
    """Make PyTorch's CUDA float32 matmuls and convolutions plain IEEE float32, as CuPy's are
    (CuPy uses TF32 only with CUPY_TF32=1): PyTorch lets cuDNN convolutions and RNNs use TF32 by
    default (``torch.backends.cudnn.conv/rnn.fp32_precision == "tf32"``), which would compare a
    10-bit-mantissa convolution or LSTM with a 23-bit one. Returns what was set, for the log."""
    names = ("cuda.matmul", "cudnn.conv", "cudnn.rnn")
    targets = [getattr(getattr(torch.backends, a, None), b, None) for a, b in (n.split(".") for n in names)]
    if all(t is not None and hasattr(t, "fp32_precision") for t in targets):   # PyTorch >= 2.9
        for t in targets:
            t.fp32_precision = "ieee"
        return "torch float32 on cuda: " + ", ".join(f"{n}.fp32_precision=ieee" for n in names) + " (no TF32)"
    torch.backends.cuda.matmul.allow_tf32 = False                              # the older flags
    torch.backends.cudnn.allow_tf32 = False
    return "torch float32 on cuda: backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = False (no TF32)"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def print_environment(title: str, info: dict) -> None:
    print(f"# {title}   {info['date']}")
    print(f"# command: {info['command']}")
    print(f"# device {info['device']}"
          + (f" ({info['gpu']}, CuPy {info.get('cupy')})" if "gpu" in info else "")
          + f"; CPU {info['processor']} x{info['cpus']}; python {info['python']}, numpy {info['numpy']}, "
          f"torch {info['torch']}, xbp {info['xbp']} ({info['git']})")
    if info.get("blas"):
        print(f"# BLAS: {'; '.join(info['blas'])}")
    if info["openblas_env"]:
        print(f"# NOTE: {info['openblas_env']} is set: it may select a slower OpenBLAS kernel for NumPy "
              "(and so for xbp and the hand-written baseline alike); see bench/README.md")
    if info["threads_env"]:
        print(f"# thread settings: {info['threads_env']}")


def table(rows: list, columns: list) -> str:
    """Plain-text table: `columns` are (header, key, format) with format like '{:.1f}'."""
    cells = [[h for h, _, _ in columns]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else fmt.format(r[k])) for _, k, fmt in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = []
    for j, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str, info: dict, results) -> None:
    with open(path, "w") as f:
        json.dump({"meta": info, "results": results}, f, indent=2, default=str)
    print(f"# wrote {path}")


def sync_for(device: str):
    """A function that waits for all work queued on `device` (no-op on the CPU)."""
    import xbp
    return xbp.zeros(1, device=device).xp.synchronize if device.startswith("cuda") else _noop
