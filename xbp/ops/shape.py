"""Shape primitives: reshape, permute, expand, concat, flip, roll, pad, and what composes from them.

Results that are views of their input share its version counter, so an in-place change through
either is seen by backward.
"""
from __future__ import annotations

import math

from .._primitive import Primitive, apply
from .._tensor import Tensor
from ._util import check_size, dim_index, dim_tuple, pick_dim


def _as_view(out: Tensor, x: Tensor, prim, params) -> Tensor:
    """Make `out` (= prim(x, **params)) a view of x: it shares x's version counter and remembers
    how it was made, so in-place changes flow both ways on the graph (see ops/index.py). A reshape
    that had to copy is not a view."""
    if prim is reshape_p and not x.xp.may_share_memory(out.array, x.array):
        return out
    out._version = x._version
    out._base = x if x._base is None else x._base
    out._view = [x, prim, params, x._version[0]]
    return out


reshape_p = Primitive("reshape", lambda xp, x, shape: xp.reshape(x, shape),
                      lambda c, g: (c.xp.reshape(g, c.shapes[0]),), passthrough=True)


def _resolve_shape(shape, numel, op="reshape"):
    shape = tuple(check_size(op, s, "shape entries") for s in shape)
    if any(s < -1 for s in shape):
        raise ValueError(f"{op}: invalid shape dimension in {shape}")
    if shape.count(-1) > 1:
        raise ValueError(f"{op}: only one dimension can be -1, got {shape}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or numel % known:
            raise ValueError(f"{op}: cannot infer -1 in shape {shape} for {numel} elements")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    if math.prod(shape) != numel:
        raise ValueError(f"{op}: shape {shape} is invalid for a tensor of {numel} elements")
    return shape


def reshape(x, *shape):
    """Reshape to `shape` (one entry may be -1). A view where the data allows it."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    shape = _resolve_shape(shape, x.numel())
    if shape == x.array.shape:
        return x
    p = {"shape": shape}
    return _as_view(apply(reshape_p, (x,), p), x, reshape_p, p)


view = reshape


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = dim_index("flatten", start_dim, x.ndim), dim_index("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} cannot come after end_dim {end_dim}")
    return reshape(x, x.array.shape[:s] + (math.prod(x.array.shape[s:e + 1]),) + x.array.shape[e + 1:])


def unflatten(x, dim, sizes):
    """Split dim `dim` into `sizes` (one entry may be -1)."""
    dim = dim_index("unflatten", dim, x.ndim)
    sizes = tuple(check_size("unflatten", v, "sizes") for v in sizes)
    if not sizes:
        raise ValueError("unflatten: sizes must be non-empty")
    return reshape(x, x.array.shape[:dim] + tuple(sizes) + x.array.shape[dim + 1:])


def squeeze(x, dim=None, *, axis=None):
    """Drop size-1 dims (all, or those in `dim`: an int or a tuple)."""
    dim = pick_dim("squeeze", dim, axis)
    if dim is None:
        axes = tuple(i for i, s in enumerate(x.array.shape) if s == 1)
    else:
        axes = tuple(a for a in dim_tuple("squeeze", dim, x.ndim) if x.ndim and x.array.shape[a] == 1)
    return reshape(x, tuple(s for i, s in enumerate(x.array.shape) if i not in axes))


def unsqueeze(x, dim=None, *, axis=None):
    """Insert a size-1 dim at `dim`."""
    dim = pick_dim("unsqueeze", dim, axis)
    if dim is None:
        raise TypeError("unsqueeze(): missing the dim argument (where to insert the new dim)")
    dim = dim_index("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.array.shape[:dim] + (1,) + x.array.shape[dim:])


def _permute_vjp(c, g):
    axes = c.p["axes"]
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return (c.xp.permute_dims(g, tuple(inv)),)


permute_p = Primitive("permute", lambda xp, x, axes: xp.permute_dims(x, axes), _permute_vjp, passthrough=True)


def permute(x, *dims):
    """Reorder dims: out.shape[i] = x.shape[dims[i]]."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    axes = dim_tuple("permute", tuple(dims), x.ndim)
    if len(axes) != x.ndim:
        raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of {x.ndim} dims")
    if axes == tuple(range(x.ndim)):
        return x
    p = {"axes": axes}
    return _as_view(apply(permute_p, (x,), p), x, permute_p, p)


def transpose(x, dim0, dim1):
    """Swap two dims (PyTorch's transpose; `swapdims`, and `swapaxes` with PyTorch's
    `axis0`/`axis1` names)."""
    axes = list(range(x.ndim))
    d0, d1 = dim_index("transpose", dim0, x.ndim), dim_index("transpose", dim1, x.ndim)
    if x.ndim == 0:
        return x
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return permute(x, axes)


swapdims = transpose


def swapaxes(x, axis0, axis1):
    """`transpose` under NumPy's name, with PyTorch's argument names for it (`axis0`, `axis1`)."""
    return transpose(x, axis0, axis1)


def movedim(x, source, destination):
    """Move dim(s) `source` to position(s) `destination` (ints, or tuples of the same length, as
    PyTorch's movedim and NumPy's moveaxis); the other dims keep their order."""
    if isinstance(source, (tuple, list)) or isinstance(destination, (tuple, list)):
        src = dim_tuple("movedim", tuple(source) if isinstance(source, (tuple, list)) else (source,), x.ndim)
        dst = dim_tuple("movedim", tuple(destination) if isinstance(destination, (tuple, list)) else (destination,),
                        x.ndim)
        if len(src) != len(dst):
            raise ValueError(f"movedim: source {source} and destination {destination} must have the same number "
                             "of dims")
        order = [None] * x.ndim
        for s_, d_ in zip(src, dst):
            order[d_] = s_
        rest = iter(i for i in range(x.ndim) if i not in src)
        return permute(x, [o if o is not None else next(rest) for o in order])
    src, dst = dim_index("movedim", source, x.ndim), dim_index("movedim", destination, x.ndim)
    order = [i for i in range(x.ndim) if i != src]
    order.insert(dst, src)
    return permute(x, order)


# expand: the engine sums the gradient back to the input's shape
broadcast_p = Primitive("expand", lambda xp, x, shape: xp.broadcast_to(x, shape), lambda c, g: (g,),
                        passthrough=True)


def broadcast_to(x, shape):
    """Broadcast to `shape` (a read-only view)."""
    shape = tuple(check_size("expand", s, "shape entries") for s in shape)
    if shape == x.array.shape:
        return x
    lead = len(shape) - x.ndim
    for i, s in enumerate(x.array.shape):
        if s != 1 and s != shape[lead + i]:
            raise ValueError(f"expand: cannot broadcast shape {x.shape} to {shape}")
    p = {"shape": shape}
    return _as_view(apply(broadcast_p, (x,), p), x, broadcast_p, p)


def expand(x, *shape):
    """Broadcast to `shape`; -1 keeps a dim's size (PyTorch's expand)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    lead = len(shape) - x.ndim
    shape = tuple(x.array.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return broadcast_to(x, shape)


def _concat_vjp(c, g):
    axis = c.p["axis"]
    out, start = [], 0
    for shape, need in zip(c.shapes, c.needs):
        stop = start + shape[axis]
        if need:
            out.append(g[(slice(None),) * axis + (slice(start, stop),) + (Ellipsis,)])
        else:
            out.append(None)
        start = stop
    return tuple(out)


concat_p = Primitive("concat", lambda xp, *xs, axis: xp.concat(xs, axis=axis), _concat_vjp, passthrough=True)


def cat(tensors, dim=0, *, axis=None, out=None):
    """Join tensors along an existing dim; `out`: write the result into that tensor."""
    dim = pick_dim("cat", dim, axis, default=0)
    if out is not None:
        from ._out import check_out, write_out
        tensors = list(tensors)
        check_out("cat", out, tensors)
        return write_out("cat", cat(tensors, dim), out)
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of Tensors")
    nd = tensors[0].ndim
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat: expected Tensors, got {type(t).__name__} at position {i}")
        if t.ndim == 0:
            raise ValueError(f"cat: zero-dimensional tensor (at position {i}) cannot be concatenated; "
                             "use stack, or reshape it to (1,)")
        if t.ndim != nd:
            raise ValueError(f"cat: tensor {i} has {t.ndim} dims, tensor 0 has {nd}")
    axis = dim_index("cat", dim, nd)
    for i, t in enumerate(tensors):
        if t.array.shape[:axis] + t.array.shape[axis + 1:] != tensors[0].array.shape[:axis] + tensors[0].array.shape[axis + 1:]:
            raise ValueError(f"cat: sizes of tensors must match except in dim {dim}: tensor 0 has shape "
                             f"{tensors[0].shape}, tensor {i} has {t.shape}")
    return apply(concat_p, tuple(tensors), {"axis": axis})


concat = cat


def _stack_vjp(c, g):
    axis = c.p["axis"]
    return tuple(g[(slice(None),) * axis + (i, Ellipsis)] if need else None for i, need in enumerate(c.needs))


# a primitive of its own (not cat of unsqueezes): one node, PyTorch's StackBackward0
stack_p = Primitive("stack", lambda xp, *xs, axis: xp.stack(xs, axis=axis), _stack_vjp, passthrough=True)


def stack(tensors, dim=0, *, axis=None, out=None):
    """Join tensors along a new dim; `out`: write the result into that tensor."""
    dim = pick_dim("stack", dim, axis, default=0)
    if out is not None:
        from ._out import check_out, write_out
        tensors = list(tensors)
        check_out("stack", out, tensors)
        return write_out("stack", stack(tensors, dim), out)
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of Tensors")
    shape0 = tensors[0].array.shape
    for i, t in enumerate(tensors):
        if t.array.shape != shape0:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {shape0}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"stack: expected Tensors, got {type(t).__name__} at position {i}")
    d = dim_index("stack", dim, tensors[0].ndim + 1)
    return apply(stack_p, tuple(tensors), {"axis": d})


def split(x, split_size_or_sections, dim=0, *, axis=None):
    """Split into pieces of a given size (last may be smaller) or a list of sizes."""
    dim = pick_dim("split", dim, axis, default=0)
    dim = dim_index("split", dim, x.ndim)
    if x.ndim == 0:
        raise ValueError("split: expected a tensor with at least one dimension")
    n = x.array.shape[dim]
    if isinstance(split_size_or_sections, int) or not isinstance(split_size_or_sections, (list, tuple)):
        step = check_size("split", split_size_or_sections, "split_size")
        if step <= 0:
            raise ValueError(f"split: split_size must be a positive integer, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)]
    else:
        sizes = list(split_size_or_sections)
        if builtins_sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to dim {dim}'s size {n}")
    out, start = [], 0
    for s in sizes:
        out.append(x[(slice(None),) * dim + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0, *, axis=None):
    """Split into `chunks` nearly equal pieces."""
    dim = pick_dim("chunk", dim, axis, default=0)
    chunks = check_size("chunk", chunks, "chunks")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive integer, got {chunks}")
    dim = dim_index("chunk", dim, x.ndim)
    if x.ndim == 0:
        raise ValueError("chunk: expected a tensor with at least one dimension")
    n = x.array.shape[dim]
    if n == 0:
        return (x,)
    return split(x, -(-n // chunks), dim)


def unbind(x, dim=0, *, axis=None):
    """The slices along `dim`, as a tuple of tensors with that dim removed."""
    dim = pick_dim("unbind", dim, axis, default=0)
    dim = dim_index("unbind", dim, x.ndim)
    if x.ndim == 0:
        raise ValueError("unbind: expected a tensor with at least one dimension")
    return tuple(x[(slice(None),) * dim + (i,)] for i in range(x.array.shape[dim]))


flip_p = Primitive("flip", lambda xp, x, axis: xp.flip(x, axis=axis),
                   lambda c, g: (c.xp.flip(g, axis=c.p["axis"]),))


def flip(x, dims=None, *, axis=None):
    """Reverse the order of elements along `dims` (an int or a tuple; `axis` as in the Array API)."""
    dims = pick_dim("flip", dims, axis, name="dims")
    if dims is None:
        raise TypeError("flip(): missing the dims argument (the dims to reverse), e.g. flip(x, (0,))")
    return apply(flip_p, (x,), {"axis": tuple(sorted(dim_tuple("flip", dims, x.ndim)))})


roll_p = Primitive("roll", lambda xp, x, shift, axis: xp.roll(x, shift, axis=axis),
                   lambda c, g: (c.xp.roll(g, tuple(-s for s in c.p["shift"]) if isinstance(c.p["shift"], tuple)
                                           else -c.p["shift"], axis=c.p["axis"]),))


def roll(x, shifts, dims=None, *, axis=None):
    """Roll elements along `dims` (flattened when None)."""
    dims = pick_dim("roll", dims, axis, name="dims")
    if isinstance(shifts, (list, tuple)):
        shifts = tuple(int(s) for s in shifts)
    if dims is None:
        return reshape(apply(roll_p, (flatten(x),), {"shift": shifts, "axis": None}), x.array.shape)
    if isinstance(dims, (list, tuple)):
        if not isinstance(shifts, tuple) and len(dims) == 1:
            shifts = (int(shifts),)
        if not isinstance(shifts, tuple) or len(shifts) != len(dims):
            raise ValueError(f"roll: shifts {shifts} and dims {tuple(dims)} must have the same length")
        dims = tuple(dim_index("roll", d, x.ndim) for d in dims)
    else:
        dims = dim_index("roll", dims, x.ndim)
    return apply(roll_p, (x,), {"shift": shifts, "axis": dims})


def _pad_fwd(xp, x, region, shape, value):
    out = xp.full(shape, value, dtype=x.dtype)
    out[region] = x
    return out


pad_p = Primitive("pad", _pad_fwd, lambda c, g: (g[c.p["region"]],))


def pad(x, pad, mode="constant", value=0.0):
    """Pad with a constant. `pad` lists (before, after) pairs from the LAST dim backwards, as
    PyTorch's F.pad: ``pad(x, (1, 1))`` pads the last dim by one on each side."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; only 'constant'")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected (before, after) pairs for at most {x.ndim} dims, got {pad}")
    shape = list(x.array.shape)
    region = [slice(None)] * x.ndim
    for i in range(len(pad) // 2):
        d = x.ndim - 1 - i
        lo, hi = int(pad[2 * i]), int(pad[2 * i + 1])
        if lo < 0 or hi < 0:
            raise ValueError(f"pad: negative padding {pad} is not supported")
        shape[d] += lo + hi
        region[d] = slice(lo, lo + x.array.shape[d])
    return apply(pad_p, (x,), {"region": tuple(region), "shape": tuple(shape), "value": value})


def tile(x, reps):
    """Repeat the whole tensor `reps[i]` times along dim i (PyTorch's Tensor.repeat)."""
    reps = tuple(int(r) for r in reps)
    if len(reps) < x.ndim:
        reps = (1,) * (x.ndim - len(reps)) + reps
    x = reshape(x, (1,) * (len(reps) - x.ndim) + x.array.shape)
    inter = []
    for r, s in zip(reps, x.array.shape):
        inter += [1, s]
    y = reshape(x, tuple(inter))
    y = broadcast_to(y, tuple(v for r, s in zip(reps, x.array.shape) for v in (r, s)))
    return reshape(y, tuple(r * s for r, s in zip(reps, x.array.shape)))


def repeat_interleave(x, repeats: int, dim=0, *, axis=None):
    """Repeat each element `repeats` (an int) times along `dim`."""
    dim = pick_dim("repeat_interleave", dim, axis, default=0)
    repeats = check_size("repeat_interleave", repeats, "repeats")
    if repeats < 0:
        raise ValueError(f"repeat_interleave: repeats must be non-negative, got {repeats}")
    dim = dim_index("repeat_interleave", dim, x.ndim)
    if x.ndim == 0:
        x = reshape(x, (1,))
    y = unsqueeze(x, dim + 1)
    shape = list(y.array.shape)
    shape[dim + 1] = repeats
    y = broadcast_to(y, tuple(shape))
    return flatten(y, dim, dim + 1)


import builtins as _b  # noqa: E402
builtins_sum = _b.sum
