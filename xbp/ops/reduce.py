"""Reductions. `dim`/`keepdim` (PyTorch) and `axis`/`keepdims` (Array API) are both accepted."""
from __future__ import annotations

from .._primitive import Primitive, apply
from .._tensor import Tensor
from ._util import dim_index, keepdim_shape, no_grad_op, norm_axis, pick_dim, pick_keepdim
from . import elementwise as E


def _axes_kw(x, dim, keepdim, axis, keepdims, op="reduction"):
    if axis is not None or keepdims is not None:
        dim, keepdim = pick_dim(op, dim, axis), pick_keepdim(op, keepdim, keepdims)
    return norm_axis(dim, x.ndim, None, op), bool(keepdim)


def _spread(c, g):
    """g of the reduced shape -> broadcastable against the input (size-1 reduced axes)."""
    if not c.p["keepdims"]:
        g = c.xp.reshape(g, keepdim_shape(c.shapes[0], c.p["axis"]))
    return g


def _sum_vjp(c, g):
    return (c.xp.broadcast_to(_spread(c, g), c.shapes[0]),)


sum_p = Primitive("sum", lambda xp, x, axis, keepdims: xp.sum(x, axis=axis, keepdims=keepdims), _sum_vjp,
                  passthrough=True)


def _count(shape, axes):
    n = 1
    for i, s in enumerate(shape):
        if axes is None or i in axes:
            n *= s
    return n


def _mean_vjp(c, g):
    return (c.xp.broadcast_to(_spread(c, g) / _count(c.shapes[0], c.p["axis"]), c.shapes[0]),)


mean_p = Primitive("mean", lambda xp, x, axis, keepdims: xp.mean(x, axis=axis, keepdims=keepdims), _mean_vjp)


def _prod_vjp(c, g):
    # d prod / d x_i = the product of the other elements, written so that zeros give no 0/0 and
    # the expression stays exact to differentiate once more (double backward):
    #   no zero:           P / x_i                       (P: product of the nonzero elements)
    #   one zero (at z):   P at z;  P / x_i * x_z elsewhere   (value 0, derivative in x_z kept)
    #   two zeros (z, w):  P * x_w at z (and P * x_z at w); 0 elsewhere
    #   three or more:     0
    # x_z enters through zf = where(zero, x, 0), whose value is 0 but whose derivative is 1 there.
    xp, axis = c.xp, c.p["axis"]
    x = c.ins[0]
    zero = x == 0
    safe = xp.where(zero, 1.0, x)
    zf = xp.where(zero, x, 0.0)
    p_nz = xp.prod(safe, axis=axis, keepdims=True)
    n_zero = xp.sum(xp.astype(zero, x.dtype), axis=axis, keepdims=True)
    zsum = xp.sum(zf, axis=axis, keepdims=True)
    others = xp.where(n_zero == 0, p_nz / safe,
                      xp.where(n_zero == 1, xp.where(zero, p_nz, p_nz / safe * zsum),
                               xp.where(zero & (n_zero == 2), p_nz * (zsum - zf), 0.0)))
    return (_spread(c, g) * others,)


prod_p = Primitive("prod", lambda xp, x, axis, keepdims: xp.prod(x, axis=axis, keepdims=keepdims), _prod_vjp,
                   save="in")


def _extreme_vjp(c, g):
    """amax/amin: the gradient is shared evenly among the elements equal to the extreme."""
    xp = c.xp
    x = c.ins[0]
    hit = xp.astype(x == _spread(c, c.out), x.dtype)
    return (_spread(c, g) * hit / xp.sum(hit, axis=c.p["axis"], keepdims=True),)


amax_p = Primitive("amax", lambda xp, x, axis, keepdims: xp.max(x, axis=axis, keepdims=keepdims), _extreme_vjp,
                   save="in,out")
amin_p = Primitive("amin", lambda xp, x, axis, keepdims: xp.min(x, axis=axis, keepdims=keepdims), _extreme_vjp,
                   save="in,out")


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):  # noqa: A001
    """Sum over `dim` (int, tuple or None for all). (..., d, ...) -> (..., ...)."""
    axes, kd = _axes_kw(x, dim, keepdim, axis, keepdims, "sum")
    if dtype is not None:
        x = x.to(dtype=dtype)
    elif x.dtype.kind == "b":            # counting: bool sums to int64, as in PyTorch
        x = x.to(dtype="int64")
    return apply(sum_p, (x,), {"axis": axes, "keepdims": kd})


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    """Mean over `dim` (int, tuple or None for all); `dtype` casts the input first."""
    axes, kd = _axes_kw(x, dim, keepdim, axis, keepdims, "mean")
    if dtype is not None:
        x = x.to(dtype=dtype)
    if x.dtype.kind not in "fc":
        raise TypeError(f"mean: needs a floating-point tensor, got dtype {x.dtype}; use x.float().mean()")
    return apply(mean_p, (x,), {"axis": axes, "keepdims": kd})


def prod(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    """Product over `dim`; `dtype` casts the input first."""
    axes, kd = _axes_kw(x, dim, keepdim, axis, keepdims, "prod")
    if dtype is not None:
        x = x.to(dtype=dtype)
    return apply(prod_p, (x,), {"axis": axes, "keepdims": kd})


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Maximum over `dim` (gradient shared evenly among ties)."""
    axes, kd = _axes_kw(x, dim, keepdim, axis, keepdims, "amax")
    return apply(amax_p, (x,), {"axis": axes, "keepdims": kd})


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Minimum over `dim` (gradient shared evenly among ties)."""
    axes, kd = _axes_kw(x, dim, keepdim, axis, keepdims, "amin")
    return apply(amin_p, (x,), {"axis": axes, "keepdims": kd})


def _one_dim(op, dim, ndim):
    return None if dim is None else dim_index(op, dim, ndim)


_argmax = no_grad_op("argmax", lambda xp, x, dim=None, keepdim=False: xp.argmax(
    x, axis=_one_dim("argmax", dim, x.ndim), keepdims=keepdim))
_argmin = no_grad_op("argmin", lambda xp, x, dim=None, keepdim=False: xp.argmin(
    x, axis=_one_dim("argmin", dim, x.ndim), keepdims=keepdim))
_all = no_grad_op("all", lambda xp, x, dim=None, keepdim=False: xp.all(
    x, axis=norm_axis(dim, x.ndim, op="all"), keepdims=keepdim))
_any = no_grad_op("any", lambda xp, x, dim=None, keepdim=False: xp.any(
    x, axis=norm_axis(dim, x.ndim, op="any"), keepdims=keepdim))


def argmax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    """Index of the largest element (of the flattened tensor, or along `dim`; first of ties)."""
    return _argmax(input, dim=pick_dim("argmax", dim, axis), keepdim=pick_keepdim("argmax", keepdim, keepdims))


def argmin(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    """Index of the smallest element (of the flattened tensor, or along `dim`; first of ties)."""
    return _argmin(input, dim=pick_dim("argmin", dim, axis), keepdim=pick_keepdim("argmin", keepdim, keepdims))


def all(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001,A002
    """Whether every element (over `dim`, an int or tuple) is true."""
    return _all(input, dim=pick_dim("all", dim, axis), keepdim=pick_keepdim("all", keepdim, keepdims))


def any(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001,A002
    """Whether any element (over `dim`, an int or tuple) is true."""
    return _any(input, dim=pick_dim("any", dim, axis), keepdim=pick_keepdim("any", keepdim, keepdims))

from .. import return_types as _rt  # noqa: E402  (max/min's named results, as torch.return_types)

MaxMin = _rt.max                      # kept for code that names it


def _at_index_fwd(xp, x, idx, axis, keepdims=True):
    """The entries of x at `idx` (argmax/argmin along `axis`, as a size-1 dim, dropped unless
    `keepdims`), and the one-hot mask of where they were taken from (the VJP's residual)."""
    n = x.shape[axis]
    iota = xp.reshape(xp.arange(0, n, dtype=idx.dtype), tuple(n if i == axis else 1 for i in range(x.ndim)))
    v = xp.take_along_axis(x, idx, axis=axis)
    if not keepdims:      # in the primitive, so max(x, dim) is one node (PyTorch's MaxBackward0)
        v = xp.reshape(v, v.shape[:axis] + v.shape[axis + 1:])
    return v, iota == idx


def _at_index_vjp(c, g):
    # the whole gradient to the element taken (indices are unique per output: no scatter-add
    # needed); `where`, not a multiply by the mask, so an inf in g leaves no NaN elsewhere
    if not c.p.get("keepdims", True):
        g = c.xp.reshape(g, keepdim_shape(c.shapes[0], (c.p["axis"],)))
    return (c.xp.where(c.res, g, 0.0), None)


max_dim_p = Primitive("max", _at_index_fwd, _at_index_vjp, res=True)
min_dim_p = Primitive("min", _at_index_fwd, _at_index_vjp, res=True)


def _extreme_along(name, x, dim, keepdim, arg, prim):
    """(values, indices) of the max/min along one dim. The values are taken at the indices, so
    the whole gradient goes to the element whose index is returned (the first of ties), as in
    PyTorch; amax/amin share it among ties instead."""
    from .shape import reshape
    if not isinstance(dim, int) and not hasattr(dim, "__index__"):
        raise TypeError(f"{name}: dim must be an int, got {dim!r}; for several dims use {'a' + name}(x, dims)")
    if x.ndim == 0 and int(dim) not in (0, -1):
        raise IndexError(f"{name}: dimension {dim} is out of range for a 0-d tensor (use 0 or -1)")
    (d,) = norm_axis(int(dim), x.ndim or 1)
    xs = reshape(x, (1,)) if x.ndim == 0 else x       # PyTorch allows dim 0 (or -1) of a 0-d tensor
    idx = arg(xs, d, keepdim=True)
    keep = bool(keepdim) and x.ndim > 0
    values = apply(prim, (xs, idx), {"axis": d, "keepdims": keep})
    if not keep:
        idx = reshape(idx, values.array.shape)
    return (_rt.max if name == "max" else _rt.min)(values, idx)


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """``max(x)``: the largest element (gradient shared among ties, as PyTorch);
    ``max(x, dim)``: (values, indices) along `dim`, the gradient going to the index returned.
    With two tensors, ``max(a, b)`` is the elementwise maximum."""
    if isinstance(dim, Tensor):
        return E.maximum(x, dim)
    dim, keepdim = pick_dim("max", dim, axis), pick_keepdim("max", keepdim, keepdims)
    if dim is None:
        return amax(x)
    return _extreme_along("max", x, dim, keepdim, argmax, max_dim_p)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """``min(x)``, ``min(x, dim)`` -> (values, indices), or elementwise ``min(a, b)``; gradients
    as for `max`."""
    if isinstance(dim, Tensor):
        return E.minimum(x, dim)
    dim, keepdim = pick_dim("min", dim, axis), pick_keepdim("min", keepdim, keepdims)
    if dim is None:
        return amin(x)
    return _extreme_along("min", x, dim, keepdim, argmin, min_dim_p)


def var(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=None):
    """Variance over `dim` with `correction` (1: unbiased, 0: population), as PyTorch."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes, kd = _axes_kw(x, dim, keepdim, axis, keepdims, "var")
    n = _count(x.array.shape, axes)
    d = x - mean(x, axes, keepdim=True)
    return sum(d * d, axes, kd) / float(n - correction if n > correction else 0)


def std(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=None):
    """Standard deviation over `dim` (square root of `var`)."""
    return apply(std_sqrt_p, (var(x, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis,
                                  keepdims=keepdims),))


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """log(sum(exp(x))) over `dim`, stable for large ``|x|`` (the max is subtracted first)."""
    axes, kd = _axes_kw(x, dim, keepdim, axis, keepdims, "logsumexp")
    m = amax(x.detach(), axes, keepdim=True)
    m = E.where(E.isfinite(m), m, 0.0)
    out = E.log(sum(E.exp(x - m), axes, keepdim=True)) + m
    if not kd:
        from .shape import reshape
        out = reshape(out, tuple(s for i, s in enumerate(x.array.shape) if axes is not None and i not in axes))
    return out


def _norm2_fwd(xp, x, axis, keepdims):
    return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))


def _norm2_vjp(c, g):
    # d|x|/dx = x/|x|, taken as 0 at x = 0 (a subgradient; PyTorch does the same) instead of 0/0
    xp = c.xp
    n = _spread(c, c.out)
    return (_spread(c, g) * c.ins[0] / xp.where(n == 0, 1.0, n),)


norm2_p = Primitive("norm", _norm2_fwd, _norm2_vjp, save="in,out")


def _normp_fwd(xp, x, axis, keepdims, p):
    return xp.sum(xp.abs(x) ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


def _normp_vjp(c, g):
    # d|x|_p/dx = sign(x) (|x| / |x|_p)^(p-1); PyTorch's subgradient 0 where |x|_p = 0 and, for
    # p < 1, where x = 0 (composed from pow it would be inf * 0 = NaN there)
    xp, p, x = c.xp, c.p["p"], c.ins[0]
    n = _spread(c, c.out)
    ax = xp.abs(x)
    dead = ax == 0
    r = xp.where(dead, 1.0, ax) / xp.where(n == 0, 1.0, n)
    return (xp.where(dead, 0.0, _spread(c, g) * xp.sign(x) * r ** (p - 1.0)),)


normp_p = Primitive("norm_p", _normp_fwd, _normp_vjp, save="in,out")


def _std_vjp(c, g):
    # d sqrt(v) = g / (2 sqrt(v)), taken as 0 where v = 0 (a constant sample: PyTorch's 0, not NaN)
    xp = c.xp
    z = c.out == 0
    return (xp.where(z, 0.0, g * 0.5 / xp.where(z, 1.0, c.out)),)


std_sqrt_p = Primitive("std", lambda xp, v: xp.sqrt(v), _std_vjp, save="out")


def norm(x, p=2, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    """Vector p-norm over `dim` (p = 1, 2, inf, -inf, 'fro' or any positive number); `dtype`
    casts the input first."""
    dim, keepdim = pick_dim("norm", dim, axis), pick_keepdim("norm", keepdim, keepdims)
    if dtype is not None:
        x = x.to(dtype=dtype)
    if p is None:
        p = 2
    if p in (2, 2.0, "fro"):
        axes = norm_axis(dim, x.ndim, op="norm")
        return apply(norm2_p, (x,), {"axis": axes, "keepdims": bool(keepdim)})
    if p in (1, 1.0):
        return sum(E.abs(x), dim, keepdim)
    if p == float("inf"):
        return amax(E.abs(x), dim, keepdim)
    if p == float("-inf"):
        return amin(E.abs(x), dim, keepdim)
    p = float(p)
    if not p > 0:
        raise ValueError(f"norm: p must be positive, inf, -inf or 'fro', got {p}")
    axes = norm_axis(dim, x.ndim, op="norm")
    return apply(normp_p, (x,), {"axis": axes, "keepdims": bool(keepdim), "p": p})


def _cumsum_fwd(xp, x, axis):
    return xp.cumulative_sum(x, axis=axis)


def _cumsum_vjp(c, g):
    # each input adds to every later output: the gradient is the reversed cumulative sum
    xp, a = c.xp, c.p["axis"]
    return (xp.flip(xp.cumulative_sum(xp.flip(g, axis=a), axis=a), axis=a),)


cumsum_p = Primitive("cumsum", _cumsum_fwd, _cumsum_vjp)


def cumsum(x, dim=None, *, axis=None, dtype=None):
    """Cumulative sum along `dim` (`dtype` casts the input first, as PyTorch's)."""
    dim = pick_dim("cumsum", dim, axis)
    if dim is None:
        raise TypeError("cumsum(): missing the dim argument (the dim to sum along), e.g. cumsum(x, dim=0)")
    if dtype is not None:
        x = x.to(dtype=dtype)
    return apply(cumsum_p, (x,), {"axis": norm_axis(dim, x.ndim, op="cumsum")[0]})
