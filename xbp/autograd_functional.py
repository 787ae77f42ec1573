"""``xbp.autograd.functional``: PyTorch's ``torch.autograd.functional`` (jacobian, hessian, vjp,
jvp, hvp, vhp) on the one reverse-mode engine.

Conventions, as in PyTorch: `inputs` is a Tensor or a tuple of Tensors and results follow it (a
Tensor for a Tensor, a tuple for a tuple); `func` returns a Tensor or a tuple of Tensors.
create_graph=False (default): results are detached and inputs are treated as fresh leaves;
create_graph=True: inputs that require grad stay on their graph and results are differentiable.
strict=True: an input that some output (vjp, jvp: all outputs) does not depend on is an error
instead of a zero block. vectorize is accepted and ignored (rows are computed one by one).

Costs: vjp one backward; jvp two (double vjp: J t = d<J^T u, t>/du, see xbp.func); jacobian one
backward per output element (strategy="reverse-mode") or one plus one per input element
(strategy="forward-mode"); vhp two backwards; hvp three (forward mode over the gradient, exact
also when the Hessian is not numerically symmetric; use vhp when it is); hessian one backward
plus one per input element.
"""
from __future__ import annotations

from ._engine import grad as _engine_grad
from ._tensor import Tensor
from .func import _basis, _enable, _fresh, _through, _zeros_like

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _as_tuple(x, arg, what):
    if isinstance(x, Tensor):
        return True, (x,)
    if isinstance(x, (tuple, list)) and all(isinstance(t, Tensor) for t in x):
        return False, tuple(x)
    raise TypeError(f"{what}: {arg} must be a Tensor or a tuple of Tensors, got {type(x).__name__}")


def _prepare(inputs, create, what):
    single, xs = _as_tuple(inputs, "inputs", what)
    vs = []
    with _enable():
        for i, x in enumerate(xs):
            if x.dtype.kind not in "fc":
                raise TypeError(f"{what}: input {i} is {x.dtype}; only floating-point inputs can be differentiated")
            vs.append(_through(x) if create and x.requires_grad else _fresh(x))
    return single, tuple(vs)


def _run(func, vs, what):
    with _enable():
        out = func(*vs)
    single, outs = _as_tuple(out, "the function's output", what)
    return single, outs


def _raw_grads(outs, vs, cts, create):
    """Gradients (None where unused) of <outs, cts> w.r.t. vs."""
    live = [(o, c) for o, c in zip(outs, cts) if o.requires_grad]
    if not live:
        return [None] * len(vs)
    with _enable():
        return list(_engine_grad([o for o, _ in live], list(vs), [c for _, c in live], retain_graph=True,
                                 create_graph=create, allow_unused=True))


def _fill(gs, vs, strict, what, msg):
    out = []
    for i, (g, v) in enumerate(zip(gs, vs)):
        if g is None:
            if strict:
                raise RuntimeError(f"{what}(strict=True): {msg.format(i=i)}")
            g = _zeros_like(v)
        out.append(g)
    return out


def _finish(tensors, create):
    return tuple(t if create else t.detach() for t in tensors)


def _shape_like(v, name, like, what):
    single, vv = _as_tuple(v, name, what)
    if len(vv) != len(like):
        raise ValueError(f"{what}: {name} has {len(vv)} tensors, expected {len(like)}")
    for i, (a, b) in enumerate(zip(vv, like)):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"{what}: {name}[{i}] has shape {tuple(a.shape)}, expected {tuple(b.shape)}")
    return vv


def _ones_for(ts, name, what):
    for t in ts:
        if t.numel() != 1:
            raise RuntimeError(f"{what}: {name} may be None only when it would have one element; give it "
                               f"explicitly (shape {t.shape})")
    return tuple(_zeros_like(t) + 1 for t in ts)


def _pack(single, ts):
    return ts[0] if single else tuple(ts)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product, shaped like `inputs`. v: like the
    output (may be None for a one-element output)."""
    single_in, vs = _prepare(inputs, create_graph, "vjp")
    single_out, outs = _run(func, vs, "vjp")
    cts = _ones_for(outs, "v", "vjp") if v is None else _shape_like(v, "v", outs, "vjp")
    gs = _fill(_raw_grads(outs, vs, cts, create_graph), vs, strict, "vjp",
               "the output is independent of input {i}")
    return _pack(single_out, _finish(outs, create_graph)), _pack(single_in, _finish(gs, create_graph))


def _double_vjp(outs, vs, ts, create, strict, what):
    """J t per output, by double vjp (see the module doc)."""
    us = [_zeros_like(o).requires_grad_(True) for o in outs]
    gs = _raw_grads(outs, vs, us, True)
    if strict and any(g is None for g in gs):
        i = next(k for k, g in enumerate(gs) if g is None)
        raise RuntimeError(f"{what}(strict=True): the output is independent of input {i}")
    pairs = [(g, t) for g, t in zip(gs, ts) if g is not None and g.requires_grad]
    if not pairs:
        return [_zeros_like(o) for o in outs]
    js = _raw_grads([g for g, _ in pairs], us, [t for _, t in pairs], create)
    return [_zeros_like(o) if j is None else j for j, o in zip(js, outs)]


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product, shaped like the output. v: like `inputs`
    (may be None for one one-element input). Two backward passes (double vjp)."""
    single_in, vs = _prepare(inputs, create_graph, "jvp")
    single_out, outs = _run(func, vs, "jvp")
    ts = _ones_for(vs, "v", "jvp") if v is None else _shape_like(v, "v", vs, "jvp")
    js = _double_vjp(outs, vs, ts, create_graph, strict, "jvp")
    return _pack(single_out, _finish(outs, create_graph)), _pack(single_out, _finish(js, create_graph))


def _rows(outs, vs, create, strict, what):
    """blocks[i][j] = d outs[i] / d vs[j], shape outs[i].shape + vs[j].shape, reverse mode."""
    from .ops import stack
    blocks = []
    for i, o in enumerate(outs):
        rows = [[] for _ in vs]
        used = [False] * len(vs)
        for k in range(o.numel()):
            cts = [_basis(o, k) if m == i else _zeros_like(oo) for m, oo in enumerate(outs)]
            for j, g in enumerate(_raw_grads(outs, vs, cts, create)):
                used[j] = used[j] or g is not None
                rows[j].append(_zeros_like(vs[j]) if g is None else g)
        if strict:
            for j, u in enumerate(used):
                if not u:
                    raise RuntimeError(f"{what}(strict=True): output {i} is independent of input {j}")
        blocks.append([(stack(r, 0) if r else _zeros_like(vs[j]).reshape((0,) + tuple(vs[j].shape)))
                       .reshape(tuple(o.shape) + tuple(vs[j].shape)) for j, r in enumerate(rows)])
    return blocks


def _columns(outs, vs, create, strict, what):
    """The same blocks, forward mode through double vjp: one column per input element."""
    from .ops import stack
    us = [_zeros_like(o).requires_grad_(True) for o in outs]
    gs = _raw_grads(outs, vs, us, True)
    cols = [[[] for _ in vs] for _ in outs]
    for j, (v, g) in enumerate(zip(vs, gs)):
        if g is None and strict:
            raise RuntimeError(f"{what}(strict=True): the outputs are independent of input {j}")
        for k in range(v.numel()):
            js = (_raw_grads([g], us, [_basis(v, k)], create) if g is not None and g.requires_grad
                  else [None] * len(outs))
            for i, (c, o) in enumerate(zip(js, outs)):
                cols[i][j].append(_zeros_like(o) if c is None else c)
    return [[(stack(cols[i][j], -1) if cols[i][j] else _zeros_like(o).reshape(tuple(o.shape) + (0,)))
             .reshape(tuple(o.shape) + tuple(v.shape)) for j, v in enumerate(vs)] for i, o in enumerate(outs)]


def _layout(blocks, single_out, single_in, create):
    blocks = [_finish(row, create) for row in blocks]
    per_out = [row[0] if single_in else tuple(row) for row in blocks]
    return per_out[0] if single_out else tuple(per_out)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of func at `inputs`: for one output and one input a Tensor of shape
    ``output.shape + input.shape``; a tuple per input and/or per output otherwise (outer level:
    outputs). strategy: "reverse-mode" (one backward per output element) or "forward-mode" (one
    backward per input element, plus one)."""
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"jacobian: strategy must be 'reverse-mode' or 'forward-mode', got {strategy!r}")
    single_in, vs = _prepare(inputs, create_graph, "jacobian")
    single_out, outs = _run(func, vs, "jacobian")
    build = _rows if strategy == "reverse-mode" else _columns
    return _layout(build(outs, vs, create_graph, strict, "jacobian"), single_out, single_in, create_graph)


def _scalar(func, vs, what):
    single_out, outs = _run(func, vs, what)
    if not single_out or outs[0].numel() != 1:
        raise RuntimeError(f"{what}: the function must return a single one-element Tensor, got "
                           f"{[tuple(o.shape) for o in outs]}")
    return outs[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar func at `inputs`: for one input a Tensor of shape
    ``input.shape + input.shape``; for a tuple of inputs a tuple of tuples, block [i][j] of shape
    ``inputs[i].shape + inputs[j].shape``."""
    single_in, vs = _prepare(inputs, create_graph, "hessian")
    out = _scalar(func, vs, "hessian")
    gs = _fill(_raw_grads([out], vs, [None], True), vs, strict, "hessian", "the output is independent of input {i}")
    blocks = _rows(gs, vs, create_graph, strict, "hessian")
    if single_in:
        return _finish(blocks[0], create_graph)[0]
    return tuple(_finish(row, create_graph) for row in blocks)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a scalar func, shaped like `inputs`. Two backward passes."""
    single_in, vs = _prepare(inputs, create_graph, "vhp")
    out = _scalar(func, vs, "vhp")
    ts = _ones_for(vs, "v", "vhp") if v is None else _shape_like(v, "v", vs, "vhp")
    gs = _fill(_raw_grads([out], vs, [None], True), vs, strict, "vhp", "the output is independent of input {i}")
    hs = _fill(_raw_grads(gs, vs, ts, create_graph), vs, strict, "vhp",
               "the gradient is independent of input {i} (zero Hessian block)")
    return _finish((out,), create_graph)[0], _pack(single_in, _finish(hs, create_graph))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar func, shaped like `inputs`: forward mode over the
    gradient (three backward passes). For a twice continuously differentiable func it equals
    `vhp`, which is cheaper."""
    single_in, vs = _prepare(inputs, create_graph, "hvp")
    out = _scalar(func, vs, "hvp")
    ts = _ones_for(vs, "v", "hvp") if v is None else _shape_like(v, "v", vs, "hvp")
    gs = _fill(_raw_grads([out], vs, [None], True), vs, strict, "hvp", "the output is independent of input {i}")
    hs = _double_vjp(gs, vs, ts, create_graph, strict, "hvp")
    return _finish((out,), create_graph)[0], _pack(single_in, _finish(hs, create_graph))

