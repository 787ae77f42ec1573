"""Convolution primitives (conv, its transpose, its weight gradient), lowered to matrix products
over offset slices; the window geometry here is shared by pooling (`xbp.ops.pooling`).

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
"""
from __future__ import annotations

from .._primitive import Primitive, apply
from .._tensor import Tensor
from ._util import check_size


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
    return xp.padded(xt, ((0, 0), (pt, pb), (pl, pr), (0, 0)), value)


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
    # as (cols @ y^T)^T: both operands run along the long Ho*Wo*N axis, and OpenBLAS does this
    # product ~1.7x faster than y @ cols^T (LeNet's (6, 73728) x (73728, 25): 1.3 ms against 2.1)
    gw = xp.matrix_transpose(xp.matmul(cols, xp.matrix_transpose(_grouped(xp, y, G))))
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
    """An int or a 1-/2-sequence of ints -> (h, w); stride, dilation and kernel_size must be
    positive and padding non-negative (PyTorch's rules), so a 0 is an error, not a ZeroDivisionError."""
    if isinstance(v, (list, tuple)):
        v = tuple(check_size(op, a, name) for a in v)
        if len(v) == 1:
            v = (v[0], v[0])
        if len(v) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair, got {v}")
    else:
        v = check_size(op, v, name)
        v = (v, v)
    low = 0 if name in ("padding", "output_padding") else 1
    if min(v) < low:
        raise ValueError(f"{op}: {name} must be {'non-negative' if low == 0 else 'positive'}, got {v}")
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
