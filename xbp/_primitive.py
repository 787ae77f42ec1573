"""Primitives and graph nodes: `apply` is the one hot path every differentiable op goes through.

A primitive is a forward function on arrays and its vector-Jacobian product, defined side by side:

    def _exp(xp, x):            return xp.exp(x)
    def _exp_vjp(c, g):         return (g * c.out,)
    exp_p = Primitive("exp", _exp, _exp_vjp, save="out")

The VJP reads what forward saved from its context `c` (`c.ins`, `c.out`, `c.res`, `c.p` the
keyword parameters, `c.needs` which inputs want a gradient, `c.xp` the namespace). In a plain
backward, `c` is the Node and everything in it is a backend array; under ``create_graph=True`` the
engine hands the same VJP Tensors and a namespace of differentiable xbp ops, so one body serves
first- and higher-order gradients. Gradients may have the broadcast shape: the engine sums them
back to each input's shape.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from ._tensor import Tensor, _wrap

_EMPTY: dict = {}


class _GradState(threading.local):
    """Grad mode, per thread as in PyTorch: a thread running under ``no_grad`` (an evaluation
    server, a data-loading thread) does not switch recording off for the training thread."""
    enabled = True


GRAD_STATE = _GradState()


ANOMALY = [None]               # set to a checker by xbp.autograd.detect_anomaly


class Primitive:
    """A differentiable operation: forward on arrays, its VJP, and what the VJP needs saved.

    save: ``"in"`` keeps the input arrays, ``"out"`` the output, ``"in,out"`` both, ``""`` none.
    res:  forward returns ``(out, residual)``; the residual (arrays the VJP needs that are not
          inputs or the output, e.g. a mask) is kept on the node as ``c.res``.
    passthrough: the VJP may hand the incoming gradient (or a view of it) back unchanged; the
          engine copies such a gradient before storing it in a leaf's ``.grad``.
    """

    __slots__ = ("name", "fwd", "vjp", "save_in", "save_out", "res", "passthrough")

    def __init__(self, name, fwd, vjp, save="", res=False, passthrough=False):
        self.name = name
        self.fwd = fwd
        self.vjp = vjp
        self.save_in = "in" in save
        self.save_out = "out" in save
        self.res = res
        self.passthrough = passthrough

    def __repr__(self):
        return f"<primitive {self.name}>"


class Node:
    """One recorded application of a primitive (the ``grad_fn`` of its output)."""

    __slots__ = ("prim", "xp", "parents", "shapes", "needs", "ins", "out", "res", "p", "versions",
                 "vsaved", "hooks", "freed", "where", "__weakref__")
    # for type checkers: set by apply(); arrays and parameters are untyped
    prim: Any
    xp: Any
    parents: Any
    shapes: Any
    needs: Any
    ins: Any
    out: Any
    res: Any
    p: Any
    versions: Any
    vsaved: Any
    hooks: Any
    freed: Any
    where: Any

    def name(self) -> str:
        """PyTorch's name for this node (``MulBackward0``); the primitive's own name, which the
        visualiser shows, is ``node.prim.name``."""
        from ._grad_fn_names import torch_name
        return torch_name(self)

    @property
    def next_functions(self) -> tuple:
        """``((node, 0), ...)``, one pair per input as in PyTorch: the input's grad_fn, an
        AccumulateGrad node (with ``.variable``) for a leaf that requires grad, or None."""
        return tuple((p, 0) for p in self.parents)

    def add_hook(self, fn):
        if self.hooks is None:
            self.hooks = []
        self.hooks.append(fn)
        from ._tensor import _HookHandle
        return _HookHandle(self.hooks, fn)

    def __repr__(self):
        return f"<{self.name()} object at {id(self):#x}>"


class Accumulate:
    """The graph edge into a leaf tensor: backward adds the incoming gradient to its ``.grad``.
    Holds the leaf weakly, so the graph never keeps a dropped leaf alive."""

    __slots__ = ("ref", "__weakref__")
    parents = ()
    next_functions = ()
    hooks = None
    freed = False

    def __init__(self, t: Tensor):
        self.ref = weakref.ref(t)

    @staticmethod
    def name() -> str:
        return "AccumulateGrad"

    @property
    def tensor(self):
        return self.ref()

    variable = tensor            # PyTorch's name for the leaf

    def __repr__(self):
        return f"<AccumulateGrad object at {id(self):#x}>"


def edge(t: Tensor):
    """The node a gradient for `t` flows into: its grad_fn, or its (cached) Accumulate."""
    n = t.grad_fn
    if n is not None:
        return n
    a = t._accum
    if a is None:
        a = t._accum = Accumulate(t)
    return a


def apply(prim: Primitive, args: tuple, params: dict = _EMPTY) -> Tensor:
    """Run `prim` forward on the arrays of `args` (Tensors or Python scalars) and, if any input
    requires grad and grad mode is on, record a Node for backward. This is the hot path every
    differentiable op goes through: one- and two-argument calls (nearly all of them) take the
    unrolled `apply1`/`apply2`."""
    k = len(args)
    if k == 2:
        return apply2(prim, args[0], args[1], params)
    if k == 1:
        return apply1(prim, args[0], params)
    return _apply_n(prim, args, params)


def _new_node(prim, xp, params, res, parents, needs, shapes) -> Node:
    n = Node()
    n.prim = prim
    n.xp = xp
    n.p = params
    n.res = res
    n.parents = parents
    n.needs = needs
    n.shapes = shapes
    n.hooks = None
    n.freed = False
    n.where = None if ANOMALY[0] is None else ANOMALY[0].where()
    return n


def _reraise_shape_error(prim, args, e: ValueError) -> None:
    """A backend's broadcasting error, re-raised naming the op and both shapes."""
    if "broadcast" not in str(e):
        return
    shapes = " and ".join(str(tuple(getattr(a, "shape", ()))) for a in args)
    raise ValueError(f"{prim.name}: the shapes {shapes} cannot be broadcast together (each dim must be "
                     "equal, or 1 in one of them); reshape or unsqueeze one operand") from None


def apply1(prim: Primitive, x, params: dict = _EMPTY) -> Tensor:
    """`apply` for one Tensor argument. Like `apply2` it fills the Node inline rather than through
    `_new_node` (the general path's helper): one call fewer on every recorded op."""
    if not isinstance(x, Tensor):
        return _apply_n(prim, (x,), params)
    if x._view is not None and x._version[0] != x._view[3]:
        _refresh_view(x)
    xp = x.xp
    if prim.res:
        out, res = prim.fwd(xp, x.array, **params)
    else:
        out = prim.fwd(xp, x.array, **params)
        res = None
    if ANOMALY[0] is not None:
        ANOMALY[0].check_forward(prim, (x,), out)
    if not x.requires_grad or not GRAD_STATE.enabled:
        return _wrap(out, xp)
    n = Node()
    n.prim = prim
    n.xp = xp
    n.p = params
    n.res = res
    n.parents = (x.grad_fn or edge(x),)
    n.needs = _TRUE1
    n.shapes = (x.array.shape,)
    n.hooks = None
    n.freed = False
    n.where = None if ANOMALY[0] is None else ANOMALY[0].where()
    t = _wrap(out, xp, True, n)
    # the version counters of the saved tensors, and their values now: backward compares them
    if prim.save_in:
        n.ins = (x.array,)
        if prim.save_out:
            n.versions = (x._version, t._version)
            n.vsaved = (x._version[0], 0)
        else:
            n.versions = (x._version,)
            n.vsaved = (x._version[0],)
    else:
        n.ins = None
        if prim.save_out:
            n.versions = (t._version,)
            n.vsaved = _ZERO1
        else:
            n.versions = ()
    n.out = out if prim.save_out else None
    return t


def apply2(prim: Primitive, a, b, params: dict = _EMPTY) -> Tensor:
    """`apply` for two arguments, at least one of them a Tensor (the other may be a number).
    Written out flat, without helper calls: every binary op of every step comes through here."""
    ta = isinstance(a, Tensor)
    tb = isinstance(b, Tensor)
    if ta:
        if a._view is not None and a._version[0] != a._view[3]:
            _refresh_view(a)
        xp = a.xp
        da = a.array
        if tb:
            if b._view is not None and b._version[0] != b._view[3]:
                _refresh_view(b)
            if b.xp is not xp:
                _device_mismatch(prim, (a, b))
            db = b.array
            req = a.requires_grad or b.requires_grad
        else:
            db = b if b.__class__ in _PLAIN else _coerce(b, (a, b))
            req = a.requires_grad
    elif tb:
        if b._view is not None and b._version[0] != b._view[3]:
            _refresh_view(b)
        xp = b.xp
        da = a if a.__class__ in _PLAIN else _coerce(a, (a, b))
        db = b.array
        req = b.requires_grad
    else:
        return _apply_n(prim, (a, b), params)
    try:                                # free on the happy path (CPython 3.11+ zero-cost try)
        if prim.res:
            out, res = prim.fwd(xp, da, db, **params)
        else:
            out = prim.fwd(xp, da, db, **params)
            res = None
    except ValueError as e:
        _reraise_shape_error(prim, (a, b), e)
        raise
    if ANOMALY[0] is not None:
        ANOMALY[0].check_forward(prim, (a, b), out)
    if not req or not GRAD_STATE.enabled:
        return _wrap(out, xp)
    pa = (a.grad_fn or edge(a)) if ta and a.requires_grad else None
    pb = (b.grad_fn or edge(b)) if tb and b.requires_grad else None
    n = Node()
    n.prim = prim
    n.xp = xp
    n.p = params
    n.res = res
    n.parents = (pa, pb)
    n.needs = (pa is not None, pb is not None)
    n.shapes = (da.shape if ta else getattr(da, "shape", None), db.shape if tb else getattr(db, "shape", None))
    n.hooks = None
    n.freed = False
    n.where = None if ANOMALY[0] is None else ANOMALY[0].where()
    t = _wrap(out, xp, True, n)
    if prim.save_in:
        n.ins = (da, db)
        if ta and tb:
            va, vb = a._version, b._version
            if prim.save_out:
                n.versions = (va, vb, t._version)
                n.vsaved = (va[0], vb[0], 0)
            else:
                n.versions = (va, vb)
                n.vsaved = (va[0], vb[0])
        else:
            v = a._version if ta else b._version
            if prim.save_out:
                n.versions = (v, t._version)
                n.vsaved = (v[0], 0)
            else:
                n.versions = (v,)
                n.vsaved = (v[0],)
    else:
        n.ins = None
        if prim.save_out:
            n.versions = (t._version,)
            n.vsaved = _ZERO1
        else:
            n.versions = ()
    n.out = out if prim.save_out else None
    return t


def _apply_n(prim: Primitive, args: tuple, params: dict) -> Tensor:
    """`apply` for any number of arguments."""
    xp = None
    req = False
    arrays = []
    for a in args:
        if isinstance(a, Tensor):
            if a._view is not None and a._version[0] != a._view[3]:
                _refresh_view(a)
            if xp is None:
                xp = a.xp
            elif a.xp is not xp:
                _device_mismatch(prim, args)
            arrays.append(a.array)
            if a.requires_grad:
                req = True
        else:
            if a.__class__ not in _PLAIN:
                a = _coerce(a, args)
            arrays.append(a)
    if xp is None:
        raise TypeError(f"{prim.name}: no tensor among the arguments ({', '.join(type(a).__name__ for a in args)})")
    if prim.res:
        out, res = prim.fwd(xp, *arrays, **params)
    else:
        out = prim.fwd(xp, *arrays, **params)
        res = None
    if ANOMALY[0] is not None:
        ANOMALY[0].check_forward(prim, args, out)
    if not req or not GRAD_STATE.enabled:
        return _wrap(out, xp)
    parents = []
    shapes = []
    versions = []
    for a, arr in zip(args, arrays):
        if isinstance(a, Tensor):
            parents.append((a.grad_fn or edge(a)) if a.requires_grad else None)
            versions.append(a._version)
        else:
            parents.append(None)
        shapes.append(getattr(arr, "shape", None))
    n = _new_node(prim, xp, params, res, tuple(parents), tuple([p is not None for p in parents]),
                  tuple(shapes))
    t = _wrap(out, xp, True, n)
    if prim.save_in:
        n.ins = tuple(arrays)
        if prim.save_out:
            versions.append(t._version)
        n.versions = tuple(versions)
        n.vsaved = tuple([v[0] for v in versions])
    else:
        n.ins = None
        if prim.save_out:
            n.versions = (t._version,)
            n.vsaved = _ZERO1
        else:
            n.versions = ()
    n.out = out if prim.save_out else None
    return t


_TRUE1 = (True,)
_ZERO1 = (0,)


def _refresh_view(v: Tensor) -> None:
    """`v` is a view (basic indexing, reshape, permute, expand; its `_view` is [parent, primitive,
    params, version]) whose memory was changed in place since its graph was set, through its base
    or another view: rebuild its grad_fn by replaying the view op on the parent's current graph, as
    PyTorch regenerates a view's grad_fn. Without this, backward would use the view's old history
    for its new values."""
    if not GRAD_STATE.enabled:
        return
    link = v._view
    new = apply(link[1], (link[0],), link[2])            # refreshes a stale parent first
    v.grad_fn = new.grad_fn
    v.requires_grad = new.requires_grad
    link[3] = v._version[0]
_PLAIN = frozenset((float, int, bool, type(None), str, tuple))


def _coerce(a, args):
    """A non-Tensor argument other than a Python number: NumPy scalars become Python numbers, so
    they are "weak" like Python scalars (``x * np.float64(2)`` stays float32, as in PyTorch); a raw
    NumPy array is moved to the device of the Tensor arguments."""
    import numpy as np
    if isinstance(a, np.generic) or (isinstance(a, np.ndarray) and a.ndim == 0):
        return a.item()          # 0-d arrays too: like PyTorch's 0-d tensors, they do not promote
    if isinstance(a, np.ndarray):
        for t in args:
            if isinstance(t, Tensor):
                return t.xp.from_numpy(a) if t.xp.kind != "numpy" else a
    return a


def _device_mismatch(prim, args):
    from ._backend import DeviceError
    devs = [f"{type(a).__name__} on {a.device}" for a in args if isinstance(a, Tensor)]
    raise DeviceError(f"{prim.name}: inputs are on different devices ({', '.join(devs)}); "
                      "move them to one device with .to(device) first")
