"""The layer primitives: convolution and pooling (lowered to matrix products over offset slices),
and the fused normalisation and embedding lookup that the norm and embedding layers use.

The Array API has no sliding windows, so a window operation is written as one strided slice per
kernel offset: for a kh x kw kernel, offset (i, j) reads ``xpad[..., i*dh :: sh, j*dw :: sw]``
(cut to the output size). Convolution stacks those slices into a column buffer (im2col) and does
one matrix product; its adjoints are the same slices read backwards:

    conv(x, w)      y = W @ cols(x)                     (one GEMM, one column buffer)
    conv_t(y, w)    x = slice-add over the offsets of W^T @ y      (the transposed convolution)
    conv_w(x, y)    w = y @ cols(x)^T                   (one GEMM, one column buffer)

The three are primitives whose VJPs call each other, so gradients of any order work:
    d conv   = (conv_t(g, w), conv_w(x, g))
    d conv_t = (conv(g, w),   conv_w(g, y))     since <g, conv_t(y, w)> = <conv(g, w), y>
    d conv_w = (conv_t(y, g), conv(x, g))       since <g, conv_w(x, y)> = <conv(x, g), y>
A VJP calls the array body directly in a first-order backward and `apply` under create_graph.

Layout. Columns are built channel-major with the batch innermost, ``(C, kh, kw, Ho, Wo, N)``:
every product is then a single large GEMM over ``Ho*Wo*N`` (no batch of small products, no sum
over the batch), and each offset's slice is a run of ``Wo*N`` contiguous elements rather than a
row of ``Wo`` (on 8x8 images that makes im2col 6x and the slice-add 4x faster in NumPy). The
output ``(O, Ho, Wo, N)`` is returned as an NCHW view of that memory; elementwise ops keep that
memory order, so the next conv or pool reads it without a transposing copy. The backward keeps at
most one column-sized buffer alive at a time: conv_w rebuilds the columns (forward saves only
x and w, as PyTorch does) and frees them before conv_t makes the gradient's columns.
Building the columns is `Backend.window_columns` (portable: stacked slices; NumPy: one strided
copy through as_strided). Groups split C and O into G blocks and batch the GEMM over G.

Pooling uses the same offset slices in the same layout: max pooling is a running maximum whose
backward finds each window's first maximum (PyTorch's choice) and scatters the gradient through
it; average pooling divides window sums by a divisor map (padding counted or not, ceil_mode's
partial windows as PyTorch counts them).
"""
from __future__ import annotations

import math

import numpy as np

from .._primitive import Primitive, apply
from .._tensor import Tensor


# --- geometry -------------------------------------------------------------------------------------
class Geom(tuple):
    """(stride (sh, sw), pad (top, bottom, left, right), dilation (dh, dw), groups): hashable."""
    __slots__ = ()

    def __new__(cls, stride, pad, dilation, groups):
        return tuple.__new__(cls, (tuple(stride), tuple(pad), tuple(dilation), int(groups)))

    stride = property(lambda s: s[0])
    pad = property(lambda s: s[1])
    dilation = property(lambda s: s[2])
    groups = property(lambda s: s[3])


def _out_size(n, lo, hi, k, s, d):
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def _slice(start, step, count):
    return slice(start, start + step * (count - 1) + 1, step)


def _offsets(kh, kw, geom, Ho, Wo):
    """The (row slice, col slice) read by each kernel offset, row-major over (i, j)."""
    (sh, sw), _, (dh, dw), _ = geom
    return [(_slice(i * dh, sh, Ho), _slice(j * dw, sw, Wo)) for i in range(kh) for j in range(kw)]


def _to_chwn(xp, x, pad, value=0.0):
    """x (N, C, H, W) -> (C, H+pt+pb, W+pl+pr, N), padded with `value`. The batch goes innermost
    (see the module notes); where x's memory is already in this order the permutation is free."""
    pt, pb, pl, pr = pad
    xt = xp.permute_dims(x, (1, 2, 3, 0))
    if not (pt or pb or pl or pr):
        return xt
    C, H, W, N = xt.shape
    out = xp.full((C, H + pt + pb, W + pl + pr, N), value, dtype=x.dtype)
    out[:, pt:pt + H, pl:pl + W, :] = xt
    return out


def _from_chwn(xp, y):
    """(C, H, W, N) -> the (N, C, H, W) view of the same memory."""
    return xp.permute_dims(y, (3, 0, 1, 2))


def _columns(xp, x, kh, kw, geom):
    """x (N, C, H, W) -> (G, Cg*kh*kw, Ho*Wo*N) and (Ho, Wo)."""
    N, C, H, W = x.shape
    pt, pb, pl, pr = geom.pad
    Ho = _out_size(H, pt, pb, kh, geom.stride[0], geom.dilation[0])
    Wo = _out_size(W, pl, pr, kw, geom.stride[1], geom.dilation[1])
    cols = xp.window_columns(_to_chwn(xp, x, geom.pad), (kh, kw), geom.stride, geom.dilation, (Ho, Wo))
    G = geom.groups
    return xp.reshape(cols, (G, (C // G) * kh * kw, Ho * Wo * N)), Ho, Wo


def _grouped(xp, y, G):
    """y (N, O, Ho, Wo) -> (G, O/G, Ho*Wo*N) (free when y's memory is already (O, Ho, Wo, N))."""
    N, O, Ho, Wo = y.shape
    return xp.reshape(xp.permute_dims(y, (1, 2, 3, 0)), (G, O // G, Ho * Wo * N))


# --- the three array bodies -----------------------------------------------------------------------
def conv_fwd(xp, x, w, b=None, *, geom):
    """x (N, C, H, W), w (O, C/G, kh, kw), b (O,) -> (N, O, Ho, Wo)."""
    O, _, kh, kw = w.shape
    G = geom.groups
    cols, Ho, Wo = _columns(xp, x, kh, kw, geom)
    y = xp.matmul(xp.reshape(w, (G, O // G, -1)), cols)
    del cols
    if b is not None:      # in place on the fresh product, while it is contiguous
        y += xp.reshape(b, (G, O // G, 1))
    return _from_chwn(xp, xp.reshape(y, (O, Ho, Wo, x.shape[0])))


def conv_t_fwd(xp, y, w, b=None, *, geom, hw):
    """The adjoint of conv in x: y (N, O, Ho, Wo), w (O, C/G, kh, kw) -> (N, C, H, W), (H, W) = hw.
    Columns of the result (W^T @ y) are slice-added into the padded input over the kernel offsets."""
    O, Cg, kh, kw = w.shape
    N, _, Ho, Wo = y.shape
    G = geom.groups
    H, W = hw
    pt, pb, pl, pr = geom.pad
    cols = xp.matmul(xp.matrix_transpose(xp.reshape(w, (G, O // G, Cg * kh * kw))), _grouped(xp, y, G))
    cols = xp.reshape(cols, (G * Cg, kh * kw, Ho, Wo, N))
    xpad = xp.zeros((G * Cg, H + pt + pb, W + pl + pr, N), dtype=cols.dtype)
    for k, (si, sj) in enumerate(_offsets(kh, kw, geom, Ho, Wo)):
        xpad[:, si, sj, :] += cols[:, k, ...]
    del cols
    x = xpad[:, pt:pt + H, pl:pl + W, :]
    if b is not None:
        x += xp.reshape(b, (G * Cg, 1, 1, 1))
    return _from_chwn(xp, x)


def conv_w_fwd(xp, x, y, *, geom, ksize):
    """The adjoint of conv in w: x (N, C, H, W), y (N, O, Ho, Wo) -> (O, C/G, kh, kw)."""
    kh, kw = ksize
    N, C, H, W = x.shape
    O = y.shape[1]
    G = geom.groups
    cols, _, _ = _columns(xp, x, kh, kw, geom)
    gw = xp.matmul(_grouped(xp, y, G), xp.matrix_transpose(cols))
    return xp.reshape(gw, (O, C // G, kh, kw))


# --- primitives -----------------------------------------------------------------------------------
def _call(xp, prim, args, params):
    """In a VJP: the array body on arrays (first order), `apply` on Tensors (create_graph)."""
    if isinstance(args[0], Tensor):
        # (under create_graph the engine hands residual/param arrays over as constant Tensors)
        params = {k: v.array if isinstance(v, Tensor) else v for k, v in params.items()}
        return apply(prim, args, params)
    return prim.fwd(xp, *args, **params)


def _bias_grad(c, g):
    return c.xp.sum(g, axis=(0, 2, 3)) if len(c.needs) > 2 and c.needs[2] else None


def _conv_vjp(c, g):
    x, w = c.ins[0], c.ins[1]
    geom = c.p["geom"]
    gx = gw = None
    if c.needs[1]:   # first, so its column buffer is freed before conv_t makes one
        gw = _call(c.xp, conv_w_p, (x, g), {"geom": geom, "ksize": tuple(w.shape[2:])})
    if c.needs[0]:
        gx = _call(c.xp, conv_t_p, (g, w), {"geom": geom, "hw": tuple(x.shape[2:])})
    return (gx, gw) if len(c.needs) == 2 else (gx, gw, _bias_grad(c, g))


def _conv_t_vjp(c, g):
    y, w = c.ins[0], c.ins[1]
    geom = c.p["geom"]
    gy = gw = None
    if c.needs[1]:
        gw = _call(c.xp, conv_w_p, (g, y), {"geom": geom, "ksize": tuple(w.shape[2:])})
    if c.needs[0]:
        gy = _call(c.xp, conv_p, (g, w), {"geom": geom})
    return (gy, gw) if len(c.needs) == 2 else (gy, gw, _bias_grad(c, g))


def _conv_w_vjp(c, g):
    x, y = c.ins
    geom = c.p["geom"]
    gx = gy = None
    if c.needs[0]:
        gx = _call(c.xp, conv_t_p, (y, g), {"geom": geom, "hw": tuple(x.shape[2:])})
    if c.needs[1]:
        gy = _call(c.xp, conv_p, (x, g), {"geom": geom})
    return gx, gy


conv_p = Primitive("conv2d", conv_fwd, _conv_vjp, save="in")
conv_t_p = Primitive("conv_transpose2d", conv_t_fwd, _conv_t_vjp, save="in")
conv_w_p = Primitive("conv2d_weight_grad", conv_w_fwd, _conv_w_vjp, save="in")


# --- public convolution functions -----------------------------------------------------------------
def _pair(v, name, op):
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair, got {v}")
    return v


def _check_conv_args(op, x, w, b, groups, weight_in_axis):
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise TypeError(f"{op}: input and weight must be tensors")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected input (N, C, H, W) and a 4-D weight, got {x.shape} and {w.shape}")
    if x.xp is not w.xp or (b is not None and b.xp is not x.xp):
        from .._primitive import _device_mismatch
        _device_mismatch(conv_p, (x, w) + ((b,) if b is not None else ()))
    if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
        raise TypeError(f"{op}: input ({x.dtype}), weight ({w.dtype}) and bias "
                        f"({None if b is None else b.dtype}) must share one dtype; cast with .to(dtype)")
    if groups < 1 or x.shape[1] % groups:
        raise ValueError(f"{op}: input channels {x.shape[1]} are not divisible by groups={groups}")
    return x.shape[1]


def _resolve_padding(op, padding, ksize, stride, dilation):
    """int / pair / "valid" / "same" -> (top, bottom, left, right), as PyTorch ("same": the extra
    pixel of an even kernel goes at the bottom/right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
        out = []
        for k, d in zip(ksize, dilation):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    ph, pw = _pair(padding, "padding", op)
    if ph < 0 or pw < 0:
        raise ValueError(f"{op}: negative padding {padding}")
    return (ph, ph, pw, pw)


def _batched(x, want, op):
    """Accept an unbatched input (one dim fewer), as PyTorch does: returns (x, was_unbatched)."""
    if isinstance(x, Tensor) and x.ndim == want - 1:
        from .shape import unsqueeze
        return unsqueeze(x, 0), True
    return x, False


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """2-D convolution (cross-correlation, as PyTorch).

    input (N, C, H, W) or (C, H, W); weight (O, C/groups, kh, kw); bias (O,).
    padding: int, (ph, pw), "valid" or "same" (stride 1). Returns (N, O, Ho, Wo) with
    Ho = (H + 2 ph - dh (kh - 1) - 1) // sh + 1.
    """
    x, unb = _batched(input, 4, "conv2d")
    groups = int(groups)
    C = _check_conv_args("conv2d", x, weight, bias, groups, 1)
    O, Cg, kh, kw = weight.shape
    if Cg * groups != C or O % groups:
        raise ValueError(f"conv2d: weight {weight.shape} does not fit input {x.shape} with groups={groups} "
                         f"(expected weight (O, {C // groups}, kh, kw) with O divisible by {groups})")
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"conv2d: bias shape {bias.shape}, expected ({O},)")
    stride = _pair(stride, "stride", "conv2d")
    dilation = _pair(dilation, "dilation", "conv2d")
    pad = _resolve_padding("conv2d", padding, (kh, kw), stride, dilation)
    geom = Geom(stride, pad, dilation, groups)
    H, W = x.shape[2:]
    Ho = _out_size(H, pad[0], pad[1], kh, stride[0], dilation[0])
    Wo = _out_size(W, pad[2], pad[3], kw, stride[1], dilation[1])
    if Ho < 1 or Wo < 1 or min(stride + dilation) < 1:
        raise ValueError(f"conv2d: input {x.shape} is too small for kernel {(kh, kw)} with padding {pad}, "
                         f"dilation {dilation}, stride {stride} (output would be {Ho}x{Wo})")
    args = (x, weight) if bias is None else (x, weight, bias)
    y = apply(conv_p, args, {"geom": geom})
    return y[0, ...] if unb else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """1-D convolution: input (N, C, L) or (C, L), weight (O, C/groups, k) -> (N, O, Lo).
    Runs as conv2d over a height of 1."""
    from .shape import unsqueeze, squeeze
    x, unb = _batched(input, 3, "conv1d")
    if x.ndim != 3 or weight.ndim != 3:
        raise ValueError(f"conv1d: expected input (N, C, L) and weight (O, C/groups, k), got {x.shape}, {weight.shape}")
    if isinstance(padding, str):
        pad2 = padding
    else:
        pad2 = (0, int(padding if isinstance(padding, int) else padding[0]))
    one = lambda v: (1, int(v if isinstance(v, int) else v[0]))  # noqa: E731
    y = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias, one(stride), pad2, one(dilation), groups)
    y = squeeze(y, 2)
    return y[0, ...] if unb else y


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """Transposed 2-D convolution (the gradient of conv2d with respect to its input).

    input (N, Cin, H, W); weight (Cin, Cout/groups, kh, kw); bias (Cout,). Output
    Ho = (H - 1) sh - 2 ph + dh (kh - 1) + output_padding + 1 (PyTorch's argument order).
    """
    x, unb = _batched(input, 4, "conv_transpose2d")
    groups = int(groups)
    Cin = _check_conv_args("conv_transpose2d", x, weight, bias, groups, 0)
    I, Cg, kh, kw = weight.shape
    if I != Cin:
        raise ValueError(f"conv_transpose2d: weight {weight.shape} expects {I} input channels, input has {Cin}")
    Cout = Cg * groups
    if bias is not None and bias.shape != (Cout,):
        raise ValueError(f"conv_transpose2d: bias shape {bias.shape}, expected ({Cout},)")
    stride = _pair(stride, "stride", "conv_transpose2d")
    dilation = _pair(dilation, "dilation", "conv_transpose2d")
    if isinstance(padding, str):
        raise ValueError("conv_transpose2d: padding must be an int or a pair (no 'same'/'valid'), as in PyTorch")
    ph, pw = _pair(padding, "padding", "conv_transpose2d")
    oph, opw = _pair(output_padding, "output_padding", "conv_transpose2d")
    if not (0 <= oph < max(stride[0], dilation[0]) and 0 <= opw < max(stride[1], dilation[1])):
        raise ValueError(f"conv_transpose2d: output_padding {(oph, opw)} must be smaller than stride or dilation "
                         f"({stride}, {dilation})")
    H = (x.shape[2] - 1) * stride[0] - 2 * ph + dilation[0] * (kh - 1) + oph + 1
    W = (x.shape[3] - 1) * stride[1] - 2 * pw + dilation[1] * (kw - 1) + opw + 1
    if H < 1 or W < 1:
        raise ValueError(f"conv_transpose2d: output size {H}x{W} is not positive for input {x.shape}")
    geom = Geom(stride, (ph, ph, pw, pw), dilation, groups)
    args = (x, weight) if bias is None else (x, weight, bias)
    y = apply(conv_t_p, args, {"geom": geom, "hw": (H, W)})
    return y[0, ...] if unb else y


# --- pooling --------------------------------------------------------------------------------------
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
    if indices.numel():
        lo, hi = int(xp.to_numpy(xp.min(indices.array))), int(xp.to_numpy(xp.max(indices.array)))
        if lo < 0 or hi >= hwo:
            raise IndexError(f"{op}: indices span [{lo}, {hi}], outside [0, {hwo}) for output planes of "
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


# --- normalisation --------------------------------------------------------------------------------
# One fused primitive serves batch, layer and group norm: y = (x - mean) * rstd over `axes`, with
# the statistics computed once in `normalize` (they are also what batch norm's running averages
# need). Composed from sum/sub/mul/sqrt it would record ~9 nodes and save as many arrays; fused it
# saves x alone. With M elements per statistic and xhat = (x - mean) rstd,
#     dx = rstd * (g - sum(g) / M - xhat * sum(g * xhat) / M)
# (the two sums are the gradients through the mean and through the variance). Under create_graph
# the statistics are recomputed from x as tensors, so second derivatives include their dependence.
def _normalize_fwd(xp, x, *, axes, eps, mean, rstd):
    return (x - mean) * rstd


def _normalize_vjp(c, g):
    xp = c.xp
    axes = c.p["axes"]
    x = c.ins[0]
    M = 1
    for a in axes:
        M *= c.shapes[0][a]
    if isinstance(g, Tensor):
        mean = xp.sum(x, axis=axes, keepdims=True) / M
        d = x - mean
        rstd = 1.0 / xp.sqrt(xp.sum(d * d, axis=axes, keepdims=True) / M + c.p["eps"])
    else:
        mean, rstd = c.p["mean"], c.p["rstd"]
    xhat = (x - mean) * rstd
    mg = xp.sum(g, axis=axes, keepdims=True) / M
    mgx = xp.sum(g * xhat, axis=axes, keepdims=True) / M
    return ((g - mg - xhat * mgx) * rstd,)


normalize_p = Primitive("normalize", _normalize_fwd, _normalize_vjp, save="in")


def normalize(x, axes, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over `axes` (biased variance, statistics kept as size-1 dims).
    Returns (normalized tensor, mean, biased var) with mean and var as backend arrays (no graph)."""
    if x.dtype.kind != "f":
        raise TypeError(f"normalize: expects a floating-point input, got {x.dtype}")
    xp = x.xp
    axes = tuple(sorted(a % x.ndim for a in axes))
    mean = xp.mean(x.array, axis=axes, keepdims=True)
    d = x.array - mean
    var = xp.mean(d * d, axis=axes, keepdims=True)
    del d
    rstd = 1.0 / xp.sqrt(var + float(eps))
    y = apply(normalize_p, (x,), {"axes": axes, "eps": float(eps), "mean": mean, "rstd": rstd})
    return y, mean, var


# --- embedding lookup -----------------------------------------------------------------------------
# A row gather whose scatter-add backward leaves the padding row's gradient at zero (PyTorch's
# padding_idx); xbp.ops.take_rows without padding.
def _embedding_fwd(xp, w, idx, *, padding_idx):
    rows = xp.take(w, xp.reshape(idx, (-1,)), axis=0)
    return xp.reshape(rows, tuple(idx.shape) + tuple(w.shape[1:]))


def _embedding_vjp(c, g):
    xp = c.xp
    idx = xp.reshape(c.ins[1], (-1,))
    g2 = xp.reshape(g, (idx.shape[0], g.shape[-1]))
    pad = c.p["padding_idx"]
    if pad is not None:
        g2 = xp.where(xp.expand_dims(idx != pad, axis=1), g2, 0.0)
    return (xp.index_add_rows(c.shapes[0][0], idx, g2), None)


embedding_p = Primitive("embedding", _embedding_fwd, _embedding_vjp, save="in")


def embedding(input, weight, padding_idx=None):  # noqa: A002
    """Rows of `weight` (num_embeddings, dim) for the integer ids in `input` (any shape) ->
    (*input.shape, dim). Ids outside [0, num_embeddings) raise IndexError on every device (CuPy
    would wrap them silently). The gradient is a scatter-add; the `padding_idx` row gets none."""
    if not isinstance(input, Tensor) or input.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be an integer tensor, got "
                        f"{input.dtype if isinstance(input, Tensor) else type(input).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {weight.shape}")
    if input.xp is not weight.xp:
        from .._primitive import _device_mismatch
        _device_mismatch(embedding_p, (weight, input))
    n = weight.shape[0]
    if padding_idx is not None:
        padding_idx = int(padding_idx) % n if -n <= int(padding_idx) < n else None
        if padding_idx is None:
            raise ValueError(f"embedding: padding_idx must be within num_embeddings ({n})")
    if input.numel():
        xp = input.xp
        lo, hi = int(xp.to_numpy(xp.min(input.array))), int(xp.to_numpy(xp.max(input.array)))
        if lo < 0 or hi >= n:
            raise IndexError(f"embedding: ids span [{lo}, {hi}], outside [0, {n}) for a table of {n} rows")
    return apply(embedding_p, (weight, input), {"padding_idx": padding_idx})


# --- fused recurrences (RNN / LSTM / GRU layers) --------------------------------------------------
# One primitive runs a whole layer in one direction over precomputed input projections
# xs = x W_ih^T + b_ih (T, B, G*H). Composed from ops, each step would record ~15 nodes whose
# backward allocates a zero (B, G*H) array per gate slice; fused, a step is one GEMM plus the
# pointwise gate maths, the backward walks the steps once, and the hidden-weight gradient is ONE
# GEMM over all steps: dW_hh = dA^T @ H_prev with dA (T*B, G*H), H_prev (T*B, H).
# Output: (T, B, H) of hidden states, or for LSTM (T, B, 2H) = [h_t | c_t].
# The step maths is written once against an array namespace (Array API names that TensorNamespace
# also has), so under create_graph the VJP recomputes the forward from its Tensor inputs and walks
# the same backward on Tensors: gradients of any order.
# Gate equations (PyTorch's): LSTM  i,f,g,o = s(a_i), s(a_f), tanh(a_g), s(a_o); c' = f c + i g;
#                                   h' = o tanh(c')
#                             GRU   r = s(x_r + h_r); z = s(x_z + h_z); n = tanh(x_n + r h_n);
#                                   h' = n + z (h - n)      with h_* = h W_h*^T + b_h*
#                             RNN   h' = tanh(x + h W^T + b) (or relu)
# Backward, with dh, dc flowing in from later steps and the output:
#   LSTM  dc~ = dc + dh o (1 - tanh(c')^2);  da = [dc~ g i(1-i), dc~ c f(1-f), dc~ i (1-g^2),
#         dh tanh(c') o(1-o)];  dc_prev = dc~ f;  dh_prev = da W_hh
#   GRU   dn = dh (1 - z) (1 - n^2); dz = dh (h - n) z(1-z); dr = dn h_n r(1-r);
#         dx = [dr, dz, dn]; dhg = [dr, dz, dn r];  dh_prev = dh z + dhg W_hh
#   RNN   da = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu);  dh_prev = da W_hh
def _sig(xp, a):
    # 1 / (1 + e^-a); the exponent is capped so it cannot overflow (sigmoid(-80) ~ 1.8e-35).
    # (NumPy's exp is about twice as fast as its tanh, so this also beats 0.5 tanh(a/2) + 0.5.)
    return 1.0 / (1.0 + xp.exp(xp.minimum(-a, 80.0)))


def _stack0(xp, items):
    return xp.concat([xp.expand_dims(a, axis=0) for a in items], axis=0)


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _recur_forward(xp, xs, h0, c0, w_hh, b_hh, mode, reverse):
    """-> (hs, cs, acts): per-step states and gate activations, indexed by time."""
    T = xs.shape[0]
    H = h0.shape[-1]
    wT = xp.matrix_transpose(w_hh)
    hs, cs, acts = [None] * T, [None] * T, [None] * T
    h, c = h0, c0
    if b_hh is not None and mode != "GRU":      # (GRU's b_hn sits inside r * (...): keep it per step)
        xs, b_hh = xs + b_hh, None
    for t in _steps(T, reverse):
        hg = xp.matmul(h, wT)
        if b_hh is not None:
            hg = hg + b_hh
        xg = xs[t, ...]
        if mode == "LSTM":
            a = hg
            a += xg                              # (in place on the fresh product)
            S = _sig(xp, a)                      # all four blocks at once; i, f, o are used
            g = xp.tanh(a[:, 2 * H:3 * H])
            c = S[:, H:2 * H] * c + S[:, 0:H] * g
            tc = xp.tanh(c)
            h = S[:, 3 * H:4 * H] * tc
            acts[t] = (S, g, tc)
        elif mode == "GRU":
            r = _sig(xp, xg[:, 0:H] + hg[:, 0:H])
            z = _sig(xp, xg[:, H:2 * H] + hg[:, H:2 * H])
            hn = hg[:, 2 * H:3 * H]
            n = xp.tanh(xg[:, 2 * H:3 * H] + r * hn)
            h = n + z * (h - n)
            acts[t] = (r, z, n, hn)
        elif mode == "RNN_TANH":
            h = xp.tanh(xg + hg)
        else:
            h = xp.maximum(xg + hg, 0.0)
        hs[t], cs[t] = h, c
    return hs, cs, acts


def _recur_fwd(xp, xs, h0, c0, w_hh, b_hh=None, *, mode, reverse):
    hs, cs, acts = _recur_forward(xp, xs, h0, c0, w_hh, b_hh, mode, reverse)
    if mode == "LSTM":
        return xp.concat([_stack0(xp, hs), _stack0(xp, cs)], axis=2), acts
    return _stack0(xp, hs), acts


def _recur_vjp(c, g):
    xp = c.xp
    xs, h0, c0, w_hh, b_hh = c.ins
    mode, reverse = c.p["mode"], c.p["reverse"]
    T, B = xs.shape[0], xs.shape[1]
    H = h0.shape[-1]
    lstm = mode == "LSTM"
    if isinstance(g, Tensor):          # create_graph: states as functions of the Tensor inputs
        hs, cs, acts = _recur_forward(xp, xs, h0, c0, w_hh, b_hh, mode, reverse)
        H_all = _stack0(xp, hs)
    else:
        acts = c.res
        H_all = c.out[:, :, 0:H] if lstm else c.out
        hs = [H_all[t, ...] for t in range(T)]
        cs = [c.out[t, :, H:2 * H] for t in range(T)] if lstm else None
    prev = (lambda t: t + 1) if reverse else (lambda t: t - 1)
    first = T - 1 if reverse else 0
    dh = g[first, :, 0:H] * 0.0 if lstm else g[first, ...] * 0.0
    dc = dh
    dxs, dhg = [None] * T, [None] * T
    for t in _steps(T, not reverse):
        dh = dh + (g[t, :, 0:H] if lstm else g[t, ...])
        h_prev = h0 if t == first else hs[prev(t)]
        if lstm:
            S, gg, tc = acts[t]
            i, f, o = S[:, 0:H], S[:, H:2 * H], S[:, 3 * H:4 * H]
            c_prev = c0 if t == first else cs[prev(t)]
            dct = dc + g[t, :, H:2 * H] + dh * o * (1.0 - tc * tc)
            dS = S * (1.0 - S)                   # sigmoid' of every block; the g block uses tanh'
            deriv = xp.concat([dS[:, 0:2 * H], 1.0 - gg * gg, dS[:, 3 * H:4 * H]], axis=1)
            da = xp.concat([dct * gg, dct * c_prev, dct * i, dh * tc], axis=1) * deriv
            dc = dct * f
            dxs[t] = dhg[t] = da
            dh = xp.matmul(da, w_hh)
        elif mode == "GRU":
            r, z, n, hn = acts[t]
            dn = dh * (1.0 - z) * (1.0 - n * n)
            dr = dn * hn * r * (1.0 - r)
            dz = dh * (h_prev - n) * z * (1.0 - z)
            dxs[t] = xp.concat([dr, dz, dn], axis=1)
            dhg[t] = xp.concat([dr, dz, dn * r], axis=1)
            dh = dh * z + xp.matmul(dhg[t], w_hh)
        else:
            h = hs[t]
            da = dh * (1.0 - h * h) if mode == "RNN_TANH" else xp.where(h > 0, dh, 0.0)
            dxs[t] = dhg[t] = da
            dh = xp.matmul(da, w_hh)
    gxs = _stack0(xp, dxs) if c.needs[0] else None
    gw = gb = None
    if c.needs[3] or (b_hh is not None and c.needs[4]):
        dA = xp.reshape(_stack0(xp, dhg), (T * B, -1))
        if c.needs[3]:
            h0e = xp.expand_dims(h0, axis=0)
            H_prev = (xp.concat([H_all[1:T, ...], h0e], axis=0) if reverse
                      else xp.concat([h0e, H_all[0:T - 1, ...]], axis=0))
            gw = xp.matmul(xp.matrix_transpose(dA), xp.reshape(H_prev, (T * B, H)))
        if b_hh is not None and c.needs[4]:
            gb = xp.sum(dA, axis=0)
    return (gxs, dh if c.needs[1] else None, dc if lstm and c.needs[2] else None, gw, gb)


recurrence_p = Primitive("recurrence", _recur_fwd, _recur_vjp, save="in,out", res=True)


def recurrence(mode, xs, h0, c0, w_hh, b_hh=None, reverse=False):
    """Run one recurrent layer in one direction.

    mode: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU". xs (T, B, G*H): the input projections
    x_t W_ih^T + b_ih of every step; h0 (B, H); c0 (B, H) for LSTM, else None; w_hh (G*H, H);
    b_hh (G*H,) or None. reverse: walk t = T-1 .. 0. Returns (T, B, H) hidden states indexed by
    time, or (T, B, 2H) = [h_t | c_t] for LSTM.
    """
    if mode not in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"):
        raise ValueError(f"recurrence: unknown mode {mode!r}")
    if (mode == "LSTM") != (c0 is not None):
        raise ValueError("recurrence: c0 is needed for (and only for) LSTM")
    return apply(recurrence_p, (xs, h0, c0, w_hh, b_hh), {"mode": mode, "reverse": bool(reverse)})
