"""`xbp.compile` on cuda: the step replayed as a CUDA graph (issue 15, "GPU"). NOT YET RUN ON A GPU.

`xbp._compile` sends a call here when its tensors (or, with none, the modules it uses) are on
cuda (`handles`, one line in `_Compiled.__call__`). Per signature (the same key as the CPU plan:
shapes, dtypes, devices, grad mode, train/eval), a `GraphedStep` goes through:

1. warm-up: calls 1 and 2 run eagerly on a side stream, allocating from a private
   ``cupy.cuda.MemoryPool`` (lazily made state, such as the optimizer's moments, exists before
   capture and the pool holds the step's blocks);
2. capture: call 3 copies the tensor arguments that do not require grad into static input
   buffers and runs the step on them between ``stream.begin_capture()`` and ``end_capture()``
   (nothing executes during capture), with the backend's ``capturing`` flag set so matmuls go to
   cuBLAS directly (`xbp._cublas`; CuPy refuses cuBLAS under capture) and the optimizer hook set
   so learning rates and step counts are device scalars (`_DeviceScalars`); the graph is then
   launched once to perform call 3;
3. replay: each later call checks the guards (the same parameter, buffer, gradient-owner and
   optimizer-state arrays as at capture), copies the inputs into the static buffers, writes
   changed learning rates / step counts into their device scalars (a fill each, only when
   changed), launches the graph on the current stream, and advances the host's step counts.
   Returned tensors are copies of the graph's output buffers (the next replay overwrites those).

A guard that flips (``p.data = ...``, an optimizer's ``load_state_dict``) drops the graph and its
pool; the step warms up and captures again (at most `MAX_RECAPTURES` times, then eagerly for
good). A capture that fails (a host read such as ``.item()``, a CuPy function that calls a CUDA
library other than the GEMM, an optimizer that replaces its state numbers each step, a learning
rate changed inside the step) restores the optimizers' step counts and gradients, runs that call
eagerly and keeps that signature eager, with a one-time warning naming the cause
(``fullgraph=True``: `CompileError`). On cuda the fallback is eager execution: the CPU plan
recorder traces NumPy arrays only.

Random numbers: CuPy's ``Generator`` (xbp's cuda RNG) keeps its state on the device and its draws
are kernels, so each replay draws fresh numbers and advances the state.

The CuPy calls are behind `_CupyDriver`; tests replace it (`make_driver`) to check this state
machine on the CPU.
"""
from __future__ import annotations

import contextlib
import functools
import sys
import weakref

from ._backend import _PendingCheck
from ._pyguards import PythonState
from ._tensor import Tensor, _wrap

WARMUP_CALLS = 2
MAX_RECAPTURES = 3
# Every private pool stays referenced for the life of the process: arrays allocated from it (the
# optimizer state made in warm-up, gradients made in capture) can outlive their graph, and in
# CuPy versions whose PooledMemory holds only a weak reference to its pool, a collected pool
# would free their memory under them. A dropped graph's pool releases its free blocks instead.
LIVE_POOLS: list = []


def keep_pool(pool):
    """Register `pool` in `LIVE_POOLS` and return it."""
    LIVE_POOLS.append(pool)
    return pool


def release_pool(pool) -> None:
    """A dropped graph's pool: its cached free blocks go back to the driver (live arrays stay)."""
    free = getattr(pool, "free_all_blocks", None)
    if free is not None:
        free()


class CaptureError(RuntimeError):
    """A step cannot be captured as a CUDA graph (the message names the cause)."""


# --- the CuPy side (replaceable) ------------------------------------------------------------------
class _CupyDriver:
    """The CuPy calls of graph capture and replay for one backend (device)."""

    def __init__(self, backend):
        self.backend = backend
        self.cp = backend.cupy

    def unavailable(self):
        """None, or why this CuPy cannot capture graphs."""
        cuda = self.cp.cuda
        missing = [n for n, ok in (("Stream.begin_capture", hasattr(getattr(cuda, "Stream", None), "begin_capture")),
                                   ("MemoryPool", hasattr(cuda, "MemoryPool")),
                                   ("using_allocator", hasattr(cuda, "using_allocator"))) if not ok]
        if missing:
            return ("CUDA-graph capture is unavailable: this CuPy has no " + ", ".join(f"cupy.cuda.{n}" for n in missing)
                    + " (the CuPy emulation models no graphs)")
        return None

    def new_stream(self):
        with self.backend.native_device:
            return self.cp.cuda.Stream(non_blocking=True)

    def new_pool(self):
        return self.cp.cuda.MemoryPool()

    @contextlib.contextmanager
    def eager_on(self, stream, pool):
        """Run eagerly on the side stream, allocating from the private pool."""
        self.backend.native_device.synchronize()
        with self.backend.native_device, stream, self.cp.cuda.using_allocator(pool.malloc):
            yield
        stream.synchronize()

    def capture(self, stream, pool, fn):
        """(graph, fn's result): fn run under stream capture into `pool`."""
        from . import _cublas
        self.backend.native_device.synchronize()
        with self.backend.native_device, stream, self.cp.cuda.using_allocator(pool.malloc):
            _cublas.set_stream(stream.ptr)
            mode = getattr(self.cp.cuda.runtime, "streamCaptureModeRelaxed", None)
            try:
                stream.begin_capture(mode) if mode is not None else stream.begin_capture()
            except TypeError:
                stream.begin_capture()
            try:
                out = fn()
            except BaseException:
                with contextlib.suppress(Exception):
                    stream.end_capture()
                raise
            graph = stream.end_capture()
        return graph, out

    def launch(self, graph):
        graph.launch(self.cp.cuda.get_current_stream())

    def copy_into(self, dst, src):
        self.cp.copyto(dst, src)

    def clone(self, a):
        return a.copy()

    def scalar(self, value):
        with self.backend.native_device:
            return self.cp.full((), value, dtype=self.cp.float64)

    def set_scalar(self, a, value):
        a.fill(value)


_COMM_MODULES = ("xbp.distributed._mpi", "xbp.distributed._nccl")
_COLLECTIVES = ("barrier", "all_reduce", "reduce", "broadcast", "all_gather", "all_gather_flat",
                "reduce_scatter_flat", "gather", "scatter", "send", "recv")


@contextlib.contextmanager
def watch_communication(on_call):
    """While active, every communication method of xbp.distributed's communicators (MPI, NCCL)
    calls ``on_call(name)`` before it runs. A recording or a capture uses it to refuse a step that
    communicates: the call runs for real, but neither a plan nor a CUDA graph would replay the
    host side of it (DDP's buckets, MPI's progress, the waits). Only modules already imported are
    patched (looked up in sys.modules: a step without xbp.distributed loads no MPI)."""
    saved = []
    for mod in _COMM_MODULES:
        m = sys.modules.get(mod)
        for c in [v for v in vars(m).values() if isinstance(v, type) and v.__module__ == mod] if m else ():
            for n in _COLLECTIVES:
                if n in c.__dict__:
                    saved.append((c, n, c.__dict__[n]))
                    setattr(c, n, _watched(c.__dict__[n], n, on_call))
    try:
        yield
    finally:
        for c, n, orig in reversed(saved):
            setattr(c, n, orig)


def _watched(orig, name, on_call):
    @functools.wraps(orig)
    def m(self, *args, **kw):
        on_call(name)
        return orig(self, *args, **kw)
    return m


def communicates(name):
    """Why a step that called communicator method `name` runs eagerly (a plan's and a graph's reason)."""
    return (f"the step communicates ({name} of xbp.distributed: DistributedDataParallel's gradient all-reduce, "
            "or a collective called in the step), which neither a recorded plan nor a CUDA graph replays (its "
            "host side: buckets, MPI progress, waits)")


def make_driver(backend):
    """The driver for `backend` (tests replace this function)."""
    return _CupyDriver(backend)


# --- discovery --------------------------------------------------------------------------------------
def _closure_objects(fn, cls):
    """Instances of `cls` the function is, is bound to, closes over or names as globals."""
    out, seen = [], set()

    def add(o):
        if isinstance(o, cls) and id(o) not in seen:
            seen.add(id(o))
            out.append(o)
    add(getattr(fn, "__self__", None))
    add(fn)
    code = getattr(fn, "__code__", None)
    if code is not None:
        for cell in getattr(fn, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                add(cell.cell_contents)
        g = getattr(fn, "__globals__", {})
        for n in code.co_names:
            add(g.get(n))
    return out


def _modules(fn):
    from .nn.module import Module
    return [m for top in _closure_objects(fn, Module) for m in top.modules()]


def _optimizers(fn):
    from .optim.optimizer import Optimizer
    return _closure_objects(fn, Optimizer)


def handles(compiled, tensors) -> bool:
    """Whether a call of `compiled` goes to the CUDA-graph path: its tensors are on cuda, or it
    takes none and its modules' parameters are."""
    if tensors:
        return any(t.xp.kind == "cupy" for t in tensors)
    for m in _modules(compiled.fn):
        for p in m.parameters():
            return p.xp.kind == "cupy"
    return False


# --- device scalars for the optimizers --------------------------------------------------------------
class _DeviceScalars:
    """Learning rates (one per param group) and step counts (one per parameter state) as 0-d
    float64 device arrays. Made before capture; the capture hook hands them to the update
    functions (and adds ``step += 1`` into the graph); before each launch `upload` writes what
    changed on the host; after it `advance` counts the step on the host."""

    def __init__(self, driver, optimizers):
        self.driver = driver
        self.lr = {}            # id(group) -> [group, device scalar, last value written]
        self.steps = {}         # id(state dict) -> [state dict, device scalar, host value expected]
        self.used: dict = {}        # id(state dict) -> its steps entry, for the states the step updates
        for opt in optimizers:
            for g in opt.param_groups:
                v = float(g["lr"])
                self.lr[id(g)] = [g, driver.scalar(v), v]
            for st in opt.state.values():
                if isinstance(st.get("step"), (int, float)) and not isinstance(st.get("step"), bool):
                    self.steps[id(st)] = [st, driver.scalar(float(st["step"])), st["step"]]

    def hook(self, opt, group, sts, hyper, states):
        """`xbp.optim.optimizer.CAPTURE_HOOK` during capture."""
        entry = self.lr.get(id(group))
        if entry is None:
            raise CaptureError(f"{type(opt).__name__} is not reachable from the step's closure, so its learning "
                               "rate cannot be made a device scalar")
        hyper = dict(hyper, lr=entry[1])
        if "step" in states:
            steps = []
            for st in sts:
                e = self.steps.get(id(st))
                if e is None:
                    raise CaptureError(f"{type(opt).__name__}: a parameter's step count appeared during capture "
                                       "(its first step): warm-up should have made it")
                sd = e[1]
                sd += 1                     # in the graph: the device count advances every replay
                steps.append(sd)
                self.used[id(st)] = e
            states = dict(states, step=steps)
        return hyper, states

    def upload(self):
        """Before a launch: write learning rates and step counts the host changed."""
        for e in self.lr.values():
            v = float(e[0]["lr"])
            if v != e[2]:
                self.driver.set_scalar(e[1], v)
                e[2] = v
        for e in self.used.values():
            if e[0]["step"] != e[2]:
                # the device holds the count before the step; the graph adds 1
                self.driver.set_scalar(e[1], float(e[0]["step"]))
                e[2] = e[0]["step"]

    def captured(self):
        """After the capture call's launch: its host code already counted this step, and the
        device count (made from the host's before capture, +1 in the graph) agrees."""
        for e in self.used.values():
            e[2] = e[0]["step"]

    def advance(self):
        """After a launch: the host's step counts follow the device's."""
        for e in self.used.values():
            e[0]["step"] += 1
            e[2] = e[0]["step"]

    def lr_values(self):
        return [float(e[0]["lr"]) for e in self.lr.values()]


# --- one signature's graph ----------------------------------------------------------------------------
def _substitute(v, mapping):
    if isinstance(v, Tensor):
        return mapping.get(id(v), v)
    if type(v) in (list, tuple):
        return type(v)(_substitute(e, mapping) for e in v)
    if type(v) is dict:
        return {k: _substitute(e, mapping) for k, e in v.items()}
    return v


def _out_template(out):
    if isinstance(out, Tensor):
        if out.requires_grad and out.grad_fn is not None:
            raise CaptureError("the step returns a tensor on the autograd graph (its backward would run outside "
                               "the graph): compile the whole step, or run the forward under xbp.no_grad()")
        return ("tensor", out.array, out.xp)
    if isinstance(out, (list, tuple)) and not hasattr(out, "_fields"):
        return ("seq", type(out), [_out_template(e) for e in out])
    if isinstance(out, dict):
        return ("dict", list(out.keys()), [_out_template(e) for e in out.values()])
    if isinstance(out, (int, float, str, bool, type(None))):
        return ("value", out)
    raise CaptureError(f"the step returns a {type(out).__name__}, which a graph replay cannot rebuild")


def _rebuild(t, driver):
    kind = t[0]
    if kind == "tensor":
        return _wrap(driver.clone(t[1]), t[2])
    if kind == "seq":
        return t[1](_rebuild(e, driver) for e in t[2])
    if kind == "dict":
        return dict(zip(t[1], (_rebuild(e, driver) for e in t[2])))
    return t[1]


# _guard_failure's answer when the default generator was reseeded (xbp.manual_seed) since capture:
# the graph is captured again (not counted against MAX_RECAPTURES)
RESEEDED = "the default random generator was reseeded since capture (xbp.manual_seed)"


class GraphedStep:
    """One signature's CUDA graph: warm-up count, static inputs, pool, graph, guards."""

    def __init__(self, compiled, key, backend, driver):
        self.compiled = compiled
        self.key = key
        self.backend = backend
        self.driver = driver
        self.stream = driver.new_stream()
        self.recaptures = 0
        self._reset()

    def _reset(self):
        if getattr(self, "pool", None) is not None:
            release_pool(self.pool)
        self.warm = 0
        self.pool = keep_pool(self.driver.new_pool())
        self.graph = None
        self.static: list = []          # (position in tensors, static Tensor) for the copied inputs
        self.direct: list = []          # (position, tensor, array) for tensors used as they are
        self.repeats: list = []         # (position, position of its first occurrence)
        self.guards: list = []          # (owner, attribute getter, object expected)
        self.grads: list = []           # (parameter, gradient tensor after the step)
        self.checks: list = []          # deferred checks captured in the graph (_queue_checks)
        self.scalars = None
        self.py_state = None
        self.out = None
        self.launches = 0

    def __call__(self, tensors, args, kwargs):
        c = self.compiled
        if self.graph is not None:
            why = self._guard_failure(tensors)
            if why is None:
                return self._replay(tensors)
            if why is not RESEEDED:           # a reseed is the user's choice, not a guard that keeps failing
                self.recaptures += 1
            if self.recaptures > MAX_RECAPTURES:
                c._give_up(self.key, f"the CUDA graph was captured {MAX_RECAPTURES + 1} times and its guards keep "
                                     f"failing ({why})")
                c.stats["eager"] += 1
                return c.fn(*args, **kwargs)
            self._reset()                     # drop the graph and its pool; warm up and capture again
            c.stats["recaptures"] = c.stats.get("recaptures", 0) + 1
        if self.warm < WARMUP_CALLS:
            self.warm += 1
            c.stats["eager"] += 1
            communicated: list = []
            with self.driver.eager_on(self.stream, self.pool), watch_communication(communicated.append):
                out = c.fn(*args, **kwargs)
            if communicated:                  # refused before any capture (which would run MPI on host too)
                c._give_up(self.key, communicates(communicated[0]))
            return out
        return self._capture(tensors, args, kwargs)

    # capture
    def _capture(self, tensors, args, kwargs):
        from .optim import optimizer as _opt
        c = self.compiled
        d = self.driver
        mapping = {}
        first: dict = {}
        self.static, self.direct, self.repeats = [], [], []
        with self.driver.eager_on(self.stream, self.pool):
            for i, t in enumerate(tensors):
                if id(t) in first:                  # the same tensor twice (c(x, x)): one buffer
                    self.repeats.append((i, first[id(t)]))
                    continue
                first[id(t)] = i
                if t.requires_grad:
                    self.direct.append((i, t, t.array))
                    continue
                s = _wrap(d.clone(t.array), t.xp)
                mapping[id(t)] = s
                self.static.append((i, s))
        margs, mkw = _substitute(args, mapping), _substitute(kwargs, mapping)
        modules, opts = _modules(c.fn), _optimizers(c.fn)
        # the plain Python values the graph bakes in (x / temperature): a change captures again
        self.py_state = PythonState(c.fn, c._modules[0] or [m for top in modules for m in top.modules()])
        scalars = _DeviceScalars(d, opts)
        # what to restore if capture fails: step counts and gradients (host state the call changes)
        saved_steps = [(st, st["step"]) for e in scalars.steps.values() for st in (e[0],)]
        params = self._params(modules, opts)
        saved_grads = [(p, p.grad) for p in params]
        before = self._state_objects(opts)
        lr_before = scalars.lr_values()
        pending_before = {id(e) for e in self.backend._pending}
        self.backend.capturing = True
        _opt.CAPTURE_HOOK[0] = scalars.hook
        communicated: list = []
        try:
            with watch_communication(communicated.append):
                graph, out = d.capture(self.stream, self.pool, lambda: c.fn(*margs, **mkw))
            why = communicates(communicated[0]) if communicated else None
        except Exception as e:            # noqa: BLE001 - any failure means: no graph, with the cause
            graph, out = None, None
            why = f"CUDA-graph capture failed ({type(e).__name__}: {e})"
        finally:
            self.backend.capturing = False
            _opt.CAPTURE_HOOK[0] = None
            # deferred checks made during capture: their spans are buffers the graph writes on
            # every launch. Kept as templates (queued as copies after each launch, _queue_checks),
            # never left pending themselves (before a launch they hold nothing yet).
            with self.backend._pending_lock:
                pending = self.backend._pending
                self.checks = [e for e in pending if id(e) not in pending_before]
                self.backend._pending = [e for e in pending if id(e) in pending_before]
        if why is None:
            why = self._capture_problem(opts, before, lr_before, scalars)
            if why is None:
                try:
                    self.out = _out_template(out)
                except CaptureError as e:
                    why = str(e)
            if why is not None:
                graph = None
        if graph is None:
            for st, v in saved_steps:
                st["step"] = v
            for p, g in saved_grads:
                p.grad = g
            c._give_up(self.key, why)
            c.stats["eager"] += 1
            return c.fn(*args, **kwargs)
        self.graph = graph
        self.scalars = scalars
        self.grads = [(p, p.grad) for p in params]
        self.guards = self._make_guards(modules, opts, params)
        c.stats["captured"] = c.stats.get("captured", 0) + 1
        # nothing ran during capture: this launch is call 3's step
        d.launch(graph)
        self.launches += 1
        self._queue_checks()
        scalars.captured()
        return _rebuild(self.out, d)

    @staticmethod
    def _params(modules, opts):
        seen, out = set(), []
        for p in [p for m in modules for p in m.parameters(recurse=False)] + \
                 [p for o in opts for g in o.param_groups for p in g["params"]]:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    @staticmethod
    def _state_objects(opts):
        return {(id(st), k): v for o in opts for st in o.state.values() for k, v in st.items() if k != "step"}

    @staticmethod
    def _capture_problem(opts, before, lr_before, scalars):
        after = GraphedStep._state_objects(opts)
        for k, v in after.items():
            if k not in before or before[k] is not v:
                name = k[1]
                return (f"the optimizer replaces its state {name!r} on every step (a host number or a new array), "
                        "which a CUDA graph cannot replay")
        if scalars.lr_values() != lr_before:
            return ("the step changes a learning rate (a scheduler or a manual change inside the step): call "
                    "scheduler.step() outside the compiled step on cuda, where a graph reads the new value")
        return None

    def _make_guards(self, modules, opts, params):
        g = []
        # the graph draws from the device state of the generator current at capture; manual_seed
        # makes a new one (built at the next draw), which only a new capture reaches
        rng = getattr(self.backend, "_rng", None)
        if rng is not None:
            g.append((self.backend, "_rng", rng, RESEEDED))
        for m in modules:
            for name, b in m.named_buffers(recurse=False):
                if b is not None:
                    g.append((b, "array", b.array, f"buffer {name!r}"))
        for p in params:
            g.append((p, "array", p.array, "a parameter"))
        for o in opts:
            # load_state_dict replaces both: the graph's device scalars belong to the old groups
            g.append((o, "state", o.state, f"{type(o).__name__}'s state"))
            g.append((o, "param_groups", o.param_groups, f"{type(o).__name__}'s param_groups"))
            for p, st in o.state.items():
                g.append((o.state, p, st, f"{type(o).__name__}'s state"))
                for k, v in st.items():
                    if isinstance(v, Tensor):
                        g.append((v, "array", v.array, f"{type(o).__name__}'s state {k!r}"))
        return g

    def _guard_failure(self, tensors):
        for i, j in self.repeats:
            if tensors[i] is not tensors[j]:
                return "an argument that was the same tensor as another at capture is a different one"
        for i, t, a in self.direct:
            if tensors[i] is not t or t.array is not a:
                return "a tensor argument that requires grad is a different tensor or array than at capture"
        changed = self.py_state.changed() if self.py_state is not None else None
        if changed is not None:
            return f"the Python value {changed} changed since capture"
        for owner, attr, expected, what in self.guards:
            cur = owner.get(attr) if isinstance(owner, dict) else getattr(owner, attr)
            if cur is not expected:
                if what is RESEEDED:
                    return RESEEDED
                return f"{what} was replaced since capture (p.data = ..., load_state_dict)"
        return None

    # replay
    def _replay(self, tensors):
        d = self.driver
        for i, s in self.static:
            d.copy_into(s.array, tensors[i].array)
        self.scalars.upload()
        d.launch(self.graph)
        self.launches += 1
        self._queue_checks()
        self.scalars.advance()
        for p, g in self.grads:
            if p.grad is not g:
                p.grad = g
        self.compiled.stats["replayed"] += 1
        return _rebuild(self.out, d)


    def _queue_checks(self):
        """After a launch: the step's deferred index checks (class ids, gather, embedding ...), as
        the graph just recomputed them, queued for the next host read like an eager step's. Each is
        a copy of the captured span (one tiny device copy, ordered after the launch), so the next
        replay cannot overwrite a bad batch's values before they are read."""
        for e in self.checks:
            self.backend.queue_check(_PendingCheck(e.key, self.driver.clone(e.span), e.count))


def run(compiled, key, tensors, args, kwargs):
    """One call of `compiled` on cuda (see the module docstring)."""
    step = compiled.cache.get(key)
    if not isinstance(step, GraphedStep):
        backend = (tensors[0].xp if tensors else
                   next(p.xp for m in _modules(compiled.fn) for p in m.parameters()))
        driver = make_driver(backend)
        why = driver.unavailable()
        if why is not None:
            compiled._give_up(key, why)
            compiled.stats["eager"] += 1
            return compiled.fn(*args, **kwargs)
        if len(compiled.cache) >= compiled.cache_size:
            old = compiled.cache.pop(next(iter(compiled.cache)))      # its graph goes with it
            if isinstance(old, GraphedStep):
                release_pool(old.pool)
        step = compiled.cache[key] = GraphedStep(weakref.proxy(compiled), key, backend, driver)
    return step(tensors, args, kwargs)
