"""Devices and array backends: the only module of xbp that names NumPy, CuPy or array-api-strict.

A `Backend` is the Array API namespace of one device, with creation functions that always pass
that device, plus a few named operations the standard lacks (scatter-add, erf, random numbers,
host transfer). The portable body of each is written here against the standard; a backend
subclass replaces it with a native fast path where one exists (thinc's Ops/CupyOps pattern).

Tensors carry their Backend (as `tensor.xp`), so ops never look up a namespace per call.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import math
import operator
import os
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _cublas

__all__ = [
    "device", "Backend", "get_backend", "backend_of", "set_default_device", "get_default_device",
    "manual_seed", "DeviceError", "canonical_dtype", "check_range", "count_host_reads",
]

# The name "xbp" on the package index is an unrelated project: name CuPy's own distributions,
# or this checkout's extras (installed from the checkout, never from the index).
CUDA_INSTALL_HINT = (
    "install the CuPy build for your CUDA version: pip install cupy-cuda12x (CUDA 12) or "
    'pip install cupy-cuda13x (CUDA 13); from an xbp checkout: pip install -e ".[cuda12]" or ".[cuda13]"'
)


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or devices were mixed."""


class device(str):
    """A device name: ``"cpu"`` (NumPy), ``"cuda:N"`` (CuPy) or ``"strict"`` (array-api-strict).

    It is a ``str``, so ``t.device == "cpu"`` works; ``.type`` and ``.index`` split it.
    """

    __slots__ = ()

    @property
    def type(self) -> str:
        """The device kind without the index: 'cpu', 'strict' or 'cuda'."""
        return self.partition(":")[0]

    @property
    def index(self):
        """The device index (``device('cuda:1').index == 1``); None when the name has none."""
        i = self.partition(":")[2]
        return int(i) if i else None


# ---------------------------------------------------------------------------------------------
# dtypes: xbp names dtypes by NumPy dtype objects (CuPy uses them too); strict maps onto them.
# ---------------------------------------------------------------------------------------------
DTYPE_NAMES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64", "complex64", "complex128")


HOST_FLOAT_TYPES = (float, np.floating)   # Python and NumPy float scalars


def canonical_dtype(dtype):
    """Any dtype spelling (xbp/NumPy dtype, type, string, strict dtype) -> NumPy dtype."""
    if dtype is None:
        return None
    if isinstance(dtype, np.dtype):
        return dtype
    name = getattr(dtype, "_np_dtype", None)          # array-api-strict DType
    if name is not None:
        return np.dtype(name)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; use xbp.float32, xbp.float64, xbp.int64, ...") from None


# ---------------------------------------------------------------------------------------------
# Backend: portable bodies
# ---------------------------------------------------------------------------------------------
class Backend:
    """One device's array namespace plus xbp's named extras.

    Every public name of the underlying Array API namespace is copied onto the instance (so
    ``xp.exp`` costs one dict lookup); creation functions are wrapped to pass the device.
    """

    kind = "generic"
    has_float64 = True
    # Whether reading a value of this device's arrays to the host is a device synchronisation (the
    # host waits for every queued kernel): True for CuPy, False for NumPy and array-api-strict,
    # whose data is on the host. Then a value check (an index range) is not read at the op: it
    # is recorded on the device and read with the other pending ones at the next host read or
    # `synchronize()`, where a failure raises (see `defer_check`). Elsewhere checks are immediate.
    defers_checks = False
    # How many deferred checks wait at most: beyond it, those of the same check are merged on the
    # device (no read), and if still too many are distinct, all are read (one transfer).
    PENDING_CHECKS_LIMIT = 64
    # How to make deferred checks immediate on this backend (named in their error messages)
    IMMEDIATE_CHECKS_HINT = "set the backend's defers_checks = False"

    if TYPE_CHECKING:
        # the Array API namespace's functions are copied onto the instance by __init__
        def __getattr__(self, name: str) -> Any: ...
    def compile_direct_call(self, fn, n_positional: int, keywords: tuple):
        """For xbp.compile's plans (`xbp._compile_passes.direct_calls`): the function a recorded
        call of `fn` (one of this backend's wrappers) with `n_positional` positional arguments and
        these keyword names may call instead, with the same arguments and the same result, or
        None (keep `fn`). The portable answer is None: backends with a table override it."""
        return None

    # Fused optimizer kernel (one launch for a whole group of tensors), or None: the portable
    # multi-tensor loop in xbp/optim runs. Called as
    # ``fused_optimizer_step(algorithm, params, grads, states, hyper)`` with lists of this
    # backend's arrays (one dtype); it updates them in place and returns the same as the
    # algorithm's ``*_update_multi`` function, or NotImplemented to fall back to the loop.
    fused_optimizer_step = None
    # True while xbp/_cuda_graph.py captures a CUDA graph of a step on this device (fast paths that
    # call libraries CuPy refuses under capture switch to a capturable form)
    capturing = False

    def __init__(self, ns, name: str, native_device):
        for k in dir(ns):
            if not k.startswith("_") and not hasattr(type(self), k):
                setattr(self, k, getattr(ns, k))
        self.ns = ns
        self.device = device(name)
        self.native_device = native_device
        self.array_type = type(self.asarray([0]))    # the backend's own array class (is_array)
        self._rng = None
        self.host_reads = 0             # device -> host transfers through to_numpy (count_host_reads)
        self._pending: list = []        # deferred checks (_PendingCheck), read at the next sync
        self._pending_lock = threading.Lock()
        # native float dtypes, for the promotion rules xbp adds where NumPy and strict differ
        self.float_dtypes = frozenset(np.dtype(n) for n in ("float16", "float32", "float64"))

    def __repr__(self):
        return f"<xbp backend {self.device}>"

    # --- dtypes -------------------------------------------------------------------------------
    def dtype(self, dt):
        """NumPy dtype -> this backend's dtype object."""
        return dt

    def canonical(self, native_dtype):
        """This backend's dtype object -> NumPy dtype (what `Tensor.dtype` returns)."""
        return native_dtype

    # --- creation, always on this device ------------------------------------------------------
    def asarray(self, obj, dtype=None, copy=None):
        return self.ns.asarray(obj, dtype=dtype, device=self.native_device, copy=copy)

    def zeros(self, shape, dtype=None):
        return self.ns.zeros(shape, dtype=dtype, device=self.native_device)

    def ones(self, shape, dtype=None):
        return self.ns.ones(shape, dtype=dtype, device=self.native_device)

    def empty(self, shape, dtype=None):
        return self.ns.empty(shape, dtype=dtype, device=self.native_device)

    def full(self, shape, fill_value, dtype=None):
        return self.ns.full(shape, fill_value, dtype=dtype, device=self.native_device)

    def arange(self, start, stop=None, step=1, dtype=None):
        return self.ns.arange(start, stop, step, dtype=dtype, device=self.native_device)

    def linspace(self, start, stop, num, dtype=None, endpoint=True):
        return self.ns.linspace(start, stop, num, dtype=dtype, device=self.native_device, endpoint=endpoint)

    def eye(self, n_rows, n_cols=None, k=0, dtype=None):
        return self.ns.eye(n_rows, n_cols, k=k, dtype=dtype, device=self.native_device)

    # --- Python's // and % (floor division and its remainder) -------------------------------------
    # Portable bodies: the arrays' operators (NumPy's and strict's floats follow C's divmod, as
    # Python and PyTorch do). CuPy's float kernels do not: `CupyBackend` overrides both.
    def floor_divide(self, a, b):
        return a // b

    def remainder(self, a, b):
        return a % b

    # --- host transfer -------------------------------------------------------------------------
    def to_numpy(self, x) -> np.ndarray:
        """A host (NumPy) copy of the array `x`: the one device -> host path of xbp (`.item()`,
        `.numpy()`, `.tolist()`, printing, `.cpu()`, saving). Where that is a device sync
        (`defers_checks`), the pending deferred checks are read first, in one transfer, and a
        failed one raises there. Counted in `host_reads`."""
        if self._pending:
            self.check_pending()
        self.host_reads += 1
        return self._to_host(x)

    def _to_host(self, x) -> np.ndarray:
        """The transfer itself (no checks, not counted). Portable body: ``np.asarray``."""
        return np.asarray(x)

    def from_numpy(self, a: np.ndarray, non_blocking: bool = False):
        """The host array `a` on this device. `non_blocking` (PyTorch's): the caller will not write
        to `a` until the device has read it, so a copy from page-locked memory need not be waited
        for; only a backend whose uploads can read the caller's buffer late uses it."""
        return self.ns.asarray(a, device=self.native_device)

    def synchronize(self):
        """Wait for queued device work (a no-op on the CPU), then read the pending deferred checks
        (raising for a failed one)."""
        if self._pending:
            self.check_pending()

    # --- deferred checks: no host sync inside a training step -------------------------------------
    # PyTorch's CUDA kernels check an index on the device and report a bad one asynchronously (a
    # device-side assert at the next synchronisation). xbp does the same without custom kernels: on
    # a backend where a host read is a sync, a check computes the (min, max) of the values on the
    # device (two reductions and a stack: no read) and keeps it here; the next host read or
    # synchronize() reads all pending ones in one transfer and raises for the first that fails,
    # naming the op, the values found, the allowed range and the fix. A training step then does
    # not wait for the GPU, and a bad index still becomes an error, never a silent wrong value:
    # only later, at the first value the program reads (the loss's .item(), a print, a checkpoint).
    def defer_check(self, x, low, high, message: str, error: type = IndexError) -> None:
        """Record the check "every value of the non-empty array `x` is in [low, high]" on the
        device, to be read at the next host read or `synchronize()` (see `check_pending`).

        message: the error's text, with ``{lo}`` and ``{hi}`` standing for the values found.
        error: the exception class raised (IndexError for indices, ValueError for values).
        """
        span = self.stack([self.min(x), self.max(x)])       # (2,) on the device: no read
        self.queue_check(_PendingCheck((message, low, high, error, self.canonical(span.dtype).kind), span, 1))

    def queue_check(self, entry) -> None:
        """Queue one deferred check (a `_PendingCheck`: its key and its (2,) device span), merging
        repeats and reading them all once too many are pending. `defer_check` makes the entries; a
        replayed CUDA graph queues copies of the ones it captured (xbp/_cuda_graph.py)."""
        with self._pending_lock:
            self._pending.append(entry)
            full = len(self._pending) >= self.PENDING_CHECKS_LIMIT
            if full:
                self._pending = self._merged(self._pending)
                full = len(self._pending) > self.PENDING_CHECKS_LIMIT // 2
        if full:                # many distinct checks that do not merge: read them (one transfer)
            self.check_pending()

    def _merged(self, pending: list) -> list:
        """Pending checks with the same op, message and bounds (a training loop's repeats) merged
        into one on the device: their overall (min, max). No host read."""
        groups: dict = {}
        for e in pending:
            groups.setdefault(e.key, []).append(e)
        out = []
        for key, es in groups.items():
            if len(es) == 1:
                out.append(es[0])
                continue
            s = self.stack([e.span for e in es])            # (k, 2)
            span = self.stack([self.min(s[:, 0]), self.max(s[:, 1])])
            out.append(_PendingCheck(key, span, sum(e.count for e in es)))
        return out

    def check_pending(self) -> None:
        """Read every deferred check of this backend (one device -> host transfer for all) and raise
        the error of the first that failed. A no-op when none is pending."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        spans = [e.span for e in pending]
        dtypes = {str(s.dtype) for s in spans}
        if len(dtypes) > 1 and self.has_float64:
            # one transfer for all: a float64 copy keeps every comparison with the (integer)
            # bounds exact, since rounding is monotonic and the bounds are below 2**53
            f64 = self.dtype(np.dtype("float64"))
            spans = [self.astype(s, f64) for s in spans]
            dtypes = {"float64"}
        found: list = [None] * len(pending)
        for dt in dtypes:
            where = [i for i, s in enumerate(spans) if str(s.dtype) == dt]
            block = spans[where[0]] if len(where) == 1 else self.stack([spans[i] for i in where])
            self.host_reads += 1
            host = np.asarray(self._to_host(block)).reshape(-1, 2)
            for i, row in zip(where, host):
                found[i] = row
        for e, (lo, hi) in zip(pending, found):
            message, low, high, error, kind = e.key
            if low <= lo and hi <= high:             # (False for NaN: an error too)
                continue
            seen = (int(lo), int(hi)) if kind in "iub" else (float(lo), float(hi))
            message = _fill_span(message, *seen)
            calls = "that call" if e.count == 1 else f"one of those {e.count} calls"
            raise error(message + f" [checked on {self.device} without a sync at the op, and read at the first "
                        f"host read or synchronize() after it: {calls}, and what was computed from "
                        f"it since, is invalid; {self.IMMEDIATE_CHECKS_HINT} to raise at the op itself]")


    # --- operations the standard lacks ---------------------------------------------------------
    def scatter_add_flat(self, n: int, index, values):
        """out[index[i]] += values[i] into zeros(n); duplicates add up.

        Portable body: sort the indices, cumulative-sum the values in sorted order (in float64
        where the device has it, so long runs do not lose precision), and read each position's
        segment sum as the difference of the cumulative sum at the ends found by searchsorted.
        """
        xp = self
        dt = values.dtype
        acc = self.dtype(np.dtype("float64")) if self.has_float64 else dt
        order = xp.argsort(index)
        idx_sorted = xp.take(index, order)
        csum = xp.cumulative_sum(xp.astype(xp.take(values, order), acc), include_initial=True)
        pos = xp.arange(0, n, dtype=index.dtype)
        lo = xp.searchsorted(idx_sorted, pos, side="left")
        hi = xp.searchsorted(idx_sorted, pos, side="right")
        return xp.astype(xp.take(csum, hi) - xp.take(csum, lo), dt)

    def index_add_rows(self, n: int, index, values):
        """zeros((n, *rest)) with values[i] (shape rest) added at row index[i]; duplicates add up.
        The backward of every gather. Portable body: a flat scatter-add over row-major positions."""
        rest = tuple(values.shape[1:])
        r = math.prod(rest)
        if r == 1:
            flat = self.scatter_add_flat(n, index, self.reshape(values, (-1,)))
        else:
            pos = self.reshape(self.expand_dims(index * r, axis=1) + self.arange(0, r, dtype=index.dtype), (-1,))
            flat = self.scatter_add_flat(n * r, pos, self.reshape(values, (-1,)))
        return self.reshape(flat, (n,) + rest)

    def is_array(self, v) -> bool:
        """Whether `v` is an array of this backend (recognised by type: CuPy arrays have no
        ``__array_namespace__``, and a NumPy array is not a device array)."""
        return isinstance(v, self.array_type)

    def mask(self, g, keep):
        """`g` where the bool array `keep` is true, else 0: the backward of every piecewise-linear
        op (relu, clamp). Portable body: ``where(keep, g, 0)``."""
        return self.where(keep, g, 0.0)

    def setitem(self, x, key, value):
        """x[key] = value in place (the standard's basic indexing)."""
        x[key] = value

    def padded(self, x, pad, value=0.0):
        """A new array: `x` with ``pad[d] = (before, after)`` elements of `value` around axis d.
        One backend call (not a fill then a write), so that `xbp.compile` sees a pure function of
        `x`: the convolution's forward and weight gradient pad the same input, and a plan builds
        it (and the columns read from it) once (`eliminate_common_calls`)."""
        out = self.full(tuple(n + a + b for n, (a, b) in zip(x.shape, pad)), value, dtype=x.dtype)
        self.setitem(out, tuple(slice(a, a + n) for n, (a, _) in zip(x.shape, pad)), x)
        return out

    def unaliased(self, dst, src):
        """`src`, copied first if it may overlap `dst` (for x[1:] = x[:-1], x[1:] += x[:-1],
        x.copy_(x.T)). Portable body: as is (NumPy and array-api-strict buffer overlapping
        operands themselves; CuPy's kernels do not)."""
        return src

    def getitem(self, x, key):
        """x[key] for any key xbp's indexing normalised (basic, or advanced with arrays)."""
        return x[key]

    def may_share_memory(self, a, b) -> bool:
        """Whether two arrays may overlap in memory (a reshape may copy). Portable body: assume so."""
        return True

    def copy_scaled(self, dst, src, scale: float) -> None:
        """``dst[...] = src * scale`` in place, without a temporary where the backend allows
        (DistributedDataParallel's copy of a gradient into its bucket, already divided by the world
        size). `dst` and `src` have one shape and dtype. Portable body: the product, then a copy."""
        self.setitem(dst, (Ellipsis,), src * scale if scale != 1.0 else src)

    def refcounts(self, arrays):
        """A list with the number of references to each array object in `arrays`, or None where
        the backend cannot tell whether something else holds an array's memory. Compared with an
        earlier call made in the same way, equal counts mean no new view of these arrays (and no
        new holder of them) exists: DistributedDataParallel reuses a bucket buffer only then.
        Portable body: None (unknown; the caller must assume the memory is still held)."""
        return None

    def int_range(self, x):
        """(min, max) of a non-empty integer array as Python ints, with one device-to-host transfer
        (one GPU sync): the class-index checks of the losses."""
        lo, hi = self.to_numpy(self.stack([self.min(x), self.max(x)]))
        return int(lo), int(hi)

    def check_span(self, x, low, high, message: str, error: type = IndexError, ignore=None) -> bool:
        """Raise `error` if a value of the non-empty array `x` is outside [low, high] (inclusive;
        NaN is outside), values equal to `ignore` excepted (they count as `low`). -> whether
        `ignore` lies within the span of the values (so that some may equal it: the losses then
        mask them). One host read for min and max together; a second only when `ignore` lies in
        the span. `message` as for `check_range`.

        The immediate form of `check_range`, one backend call so that `xbp.compile` replays the
        check itself on every call and guards only its result: a plan recorded with targets
        spanning [0, 9] still runs, and still checks, a batch spanning [1, 8] or [0, 10]."""
        if self.canonical(x.dtype).kind in "iub":
            lo, hi = self.int_range(x)          # one device -> host read for both bounds
        else:
            lo, hi = (float(v) for v in self.to_numpy(self.stack([self.min(x), self.max(x)])))
        masked = ignore is not None and lo <= ignore <= hi
        if masked:
            lo, hi = self.int_range(self.where(x == ignore, low, x))
        if not (low <= lo and hi <= high):
            raise error(_fill_span(message, lo, hi))
        return masked

    def check_index_range(self, index, n: int, what: str, negative: bool = True):
        """Raise IndexError if any index is outside [-n, n) (`negative`: Python-style indexing such
        as x[idx]) or outside [0, n) (negative=False: gather, index_select, embedding, one_hot...,
        where PyTorch refuses -1). CuPy would wrap an out-of-range index silently.

        Immediate (one host read for both bounds) where a host read is cheap; deferred to the next
        host read or synchronize() where it is a device sync (`defers_checks`, see `defer_check`)."""
        check_range(self, index, -n if negative else 0, n - 1, _index_message(what, n, negative))

    def index_positions(self, shape, key):
        """Flat positions selected by an advanced-indexing `key` into an array of `shape`."""
        n = math.prod(shape)
        return self.reshape(self.arange(0, n, dtype=self.dtype(np.dtype("int64"))), shape)[key]

    def erf(self, x):
        """Error function. Portable body: for float32, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7,
        float32's own resolution); for float64, to about 1e-15: the series
        erf(a) = 2/sqrt(pi) e^(-a^2) sum_n (2a^2)^n a / (1*3*...*(2n+1)) (all terms positive, so no
        cancellation) for |x| <= 3, and erfc's continued fraction
        e^(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))) above."""
        xp = self
        if self.canonical(x.dtype).kind in "biu":    # integers: float64, as NumPy/SciPy and CuPy give
            x = xp.astype(x, self.dtype(np.dtype("float64" if self.has_float64 else "float32")))
        a = xp.abs(x)
        if x.dtype != self.dtype(np.dtype("float64")):
            t = 1.0 / (1.0 + 0.3275911 * a)
            poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
            y = 1.0 - poly * xp.exp(-a * a)
            return xp.where(x < 0, -y, y)
        lo = xp.minimum(a, 3.0)
        two_a2 = 2.0 * lo * lo
        term = total = lo
        for n in range(1, 64):
            term = term * two_a2 / (2 * n + 1)
            total = total + term
        series = (2.0 / math.sqrt(math.pi)) * xp.exp(-lo * lo) * total
        hi = xp.maximum(a, 3.0)
        f = hi
        for k in range(48, 0, -1):
            f = hi + (0.5 * k) / f
        tail = 1.0 - xp.exp(-hi * hi) / (math.sqrt(math.pi) * f)
        y = xp.where(a <= 3.0, series, tail)
        return xp.where(x < 0, -y, y)

    # --- random numbers: drawn with NumPy's PCG64 on the host, then moved (portable) --------------
    # Each draw takes `rng`: an `xbp.Generator`'s native generator, or None for the device's own
    # stream (seeded by manual_seed). new_rng / rng_state / set_rng_state make and checkpoint them.
    def seed(self, s: int):
        self._rng = self.new_rng(s)

    @property
    def rng(self):
        if self._rng is None:
            self.seed(_SEED[0])
        return self._rng

    def new_rng(self, seed: int):
        """A fresh native generator seeded with `seed` (what an `xbp.Generator` holds)."""
        return np.random.Generator(np.random.PCG64(seed))

    def rng_state(self, rng) -> np.ndarray:
        """The complete state of a native generator as host bytes (uint8), for `set_rng_state`."""
        return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), dtype=np.uint8).copy()

    def set_rng_state(self, rng, state: np.ndarray) -> None:
        """Restore a state from `rng_state`: the generator continues exactly where it was."""
        rng.bit_generator.state = json.loads(np.asarray(state, dtype=np.uint8).tobytes().decode())

    def random_uniform(self, shape, dtype, low=0.0, high=1.0, rng=None):
        a = (rng or self.rng).random(shape, dtype=np.float64) * (high - low) + low
        return self.from_numpy(a.astype(dtype))

    def random_normal(self, shape, dtype, mean=0.0, std=1.0, rng=None):
        a = (rng or self.rng).standard_normal(shape, dtype=np.float64) * std + mean
        return self.from_numpy(a.astype(dtype))

    def random_integers(self, low, high, shape, dtype, rng=None):
        return self.from_numpy((rng or self.rng).integers(low, high, size=shape).astype(dtype))

    def random_permutation(self, n, rng=None):
        return self.from_numpy((rng or self.rng).permutation(n))

    # --- memory layout -----------------------------------------------------------------------------------
    def row_major(self, x):
        """x with its elements in row-major (C) order in memory, copied only if they are not.
        The standard has no memory layout, so the portable body returns x. NumPy's OpenBLAS
        multiplies h @ W faster with W row-major than as a transposed view (at the LSTM step's
        (8, 64) @ (64, 256), 4 us against 15 us here), so a layer that multiplies by the same
        transposed weight at every time step makes it row-major once."""
        return x

    # --- the LSTM's time loop (xbp/ops/recurrence.py) -------------------------------------------------
    # Fast paths for the fused recurrence primitive's LSTM steps, or None: then recurrence.py's
    # portable body runs (the same one that runs on Tensors under create_graph). Contract:
    #   lstm_forward(xs, h0, c0, w_hh, reverse) -> (Y, ACT, TC), or NotImplemented
    #     xs (T, B, 4H) input projections (biases included), h0, c0 (B, H), w_hh (4H, H);
    #     Y (T, B, 2H) = [h_t | c_t]; ACT (T, B, 4H) = [s(a_i), s(a_f), tanh(a_g), s(a_o)] per step;
    #     TC (T, B, H) = tanh(c_t)
    #   lstm_backward(g, Y, ACT, TC, c0, w_hh, reverse) -> (dA, dh0, dc0), or NotImplemented
    #     g (T, B, 2H) = [dh_t | dc_t] flowing into the output; dA (T, B, 4H) the gradient of every
    #     step's pre-activations (= of xs); dh0, dc0 (B, H) of the initial states
    # All arrays returned are new (the caller may keep or write them).
    lstm_forward = None
    lstm_backward = None

    # --- convolution windows (xbp.ops.conv, xbp.ops.pooling) ----------------------------------------------------
    def window_columns(self, x, kernel, stride, dilation, out_hw):
        """The im2col buffer of a convolution: x (A, Hp, Wp, B) -> a new array (A, kh, kw, Ho, Wo, B)
        with [a, i, j, h, w, b] = x[a, h*sh + i*dh, w*sw + j*dw, b].
        Portable body: one strided slice per kernel offset (the standard has no sliding windows),
        stacked."""
        (kh, kw), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_hw
        parts = [x[:, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw, :]
                 for i in range(kh) for j in range(kw)]
        A, B = x.shape[0], x.shape[3]
        return self.reshape(self.stack(parts, axis=1), (A, kh, kw, Ho, Wo, B))


class NumpyBackend(Backend):
    kind = "numpy"

    def __init__(self):
        import array_api_compat.numpy as ns
        super().__init__(ns, "cpu", "cpu")

    # --- NumPy's C entry points where array_api_compat's wrappers, or NumPy's own Python layer
    # (`fromnumeric`), only add argument handling: 0.4-4 µs per call on small arrays, and one
    # recorded op makes several such calls. Same signatures and results as the standard's.
    matmul = staticmethod(np.matmul)
    matrix_transpose = staticmethod(operator.attrgetter("mT"))

    @staticmethod
    def reshape(x, shape, copy=None):
        return x.reshape(shape) if not copy else np.array(x, copy=True).reshape(shape)

    @staticmethod
    def permute_dims(x, axes):
        return x.transpose(axes)

    @staticmethod
    def expand_dims(x, axis=0):
        shape = x.shape
        if axis < 0:
            axis += len(shape) + 1
        return x.reshape(shape[:axis] + (1,) + shape[axis:])

    @staticmethod
    def astype(x, dtype, copy=True, device=None):
        return x.astype(dtype, copy=copy)

    @staticmethod
    def sum(x, axis=None, dtype=None, keepdims=False):
        return _add_reduce(x, axis, dtype, None, keepdims)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return _max_reduce(x, axis, None, None, keepdims)

    @staticmethod
    def min(x, axis=None, keepdims=False):
        return _min_reduce(x, axis, None, None, keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        if x.dtype not in _F32_F64 or x.size == 0:     # float16 accumulates in float32; ints -> float64
            return np.mean(x, axis=axis, keepdims=keepdims)
        s = _add_reduce(x, axis, None, None, keepdims)
        return s / (x.size // s.size) if s.size else s

    @staticmethod
    def int_range(x):
        return int(_min_reduce(x, None)), int(_max_reduce(x, None))

    @staticmethod
    def take_along_axis(x, indices, axis=-1):
        # np.take_along_axis builds its index grid in Python (~6 µs): for the common gather of one
        # entry per row of a matrix (cross-entropy's target logits), index it directly
        if x.ndim == 2 and indices.ndim == 2 and axis in (1, -1) and indices.shape[0] == x.shape[0]:
            return x[_row_ids(x.shape[0]), indices]
        return np.take_along_axis(x, indices, axis)

    @staticmethod
    def mask(g, keep):
        # g * keep is 8-10x faster than np.where (bool * float keeps the float dtype), but gives
        # inf * 0 = NaN where an infinite gradient meets a dropped element: PyTorch (and where)
        # give 0 there. One reduction tells whether anything non-finite is present; only then
        # where(). For a contiguous float32/float64 gradient it is BLAS's dot of g with itself
        # (~2x faster than NumPy's sum, and math.isfinite ~1 us cheaper than np.isfinite): an inf or
        # NaN makes it inf or NaN; finite values that overflow it (|g| ~ 1e19 in float32) only take
        # where(), whose values are g * keep's (zeros unsigned).
        if g.dtype in _F32_F64 and g.flags.c_contiguous and g.ndim:
            flat = g.reshape(-1)
            if math.isfinite(_dot(flat, flat)):
                return g * keep
        elif np.isfinite(np.add.reduce(g, axis=None)):
            return g * keep
        return np.where(keep, g, 0.0).astype(g.dtype, copy=False)

    def check_span(self, x, low, high, message, error=IndexError, ignore=None):
        # class targets and ids (integers from 0): one reduction instead of two. As unsigned, a
        # negative value is larger than any in-range one, so max(x viewed as unsigned) <= high
        # holds exactly when every value lies in [0, high]; `ignore` outside [0, high] then cannot
        # lie within the values' span (the result False). Anything else: the portable body.
        u = _UNSIGNED.get(x.dtype)
        if u is not None and low == 0 and high >= 0 and x.size and (ignore is None or not 0 <= ignore <= high):
            if int(_max_reduce(x.view(u), None)) <= high:
                return False
        return Backend.check_span(self, x, low, high, message, error, ignore)

    def zeros(self, shape, dtype=None):
        return np.zeros(shape, dtype=dtype)

    def ones(self, shape, dtype=None):
        return np.ones(shape, dtype=dtype)

    def empty(self, shape, dtype=None):
        return np.empty(shape, dtype=dtype)

    def full(self, shape, fill_value, dtype=None):
        return np.full(shape, fill_value, dtype=dtype)

    def to_numpy(self, x):
        return x

    def from_numpy(self, a, non_blocking=False):
        return a

    def scatter_add_flat(self, n, index, values):
        out = np.zeros(n, dtype=values.dtype)
        np.add.at(out, index, values)
        return out

    def index_positions(self, shape, key):
        return np.arange(math.prod(shape)).reshape(shape)[key]

    def may_share_memory(self, a, b):
        return np.may_share_memory(a, b)

    @staticmethod
    def copy_scaled(dst, src, scale):
        # one pass, no temporary: the multiply writes into the bucket's slice
        np.multiply(src, scale, out=dst)

    @staticmethod
    def refcounts(arrays):
        # A NumPy view holds a reference to the array that owns the memory (`.base` always names
        # the owner, never an intermediate view), and so do memoryviews, DLPack capsules and
        # torch.from_numpy tensors of it: while such a holder lives, the owner's count is higher.
        return [sys.getrefcount(a) for a in arrays]

    def erf(self, x):
        f = _scipy_erf()
        if f is None:
            return Backend.erf(self, x)
        y = f(x)                               # scipy computes float16 in float64: cast back
        # (integers give float64, as every erf does: casting those back would truncate erf to 0)
        return y if y.dtype == x.dtype or x.dtype.kind != "f" else y.astype(x.dtype)

    def index_add_rows(self, n, index, values):
        out = np.zeros((n,) + values.shape[1:], dtype=values.dtype)
        np.add.at(out, index, values)
        return out

    def random_uniform(self, shape, dtype, low=0.0, high=1.0, rng=None):
        a = (rng or self.rng).random(shape, dtype=np.float64) * (high - low) + low
        return a.astype(dtype, copy=False)

    def random_normal(self, shape, dtype, mean=0.0, std=1.0, rng=None):
        a = (rng or self.rng).standard_normal(shape, dtype=np.float64) * std + mean
        return a.astype(dtype, copy=False)

    row_major = staticmethod(np.ascontiguousarray)

    # The LSTM steps (Backend.lstm_forward / lstm_backward). Why a fast path: the portable body
    # builds each step from fresh arrays (~10 temporaries a step), keeps them in lists and stacks
    # them afterwards, and concatenates [h | c]; here every step writes its results straight into
    # preallocated (T, B, .) arrays with out=, and the gate maths takes fewer passes:
    #   s(a) = 1 / (1 + exp(-a)) in place, in 4 passes (no clamp: exp overflows to inf, giving
    #   exactly 0, so overflow warnings are silenced instead); and tanh(a_g) = 2 s(2 a_g) - 1,
    #   so one sigmoid sweep covers all four blocks (NumPy's float32 tanh is ~3x its exp).
    #   The negation and the doubling of the g block are folded into wn = -w_hh^T (g columns x2,
    #   row-major, once per call); a step is exp(h wn - xs[t] - [0, 0, xs_g[t], 0]) + 1,
    #   reciprocal, and 2 s - 1 on the g block (subtracting xs_g twice per step beats a negated,
    #   doubled copy of xs: that copy alone is 0.6 ms at the benchmark's (64, 32, 1024) xs).
    # Backward: the factors of da that do not depend on dh, dc are computed over all steps at once
    # into dA itself, which each step then scales in place by dc~ (i, f, g blocks) and dh (o).
    _LSTM_DTYPES = (np.dtype("float32"), np.dtype("float64"))

    @classmethod
    def _lstm_ok(cls, *arrays):
        d = arrays[0].dtype
        return d in cls._LSTM_DTYPES and all(type(a) is np.ndarray and a.dtype == d for a in arrays)

    def lstm_forward(self, xs, h0, c0, w_hh, reverse):
        if not self._lstm_ok(xs, h0, c0, w_hh) or xs.shape[0] == 0:
            return NotImplemented
        T, B, G = xs.shape
        H = G // 4
        g = slice(2 * H, 3 * H)
        wn = np.empty((H, G), dtype=xs.dtype)
        np.negative(w_hh.T, out=wn)
        wn[:, g] *= 2.0
        Y = np.empty((T, B, 2 * H), dtype=xs.dtype)
        ACT = np.empty((T, B, G), dtype=xs.dtype)
        TC = np.empty((T, B, H), dtype=xs.dtype)
        ig = np.empty((B, H), dtype=xs.dtype)
        h, c = h0, c0
        with np.errstate(over="ignore"):
            for t in (range(T - 1, -1, -1) if reverse else range(T)):
                s, x = ACT[t], xs[t]
                sg = s[:, g]
                np.matmul(h, wn, out=s)
                s -= x
                np.subtract(sg, x[:, g], out=sg)  # -a, with the g block -2 a_g
                np.exp(s, out=s)
                s += 1.0
                np.reciprocal(s, out=s)
                sg *= 2.0
                sg -= 1.0                        # tanh(a_g)
                h, cn, tc = Y[t, :, 0:H], Y[t, :, H:2 * H], TC[t]
                np.multiply(s[:, H:2 * H], c, out=cn)
                np.multiply(s[:, 0:H], sg, out=ig)
                cn += ig                         # c' = f c + i g
                np.tanh(cn, out=tc)
                np.multiply(s[:, 3 * H:4 * H], tc, out=h)
                c = cn
        return Y, ACT, TC

    def lstm_backward(self, g, Y, ACT, TC, c0, w_hh, reverse):
        if not self._lstm_ok(g, Y, ACT, TC, c0, w_hh) or ACT.shape[0] == 0:
            return NotImplemented
        T, B, G = ACT.shape
        H = G // 4
        I, F, Gt, O = (ACT[..., k * H:(k + 1) * H] for k in range(4))
        dA = np.empty((T, B, G), dtype=ACT.dtype)
        dI, dF, dG, dO = (dA[..., k * H:(k + 1) * H] for k in range(4))
        # the factors of dc~ (i, f, g blocks) and of dh (o block) in da, for every step:
        # [g i(1-i), c_prev f(1-f), i (1-g^2) | tanh(c) o(1-o)]; s(1-s) in two passes over all
        # four blocks (the g block's is overwritten below): fewer, longer passes than per block
        np.subtract(1.0, ACT, out=dA)
        dA *= ACT
        dI *= Gt
        C = Y[..., H:2 * H]
        if reverse:                              # c_prev of step t is c_{t+1}; of the last, c0
            dF[0:T - 1] *= C[1:T]
            dF[T - 1] *= c0
        else:
            dF[1:T] *= C[0:T - 1]
            dF[0] *= c0
        np.multiply(Gt, Gt, out=dG)
        np.subtract(1.0, dG, out=dG)
        dG *= I
        dO *= TC
        OD = np.multiply(TC, TC)                 # d c / d h through h = o tanh(c): o (1 - tanh(c)^2)
        np.subtract(1.0, OD, out=OD)
        OD *= O
        dA4 = dA.reshape(T, B, 4, H)
        dH, dC = g[..., 0:H], g[..., H:2 * H]
        dh = np.empty((B, H), dtype=ACT.dtype)
        dct = np.empty((B, H), dtype=ACT.dtype)
        dc = np.empty((B, H), dtype=ACT.dtype)
        dct3 = dct.reshape(B, 1, H)
        first = True
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            if first:
                dh[...] = dH[t]
            else:
                np.matmul(dA[prev], w_hh, out=dh)
                dh += dH[t]
            np.multiply(dh, OD[t], out=dct)
            dct += dC[t]
            if not first:
                dct += dc                        # dc~ = dc + dh o (1 - tanh(c)^2)
            dA4[t, :, 0:3, :] *= dct3
            dO[t] *= dh
            np.multiply(dct, F[t], out=dc)
            prev, first = t, False
        np.matmul(dA[prev], w_hh, out=dh)
        return dA, dh, dc

    def window_columns(self, x, kernel, stride, dilation, out_hw):
        # all offsets as one strided view, then a single copy (~10% faster than stacking slices)
        (kh, kw), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_hw
        s0, s1, s2, s3 = x.strides
        view = np.lib.stride_tricks.as_strided(
            x, (x.shape[0], kh, kw, Ho, Wo, x.shape[3]), (s0, s1 * dh, s2 * dw, s1 * sh, s2 * sw, s3),
            writeable=False)
        return np.ascontiguousarray(view)


    def compile_direct_call(self, fn, n_positional, keywords):
        """NumPy's entry points for the wrappers above that only forward their arguments (see
        `Backend.compile_direct_call`; `_DIRECT_CALLS` is the table, checked against the wrappers
        by tests/test_compile_passes.py)."""
        if getattr(fn, "__self__", None) is self:
            fn = fn.__func__
        try:
            entry = _DIRECT_CALLS.get(fn)
        except TypeError:                      # an unhashable callable
            return None
        if entry is None:
            return None
        direct, most_positional, allowed, axis_required = entry
        if n_positional > most_positional or not set(keywords) <= allowed:
            return None
        if axis_required and n_positional < 2 and "axis" not in keywords:
            return None                        # ufunc.reduce's default axis is 0, the wrapper's None
        return direct


# wrapper -> (NumPy function, most positional arguments, keyword names, whether the axis must be
# given) for which a call of the wrapper and of the NumPy function take the same arguments and give
# the same result
_DIRECT_CALLS: dict = {
    NumpyBackend.__dict__["sum"].__func__: (np.add.reduce, 3, frozenset(("axis", "dtype", "keepdims")), True),
    NumpyBackend.__dict__["max"].__func__: (np.maximum.reduce, 2, frozenset(("axis", "keepdims")), True),
    NumpyBackend.__dict__["min"].__func__: (np.minimum.reduce, 2, frozenset(("axis", "keepdims")), True),
    NumpyBackend.__dict__["reshape"].__func__: (np.ndarray.reshape, 2, frozenset(), False),
    NumpyBackend.__dict__["permute_dims"].__func__: (np.ndarray.transpose, 2, frozenset(), False),
    NumpyBackend.__dict__["astype"].__func__: (np.ndarray.astype, 2, frozenset(("copy",)), False),
    NumpyBackend.zeros: (np.zeros, 2, frozenset(("dtype",)), False),
    NumpyBackend.ones: (np.ones, 2, frozenset(("dtype",)), False),
    NumpyBackend.empty: (np.empty, 2, frozenset(("dtype",)), False),
    NumpyBackend.full: (np.full, 3, frozenset(("dtype",)), False),
}


def _row_ids(n, _cache={}):
    """arange(n) as a column, cached (read-only) for the row-wise gathers."""
    r = _cache.get(n)
    if r is None:
        r = np.arange(n)[:, None]
        r.flags.writeable = False
        if len(_cache) < 64:
            _cache[n] = r
    return r


_add_reduce = np.add.reduce
_max_reduce = np.maximum.reduce
_min_reduce = np.minimum.reduce
_F32_F64 = (np.dtype("float32"), np.dtype("float64"))
_dot = np.dot
_UNSIGNED = {np.dtype(f"int{n}"): np.dtype(f"uint{n}") for n in (8, 16, 32, 64)}
_UNSIGNED.update({np.dtype(f"uint{n}"): np.dtype(f"uint{n}") for n in (8, 16, 32, 64)})


class StrictBackend(Backend):
    """array-api-strict on a non-default device, so a creation call that forgets `device=` fails."""

    kind = "strict"
    API_VERSION = "2024.12"

    def __init__(self):
        import array_api_strict as ns
        ns.set_array_api_strict_flags(api_version=self.API_VERSION)
        super().__init__(ns, "strict", ns.Device("device1"))
        self._to_native = {np.dtype(n): getattr(ns, n) for n in DTYPE_NAMES if hasattr(ns, n)}
        self._to_canon = {v: k for k, v in self._to_native.items()}
        self.float_dtypes = frozenset(self._to_native[np.dtype(n)] for n in ("float32", "float64"))

    def dtype(self, dt):
        return self._to_native[dt]

    def canonical(self, native_dtype):
        return self._to_canon[native_dtype]

    def may_share_memory(self, a, b):
        return np.may_share_memory(a._array, b._array)

    def _to_host(self, x):
        # strict refuses __array__ off its CPU device; its private buffer is the host copy.
        return np.array(x._array, copy=True)

    def from_numpy(self, a, non_blocking=False):
        a = np.asarray(a)
        return self.ns.asarray(a, dtype=self._to_native[a.dtype], device=self.native_device)

    def index_positions(self, shape, key):
        # Strict supports only a narrow subset of advanced indexing: resolve the key on the host.
        hkey = tuple(self.to_numpy(k) if type(k).__module__.startswith("array_api_strict") else k for k in key)
        return self.from_numpy(np.arange(math.prod(shape)).reshape(shape)[hkey])

    def getitem(self, x, key):
        keys = key if isinstance(key, tuple) else (key,)
        if not any(hasattr(k, "shape") for k in keys):
            return x[key]
        # advanced keys beyond strict's narrow subset: gather the flat positions
        pos = self.index_positions(tuple(x.shape), keys)
        flat = self.take(self.reshape(x, (-1,)), self.reshape(pos, (-1,)), axis=0)
        return self.reshape(flat, tuple(pos.shape))

    def setitem(self, x, key, value):
        keys = key if isinstance(key, tuple) else (key,)
        if not any(hasattr(k, "shape") for k in keys):
            x[key] = value
            return
        # strict allows only basic keys (and a lone boolean mask) in __setitem__: apply
        # integer-array keys on a host copy and write the result back in place
        host = self.to_numpy(x)
        hkey = tuple(self.to_numpy(k) if hasattr(k, "shape") else k for k in keys)
        host[hkey] = self.to_numpy(value) if hasattr(value, "shape") else value
        x[...] = self.from_numpy(host)


class CupyBackend(Backend):
    """CuPy on one GPU. Fast paths: cupyx.scatter_add, cupyx.scipy.special.erf, the device RNG."""

    kind = "cupy"
    # a host read waits for the GPU: index checks are deferred to the next natural sync (see
    # Backend.defer_check). CUDA_LAUNCH_BLOCKING=1 (PyTorch's switch for debugging asynchronous
    # errors) makes them immediate, so the error is raised at the op's own line.
    defers_checks = True
    IMMEDIATE_CHECKS_HINT = "run with CUDA_LAUNCH_BLOCKING=1"

    def __init__(self, index: int):
        import cupy
        import array_api_compat.cupy as ns
        self.cupy = cupy
        super().__init__(ns, f"cuda:{index}", cupy.cuda.Device(index))
        if os.environ.get("CUDA_LAUNCH_BLOCKING", "") == "1":
            self.defers_checks = False
        self.linalg = _RaisingLinalg(ns.linalg)  # type: ignore[attr-defined]  # array_api_compat.cupy has no stubs
        # a bad index found after the last read is still reported (registered after CuPy's own
        # exit handlers, so it runs before them)
        atexit.register(_check_pending_at_exit, self)

    def _on(self):
        return self.native_device

    def asarray(self, obj, dtype=None, copy=None):
        with self.native_device:
            return self.ns.asarray(obj, dtype=dtype, copy=copy)

    def zeros(self, shape, dtype=None):
        with self.native_device:
            return self.cupy.zeros(shape, dtype=dtype or np.float64)

    def ones(self, shape, dtype=None):
        with self.native_device:
            return self.cupy.ones(shape, dtype=dtype or np.float64)

    def empty(self, shape, dtype=None):
        with self.native_device:
            return self.cupy.empty(shape, dtype=dtype or np.float64)

    def full(self, shape, fill_value, dtype=None):
        with self.native_device:
            return self.cupy.full(shape, fill_value, dtype=dtype)

    def arange(self, start, stop=None, step=1, dtype=None):
        with self.native_device:
            return self.cupy.arange(start, stop, step, dtype=dtype)

    def linspace(self, start, stop, num, dtype=None, endpoint=True):
        with self.native_device:
            return self.cupy.linspace(start, stop, num, dtype=dtype, endpoint=endpoint)

    def eye(self, n_rows, n_cols=None, k=0, dtype=None):
        with self.native_device:
            return self.cupy.eye(n_rows, n_cols, k=k, dtype=dtype or np.float64)

    def may_share_memory(self, a, b):
        return self.cupy.may_share_memory(a, b)

    # Named fast path: under CUDA-graph capture CuPy refuses to call cuBLAS, so float32/float64
    # matmuls call cuBLAS's GEMM directly on CuPy's handle (xbp/_cublas.py, the stream set before
    # capture); elsewhere, and for other dtypes, CuPy's own matmul (the portable path).
    def matmul(self, a, b):
        if self.capturing and _cublas.supports(a, b):
            return self.matmul_cublas(a, b)
        return self.ns.matmul(a, b)

    def matmul_cublas(self, a, b):
        """``matmul`` by one direct cuBLAS GEMM call (capturable), NumPy's matmul semantics."""
        return _cublas.matmul(self.cupy, a, b)

    def copy_scaled(self, dst, src, scale):
        # one elementwise kernel writing into the bucket's slice (no temporary array)
        self.cupy.multiply(src, scale, out=dst)

    def unaliased(self, dst, src):
        if isinstance(src, self.cupy.ndarray) and self.cupy.may_share_memory(dst, src):
            return src.copy()
        return src

    def setitem(self, x, key, value):
        x[key] = self.unaliased(x, value)

    def _to_host(self, x):
        return self.cupy.asnumpy(x)

    def from_numpy(self, a, non_blocking=False):
        # CuPy copies a page-locked array straight from the caller's buffer, asynchronously, and a
        # pageable one through a staging buffer of its own (_array_default in cupy/_core/core.pyx,
        # v14.2.0). Only in the first case can the caller's next write to `a` race the copy, so only
        # there does PyTorch's default (non_blocking=False: `a` may be reused at once) wait, for that
        # copy alone. Pageable uploads, the usual batch, stay asynchronous: no host sync in a step.
        with self.native_device:
            return self.cupy.asarray(a, blocking=not non_blocking and host_is_pinned(a))

    def synchronize(self):
        self.native_device.synchronize()
        if self._pending:
            self.check_pending()

    # cupyx.scatter_add is CUDA's atomicAdd, which CuPy 14.2 takes for int32, int64, uint32, uint64,
    # float16, float32 and float64 only: any other dtype raises TypeError ("cupy.add.at only
    # supports ...", cupy/_core/_routines_indexing.pyx:944-952). bool, int8, uint8, int16 and uint16
    # values are added as int32 and the sums cast back, which wraps as np.add.at does (the cast keeps
    # the low bits) and gives logical or for bool.
    _ATOMIC_ADD_DTYPES = frozenset(np.dtype(n) for n in ("int32", "int64", "uint32", "uint64",
                                                         "float16", "float32", "float64"))

    def _scatter_added(self, shape, index, values):
        """zeros(shape) with values[i] added at index[i] along the first axis (one scatter kernel)."""
        import cupyx
        dt = values.dtype
        wide = dt not in self._ATOMIC_ADD_DTYPES and dt.kind in "biu"
        with self.native_device:
            out = self.cupy.zeros(shape, dtype=np.int32 if wide else dt)
            cupyx.scatter_add(out, index, values.astype(np.int32) if wide else values)
            return out.astype(dt) if wide else out

    def scatter_add_flat(self, n, index, values):
        return self._scatter_added((n,), index, values)

    def index_positions(self, shape, key):
        with self.native_device:
            return self.cupy.arange(math.prod(shape)).reshape(shape)[key]

    def index_add_rows(self, n, index, values):
        return self._scatter_added((n,) + values.shape[1:], index, values)

    def erf(self, x):
        import cupyx.scipy.special
        if x.dtype.kind in "biu":
            # integers give float64, as SciPy's erf does: cupyx's first loop an int16/uint16 casts to
            # safely is 'f->f' (float32), an int8's 'e->d' (cupyx/scipy/special/_erf.py:6-8)
            return cupyx.scipy.special.erf(x.astype(np.float64))
        y = cupyx.scipy.special.erf(x)
        # cupyx maps float16 to float64 ('e->d'): keep the input's dtype, so exact gelu stays half
        return y if y.dtype == x.dtype else y.astype(x.dtype)

    # The device RNG keeps its state on the GPU (so a captured CUDA graph draws fresh numbers).
    # Building it runs an init kernel over CuPy's generator states, so manual_seed only records
    # the seed and the generator is built at the first draw: seeding (every test does it) is free.
    def seed(self, s):
        self._seed = s
        self._rng = None

    @property
    def rng(self):
        if self._rng is None:
            self._rng = self.new_rng(getattr(self, "_seed", _SEED[0]))
        return self._rng

    def new_rng(self, seed):
        with self.native_device:
            return self.cupy.random.default_rng(seed)

    # CuPy's generators keep their cuRAND states in one device array (`bit_generator._state`, not
    # public API, checked on a GPU by tests/test_tensor_surface.py): the state is a host copy of
    # its bytes, and restoring writes them back
    def rng_state(self, rng):
        # CuPy keeps a Generator's state on the device in its bit generator's private `_state`
        # array (cupy.random.Generator.bit_generator): there is no public accessor to use instead
        state = getattr(getattr(rng, "bit_generator", None), "_state", None)
        if state is None:
            raise RuntimeError(f"get_rng_state: this CuPy's {type(rng).__name__} exposes no device state "
                               "(bit_generator._state); the random stream of cuda cannot be saved")
        return self.cupy.asnumpy(state).view(np.uint8).copy()

    def set_rng_state(self, rng, state):
        dst = rng.bit_generator._state
        src = np.asarray(state, dtype=np.uint8)
        if src.nbytes != dst.nbytes:
            raise ValueError(f"set_rng_state: a CUDA generator state has {dst.nbytes} bytes, got {src.nbytes} "
                             "(a state saved from another device or GPU model)")
        with self.native_device:
            dst[...] = self.cupy.asarray(src.view(dst.dtype))

    def random_uniform(self, shape, dtype, low=0.0, high=1.0, rng=None):
        with self.native_device:
            a = (rng or self.rng).random(shape, dtype=np.float64 if dtype == np.float64 else np.float32)
            return (a * (high - low) + low).astype(dtype, copy=False)

    def random_normal(self, shape, dtype, mean=0.0, std=1.0, rng=None):
        with self.native_device:
            a = (rng or self.rng).standard_normal(shape, dtype=np.float64 if dtype == np.float64 else np.float32)
            return (a * std + mean).astype(dtype, copy=False)

    def random_integers(self, low, high, shape, dtype, rng=None):
        with self.native_device:
            return (rng or self.rng).integers(low, high, size=shape).astype(dtype, copy=False)

    def random_permutation(self, n, rng=None):
        # cupy.random.Generator has no permutation(): the order that sorts n uniform draws is a
        # uniformly random permutation (ties have probability ~n^2 / 2^53)
        with self.native_device:
            return self.cupy.argsort((rng or self.rng).random(n))

    # CuPy's float floor division is floor(a / b) and its remainder a - floor(a / b) * b
    # (cupy/_core/include/cupy/carray.cuh `_floor_divide`, _routines_math.pyx, v14.2.0): where a / b
    # rounds up to an integer they differ from NumPy, Python and PyTorch (1.0 // 0.1 is 10.0, not
    # 9.0; 1.0 % 0.1 is 0.0, not 0.09999999999999995). Floats take NumPy's divmod, composed of CuPy
    # ufuncs (`float_divmod`); integers keep CuPy's kernels, which already round toward -inf.
    def floor_divide(self, a, b):
        if _any_float(a, b):
            with self.native_device:
                return float_divmod(self.cupy, a, b)[0]
        return a // b

    def remainder(self, a, b):
        if _any_float(a, b):
            with self.native_device:
                return float_divmod(self.cupy, a, b)[1]
        return a % b

    # array-api-compat's CuPy sign and clip handle NaN with boolean-mask writes, i.e. a device ->
    # host read per call (abs/sign backward, clamp, clip_grad_value_ in every step): CuPy's own
    # kernels give the standard's results (sign(NaN) = NaN; clip as minimum(maximum(x, lo), hi))
    def sign(self, x):
        return self.cupy.sign(x)

    # The portable clip keeps x's dtype and ignores a Python-int bound beyond an integer dtype's
    # range (array_api_compat/common/_aliases.py:412-418); maximum/minimum alone would turn an
    # integer x with a float bound into float64, and raise OverflowError for an out-of-range int
    # bound (CuPy 14 packs a weak Python int into the loop's dtype: cupy/_core/_scalar.pyx:379).
    def clip(self, x, min=None, max=None):  # noqa: A002
        dt = x.dtype
        if dt.kind in "iu":
            info = np.iinfo(dt)
            if type(min) is int and min <= info.min:
                min = None  # noqa: A001
            if type(max) is int and max >= info.max:
                max = None  # noqa: A001
        if min is not None:
            x = self.cupy.maximum(x, min)
        if max is not None:
            x = self.cupy.minimum(x, max)
        return x if x.dtype == dt else x.astype(dt)


class _RaisingLinalg:
    """CuPy's linalg namespace (array-api-compat's) whose inv, solve and cholesky raise LinAlgError
    for a singular (or, for cholesky, not positive-definite) matrix, as NumPy's do. CuPy ignores the
    status cuSOLVER/cuBLAS report unless ``cupyx.errstate(linalg='raise')`` is in effect (the
    default, 'ignore', returns the garbage: cupyx/_ufunc_config.py:42-51,
    cupy/linalg/_util.py:110-160). Reading that status is a host sync per call, as in PyTorch,
    whose linalg.inv/solve/cholesky synchronise on CUDA too. Everything else is CuPy's as is (svd,
    eigh and qr keep 'ignore': pinv, lstsq and the norms call svd, and NumPy raises there only
    when an iteration does not converge)."""

    RAISING = frozenset(("inv", "solve", "cholesky"))

    def __init__(self, ns):
        self._ns = ns

    def __getattr__(self, name):
        fn = getattr(self._ns, name)
        if name not in self.RAISING:
            return fn

        def checked(*args, **kwargs):
            import cupyx
            with cupyx.errstate(linalg="raise"):
                return fn(*args, **kwargs)
        checked.__name__ = checked.__qualname__ = name
        return checked

    def __dir__(self):
        return dir(self._ns)


class _PendingCheck:
    """One deferred check: key = (message, low, high, error class, dtype kind), span = (2,) device
    array (min, max) of the checked values, count = how many calls it stands for (merged)."""

    __slots__ = ("key", "span", "count")

    def __init__(self, key, span, count):
        self.key, self.span, self.count = key, span, count


def _index_message(what, n, negative):
    span = f"[{-n}, {n})" if negative else f"[0, {n})"
    return f"{what}: index out of range: values span [{{lo}}, {{hi}}], outside {span} for a dim of size {n}"


def _fill_span(message: str, lo, hi) -> str:
    """A check's message with the values found put in place of ``{lo}`` and ``{hi}``."""
    return message.replace("{lo}", str(lo)).replace("{hi}", str(hi))


def _check_pending_at_exit(backend):
    try:
        backend.check_pending()
    except (IndexError, ValueError) as e:
        warnings.warn(f"xbp: a deferred check failed and was never read before exit: {e}", RuntimeWarning,
                      stacklevel=1)
    except Exception:  # noqa: BLE001 - the device may already be gone at interpreter exit
        pass


def check_range(xp: Backend, x, low, high, message: str, error: type = IndexError) -> None:
    """Raise `error` if a value of the non-empty array `x` (of backend `xp`) is outside
    [low, high] (inclusive; NaN is outside). `message` names the op, the allowed range and the fix,
    with ``{lo}`` and ``{hi}`` for the values found.

    Where a host read is cheap (NumPy, strict) the check is immediate: one read of min and max
    together (`Backend.check_span`, which `xbp.compile` replays on every call). Where it is a
    device sync (`Backend.defers_checks`: CuPy) it is recorded on the device and raised at the next
    host read or synchronize() (`Backend.defer_check`), so a training step does not wait for the GPU.
    """
    if xp.defers_checks:
        xp.defer_check(x, low, high, message, error)
        return
    xp.check_span(x, low, high, message, error)


class HostReadCount:
    """What `count_host_reads` yields: `reads`, the device -> host transfers made through the
    backend's `to_numpy` (deferred checks included) since the block began (final after it)."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._start = backend.host_reads
        self._end: "int | None" = None

    @property
    def reads(self) -> int:
        """Transfers so far (inside the block), or in all (after it)."""
        return (self.backend.host_reads if self._end is None else self._end) - self._start


@contextlib.contextmanager
def count_host_reads(spec=None):
    """Count the device -> host transfers of one backend in a block (a test hook: CI keeps a
    training step at 0 reads on devices where a read is a sync)::

        with count_host_reads("cuda") as c:
            step()
        assert c.reads == 0

    Counts every call of the backend's generic `to_numpy` path (strict, CuPy, and any backend that
    does not replace it); NumPy's `to_numpy` is free (the data is on the host) and not counted."""
    c = HostReadCount(get_backend(spec))
    try:
        yield c
    finally:
        c._end = c.backend.host_reads


_SCIPY_ERF = []


def _scipy_erf():
    """scipy.special.erf where SciPy is installed (an optional fast path), else None."""
    if not _SCIPY_ERF:
        try:
            from scipy.special import erf
        except ImportError:
            erf = None
        _SCIPY_ERF.append(erf)
    return _SCIPY_ERF[0]


# ---------------------------------------------------------------------------------------------
# device lookup
# ---------------------------------------------------------------------------------------------
_BACKENDS: dict = {}
_SEED = [0]


def _cupy_or_error(what: str):
    try:
        import cupy
    except ImportError:
        raise DeviceError(f"{what}: CuPy is not installed; {CUDA_INSTALL_HINT}") from None
    try:
        ok = cupy.cuda.is_available()
    except Exception:  # noqa: BLE001 - CuPy raises driver-specific errors here
        ok = False
    if not ok:
        raise DeviceError(f"{what}: CuPy is installed but sees no CUDA GPU (driver or device missing); "
                          "use device='cpu' on this machine")
    return cupy


def get_backend(spec=None) -> Backend:
    """The Backend for a device spec: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"strict"``, a
    `device`, a Backend, or None for the default device."""
    if spec is None:
        spec = _DEFAULT[0]
    if isinstance(spec, Backend):
        return spec
    b = _BACKENDS.get(spec)
    if b is not None:
        return b
    name = str(spec).strip().lower()
    if name == "cuda":
        name = "cuda:0"
    b = _BACKENDS.get(name)
    if b is None:
        if name == "cpu":
            b = NumpyBackend()
        elif name == "strict":
            b = StrictBackend()
        elif name.startswith("cuda:") and name[5:].isdigit():
            cupy = _cupy_or_error(f"device {spec!r}")
            idx = int(name[5:])
            if idx >= cupy.cuda.runtime.getDeviceCount():
                raise DeviceError(f"device {spec!r}: only {cupy.cuda.runtime.getDeviceCount()} CUDA GPU(s) present")
            if idx > 0:
                # CuPy runs a kernel on whichever device is current; until every op makes its
                # tensor's device current (and that is tested on a multi-GPU machine), refuse
                # rather than compute on the wrong GPU
                raise DeviceError(f"device {spec!r}: only cuda:0 is supported so far (ops on cuda:N "
                                  "would run on the current device); select the GPU with "
                                  "CUDA_VISIBLE_DEVICES=N and use 'cuda'")
            b = CupyBackend(idx)
        else:
            raise DeviceError(f"unknown device {spec!r}; use 'cpu', 'cuda', 'cuda:N' or 'strict'")
        _BACKENDS[name] = b
    _BACKENDS[spec if isinstance(spec, str) else name] = b
    return b


def is_device_array(v) -> bool:
    """Whether `v` is a NumPy, CuPy or array-api-strict array (recognised by type: CuPy arrays have
    no ``__array_namespace__``, and NumPy scalars are not arrays)."""
    t = type(v)
    if t is np.ndarray:
        return True
    mod = t.__module__
    return (mod.startswith("cupy") or mod.startswith("array_api_strict")) and hasattr(v, "shape")


def backend_of(array) -> Backend:
    """The Backend that owns a NumPy, CuPy or array-api-strict array."""
    t = type(array)
    if t is np.ndarray or isinstance(array, np.generic):
        return get_backend("cpu")
    mod = t.__module__
    if mod.startswith("cupy"):
        return get_backend(f"cuda:{array.device.id}")
    if mod.startswith("array_api_strict"):
        return get_backend("strict")
    raise TypeError(f"xbp cannot wrap an array of type {t.__module__}.{t.__name__}; "
                    "pass a NumPy, CuPy or array-api-strict array, or a Python number/list")


def _any_float(a, b) -> bool:
    """Whether floor division of `a` by `b` (arrays or Python numbers) is a float division."""
    return any(type(v) is float or (hasattr(v, "dtype") and v.dtype.kind == "f") for v in (a, b))


def float_divmod(xp, a, b):
    """``(a // b, a % b)`` for floats, as NumPy's npy_divmod computes them (and Python's float
    divmod, and PyTorch): from C's fmod, so the quotient is exact where floor(a / b) is not, the
    remainder takes b's sign and lies in [0, |b|). `xp` is a NumPy-like module (cupy, numpy: the
    test checks this against NumPy's own floor_divide and remainder); operands are arrays or Python
    numbers, broadcast; b == 0 gives a / b and NaN, as NumPy does."""
    mod = xp.fmod(a, b)
    div = (a - mod) / b
    quotient = a / b
    zero = xp.zeros_like(mod)
    # a remainder of the wrong sign moves one b over (and the quotient one down)
    fix = (mod != 0) & ((b < 0) != (mod < 0))
    mod = xp.where(fix, mod + b, mod)
    div = xp.where(fix, div - 1.0, div)
    mod = xp.where(mod == 0, xp.copysign(zero, b), mod)          # +-0 with b's sign
    floordiv = xp.floor(div)
    floordiv = xp.where(div - floordiv > 0.5, floordiv + 1.0, floordiv)   # (a - mod) / b was inexact
    floordiv = xp.where(div == 0, xp.copysign(zero, quotient), floordiv)  # +-0 with a / b's sign
    floordiv = xp.where(b == 0, quotient, floordiv)
    return floordiv, mod


def host_is_pinned(a) -> bool:
    """Whether host array `a` lies in page-locked memory CuPy allocated (`cupyx.empty_pinned`,
    `Tensor.pin_memory`, the DataLoader's pinned batches): their buffers are CuPy
    PinnedMemoryPointer objects at the root of the array's `.base` chain."""
    base = a
    while getattr(base, "base", None) is not None:
        base = base.base
    return "PinnedMemory" in type(base).__name__


def cuda_available() -> bool:
    """True where CuPy is installed and sees a GPU."""
    try:
        _cupy_or_error("cuda")
        return True
    except DeviceError:
        return False


_DEFAULT = [os.environ.get("XBP_DEVICE", "cpu") or "cpu"]


def set_default_device(spec) -> None:
    """Device that creation functions use when none is given (also: env var ``XBP_DEVICE``)."""
    _DEFAULT[0] = get_backend(spec).device


def get_default_device() -> device:
    """The device creation functions use when given no ``device=`` (see `set_default_device`)."""
    return get_backend(None).device


def manual_seed(seed: int) -> None:
    """Seed every backend's random generator (reproducible on each device)."""
    _SEED[0] = int(seed)
    for b in set(_BACKENDS.values()):
        b.seed(int(seed))
