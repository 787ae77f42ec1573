"""xbp.compile on the CPU: one MLP training step eager, compiled (a recorded plan), by hand in
NumPy, and in PyTorch, side by side in one process; and the LeNet and LSTM steps of
bench/bench_layers.py (configs lenet, lenet16, lstm, lstm-small: bench/compile_models.py), eager vs
compiled vs PyTorch eager (and torch.compile for the configs named by --torch-compile).

    python bench/bench_compile.py [--configs digits,mnist,lenet,lstm] [--optimizers sgd,adam] [--blocks 15]
                                  [--threads 1] [--torch-compile lenet16] [--json OUT]

The steps are bench/bench_mlp.py's (same models, data, learning rates): forward through
Linear/ReLU, mean cross-entropy, backward, SGD or Adam. `compiled` is
``xbp.compile(step)`` of the very same xbp step function; its first calls record (the recording
cost is reported separately), later calls replay. Blocks of each implementation are interleaved
(eager, compiled, hand, torch, eager, ...); the table gives the median µs per step with the
fastest and slowest block, and ratios to the hand-written NumPy step. BLAS threads are pinned
(--threads, default 1) so the ratios measure framework overhead, not thread scheduling.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--configs", default="digits,mnist")
ap.add_argument("--optimizers", default="sgd,adam")
ap.add_argument("--blocks", type=int, default=15)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--json", default=None)
ap.add_argument("--torch-compile", default="", metavar="CONFIGS",
                help="lenet/lstm configs (comma-separated) for which torch.compile(step) is timed too (its first "
                     "call compiles: about a minute for lenet16 here)")
ARGS = ap.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_mlp import CALLS, CONFIGS, make_hand, make_torch, make_xbp  # noqa: E402
from compile_models import MODEL_CALLS, MODEL_CONFIGS, make_model_step  # noqa: E402
from common import environment, print_environment, table, time_blocks, write_json  # noqa: E402

import xbp  # noqa: E402


def _noop():
    return None


def main():
    info = environment("cpu")
    info["threads"] = ARGS.threads
    print_environment("xbp.compile: eager vs compiled vs hand-written NumPy vs PyTorch (CPU)", info)
    try:
        import torch
        torch.set_num_threads(ARGS.threads)
    except ImportError:
        torch = None
    rows, results = [], []
    model_rows = []
    for config in ARGS.configs.split(","):
        if config in MODEL_CONFIGS:
            for opt_name in ARGS.optimizers.split(","):
                row, res = _model_row(torch, config, opt_name)
                model_rows.append(row)
                results.append(res)
            continue
        widths, batch = CONFIGS[config]
        for opt_name in ARGS.optimizers.split(","):
            eager = make_xbp(widths, batch, "cpu", opt_name)
            compiled_step = make_xbp(widths, batch, "cpu", opt_name)
            compiled = xbp.compile(compiled_step)
            rec_times = []
            while compiled.stats["replayed"] == 0 and len(rec_times) < 6:
                t0 = time.perf_counter()
                compiled()                  # the first calls record (and compare recordings)
                rec_times.append(time.perf_counter() - t0)
            assert compiled.stats["replayed"] == 1, (compiled.stats, compiled.cache)
            rec_times.pop()                 # the last call was the first replay
            runners = {"eager": (eager, _noop), "compiled": (compiled, _noop),
                       "hand": (make_hand(np, widths, batch, opt_name), _noop)}
            if torch is not None:
                runners["torch"] = (make_torch(torch, widths, batch, "cpu", opt_name), _noop)
            res = time_blocks(runners, CALLS["cpu"][config], ARGS.blocks)
            hand = res["hand"]["us"]
            row = {"config": config, "opt": opt_name, "record_ms": "+".join(f"{t * 1e3:.1f}" for t in rec_times)}
            for name, r in res.items():
                row[name] = f"{r['us']:.0f} [{r['min']:.0f}-{r['max']:.0f}]"
            for name in ("eager", "compiled", "torch"):
                if name in res:
                    row[f"{name}/hand"] = f"{res[name]['us'] / hand:.2f}x"
            rows.append(row)
            results.append({"config": config, "opt": opt_name, **res,
                            "record_s": rec_times, "plan_lines": next(
                                p.n_lines for p in compiled.cache.values() if hasattr(p, "n_lines"))})
    cols = ["config", "opt", "eager", "compiled", "hand", "torch", "eager/hand", "compiled/hand", "torch/hand",
            "record_ms"]
    if rows:
        print(table(rows, [(c, c, "{}") for c in cols if any(c in r for r in rows)]))
    if model_rows:
        cols = ["config", "opt", "eager", "compiled", "torch", "torch.compile", "eager/torch", "compiled/torch",
                "torch.compile/torch", "compiled/eager", "record_ms", "torch_compile_s", "plan_lines"]
        print(table(model_rows, [(c, c, "{}") for c in cols if any(c in r for r in model_rows)]))
    if ARGS.json:
        write_json(ARGS.json, info, results)


def _model_row(torch, config, opt_name):
    """One LeNet/LSTM row: eager, compiled, PyTorch eager (and torch.compile), interleaved blocks."""
    eager = make_model_step(xbp, config, opt_name)
    compiled = xbp.compile(make_model_step(xbp, config, opt_name))
    rec_times = []
    while compiled.stats["replayed"] == 0 and len(rec_times) < 6:
        t0 = time.perf_counter()
        compiled()
        rec_times.append(time.perf_counter() - t0)
    assert compiled.stats["replayed"] == 1 and compiled.stats["eager"] == 0, (compiled.stats, compiled.cache)
    rec_times.pop()
    runners = {"eager": (eager, _noop), "compiled": (compiled, _noop)}
    row = {"config": config, "opt": opt_name, "record_ms": "+".join(f"{t * 1e3:.0f}" for t in rec_times)}
    if torch is not None:
        runners["torch"] = (make_model_step(torch, config, opt_name), _noop)
        if config in ARGS.torch_compile.split(","):
            tc = torch.compile(make_model_step(torch, config, opt_name))
            t0 = time.perf_counter()
            tc()
            tc()
            row["torch_compile_s"] = f"{time.perf_counter() - t0:.0f}"
            runners["torch.compile"] = (tc, _noop)
    res = time_blocks(runners, MODEL_CALLS[config], ARGS.blocks, warm=1)
    for name, r in res.items():
        row[name] = f"{r['us'] / 1e3:.2f} [{r['min'] / 1e3:.2f}-{r['max'] / 1e3:.2f}] ms"
    if "torch" in res:
        for name in ("eager", "compiled", "torch.compile"):
            if name in res:
                row[f"{name}/torch"] = f"{res[name]['us'] / res['torch']['us']:.2f}x"
    row["compiled/eager"] = f"{res['compiled']['us'] / res['eager']['us']:.2f}x"
    plan = next(p for p in compiled.cache.values() if hasattr(p, "n_lines"))
    row["plan_lines"] = plan.n_lines
    return row, {"config": config, "opt": opt_name, **res, "record_s": rec_times, "plan_lines": plan.n_lines,
                 "stats": dict(compiled.stats)}


if __name__ == "__main__":
    main()
