"""Guards on the Python values a compiled step reads: a recorded plan (and a captured CUDA graph)
bakes in every Python number the step used, so ``logits / temperature`` records a division by
1.0; when the program later sets ``temperature = 2.0``, a replay would silently keep dividing by
1.0. `PythonState` snapshots, when a recording (or a capture) starts, the plain Python values the
step can reach by name and checks them before every replay; a changed one makes the caller record
(or capture) again, and one that changes on every call makes it run eagerly, naming the value.

What is watched (plain values: numbers, strings, None, and tuples of them):
- the compiled function's closure cells and the globals its code names (nested code objects
  included), and those of the Python functions and bound methods it names in turn (2 levels);
- the plain items of a dict held by such a name (``cfg["scale"]``), and a list of plain values
  held by one (``class_weights = [1.0, 2.0]``);
- the public plain attributes of the modules the step uses (``dropout.p``, ``self.scale``) and of
  the object a compiled bound method belongs to.
Values reached any other way (an attribute of an attribute of an object that is not a module, a
NumPy array's values) are not watched: pass such a value as a tensor argument instead. The
optimizers' hyperparameters are read live by the plan and need no guard.
"""
from __future__ import annotations

import types

_PLAIN = (int, float, bool, str, complex, type(None))
_CELL = object()           # the key of a closure cell's entry
_ITEMS = object()          # the key of a list's entry: its items, as a tuple
_MISSING = object()
_MAX_DEPTH = 2             # functions named by functions named by the compiled one
_MAX_ITEMS = 64            # dicts larger than this are data, not configuration: not watched


def _is_plain(v) -> bool:
    t = type(v)
    if t in _PLAIN:
        return True
    return t is tuple and len(v) <= 16 and all(type(e) in _PLAIN for e in v)


def _same(a, b) -> bool:
    # NaN equals NaN here (a value that did not change); 1 and 1.0 and True differ (another type
    # can change what NumPy computes)
    return a is b or (type(a) is type(b) and (a == b or (a != a and b != b)))


def _names(code):
    """The global names a code object and the code objects nested in it (comprehensions,
    lambdas, inner functions) can look up."""
    out = list(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out.extend(_names(c))
    return out


class PythonState:
    """The plain Python values a step can reach by name, as they were when it was recorded.

    `entries`: (holder, key, value, label): holder is a dict (globals, a module's or an object's
    ``__dict__``, a config dict) read with ``holder.get(key)``, a closure cell (key `_CELL`) or a
    list of plain values (key `_ITEMS`: compared as a tuple)."""

    __slots__ = ("entries",)

    def __init__(self, fn, modules=()):
        self.entries: list = []
        seen: set = set()
        self._function(fn, 0, seen)
        owner = getattr(fn, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            self._attributes(owner, type(owner).__name__, seen)
        for m in modules:
            self._attributes(m, type(m).__name__, seen)

    def changed(self):
        """None if every watched value is as recorded, else the label of the first that is not."""
        for holder, key, value, label in self.entries:
            if key is _CELL:
                try:
                    cur = holder.cell_contents
                except ValueError:
                    cur = _MISSING
            elif key is _ITEMS:
                cur = tuple(holder)
            else:
                cur = holder.get(key, _MISSING)
            if cur is not value and not _same(cur, value):
                return label
        return None

    # --- collecting -----------------------------------------------------------------------------
    def _function(self, fn, depth, seen):
        if isinstance(fn, types.MethodType):
            self._function(fn.__func__, depth, seen)
            return
        code = getattr(fn, "__code__", None)
        if code is None or id(fn) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(fn))
        for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            self._value(cell, _CELL, v, name, depth, seen)
        g = getattr(fn, "__globals__", None) or {}
        for name in dict.fromkeys(_names(code)):
            if name in g:
                self._value(g, name, g[name], name, depth, seen)

    def _value(self, holder, key, v, label, depth, seen):
        if _is_plain(v):
            self.entries.append((holder, key, v, label))
        elif type(v) is dict:
            if len(v) <= _MAX_ITEMS and id(v) not in seen:
                seen.add(id(v))
                for k, e in v.items():
                    if _is_plain(e):
                        self.entries.append((v, k, e, f"{label}[{k!r}]"))
        elif type(v) is list:
            if len(v) <= _MAX_ITEMS and id(v) not in seen and all(_is_plain(e) for e in v):
                seen.add(id(v))
                self.entries.append((v, _ITEMS, tuple(v), label))
        elif isinstance(v, (types.FunctionType, types.MethodType)):
            self._function(v, depth + 1, seen)

    def _attributes(self, obj, label, seen):
        d = getattr(obj, "__dict__", None)
        if type(d) is not dict or id(d) in seen:
            return
        seen.add(id(d))
        for k, v in d.items():
            # private names are the object's machinery (a module's _parameters, _buffers, hooks);
            # `training` is part of the plan's signature already
            if not k.startswith("_") and k != "training" and _is_plain(v):
                self.entries.append((d, k, v, f"{label}.{k}"))
