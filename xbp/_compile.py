"""`xbp.compile`: record a step's array operations once, replay them as one flat Python function.

What a plan is. On the first calls with a given signature, the step runs eagerly while every NumPy
operation it performs is recorded: xbp's primitives, their VJPs, the engine's gradient sums, the
checks. The arrays of the step are temporarily a NumPy subclass (`_Traced`) whose
``__array_ufunc__`` / ``__array_function__`` and array methods log each call with the slots of its
inputs and outputs. The log becomes straight-line Python source, one line per NumPy call,
compiled once; a replay runs only those lines: no Tensor, no graph node, no topological sort, no
version check (all were done while recording). Before it is compiled, the passes of
xbp/_compile_passes.py rewrite it (no-op views dropped, constants folded, backend wrappers
replaced by the NumPy functions they forward to, a scalar operand of maximum/minimum made a
constant array (NumPy's faster loop), dead code dropped, out= into dead temporaries,
SGD/Adam/AdamW steps inlined), and each local is deleted after its last reader.

What stays live. Optimizer and scheduler calls (``opt.step()``, ``opt.zero_grad()``,
``model.zero_grad()``, ``sched.step()``) are not traced but replayed as calls, so learning rates set
by schedulers or by hand, Adam's step count and bias correction and every optimizer formula run
as in eager mode; a plain SGD, Adam or AdamW step is written into the plan instead, reading its
hyperparameters from ``param_groups`` on every replay (`inline_optimizer_steps`). Random numbers (dropout) are drawn fresh on every replay from the device
generator, in the eager order. Inputs, parameters and buffers are read from their tensors at each
replay, so ``load_state_dict`` or ``p.data = ...`` between calls is honoured.

What is checked. A plan is accepted only after two recordings agree: same operations, same
Python constants, and every array that is not an input, a parameter or a buffer equal in value
(an array computed behind the tracer's back from data, or a Python number that changes from call
to call, would differ). Values read to the host inside the step become guards: re-evaluated on
replay (before anything is changed where they read only inputs); if one differs, that call runs
eagerly. xbp's range checks are one backend call each (`Backend.check_span`): replayed whole, so
every call checks its own batch and only the check's result (whether the loss must mask
ignore_index) is guarded. Anything the plan cannot honour makes the function run eagerly, with a
one-time warning naming the cause (``fullgraph=True``: an error instead).

Where it applies. NumPy (``cpu``) tensors; on cuda the step is captured as a CUDA graph instead
(xbp/_cuda_graph.py); on other devices the function runs eagerly. Python side effects inside the step other than the
optimizer calls above happen only while recording (as with ``torch.compile``'s guards-free
regions): keep counters and logging outside the compiled step.
"""
from __future__ import annotations

import builtins
import functools
import itertools
import operator
import threading
import warnings
import weakref

import numpy as np

from . import _cuda_graph
from ._pyguards import PythonState
from ._compile_passes import Program, _S, _collect_slots, optimize
from ._tensor import Tensor, _wrap


class CompileError(RuntimeError):
    """The step cannot be captured (raised with ``fullgraph=True``; otherwise it runs eagerly)."""


class _Abort(Exception):
    """Raised inside a recording to give up (the cause is in the message)."""


# --- the traced array ---------------------------------------------------------------------------
_TRACER = [None]          # the active recorder (one at a time, process-wide)
_LOCK = threading.Lock()


def _plain(a):
    return a._plainview() if isinstance(a, _Traced) else a


class _Traced(np.ndarray):
    """A NumPy array whose operations are logged by the active recorder (`_Recorder`)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        # ufunc.at (np.add.at: scatter-add) changes its first argument and returns None
        return _dispatch(fn, inputs, kw, inplace=inputs[0] if method == "at" else None)

    def __array_function__(self, func, types, args, kwargs):
        return _dispatch(func, args, kwargs, inplace=args[0] if func in _INPLACE_FUNCTIONS and args else None)

    # host reads: guards
    def __bool__(self):
        return _host_read(self, bool)

    def __int__(self):
        return _host_read(self, int)

    def __float__(self):
        return _host_read(self, float)

    def __index__(self):
        return _host_read(self, operator.index)

    def __complex__(self):
        return _host_read(self, complex)

    def item(self, *args):
        return _host_read(self, lambda a: np.ndarray.item(a, *args))

    def tolist(self):
        return _host_read(self, np.ndarray.tolist)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __setitem__(self, key, value):
        _dispatch(operator.setitem, (self, key, value), {}, inplace=self)

    def fill(self, value):
        _dispatch(np.ndarray.fill, (self, value), {}, inplace=self)

    def _plainview(self):
        return np.ndarray.view(self, np.ndarray)

    def __reduce__(self):
        return _plain(self).__reduce__()

    def __deepcopy__(self, memo):
        return _plain(self).copy()


# NumPy functions that write into their first argument and return None
_INPLACE_FUNCTIONS = frozenset((np.copyto, np.put, np.place, np.putmask, np.put_along_axis, np.fill_diagonal))


def _method(name):
    base = getattr(np.ndarray, name)

    def m(self, *args, **kw):
        return _dispatch(base, (self,) + args, kw)
    m.__name__ = name
    return m


for _name in ("reshape", "transpose", "swapaxes", "astype", "copy", "ravel", "flatten", "squeeze",
              "__getitem__", "take", "repeat", "argmax", "argmin", "nonzero", "argsort", "cumsum", "cumprod",
              "diagonal", "dot", "round", "clip", "conj", "searchsorted", "max", "min", "sum",
              "mean", "prod", "any", "all", "std", "var", "__copy__"):
    setattr(_Traced, _name, _method(_name))
def _traced_attribute(name: str) -> property:
    get = operator.attrgetter(name)
    return property(lambda self: _dispatch(get, (self,), {}))


for _name in ("T", "mT", "real", "imag"):
    setattr(_Traced, _name, _traced_attribute(_name))


def _dispatch(fn, args, kw, inplace=None):
    rec = _TRACER[0]
    if rec is None or rec.paused:
        return fn(*_unwrap_plain(args), **_unwrap_plain(kw))
    return rec.call(fn, args, kw, inplace)


def _unwrap_plain(v):
    if isinstance(v, _Traced):
        return v._plainview()
    if type(v) is tuple or type(v) is list:
        return type(v)(_unwrap_plain(e) for e in v)
    if type(v) is dict:
        return {k: _unwrap_plain(e) for k, e in v.items()}
    return v


def _host_read(arr, conv):
    rec = _TRACER[0]
    plain = arr._plainview()
    if rec is None or rec.paused:
        return conv(plain)
    return rec.guard(arr, conv)


# --- slots and constants in the recorded program ----------------------------------------------------
# entry kinds: ("call", fn, args, kw, outs) outs: slot / tuple of slots / None;
# ("input", k, slot) read args[k].array; ("ext", owner_ref, slot) read owner.array;
# ("const", slot); ("rng", backend, name, args, kw, slot); ("guard", slot, conv, value);
# ("host", obj_ref, name, args, kw, idempotent); ("setgrad", owner_ref, slot or None);
# ("setarray", owner_ref, slot)

_HOST_IDEMPOTENT = {"zero_grad"}


class _Recorder:
    def __init__(self, inputs):
        self.entries = []
        self.py_state = PythonState(None)   # the Python values the step reads (set by _record)
        self.n = 0
        self.slot_of = {}            # id(array object) -> slot (the traced views and plain consts)
        self.keep = []               # objects whose ids are in slot_of (so ids stay unique)
        self.consts = {}             # slot -> constant array (not an input), held by reference
        self.input_index = {id(t): k for k, t in enumerate(inputs)}
        self.inputs = inputs
        self.read_cache = {}         # id(tensor) -> traced view, until the next host call
        self.born = set()            # ids of tensors created while recording
        self.born_keep = []
        self.written = set()         # slots written in place
        self.side_effect = False
        self.paused = False
        self.problem = None
        self.assigned = []           # (tensor ref) whose array we set to a traced view
        self.external_slots = set()  # slots read from inputs, parameters and buffers
        self.input_slots = {}        # slot -> argument position
        self.clean_ext = {}          # slot -> weakref: a closure tensor read before any host call changed state
        self.host_effect = False     # an optimizer/scheduler call (or a data assignment) has run

    # slots
    def new_slot(self):
        s = self.n
        self.n += 1
        return s

    def traced(self, plain, slot):
        t = np.ndarray.view(plain, _Traced)
        self.slot_of[id(t)] = slot
        self.keep.append(t)
        return t

    def slot(self, v):
        """The slot of an array argument, registering an untracked plain array as a constant."""
        s = self.slot_of.get(id(v))
        if s is not None:
            return s
        s = self.new_slot()
        self.slot_of[id(v)] = s
        self.keep.append(v)
        self.consts[s] = _plain(v)
        self.entries.append(("const", s))
        return s

    def template(self, v):
        if isinstance(v, np.ndarray):
            return _S(self.slot(v))
        t = type(v)
        if t is tuple or t is list:
            return t(self.template(e) for e in v)
        if t is dict:
            return {k: self.template(e) for k, e in v.items()}
        if t is slice:
            return slice(self.template(v.start), self.template(v.stop), self.template(v.step))
        if isinstance(v, Tensor):
            raise _Abort("an xbp.Tensor reached a NumPy call directly (np.asarray of a tensor inside the step)")
        if hasattr(v, "__array_namespace__") or hasattr(v, "__cuda_array_interface__"):
            raise _Abort(f"a {type(v).__module__}.{type(v).__name__} array is used: plans are recorded for NumPy "
                         "(cpu) arrays")
        return v

    def wrap_out(self, r):
        if isinstance(r, np.ndarray):
            s = self.slot_of.get(id(r))
            if s is not None:               # a call that returned one of its arguments (out=, asarray)
                return r if isinstance(r, _Traced) else self.traced(r, s), _S(s)
            s = self.new_slot()
            return self.traced(r, s), _S(s)
        if type(r) is tuple and r and all(isinstance(e, np.ndarray) for e in r):
            pairs = [self.wrap_out(e) for e in r]
            return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        if isinstance(r, np.generic):
            # a NumPy scalar result (a full reduction): a 0-d array instead, so the value stays traced
            s = self.new_slot()
            return self.traced(np.asarray(r), s), ("scalar", _S(s))
        raise _Abort(f"a NumPy call returned {type(r).__name__}, which the recorder cannot follow")

    def call(self, fn, args, kw, inplace):
        targs = self.template(args)
        tkw = self.template(kw)
        out_kw = kw.get("out") if kw else None
        r = fn(*_unwrap_plain(args), **_unwrap_plain(kw))
        if inplace is not None:
            self._mark_write(self.slot(inplace))
        if out_kw is not None:
            # the result is the out= array itself: the same slot, the caller's own (traced) object
            outs_obj = out_kw if isinstance(out_kw, tuple) else (out_kw,)
            slots = tuple(_S(self.slot(o)) for o in outs_obj)
            for o in slots:
                self._mark_write(o.i)
            self.entries.append(("call", fn, targs, tkw, slots[0] if len(slots) == 1 else slots))
            return outs_obj[0] if len(outs_obj) == 1 else outs_obj
        if r is None and inplace is not None:     # x[key] = v, x.fill(v): no result, the target changed
            self.entries.append(("call", fn, targs, tkw, None))
            return None
        wrapped, outs = self.wrap_out(r)
        self.entries.append(("call", fn, targs, tkw, outs))
        return wrapped

    def backend_call(self, fn, name, args, kw):
        """A call of the tensor's backend namespace (xp.matmul, xp.asarray, ...): one entry, with
        the tracer paused inside (the backend's own NumPy calls are not logged one by one)."""
        targs = self.template(args)
        tkw = self.template(kw)
        self.paused = True
        try:
            r = fn(*_unwrap_plain(args), **_unwrap_plain(kw))
        finally:
            self.paused = False
        if r is None:
            if name == "setitem":
                self._mark_write(targs[0].i)
            self.entries.append(("call", fn, targs, tkw, None))
            return None
        if isinstance(r, np.ndarray) or (type(r) is tuple and r and all(isinstance(e, np.ndarray) for e in r)) \
                or isinstance(r, np.generic):
            wrapped, outs = self.wrap_out(r)
            self.entries.append(("call", fn, targs, tkw, outs))
            return wrapped
        if _has_traced((args, kw)):
            # a value read to the host from arrays of the step (check_span's result: masked or not)
            if self.side_effect and name not in _STRUCTURAL and not self._on_inputs_only((targs, tkw)):
                self.problem = (f"the backend's {name}() reads a value to the host after the step changed a "
                                "parameter or buffer in place")
            if self.host_effect and self.problem is None:
                used = []
                _collect_slots((targs, tkw), used)
                if any(i in self.clean_ext for i in used):
                    # the plan checks such guards first; after an optimizer call that would be too early
                    self.problem = (f"the backend's {name}() reads a tensor's values to the host after an "
                                    "optimizer or scheduler call")
            self.entries.append(("guardcall", fn, targs, tkw, r))
        return r

    def _on_inputs_only(self, template):
        """Whether a guard reads only unmodified input arrays and constants: then the plan checks it
        first, before anything is changed, however late the step reads it."""
        slots = []
        _collect_slots(template, slots)
        return all((i in self.input_slots and i not in self.written) or
                   (i in self.consts and i not in self.written) or
                   (i in self.clean_ext and i not in self.written and not self.host_effect) for i in slots)

    def _mark_write(self, s):
        self.written.add(s)
        if self._is_external(s):
            self.side_effect = True

    def _is_external(self, s):
        return s in self.external_slots

    def guard(self, arr, conv):
        s = self.slot(arr)
        value = conv(arr._plainview())
        if self.side_effect:
            self.problem = (f"a value is read to the host ({conv.__name__ if hasattr(conv, '__name__') else 'item'}) "
                            "after the step changed a parameter or buffer in place")
        self.entries.append(("guard", s, conv, value))
        return value

    # tensor reads and writes (through the patched Tensor.array / Tensor.grad descriptors)
    def read_array(self, t, raw):
        if isinstance(raw, _Traced) or self.paused:
            return raw
        tid = id(t)
        if tid in self.born:
            return raw
        v = self.read_cache.get(tid)
        if v is not None:
            return v
        if not isinstance(raw, np.ndarray):
            if t.xp.kind != "numpy":
                raise _Abort(f"a tensor on {t.device} is used: plans are recorded for NumPy (cpu) tensors")
            return raw
        s = self.new_slot()
        k = self.input_index.get(tid)
        if k is not None:
            self.entries.append(("input", k, s))
            self.input_slots[s] = k
        else:
            ref = weakref.ref(t)
            self.entries.append(("ext", ref, s))
            if not self.host_effect:
                self.clean_ext[s] = ref
        self.external_slots.add(s)
        v = self.traced(raw, s)
        self.read_cache[tid] = v
        return v

    def wrote_array(self, t, value):
        tid = id(t)
        if tid not in self.born and not self.paused:
            if self.input_index.get(tid) is not None:
                raise _Abort("the step replaces an input tensor's data (x.data = ... or x.set_())")
            if not isinstance(value, _Traced):
                raise _Abort("the step replaces a tensor's data with an array made outside the traced operations")
            self.entries.append(("setarray", weakref.ref(t), self.slot_of[id(value)]))
            self.side_effect = self.host_effect = True
        self.assigned.append(weakref.ref(t))

    def wrote_grad(self, owner, g):
        if self.paused or id(owner) in self.born:
            return
        if g is None:
            self.entries.append(("setgrad", weakref.ref(owner), None, None))
            return
        raw = _ORIG_ARRAY.__get__(g)
        s = self.slot_of.get(id(raw)) if isinstance(raw, np.ndarray) else None
        if s is None:
            s = self.slot(raw)
        self.entries.append(("setgrad", weakref.ref(owner), s, g.xp))

    def born_tensor(self, t):
        self.born.add(id(t))
        self.born_keep.append(t)

    def host_call(self, obj, name, orig, args, kw):
        for a in itertools.chain(args, kw.values()):
            if isinstance(a, (Tensor, np.ndarray)) or callable(a):
                raise _Abort(f"{type(obj).__name__}.{name}() is called with a tensor or a closure inside the step")
        idem = name in _HOST_IDEMPOTENT
        self.entries.append(("host", weakref.ref(obj), name, args, kw, idem))
        if not idem:
            self.side_effect = self.host_effect = True
        self.paused = True
        try:
            r = orig(obj, *args, **kw)
        finally:
            self.paused = False
        self.read_cache.clear()
        if r is not None:
            raise _Abort(f"{type(obj).__name__}.{name}() returned a value inside the step")
        return r


# --- patching Tensor's array/grad slots, host-call methods and the RNG while recording ------------
_ORIG_ARRAY = Tensor.__dict__["array"]
_ORIG_GRAD = Tensor.__dict__["grad"]


def _array_get(t, owner=None):
    if t is None:
        return _ORIG_ARRAY
    raw = _ORIG_ARRAY.__get__(t)
    rec = _TRACER[0]
    return raw if rec is None else rec.read_array(t, raw)


def _array_set(t, value):
    rec = _TRACER[0]
    if rec is not None:
        try:
            _ORIG_ARRAY.__get__(t)
        except AttributeError:           # first assignment: a tensor made while recording
            rec.born_tensor(t)
        else:
            rec.wrote_array(t, value)
    _ORIG_ARRAY.__set__(t, value)


def _grad_get(t, owner=None):
    return _ORIG_GRAD if t is None else _ORIG_GRAD.__get__(t)


def _grad_set(t, g):
    rec = _TRACER[0]
    if rec is not None:
        rec.wrote_grad(t, g)
    _ORIG_GRAD.__set__(t, g)


class _Patches:
    """Install the recording hooks (class attributes; restored on exit)."""

    def __init__(self, backends):
        self.backends = backends

    def __enter__(self):
        from .nn.module import Module
        from .optim.optimizer import Optimizer
        from .optim import lr_scheduler
        self.saved = []
        self._set(Tensor, "array", property(_array_get, _array_set))
        self._set(Tensor, "grad", property(_grad_get, _grad_set))
        classes = [(Optimizer, ("step", "zero_grad")), (Module, ("zero_grad",))]
        for c in _all_subclasses(Optimizer):
            if "step" in c.__dict__ or "zero_grad" in c.__dict__:
                classes.append((c, tuple(n for n in ("step", "zero_grad") if n in c.__dict__)))
        for c in vars(lr_scheduler).values():
            if isinstance(c, type) and "step" in c.__dict__:
                classes.append((c, ("step",)))
        for c, names in classes:
            for n in names:
                orig = c.__dict__[n]
                self._set(c, n, _host_method(orig, n))
        # communication (DDP's gradient all-reduce, a collective in the step) runs for real while
        # recording, but a plan could not replay it: the recording is refused, the step runs eagerly
        self._comm = _cuda_graph.watch_communication(_on_communication)
        self._comm.__enter__()
        for b in self.backends:
            # each backend call is one entry, replayed whole: its own host reads (the NumPy mask's
            # finiteness test) run again on every replay
            for n in dir(b):
                if n.startswith("_") or n in _BACKEND_SKIP:
                    continue
                orig = getattr(b, n)
                if callable(orig) and not isinstance(orig, type):
                    self._set_inst(b, n, functools.partial(_backend_method, n, orig))
        return self

    def _set(self, c, n, v):
        self.saved.append((c, n, c.__dict__[n], False))
        setattr(c, n, v)

    def _set_inst(self, obj, n, v):
        self.saved.append((obj, n, obj.__dict__.get(n, _MISSING), True))
        setattr(obj, n, v)

    def __exit__(self, *exc):
        self._comm.__exit__(*exc)
        for c, n, v, inst in reversed(self.saved):
            if inst and v is _MISSING:
                delattr(c, n)
            else:
                setattr(c, n, v)


_MISSING = object()


def _on_communication(name):
    rec = _TRACER[0]
    if rec is not None and rec.problem is None:
        rec.problem = _cuda_graph.communicates(name)


def _all_subclasses(c):
    out = []
    for s in c.__subclasses__():
        out.append(s)
        out.extend(_all_subclasses(s))
    return out


def _host_method(orig, name):
    @functools.wraps(orig)
    def m(self, *args, **kw):
        rec = _TRACER[0]
        if rec is None or rec.paused:
            return orig(self, *args, **kw)
        return rec.host_call(self, name, orig, args, kw)
    return m


_BACKEND_SKIP = frozenset(("dtype", "canonical", "is_array", "kind", "device", "native_device", "ns", "array_type",
                           "float_dtypes", "has_float64", "rng", "seed", "synchronize", "isdtype", "finfo",
                           "iinfo", "result_type", "can_cast", "compile_direct_call"))


# host reads that look at memory layout, not values: the same on every replay of a plan
_STRUCTURAL = frozenset(("may_share_memory", "is_array"))


def _backend_method(name, orig, *args, **kw):
    rec = _TRACER[0]
    if rec is None or rec.paused:
        return orig(*args, **kw)
    return rec.backend_call(orig, name, args, kw)


def _has_traced(v):
    if isinstance(v, _Traced):
        return True
    if type(v) in (tuple, list):
        return any(_has_traced(e) for e in v)
    if type(v) is dict:
        return any(_has_traced(e) for e in v.values())
    return False


# --- from a recording to a program ----------------------------------------------------------------------
class _Plan:
    """A recording turned into Python source and compiled: ``run(inputs)`` replays it."""

    def __init__(self, rec: _Recorder, out_template, passes=None):
        from ._backend import get_backend
        values = _recorded_values(rec)
        # the shapes and dtypes of closure tensors (parameters) read before any host call: checked on
        # replay (the passes' proofs, and the plan's shapes, assume them)
        self.ext_layout = {s: (values[s].shape, values[s].dtype) for s in rec.clean_ext if s in values}
        program = Program(rec.entries, rec.consts, rec.written, rec.input_slots, rec.clean_ext, out_template,
                          values, get_backend("cpu"))
        optimize(program, passes)
        self.changes = program.changes      # what the passes of xbp/_compile_passes.py rewrote
        self.rec_entries = program.entries
        self.out_template = program.out_template
        self.consts = program.consts
        self.written = program.written
        self.input_slots = program.input_slots
        self.clean_ext = program.clean_ext
        self.replays = self.failures = self.invalidations = 0
        self.py_state = rec.py_state
        self._build()

    def _build(self):
        K = []                          # constants of the program
        lines = ["    def _replay(_inputs, _unused=None):"]
        kidx = {}
        refs = {}                       # id(weakref) -> local name of its object (dereferenced once)

        def const(v):
            key = id(v)
            if key not in kidx:
                kidx[key] = len(K)
                K.append(v)
            return f"_k{kidx[key]}"

        def deref(ref):
            name = refs.get(id(ref))
            if name is None:
                name = refs[id(ref)] = f"_o{len(refs)}"
                self.refs.append(ref)
                deref_lines.append(ind + f"{name} = {const(ref)}()")
            return name

        def expr(v):
            if type(v) is _S:
                return f"s{v.i}"
            t = type(v)
            if t is tuple:
                return "(" + "".join(expr(e) + ", " for e in v) + ")"
            if t is list:
                return "[" + ", ".join(expr(e) for e in v) + "]"
            if t is dict:
                return "{" + ", ".join(f"{k!r}: {expr(e)}" for k, e in v.items()) + "}"
            if t is slice:
                return f"slice({expr(v.start)}, {expr(v.stop)}, {expr(v.step)})"
            if v is None or t in (int, bool) or v is Ellipsis:
                return repr(v)
            if t is float:
                return repr(v) if v == v and v not in (float("inf"), float("-inf")) else const(v)
            return const(v)

        hoisted = []
        deref_lines: list = []
        self.refs = []                  # weak references that must stay alive
        ind = "        "
        # a slot's local is deleted after the entry that last names it (unless the step returns it):
        # the replay, one Python function, would otherwise keep every temporary of the step alive
        # until it returns (a peak several times eager's, which frees them as it goes)
        returned: list = []
        _collect_slots(_returned_slots(self.out_template), returned)
        last: dict = {}
        for idx, e in enumerate(self.rec_entries):
            for s in Program.uses(e) + Program.defines(e):
                last[s] = idx
        dead_after: dict = {}
        for s, idx in last.items():
            if s not in returned:
                dead_after.setdefault(idx, []).append(s)
        for idx, e in enumerate(self.rec_entries):
            if idx and dead_after.get(idx - 1):
                lines.append(ind + "del " + ", ".join(f"s{s}" for s in sorted(dead_after[idx - 1])))
            kind = e[0]
            if kind == "call":
                _, fn, a, kw, outs = e
                call = f"{const(fn)}(" + ", ".join([expr(x) for x in a] + [f"{k}={expr(x)}" for k, x in kw.items()]) + ")"
                if outs is None:
                    lines.append(ind + call)
                elif type(outs) is _S:
                    lines.append(ind + f"s{outs.i} = {call}")
                elif outs[0] == "scalar":
                    lines.append(ind + f"s{outs[1].i} = _asarray({call})")
                else:
                    lines.append(ind + ", ".join(f"s{o.i}" for o in outs) + f", = {call}")
            elif kind == "input":
                lines.append(ind + f"s{e[2]} = _inputs[{e[1]}].array")
            elif kind == "ext":
                lines.append(ind + f"s{e[2]} = {deref(e[1])}.array")
                if e[2] in self.ext_layout:
                    # read before any host call: the array the plan was recorded for (shape, dtype)
                    shape, dtype = self.ext_layout[e[2]]
                    lines.append(ind + f"if s{e[2]}.shape != {shape!r} or s{e[2]}.dtype != {const(dtype)}: "
                                       "raise _GuardFailed")
            elif kind == "const":
                c = self.consts[e[1]]
                if e[1] in self.written:      # written in place: a fresh copy on every replay
                    lines.append(ind + f"s{e[1]} = {const(c.copy())}.copy()")
                else:
                    lines.append(ind + f"s{e[1]} = {const(c)}")
            elif kind == "guardcall":
                _, fn, a, kw, value = e
                slots = []
                _collect_slots((a, kw), slots)
                if all(i in self.input_slots or i in self.consts or i in self.clean_ext for i in slots) and not any(
                        i in self.written for i in slots):
                    # on inputs only: checked first, before anything changes (see _on_inputs_only)
                    def pre(v):
                        if type(v) is _S and v.i in self.input_slots:
                            return f"_inputs[{self.input_slots[v.i]}].array"
                        if type(v) is _S and v.i in self.clean_ext:
                            return f"{deref(self.clean_ext[v.i])}.array"
                        if type(v) is _S:
                            return const(self.consts[v.i])
                        if type(v) in (tuple, list):
                            return "(" + "".join(pre(x) + ", " for x in v) + ")"
                        return expr(v)
                    call = f"{const(fn)}(" + ", ".join([pre(x) for x in a] + [f"{k}={pre(x)}" for k, x in kw.items()]) + ")"
                    hoisted.append(ind + f"if {call} != {const(value)}: raise _GuardFailed")
                    continue
                call = f"{const(fn)}(" + ", ".join([expr(x) for x in a] + [f"{k}={expr(x)}" for k, x in kw.items()]) + ")"
                lines.append(ind + f"if {call} != {const(value)}: raise _GuardFailed")
            elif kind == "guard":
                _, s, conv, value = e
                lines.append(ind + f"if {const(conv)}(s{s}) != {const(value)}: raise _GuardFailed")
            elif kind == "host":
                _, ref, name, a, kw, idem = e
                lines.append(ind + f"{deref(ref)}.{name}(" + ", ".join([expr(x) for x in a] + [f"{k}={expr(x)}" for k, x in kw.items()]) + ")")
            elif kind == "setgrad":
                _, ref, s, xp = e
                if s is None:
                    lines.append(ind + f"{deref(ref)}.grad = None")
                else:
                    lines.append(ind + f"{deref(ref)}.grad = _wrap(s{s}, {const(xp)})")
            elif kind == "setarray":
                _, ref, s = e
                lines.append(ind + f"{deref(ref)}.array = s{s}")
            elif kind == "emit":
                lines.extend(ind + line for line in e[1](const, expr, deref, e[2]))
        if deref_lines:
            # every object the plan reaches by weak reference, dereferenced once, before anything runs
            deref_lines.append(ind + "if " + " or ".join(f"{n} is None" for n in refs.values()) +
                               ": raise _GuardFailed")
        lines[1:1] = deref_lines + hoisted
        lines.append(ind + "return " + _out_expr(self.out_template))
        n_lines = len(lines) - 1
        # the constants are locals of a factory: the plan reads each with one load
        lines[0:0] = ["def _make(_K):"] + [f"    _k{i} = _K[{i}]" for i in range(len(K))]
        lines.append("    return _replay")
        self.source = "\n".join(lines)
        ns = {"_asarray": np.asarray, "_wrap": _wrap, "_GuardFailed": _GuardFailed}
        exec(builtins.compile(self.source, "<xbp.compile plan>", "exec"), ns)
        self._replay = ns["_make"](K)
        self.K = K
        self.n_lines = n_lines

    def run(self, inputs):
        return _rebuild_out(self.out_template, self._replay(inputs, self.K))


def _recorded_values(rec):
    """slot -> the plain array the recording held in it (shapes, dtypes and memory for the passes)."""
    values = {}
    for o in rec.keep:
        if isinstance(o, np.ndarray):
            s = rec.slot_of.get(id(o))
            if s is not None and s not in values:
                values[s] = _plain(o)
    return values


def _deref(ref):
    o = ref()
    if o is None:
        raise _GuardFailed
    return o


class _GuardFailed(Exception):
    pass


def _out_expr(t):
    kind = t[0]
    if kind == "tensor":
        return f"s{t[1]}"
    if kind == "seq":
        return "(" + "".join(_out_expr(e) + ", " for e in t[2]) + ")"
    if kind == "dict":
        return "(" + "".join(_out_expr(e) + ", " for e in t[2]) + ")"
    return "None"


def _returned_slots(t):
    """The slots an output template returns (as a template of `_S`)."""
    kind = t[0]
    if kind == "tensor":
        return _S(t[1])
    if kind in ("seq", "dict"):
        return tuple(_returned_slots(e) for e in t[2])
    return ()


def _rebuild_out(t, v):
    kind = t[0]
    if kind == "tensor":
        return _wrap(v, t[2])
    if kind == "seq":
        return t[1](_rebuild_out(e, x) for e, x in zip(t[2], v))
    if kind == "dict":
        return dict(zip(t[1], (_rebuild_out(e, x) for e, x in zip(t[2], v))))
    return t[1]


# --- comparing two recordings --------------------------------------------------------------------------
def _same(a, b, path):
    """Whether two recordings' templates agree; returns a reason string when they do not."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if type(a) is _S:
        return None if a.i == b.i else f"{path}: wired differently"
    if type(a) in (tuple, list):
        if len(a) != len(b):
            return f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            r = _same(x, y, f"{path}[{i}]")
            if r:
                return r
        return None
    if type(a) is dict:
        if a.keys() != b.keys():
            return f"{path}: keywords differ"
        for k in a:
            r = _same(a[k], b[k], f"{path}.{k}")
            if r:
                return r
        return None
    if type(a) is slice:
        return _same((a.start, a.stop, a.step), (b.start, b.stop, b.step), path)
    if isinstance(a, np.ndarray):
        return None
    try:
        eq = a == b
        if isinstance(eq, np.ndarray):
            eq = eq.all()
        if eq or (a != a and b != b):
            return None
    except Exception:
        pass
    if a is b:
        return None
    return f"{path}: the Python value {a!r} became {b!r}"


def _same_fn(a, b):
    if a is b or a == b:
        return True
    if isinstance(a, functools.partial) and isinstance(b, functools.partial):
        return _same_fn(a.func, b.func) and len(a.args) == len(b.args) and all(
            x is y for x, y in zip(a.args, b.args)) and a.keywords == b.keywords
    return False


def _fn_name(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _compare(r1: _Recorder, r2: _Recorder):
    e1, e2 = r1.entries, r2.entries
    if len(e1) != len(e2):
        return f"the two recordings ran different numbers of array operations ({len(e1)} vs {len(e2)})"
    for i, (a, b) in enumerate(zip(e1, e2)):
        if a[0] != b[0]:
            return f"operation {i}: {a[0]} vs {b[0]}"
        kind = a[0]
        if kind == "call":
            if not _same_fn(a[1], b[1]):
                return f"operation {i}: {_fn_name(a[1])} vs {_fn_name(b[1])}"
            r = _same((a[2], a[3], a[4]), (b[2], b[3], b[4]), f"{_fn_name(a[1])}")
            if r:
                return f"operation {i} ({r})"
        elif kind == "const":
            c1, c2 = r1.consts[a[1]], r2.consts[b[1]]
            if a[1] != b[1]:
                return f"operation {i}: constants numbered differently"
            if c1 is not c2:
                x, y = c1, c2
                if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
                    return (f"an array computed inside the step outside xbp's traced operations differs between "
                            f"calls (shape {x.shape}, {x.dtype}), e.g. a NumPy array made from a tensor's values")
        elif kind in ("ext", "setgrad", "setarray", "host"):
            if a[1]() is not b[1]():
                return f"operation {i}: a different {kind} target"
            r = _same(a[2:], b[2:], kind)
            if r and kind != "setgrad":
                return r
            if kind == "setgrad" and (a[2] != b[2]):
                return "gradients are assigned from different operations"
        elif kind == "guard":
            if a[1] != b[1]:
                return f"operation {i}: guard on a different value"
        elif kind == "guardcall":
            if not _same_fn(a[1], b[1]):
                return f"operation {i}: {_fn_name(a[1])} vs {_fn_name(b[1])}"
            r = _same((a[2], a[3]), (b[2], b[3]), _fn_name(a[1]))
            if r:
                return r
        else:
            r = _same(a[1:], b[1:], kind)
            if r:
                return r
    return None


# --- the public wrapper --------------------------------------------------------------------------------
def _flatten_inputs(args, kwargs):
    """Tensors among the arguments (in order) and a hashable description of everything else."""
    tensors = []

    def desc(v):
        if isinstance(v, Tensor):
            tensors.append(v)
            a = _ORIG_ARRAY.__get__(v)
            # the array's own shape tuple and dtype object and the tensor's backend (one per
            # device): cheap to read and hash on every call, unlike Size, str(dtype), str(device)
            return ("T", a.shape, a.dtype, v.xp, v.requires_grad)
        if isinstance(v, (list, tuple)):
            return (type(v).__name__,) + tuple(desc(e) for e in v)
        if isinstance(v, dict):
            return ("dict",) + tuple((k, desc(e)) for k, e in sorted(v.items()))
        if isinstance(v, (int, float, str, bool, type(None))):
            return v
        return ("obj", id(v))
    key = (desc(tuple(args)), desc(dict(kwargs)))
    return tensors, key


def _out_template(r, rec):
    if isinstance(r, Tensor):
        raw = _ORIG_ARRAY.__get__(r)
        if r.requires_grad and r.grad_fn is not None:
            raise _Abort("the step returns a tensor on the autograd graph (its backward would run outside the "
                         "plan): compile the whole step (forward, loss.backward(), optimizer.step()), or run "
                         "the forward under xbp.no_grad()")
        s = rec.slot_of.get(id(raw)) if isinstance(raw, np.ndarray) else None
        if s is None:
            s = rec.slot(raw)
        return ("tensor", s, r.xp)
    if isinstance(r, (list, tuple)) and not hasattr(r, "_fields"):
        return ("seq", type(r), tuple(_out_template(e, rec) for e in r))
    if isinstance(r, dict):
        return ("dict", tuple(r.keys()), tuple(_out_template(e, rec) for e in r.values()))
    if isinstance(r, (int, float, str, bool, type(None))):
        return ("value", r)
    raise _Abort(f"the step returns a {type(r).__name__}, which a plan cannot rebuild")


def _training_flags(fn, cache):
    """train/eval flags of the modules the function closes over (part of the signature). The
    modules are found once (`cache`: a one-element list) and their flags read on every call."""
    mods = cache[0]
    if mods is None:
        mods = cache[0] = [m for top in _closure_modules(fn) for m in top.modules()]
    return tuple([m.training for m in mods])


def _closure_modules(fn):
    """The nn.Modules a function is, is bound to, closes over or names as globals."""
    from .nn.module import Module
    mods = []
    seen = set()

    def add(o):
        if isinstance(o, Module) and id(o) not in seen:
            seen.add(id(o))
            mods.append(o)
    target = getattr(fn, "__self__", None)
    add(target)
    add(fn)
    code = getattr(fn, "__code__", None)
    if code is not None:
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                add(cell.cell_contents)
            except ValueError:
                pass
        g = getattr(fn, "__globals__", {})
        for n in code.co_names:
            add(g.get(n))
    return mods


_MAX_RECORDINGS = 4
_MAX_GUARD_FAILURES = 3   # guard failures (with fewer successful replays) before running eagerly for good     # recordings of one signature before giving up on agreement


class _Compiled:
    """What `xbp.compile` returns for a function: the function, recorded and replayed."""

    def __init__(self, fn, dynamic=False, fullgraph=False, mode=None, cache_size=8):
        self.fn = fn
        self.fullgraph = fullgraph
        self.cache = {}                # signature -> _Plan | [recorder] (first recording) | str (eager: why)
        self.cache_size = cache_size
        self.warned = set()
        self.stats = {"recorded": 0, "replayed": 0, "eager": 0, "guard_failures": 0}
        self._modules = [None]
        self._invalidated: dict = {}   # signature -> plans invalidated in a row, never replayed (PythonState)
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        from ._primitive import GRAD_STATE
        tensors, key = _flatten_inputs(args, kwargs)
        key = (key, GRAD_STATE.enabled, _training_flags(self.fn, self._modules))
        entry = self.cache.get(key)
        if isinstance(entry, _Plan):
            changed = entry.py_state.changed()
            if changed is not None:
                # a Python value the plan baked in (x / temperature, dropout.p) was set anew: record
                # again with it, unless it changes on every call (plans invalidated before any replay,
                # several in a row)
                entry.invalidations = entry.invalidations + 1 if entry.replays == 0 else 1
                if entry.invalidations >= _MAX_GUARD_FAILURES:
                    self._give_up(key, f"a Python value the step reads ({changed}) keeps changing from call to "
                                       "call (pass it as a tensor argument to compile the step)")
                    self.stats["eager"] += 1
                    return self.fn(*args, **kwargs)
                self.stats["invalidated"] = self.stats.get("invalidated", 0) + 1
                del self.cache[key]
                self._invalidated[key] = entry.invalidations
                entry = None
        if isinstance(entry, _Plan):
            try:
                out = entry.run(tensors)
                entry.replays += 1
                self.stats["replayed"] += 1
                return out
            except _GuardFailed:
                self.stats["guard_failures"] += 1
                entry.failures += 1
                if entry.failures >= _MAX_GUARD_FAILURES and entry.failures > entry.replays:
                    self._give_up(key, "a value read to the host inside the step (x.item(), float(x), a branch on "
                                       "a tensor) keeps changing from call to call")
                self.stats["eager"] += 1
                return self.fn(*args, **kwargs)
        if isinstance(entry, str):
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        if _cuda_graph.handles(self, tensors):     # cuda: the step as a CUDA graph (xbp/_cuda_graph.py)
            return _cuda_graph.run(self, key, tensors, args, kwargs)
        if any(t.xp.kind != "numpy" for t in tensors):
            self._give_up(key, "plans are recorded for NumPy (cpu) tensors; other devices run eagerly")
            return self.fn(*args, **kwargs)
        if len(self.cache) >= self.cache_size and key not in self.cache:
            self.cache.pop(next(iter(self.cache)))
        out, rec, why = self._record(tensors, args, kwargs)
        self.stats["recorded"] += 1
        if why is not None:
            self._give_up(key, why)
            return out
        if entry is None:
            self.cache[key] = [rec, 1]
            return out
        why = _compare(entry[0], rec)
        if why is None:
            try:
                plan = self.cache[key] = _Plan(rec, rec.out_template)
                plan.invalidations = self._invalidated.pop(key, 0)
            except Exception as e:        # a plan that does not compile: eager, with the reason
                self._give_up(key, f"internal: the plan failed to build ({type(e).__name__}: {e})")
        elif entry[1] < _MAX_RECORDINGS - 1:
            # lazily built state (a first optimizer step, a cache filled on first use) makes early
            # calls differ: compare the next call with this one
            self.cache[key] = [rec, entry[1] + 1]
        else:
            self._give_up(key, why)
        return out

    def _give_up(self, key, why):
        self.cache[key] = why
        if self.fullgraph:
            raise CompileError(f"xbp.compile({_fn_name(self.fn)}): {why}")
        if why not in self.warned:
            self.warned.add(why)
            warnings.warn(f"xbp.compile({_fn_name(self.fn)}): running eagerly: {why}", RuntimeWarning, stacklevel=3)

    def _record(self, tensors, args, kwargs):
        """Run fn once with the recorder on. Returns (output, recorder, reason or None)."""
        if not _LOCK.acquire(blocking=False):
            return self.fn(*args, **kwargs), None, "another recording is running (in another thread)"
        rec = _Recorder(tensors)
        # the plain Python values the step can reach, before it runs (so a value the step itself
        # changes, a counter, fails the check on the next call: its side effect must run)
        rec.py_state = PythonState(self.fn, self._modules[0] or ())
        from ._backend import get_backend
        backends = [get_backend("cpu")]
        why = None
        try:
            with _Patches(backends):
                _TRACER[0] = rec
                out = None
                try:
                    out = self.fn(*args, **kwargs)
                    rec.out_template = _out_template(out, rec)
                except _Abort as e:
                    why = str(e)
                finally:
                    _TRACER[0] = None
            if why is None and rec.problem:
                why = rec.problem
        finally:
            _LOCK.release()
            _untrace_tensors(rec)
        if out is None and why is not None:
            # the recording stopped half-way: the step's effects are partial, so it cannot simply be
            # re-run; this only happens for unsupported constructs, before any optimizer call
            raise CompileError(f"xbp.compile({_fn_name(self.fn)}): {why}")
        return _untraced(out), rec, why


def _untrace_tensors(rec):
    """Tensors left holding traced views get plain ones back (the recording is over): those whose
    array the recording set, the gradients of those, and the gradients of tensors it created."""
    for ref in rec.assigned:
        t = ref()
        if t is not None and _untrace_array(t):
            _untrace_array(_slot_or_none(_ORIG_GRAD, t))
    for t in rec.born_keep:
        _untrace_array(_slot_or_none(_ORIG_GRAD, t))
    rec.born_keep = []


def _slot_or_none(slot, t):
    try:
        return slot.__get__(t)
    except AttributeError:                 # a tensor whose construction the recording interrupted
        return None


def _untrace_array(t) -> bool:
    """Give tensor `t` (or None) a plain view of its traced array; whether it had one."""
    a = None if t is None else _slot_or_none(_ORIG_ARRAY, t)
    if isinstance(a, _Traced):
        _ORIG_ARRAY.__set__(t, a._plainview())
        return True
    return False


def _untraced(out):
    if isinstance(out, Tensor):
        a = _ORIG_ARRAY.__get__(out)
        if isinstance(a, _Traced):
            _ORIG_ARRAY.__set__(out, a._plainview())
        return out
    if isinstance(out, (list, tuple)):
        for e in out:
            _untraced(e)
    elif isinstance(out, dict):
        for e in out.values():
            _untraced(e)
    return out


class _CompiledModule:
    """What `xbp.compile(module)` returns: calls go through a compiled forward; everything else
    (parameters, state_dict, train/eval, to, attributes) is the original module's, unprefixed."""

    def __init__(self, module, **options):
        object.__setattr__(self, "_orig_mod", module)
        object.__setattr__(self, "_compiled_call", _Compiled(_module_call(module), **options))

    def __call__(self, *args, **kwargs):
        return self._compiled_call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_orig_mod"), name)

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    def __repr__(self):
        return f"Compiled({self._orig_mod!r})"


def _module_call(module):
    def forward(*args, **kwargs):
        return module(*args, **kwargs)
    forward.__qualname__ = f"{type(module).__name__}.forward"
    return forward


def compile(model=None, *, fullgraph: bool = False, dynamic=None, backend="xbp", mode=None, options=None,
            disable: bool = False):  # noqa: A001
    """Capture a function or module once per input signature and replay it (PyTorch's
    ``torch.compile`` entry point; see the module docstring of xbp._compile for what is recorded).

    model: a function (typically a whole training step: forward, ``loss.backward()``,
        ``optimizer.step()``, ``zero_grad()``) or an ``nn.Module`` (its forward; under
        ``xbp.no_grad()`` or returning no graph). Usable as a decorator, with or without arguments.
    fullgraph: raise CompileError instead of running eagerly when something cannot be captured.
    dynamic, backend, mode, options: accepted for PyTorch compatibility (a plan is per shape).
    disable: return `model` unchanged.

    The signature is the shapes, dtypes, devices and requires_grad of the tensor arguments, the
    other arguments' values, grad mode, and the train/eval flags of the modules the function uses.
    The first two calls with a signature run eagerly while recording; from the third on, the plan
    is replayed. ``compiled.stats`` counts recordings, replays and eager calls.
    """
    if model is None:
        return lambda m: compile(m, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                 options=options, disable=disable)
    if disable:
        return model
    from .nn.module import Module
    if isinstance(model, Module):
        return _CompiledModule(model, fullgraph=fullgraph)
    if not callable(model):
        raise TypeError(f"xbp.compile: expected a function or an nn.Module, got {type(model).__name__}")
    return _Compiled(model, fullgraph=fullgraph)
