"""Passes over a recorded plan (`xbp.compile`): a `Program` is the list of operations one recording
made, `optimize(program)` rewrites it in place through `PIPELINE`, one small pass at a time.

Every pass keeps the replay's results equal to the eager step's: it removes or replaces only what
it can prove changes no value a later operation, the caller or a tensor sees. The proofs use the
arrays of the recording itself (`Program.values`: shapes, dtypes, layouts, which arrays share
memory), which hold on every replay because a plan is replayed only for the signature (input
shapes and dtypes) it was recorded with, and parameter shapes and dtypes are checked on replay.

Entries (tuples, the first item their kind), as `xbp._compile._Recorder` writes them:
  ("call", fn, args, kw, outs)       outs: a slot `_S`, a tuple of slots, ("scalar", slot) or None
  ("input", k, slot)  ("ext", ref, slot)  ("const", slot)
  ("guardcall", fn, args, kw, value) ("guard", slot, conv, value)
  ("host", ref, name, args, kw, idempotent)  ("setgrad", ref, slot | None, xp)  ("setarray", ref, slot)
and one that only passes write:
  ("emit", emit, slots)              emit(const, expr, deref, slots) -> lines of source; `slots`: the slots it reads
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np


class _S:
    """A reference to slot `i` in a recorded call's arguments."""
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __eq__(self, o):
        return type(o) is _S and o.i == self.i

    def __hash__(self):
        return hash(("S", self.i))

    def __repr__(self):
        return f"s{self.i}"


def _collect_slots(v, out):
    """Append the slot numbers in template `v` (nested tuples, lists, dicts, slices) to `out`."""
    if type(v) is _S:
        out.append(v.i)
    elif type(v) in (tuple, list):
        for e in v:
            _collect_slots(e, out)
    elif type(v) is dict:
        for e in v.values():
            _collect_slots(e, out)
    elif type(v) is slice:
        _collect_slots((v.start, v.stop, v.step), out)


def _rename(v, names: dict):
    """Template `v` with each slot `s` replaced by slot ``names[s]`` (where named)."""
    t = type(v)
    if t is _S:
        j = names.get(v.i)
        return v if j is None else _S(j)
    if t is tuple or t is list:
        return t(_rename(e, names) for e in v)
    if t is dict:
        return {k: _rename(e, names) for k, e in v.items()}
    if t is slice:
        return slice(_rename(v.start, names), _rename(v.stop, names), _rename(v.step, names))
    return v


class Program:
    """A recording as passes see it.

    entries: the operation list (kinds in the module docstring), in execution order.
    consts: slot -> constant array of the recording (not an input); folded results join them.
    written: slots written in place somewhere in the step (their memory changes after creation).
    input_slots: slot -> argument position; clean_ext: slot -> weakref, closure tensors read before
        any host call (the guards may read them first).
    out_template: how the step's result is rebuilt (`xbp._compile._out_template`).
    values: slot -> the array the recording held in that slot (plain ndarray), for shapes, dtypes,
        layouts and memory sharing; dropped by `optimize` when the passes are done.
    backend: the Backend the plan runs on (its tables: `Backend.compile_direct_call`).
    changes: pass name -> how many entries it rewrote (for tests and for reading a plan)."""

    def __init__(self, entries, consts, written, input_slots, clean_ext, out_template, values, backend):
        self.entries = list(entries)
        self.consts = dict(consts)
        self.written = set(written)
        self.input_slots = dict(input_slots)
        self.clean_ext = dict(clean_ext)
        self.out_template = out_template
        self.values = values
        self.backend = backend
        self.changes: dict = {}

    # --- what entries read and define ---------------------------------------------------------------
    @staticmethod
    def uses(e) -> list:
        """Slots entry `e` reads (an out= target counts: it is written, so it must be alive)."""
        kind = e[0]
        out: list = []
        if kind in ("call", "guardcall"):
            _collect_slots((e[2], e[3]), out)
        elif kind == "guard":
            out.append(e[1])
        elif kind in ("setgrad", "setarray"):
            if e[2] is not None:
                out.append(e[2])
        elif kind == "emit":
            out.extend(e[2])
        return out

    @staticmethod
    def defines(e) -> list:
        """Slots entry `e` assigns."""
        kind = e[0]
        if kind == "call":
            outs = e[4]
            if outs is None:
                return []
            if type(outs) is _S:
                return [outs.i]
            if outs[0] == "scalar":
                return [outs[1].i]
            return [o.i for o in outs]
        if kind in ("input", "ext"):
            return [e[2]]
        if kind == "const":
            return [e[1]]
        return []

    def escaping(self) -> set:
        """Slots whose arrays leave the plan: returned, stored as a tensor's data or gradient, or
        read by an inlined optimizer step (which keeps them past the step's end)."""
        out: list = []
        _collect_slots(_template_slots(self.out_template), out)
        for e in self.entries:
            if e[0] in ("setgrad", "setarray", "emit"):
                out.extend(self.uses(e))
        return set(out)

    def alias_roots(self) -> dict:
        """slot -> an id shared by every slot whose recorded array shares that slot's memory (the
        owner at the end of the ``.base`` chain); slots without a recorded array are absent."""
        roots = {}
        for s, a in self.values.items():
            b = a
            while isinstance(getattr(b, "base", None), np.ndarray):
                b = b.base
            base = b.base if b.base is not None else b
            roots[s] = id(base)
        return roots

    def note(self, name: str, n: int = 1) -> None:
        self.changes[name] = self.changes.get(name, 0) + n


def _template_slots(t):
    """The slots named by an output template (`xbp._compile._out_template`)."""
    kind = t[0]
    if kind == "tensor":
        return (_S(t[1]),)
    if kind in ("seq", "dict"):
        return tuple(_template_slots(e) for e in t[2])
    return ()


def _rename_template(t, names):
    kind = t[0]
    if kind == "tensor":
        return ("tensor", names.get(t[1], t[1]), t[2])
    if kind == "seq":
        return ("seq", t[1], tuple(_rename_template(e, names) for e in t[2]))
    if kind == "dict":
        return ("dict", t[1], tuple(_rename_template(e, names) for e in t[2]))
    return t


def _rename_entry(e, names):
    kind = e[0]
    if kind in ("call", "guardcall"):
        return (kind, e[1], _rename(e[2], names), _rename(e[3], names), e[4])
    if kind == "guard":
        return ("guard", names.get(e[1], e[1]), e[2], e[3])
    if kind in ("setgrad", "setarray"):
        return (kind, e[1], names.get(e[2], e[2])) + tuple(e[3:])
    if kind == "emit":
        return ("emit", e[1], tuple(names.get(s, s) for s in e[2]))
    return e


def rename_slots(program: Program, names: dict) -> None:
    """Replace every read of slot ``s`` by slot ``names[s]`` (chains resolved), in the entries, the
    output template and the bookkeeping sets."""
    if not names:
        return
    for s in list(names):
        j = names[s]
        while j in names:
            j = names[j]
        names[s] = j
    program.entries = [_rename_entry(e, names) for e in program.entries]
    program.out_template = _rename_template(program.out_template, names)
    program.written = {names.get(s, s) for s in program.written}


# --- what a call does -------------------------------------------------------------------------------
_UFUNC_METHODS = frozenset(("reduce", "accumulate", "outer", "reduceat"))


def is_pure(fn) -> bool:
    """Whether a recorded call of `fn` that returns its results only computes them: it writes no
    argument (calls that do return None or use out=, which callers check) and draws no random
    numbers (a random call must run on every replay, in order)."""
    if type(fn) is np.ufunc:
        return True
    owner = getattr(fn, "__self__", None)
    if type(owner) is np.ufunc:
        return getattr(fn, "__name__", "") in _UFUNC_METHODS
    if isinstance(owner, (np.random.Generator, np.random.RandomState, np.random.BitGenerator)):
        return False
    name = getattr(fn, "__name__", "") or ""
    module = getattr(fn, "__module__", "") or ""
    if "random" in name or "random" in module or "rng" in name or "seed" in name:
        return False
    return True


def _is_call_without_out(e) -> bool:
    return e[0] == "call" and e[4] is not None and not (e[3] and "out" in e[3])


# --- the passes ---------------------------------------------------------------------------------------
_VIEW_NAMES = frozenset(("reshape", "broadcast_to", "astype", "expand"))


def drop_noop_views(program: Program) -> None:
    """A reshape or expand (broadcast_to) to the shape the array already has, or an astype to its
    own dtype that returned the array itself (copy=False), makes a view identical to its input:
    the call is dropped and later reads of its result read the input. Recognised from the
    recording: the result has the input's shape, strides, dtype and data pointer (a copy never
    does), and the function is one that gives a view for every input layout."""
    names: dict = {}
    keep = []
    values = program.values
    for e in program.entries:
        if _is_call_without_out(e) and type(e[4]) is _S and getattr(e[1], "__name__", None) in _VIEW_NAMES \
                and e[2] and type(e[2][0]) is _S:
            src, dst = e[2][0].i, e[4].i
            a, b = values.get(src), values.get(dst)
            if a is not None and b is not None and a.shape == b.shape and a.dtype == b.dtype \
                    and a.strides == b.strides and a.__array_interface__["data"] == b.__array_interface__["data"]:
                names[dst] = src
                if dst in program.written:
                    program.written.add(src)
                program.note("drop_noop_views")
                continue
        keep.append(e)
    program.entries = keep
    rename_slots(program, names)


def fold_constants(program: Program) -> None:
    """A pure call whose array arguments are all constants of the recording (or that has none,
    like ``ones(())``) gives the same array on every replay: its recorded result becomes a
    constant. Not when the result (or anything sharing its memory) is written in place, leaves
    the plan, or the call draws random numbers."""
    escaping = program.escaping()
    roots = program.alias_roots()
    unsafe_roots = {roots[s] for s in (escaping | program.written) if s in roots}
    keep = []
    for e in program.entries:
        if _is_call_without_out(e) and is_pure(e[1]):
            used: list = []
            _collect_slots((e[2], e[3]), used)
            outs = Program.defines(e)
            if len(outs) == 1 and all(s in program.consts for s in used):
                s = outs[0]
                v = program.values.get(s)
                if v is not None and s not in escaping and s not in program.written and \
                        roots.get(s) not in unsafe_roots:
                    program.consts[s] = v
                    keep.append(("const", s))
                    program.note("fold_constants")
                    continue
        keep.append(e)
    program.entries = keep


def direct_calls(program: Program) -> None:
    """Replace a call of a backend wrapper that only forwards its arguments (array-api-compat's
    or the backend's own argument handling) by the function it forwards to, as the backend's
    table says (`Backend.compile_direct_call`; None: keep the call)."""
    table = getattr(program.backend, "compile_direct_call", None)
    if table is None:
        return
    out = []
    for e in program.entries:
        if e[0] == "call":
            direct = table(e[1], len(e[2]), tuple(e[3]))
            if direct is not None:
                e = ("call", direct, e[2], e[3], e[4])
                program.note("direct_calls")
        out.append(e)
    program.entries = out


# NumPy's maximum/minimum/fmax/fmin with a scalar operand take a slow loop (3-10x the time of the
# same ufunc on two arrays, at every size: relu's maximum(x, 0) on LeNet's first activation, 0.28 vs
# 0.56 ms); with an array operand of equal values they give the same bits (tests/test_compile_passes.py)
_SCALAR_SLOW = frozenset((np.maximum, np.minimum, np.fmax, np.fmin))
# a constant block at least this large (elements) is broadcast over the leading axis instead of
# matching the whole shape: as fast (the inner loop runs on whole contiguous rows), less memory
_BROADCAST_BLOCK = 4096


def _scalar_probe(dtype, s):
    """Values that exercise a comparison ufunc against `s`: NaNs with payloads, signed zeros,
    infinities, `s` and its neighbours, subnormals, random values (long enough for SIMD loops)."""
    f = np.finfo(dtype)
    c = dtype.type(s)
    special = [np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, f.tiny, -f.tiny, f.smallest_subnormal,
               -f.smallest_subnormal, f.max, -f.max, 1.0, -1.0]
    near = [c, np.nextafter(c, dtype.type(np.inf)), np.nextafter(c, dtype.type(-np.inf)), -c]
    rand = np.random.RandomState(0).standard_normal(97) * (1.0 + abs(float(c)))
    a = np.concatenate([np.array(special + near, dtype), rand.astype(dtype)])
    return np.concatenate([a, a[::-1], a[1:]])


def scalar_operands_as_arrays(program: Program) -> None:
    """``maximum(x, c)`` (minimum, fmax, fmin) with a Python number `c` becomes the same ufunc of
    `x` and a constant array filled with `c` (its dtype and memory order; the whole shape, or one
    row of the leading axis when that is large enough). NumPy compares each element with the scalar in a
    slow loop; on two arrays it runs its vector loop, several times faster, with the same result:
    checked here, when the plan is built, on probe values (NaNs, signed zeros, infinities, `c`'s
    neighbours) for the ufunc, dtype and constant, and the call is left alone if any bit differs."""
    values = program.values
    consts: dict = {}
    new_slot = 1 + max([s for s in values] + [s for s in program.consts] +
                       [s for e in program.entries for s in Program.uses(e) + Program.defines(e)] + [-1])
    out = []
    for e in program.entries:
        if e[0] == "call" and e[1] in _SCALAR_SLOW and not e[3] and len(e[2]) == 2 and type(e[4]) is _S:
            a, b = e[2]
            k = 0 if type(a) is _S else 1
            x, c = e[2][k], e[2][1 - k]
            v, r = values.get(x.i) if type(x) is _S else None, values.get(e[4].i)
            if type(c) in (int, float) and type(c) is not bool and v is not None and r is not None \
                    and v.dtype.kind == "f" and r.dtype == v.dtype and r.shape == v.shape and v.ndim:
                key = (e[1], k, v.shape, v.strides, v.dtype, type(c), c)
                slot = consts.get(key)
                if slot is None and _same_bits(e[1], k, v.dtype, c):
                    arr = _scalar_as_array(e[1], k, v, c, r)
                    if arr is not None:
                        slot = consts[key] = new_slot
                        new_slot += 1
                        program.consts[slot] = values[slot] = arr
                if slot is not None:
                    args = (x, _S(slot)) if k == 0 else (_S(slot), x)
                    out.append(("const", slot))
                    e = ("call", e[1], args, e[3], e[4])
                    program.note("scalar_operands_as_arrays")
        out.append(e)
    program.entries = out


def _scalar_as_array(fn, k, x, c, result):
    """The constant array standing for `c` in ``fn(x, c)`` (`k`: x's position), or None. The
    result must come out with the recorded result's layout (strides), not only its values: a
    later reduction sums in memory order, so another layout would round differently. A constant
    in x's own memory order keeps it (one row broadcast over the leading axis when x is
    C-contiguous and a row is large); checked on the recorded arrays."""
    if x.flags.c_contiguous and x.ndim > 1 and int(np.prod(x.shape[1:])) >= _BROADCAST_BLOCK:
        arr = np.full((1,) + x.shape[1:], c, dtype=x.dtype)
    else:
        arr = np.full_like(x, c, order="K")
    arr.flags.writeable = False
    with np.errstate(all="ignore"):
        got = fn(x, arr) if k == 0 else fn(arr, x)
    return arr if got.strides == result.strides and got.dtype == result.dtype else None


def _same_bits(fn, k, dtype, c) -> bool:
    """Whether ufunc `fn` gives the same bits with the Python number `c` as with an array of it
    (`k`: the array operand's position)."""
    try:
        with np.errstate(all="ignore"):
            p = _scalar_probe(dtype, c)
            full = np.full(p.shape, c, dtype=dtype)
            want = fn(p, c) if k == 0 else fn(c, p)
            got = fn(p, full) if k == 0 else fn(full, p)
    except (OverflowError, TypeError, ValueError):
        return False
    return want.dtype == got.dtype == dtype and want.tobytes() == got.tobytes()


def _key(v):
    """A hashable stand-in for an argument template, equal only for equal arguments (floats by
    repr: 0.0 and -0.0 differ)."""
    t = type(v)
    if t is _S:
        return ("S", v.i)
    if t is tuple or t is list:
        return (t.__name__,) + tuple(_key(e) for e in v)
    if t is dict:
        return ("dict",) + tuple((k, _key(e)) for k, e in sorted(v.items()))
    if t is slice:
        return ("slice", _key(v.start), _key(v.stop), _key(v.step))
    if t is float or t is complex:
        return (t.__name__, repr(v))
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))
    return (t, v)


# A reused result lives from its first use to its last (the forward's columns until the backward):
# peak memory for time. Larger results are recomputed: a 3x3 convolution's columns are 9x its input,
# and keeping every layer's would multiply a deep network's peak (LeNet-128: conv2's 4.9 MB columns
# are reused, conv1's 10 MB are rebuilt from the shared padded input)
_COMMON_CALL_BYTES = 8 << 20


def eliminate_common_calls(program: Program) -> None:
    """A pure call with the same function and the same arguments (slots and values) as an earlier
    one, with nothing written into any of those arrays (or memory they share) in between, gives
    the same result: later reads take the earlier result. Only where neither result is written in
    place anywhere in the step or leaves it (two tensors must not share memory eager gave them
    apart), and results up to `_COMMON_CALL_BYTES`. The convolution's weight gradient rebuilds the
    forward's padded input and im2col columns: it reuses them (a memory-for-time trade: they live
    until the backward)."""
    roots = program.alias_roots()
    escaping = program.escaping()
    written_roots = {roots.get(s, ("slot", s)) for s in program.written}
    seen: dict = {}                        # key -> (result slot, alias roots it depends on)
    names: dict = {}
    out = []

    def root(i):
        return roots.get(i, ("slot", i))

    def invalidate(slots):
        hit = {root(i) for i in slots}
        for k in [k for k, (_, deps) in seen.items() if deps & hit]:
            del seen[k]
    for e in program.entries:
        e = _rename_entry(e, names)
        kind = e[0]
        if kind == "call":
            kw = e[3]
            if kw and "out" in kw:
                written: list = []
                _collect_slots(kw["out"], written)
                invalidate(written)
            elif e[4] is None:
                if e[2] and type(e[2][0]) is _S:
                    invalidate([e[2][0].i])
                else:
                    seen.clear()
            elif type(e[4]) is _S and is_pure(e[1]):
                r = e[4].i
                used: list = []
                _collect_slots((e[2], kw), used)
                v = program.values.get(r)
                ok = r not in escaping and root(r) not in written_roots and \
                    (v is None or v.nbytes <= _COMMON_CALL_BYTES)
                if ok:
                    key = (_key(e[1]) if not hasattr(e[1], "__self__") else ("m", id(e[1].__self__),
                           getattr(e[1], "__name__", None), _key(getattr(e[1], "__func__", e[1]))),
                           _key(e[2]), _key(kw))
                    hit = seen.get(key)
                    if hit is not None:
                        names[r] = hit[0]
                        program.note("eliminate_common_calls")
                        continue
                    seen[key] = (r, {root(i) for i in used} | {root(r)})
        elif kind in ("host", "emit", "setarray"):
            seen.clear()                   # an optimizer or data change: anything may be written
        out.append(e)
    program.entries = out
    rename_slots(program, names)


def eliminate_dead_code(program: Program) -> None:
    """Drop pure calls (and constant, input and parameter reads) whose results nothing reads
    later: not a later entry, not the output, not a tensor's data or gradient. Calls that write
    into an argument (out=, in-place functions) always stay: a view of the target may be read."""
    live = set(program.escaping())
    keep = []
    for e in reversed(program.entries):
        kind = e[0]
        defs = Program.defines(e)
        removable = (kind in ("const", "input", "ext") or (_is_call_without_out(e) and is_pure(e[1])))
        if removable and defs and not any(s in live for s in defs):
            program.note("eliminate_dead_code")
            continue
        live.update(Program.uses(e))
        keep.append(e)
    keep.reverse()
    program.entries = keep


def _reusable_call(e) -> bool:
    """A ufunc call (or ufunc reduction) that allocates its result: it can write into out= instead."""
    if not _is_call_without_out(e) or type(e[4]) is not _S:
        return False
    fn = e[1]
    if type(fn) is np.ufunc:
        return fn.nout == 1 and "where" not in e[3] and len(e[2]) == fn.nin
    owner = getattr(fn, "__self__", None)
    return type(owner) is np.ufunc and getattr(fn, "__name__", "") == "reduce" and len(e[2]) <= 3 \
        and "where" not in e[3] and "initial" not in e[3]


def reuse_buffers(program: Program) -> None:
    """Let a ufunc write its result (out=) into an array of the same replay whose last reader has
    run, instead of allocating: same shape and dtype, both C-contiguous, the buffer made by a
    ufunc of this plan (fresh memory, not a parameter, input, constant or cached array), and no
    array sharing its memory read later, returned or kept by a tensor. Values are unchanged: a
    ufunc's result does not depend on where it is written."""
    entries = program.entries
    values = program.values
    roots = program.alias_roots()
    escaping = program.escaping()
    members: dict = {}
    for s, r in roots.items():
        members.setdefault(r, []).append(s)
    last: dict = {}                       # alias root -> index of the last entry reading it
    for i, e in enumerate(entries):
        for s in Program.uses(e) + Program.defines(e):
            r = roots.get(s)
            if r is not None:
                last[r] = i
    # roots the plan owns: every member made by a call of this plan; none external or escaping
    made: set = set()
    for e in entries:
        if e[0] == "call":
            made.update(Program.defines(e))
    fresh_roots = {}
    for i, e in enumerate(entries):
        if _reusable_call(e):
            s = e[4].i
            r = roots.get(s)
            v = values.get(s)
            if r is not None and v is not None and v.flags.c_contiguous:
                fresh_roots.setdefault(r, s)
    ownable = {r for r, s in fresh_roots.items()
               if all(m in made and m not in escaping for m in members[r])}
    releases: dict = {}
    for r in ownable:
        releases.setdefault(last.get(r, -1), []).append(r)
    pool: dict = {}                       # (shape, dtype) -> [buffer slot]
    out = []
    for i, e in enumerate(entries):
        if _reusable_call(e):
            v = values.get(e[4].i)
            if v is not None and v.flags.c_contiguous and v.ndim:
                free = pool.get((v.shape, v.dtype))
                if free:
                    buf = free.pop()
                    kw = dict(e[3])
                    kw["out"] = (_S(buf),)
                    e = ("call", e[1], e[2], kw, e[4])
                    program.note("reuse_buffers")
        out.append(e)
        for r in releases.get(i, ()):
            s = fresh_roots[r]
            v = values[s]
            if v.ndim:
                pool.setdefault((v.shape, v.dtype), []).append(s)
    program.entries = out


def inline_optimizer_steps(program: Program) -> None:
    """Replace ``opt.step()`` of a plain SGD, Adam or AdamW by its update written into the plan: the
    same array operations in the same order on the parameters' arrays and the gradients the plan
    just computed, without the optimizer's Python (group loop, bucketing, state lookups). The
    hyperparameters (lr, betas, eps, weight decay) are read from ``param_groups`` on every replay,
    so schedulers and hand-set learning rates still work; Adam's step counts advance in its state.
    If a group's structure or the formula's flags (momentum, maximize, amsgrad, ...) differ from
    the recording's, or the optimizer's state dict was replaced (load_state_dict), that replay calls
    ``opt.step()`` as before; so does one where a parameter's state dict was replaced by hand
    (``opt.state[p] = {...}``). Adam's update of a group runs on flat arrays where it can
    (`_flat_state`)."""
    from .optim.adam import Adam
    from .optim.sgd import SGD
    inliners: dict[Any, Callable] = {SGD._step_group: _inline_sgd, Adam._step_group: _inline_adam}
    entries = program.entries
    out: list = []
    window: dict = {}                    # id(param) -> gradient slot, set since the last host call
    for e in entries:
        kind = e[0]
        if kind == "setgrad":
            t = e[1]()
            if t is not None:
                window[id(t)] = e[2]
        if kind == "host":
            opt = e[1]()
            if e[2] == "step" and not e[3] and not e[4] and opt is not None:
                inliner = inliners.get(getattr(type(opt), "_step_group", None))
                # the class's own step machinery, not a subclass's override of a part of it
                if inliner is not None and type(opt).step is SGD.step and \
                        type(opt)._multi_tensor_step is SGD._multi_tensor_step and \
                        type(opt)._param_state in (SGD._param_state, Adam._param_state) and \
                        getattr(program.backend, "fused_optimizer_step", None) is None:
                    emitted = inliner(opt, e[1], window, program)
                    if emitted is not None:
                        out.append(emitted)
                        program.note("inline_optimizer_steps")
                        window = {}
                        continue
            window = {}
        out.append(e)
    program.entries = out


def _group_plan(opt, window, program):
    """For each group: its params with their gradient slots, or None when a parameter's gradient
    is not one the plan set since the last host call (then the step is not inlined)."""
    groups = []
    for g in opt.param_groups:
        ps = []
        for p in g["params"]:
            if id(p) not in window:
                return None
            s = window[id(p)]
            if s is None:
                continue                  # a gradient set to None: the optimizer skips it
            if p.xp is not program.backend or p.grad is None or not isinstance(p.array, np.ndarray):
                return None
            ps.append((p, s))
        groups.append((g, ps))
    return groups


def _flag_checks(groups, flags, names):
    """Conditions (source) that the groups still select the inlined formula."""
    checks = []
    for k, (g, _) in enumerate(groups):
        for name, value in zip(names, flags[k]):
            if name == "momentum":
                checks.append(f"_pg[{k}]['momentum'] == 0.0")
            elif name == "weight_decay":
                checks.append(f"(_pg[{k}]['weight_decay'] != 0.0) is {value}")
            else:
                checks.append(f"bool(_pg[{k}][{name!r}]) is {value}")
    return checks


def _inline_step(opt, opt_ref, groups, flags, names, per_group, per_param, extra_checks=None, flat=None):
    """The ("emit", ...) entry of an inlined step: a check that the optimizer still has the
    recorded groups and formula flags, then `per_group(k)` lines per group and `per_param(...)`
    lines per parameter; otherwise ``opt.step()``. Each parameter gets one scratch array of its
    shape and dtype (kept with the plan) for the update's temporaries."""
    pg = opt.param_groups
    slots = tuple(s for _, ps in groups for _, s in ps)
    scratch = {id(p): np.empty_like(p.array) for _, ps in groups for p, _ in ps}

    def emit(const, expr, deref, current):
        # `current`: the entry's slots as the later passes left them (renamed), in `slots` order
        grad_slots = iter(current)
        o = deref(opt_ref)
        checks = [f"len(_pg) == {len(pg)}"] + [f"_pg[{k}] is {const(g)}" for k, (g, _) in enumerate(groups)]
        checks += extra_checks(const, o, deref) if extra_checks is not None else []
        checks += _flag_checks(groups, flags, names)
        lines = [f"_pg = {o}.param_groups", "if " + " and ".join(checks) + ":"]
        body: list = []
        for k, (g, ps) in enumerate(groups):
            body += per_group(k, flags[k])
            grads = [f"s{next(grad_slots)}" for _ in ps]
            each: list = []
            for (p, _), gname in zip(ps, grads):
                t = deref(weakref.ref(p))
                each += [f"{t}._version[0] += 1", f"_a = {t}.array", f"_T = {const(scratch[id(p)])}"]
                each += per_param(const, p, gname, flags[k])
            # the whole group as one flat array where `flat` can (_inline_adam's, over _flat_state): the same
            # elementwise operations on the same values, so the same bits, in fewer NumPy calls
            fl = flat(const, deref, k, ps, grads, flags[k]) if flat is not None else None
            if fl is None:
                body += each
            else:
                cond, flat_lines = fl
                body += ["if " + cond + ":"] + ["    " + x for x in flat_lines] + ["else:"] + ["    " + x for x in each]
        lines += ["    " + b for b in body]
        lines += ["else:", f"    {o}.step()"]
        return lines
    return ("emit", emit, slots)


_NP = {name: getattr(np, name) for name in ("negative", "add", "subtract", "multiply", "divide")}


def _hyper_lines(k, weight_decay):
    """Source reading group k's learning rate (and weight decay) live, at every replay."""
    lines = [f"_lr = float(_pg[{k}]['lr'])"]
    if weight_decay:
        lines.append(f"_wd = float(_pg[{k}]['weight_decay'])")
    return lines


def _ufunc(const, name):
    return const(_NP[name])


def _inline_sgd(opt, opt_ref, window, program):
    """SGD without momentum (sgd_update of xbp/optim/sgd.py: maximize, weight decay, lr)."""
    groups = _group_plan(opt, window, program)
    if groups is None or any(g["momentum"] != 0.0 for g, _ in groups):
        return None
    names = ("momentum", "weight_decay", "maximize")
    flags = [(0.0, g["weight_decay"] != 0.0, bool(g["maximize"])) for g, _ in groups]

    def per_group(k, fl):
        return _hyper_lines(k, fl[1])

    def per_param(const, p, g, fl):
        _, wd, mx = fl
        u = lambda n: _ufunc(const, n)  # noqa: E731
        lines = []
        if mx:
            lines.append(f"{u('negative')}({g}, out=_T)")       # d = -grad
            g = "_T"
        if wd:                                                  # d = d + weight_decay * param
            lines.append(f"_d = {g} + _wd * _a")
            g = "_d"
        lines.append(f"{u('multiply')}(_lr, {g}, out=_T)")      # param -= lr * d
        lines.append("_a -= _T")
        return lines
    return _inline_step(opt, opt_ref, groups, flags, names, per_group, per_param)


def _inline_adam(opt, opt_ref, window, program):
    """Adam and AdamW without amsgrad (adam_update of xbp/optim/adam.py, its operations in its order)."""
    groups = _group_plan(opt, window, program)
    sqrt = program.backend.sqrt
    if groups is None or any(g["amsgrad"] for g, _ in groups) or type(sqrt) is not np.ufunc:
        return None
    states = {}
    for _, ps in groups:
        for p, _ in ps:
            st = opt.state.get(p)
            if not st or "exp_avg" not in st or "exp_avg_sq" not in st or type(st.get("step")) is not int:
                return None
            states[id(p)] = st
    names = ("amsgrad", "weight_decay", "maximize")
    flags = [(False, g["weight_decay"] != 0.0, bool(g["maximize"])) for g, _ in groups]
    decoupled = bool(opt._decoupled)
    state = opt.state

    def per_group(k, fl):
        return [f"_b1, _b2 = _pg[{k}]['betas']", "_b1 = float(_b1)", "_b2 = float(_b2)",
                f"_eps = float(_pg[{k}]['eps'])"] + _hyper_lines(k, fl[1])

    def per_param(const, p, g, fl):
        _, wd, mx = fl
        u = lambda n: _ufunc(const, n)  # noqa: E731
        lines = [f"_st = {const(states[id(p)])}",
                 "_n = _st['step'] = _st['step'] + 1",
                 "_m = _st['exp_avg'].array",
                 "_v = _st['exp_avg_sq'].array"]
        if mx:
            lines.append(f"_g = -{g}")
            g = "_g"
        if wd:
            if decoupled:
                lines.append("_a *= 1.0 - _lr * _wd")
            else:
                lines.append(f"_g = {g} + _wd * _a")
                g = "_g"
        lines += [
            f"{u('subtract')}({g}, _m, out=_T)",                 # m += (1 - beta1) * (g - m)
            f"{u('multiply')}(1.0 - _b1, _T, out=_T)",
            "_m += _T",
            "_v *= _b2",                                          # v = beta2 * v + (1 - beta2) * g * g
            f"{u('multiply')}(1.0 - _b2, {g}, out=_T)",
            f"{u('multiply')}(_T, {g}, out=_T)",
            "_v += _T",
            "_ss = _lr / (1.0 - _b1 ** _n)",
            "_bc = (1.0 - _b2 ** _n) ** 0.5",
            f"{const(sqrt)}(_v, out=_T)",                       # denom = sqrt(v) / bc2_sqrt + eps
            f"{u('divide')}(_T, _bc, out=_T)",
            f"{u('add')}(_T, _eps, out=_T)",
            f"{u('divide')}(_m, _T, out=_T)",                    # param -= step_size * (m / denom)
            f"{u('multiply')}(_ss, _T, out=_T)",
            "_a -= _T"]
        return lines
    layouts = [_flat_state(ps, states, fl, decoupled) for (_, ps), fl in zip(groups, flags)]

    def flat(const, deref, k, ps, grads, fl):
        lay = layouts[k]
        if lay is None:
            return None
        G, T, M, V, views = lay
        u = lambda n: _ufunc(const, n)  # noqa: E731
        sts = [const(states[id(p)]) for p, _ in ps]
        ts = [deref(weakref.ref(p)) for p, _ in ps]
        # still the flat layout (state arrays not replaced) and one step count for the group
        cond = " and ".join([f"{st}['exp_avg'].array is {const(mv)} and {st}['exp_avg_sq'].array is {const(vv)}"
                             for st, (mv, vv, _) in zip(sts, views)] +
                            [" == ".join(f"{st}['step']" for st in sts)])
        lines = [f"_n = {sts[0]}['step'] + 1"] + [f"{st}['step'] = _n" for st in sts]
        lines += [f"{t}._version[0] += 1" for t in ts]
        if fl[1]:                                               # AdamW: param *= 1 - lr * wd
            lines += [f"{t}.array *= 1.0 - _lr * _wd" for t in ts]
        lines += [
            f"{const(np.concatenate)}(({''.join(g + ', ' for g in grads)}), axis=None, out={const(G)})",
            f"{u('subtract')}({const(G)}, {const(M)}, out={const(T)})",
            f"{u('multiply')}(1.0 - _b1, {const(T)}, out={const(T)})",
            # in-place updates as ufunc calls with out=: the constants are the factory's locals,
            # which an augmented assignment would make the replay's own (unbound) locals
            f"{u('add')}({const(M)}, {const(T)}, out={const(M)})",
            f"{u('multiply')}({const(V)}, _b2, out={const(V)})",
            f"{u('multiply')}(1.0 - _b2, {const(G)}, out={const(T)})",
            f"{u('multiply')}({const(T)}, {const(G)}, out={const(T)})",
            f"{u('add')}({const(V)}, {const(T)}, out={const(V)})",
            "_ss = _lr / (1.0 - _b1 ** _n)",
            "_bc = (1.0 - _b2 ** _n) ** 0.5",
            f"{const(sqrt)}({const(V)}, out={const(T)})",
            f"{u('divide')}({const(T)}, _bc, out={const(T)})",
            f"{u('add')}({const(T)}, _eps, out={const(T)})",
            f"{u('divide')}({const(M)}, {const(T)}, out={const(T)})",
            f"{u('multiply')}(_ss, {const(T)}, out={const(T)})"]
        for t, (_, _, tv) in zip(ts, views):
            lines += [f"_a = {t}.array", f"_a -= {const(tv)}"]
        return cond, lines

    return _inline_step(opt, opt_ref, groups, flags, names, per_group, per_param, flat=flat,
                        # load_state_dict replaces the state dict, or a parameter's state is
                        # replaced by hand: then the real step() runs
                        extra_checks=lambda const, o, deref: [f"{o}.state is {const(state)}"] + [
                            f"{o}.state.get({deref(weakref.ref(p))}) is {const(states[id(p)])}"
                            for _, ps in groups for p, _ in ps])


def _flat_state(ps, states, fl, decoupled):
    """For one group of an inlined Adam: (G, T, M, V, views) where the group's exp_avg and
    exp_avg_sq arrays become views of two flat arrays M and V (values copied once, here, when
    the plan is built), G gathers the gradients and T is scratch; views: per parameter (its M
    view, its V view, its view of T). None where the flat form does not apply: fewer than two
    parameters, maximize or L2 weight decay (those stay per parameter), mixed dtypes, or state
    arrays that are not contiguous arrays of their own (another array may share them).

    The state tensors stay the optimizer's: only their arrays are replaced, by views holding the
    same values, and every update writes them in place as before, so ``opt.state``,
    ``state_dict()`` and the per-parameter form (which reads ``.array`` live) see the same numbers.
    A plan already built for this optimizer (another input signature) left them flat: reused."""
    from ._tensor import Tensor
    _, wd, mx = fl
    if len(ps) < 2 or mx or (wd and not decoupled):
        return None
    arrays = []
    dtype = ps[0][0].array.dtype
    for p, _ in ps:
        st = states[id(p)]
        m, v = st["exp_avg"], st["exp_avg_sq"]
        if not isinstance(m, Tensor) or not isinstance(v, Tensor):
            return None
        for a in (m.array, v.array):
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != p.array.shape or \
                    not a.flags.c_contiguous:
                return None
        arrays.append((m, v, p.array.shape))
    n = sum(int(np.prod(shape)) for _, _, shape in arrays)
    flats = []
    for which in (0, 1):
        ts = [t[which] for t in arrays]
        base = ts[0].array.base
        ok = isinstance(base, np.ndarray) and base.ndim == 1 and base.size == n and base.dtype == dtype
        off = 0
        for t in ts:
            a = t.array
            ok = ok and a.base is base and \
                a.__array_interface__["data"][0] == base.__array_interface__["data"][0] + off * dtype.itemsize
            off += a.size
        if not ok:
            if any(not t.array.flags.owndata for t in ts):
                return None
            base = np.empty(n, dtype)
            off = 0
            for t in ts:
                a = t.array
                view = base[off:off + a.size].reshape(a.shape)
                view[...] = a
                t.array = view
                off += a.size
        flats.append(base)
    M, V = flats
    G, T = np.empty(n, dtype), np.empty(n, dtype)
    views = []
    off = 0
    for m, v, shape in arrays:
        size = int(np.prod(shape))
        views.append((m.array, v.array, T[off:off + size].reshape(shape)))
        off += size
    return G, T, M, V, views


# The passes in the order they run. inline_optimizer_steps comes first (it turns a host call into
# array code the others can see); dead code goes before buffer reuse so liveness is final.
PIPELINE: list[Callable[[Program], None]] = [
    inline_optimizer_steps,
    drop_noop_views,
    fold_constants,
    direct_calls,
    eliminate_common_calls,
    scalar_operands_as_arrays,
    eliminate_dead_code,
    reuse_buffers,
]


def optimize(program: Program, passes=None) -> Program:
    """Run `passes` (default `PIPELINE`) over `program` in order; returns it, its recorded values
    dropped (they are only for the passes' proofs)."""
    for p in PIPELINE if passes is None else passes:
        p(program)
    program.values = {}
    return program

