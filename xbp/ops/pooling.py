"""Pooling primitives: max (with indices and unpooling), average and adaptive average pooling.

They use the offset slices and the layout of `xbp.ops.conv`: max pooling is a running maximum whose
backward finds each window's first maximum (PyTorch's choice) and scatters the gradient through
it; average pooling divides window sums by a divisor map (padding counted or not, ceil_mode's
partial windows as PyTorch counts them).
"""
from __future__ import annotations

import math

import numpy as np

from .._backend import check_range
from .._primitive import Primitive, apply
from .._tensor import Tensor
from .conv import Geom, _batched, _call, _from_chwn, _offsets, _pair, _to_chwn


def _spread(xp, parts, geom, ksize, hw, out_hw):
    """The adjoint of reading windows: each offset's part (C, Ho, Wo, N) added at its slice of a
    zero padded input, the padding cut off -> (N, C, H, W)."""
    C, N = parts[0].shape[0], parts[0].shape[3]
    H, W = hw
    pt, pb, pl, pr = geom.pad
    out = xp.zeros((C, H + pt + pb, W + pl + pr, N), dtype=parts[0].dtype)
    for (si, sj), part in zip(_offsets(ksize[0], ksize[1], geom, *out_hw), parts):
        out[:, si, sj, :] += part
    return _from_chwn(xp, out[:, pt:pt + H, pl:pl + W, :])


def _windows(xp, x, geom, ksize, out_hw, value=0.0):
    """x (N, C, H, W) -> each offset's window slice (C, Ho, Wo, N), in offset order."""
    xpad = _to_chwn(xp, x, geom.pad, value)
    return [xpad[:, si, sj, :] for si, sj in _offsets(ksize[0], ksize[1], geom, *out_hw)]


def _scaled(g, scale):
    return g if scale is None else g * scale


# window sum (times `scale`) and its adjoint, the spread: average pooling and its gradient
def _wsum_fwd(xp, x, *, geom, ksize, out_hw, scale):
    acc = None
    for part in _windows(xp, x, geom, ksize, out_hw):
        acc = part + 0.0 if acc is None else acc + part
    return _scaled(_from_chwn(xp, acc), scale)


def _wspread_fwd(xp, g, *, geom, ksize, hw, scale):
    gt = xp.permute_dims(_scaled(g, scale), (1, 2, 3, 0))
    return _spread(xp, [gt] * (ksize[0] * ksize[1]), geom, ksize, hw, tuple(g.shape[2:]))


wsum_p = Primitive("avg_pool2d", _wsum_fwd, lambda c, g: (_call(c.xp, wspread_p, (g,), {
    "geom": c.p["geom"], "ksize": c.p["ksize"], "hw": tuple(c.shapes[0][2:]), "scale": c.p["scale"]}),))
wspread_p = Primitive("avg_pool2d_backward", _wspread_fwd, lambda c, g: (_call(c.xp, wsum_p, (g,), {
    "geom": c.p["geom"], "ksize": c.p["ksize"], "out_hw": tuple(c.shapes[0][2:]), "scale": c.p["scale"]}),))


# max pooling: forward is a running maximum over the offsets (no window buffer, no argmax pass);
# backward finds each window's first maximum (PyTorch's choice) and scatters the gradient through
# it: a linear map whose adjoint is the gather of the same offsets, so second order works too.
# The offsets `idx` are kept in the (C, Ho, Wo, N) layout of the window slices.
def _maxpool_fwd(xp, x, *, geom, ksize, out_hw):
    out = None
    for part in _windows(xp, x, geom, ksize, out_hw, -math.inf):
        out = part + 0.0 if out is None else xp.maximum(out, part)
    return _from_chwn(xp, out)


def _first_argmax(xp, x, y, geom, ksize):
    """The offset k of the first window element equal to the maximum y: int8/int16 (C, Ho, Wo, N).
    Built from boolean masks and integer arithmetic: NumPy's where() on a random mask costs
    ~4 ns an element, ten times a multiply."""
    kk = ksize[0] * ksize[1]
    dt = xp.dtype(np.dtype("int8" if kk < 128 else "int16"))
    yt = xp.permute_dims(y, (1, 2, 3, 0))
    parts = _windows(xp, x, geom, ksize, tuple(y.shape[2:]), -math.inf)
    found = parts[0] == yt
    idx = xp.zeros(yt.shape, dtype=dt)
    for k in range(1, kk):
        eq = parts[k] == yt
        idx = idx + xp.astype(xp.logical_and(eq, xp.logical_not(found)), dt) * k
        found = xp.logical_or(found, eq)
    return idx


def _maxpool_vjp(c, g):
    x, y, xp = c.ins[0], c.out, c.xp
    if isinstance(g, Tensor):                 # create_graph: the offsets are constants
        x, y, xp = x.array, y.array, c.xp.backend
    idx = _first_argmax(xp, x, y, c.p["geom"], c.p["ksize"])
    return (_call(c.xp, mscatter_p, (g,), _pool_params(c, idx, hw=tuple(c.shapes[0][2:]))),)


def _mscatter_fwd(xp, g, *, idx, geom, ksize, hw):
    # g times a 0/1 mask rather than where(): the same for finite g, and ten times faster in NumPy
    # (a NaN/inf gradient also reaches the window's other inputs, as NaN)
    gt = xp.permute_dims(g, (1, 2, 3, 0))
    parts = [gt * xp.astype(idx == k, g.dtype) for k in range(ksize[0] * ksize[1])]
    return _spread(xp, parts, geom, ksize, hw, tuple(g.shape[2:]))


def _mgather_fwd(xp, x, *, idx, geom, ksize, out_hw):
    acc = None
    for k, part in enumerate(_windows(xp, x, geom, ksize, out_hw)):
        acc = part + 0.0 if acc is None else xp.where(idx == k, part, acc)
    return _from_chwn(xp, acc)


def _pool_params(c, idx, **kw):
    return dict(idx=idx, geom=c.p["geom"], ksize=c.p["ksize"], **kw)


maxpool_p = Primitive("max_pool2d", _maxpool_fwd, _maxpool_vjp, save="in,out")
mscatter_p = Primitive("max_pool2d_backward", _mscatter_fwd, lambda c, g: (_call(
    c.xp, mgather_p, (g,), _pool_params(c, c.p["idx"], out_hw=tuple(c.shapes[0][2:]))),))
mgather_p = Primitive("max_pool2d_gather", _mgather_fwd, lambda c, g: (_call(
    c.xp, mscatter_p, (g,), _pool_params(c, c.p["idx"], hw=tuple(c.shapes[0][2:]))),))


def _pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    kh, kw = _pair(kernel_size, "kernel_size", op)
    sh, sw = _pair(kernel_size if stride is None or stride == () else stride, "stride", op)
    ph, pw = _pair(padding, "padding", op)
    dh, dw = _pair(dilation, "dilation", op)
    if min(kh, kw, sh, sw, dh, dw) < 1:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be positive")
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{op}: padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    H, W = x.shape[2:]
    out, extra = [], []
    for n, k, s, p, d in ((H, kh, sh, ph, dh), (W, kw, sw, pw, dw)):
        span = n + 2 * p - d * (k - 1) - 1
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:     # the last window must start inside input or left pad
            o -= 1
        if o < 1:
            raise ValueError(f"{op}: input {x.shape} is too small for kernel {(kh, kw)} (output size {o})")
        out.append(o)
        extra.append(max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p)))
    geom = Geom((sh, sw), (ph, ph + extra[0], pw, pw + extra[1]), (dh, dw), 1)
    return geom, (kh, kw), tuple(out)


def _argmax_positions(xp, x, y, geom, ksize):
    """PyTorch's max pooling indices: for each window, the flat position r * W + c in its (H, W)
    input plane of the first maximum in row-major window order, counting only positions inside
    the input (so an all -inf window points at its first real element, never at padding) and a
    NaN as the maximum (the last NaN, as PyTorch's `val > max || isnan(val)` scan).
    x (N, C, H, W), y its pooled (N, C, Ho, Wo) -> int64 (N, C, Ho, Wo). No gradient."""
    H, W = x.shape[2:]
    Ho, Wo = y.shape[2:]
    (sh, sw), (pt, _, pl, _), (dh, dw), _ = geom
    i64 = xp.dtype(np.dtype("int64"))
    yt = xp.permute_dims(y, (1, 2, 3, 0))                       # (C, Ho, Wo, N), as the windows
    rows0 = xp.reshape(xp.arange(0, Ho, dtype=i64) * sh - pt, (Ho, 1, 1))
    cols0 = xp.reshape(xp.arange(0, Wo, dtype=i64) * sw - pl, (Wo, 1))
    idx = xp.zeros(yt.shape, dtype=i64)
    found = xp.zeros(yt.shape, dtype=xp.bool)
    for k, part in enumerate(_windows(xp, x, geom, ksize, (Ho, Wo), -math.inf)):
        r, c = rows0 + (k // ksize[1]) * dh, cols0 + (k % ksize[1]) * dw
        inside = xp.logical_and(xp.logical_and(r >= 0, r < H), xp.logical_and(c >= 0, c < W))
        nan = xp.logical_and(part != part, inside)
        hit = xp.logical_or(xp.logical_and(xp.logical_and(part == yt, inside), xp.logical_not(found)), nan)
        idx = xp.where(hit, r * W + c, idx)
        found = xp.logical_or(found, hit)
    return _from_chwn(xp, idx)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """Max over kernel windows: (N, C, H, W) or (C, H, W) -> (N, C, Ho, Wo); stride defaults to
    kernel_size; padding counts as -inf. The gradient goes to the first maximum of each window.
    return_indices: also return the int64 (N, C, Ho, Wo) flat positions of the maxima in each
    (H, W) input plane, as PyTorch (what `max_unpool2d` takes)."""
    x, unb = _batched(input, 4, "max_pool2d")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: expected input (N, C, H, W), got {x.shape}")
    geom, ksize, out_hw = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    y = apply(maxpool_p, (x,), {"geom": geom, "ksize": ksize, "out_hw": out_hw})
    if not return_indices:
        return y[0, ...] if unb else y
    from .._tensor import _wrap
    i = _wrap(_argmax_positions(x.xp, x.array, y.array, geom, ksize), x.xp)
    return (y[0, ...], i[0, ...]) if unb else (y, i)


# max unpooling: out.flat[indices] = x in each (Ho, Wo) output plane (the rest zero), PyTorch's
# partial inverse of max pooling. One flat position per input element, pos = plane * Ho*Wo + index;
# forward writes through them (`setitem`: on duplicates one write wins, as PyTorch; indices from
# max_pool2d repeat only with equal values), backward reads the gradient at them (`take`, whose
# own adjoint under create_graph is the scatter-add).
def _unpool_fwd(xp, x, *, pos, out_shape):
    out = xp.zeros((math.prod(out_shape),), dtype=x.dtype)
    xp.setitem(out, (pos,), xp.reshape(x, (-1,)))
    return xp.reshape(out, out_shape)


def _unpool_vjp(c, g):
    xp = c.xp
    return (xp.reshape(xp.take(xp.reshape(g, (-1,)), c.p["pos"], axis=0), c.shapes[0]),)


unpool_p = Primitive("max_unpool2d", _unpool_fwd, _unpool_vjp)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):  # noqa: A002
    """The partial inverse of max_pool2d: input (N, C, H, W) or (C, H, W) and the int64 `indices`
    max_pool2d(return_indices=True) gave -> (N, C, Ho, Wo) zeros with input[n, c].flat[i] written
    at position indices[n, c].flat[i] of each (Ho, Wo) plane. Default Ho = (H - 1) sh - 2 ph + kh;
    output_size ((Ho, Wo) or (N, C, Ho, Wo)) picks another within one stride of it, as PyTorch.
    Differentiable in `input` (the gradient is a gather at the indices)."""
    op = "max_unpool2d"
    x, unb = _batched(input, 4, op)
    if isinstance(indices, Tensor) and unb:
        from .shape import unsqueeze
        indices = unsqueeze(indices, 0)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected input (N, C, H, W) or (C, H, W), got {input.shape}")
    if not isinstance(indices, Tensor) or indices.dtype.kind not in "iu" or indices.shape != x.shape:
        raise ValueError(f"{op}: indices must be an integer tensor of the input's shape {tuple(input.shape)}, got "
                         f"{indices.dtype if isinstance(indices, Tensor) else type(indices).__name__} "
                         f"{tuple(getattr(indices, 'shape', ()))}; pass what max_pool2d(..., return_indices=True) "
                         "returned")
    if indices.xp is not x.xp:
        from .._primitive import _device_mismatch
        _device_mismatch(unpool_p, (x, indices))
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None else _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    default = [(x.shape[2 + d] - 1) * s[d] + k[d] - 2 * p[d] for d in range(2)]
    if output_size is None:
        hw = default
    else:
        hw = [int(v) for v in output_size]
        if len(hw) == 4:
            hw = hw[2:]
        if len(hw) != 2:
            raise ValueError(f"{op}: output_size should be a sequence containing 2 or 4 elements, but it has "
                             f"a length of '{len(hw)}'")
        for d in range(2):
            lo, hi = default[d] - s[d], default[d] + s[d]
            if not lo < hw[d] < hi:
                raise ValueError(f'{op}: invalid output_size "{tuple(output_size)}" (dim {d} must be between '
                                 f"{lo} and {hi})")
    if min(hw) < 1:
        raise ValueError(f"{op}: output size {tuple(hw)} is not positive for input {tuple(x.shape)}")
    N, C = x.shape[:2]
    hwo = hw[0] * hw[1]
    xp = x.xp
    if indices.numel():    # one host read for both bounds (or none: deferred, see check_range)
        check_range(xp, indices.array, 0, hwo - 1,
                    f"{op}: indices span [{{lo}}, {{hi}}], outside [0, {hwo}) for output planes of "
                    f"{hw[0]}x{hw[1]}; check kernel_size, stride, padding and output_size")
    i64 = xp.dtype(np.dtype("int64"))
    plane = xp.reshape(xp.arange(0, N * C, dtype=i64) * hwo, (N, C, 1, 1))
    pos = xp.reshape(xp.astype(indices.array, i64) + plane, (-1,))
    y = apply(unpool_p, (x,), {"pos": pos, "out_shape": (N, C, hw[0], hw[1])})
    return y[0, ...] if unb else y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """Mean over kernel windows: (N, C, H, W) or (C, H, W) -> (N, C, Ho, Wo), with PyTorch's
    divisors (zero padding counted when count_include_pad; ceil_mode's overhang never counted)."""
    x, unb = _batched(input, 4, "avg_pool2d")
    if x.ndim != 4:
        raise ValueError(f"avg_pool2d: expected input (N, C, H, W), got {x.shape}")
    geom, ksize, out_hw = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override:
        scale = 1.0 / float(divisor_override)
    else:
        scale = _avg_scale(x, geom, ksize, out_hw, count_include_pad)
    y = apply(wsum_p, (x,), {"geom": geom, "ksize": ksize, "out_hw": out_hw, "scale": scale})
    return y[0, ...] if unb else y


def _avg_scale(x, geom, ksize, out_hw, count_include_pad):
    """1 / (the number of elements each window averages): a Python float where all are equal,
    else an (Ho, Wo) array. What is counted is a rectangle (the padded input, or the input alone),
    so a window's count is (counted rows) x (counted columns)."""
    H, W = x.shape[2:]
    pt, _, pl, _ = geom.pad        # the symmetric padding; beyond it lies ceil_mode's overhang
    per_axis = []
    for n, p, k, s, d, o in ((H, pt, ksize[0], geom.stride[0], geom.dilation[0], out_hw[0]),
                             (W, pl, ksize[1], geom.stride[1], geom.dilation[1], out_hw[1])):
        lo, hi = (0, n + 2 * p) if count_include_pad else (p, p + n)
        per_axis.append([sum(1 for i in range(k) if lo <= h * s + i * d < hi) for h in range(o)])
    rows, cols = per_axis
    if len(set(rows)) == 1 and len(set(cols)) == 1:
        return 1.0 / float(rows[0] * cols[0])
    xp = x.xp
    return xp.asarray([[1.0 / (r * c) for c in cols] for r in rows], dtype=x.array.dtype)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """Average over PyTorch's adaptive bins: bin i covers rows floor(i H / oh) to ceil((i+1) H / oh).
    (N, C, H, W) or (C, H, W) -> (N, C, oh, ow); a None entry keeps that size. Uses avg_pool2d
    when the bins tile the input evenly, else separable means over row then column bins."""
    from .reduce import mean
    from .shape import cat
    x, unb = _batched(input, 4, "adaptive_avg_pool2d")
    H, W = x.shape[2:]
    oh, ow = (output_size, output_size) if isinstance(output_size, int) or output_size is None else output_size
    oh, ow = H if oh is None else int(oh), W if ow is None else int(ow)
    if H % oh == 0 and W % ow == 0:
        y = avg_pool2d(x, (H // oh, W // ow))
    else:
        def bins(t, n, o, axis):
            parts = []
            for i in range(o):
                lo, hi = (i * n) // o, -((-(i + 1) * n) // o)
                key = (slice(None),) * axis + (slice(lo, hi),)
                parts.append(mean(t[key], axis, keepdim=True))
            return cat(parts, axis)
        y = bins(bins(x, H, oh, 2), W, ow, 3)
    return y[0, ...] if unb else y
