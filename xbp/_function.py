"""Custom differentiable functions: ``xbp.autograd.Function`` with PyTorch's protocol.

    class Exp(xbp.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    y = Exp.apply(x)

How it sits in the graph: `apply` runs ``forward`` under no_grad and records ONE ordinary engine
Node whose primitive's VJP calls the user's ``backward``; the node's parents are the edges of the
Tensor arguments, so the engine walks it like any op (dependency counts, freeing, hooks, anomaly,
trace, create_graph). Nothing here is a second engine.

- One output: the output's ``grad_fn`` is that node and its gradient arrives as usual.
- Several outputs (forward returns a tuple): each differentiable output gets a small selector node
  (parent: the function node) whose VJP files the output's gradient in the ctx and passes on a 0-d
  zero token; the engine runs every selector before the function node (it is their parent), so
  when the function node's VJP runs, the ctx holds the gradient of every output that got one.
- ``backward`` always sees Tensors: in a plain backward they are wrapped arrays and grad mode is
  off; under ``create_graph=True`` they are the graph's Tensors and grad mode is on, so a
  ``backward`` written with xbp ops is itself differentiable (double backward).
- Saved inputs (and other tensors) are kept as the Tensor objects, with their graph; saved
  outputs are kept as (array, version counter, weak reference to this node) and rebuilt on this
  node when read, as PyTorch's SavedVariable does, so no reference cycle keeps them alive. Version
  counters are recorded when forward returns and compared when ``ctx.saved_tensors`` is read: a
  saved tensor changed in place since raises RuntimeError.
- The ctx is the node's residual, so the engine drops it (and the saved tensors) after backward
  unless ``retain_graph``; a second backward then raises the engine's usual error.
"""
from __future__ import annotations

import functools
import weakref

from ._primitive import GRAD_STATE, Node, Primitive, _EMPTY, _new_node, _refresh_view, edge
from ._tensor import Tensor, _wrap

__all__ = ["Function", "FunctionCtx", "BackwardCFunction", "once_differentiable"]


class FunctionCtx:
    """The ``ctx`` of a custom Function: what forward leaves for backward.

    Public (PyTorch's names): ``save_for_backward(*tensors)``, ``saved_tensors``,
    ``needs_input_grad`` (a bool per forward argument after ctx: is it a Tensor that requires a
    gradient), ``mark_dirty(*tensors)``, ``mark_non_differentiable(*tensors)``,
    ``set_materialize_grads(bool)``. Any other attribute may be set freely (``ctx.dim = 1``).
    """

    def __init__(self):
        self.needs_input_grad = ()
        self.materialize_grads = True
        self._to_save = ()
        self._saved_versions = None      # set when forward has returned
        self._dirty = ()
        self._non_diff = ()
        self._parents = ()
        self._name = "Function"

    def save_for_backward(self, *tensors):
        """Keep these Tensors (or None) for backward, where ``ctx.saved_tensors`` returns them.
        Use it for inputs and outputs (plain attributes are fine for anything else): saved
        tensors are checked for in-place changes and freed with the graph."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"{self._name}: save_for_backward can only save Tensors or None, but argument "
                                f"{i} is a {type(t).__name__}; keep other values as ctx attributes "
                                "(ctx.value = ...)")
        self._to_save = tensors

    @property
    def saved_tensors(self) -> tuple:
        """The tensors given to `save_for_backward`, each checked against in-place changes made
        since forward returned."""
        saved = self._to_save
        versions = self._saved_versions
        if versions is None:
            return tuple(saved)
        out = []
        for i, (t, v) in enumerate(zip(saved, versions)):
            if t is None:
                out.append(None)
                continue
            now = t._version[0]
            if now != v:
                raise RuntimeError(
                    f"{self._name}: saved tensor {i} (shape {tuple(t.array.shape)}) needed for gradient "
                    f"computation was modified by an in-place operation: it is at version {now}, saved at "
                    f"version {v}. Use an out-of-place op (x = x + y instead of x += y), or .clone() it "
                    "before modifying.")
            out.append(t.unpack(self._name) if type(t) is _SavedOutput else t)
        return tuple(out)

    def mark_dirty(self, *tensors):
        """Declare input tensors that forward modified in place; forward must return them. They
        become outputs of this function (their old graph is what backward differentiates)."""
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors):
        """Declare outputs that get no gradient (indices, masks): they do not require grad, and
        backward receives zeros for them (None without materialized grads)."""
        self._non_diff = tensors

    def set_materialize_grads(self, value: bool):
        """True (default): backward receives zeros for outputs that got no gradient; False: None."""
        self.materialize_grads = bool(value)


class _SavedOutput:
    """A saved OUTPUT of the function, kept without its Tensor: the output's grad_fn is this
    function's node, which holds the ctx, so saving the Tensor itself would make a reference
    cycle (output -> node -> ctx -> output) that only the garbage collector frees. Like PyTorch's
    SavedVariable it keeps the array, the version counter and a weak reference to the node, and
    rebuilds the Tensor (on the graph, for double backward) when `saved_tensors` is read."""

    __slots__ = ("array", "xp", "_version", "node")

    def __init__(self, t, node):
        self.array, self.xp, self._version = t.array, t.xp, t._version
        self.node = weakref.ref(node)

    def unpack(self, name):
        node = self.node()
        if node is None:
            raise RuntimeError(f"{name}: a saved output was read after its graph was freed")
        t = _wrap(self.array, self.xp, True, node)
        t._version = self._version
        return t


BackwardCFunction = FunctionCtx     # PyTorch's name for the type of ``ctx`` (and of ``y.grad_fn``'s ctx)


def _not_overridden(fn):
    return getattr(fn, "_xbp_base", False)


def _base(fn):
    fn._xbp_base = True
    return fn


class Function:
    """Base class of custom differentiable functions (PyTorch's ``torch.autograd.Function``).

    Subclass it with static methods and call ``MyFunction.apply(*args, **kwargs)``:

        forward(ctx, *args, **kwargs) -> Tensor | tuple   run under no_grad, on the arguments as given
        backward(ctx, *grads) -> Tensor | None | tuple    one gradient per output in; one per forward
                                                          argument (after ctx) out, None for
                                                          non-tensor arguments or no gradient

    Or PyTorch's split style: ``forward(*args)`` without ctx plus
    ``setup_context(ctx, inputs, output)`` (inputs: the arguments bound to forward's signature,
    defaults filled in), with the same ``backward``.

    Keyword arguments are bound to forward's signature, so a Tensor passed by name gets its
    gradient at its parameter's position; values caught by a ``**kwargs`` parameter are constants.
    A gradient may have a broadcast shape of its input's (it is summed back); its dtype is cast to
    the input's. See the module docstring for how this sits in the engine.
    """

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__}: call custom Functions through the class, "
                           f"{type(self).__name__}.apply(...), with forward and backward as @staticmethods")

    @staticmethod
    @_base
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a custom autograd.Function must implement a static forward(ctx, *args) "
                                  "(or forward(*args) with setup_context)")

    @staticmethod
    @_base
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not defined for this Function")

    @staticmethod
    @_base
    def backward(ctx, *grads):
        raise NotImplementedError("a custom autograd.Function must implement a static backward(ctx, *grads) "
                                  "to be differentiated")

    vjp = backward      # PyTorch's alias: a subclass may define either one (not both)

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward and, when an argument requires grad under grad mode, record the node."""
        split = not _not_overridden(cls.setup_context)
        if kwargs or split:
            args, kwargs = _bind(cls, args, kwargs, split)
        ctx = FunctionCtx()
        name = ctx._name = cls.__name__
        recording = GRAD_STATE.enabled
        parents = []
        for a in args:
            if recording and isinstance(a, Tensor) and a.requires_grad:
                if a._view is not None and a._version[0] != a._view[3]:
                    _refresh_view(a)             # a stale view: its graph is rebuilt first
                parents.append(a.grad_fn or edge(a))
            else:
                parents.append(None)
        needs = tuple(p is not None for p in parents)
        ctx.needs_input_grad = needs
        prev = GRAD_STATE.enabled
        GRAD_STATE.enabled = False
        try:
            if split:
                output = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, tuple(args), output)
            else:
                output = cls.forward(ctx, *args, **kwargs)
        finally:
            GRAD_STATE.enabled = prev
        if not any(needs):
            ctx._saved_versions = [None if t is None else t._version[0] for t in ctx._to_save]
            return output
        return _record(cls, name, ctx, args, parents, needs, output)


def _bind(cls, args, kwargs, split):
    """Arguments bound to forward's signature: (positional list, leftover **kwargs)."""
    sig = cls.__dict__.get("_xbp_signature")
    if sig is None:
        import inspect
        sig = inspect.signature(cls.forward)
        type.__setattr__(cls, "_xbp_signature", sig)
    try:
        bound = sig.bind(*args, **kwargs) if split else sig.bind(None, *args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{cls.__name__}.apply: the arguments do not match forward{sig}: {e}") from None
    if split:
        bound.apply_defaults()
    pos = list(bound.args if split else bound.args[1:])
    return pos, dict(bound.kwargs)


def _function_prim(cls) -> Primitive:
    p = cls.__dict__.get("_xbp_prim")
    if p is None:
        # passthrough: a user backward may return the incoming gradient (or a saved tensor) as is,
        # so the engine copies before storing it in a leaf's .grad
        p = Primitive(f"{cls.__name__}Backward", None, _function_vjp, passthrough=True)
        type.__setattr__(cls, "_xbp_prim", p)
    return p


def _select_vjp(c, g):
    """An output of a multi-output Function: file its gradient in the ctx, pass on a 0-d token."""
    ctx = c.res
    ctx._pending[c.p["i"]] = g
    if isinstance(g, Tensor):
        return (_wrap(g.xp.zeros((), dtype=g.array.dtype), g.xp),)
    return (c.xp.zeros((), dtype=g.dtype),)


def _select_prim(cls) -> Primitive:
    p = cls.__dict__.get("_xbp_select_prim")
    if p is None:
        p = Primitive(f"{cls.__name__}Output", None, _select_vjp)
        type.__setattr__(cls, "_xbp_select_prim", p)
    return p


_TOKEN_SHAPE = ((),)


class _FunctionNode(Node):
    """A Node of this module (a Function's node, an output selector, a once_differentiable
    guard): the engine treats it as any Node; only its PyTorch-facing name differs."""

    __slots__ = ()

    def name(self) -> str:
        """PyTorch's name for a custom Function's node, the class name plus "Backward"
        (``ExpBackward``), on the function's node and on each of its outputs' selectors."""
        if self.prim.vjp is _select_vjp:
            return self.parents[0].prim.name
        return self.prim.name


def _plain_node(prim, xp, params, res, parents, shapes):
    n = _new_node(prim, xp, params, res, tuple(parents), tuple(p is not None for p in parents), tuple(shapes))
    n.__class__ = _FunctionNode          # same slots: only the methods change
    n.ins = None
    n.out = None
    n.versions = ()
    return n


def _record(cls, name, ctx, args, parents, needs, output):
    xp = None
    shapes = []
    in_meta = []
    for a, p in zip(args, parents):
        if isinstance(a, Tensor):
            if xp is None and p is not None:
                xp = a.xp
            shapes.append(a.array.shape)
            in_meta.append((a.array.shape, a.array.dtype, a.xp))
        else:
            shapes.append(None)
            in_meta.append(None)
    node = _plain_node(_function_prim(cls), xp, _EMPTY, ctx, parents, shapes)
    multi = isinstance(output, tuple)
    outs = output if multi else (output,)
    dirty = ctx._dirty
    non_diff = ctx._non_diff
    for t in dirty:
        if not _among(t, outs):
            raise RuntimeError(f"{name}: a tensor marked dirty (shape {t.shape}) was not returned by forward; "
                               "tensors modified in place must all be outputs of the Function")
        if t.requires_grad and t.grad_fn is None:
            raise RuntimeError(f"{name}: forward modified in place a leaf tensor that requires grad "
                               f"(shape {t.shape}); pass a .clone() of it instead")
    replaced = None
    targets = {}                         # id(output Tensor) -> the node it hangs from
    new_outs = []
    meta = []
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            new_outs.append(o)
            meta.append(None)
            continue
        meta.append((o.array.shape, o.array.dtype, o.xp))
        is_dirty = bool(dirty) and _among(o, dirty)
        if (non_diff and _among(o, non_diff)) or o.dtype.kind not in "fc":
            if is_dirty:
                o.grad_fn, o.requires_grad = None, False
            elif o.requires_grad:
                o = _alias(o, False, None)       # e.g. an input returned as is keeps requiring grad
            new_outs.append(o)
            continue
        target = _plain_node(_select_prim(cls), xp, {"i": i}, ctx, (node,), _TOKEN_SHAPE) if multi else node
        if is_dirty:
            o.grad_fn, o.requires_grad = target, True
            targets[id(o)] = target
        elif o.requires_grad or o._base is not None or o._view is not None or _among(o, args):
            # an input returned as is, a tensor of some other graph, a view, or an output given
            # twice: a new Tensor on the same memory (sharing its version counter) carries this node
            new = _alias(o, True, target)
            if replaced is None:
                replaced = {}
            replaced.setdefault(id(o), new)
            o = new
        else:
            o.grad_fn, o.requires_grad = target, True
        targets[id(o)] = target
        new_outs.append(o)
    saved = ctx._to_save
    if replaced:
        # a saved tensor returned through an alias is saved as that output, except an input,
        # which stays the input (its own graph is what a double backward must follow)
        saved = tuple(t if t is None or _among(t, args) else replaced.get(id(t), t) for t in saved)
    ctx._saved_versions = [None if t is None else t._version[0] for t in saved]
    ctx._to_save = tuple(_SavedOutput(t, targets[id(t)]) if t is not None and id(t) in targets else t
                         for t in saved)
    ctx._out_meta = meta
    ctx._multi = multi
    ctx._pending = [None] * len(outs)
    ctx._cls = cls
    ctx._parents = node.parents
    ctx._in_meta = in_meta
    return tuple(new_outs) if multi else new_outs[0]


def _among(t, seq) -> bool:
    """Whether the object `t` is in `seq`, by identity (Tensor == is elementwise)."""
    for s in seq:
        if s is t:
            return True
    return False


def _alias(t, requires_grad, grad_fn):
    a = _wrap(t.array, t.xp, requires_grad, grad_fn)
    a._version = t._version
    return a


def _function_vjp(c, g):
    """The engine calls this for a Function node: gather the outputs' gradients, run the user's
    backward on Tensors, check what it returned, hand the engine arrays (or Tensors under
    create_graph)."""
    ctx = c.res
    create = isinstance(g, Tensor)
    if ctx._multi:
        incoming = ctx._pending
        ctx._pending = [None] * len(incoming)
    else:
        incoming = [g]
    grads = []
    for gi, meta in zip(incoming, ctx._out_meta):
        if meta is None:
            grads.append(None)
        elif gi is None:
            grads.append(_wrap(meta[2].zeros(meta[0], dtype=meta[1]), meta[2]) if ctx.materialize_grads else None)
        else:
            grads.append(gi if create else _wrap(gi, meta[2]))
    cls = ctx._cls
    result = _user_backward(cls)(ctx, *grads)
    if not isinstance(result, tuple):
        result = (result,)
    n = len(ctx._in_meta)
    name = f"{cls.__name__}Backward"
    if len(result) != n:
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        else:
            raise RuntimeError(
                f"function {name} returned an incorrect number of gradients (expected {n}, got {len(result)}): "
                "backward must return one gradient per forward argument after ctx, None for non-tensor "
                "arguments and for those needing no gradient")
    out = []
    for i, (r, meta, need) in enumerate(zip(result, ctx._in_meta, c.needs)):
        if r is None:
            out.append(None)
            continue
        if meta is None:
            raise RuntimeError(f"function {name} returned a gradient different than None at position {i + 1}, "
                               "but the corresponding forward argument is not a Tensor; return None for it")
        if not isinstance(r, Tensor):
            raise TypeError(f"function {name} returned a {type(r).__name__} as the gradient at position {i + 1}; "
                            "return a Tensor (or None)")
        if not need:
            out.append(None)
            continue
        shape, dtype, xp = meta
        if r.xp is not xp:
            raise RuntimeError(f"function {name}: the gradient at position {i + 1} is on {r.device}, its input on "
                               f"{xp.device}; move it with .to()")
        rs = tuple(r.shape)
        if rs != shape and not _expandable(shape, rs):
            raise RuntimeError(f"function {name} returned an invalid gradient at position {i + 1}: shape {rs}, but "
                               f"its input has shape {shape} (a gradient must have the input's shape or one it "
                               "broadcasts to)")
        if r.array.dtype != dtype:
            r = r.to(dtype=dtype)
        out.append(r if create else r.array)
    return tuple(out)


def _user_backward(cls):
    bwd, vjp = cls.backward, cls.vjp
    if not _not_overridden(vjp):
        if not _not_overridden(bwd) and bwd is not vjp:
            raise RuntimeError(f"{cls.__name__}: defines both backward and vjp; define one of them")
        return vjp
    return bwd


def _expandable(shape, to):
    """Whether `shape` broadcasts to `to` (then the engine sums the gradient back)."""
    if len(shape) > len(to):
        return False
    return all(s == t or s == 1 for s, t in zip(shape[::-1], to[::-1]))


def _once_vjp(c, g):
    raise RuntimeError(
        f"trying to differentiate twice a function whose backward is marked @once_differentiable "
        f"({c.p['name']}): that backward runs under no_grad and has no derivative. Write backward with "
        "differentiable xbp ops and drop the decorator to get second derivatives.")


_once_p = Primitive("OnceDifferentiableBackward", None, _once_vjp)


def once_differentiable(fn):
    """Decorator for a Function's ``backward`` that is not itself differentiable (it may work on
    arrays, call NumPy, ...): it runs under no_grad; under ``create_graph=True`` its results are
    returned with a graph node that raises a clear RuntimeError if a later backward reaches it."""

    @functools.wraps(fn)
    def wrapper(ctx, *grads):
        prev = GRAD_STATE.enabled
        GRAD_STATE.enabled = False
        try:
            result = fn(ctx, *grads)
        finally:
            GRAD_STATE.enabled = prev
        if not prev:
            return result
        edges = [p for p in getattr(ctx, "_parents", ()) if p is not None]
        edges += [g.grad_fn or edge(g) for g in grads if isinstance(g, Tensor) and g.requires_grad]
        if not edges:
            return result
        params = {"name": getattr(fn, "__qualname__", "backward")}

        def poison(r):
            if not isinstance(r, Tensor):
                return r
            n = _plain_node(_once_p, r.xp, params, None, edges, [None] * len(edges))
            return _wrap(r.array, r.xp, True, n)
        return tuple(poison(r) for r in result) if isinstance(result, tuple) else poison(result)
    return wrapper
