"""Functional transforms with PyTorch's ``torch.func`` names: vjp, jvp, grad, grad_and_value,
jacrev, jacfwd, hessian, vmap, functional_call.

How they are built (all on the one reverse-mode engine, no second tape):
- Each transform makes its own differentiation variables: an input that does not require grad
  becomes a fresh leaf (``x.detach().requires_grad_()``, same memory); one that already requires
  grad (an outer transform's variable, a parameter) is passed through an identity node, so the
  inner gradient is taken at that node and outer derivatives still flow through it.
- After running the function, one walk over its graph decides whether the result must stay
  differentiable: if the graph reaches any leaf other than the transform's own (an outer
  transform's variable, a parameter captured by a closure) and grad mode was on at the call, the
  gradients are taken with ``create_graph=True``, so transforms nest (``jacfwd(jacrev(f))``,
  ``grad(grad(f))``, ``vmap(grad(f))``) and ordinary backward through their results works; else
  the results are detached. The walk costs about as much as building the graph's dependency
  counts, once per call.
- Forward mode is the double-vjp trick: with a dummy cotangent u (zeros, requiring grad),
  g(u) = J^T u is linear in u, and J t = d<g(u), t>/du. A `jvp` therefore costs one forward and
  TWO backward passes (the second through the graph of the first), and needs every VJP on the
  path to be differentiable in its incoming gradient (true for xbp's ops and for custom Functions
  whose backward is written with xbp ops).
- vmap is a loop: see its docstring for the cost.

Arguments and results may be pytrees of tuples, lists and dicts of Tensors, as in torch.func.
"""
from __future__ import annotations

from ._engine import grad as _engine_grad
from ._primitive import Accumulate, GRAD_STATE, Primitive, apply
from ._tensor import Tensor

__all__ = ["vjp", "jvp", "linearize", "grad", "grad_and_value", "jacrev", "jacfwd", "hessian", "vmap",
           "functional_call", "stack_module_state"]


# ----------------------------------------------------------------------------------------------
# pytrees: tuples, lists and dicts; anything else is a leaf
# ----------------------------------------------------------------------------------------------
def _flatten(tree):
    """(leaves, spec); spec rebuilds the structure with `_unflatten`."""
    leaves = []

    def go(t):
        if isinstance(t, (tuple, list)):
            return (type(t), [go(e) for e in t])
        if isinstance(t, dict):
            return (dict, [(k, go(v)) for k, v in t.items()])
        leaves.append(t)
        return None
    spec = go(tree)
    return leaves, spec


def _unflatten(spec, leaves):
    it = iter(leaves)

    def go(s):
        if s is None:
            return next(it)
        kind, items = s
        if kind is dict:
            return {k: go(v) for k, v in items}
        seq = [go(e) for e in items]
        return tuple(seq) if kind is tuple else seq
    return go(spec)


def _tree_map(fn, tree):
    leaves, spec = _flatten(tree)
    return _unflatten(spec, [fn(x) for x in leaves])


# ----------------------------------------------------------------------------------------------
# differentiation variables and the outer-dependency walk
# ----------------------------------------------------------------------------------------------
_identity_p = Primitive("func_input", lambda xp, x: x, lambda c, g: (g,), passthrough=True)


def _variable(x, what):
    """This transform's differentiation variable for the input tensor `x` (see module doc)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected Tensors as the inputs to differentiate, got {type(x).__name__}")
    if x.dtype.kind not in "fc":
        raise TypeError(f"{what}: cannot differentiate with respect to a {x.dtype} tensor (shape {x.shape}); "
                        "only floating-point inputs have gradients: convert with .to(xbp.float64)")
    return _fresh(x) if not x.requires_grad else _through(x)


def _fresh(x):
    """A new leaf on x's memory (and version counter)."""
    return x.detach().requires_grad_(True)


def _through(x):
    """x through an identity node: the gradient is taken there, x keeps its own graph."""
    v = apply(_identity_p, (x,))
    v._version = x._version
    return v


def _reaches_outside(outputs, own) -> bool:
    """Whether the graph of `outputs` reaches a leaf (or identity node input) other than the
    variables in `own`: then the transform's results must stay on the graph."""
    mine = set()
    for v in own:
        mine.add(v.grad_fn if v.grad_fn is not None else v._accum)
    stack = [o.grad_fn if o.grad_fn is not None else o._accum for o in outputs
             if isinstance(o, Tensor) and o.requires_grad]
    seen = set()
    while stack:
        n = stack.pop()
        if n is None or n in seen:
            continue
        seen.add(n)
        if n in mine:
            if type(n) is not Accumulate:          # an identity node: its input belongs outside
                return True
            continue
        if type(n) is Accumulate:
            return True
        stack.extend(p for p in n.parents if p is not None)
    return False


def _zeros_like(x):
    from ._creation import zeros_like
    return zeros_like(x.detach())


def _grads(outputs, inputs, cotangents, create):
    """d<outputs, cotangents>/d inputs, zeros for inputs the outputs do not depend on."""
    live = [(o, c) for o, c in zip(outputs, cotangents) if isinstance(o, Tensor) and o.requires_grad]
    if not live:
        return [_zeros_like(x) for x in inputs]
    prev = GRAD_STATE.enabled
    GRAD_STATE.enabled = True
    try:
        gs = _engine_grad([o for o, _ in live], list(inputs), [c for _, c in live], retain_graph=True,
                          create_graph=create, allow_unused=True)
    finally:
        GRAD_STATE.enabled = prev
    return [_zeros_like(x) if g is None else g for g, x in zip(gs, inputs)]


def _detach_tree(tree):
    return _tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, tree)


class _enable:
    """Grad mode on while the function runs (transforms work under no_grad too)."""

    def __enter__(self):
        self.prev = GRAD_STATE.enabled
        GRAD_STATE.enabled = True

    def __exit__(self, *exc):
        GRAD_STATE.enabled = self.prev
        return False


def _argnums(argnums, n, what):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError(f"{what}: argnums must name at least one argument")
    out = []
    for a in nums:
        if not isinstance(a, int) or not -n <= a < n:
            raise ValueError(f"{what}: argnums {argnums!r} out of range for a function called with {n} "
                             "positional arguments")
        out.append(a % n)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: argnums {argnums!r} names an argument twice")
    return out


def _split_aux(out, has_aux, what):
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise RuntimeError(f"{what}(..., has_aux=True): the function must return a pair (output, aux), "
                           f"got {type(out).__name__}")
    return out[0], out[1]


def _trace(func, args, argnums, has_aux, what):
    """Run func with variables for the args in argnums. Returns (out, aux, var_trees, var_leaves,
    outer): var_trees per argnum, outer whether results must stay differentiable."""
    outer = GRAD_STATE.enabled
    nums = _argnums(argnums, len(args), what)
    args = list(args)
    var_trees, var_leaves = [], []
    with _enable():
        for i in nums:
            tree = _tree_map(lambda x: _variable(x, what), args[i])
            args[i] = tree
            var_trees.append(tree)
            var_leaves.append(_flatten(tree)[0])
        out = func(*args)
    out, aux = _split_aux(out, has_aux, what)
    flat = [x for leaves in var_leaves for x in leaves]
    keep = outer and _reaches_outside(_flatten(out)[0], flat)
    return out, aux, nums, var_trees, var_leaves, keep


# ----------------------------------------------------------------------------------------------
# reverse mode
# ----------------------------------------------------------------------------------------------
def vjp(func, *primals, has_aux=False):
    """``output, vjp_fn = vjp(func, *primals)``: run func and return a function that maps a
    cotangent (the output's structure and shapes) to one vector-Jacobian product per primal, as
    a tuple. vjp_fn may be called many times (the graph is kept while it lives). With has_aux,
    func returns (output, aux) and vjp returns (output, vjp_fn, aux)."""
    out, aux, _, var_trees, var_leaves, keep = _trace(func, primals, tuple(range(len(primals))), has_aux, "vjp")
    flat_out, out_spec = _flatten(out)

    def vjp_fn(cotangents):
        flat_ct, ct_spec = _flatten(cotangents)
        if len(flat_ct) != len(flat_out):
            raise ValueError(f"vjp_fn: expected cotangents with the output's structure ({len(flat_out)} tensors), "
                             f"got {len(flat_ct)}")
        for o, c in zip(flat_out, flat_ct):
            if isinstance(o, Tensor) and tuple(c.shape) != tuple(o.shape):
                raise ValueError(f"vjp_fn: cotangent of shape {tuple(c.shape)} for an output of shape {o.shape}")
        flat = [x for leaves in var_leaves for x in leaves]
        gs = _grads(flat_out, flat, flat_ct, keep or _any_requires_grad(flat_ct))
        result, k = [], 0
        for tree, leaves in zip(var_trees, var_leaves):
            _, spec = _flatten(tree)
            result.append(_unflatten(spec, gs[k:k + len(leaves)]))
            k += len(leaves)
        return tuple(result)
    ret = out if keep else _detach_tree(out)
    return (ret, vjp_fn, aux if keep else _detach_tree(aux)) if has_aux else (ret, vjp_fn)


def _any_requires_grad(ts):
    return GRAD_STATE.enabled and any(isinstance(t, Tensor) and t.requires_grad for t in ts)


def grad_and_value(func, argnums=0, has_aux=False):
    """A function returning (gradient, value) of ``func`` (which must return a one-element
    tensor) with respect to the argument(s) in `argnums` (an int: one gradient; a tuple: a tuple
    of gradients; a pytree argument gets a gradient of the same structure). With has_aux, func
    returns (value, aux) and the result is (gradient, (value, aux))."""

    def wrapper(*args, **kwargs):
        f = func if not kwargs else (lambda *a: func(*a, **kwargs))
        out, aux, nums, var_trees, var_leaves, keep = _trace(f, args, argnums, has_aux, "grad")
        if not isinstance(out, Tensor) or out.numel() != 1:
            shape = out.shape if isinstance(out, Tensor) else type(out).__name__
            raise RuntimeError(f"grad: the function must return a one-element tensor (a scalar loss), got {shape}; "
                               "use vjp or jacrev for other outputs")
        flat = [x for leaves in var_leaves for x in leaves]
        gs = _grads([out], flat, [None], keep)
        result, k = [], 0
        for tree, leaves in zip(var_trees, var_leaves):
            result.append(_unflatten(_flatten(tree)[1], gs[k:k + len(leaves)]))
            k += len(leaves)
        g = result[0] if isinstance(argnums, int) else tuple(result)
        value = out if keep else out.detach()
        if has_aux:
            return g, (value, aux if keep else _detach_tree(aux))
        return g, value
    return _named(wrapper, func, "grad_and_value")


def grad(func, argnums=0, has_aux=False):
    """The gradient of ``func`` (returning a one-element tensor) as a function of the same
    arguments; see `grad_and_value` for argnums. With has_aux the result is (gradient, aux)."""
    gv = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, v = gv(*args, **kwargs)
        return (g, v[1]) if has_aux else g
    return _named(wrapper, func, "grad")


def _named(wrapper, func, what):
    wrapper.__name__ = f"{what}({getattr(func, '__name__', 'func')})"
    wrapper.__doc__ = getattr(func, "__doc__", None)
    return wrapper


def _basis(t, j):
    """The j-th one-hot tensor of t's shape (a constant, on t's device)."""
    from ._creation import zeros
    e = zeros(t.numel(), dtype=t.dtype, device=t.device)
    e[j] = 1.0
    return e.reshape(t.shape)


def _stack_rows(rows, lead_shape, tail_shape, t_like):
    from .ops import stack
    if not rows:
        from ._creation import zeros
        return zeros(tuple(lead_shape) + tuple(tail_shape), dtype=t_like.dtype, device=t_like.device)
    return stack(rows, 0).reshape(tuple(lead_shape) + tuple(tail_shape))


def _jac_structure(out, nums, var_trees, argnums, block):
    """Arrange blocks[output leaf][input leaf] as torch.func does: the output's structure, inside
    it the argnums structure (one entry for an int), inside that the argument's structure."""
    flat_out, out_spec = _flatten(out)
    per_out = []
    for oi in range(len(flat_out)):
        per_arg, k = [], 0
        for tree in var_trees:
            leaves, spec = _flatten(tree)
            per_arg.append(_unflatten(spec, [block(oi, k + j) for j in range(len(leaves))]))
            k += len(leaves)
        per_out.append(per_arg[0] if isinstance(argnums, int) else tuple(per_arg))
    return _unflatten(out_spec, per_out)


def jacrev(func, argnums=0, has_aux=False, chunk_size=None):
    """The Jacobian of ``func`` by reverse mode: one backward pass per output ELEMENT (cheap for
    few outputs). Block for output o and input x has shape ``o.shape + x.shape``. argnums and
    pytrees as in `grad`; with has_aux the result is (jacobian, aux). chunk_size is accepted and
    ignored (rows are always computed one by one)."""

    def wrapper(*args, **kwargs):
        f = func if not kwargs else (lambda *a: func(*a, **kwargs))
        out, aux, nums, var_trees, var_leaves, keep = _trace(f, args, argnums, has_aux, "jacrev")
        flat_out = _flatten(out)[0]
        flat = [x for leaves in var_leaves for x in leaves]
        rows = [[[] for _ in flat] for _ in flat_out]          # rows[o][x]: one gradient per output element
        for oi, o in enumerate(flat_out):
            if not isinstance(o, Tensor):
                raise TypeError(f"jacrev: the function returned a {type(o).__name__}; outputs must be Tensors")
            for j in range(o.numel()):
                cts = [_basis(o, j) if k == oi else _zeros_like(oo) for k, oo in enumerate(flat_out)]
                for xi, g in enumerate(_grads(flat_out, flat, cts, keep)):
                    rows[oi][xi].append(g)

        def block(oi, xi):
            return _stack_rows(rows[oi][xi], flat_out[oi].shape, flat[xi].shape, flat[xi])
        jac = _jac_structure(out, nums, var_trees, argnums, block)
        return (jac, aux if keep else _detach_tree(aux)) if has_aux else jac
    return _named(wrapper, func, "jacrev")


# ----------------------------------------------------------------------------------------------
# forward mode through double vjp
# ----------------------------------------------------------------------------------------------
def _transposed(flat_out, flat, keep):
    """Dummy cotangents u (fresh leaves, zeros) and g = J^T u per input, on a graph (linear in u)."""
    us = [_zeros_like(o).requires_grad_(True) if isinstance(o, Tensor) and o.dtype.kind in "fc" else None
          for o in flat_out]
    live_o = [o for o, u in zip(flat_out, us) if u is not None]
    live_u = [u for u in us if u is not None]
    gs = _grads(live_o, flat, live_u, True)
    return live_o, live_u, gs


def _forward_products(live_o, live_u, gs, tangents, keep):
    """J t per output: d<g(u), t>/du (the second backward pass)."""
    pairs = [(g, t) for g, t in zip(gs, tangents) if g.requires_grad]
    if not pairs:
        return [_zeros_like(o) for o in live_o]
    return _grads([g for g, _ in pairs], live_u, [t for _, t in pairs], keep)


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """``output, jvp_out = jvp(func, primals, tangents)``: the Jacobian-vector product J t of
    func at `primals` (a tuple of arguments) along `tangents` (same structure and shapes).
    Computed by double vjp: one forward and two backward passes. With has_aux, func returns
    (output, aux) and jvp returns (output, jvp_out, aux)."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (e.g. jvp(f, (x,), (t,)))")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    out, aux, _, var_trees, var_leaves, keep = _trace(func, tuple(primals), tuple(range(len(primals))),
                                                      has_aux, "jvp")
    flat = [x for leaves in var_leaves for x in leaves]
    flat_t = _flatten(tuple(tangents))[0]
    if len(flat_t) != len(flat):
        raise ValueError(f"jvp: tangents must have the primals' structure ({len(flat)} tensors), got {len(flat_t)}")
    for x, t in zip(flat, flat_t):
        if not isinstance(t, Tensor) or tuple(t.shape) != tuple(x.shape):
            raise ValueError(f"jvp: a tangent must be a Tensor of its primal's shape {x.shape}, got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    keep = keep or _any_requires_grad(flat_t)
    flat_out, out_spec = _flatten(out)
    live_o, live_u, gs = _transposed(flat_out, flat, keep)
    jv = iter(_forward_products(live_o, live_u, gs, flat_t, keep))
    tangents_out = _unflatten(out_spec, [next(jv) if isinstance(o, Tensor) and o.dtype.kind in "fc"
                                         else _zeros_like(o) for o in flat_out])
    ret = out if keep else _detach_tree(out)
    if has_aux:
        return ret, tangents_out, aux if keep else _detach_tree(aux)
    return ret, tangents_out


def linearize(func, *primals):
    """``output, jvp_fn = linearize(func, *primals)``: ``jvp_fn(*tangents)`` is J t at `primals`.
    The forward and the first backward (J^T u) run once, here; each jvp_fn call is then ONE
    backward pass through that backward's graph (cheaper than calling `jvp` repeatedly)."""
    out, _, _, var_trees, var_leaves, keep = _trace(func, primals, tuple(range(len(primals))), False, "linearize")
    flat = [x for leaves in var_leaves for x in leaves]
    flat_out, out_spec = _flatten(out)
    for o in flat_out:
        if not isinstance(o, Tensor):
            raise TypeError(f"linearize: the function returned a {type(o).__name__}; outputs must be Tensors")
    live_o, live_u, gs = _transposed(flat_out, flat, keep)

    def jvp_fn(*tangents):
        flat_t = _flatten(tuple(tangents))[0]
        if len(flat_t) != len(flat):
            raise ValueError(f"linearize: jvp_fn takes tangents with the primals' structure ({len(flat)} tensors), "
                             f"got {len(flat_t)}")
        for x, t in zip(flat, flat_t):
            if not isinstance(t, Tensor) or tuple(t.shape) != tuple(x.shape):
                raise ValueError(f"linearize: a tangent must be a Tensor of its primal's shape {x.shape}, got "
                                 f"{getattr(t, 'shape', type(t).__name__)}")
        jv = iter(_forward_products(live_o, live_u, gs, flat_t, keep or _any_requires_grad(flat_t)))
        return _unflatten(out_spec, [next(jv) if o.dtype.kind in "fc" else _zeros_like(o) for o in flat_out])
    return (out if keep else _detach_tree(out)), jvp_fn


def jacfwd(func, argnums=0, has_aux=False, randomness="error"):
    """The Jacobian of ``func`` column by column (forward mode through double vjp): one backward
    pass through func's graph, then one backward pass through that pass's graph per INPUT
    element (cheap for few inputs). Same result layout as `jacrev`."""

    def wrapper(*args, **kwargs):
        f = func if not kwargs else (lambda *a: func(*a, **kwargs))
        out, aux, nums, var_trees, var_leaves, keep = _trace(f, args, argnums, has_aux, "jacfwd")
        flat_out = _flatten(out)[0]
        for o in flat_out:
            if not isinstance(o, Tensor):
                raise TypeError(f"jacfwd: the function returned a {type(o).__name__}; outputs must be Tensors")
        flat = [x for leaves in var_leaves for x in leaves]
        live_o, live_u, gs = _transposed(flat_out, flat, True)
        cols = [[[] for _ in flat] for _ in flat_out]          # cols[o][x]: one J column per input element
        live_index = [i for i, o in enumerate(flat_out) if o.dtype.kind in "fc"]
        for xi, (x, g) in enumerate(zip(flat, gs)):
            for j in range(x.numel()):
                if g.requires_grad:
                    js = _grads([g], live_u, [_basis(x, j)], keep)
                else:
                    js = [_zeros_like(o) for o in live_o]
                for oi, c in zip(live_index, js):
                    cols[oi][xi].append(c)

        def block(oi, xi):
            o, x = flat_out[oi], flat[xi]
            if not cols[oi][xi]:
                return _stack_rows([], o.shape, x.shape, x)
            from .ops import stack
            return stack(cols[oi][xi], -1).reshape(tuple(o.shape) + tuple(x.shape))
        jac = _jac_structure(out, nums, var_trees, argnums, block)
        return (jac, aux if keep else _detach_tree(aux)) if has_aux else jac
    return _named(wrapper, func, "jacfwd")


def hessian(func, argnums=0):
    """The Hessian of a scalar ``func``: ``jacfwd(jacrev(func, argnums), argnums)``; block shape
    ``x.shape + x.shape`` for one input. Cost: one forward, then per input element a backward
    through the graph of the jacrev's backward (three levels of graph for small inputs)."""
    return _named(jacfwd(jacrev(func, argnums), argnums), func, "hessian")


# ----------------------------------------------------------------------------------------------
# vmap
# ----------------------------------------------------------------------------------------------
def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """Map ``func`` over a batch dimension of its inputs.

    in_dims: per positional argument an int (the batch dim of every tensor in it), None (not
    batched), or a pytree of those matching the argument; an int or None alone applies to all
    arguments. out_dims: where the batch dim goes in each output (int, or a tuple per output).
    Keyword arguments are not batched.

    Cost, stated: this is a Python loop, not a batching rule. It slices each batched input with one
    ``unbind`` (B views), calls func B times on single samples and stacks each output once, so it
    costs B times func's per-sample cost (B small ops instead of one batched op) plus O(B) for the
    slicing and stacking. It is differentiable (the slices and the stack are graph ops), composes
    with the other transforms (``vmap(grad(f))`` gives per-sample gradients), and gives exactly
    func's per-sample results. randomness: each call draws its own random numbers, which is
    "different"; "error" (the default) is accepted but random calls are not detected; "same" is
    refused. chunk_size is accepted and ignored.
    """

    if randomness not in ("error", "different", "same"):
        raise ValueError(f"vmap: randomness must be 'error', 'different' or 'same', got {randomness!r}")
    if randomness == "same":
        raise NotImplementedError("vmap(randomness='same'): this vmap calls the function once per sample, so "
                                  "each call draws its own random numbers ('different'); draw them outside "
                                  "the function and pass them in with in_dims=None instead")

    def wrapper(*args, **kwargs):
        from .ops import stack
        from .ops._util import dim_index
        dims = in_dims if isinstance(in_dims, (tuple, list)) else (in_dims,) * len(args)
        if len(dims) != len(args):
            raise ValueError(f"vmap: in_dims has {len(dims)} entries but the function got {len(args)} positional "
                             "arguments; give one in_dim (int or None) per argument")
        batched = []                     # per arg: (leaves, spec, dims per leaf)
        size = None
        for a, d in zip(args, dims):
            leaves, spec = _flatten(a)
            if d is None or isinstance(d, int):
                ds = [d] * len(leaves)
            else:
                ds, dspec = _flatten(d)
                if dspec != spec:
                    raise ValueError(f"vmap: an in_dims entry {d!r} does not match its argument's structure")
            for x, di in zip(leaves, ds):
                if di is None:
                    continue
                if not isinstance(x, Tensor):
                    raise ValueError(f"vmap: in_dim {di} given for a {type(x).__name__}; only Tensors can be "
                                     "batched (use None for it)")
                if x.ndim == 0:
                    raise ValueError(f"vmap: in_dim {di} given for a 0-d tensor; a batched input needs a batch "
                                     "dimension (use None for it)")
                k = dim_index("vmap", di, x.ndim)
                if size is None:
                    size = x.shape[k]
                elif x.shape[k] != size:
                    raise ValueError(f"vmap: inputs have different sizes along their batch dims ({size} and "
                                     f"{x.shape[k]}); every batched input must have the same batch size")
            batched.append((leaves, spec, ds))
        if size is None:
            raise ValueError("vmap: no input is batched (in_dims are all None); batch at least one Tensor")
        slices = [[x.unbind(dim_index("vmap", di, x.ndim)) if di is not None else None for x, di in zip(lv, ds)]
                  for lv, _, ds in batched]
        results = []
        for b in range(size):
            call = [_unflatten(spec, [x if s is None else s[b] for x, s in zip(lv, sl)])
                    for (lv, spec, _), sl in zip(batched, slices)]
            results.append(func(*call, **kwargs))
        flat0, out_spec = _flatten(results[0])
        flat_all = [_flatten(r)[0] for r in results]
        odims = out_dims if isinstance(out_dims, (tuple, list)) else (out_dims,) * len(flat0)
        if len(odims) != len(flat0):
            raise ValueError(f"vmap: out_dims has {len(odims)} entries but the function returns {len(flat0)} outputs")
        outs = []
        for i, od in enumerate(odims):
            col = [f[i] for f in flat_all]
            if not all(isinstance(c, Tensor) for c in col):
                raise ValueError(f"vmap: output {i} is a {type(col[0]).__name__}; outputs must be Tensors")
            outs.append(stack(col, dim_index("vmap", od, col[0].ndim + 1)))
        return _unflatten(out_spec, outs)
    return _named(wrapper, func, "vmap")


# ----------------------------------------------------------------------------------------------
# functional_call
# ----------------------------------------------------------------------------------------------
def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True,
                    strict=False):
    """Call ``module(*args, **kwargs)`` with some of its parameters and buffers replaced by the
    tensors in `parameter_and_buffer_dicts` (a dict of dotted names -> Tensors, or a tuple of
    such dicts), then restore them. Gradients flow to the given tensors, so
    ``grad(lambda p: loss(functional_call(model, p, (x,))))(params)`` works.

    tie_weights: a parameter shared under several names is replaced everywhere when one of its
    names is given. strict: every parameter and buffer must be given. A name the module does not
    have is an error (stricter than PyTorch, which would set a new attribute)."""
    if isinstance(parameter_and_buffer_dicts, dict):
        given = dict(parameter_and_buffer_dicts)
    else:
        given = {}
        for d in parameter_and_buffer_dicts:
            for k, v in d.items():
                if k in given:
                    raise ValueError(f"functional_call: {k!r} appears in more than one of the dicts")
                given[k] = v
    slots = {}                 # dotted name -> (registry dict, key)
    by_id = {}                 # id(original tensor) -> names sharing it
    for reg in ("_parameters", "_buffers"):
        for prefix, m in module.named_modules(remove_duplicate=False):
            for k, v in getattr(m, reg).items():
                name = prefix + ("." if prefix else "") + k
                slots[name] = (getattr(m, reg), k)
                if v is not None:
                    by_id.setdefault(id(v), []).append(name)
    unknown = [k for k in given if k not in slots]
    if unknown:
        raise KeyError(f"functional_call: {type(module).__name__} has no parameter or buffer named {unknown}; "
                       f"its names are {sorted(slots)}")
    for k, v in given.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"functional_call: the value for {k!r} is a {type(v).__name__}; give Tensors")
    if tie_weights:
        for names in by_id.values():
            hit = [n for n in names if n in given]
            if hit:
                vals = {id(given[n]) for n in hit}
                if len(vals) > 1:
                    raise ValueError(f"functional_call: tied names {names} were given different tensors; give one "
                                     "(or pass tie_weights=False)")
                for n in names:
                    given.setdefault(n, given[hit[0]])
    if strict:
        missing = sorted(n for n, (reg, k) in slots.items() if reg[k] is not None and n not in given)
        if missing:
            raise RuntimeError(f"functional_call(strict=True): missing key(s) {missing}")
    saved = []
    try:
        for n, v in given.items():
            reg, k = slots[n]
            saved.append((reg, k, reg[k]))
            reg[k] = v
        if args is None:
            args = ()
        elif not isinstance(args, tuple):
            args = (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for reg, k, old in reversed(saved):
            reg[k] = old


def stack_module_state(models):
    """(params, buffers): dicts of dotted names -> the models' tensors stacked along a new dim 0,
    for ensembling with ``vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))``.
    All models must have the same names and shapes. The stacked parameters are new leaves that
    require grad (as in PyTorch); buffers do not."""
    from .ops import stack
    models = list(models)
    if not models:
        raise ValueError("stack_module_state: expected at least one model")
    names = [n for n, _ in models[0].named_parameters()]
    bnames = [n for n, _ in models[0].named_buffers()]
    for m in models[1:]:
        if [n for n, _ in m.named_parameters()] != names or [n for n, _ in m.named_buffers()] != bnames:
            raise ValueError("stack_module_state: the models do not have the same parameter and buffer names")
    pdicts = [dict(m.named_parameters()) for m in models]
    bdicts = [dict(m.named_buffers()) for m in models]
    params = {}
    for n in names:
        ps = [d[n].detach() for d in pdicts]
        params[n] = stack(ps, 0).requires_grad_(ps[0].dtype.kind in "fc")
    buffers = {n: stack([d[n].detach() for d in bdicts], 0) for n in bnames}
    return params, buffers
