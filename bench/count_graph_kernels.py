"""Kernels per training step as a CUDA graph would hold them, counted on the CuPy emulation
(fakecupy counts kernel-like calls; a proxy, not a GPU measurement): xbp's MLP step eager, xbp's step
in capture mode (matmuls through xbp._cublas, learning rate and step counts as device scalars via
the optimizer capture hook: what xbp.compile captures on cuda) and the hand-written CuPy step.

usage: PYTHONPATH=../shared/tools/fakecupy:. python bench/count_graph_kernels.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cupy  # noqa: E402

from bench_mlp import CONFIGS, make_hand, make_xbp  # noqa: E402
from xbp import _cublas, _cuda_graph  # noqa: E402
from xbp.optim import optimizer as O  # noqa: E402

if "fakecupy" not in (getattr(cupy, "__file__", "") or ""):
    sys.exit("count_graph_kernels.py counts on the CuPy emulation only (PYTHONPATH=../shared/tools/fakecupy:.)")

GEMMS = [0]


def counting_gemm(*args):
    GEMMS[0] += 1                       # one cuBLAS kernel (fakecupy does not see the NumPy double)
    _cublas.numpy_gemm(*args)


_cublas.cublas_gemm = counting_gemm


def count(step, steps=5):
    step()
    step()
    cupy.STATS.update(launch=0, sync=0, h2d=0)
    GEMMS[0] = 0
    for _ in range(steps):
        step()
    s = cupy.STATS
    return (s["launch"] + GEMMS[0]) / steps, s["sync"] / steps, s["h2d"] / steps


def captured_mode(step):
    """`step` run as during capture: backend.capturing on, the optimizer hook on (device scalars
    made once, as before a capture), gemm through xbp._cublas."""
    be = step.model[0].weight.xp
    opt = [o for o in _cuda_graph._closure_objects(step, O.Optimizer)][0]

    def run():
        if not hasattr(run, "scalars"):
            run.scalars = _cuda_graph._DeviceScalars(_cuda_graph._CupyDriver(be), [opt])
        be.capturing = True
        O.CAPTURE_HOOK[0] = run.scalars.hook
        try:
            step()
        finally:
            be.capturing = False
            O.CAPTURE_HOOK[0] = None
    return run


for cfg in ("digits", "mnist"):
    widths, batch = CONFIGS[cfg]
    for opt_name in ("sgd", "adam"):
        rows = {"xbp eager": make_xbp(widths, batch, "cuda", opt_name)}
        s2 = make_xbp(widths, batch, "cuda", opt_name)
        s2()                              # optimizer state exists before the "capture", as after warm-up
        rows["xbp as captured"] = captured_mode(s2)
        rows["hand eager"] = make_hand(cupy, widths, batch, opt_name)
        for name, step in rows.items():
            k, sy, up = count(step)
            print(f"{cfg:6s} {opt_name:4s} {name:16s} {k:5.0f} kernels/step  {sy:.1f} host syncs  {up:.1f} uploads")
