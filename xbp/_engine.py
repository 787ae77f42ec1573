"""Reverse-mode engine: walks the graph from the outputs back to the leaves, without recursion.

1. Count, for every node reachable from the outputs, how many consumers will send it a gradient
   (an explicit stack, so a 10,000-op chain is fine).
2. Pop nodes whose consumers have all reported (Kahn's algorithm: a reverse topological order),
   sum what they received, run their VJP, sum each result back to its input's shape (the one
   place broadcasting is undone) and pass it on. A gradient is dropped as soon as it is used.
3. Leaves add into ``.grad``; `xbp.grad` instead captures the gradients of chosen tensors.
Saved arrays are released after each VJP unless ``retain_graph``. Under ``create_graph`` the
VJPs run on Tensors with grad mode on, so the backward pass is itself differentiable.
"""
from __future__ import annotations

import weakref
from typing import Any

from ._primitive import Accumulate, GRAD_STATE, ANOMALY, Node, edge
from ._tensor import Tensor, _wrap

TRACE = [None]   # set by xbp.autograd.trace() to a recorder of each visited node
# Accumulate node -> [fn(tensor)]: called after a gradient was added into that leaf's ``.grad``
# (PyTorch's post-accumulate-grad hooks; DistributedDataParallel launches its bucket all-reduces here).
POST_ACCUMULATE = weakref.WeakKeyDictionary()
_CALLBACKS: list = []   # queue_callback(): run once when the outermost running backward finishes
_DEPTH = [0]
# backend -> the namespace of differentiable ops that VJPs see under create_graph. The ops stand
# above the engine, so they hand it in: xbp/ops/_tensor_ns.py sets it when imported (with xbp).
TENSOR_NAMESPACE: list = [None]


def unbroadcast(xp, g, shape):
    """Sum `g` (of a broadcast shape) back to `shape`. Works on arrays and, with the tensor
    namespace, on Tensors."""
    gs = tuple(g.shape)
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    if lead < 0:
        raise RuntimeError(f"gradient of shape {gs} cannot be summed to input shape {shape}")
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and gs[i + lead] != 1)
    if axes:
        g = xp.sum(g, axis=axes)
    return xp.reshape(g, shape)


class _TensorCtx:
    """The VJP context under create_graph: saved arrays re-wrapped as Tensors on the graph."""
    __slots__ = ("xp", "ins", "out", "res", "p", "needs", "prim", "shapes")
    xp: Any
    ins: Any
    out: Any
    res: Any
    p: Any
    needs: Any
    prim: Any
    shapes: Any


def _rewrap(a, parent, xp):
    if parent is None:
        return _wrap(a, xp) if hasattr(a, "shape") else a
    if type(parent) is Accumulate:
        t = parent.tensor
        return t if t is not None else _wrap(a, xp)
    return _wrap(a, xp, True, parent)


def _const(v, xp):
    """A saved parameter as a constant Tensor (arrays of the node's backend) for create_graph."""
    if xp.is_array(v):
        return _wrap(v, xp)
    if type(v) is tuple and any(xp.is_array(e) for e in v):
        return tuple(_wrap(e, xp) if xp.is_array(e) else e for e in v)
    return v


def _tensor_ctx(n: Node) -> _TensorCtx:
    c = _TensorCtx()
    c.xp = TENSOR_NAMESPACE[0](n.xp)
    c.shapes = n.shapes
    c.ins = None if n.ins is None else tuple(_rewrap(a, p, n.xp) for a, p in zip(n.ins, n.parents))
    c.out = None if n.out is None else _wrap(n.out, n.xp, True, n)
    # arrays among the residuals and parameters (gather positions, masks) become constant Tensors,
    # so the tensor namespace's functions accept them
    c.res = _const(n.res, n.xp)
    xp = n.xp
    c.p = n.p if not any(xp.is_array(v) or type(v) is tuple for v in n.p.values()) else {
        k: _const(v, xp) for k, v in n.p.items()}
    c.needs = n.needs
    c.prim = n.prim
    return c


def _run_hooks(hooks, g, xp, as_tensor):
    for h in list(hooks):
        r = h(g if as_tensor else _wrap(g, xp))
        if r is not None:
            g = r if as_tensor else (r.array if isinstance(r, Tensor) else r)
    return g


def run_backward(roots, retain_graph=False, create_graph=False, capture=None, accumulate_into=None):
    """roots: list of (node, gradient). capture: dict node -> None to fill with gradients (for
    `xbp.grad`; then no ``.grad`` is touched). accumulate_into: restrict ``.grad`` updates to
    these leaves (`backward(inputs=...)`)."""
    # 1. dependency counts: how many consumers will send each node a gradient
    deps: dict = {}
    stack = [n for n, _ in roots]
    for n in stack:
        deps[n] = 0
    while stack:
        n = stack.pop()
        for p in n.parents:
            if p is not None:
                d = deps.get(p)
                if d is None:
                    deps[p] = 1
                    stack.append(p)
                else:
                    deps[p] = d + 1
    # 2. seed the roots
    grads: dict = {}
    aliased = set()       # nodes whose pending gradient may be shared with another consumer
    for n, g in roots:
        if n in grads:
            grads[n] = grads[n] + g
            aliased.discard(n)
        else:
            grads[n] = g
            aliased.add(n)
    ready = [n for n in grads if deps[n] == 0]
    state = GRAD_STATE
    prev_mode = state.enabled
    state.enabled = bool(create_graph)
    trace = TRACE[0]
    anomaly = ANOMALY[0]
    plain = not create_graph and accumulate_into is None
    post_acc = POST_ACCUMULATE if POST_ACCUMULATE else None    # one length check per backward
    _DEPTH[0] += 1
    done = False
    try:
        while ready:
            n = ready.pop()
            g = grads.pop(n, None)
            if aliased and n in aliased:
                aliased.discard(n)
                was_aliased = True
            else:
                was_aliased = False
            if capture is not None and n in capture and g is not None:
                capture[n] = g
            if type(n) is Accumulate:
                if g is not None and capture is None:
                    t = n.ref()
                    if (t is not None and t.grad is None and not was_aliased and plain
                            and not t._hooks and g.dtype == t.array.dtype):
                        # `_accumulate`'s first-gradient case, inline: one call fewer per leaf
                        t.grad = _wrap(g, t.xp)
                    else:
                        _accumulate(n, g, was_aliased, create_graph, accumulate_into)
                    if post_acc is not None and n in post_acc:
                        _post_accumulate(n, accumulate_into)
                continue
            if g is None:            # nothing flowed here (every consumer's VJP returned None)
                _release(n, deps, ready)
                continue
            if n.freed:
                raise RuntimeError(
                    f"backward through {n.prim.name} a second time: its saved tensors were freed after "
                    "the first backward. Pass retain_graph=True to the first backward() if you need to "
                    "walk the graph again.")
            if n.versions:
                for v, saved in zip(n.versions, n.vsaved):
                    if v[0] != saved:
                        _modified_in_place(n, v[0], saved)
            if n.hooks:
                g = _run_hooks(n.hooks, g, n.xp, create_graph)
            c = _tensor_ctx(n) if create_graph else n
            gxs = n.prim.vjp(c, g)
            if trace is not None:
                trace.record(n, g, gxs)
            if anomaly is not None:
                anomaly.check_backward(n, gxs)
            passthrough = n.prim.passthrough
            for p, gx, shape in zip(n.parents, gxs, n.shapes):
                if p is None:
                    continue
                if gx is not None:
                    if gx.shape != shape:
                        gx = unbroadcast(c.xp, gx, shape)
                    if p in grads:
                        grads[p] = grads[p] + gx
                        aliased.discard(p)
                    else:
                        grads[p] = gx
                        if passthrough:
                            aliased.add(p)
                d = deps[p] - 1
                deps[p] = d
                if d == 0:
                    ready.append(p)
            del g, gxs
            if not retain_graph and (n.ins is not None or n.out is not None or n.res is not None):
                n.ins = n.out = n.res = None
                n.freed = True
        done = True
    finally:
        state.enabled = prev_mode
        _DEPTH[0] -= 1
        if _DEPTH[0] == 0 and _CALLBACKS:
            _run_callbacks(done)


def queue_callback(fn):
    """Run ``fn()`` once when the backward pass now running finishes (PyTorch's
    ``Variable._execution_engine.queue_callback``); dropped if that backward raises."""
    if _DEPTH[0] == 0:
        raise RuntimeError("queue_callback() outside a backward pass: call it from a gradient hook")
    _CALLBACKS.append(fn)


def _run_callbacks(ok):
    cbs = list(_CALLBACKS)
    _CALLBACKS.clear()
    if ok:
        for fn in cbs:
            fn()


def register_post_accumulate_grad_hook(t: Tensor, fn):
    """Call ``fn(t)`` each time backward has added a gradient into leaf `t`'s ``.grad`` (PyTorch's
    ``Tensor.register_post_accumulate_grad_hook``). Returns a handle with ``.remove()``."""
    if t.grad_fn is not None or not t.requires_grad:
        raise RuntimeError("post-accumulate-grad hooks go on leaf tensors that require grad")
    hooks = POST_ACCUMULATE.setdefault(edge(t), [])
    hooks.append(fn)
    from ._tensor import _HookHandle
    return _HookHandle(hooks, fn)


def _post_accumulate(acc: Accumulate, only):
    t = acc.tensor
    if t is None or (only is not None and t not in only):
        return
    for h in list(POST_ACCUMULATE[acc]):
        h(t)


def _modified_in_place(n: Node, now: int, saved: int):
    raise RuntimeError(
        f"{n.prim.name}: a tensor saved for backward was modified by an in-place operation "
        f"(now at version {now}, saved at version {saved}). Use an out-of-place op "
        "(x = x + y instead of x += y), or .clone() before modifying.")


def _release(n, deps, ready):
    for p in n.parents:
        if p is not None:
            d = deps[p] - 1
            deps[p] = d
            if d == 0:
                ready.append(p)


def _accumulate(acc: Accumulate, g, aliased, create_graph, only):
    t = acc.tensor
    if t is None or (only is not None and t not in only):
        return
    if t._hooks:
        g = _run_hooks(t._hooks, g, t.xp, create_graph)
    if create_graph:
        t.grad = g if t.grad is None else t.grad + g
        return
    xp = t.xp
    if g.dtype != t.array.dtype:
        g = xp.astype(g, t.array.dtype)
        aliased = False
    if t.grad is None:
        # a gradient passed through unchanged may be shared with another leaf: own a copy
        t.grad = _wrap(xp.asarray(g, copy=True) if aliased else g, xp)
    else:
        t.grad = _wrap(t.grad.array + g, xp)


def _root_grad(t: Tensor, g, create_graph):
    if g is None:
        if t.numel() != 1:
            raise RuntimeError(f"backward() without a gradient needs a 1-element output, got shape {t.shape}; "
                               "pass gradient= of the output's shape (e.g. out.backward(xbp.ones_like(out)))")
        g = t.xp.ones(t.array.shape, dtype=t.array.dtype)
        return _wrap(g, t.xp) if create_graph else g
    if isinstance(g, Tensor):
        if g.xp is not t.xp:
            from ._backend import DeviceError
            raise DeviceError(f"backward: gradient is on {g.device} but the output is on {t.device}")
        if g.shape != t.shape:
            raise RuntimeError(f"backward: gradient shape {g.shape} does not match output shape {t.shape}")
        return g if create_graph else g.array
    g = t.xp.asarray(g, dtype=t.array.dtype)
    if tuple(g.shape) != t.shape:
        raise RuntimeError(f"backward: gradient shape {tuple(g.shape)} does not match output shape {t.shape}")
    return _wrap(g, t.xp) if create_graph else g


def backward(tensors, grad_tensors, retain_graph=False, create_graph=False, inputs=None):
    """``xbp.autograd.backward(tensors, grad_tensors)``: runs backward from several roots at once,
    adding each root's gradient (`grad_tensors`, one per tensor; None means 1 for a one-element
    root) into the ``.grad`` of the leaves. `inputs`: accumulate only into these leaves. The graph is
    freed unless `retain_graph` (or `create_graph`, which also records the backward itself for
    higher derivatives). Raises RuntimeError for a root that does not require grad."""
    roots = []
    for t, g in zip(tensors, grad_tensors):
        if not t.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad and has no grad_fn: "
                               "no input of the computation had requires_grad=True (or it ran under no_grad)")
        roots.append((edge(t), _root_grad(t, g, create_graph)))
    only = None
    if inputs is not None:
        only = set(inputs if isinstance(inputs, (list, tuple)) else [inputs])
    run_backward(roots, retain_graph=retain_graph or create_graph, create_graph=create_graph,
                 accumulate_into=only)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, returned (not stored in ``.grad``)."""
    single_out = isinstance(outputs, Tensor)
    outputs = [outputs] if single_out else list(outputs)
    single_in = isinstance(inputs, Tensor)
    inputs = [inputs] if single_in else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    roots = []
    for t, g in zip(outputs, grad_outputs):
        if not t.requires_grad:
            raise RuntimeError("xbp.grad: an output does not require grad (no input needed a gradient)")
        roots.append((edge(t), _root_grad(t, g, create_graph)))
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"xbp.grad: input {i} (shape {x.shape}) does not require grad")
    capture = {edge(x): None for x in inputs}
    if retain_graph is None:
        retain_graph = create_graph
    run_backward(roots, retain_graph=retain_graph, create_graph=create_graph, capture=capture)
    result = []
    for i, x in enumerate(inputs):
        g = capture[edge(x)]
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"xbp.grad: input {i} (shape {x.shape}) was not used to compute the outputs; "
                                   "pass allow_unused=True to get None for it")
            result.append(None)
        else:
            result.append(g if create_graph else _wrap(g, x.xp))
    return tuple(result)


def retain_grad_hook(t: Tensor):
    ref = weakref.ref(t)

    def hook(g):
        tt = ref()
        if tt is not None:
            gd = g.array if isinstance(g, Tensor) else g
            tt.grad = _wrap(gd, tt.xp) if tt.grad is None else _wrap(tt.grad.array + gd, tt.xp)
    return hook
