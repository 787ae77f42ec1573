"""Every public name of xbp has a docstring of its own (issue 16): each function and class reachable
from the public modules below, and each class's public methods and properties, own or inherited
from an xbp class. A method that overrides a documented base method without a docstring of its
own counts as missing (``help()`` would show the base's text, which may not describe the
override); the same object reached through several modules counts once.

Run as a script (``python tests/test_docstrings.py``) to print the coverage per module."""
from __future__ import annotations

import functools
import importlib
import inspect
import sys

PUBLIC_MODULES = [
    "xbp", "xbp.nn", "xbp.nn.functional", "xbp.nn.init", "xbp.nn.utils", "xbp.optim",
    "xbp.optim.lr_scheduler", "xbp.data", "xbp.autograd", "xbp.autograd.functional", "xbp.func",
    "xbp.viz", "xbp.linalg", "xbp.cuda", "xbp.distributed", "xbp.array_api", "xbp.serialization",
    "xbp.utils.data",
]


def _is_xbp(obj) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return mod == "xbp" or mod.startswith("xbp.")


def _own_doc(raw) -> str | None:
    """The docstring an attribute carries itself (never one looked up on a base class)."""
    if isinstance(raw, (staticmethod, classmethod)):
        raw = raw.__func__
    if isinstance(raw, property):
        return raw.__doc__ or (raw.fget.__doc__ if raw.fget is not None else None)
    if isinstance(raw, functools.cached_property):
        return raw.__doc__ or raw.func.__doc__
    if isinstance(raw, functools.partial):
        return raw.__dict__.get("__doc__")
    if inspect.isclass(raw):
        doc = raw.__dict__.get("__doc__")
        # dataclasses and namedtuples fill a missing docstring with the signature: not a description
        if doc and "\n" not in doc.strip() and doc.startswith(raw.__name__ + "("):
            return None
        return doc
    return getattr(raw, "__doc__", None)


def _identity(raw):
    """The object whose docstring is checked, so that re-exports and aliases count once."""
    if isinstance(raw, (staticmethod, classmethod)):
        return raw.__func__
    if isinstance(raw, property):
        return raw.fget if raw.fget is not None else raw
    if isinstance(raw, functools.cached_property):
        return raw.func
    return raw


def _member_kind(raw):
    if isinstance(raw, (staticmethod, classmethod)) or inspect.isfunction(raw):
        return "method"
    if isinstance(raw, (property, functools.cached_property)):
        return "property"
    return None


def public_names(modname: str):
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    return mod, [n for n in names if not n.startswith("_")]


def collect(modules=PUBLIC_MODULES):
    """Returns (entries, skipped): entries is a list of (module, dotted name, kind, has_doc), one
    per distinct object in the order first reached; skipped is a list of (module, reason)."""
    seen: set[int] = set()
    entries: list[tuple[str, str, str, bool]] = []
    skipped: list[tuple[str, str]] = []
    keep = []  # keeps looked-up objects alive so that id() stays unique during the walk

    def add(modname, path, kind, raw):
        ident = _identity(raw)
        keep.append(ident)
        if id(ident) in seen:
            return False
        seen.add(id(ident))
        doc = _own_doc(raw)
        entries.append((modname, path, kind, bool(doc and doc.strip())))
        return True

    for modname in modules:
        try:
            mod, names = public_names(modname)
        except ImportError as e:
            skipped.append((modname, f"not importable: {e}"))
            continue
        for name in names:
            obj = getattr(mod, name, None)
            if inspect.ismodule(obj) or not _is_xbp(obj):
                continue
            if inspect.isclass(obj):
                if not add(modname, f"{modname}.{name}", "class", obj):
                    continue
                overridden: set[str] = set()
                for base in obj.__mro__:
                    if not _is_xbp(base):
                        overridden.update(vars(base))  # object/builtins/numpy members are not ours
                        continue
                    for attr, raw in vars(base).items():
                        if attr.startswith("_") or attr in overridden:
                            continue
                        overridden.add(attr)
                        kind = _member_kind(raw)
                        if kind is not None:
                            add(modname, f"{modname}.{name}.{attr}", kind, raw)
            elif inspect.isfunction(obj) or inspect.isbuiltin(obj) or isinstance(obj, functools.partial):
                add(modname, f"{modname}.{name}", "function", obj)
    return entries, skipped


def coverage_by_module(entries):
    out: dict[str, list[int]] = {}
    for modname, _path, _kind, ok in entries:
        row = out.setdefault(modname, [0, 0])
        row[0] += ok
        row[1] += 1
    return out


def test_every_public_name_has_its_own_docstring():
    entries, skipped = collect()
    for modname, reason in skipped:
        print(f"skipped {modname}: {reason}")
    assert len(entries) > 1000, "the walk found too few names: is the module list right?"
    missing = [f"{path} ({kind})" for _m, path, kind, ok in entries if not ok]
    assert not missing, (f"{len(missing)} of {len(entries)} public names have no docstring of their own:\n  "
                         + "\n  ".join(missing))


def test_walk_sees_members_and_deduplicates():
    entries, _ = collect()
    paths = [p for _m, p, _k, _ok in entries]
    assert "xbp.Tensor.backward" in paths           # a method
    assert "xbp.Tensor.shape" in paths              # a property
    assert "xbp.nn.Linear.forward" in paths         # an override
    # relu is reachable as xbp.relu and xbp.nn.functional.relu: it is counted once
    assert "xbp.relu" in paths and "xbp.nn.functional.relu" not in paths


def test_walk_rules_on_a_made_up_module(monkeypatch):
    import types
    mod = types.ModuleType("xbp._doccheck_fake")

    class _Base:
        def documented(self):
            """Has one."""

        def plain(self):
            pass

    class Child(_Base):
        """A class."""

        def documented(self):          # an override without its own docstring: missing
            pass

        @property
        def size(self):
            """A property."""

    class Bare(int):                   # int's members are not walked
        pass

    def helper():
        pass
    for obj in (_Base, Child, Bare, helper):
        obj.__module__ = mod.__name__
    mod.Child, mod.Bare, mod.helper, mod.alias = Child, Bare, helper, helper
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    entries, _ = collect([mod.__name__])
    got = {p.split(".", 2)[-1]: ok for _m, p, _k, ok in entries}
    assert got == {"Child": True, "Child.documented": False, "Child.size": True, "Child.plain": False,
                   "Bare": False, "helper": False}


def _tensor_method_bodies():
    """{method name: its one return expression} for Tensor's methods whose body is one return."""
    import ast
    import xbp._tensor
    src = inspect.getsource(xbp._tensor)
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    out = {}
    for n in cls.body:                   # a later definition replaces an earlier one, as in the class
        if isinstance(n, ast.FunctionDef) and len(n.body) == 1 and isinstance(n.body[0], ast.Return):
            out[n.name] = n.body[0].value
    return src, out


def test_tensor_doc_tables_match_the_methods():
    """xbp/_tensor_docs.py says ``t.sum(...)`` is ``xbp.sum(t, ...)``: check each such claim against
    the method's source, so a changed method cannot keep a docstring describing another call."""
    import ast
    from xbp import _tensor_docs as D
    src, bodies = _tensor_method_bodies()
    wrong = []
    for name, (op, call) in D.DELEGATES.items():
        body = bodies.get(name)
        text = ast.get_source_segment(src, body) if body is not None else None
        if text is None or text.replace("self", "t", 1).replace("_ops.", "xbp.") != call:
            wrong.append(f"{name}: documented as {call}, source {text}")
        elif not (getattr(D._ops, op).__doc__ or "").strip():
            wrong.append(f"{name}: xbp.ops.{op} has no docstring to show")
    for name, (op, call) in D.INPLACE.items():
        body = bodies.get(name)
        ok = (isinstance(body, ast.Call) and ast.get_source_segment(src, body.func) == "_ops.inplace_"
              and len(body.args) == 3 and isinstance(body.args[1], ast.Constant) and body.args[1].value == name)
        fn = ast.get_source_segment(src, body.args[2]) if ok else None
        expect = (f"_ops.{op}" if call == f"xbp.{op}(t)" else "lambda t: " + call.replace("xbp.", "_ops.", 1))
        if fn != expect:
            wrong.append(f"{name}: documented as {call}, source {fn}")
    assert not wrong, "\n".join(wrong)


if __name__ == "__main__":
    ents, skips = collect()
    for m, reason in skips:
        print(f"skipped {m}: {reason}")
    total_ok = total = 0
    for m, (ok, n) in coverage_by_module(ents).items():
        print(f"{m:28s} {ok:5d} / {n:5d}  ({100 * ok / max(n, 1):5.1f}%)")
        total_ok += ok
        total += n
    print(f"{'total':28s} {total_ok:5d} / {total:5d}  ({100 * total_ok / max(total, 1):5.1f}%)")
    if "-v" in sys.argv:
        for _m, p, k, ok in ents:
            if not ok:
                print("MISSING", p, k)
