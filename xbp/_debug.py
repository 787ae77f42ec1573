"""Seeing the graph at work: a backward trace, anomaly detection, and the recordings `xbp.viz` draws.

Everything here is off by default and costs nothing then: the core checks two module-level slots,
``_primitive.ANOMALY[0]`` (per op, in `apply`) and ``_engine.TRACE[0]`` (per backward), and both are
``None`` unless one of the context managers below is active. When any of them is active a single
"hub" object sits in each slot and dispatches to what is switched on:

- `trace()`           records every node the backward visits: the gradient that arrived, the
                      gradients it sent to each input (shape, norm, optionally values).
- `detect_anomaly()`  checks every forward output and every backward gradient for NaN/Inf and raises
                      `AnomalyError` at the first one, naming the op, where the user's code created
                      it (the first frame outside the xbp package) and which input was non-finite.
                      ``XBP_DETECT_ANOMALY=1`` in the environment switches it on at import.
- `recording()`       (what ``xbp.viz.record()`` uses) stores, per node, the norm of the gradient
                      sent along each input edge in the last backward, and tags each node created in
                      the forward with its creation site and the module scopes it ran in.
                      The module calls are read off the stack (frames of ``xbp.nn.Module.__call__``),
                      so Module needs no code for it and pays nothing when no recording is on.
- `module_scope(m)`   marks other callables as modules for that grouping: a shared no-op context
                      unless a recording is active.

Norms are kept as 0-d device arrays and read to the host only when printed or drawn, so a traced
GPU backward does not synchronise per op. Anomaly checks read one bool per op to the host.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import types
import weakref

import numpy as np

from ._primitive import ANOMALY, Accumulate
from ._tensor import Tensor

__all__ = ["AnomalyError", "detect_anomaly", "is_anomaly_enabled", "trace", "Trace", "module_scope",
           "recording", "Where"]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_INTERNAL: dict = {}      # code object -> whether it belongs to the xbp package (cached)


# ----------------------------------------------------------------------------------------------
# where: the user's line that created an op
# ----------------------------------------------------------------------------------------------
class Where:
    """The creation site of a graph node: file, line and function of the first frame outside the
    xbp package, and (when a recording was active) the module scopes the op ran in."""

    __slots__ = ("file", "line", "func", "scope")

    def __init__(self, file, line, func, scope=()):
        self.file, self.line, self.func, self.scope = file, line, func, scope

    def __str__(self):
        return f"{self.file}:{self.line} in {self.func}" if self.file else "<unknown>"

    def short(self):
        return f"{os.path.basename(self.file)}:{self.line}" if self.file else "?"

    def __repr__(self):
        return f"Where({self.short()}, {self.func})"


def _is_internal(code):
    r = _INTERNAL.get(code)
    if r is None:
        fn = code.co_filename
        r = _INTERNAL[code] = os.path.abspath(fn).startswith(_PKG_DIR) if not fn.startswith("<") else False
    return r


def user_where(scope=()) -> Where:
    """The first stack frame outside the xbp package (the user's line)."""
    f: types.FrameType | None = sys._getframe(1)
    while f is not None and _is_internal(f.f_code):
        f = f.f_back
    if f is None:
        return Where(None, None, None, scope)
    return Where(f.f_code.co_filename, f.f_lineno, f.f_code.co_name, scope)


# ----------------------------------------------------------------------------------------------
# module scopes (for xbp.viz group_by_module)
# ----------------------------------------------------------------------------------------------
# Which module call created an op is read off the call stack, only while a recording is on: every
# frame running ``xbp.nn.Module.__call__`` is a module call (its ``self`` the module), and objects
# that are not xbp Modules can mark their calls with `module_scope`. Nothing runs per module call
# when no recording is active, and Module.__call__ needs no code for it.
_SCOPE: list = []          # explicit module_scope entries: [frame, (module, call id)]
_CALLS = [0]               # call ids, unique per module call
_FRAME_CALLS: dict = {}    # id(frame) -> (frame, (module, call id)) for live Module.__call__ frames
_CALL_CODES: set = set()   # code objects of Module.__call__
_NULL = contextlib.nullcontext()


class _ModuleScope:
    __slots__ = ("item",)

    def __init__(self, module, frame):
        _CALLS[0] += 1
        self.item = [frame, (module, _CALLS[0])]

    def __enter__(self):
        _SCOPE.append(self.item)
        return self

    def __exit__(self, *exc):
        for k in range(len(_SCOPE) - 1, -1, -1):
            if _SCOPE[k] is self.item:
                del _SCOPE[k]
                break
        self.item[0] = None
        return False


def module_scope(module):
    """``with module_scope(obj): ...`` marks the ops created inside as made by the module `obj`,
    for ``xbp.viz.to_dot(..., group_by_module=True)``. xbp.nn Modules need no such call (their
    ``__call__`` frames are found on the stack); use it for other callables that act as modules.
    A shared no-op context unless ``xbp.viz.record()`` is active."""
    if not _STATE.scopes:
        return _NULL
    return _ModuleScope(module, sys._getframe(1))


def register_module_call(fn) -> None:
    """Make frames of `fn` (a layer class's ``__call__``) count as module calls for
    ``group_by_module``. ``xbp.nn.Module`` registers its own at import, so this low layer never
    imports ``xbp.nn``."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        _CALL_CODES.add(code)


def _current_scope() -> tuple:
    """The module calls active now, outermost first, as ((module, call id), ...)."""
    frames = []
    f: types.FrameType | None = sys._getframe(2)
    while f is not None:
        frames.append(f)
        f = f.f_back
    depth = {id(fr): len(frames) - i for i, fr in enumerate(frames)}   # larger = further in
    items = []
    if _CALL_CODES:
        live = {}
        for fr in frames:
            if fr.f_code in _CALL_CODES:
                ent = _FRAME_CALLS.get(id(fr))
                if ent is None or ent[0] is not fr:
                    _CALLS[0] += 1
                    ent = (fr, (fr.f_locals.get("self"), _CALLS[0]))
                live[id(fr)] = ent
                items.append((depth[id(fr)], 0, ent[1]))
        _FRAME_CALLS.clear()          # forget finished calls (the frames held keep their ids unique)
        _FRAME_CALLS.update(live)
    for k, (fr, entry) in enumerate(_SCOPE):
        d = depth.get(id(fr))
        if d is not None:
            items.append((d, k + 1, entry))
    if not items:
        return ()
    items.sort(key=lambda t: (t[0], t[1]))
    out = []
    for _, _, entry in items:
        if not (out and out[-1][0] is entry[0]):      # a module both found and marked: once
            out.append(entry)
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# small helpers (only ever run with a debug mode on)
# ----------------------------------------------------------------------------------------------
def _arr(g):
    """(array, backend) of a gradient that may be a Tensor (under create_graph)."""
    if isinstance(g, Tensor):
        return g.array, g.xp
    from ._backend import backend_of
    return g, backend_of(g)


def _floating(xp, a) -> bool:
    return xp.canonical(a.dtype).kind in "fc"


def _all_finite(xp, a) -> bool:
    if not hasattr(a, "shape"):
        return not isinstance(a, (float, complex)) or math.isfinite(abs(a))
    if not _floating(xp, a):
        return True
    return bool(xp.to_numpy(xp.all(xp.isfinite(a))))


def _describe_bad(xp, a) -> str:
    if not hasattr(a, "shape"):
        return repr(a)
    h = np.asarray(xp.to_numpy(a))
    n_nan = int(np.isnan(h).sum())
    n_inf = int(np.isinf(h).sum())
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN")
    if n_inf:
        parts.append(f"{n_inf} Inf")
    return f"{' and '.join(parts)} of {h.size} values"


def _norm(xp, a):
    """The 2-norm of an array as a 0-d array on its device (read lazily)."""
    if xp.canonical(a.dtype).kind == "c":
        a = xp.abs(a)
    return xp.sqrt(xp.sum(a * a))


def _host_float(v):
    if v is None:
        return None
    if isinstance(v, float):
        return v
    xp = _arr(v)[1]
    return float(np.asarray(xp.to_numpy(v)).reshape(()))


def _edge_grad(n, i, gx):
    """The gradient sent along input edge i of node n, summed back to the input's shape."""
    if gx is None:
        return None, None
    a, xp = _arr(gx)
    shape = n.shapes[i]
    if shape is not None and tuple(a.shape) != tuple(shape):
        from ._engine import unbroadcast
        a = unbroadcast(xp, a, tuple(shape))
    return a, xp


def _shape(s):
    return str(tuple(s))


def _fmt(v):
    return "-" if v is None else f"{v:.4g}"


# ----------------------------------------------------------------------------------------------
# the hubs that sit in ANOMALY[0] / TRACE[0] while anything is switched on
# ----------------------------------------------------------------------------------------------
class _State:
    def __init__(self):
        self.anomaly = []      # active detect_anomaly configs (innermost last)
        self.scopes = 0        # active recordings that tag nodes with module scopes
        self.recorders = []    # active backward recorders (Trace, grad-norm recorders)
        self.last = None       # (node, incoming gradient) of the node being processed, in anomaly mode
        self.env = False       # XBP_DETECT_ANOMALY=1

    def refresh(self):
        from . import _engine
        forward = bool(self.anomaly) or self.scopes > 0
        ANOMALY[0] = _HUB if forward else None
        _engine.TRACE[0] = _TRACE_HUB if (self.recorders or self.anomaly) else None


_STATE = _State()


class _Hub:
    """ANOMALY[0] while anomaly detection or a module-scope recording is on."""

    def check_forward(self, prim, args, out):
        if _STATE.anomaly and _STATE.anomaly[-1].forward:
            _check_forward(prim, args, out)

    def where(self):
        return user_where(_current_scope() if _STATE.scopes else ())

    def check_backward(self, node, gxs):
        if _STATE.anomaly and _STATE.anomaly[-1].backward:
            _check_backward(node, gxs)


class _TraceHub:
    """TRACE[0] while a trace, a grad recording or anomaly detection is on."""

    def record(self, node, g, gxs):
        for r in _STATE.recorders:
            r.record(node, g, gxs)
        if _STATE.anomaly:
            _STATE.last = (node, g)


_HUB = _Hub()
_TRACE_HUB = _TraceHub()


# ----------------------------------------------------------------------------------------------
# anomaly detection
# ----------------------------------------------------------------------------------------------
class AnomalyError(RuntimeError):
    """A NaN or Inf appeared in a forward or backward pass under `detect_anomaly`.

    Attributes: ``phase`` ("forward" or "backward"), ``op`` (the primitive's name), ``where``
    (a `Where`: file/line of the user's code that created the op, or None), ``input_shapes``,
    ``bad_inputs`` (indices of the op's inputs that were already non-finite in the forward; in the
    backward, indices of the inputs whose gradient is non-finite)."""

    def __init__(self, message, phase, op, where, input_shapes, bad_inputs):
        super().__init__(message)
        self.phase, self.op, self.where = phase, op, where
        self.input_shapes, self.bad_inputs = input_shapes, bad_inputs


def _input_desc(args):
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(f"{_shape(a.shape)} {a.dtype}")
        elif hasattr(a, "shape"):
            out.append(f"{_shape(a.shape)} array")
        else:
            out.append(f"scalar {a!r}")
    return out


def _check_forward(prim, args, out):
    from ._backend import backend_of
    if not hasattr(out, "shape"):
        return
    xp = backend_of(out)
    if _all_finite(xp, out):
        return
    where = user_where(_current_scope() if _STATE.scopes else ())
    shapes = tuple(tuple(a.shape) if hasattr(a, "shape") else None for a in args)
    bad, notes = [], []
    for i, a in enumerate(args):
        arr, axp = (a.array, a.xp) if isinstance(a, Tensor) else (a, xp)
        if not _all_finite(axp, arr):
            bad.append(i)
            notes.append(f"input {i} was already non-finite ({_describe_bad(axp, arr)})")
    if bad:
        cause = ("; ".join(notes) + ": it entered from outside the checked ops (data, a tensor made "
                 "before detect_anomaly, or an in-place edit); find where that tensor was made")
    else:
        cause = ("all inputs were finite: the op itself produced it (e.g. log(0), 0/0, sqrt of a negative, "
                 "overflow of exp or pow); guard the input (clamp, add an epsilon) or use a stable fused op")
    msg = (f"anomaly in forward: {prim.name} produced {_describe_bad(xp, out)} (output shape "
           f"{_shape(out.shape)})\n  created at {where}\n  inputs: "
           f"{', '.join(f'[{i}] {d}' for i, d in enumerate(_input_desc(args)))}\n  {cause}")
    raise AnomalyError(msg, "forward", prim.name, where, shapes, bad)


def _check_backward(n, gxs):
    bad = []
    for i, gx in enumerate(gxs):
        if gx is None or n.parents[i] is None:
            continue
        a, xp = _arr(gx)
        if not _all_finite(xp, a):
            bad.append((i, _describe_bad(xp, a)))
    if not bad:
        return
    lines = [f"anomaly in backward: the gradient that {n.prim.name} sends to "
             + ", ".join(f"input {i} ({d})" for i, d in bad) + " is not finite"]
    if n.where is not None:
        lines.append(f"  {n.prim.name} was created at {n.where}")
    else:
        lines.append(f"  (the forward ran outside detect_anomaly(), so its creation site was not recorded: "
                     "run the forward under detect_anomaly() too)")
    lines.append("  inputs: " + ", ".join(f"[{i}] {_shape(s) if s is not None else 'scalar'}"
                                         for i, s in enumerate(n.shapes)))
    g_ok = None
    if _STATE.last is not None and _STATE.last[0] is n:
        a, xp = _arr(_STATE.last[1])
        g_ok = _all_finite(xp, a)
    saved_bad = []
    for label, arrays in (("input", n.ins), ("output", None if n.out is None else (n.out,))):
        for i, a in enumerate(arrays or ()):
            if hasattr(a, "shape"):
                from ._backend import backend_of
                axp = backend_of(a)
                if not _all_finite(axp, a):
                    saved_bad.append(f"saved {label} {i} ({_describe_bad(axp, a)})")
    if g_ok is False:
        lines.append("  the incoming gradient was already non-finite (it overflowed when gradients were "
                     "summed, or came from the gradient passed to backward())")
    elif saved_bad:
        lines.append("  the incoming gradient was finite, but the op's " + ", ".join(saved_bad)
                     + " is non-finite")
    else:
        lines.append("  the incoming gradient" + (" was finite" if g_ok else "")
                     + " and the saved values are finite: the op's derivative is infinite/undefined here "
                     "(e.g. sqrt or pow at 0, log at 0, division by 0, x/|x| at 0); add an epsilon or clamp")
    where = n.where
    raise AnomalyError("\n".join(lines), "backward", n.prim.name, where, tuple(n.shapes), [i for i, _ in bad])


class detect_anomaly:
    """``with xbp.autograd.detect_anomaly():`` raise `AnomalyError` at the first NaN/Inf produced by
    an op in the forward or by a VJP in the backward, naming the op, the user's file and line that
    created it, the input shapes and which input was already non-finite.

    ``forward=False`` / ``backward=False`` skip one pass (e.g. a model that uses -inf masks on
    purpose). Costs one host read of a bool per op while active; nothing when off. Also usable as
    a decorator. ``XBP_DETECT_ANOMALY=1`` in the environment turns it on for the whole process."""

    def __init__(self, forward=True, backward=True):
        self.forward, self.backward = bool(forward), bool(backward)

    def __enter__(self):
        _STATE.anomaly.append(self)
        _STATE.refresh()
        return self

    def __exit__(self, *exc):
        if self in _STATE.anomaly:
            _STATE.anomaly.remove(self)
        _STATE.last = None
        _STATE.refresh()
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with detect_anomaly(self.forward, self.backward):
                return fn(*a, **k)
        return wrapper


def is_anomaly_enabled() -> bool:
    """True inside a `detect_anomaly` block (or with ``XBP_DETECT_ANOMALY=1`` set): ops and VJPs are
    then checked for NaN/Inf."""
    return bool(_STATE.anomaly)


# ----------------------------------------------------------------------------------------------
# the backward trace
# ----------------------------------------------------------------------------------------------
def _leaf_names(params):
    """id(tensor) -> name from a Module (named_parameters), a dict or an iterable of pairs."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        items = params.named_parameters()
    elif isinstance(params, dict):
        items = params.items()
    else:
        items = params
    return {id(t): name for name, t in items}


class TraceEdge:
    """A gradient one traced node sent to one of its inputs."""

    __slots__ = ("index", "target", "shape", "_norm", "value")

    def __init__(self, index, target, shape, norm, value):
        self.index, self.target, self.shape, self._norm, self.value = index, target, shape, norm, value

    @property
    def norm(self):
        self._norm = _host_float(self._norm)
        return self._norm

    def __repr__(self):
        return f"TraceEdge({self.index} -> {self.target!r}, shape={self.shape}, norm={_fmt(self.norm)})"


class TraceRow:
    """One node visited by the backward: `op`, `node`, `where` (creation site, if recorded),
    `grad_output_shape`/`grad_output_norm`/`grad_output` (the gradient w.r.t. the node's output
    that arrived) and `grad_inputs` (a `TraceEdge` per input that received a gradient)."""

    __slots__ = ("step", "op", "node", "where", "grad_output_shape", "_gnorm", "grad_output", "grad_inputs")

    def __init__(self, step, node, gshape, gnorm, gvalue, edges):
        self.step, self.node, self.op = step, node, node.prim.name
        self.where = node.where
        self.grad_output_shape, self._gnorm, self.grad_output = gshape, gnorm, gvalue
        self.grad_inputs = edges

    @property
    def grad_output_norm(self):
        self._gnorm = _host_float(self._gnorm)
        return self._gnorm

    def __repr__(self):
        return (f"TraceRow({self.step}: {self.op}, grad_output {self.grad_output_shape} "
                f"|g|={_fmt(self.grad_output_norm)}, {len(self.grad_inputs)} input grads)")


class Trace:
    """What `trace()` recorded: ``rows`` (one `TraceRow` per node, in the order the backward ran
    them), printable as a table (``print(t)``). Targets are named ``op#step`` (the step at which
    that op ran), by parameter name (``params=``) or ``leaf``."""

    def __init__(self, params=None, values=False):
        self.rows = []
        self.values = values
        self._names = _leaf_names(params)
        self._step_of = {}

    # --- recording (called by the engine through the trace hub) ---------------------------------
    def record(self, n, g, gxs):
        ga, gxp = _arr(g)
        edges = []
        for i, (p, gx) in enumerate(zip(n.parents, gxs)):
            if p is None or gx is None:
                continue
            a, xp = _edge_grad(n, i, gx)
            val = np.array(xp.to_numpy(a), copy=True) if self.values else None
            edges.append(TraceEdge(i, p, tuple(a.shape), _norm(xp, a), val))
        gval = np.array(gxp.to_numpy(ga), copy=True) if self.values else None
        self._step_of[n] = len(self.rows)
        self.rows.append(TraceRow(len(self.rows), n, tuple(ga.shape), _norm(gxp, ga), gval, edges))

    def __enter__(self):
        _STATE.recorders.append(self)
        _STATE.refresh()
        return self

    def __exit__(self, *exc):
        if self in _STATE.recorders:
            _STATE.recorders.remove(self)
        _STATE.refresh()
        return False

    # --- reading ------------------------------------------------------------------------------
    def name(self, target) -> str:
        """A readable name for a graph node (a traced op, a named leaf, ...)."""
        if type(target) is Accumulate:
            t = target.tensor
            if t is not None and id(t) in self._names:
                return self._names[id(t)]
            return "leaf" + (f" {_shape(t.shape)}" if t is not None else "")
        s = self._step_of.get(target)
        return f"{target.prim.name}#{s}" if s is not None else f"{target.prim.name} (not reached)"

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def find(self, op):
        """The rows of the nodes of primitive `op` (a name such as "matmul")."""
        return [r for r in self.rows if r.op == op]

    def table(self) -> str:
        head = ("step", "op", "created at", "grad of output", "|g|", "->", "input grad", "|g|")
        lines: list[tuple[str, ...]] = []
        for r in self.rows:
            where = r.where.short() if r.where is not None else ""
            first = (str(r.step), f"{r.op}#{r.step}", where, _shape(r.grad_output_shape), _fmt(r.grad_output_norm))
            if not r.grad_inputs:
                lines.append(first + ("", "(no input needs a gradient)", ""))
            for k, e in enumerate(r.grad_inputs):
                left = first if k == 0 else ("",) * 5
                lines.append(left + (f"[{e.index}] {self.name(e.target)}", _shape(e.shape), _fmt(e.norm)))
        widths = [max(len(h), *(len(l[c]) for l in lines)) if lines else len(h) for c, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        out = [fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(l) for l in lines]
        return "\n".join(out)

    def __str__(self):
        return self.table()

    def __repr__(self):
        return f"<xbp backward trace: {len(self.rows)} nodes>"


def trace(params=None, values=False) -> Trace:
    """``with xbp.autograd.trace() as t: loss.backward()`` records each node the backward visits,
    in order, with the shape and norm of the gradient that arrived and of each gradient it sent on;
    ``print(t)`` shows it as a table, ``t.rows`` holds it. ``params`` (a Module, a dict or pairs)
    names the leaves; ``values=True`` also keeps host copies of every gradient (small models)."""
    return Trace(params=params, values=values)


# ----------------------------------------------------------------------------------------------
# recordings for xbp.viz: gradient norms per edge, module scopes per node
# ----------------------------------------------------------------------------------------------
EDGE_NORMS = weakref.WeakKeyDictionary()   # node -> (norm of the incoming gradient, (norm per input))


class GradRecorder:
    """Keeps, per node, the norm of the gradient it received and of each gradient it sent on (the
    last backward through it wins)."""

    def record(self, n, g, gxs):
        ga, gxp = _arr(g)
        norms = []
        for i, gx in enumerate(gxs):
            if gx is None or n.parents[i] is None:
                norms.append(None)
                continue
            a, xp = _edge_grad(n, i, gx)
            norms.append(_norm(xp, a))
        EDGE_NORMS[n] = (_norm(gxp, ga), norms)


class recording:
    """Context manager behind ``xbp.viz.record()``: ``grads`` keeps the gradient norm of every edge
    a backward inside it walks; ``modules`` tags the nodes a forward inside it creates with their
    creation site and module scopes."""

    def __init__(self, grads=True, modules=True):
        self.grads, self.modules = grads, modules
        self.recorder = GradRecorder() if grads else None

    def __enter__(self):
        if self.recorder is not None:
            _STATE.recorders.append(self.recorder)
        if self.modules:
            _STATE.scopes += 1
        _STATE.refresh()
        return self

    def __exit__(self, *exc):
        if self.recorder is not None and self.recorder in _STATE.recorders:
            _STATE.recorders.remove(self.recorder)
        if self.modules:
            _STATE.scopes -= 1
            if not _STATE.scopes:
                _SCOPE.clear()
                _FRAME_CALLS.clear()
        _STATE.refresh()
        return False


if os.environ.get("XBP_DETECT_ANOMALY", "").strip().lower() in ("1", "true", "yes", "on"):
    _STATE.env = True
    _STATE.anomaly.append(detect_anomaly())
    _STATE.refresh()
