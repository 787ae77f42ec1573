"""The functional forms of the layers beyond the core set (re-exported by ``xbp.nn.functional``):
more activations, channel and alpha dropout, local-response norm and RMS norm, distances, padding
modes, resampling (interpolate, pixel shuffle), unfold/fold, and the 1-D / 3-D convolution and
pooling variants.

Everything is composed from existing differentiable ops (elementwise, index_select, slicing,
stack, conv2d / conv_transpose2d, the 2-D pools), so gradients of any order come for free and no
new primitive is needed: the index maps of padding and resampling are computed on the host from
the shapes alone (they do not depend on values) and applied with index_select, whose VJP is the
scatter-add.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _creation, ops
from .._tensor import Tensor, _wrap
from ..ops._util import check_size, dim_index
from ..ops.conv import conv2d, conv_transpose2d
from ..ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d, max_unpool2d

__all__ = [
    "relu6", "hardtanh", "hardswish", "hardsigmoid", "mish", "glu", "softsign", "threshold", "prelu", "selu",
    "celu", "logsigmoid", "tanhshrink", "softshrink", "hardshrink",
    "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
    "local_response_norm", "normalize", "cosine_similarity", "pairwise_distance", "pdist",
    "pad", "interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle", "unfold", "fold", "bilinear",
    "conv3d", "conv_transpose1d", "max_pool1d", "max_pool3d", "avg_pool1d", "adaptive_avg_pool1d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "grid_sample", "affine_grid",
    "rms_norm", "avg_pool3d", "lp_pool1d", "lp_pool2d", "channel_shuffle", "rrelu", "adaptive_avg_pool3d",
    "adaptive_max_pool3d", "conv_transpose3d", "embedding_bag", "max_unpool1d",
]


def _float_tensor(name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected an xbp Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: needs a floating-point tensor, got dtype {x.dtype}")


def _index(values, like):
    """A host int64 index array as a tensor on `like`'s device."""
    return _creation.tensor(np.asarray(values, dtype=np.int64), device=like.device)


# --- activations ----------------------------------------------------------------------------------
def relu6(input, inplace=False):  # noqa: A002
    """min(max(x, 0), 6)."""
    return ops.clamp(input, 0.0, 6.0)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):  # noqa: A002
    """clamp(x, min_val, max_val)."""
    if max_val < min_val:
        raise ValueError(f"hardtanh: max_val ({max_val}) cannot be less than min_val ({min_val})")
    return ops.clamp(input, float(min_val), float(max_val))


def hardsigmoid(input, inplace=False):  # noqa: A002
    """clamp(x / 6 + 1/2, 0, 1)."""
    return ops.clamp(input * (1.0 / 6.0) + 0.5, 0.0, 1.0)


def hardswish(input, inplace=False):  # noqa: A002
    """x * clamp(x + 3, 0, 6) / 6 (MobileNetV3)."""
    return input * (ops.clamp(input + 3.0, 0.0, 6.0) * (1.0 / 6.0))


def mish(input, inplace=False):  # noqa: A002
    """x * tanh(softplus(x))."""
    return input * ops.tanh(ops.softplus(input))


def glu(input, dim=-1, *, axis=None):  # noqa: A002
    """Gated linear unit: a * sigmoid(b) where a, b are the two halves of `dim` (even size)."""
    d = dim_index("glu", dim if axis is None else axis, input.ndim)
    n = input.shape[d]
    if n % 2:
        raise RuntimeError(f"glu: halving dimension must be even, but dimension {dim} is size {n}")
    a, b = ops.split(input, n // 2, d)
    return a * ops.sigmoid(b)


def softsign(input):  # noqa: A002
    """x / (1 + |x|)."""
    return input / (ops.abs(input) + 1.0)


def threshold(input, threshold, value, inplace=False):  # noqa: A002
    """x where x > threshold, else `value`."""
    return ops.where(input > float(threshold), input, float(value))


def prelu(input, weight):  # noqa: A002
    """max(0, x) + weight * min(0, x), weight (1,) or (C,) broadcast over the channel dim 1."""
    if weight.ndim != 1:
        raise ValueError(f"prelu: weight must be 1-D, got shape {weight.shape}")
    C = weight.shape[0]
    if C != 1:
        if input.ndim < 2 or input.shape[1] != C:
            if not (input.ndim == 1 and input.shape[0] == C):
                raise ValueError(f"prelu: weight has {C} values but input {input.shape} has "
                                 f"{input.shape[1] if input.ndim > 1 else input.shape[0]} channels (dim 1)")
        if input.ndim >= 2:
            weight = ops.reshape(weight, (C,) + (1,) * (input.ndim - 2))
    return ops.where(input >= 0.0, input, weight * input)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):  # noqa: A002
    """scale * (max(0, x) + min(0, alpha (exp(x) - 1))), PyTorch's alpha and scale."""
    return ops.elu(input, _SELU_ALPHA) * _SELU_SCALE


def celu(input, alpha=1.0, inplace=False):  # noqa: A002
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1))."""
    alpha = float(alpha)
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return ops.elu(input * (1.0 / alpha), 1.0) * alpha if alpha != 1.0 else ops.elu(input, 1.0)


def logsigmoid(input):  # noqa: A002
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return -ops.softplus(-input)


def tanhshrink(input):  # noqa: A002
    """x - tanh(x)."""
    return input - ops.tanh(input)


def softshrink(input, lambd=0.5):  # noqa: A002
    """x - lambd where x > lambd, x + lambd where x < -lambd, else 0."""
    lambd = float(lambd)
    if lambd < 0:
        raise ValueError(f"softshrink: lambd must be non-negative, got {lambd}")
    return ops.where(input > lambd, input - lambd, ops.where(input < -lambd, input + lambd, 0.0))


def hardshrink(input, lambd=0.5):  # noqa: A002
    """x where |x| > lambd, else 0."""
    return ops.where(ops.abs(input) > float(lambd), input, 0.0)


# --- dropout variants -----------------------------------------------------------------------------
def _check_p(name, p):
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {p}")
    return p


def _channel_dropout(name, input, p, training, spatial):
    """Zero whole channels: one keep/drop draw per (N, C) (or per C unbatched)."""
    p = _check_p(name, p)
    if input.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{name}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D input, got shape "
                         f"{input.shape}")
    if not training or p == 0.0:
        return input
    _float_tensor(name, input)
    if p == 1.0:
        return input * 0.0
    lead = input.shape[:input.ndim - spatial]
    xp = input.xp
    keep = xp.random_uniform(lead + (1,) * spatial, input.dtype) >= p
    return input * _wrap(xp.astype(keep, input.array.dtype) * (1.0 / (1.0 - p)), xp)


def dropout1d(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero whole channels of (N, C, L) / (C, L) with probability p; scale the rest by 1/(1-p)."""
    return _channel_dropout("dropout1d", input, p, training, 1)


def dropout2d(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero whole channels of (N, C, H, W) / (C, H, W) with probability p; scale the rest."""
    return _channel_dropout("dropout2d", input, p, training, 2)


def dropout3d(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero whole channels of (N, C, D, H, W) / (C, D, H, W) with probability p; scale the rest."""
    return _channel_dropout("dropout3d", input, p, training, 3)


def alpha_dropout(input, p=0.5, training=False, inplace=False):  # noqa: A002
    """Dropout for SELU networks: dropped values are set to SELU's negative saturation and the
    result is scaled and shifted to keep zero mean and unit variance (PyTorch's constants):
    out = a * (x * keep + alpha' (1 - keep)) + b with alpha' = -1.7580993408473766,
    a = ((1 - p)(1 + p alpha'^2))^-1/2, b = -a alpha' p."""
    p = _check_p("alpha_dropout", p)
    if not training or p == 0.0:
        return input
    _float_tensor("alpha_dropout", input)
    if p == 1.0:
        return input * 0.0
    alpha = 1.7580993408473766
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    xp = input.xp
    keep = xp.astype(xp.random_uniform(input.shape, input.dtype) >= p, input.array.dtype)
    b = (keep - 1.0) * (alpha * a) + alpha * a * p
    return input * _wrap(keep * a, xp) + _wrap(b, xp)


# --- normalisation and distances -----------------------------------------------------------------
def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):  # noqa: A002
    """x / (k + alpha/size * sum of x^2 over `size` neighbouring channels)^beta, the window
    centred on each channel (size // 2 before, (size - 1) // 2 after, zeros past the edges)."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected input (N, C, *) with 3 or more dims, got {input.shape}")
    size = check_size("local_response_norm", size, "size")
    C = input.shape[1]
    sq = ops.movedim(input * input, 1, -1)
    sq = ops.pad(sq, (size // 2, (size - 1) // 2))
    acc = sq[..., 0:C]
    for i in range(1, size):
        acc = acc + sq[..., i:i + C]
    div = ops.movedim(acc, -1, 1) * (float(alpha) / size) + float(k)
    return input / div ** float(beta)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None, *, axis=None):  # noqa: A002
    """x / max(||x||_p, eps) along `dim` (PyTorch's F.normalize)."""
    if out is not None:
        raise NotImplementedError("normalize: out= is not supported")
    d = dim_index("normalize", dim if axis is None else axis, input.ndim)
    n = ops.norm(input, p, d, keepdim=True)
    return input / ops.clamp(n, min=float(eps))


def cosine_similarity(x1, x2, dim=1, eps=1e-8, *, axis=None):
    """sum(x1 * x2) / (max(||x1||, eps) max(||x2||, eps)) along `dim`, after broadcasting."""
    shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    x1, x2 = ops.broadcast_to(x1, shape), ops.broadcast_to(x2, shape)
    d = dim_index("cosine_similarity", dim if axis is None else axis, len(shape))
    n1 = ops.clamp(ops.norm(x1, 2, d, keepdim=True), min=float(eps))
    n2 = ops.clamp(ops.norm(x2, 2, d, keepdim=True), min=float(eps))
    return ops.sum((x1 / n1) * (x2 / n2), d)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim (PyTorch adds eps to the difference)."""
    diff = x1 - x2 + float(eps)
    return ops.norm(diff, p, -1 if diff.ndim else None, keepdim=keepdim)


def pdist(input, p=2):  # noqa: A002
    """Distances between every pair of rows of (N, M): the (N(N-1)/2,) upper triangle, row-major."""
    N = input.shape[0]
    i, j = np.triu_indices(N, 1)
    a = ops.index_select(input, 0, _index(i, input))
    b = ops.index_select(input, 0, _index(j, input))
    return ops.norm(a - b, p, -1)


# --- padding ------------------------------------------------------------------------------------
def _pad_index(n, lo, hi, mode, op):
    if mode == "reflect":
        if lo >= n or hi >= n:
            raise ValueError(f"{op}: padding size ({lo}, {hi}) should be less than the corresponding input "
                             f"dimension ({n}) for reflect padding")
        idx = np.arange(-lo, n + hi)
        period = 2 * (n - 1) if n > 1 else 1
        idx = np.abs(idx) % period
        return np.where(idx >= n, period - idx, idx)
    if mode == "replicate":
        if n == 0:
            raise ValueError(f"{op}: cannot replicate-pad an empty dimension")
        return np.clip(np.arange(-lo, n + hi), 0, n - 1)
    if mode == "circular":
        if lo > n or hi > n:
            raise ValueError(f"{op}: padding ({lo}, {hi}) should be at most the input dimension ({n}) for "
                             "circular padding")
        return np.arange(-lo, n + hi) % n
    raise ValueError(f"{op}: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")


def pad(input, pad, mode="constant", value=None):  # noqa: A002
    """Pad the last len(pad)//2 dims; `pad` lists (before, after) pairs from the LAST dim backwards.
    constant: fill with `value` (default 0); reflect: mirror without repeating the edge (pad < size);
    replicate: repeat the edge value; circular: wrap around (pad <= size)."""
    pad = tuple(int(v) for v in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: expected (before, after) pairs for at most {input.ndim} dims, got {pad}")
    if mode == "constant":
        if any(v < 0 for v in pad):        # negative padding crops, as PyTorch
            key = [slice(None)] * input.ndim
            for i in range(len(pad) // 2):
                d = input.ndim - 1 - i
                lo, hi = -min(pad[2 * i], 0), -min(pad[2 * i + 1], 0)
                if lo + hi > input.shape[d]:
                    raise ValueError(f"pad: cropping {lo + hi} from dim {d} of size {input.shape[d]} leaves nothing")
                key[d] = slice(lo, input.shape[d] - hi)
            input = input[tuple(key)]
            pad = tuple(max(v, 0) for v in pad)
        return ops.pad(input, pad, "constant", 0.0 if value is None else value)
    if value not in (None, 0, 0.0):
        raise ValueError(f"pad: value is only used with mode='constant' (got mode={mode!r}, value={value})")
    if any(v < 0 for v in pad):
        raise ValueError(f"pad: negative padding (cropping) {pad} is not supported with mode={mode!r}")
    y = input
    for i in range(len(pad) // 2):
        d = input.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if lo or hi:
            y = ops.index_select(y, d, _index(_pad_index(input.shape[d], lo, hi, mode, "pad"), input))
    return y


# --- resampling -----------------------------------------------------------------------------------
def _spatial_sizes(op, x, size, scale_factor, nsp):
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    ins = x.shape[2:]
    if size is not None:
        out = tuple(size) if isinstance(size, (list, tuple)) else (size,) * nsp
        if len(out) != nsp:
            raise ValueError(f"{op}: size {size} must have {nsp} entries for input {x.shape}")
        return tuple(check_size(op, s, "size") for s in out), [None] * nsp
    sf = tuple(scale_factor) if isinstance(scale_factor, (list, tuple)) else (scale_factor,) * nsp
    if len(sf) != nsp:
        raise ValueError(f"{op}: scale_factor {scale_factor} must have {nsp} entries for input {x.shape}")
    return tuple(int(math.floor(n * float(s))) for n, s in zip(ins, sf)), [float(s) for s in sf]


def _scale(n_in, n_out, sf, align_corners):
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / sf if sf is not None else n_in / n_out


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,  # noqa: A002,C901
                recompute_scale_factor=None, antialias=False):
    """Resample the spatial dims of (N, C, *spatial) to `size` or `scale_factor` times, as PyTorch.

    mode: 'nearest' (src = floor(dst * scale)), 'nearest-exact' (floor((dst + 0.5) scale)),
    'area' (adaptive average pooling), 'bicubic' (4-D; Keys' cubic convolution, A = -0.75),
    'linear' (3-D input), 'bilinear' (4-D), 'trilinear' (5-D): separable linear interpolation with
    src = (dst + 0.5) scale - 0.5 clamped at 0, or src = dst (in - 1)/(out - 1) with align_corners.
    scale = in/out, or 1/scale_factor when scale_factor is given and recompute_scale_factor is not
    True."""
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if input.ndim < 3:
        raise ValueError(f"interpolate: expected input (N, C, *spatial), got shape {input.shape}")
    nsp = input.ndim - 2
    linear = {"linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}
    if mode in linear:
        if linear[mode] != nsp:
            raise ValueError(f"interpolate: mode {mode!r} needs a {linear[mode] + 2}-D input, got {input.shape}")
    elif mode == "area":                   # PyTorch's area mode is adaptive average pooling
        if align_corners is not None:
            raise ValueError("interpolate: align_corners only applies to the linear modes (linear, bilinear, "
                             "trilinear)")
        out_sizes, _ = _spatial_sizes("interpolate", input, size, scale_factor, nsp)
        pool = {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}.get(nsp)
        if pool is None:
            raise ValueError(f"interpolate: mode 'area' needs a 3-D to 5-D input, got {input.shape}")
        return pool(input, out_sizes if nsp > 1 else out_sizes[0])
    elif mode in ("nearest", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("interpolate: align_corners only applies to the linear modes (linear, bilinear, "
                             "trilinear)")
    else:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; use nearest, nearest-exact, "
                                  "linear, bilinear, bicubic, trilinear or area")
    out_sizes, sfs = _spatial_sizes("interpolate", input, size, scale_factor, nsp)
    if recompute_scale_factor:
        sfs = [None] * nsp
    y = input
    for i, (n_in, n_out, sf) in enumerate(zip(input.shape[2:], out_sizes, sfs)):
        d = 2 + i
        dst = np.arange(n_out, dtype=np.float64)
        if mode in ("nearest", "nearest-exact"):
            s = _scale(n_in, n_out, sf, False)
            src = np.floor(dst * s) if mode == "nearest" else np.floor((dst + 0.5) * s)
            y = ops.index_select(y, d, _index(np.minimum(src.astype(np.int64), n_in - 1), input))
            continue
        s = _scale(n_in, n_out, sf, bool(align_corners))
        if mode == "bicubic":
            y = _cubic_along(y, d, n_in, dst * s if align_corners else (dst + 0.5) * s - 0.5, input)
            continue
        src = dst * s if align_corners else np.maximum((dst + 0.5) * s - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam = (src - i0).reshape((n_out,) + (1,) * (input.ndim - d - 1))
        lam_t = _creation.tensor(lam.astype(input.dtype), device=input.device)
        y0 = ops.index_select(y, d, _index(i0, input))
        y1 = ops.index_select(y, d, _index(i1, input))
        y = y0 + (y1 - y0) * lam_t
    return y


def _cubic_along(y, d, n_in, src, like):
    """Cubic convolution (Keys, A = -0.75, PyTorch's) along dim d at source positions `src`: four
    taps at floor(src) - 1 .. + 2, indices clamped to the edge (no clamp of src itself)."""
    A = -0.75
    i0 = np.floor(src).astype(np.int64)
    t = src - i0

    def near(x):        # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):         # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    weights = (far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t))
    shape = (src.shape[0],) + (1,) * (y.ndim - d - 1)
    out = None
    for k, w in zip((-1, 0, 1, 2), weights):
        idx = np.clip(i0 + k, 0, n_in - 1)
        term = ops.index_select(y, d, _index(idx, like)) * _creation.tensor(
            w.reshape(shape).astype(like.dtype), device=like.device)
        out = term if out is None else out + term
    return out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):  # noqa: A002
    """The deprecated name of interpolate."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def pixel_shuffle(input, upscale_factor):  # noqa: A002
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    r = check_size("pixel_shuffle", upscale_factor, "upscale_factor")
    *lead, C, H, W = input.shape
    if C % (r * r):
        raise RuntimeError(f"pixel_shuffle: channels {C} are not divisible by upscale_factor^2 = {r * r}")
    n = len(lead)
    y = ops.reshape(input, tuple(lead) + (C // (r * r), r, r, H, W))
    y = ops.permute(y, tuple(range(n)) + (n, n + 3, n + 1, n + 4, n + 2))
    return ops.reshape(y, tuple(lead) + (C // (r * r), H * r, W * r))


def pixel_unshuffle(input, downscale_factor):  # noqa: A002
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of pixel_shuffle."""
    r = check_size("pixel_unshuffle", downscale_factor, "downscale_factor")
    *lead, C, H, W = input.shape
    if H % r or W % r:
        raise RuntimeError(f"pixel_unshuffle: height {H} and width {W} must be divisible by {r}")
    n = len(lead)
    y = ops.reshape(input, tuple(lead) + (C, H // r, r, W // r, r))
    y = ops.permute(y, tuple(range(n)) + (n, n + 2, n + 4, n + 1, n + 3))
    return ops.reshape(y, tuple(lead) + (C * r * r, H // r, W // r))


# --- unfold / fold as convolutions with one-hot kernels ------------------------------------------
def _pair(v, name):
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v}")
        return tuple(int(a) for a in v)
    return (int(v), int(v))


def _one_hot_kernels(kh, kw, like):
    """(kh*kw, 1, kh, kw): kernel i picks offset i, so a convolution with them lists the windows."""
    return _creation.tensor(np.eye(kh * kw).reshape(kh * kw, 1, kh, kw).astype(like.dtype), device=like.device)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):  # noqa: A002
    """im2col: (N, C, H, W) -> (N, C kh kw, L), L the number of window positions; column entries are
    channel-major then kernel row, kernel column, as PyTorch."""
    unb = input.ndim == 3
    x = ops.unsqueeze(input, 0) if unb else input
    if x.ndim != 4:
        raise ValueError(f"unfold: expected input (N, C, H, W) or (C, H, W), got {input.shape}")
    kh, kw = _pair(kernel_size, "kernel_size")
    N, C, H, W = x.shape
    cols = conv2d(ops.reshape(x, (N * C, 1, H, W)), _one_hot_kernels(kh, kw, x), None, _pair(stride, "stride"),
                  _pair(padding, "padding"), _pair(dilation, "dilation"))
    y = ops.reshape(cols, (N, C * kh * kw, cols.shape[2] * cols.shape[3]))
    return y[0, ...] if unb else y


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):  # noqa: A002
    """col2im, the adjoint of unfold: (N, C kh kw, L) -> (N, C, H, W) = output_size, summing
    overlapping window entries."""
    unb = input.ndim == 2
    x = ops.unsqueeze(input, 0) if unb else input
    if x.ndim != 3:
        raise ValueError(f"fold: expected input (N, C*kh*kw, L) or (C*kh*kw, L), got {input.shape}")
    kh, kw = _pair(kernel_size, "kernel_size")
    H, W = _pair(output_size, "output_size")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    N, CK, L = x.shape
    if CK % (kh * kw) or L != Ho * Wo:
        raise RuntimeError(f"fold: input {input.shape} does not match kernel {kh}x{kw} with output_size {(H, W)} "
                           f"(expected C*{kh * kw} rows and {Ho}*{Wo} = {Ho * Wo} blocks)")
    C = CK // (kh * kw)
    base_h = (Ho - 1) * sh - 2 * ph + dh * (kh - 1) + 1
    base_w = (Wo - 1) * sw - 2 * pw + dw * (kw - 1) + 1
    y = conv_transpose2d(ops.reshape(x, (N * C, kh * kw, Ho, Wo)), _one_hot_kernels(kh, kw, x), None, (sh, sw),
                         (ph, pw), (H - base_h, W - base_w), 1, (dh, dw))
    y = ops.reshape(y, (N, C, H, W))
    return y[0, ...] if unb else y


def bilinear(input1, input2, weight, bias=None):
    """y_o = x1^T A_o x2 + b_o: input1 (*, in1), input2 (*, in2), weight (out, in1, in2) -> (*, out)."""
    O, I1, I2 = weight.shape
    if input1.shape[-1] != I1 or input2.shape[-1] != I2 or input1.shape[:-1] != input2.shape[:-1]:
        raise ValueError(f"bilinear: inputs {input1.shape} and {input2.shape} do not match weight {weight.shape} "
                         "(expected (*, in1) and (*, in2) with the same leading dims)")
    lead = input1.shape[:-1]
    a = ops.reshape(input1, (-1, I1))
    b = ops.reshape(input2, (-1, I2))
    t = ops.matmul(a, ops.reshape(ops.permute(weight, (1, 0, 2)), (I1, O * I2)))       # (B, O*in2)
    y = ops.sum(ops.reshape(t, (-1, O, I2)) * ops.unsqueeze(b, 1), -1)
    if bias is not None:
        y = y + bias
    return ops.reshape(y, lead + (O,))


# --- 1-D and 3-D variants of convolution and pooling --------------------------------------------
def _triple(v, name):
    if isinstance(v, (list, tuple)):
        if len(v) != 3:
            raise ValueError(f"{name} must be an int or a triple, got {v}")
        return tuple(int(a) for a in v)
    return (int(v),) * 3


def _single(v):
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """3-D convolution: input (N, C, D, H, W) or unbatched, weight (O, C/groups, kd, kh, kw) ->
    (N, O, Do, Ho, Wo). Runs as a sum over the kd depth offsets of 2-D convolutions of depth
    slices (each a conv2d over the (H, W) planes, batched over output depths)."""
    unb = input.ndim == 4
    x = ops.unsqueeze(input, 0) if unb else input
    if x.ndim != 5 or weight.ndim != 5:
        raise ValueError(f"conv3d: expected input (N, C, D, H, W) and weight (O, C/groups, kd, kh, kw), got "
                         f"{input.shape} and {weight.shape}")
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            k = weight.shape[2:]
            dl = _triple(dilation, "dilation")
            tot = [d * (kk - 1) for d, kk in zip(dl, k)]
            lo = [t // 2 for t in tot]
            x = ops.pad(x, tuple(v for i in (2, 1, 0) for v in (lo[i], tot[i] - lo[i])))
            padding = 0
        else:
            raise ValueError(f"conv3d: padding must be 'same', 'valid', an int or a triple, got {padding!r}")
    (sd, sh, sw), (pd, ph, pw), (dd, dh, dw) = (_triple(stride, "stride"), _triple(padding, "padding"),
                                                 _triple(dilation, "dilation"))
    if pd:
        x = ops.pad(x, (0, 0, 0, 0, pd, pd))
    N, C, D, H, W = x.shape
    O, Cg, kd = weight.shape[0], weight.shape[1], weight.shape[2]
    if C != Cg * groups:
        raise ValueError(f"conv3d: input has {C} channels, weight expects {Cg} x groups {groups}")
    Do = (D - dd * (kd - 1) - 1) // sd + 1
    if Do <= 0:
        raise ValueError(f"conv3d: input depth {D} (padded) is smaller than the dilated kernel depth")
    out = None
    for i in range(kd):
        start = i * dd
        sl = x[:, :, start:start + sd * (Do - 1) + 1:sd, :, :]                  # (N, C, Do, H, W)
        planes = ops.reshape(ops.permute(sl, (0, 2, 1, 3, 4)), (N * Do, C, H, W))
        y = conv2d(planes, weight[:, :, i, :, :], None, (sh, sw), (ph, pw), (dh, dw), groups)
        out = y if out is None else out + y
    Ho, Wo = out.shape[2], out.shape[3]
    out = ops.permute(ops.reshape(out, (N, Do, O, Ho, Wo)), (0, 2, 1, 3, 4))
    if bias is not None:
        out = out + ops.reshape(bias, (O, 1, 1, 1))
    return out[0, ...] if unb else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """Transposed 1-D convolution: input (N, C_in, L), weight (C_in, C_out/groups, k) ->
    (N, C_out, (L - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1); runs as
    conv_transpose2d over a height of 1."""
    unb = input.ndim == 2
    x = ops.unsqueeze(input, 0) if unb else input
    if x.ndim != 3 or weight.ndim != 3:
        raise ValueError(f"conv_transpose1d: expected input (N, C, L) and weight (C_in, C_out/groups, k), got "
                         f"{input.shape} and {weight.shape}")
    y = conv_transpose2d(ops.unsqueeze(x, 2), ops.unsqueeze(weight, 2), bias, (1, _single(stride)),
                         (0, _single(padding)), (0, _single(output_padding)), groups, (1, _single(dilation)))
    y = ops.squeeze(y, 2)
    return y[0, ...] if unb else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """Max over windows of the last dim: (N, C, L) or (C, L) -> (N, C, Lo); runs as max_pool2d."""
    k = _single(kernel_size)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _single(stride)
    r = max_pool2d(ops.unsqueeze(input, -2), (1, k), (1, s), (0, _single(padding)), (1, _single(dilation)),
                   ceil_mode, return_indices)
    if return_indices:
        return ops.squeeze(r[0], -2), ops.squeeze(r[1], -2)
    return ops.squeeze(r, -2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):  # noqa: A002
    """Mean over windows of the last dim: (N, C, L) or (C, L) -> (N, C, Lo); runs as avg_pool2d."""
    k = _single(kernel_size)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _single(stride)
    y = avg_pool2d(ops.unsqueeze(input, -2), (1, k), (1, s), (0, _single(padding)), ceil_mode, count_include_pad)
    return ops.squeeze(y, -2)


def adaptive_avg_pool1d(input, output_size):  # noqa: A002
    """Mean over PyTorch's adaptive bins of the last dim: (N, C, L) -> (N, C, output_size)."""
    y = adaptive_avg_pool2d(ops.unsqueeze(input, -2), (1, _single(output_size)))
    return ops.squeeze(y, -2)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """Max over (kd, kh, kw) windows: (N, C, D, H, W) or (C, D, H, W) -> (N, C, Do, Ho, Wo); a 2-D
    max pool of each depth slice, then the max over the kd depth offsets (padding counts as -inf)."""
    if return_indices or ceil_mode:
        raise NotImplementedError("max_pool3d: return_indices and ceil_mode are not supported")
    unb = input.ndim == 4
    x = ops.unsqueeze(input, 0) if unb else input
    if x.ndim != 5:
        raise ValueError(f"max_pool3d: expected input (N, C, D, H, W) or (C, D, H, W), got {input.shape}")
    (kd, kh, kw) = _triple(kernel_size, "kernel_size")
    (sd, sh, sw) = (kd, kh, kw) if stride is None or (isinstance(stride, (list, tuple)) and not stride) \
        else _triple(stride, "stride")
    (pd, ph, pw), (dd, dh, dw) = _triple(padding, "padding"), _triple(dilation, "dilation")
    if pd:
        x = ops.pad(x, (0, 0, 0, 0, pd, pd), "constant", -math.inf)
    N, C, D, H, W = x.shape
    planes = max_pool2d(ops.reshape(x, (N, C * D, H, W)), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    Ho, Wo = planes.shape[2], planes.shape[3]
    planes = ops.reshape(planes, (N, C, D, Ho, Wo))
    Do = (D - dd * (kd - 1) - 1) // sd + 1
    parts = [planes[:, :, i * dd:i * dd + sd * (Do - 1) + 1:sd, :, :] for i in range(kd)]
    y = ops.amax(ops.stack(parts, 0), 0)
    return y[0, ...] if unb else y


def _adaptive_bins(n_in, n_out):
    return [(math.floor(i * n_in / n_out), math.ceil((i + 1) * n_in / n_out)) for i in range(n_out)]


def adaptive_max_pool2d(input, output_size, return_indices=False):  # noqa: A002
    """Max over PyTorch's adaptive bins: (N, C, H, W) -> (N, C, *output_size); bin i of a dim of
    n spans [floor(i n / out), ceil((i + 1) n / out)). A None in output_size keeps that size."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices is not supported")
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_max_pool2d: expected input (N, C, H, W) or (C, H, W), got {input.shape}")
    H, W = input.shape[-2:]
    oh, ow = output_size if isinstance(output_size, (list, tuple)) else (output_size, output_size)
    oh, ow = H if oh is None else int(oh), W if ow is None else int(ow)
    rows = []
    for h0, h1 in _adaptive_bins(H, oh):
        row = [ops.amax(input[..., h0:h1, w0:w1], (-2, -1)) for w0, w1 in _adaptive_bins(W, ow)]
        rows.append(ops.stack(row, -1))
    return ops.stack(rows, -2)


def adaptive_max_pool1d(input, output_size, return_indices=False):  # noqa: A002
    """Max over PyTorch's adaptive bins of the last dim: (N, C, L) -> (N, C, output_size)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool1d: return_indices is not supported")
    L = input.shape[-1]
    return ops.stack([ops.amax(input[..., a:b], -1) for a, b in _adaptive_bins(L, _single(output_size))], -1)


# --- grid sampling ----------------------------------------------------------------------------------
def _reflect(coord, twice_low, twice_high):
    """PyTorch's reflect_coordinates: fold `coord` into [twice_low / 2, twice_high / 2] by mirroring."""
    if twice_low == twice_high:
        return coord * 0.0
    lo = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    c = ops.abs(coord - lo)
    flips = ops.floor(c.detach() * (1.0 / span))
    extra = c - flips * span                       # fmod for non-negative c, differentiable in c
    even = ops.remainder(flips, 2.0) == 0.0
    return ops.where(even, extra + lo, (span - extra) + lo)


def _source_coord(g, size, padding_mode, align_corners):
    x = ((g + 1.0) * 0.5) * (size - 1) if align_corners else ((g + 1.0) * size - 1.0) * 0.5
    if padding_mode == "border":
        x = ops.clamp(x, 0.0, float(size - 1))
    elif padding_mode == "reflection":
        x = _reflect(x, 0, 2 * (size - 1)) if align_corners else _reflect(x, -1, 2 * size - 1)
        x = ops.clamp(x, 0.0, float(size - 1))
    return x


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):  # noqa: A002
    """Sample input (N, C, H, W) at the points of grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo).

    grid[..., 0] is x (width) and grid[..., 1] is y (height), normalised to [-1, 1]: -1 and 1 are
    the centres of the corner pixels with align_corners, their outer edges without (the default).
    mode 'bilinear' (differentiable in input and grid) or 'nearest' (round half to even, as
    PyTorch); padding_mode 'zeros', 'border' or 'reflection' for points outside."""
    if mode not in ("bilinear", "nearest"):
        raise NotImplementedError(f"grid_sample: mode {mode!r} is not supported; use 'bilinear' or 'nearest'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"grid_sample: padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}")
    if input.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(f"grid_sample: expected input (N, C, H, W) and grid (N, Ho, Wo, 2) with the same N, got "
                         f"{input.shape} and {grid.shape} (5-D volumetric sampling is not supported)")
    ac = bool(align_corners)
    N, C, H, W = input.shape
    Ho, Wo = grid.shape[1], grid.shape[2]
    ix = _source_coord(grid[..., 0], W, padding_mode, ac)
    iy = _source_coord(grid[..., 1], H, padding_mode, ac)
    flat = ops.reshape(input, (N, C, H * W))

    def tap(yi, xi):
        """input at integer (yi, xi) (N, Ho, Wo) float tensors, 0 outside: (N, C, Ho, Wo)."""
        valid = (xi >= 0.0) & (xi <= W - 1.0) & (yi >= 0.0) & (yi <= H - 1.0)
        lin = ops.clamp(yi, 0.0, H - 1.0) * W + ops.clamp(xi, 0.0, W - 1.0)
        idx = ops.astype(ops.reshape(lin, (N, 1, Ho * Wo)), np.int64)
        v = ops.gather(flat, 2, ops.broadcast_to(idx, (N, C, Ho * Wo)))
        v = ops.reshape(v, (N, C, Ho, Wo))
        return ops.where(ops.unsqueeze(valid, 1), v, 0.0)

    if mode == "nearest":
        return tap(ops.round(iy.detach()), ops.round(ix.detach()))
    x0, y0 = ops.floor(ix.detach()), ops.floor(iy.detach())
    wx1, wy1 = ix - x0, iy - y0
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    u = lambda t: ops.unsqueeze(t, 1)  # noqa: E731
    return (tap(y0, x0) * u(wy0 * wx0) + tap(y0, x0 + 1.0) * u(wy0 * wx1)
            + tap(y0 + 1.0, x0) * u(wy1 * wx0) + tap(y0 + 1.0, x0 + 1.0) * u(wy1 * wx1))


def affine_grid(theta, size, align_corners=None):
    """The sampling grid of 2-D affine maps: theta (N, 2, 3), size (N, C, H, W) -> (N, H, W, 2),
    grid = theta @ (x, y, 1) over the normalised pixel centres (PyTorch's convention)."""
    if len(size) != 4:
        raise NotImplementedError(f"affine_grid: only 4-D sizes (N, C, H, W) are supported, got {tuple(size)}")
    N, _, H, W = (int(v) for v in size)
    if theta.shape != (N, 2, 3):
        raise ValueError(f"affine_grid: expected theta of shape ({N}, 2, 3) for size {tuple(size)}, got {theta.shape}")

    def lin(n):
        if n <= 1:
            return np.zeros(max(n, 0))
        v = np.linspace(-1.0, 1.0, n)
        return v if align_corners else v * (n - 1) / n

    xs, ys = np.meshgrid(lin(W), lin(H))
    base = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(1, H * W, 3).astype(theta.dtype)
    b = _creation.tensor(base, device=theta.device)
    return ops.reshape(ops.matmul(b, ops.swapaxes(theta, 1, 2)), (N, H, W, 2))


# --- more: RMS norm, 3-D average pooling, power-average pooling, channel shuffle, RReLU ------------
def rms_norm(input, normalized_shape, weight=None, eps=None):  # noqa: A002
    """x / sqrt(mean(x^2 over the last len(normalized_shape) dims) + eps) * weight; eps defaults
    to the dtype's machine epsilon, as PyTorch."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int(v) for v in normalized_shape)
    k = len(normalized_shape)
    if tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise ValueError(f"rms_norm: input shape {input.shape} does not end in normalized_shape {normalized_shape}")
    e = float(np.finfo(input.dtype).eps) if eps is None else float(eps)
    axes = tuple(range(input.ndim - k, input.ndim))
    y = input * ops.rsqrt(ops.mean(input * input, axes, keepdim=True) + e)
    return y * weight if weight is not None else y


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """Mean over (kd, kh, kw) windows: (N, C, D, H, W) or unbatched -> (N, C, Do, Ho, Wo): 2-D window
    sums of each depth slice, summed over the kd depth offsets, over PyTorch's divisor."""
    if ceil_mode:
        raise NotImplementedError("avg_pool3d: ceil_mode is not supported")
    unb = input.ndim == 4
    x = ops.unsqueeze(input, 0) if unb else input
    if x.ndim != 5:
        raise ValueError(f"avg_pool3d: expected input (N, C, D, H, W) or (C, D, H, W), got {input.shape}")
    k = _triple(kernel_size, "kernel_size")
    st = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _triple(stride, "stride")
    pd = _triple(padding, "padding")

    def window_sums(t):
        if pd[0]:
            t = ops.pad(t, (0, 0, 0, 0, pd[0], pd[0]))
        N, C, D, H, W = t.shape
        planes = avg_pool2d(ops.reshape(t, (N, C * D, H, W)), k[1:], st[1:], pd[1:], False, True, 1)
        planes = ops.reshape(planes, (N, C, D) + tuple(planes.shape[2:]))
        Do = (D - k[0]) // st[0] + 1
        out = None
        for i in range(k[0]):
            part = planes[:, :, i:i + st[0] * (Do - 1) + 1:st[0], :, :]
            out = part if out is None else out + part
        return out

    sums = window_sums(x)
    if divisor_override:
        y = sums * (1.0 / float(divisor_override))
    elif count_include_pad:
        y = sums * (1.0 / math.prod(k))
    else:
        ones = _creation.ones(1, 1, *x.shape[2:], dtype=x.dtype, device=x.device)
        y = sums / window_sums(ones)
    return y[0, ...] if unb else y


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):  # noqa: A002
    """(sum over windows of x^p)^(1/p) along the last dim, as PyTorch (sign(s) relu(|s|)^(1/p))."""
    k = _single(kernel_size)
    s = avg_pool1d(input ** float(norm_type), k, stride, 0, ceil_mode) * float(k)
    return ops.sign(s) * ops.relu(ops.abs(s)) ** (1.0 / float(norm_type))


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):  # noqa: A002
    """(sum over (kh, kw) windows of x^p)^(1/p)."""
    kh, kw = _pair(kernel_size, "kernel_size")
    s = avg_pool2d(input ** float(norm_type), (kh, kw), stride if stride is not None else (kh, kw), 0,
                   ceil_mode) * float(kh * kw)
    return ops.sign(s) * ops.relu(ops.abs(s)) ** (1.0 / float(norm_type))


def channel_shuffle(input, groups):  # noqa: A002
    """(N, g * c, *) -> (N, c * g, *): channel i of group j moves to position i * g + j."""
    g = check_size("channel_shuffle", groups, "groups")
    N, C = input.shape[0], input.shape[1]
    if C % g:
        raise ValueError(f"channel_shuffle: number of channels ({C}) must be divisible by groups ({g})")
    rest = tuple(input.shape[2:])
    y = ops.reshape(input, (N, g, C // g) + rest)
    return ops.reshape(ops.swapaxes(y, 1, 2), (N, C) + rest)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):  # noqa: A002
    """Randomized leaky ReLU: negative values times a slope drawn from U(lower, upper) per element
    in training; the fixed slope (lower + upper) / 2 otherwise."""
    lower, upper = float(lower), float(upper)
    if not training:
        return ops.leaky_relu(input, (lower + upper) / 2)
    _float_tensor("rrelu", input)
    xp = input.xp
    a = _wrap(xp.random_uniform(input.shape, input.dtype, lower, upper), xp)
    return ops.where(input >= 0.0, input, input * a)


def _adaptive_along(x, axis, n_out, reduce):
    """Adaptive pooling along one axis: output i reduces PyTorch's bin i of that axis. A box
    mean (or max) is the mean (max) of means (maxima) along each axis, so N-D adaptive pooling is
    this, once per spatial axis."""
    n = x.shape[axis]
    parts = []
    for a, b in _adaptive_bins(n, n_out):
        sl = [slice(None)] * x.ndim
        sl[axis] = slice(a, b)
        parts.append(reduce(x[tuple(sl)], axis))
    return ops.stack(parts, axis)


def _adaptive_3d(name, input, output_size, reduce):
    if input.ndim not in (4, 5):
        raise ValueError(f"{name}: expected input (N, C, D, H, W) or (C, D, H, W), got {input.shape}")
    sizes = tuple(output_size) if isinstance(output_size, (list, tuple)) else (output_size,) * 3
    if len(sizes) != 3:
        raise ValueError(f"{name}: output_size must be an int or a triple, got {output_size}")
    y = input
    for i, o in enumerate(sizes):
        axis = input.ndim - 3 + i
        y = _adaptive_along(y, axis, input.shape[axis] if o is None else int(o), reduce)
    return y


def adaptive_avg_pool3d(input, output_size):  # noqa: A002
    """Mean over PyTorch's adaptive bins: (N, C, D, H, W) -> (N, C, *output_size)."""
    return _adaptive_3d("adaptive_avg_pool3d", input, output_size, lambda t, ax: ops.mean(t, ax))


def adaptive_max_pool3d(input, output_size, return_indices=False):  # noqa: A002
    """Max over PyTorch's adaptive bins: (N, C, D, H, W) -> (N, C, *output_size)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool3d: return_indices is not supported")
    return _adaptive_3d("adaptive_max_pool3d", input, output_size, lambda t, ax: ops.amax(t, ax))


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """Transposed 3-D convolution: input (N, C_in, D, H, W), weight (C_in, C_out/groups, kd, kh, kw)
    -> (N, C_out, D_out, H_out, W_out), D_out = (D - 1) stride - 2 padding + dilation (kd - 1) +
    output_padding + 1 (likewise H, W). The adjoint of conv3d's depth decomposition: each depth
    offset's 2-D transposed convolution of every input plane, placed at depth stride * d + offset."""
    unb = input.ndim == 4
    x = ops.unsqueeze(input, 0) if unb else input
    if x.ndim != 5 or weight.ndim != 5:
        raise ValueError(f"conv_transpose3d: expected input (N, C, D, H, W) and weight (C_in, C_out/groups, kd, kh, kw), "
                         f"got {input.shape} and {weight.shape}")
    (sd, sh, sw), (pd, ph, pw) = _triple(stride, "stride"), _triple(padding, "padding")
    (od, oh, ow), (dd, dh, dw) = _triple(output_padding, "output_padding"), _triple(dilation, "dilation")
    N, C, D, H, W = x.shape
    kd = weight.shape[2]
    planes = ops.reshape(ops.permute(x, (0, 2, 1, 3, 4)), (N * D, C, H, W))
    full = (D - 1) * sd + dd * (kd - 1) + 1 + od
    out = None
    for i in range(kd):
        z = conv_transpose2d(planes, weight[:, :, i, :, :], None, (sh, sw), (ph, pw), (oh, ow), groups, (dh, dw))
        Co, Ho, Wo = z.shape[1], z.shape[2], z.shape[3]
        z = ops.reshape(z, (N, D, Co, Ho, Wo))
        if sd > 1:      # input depth d lands at sd * d: interleave sd - 1 zero planes
            gap = _creation.zeros(N, D, sd - 1, Co, Ho, Wo, dtype=z.dtype, device=z.device)
            z = ops.reshape(ops.cat([ops.unsqueeze(z, 2), gap], 2), (N, D * sd, Co, Ho, Wo))
            z = z[:, 0:(D - 1) * sd + 1]
        lo = i * dd
        z = ops.pad(z, (0, 0, 0, 0, 0, 0, lo, full - lo - z.shape[1]))
        out = z if out is None else out + z
    out = ops.permute(out[:, pd:full - pd], (0, 2, 1, 3, 4))
    if bias is not None:
        out = out + ops.reshape(bias, (-1, 1, 1, 1))
    return out[0, ...] if unb else out


# --- bags of embeddings ---------------------------------------------------------------------------
def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False,  # noqa: A002
                  mode="mean", sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sum, mean or max of the embeddings of each bag: input (B, N) (one bag per row) or 1-D ids with
    offsets (B,) (bag b is input[offsets[b]:offsets[b+1]]; include_last_offset: offsets has B + 1
    entries) -> (B, dim). padding_idx entries are left out (and not counted by the mean); an empty
    bag gives zeros. per_sample_weights (same shape as input) scale the embeddings (mode 'sum')."""
    from ..ops.embedding import embedding as _embedding
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding_bag: max_norm, scale_grad_by_freq and sparse are not supported")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"embedding_bag: mode must be 'sum', 'mean' or 'max', got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None; only mode='sum' supports it, "
                                  f"got mode={mode!r}")
    ids = np.asarray(input.detach().numpy()).astype(np.int64)
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("embedding_bag: offsets must be None when input is 2-D (one bag per row)")
        B, L = ids.shape
        starts = np.arange(0, B * L, L) if L else np.zeros(B, np.int64)
        flat_ids = ids.reshape(-1)
    elif input.ndim == 1:
        if offsets is None:
            raise ValueError("embedding_bag: offsets has to be a 1-D tensor when input is 1-D")
        starts = np.asarray(offsets.detach().numpy() if isinstance(offsets, Tensor) else offsets).astype(np.int64)
        if include_last_offset:
            starts = starts[:-1]
        B = starts.shape[0]
        flat_ids = ids
        if B and (starts[0] != 0 or np.any(np.diff(starts) < 0) or starts[-1] > flat_ids.shape[0]):
            raise ValueError(f"embedding_bag: offsets must start at 0 and be non-decreasing within the input, "
                             f"got {starts.tolist()}")
    else:
        raise ValueError(f"embedding_bag: input has to be 1-D or 2-D, got shape {input.shape}")
    n_items = flat_ids.shape[0]
    bag = np.zeros(n_items, dtype=np.int64)
    if B:
        bag = np.searchsorted(starts, np.arange(n_items), side="right") - 1
    keep = np.ones(n_items, dtype=bool) if padding_idx is None else flat_ids != (padding_idx % weight.shape[0])
    kept = np.nonzero(keep)[0]
    D = weight.shape[1]
    if kept.size == 0:
        return _creation.zeros(B, D, dtype=weight.dtype, device=weight.device) + weight.sum() * 0.0
    emb = _embedding(_index(flat_ids[kept], weight), weight)                       # (K, D)
    if per_sample_weights is not None:
        psw = ops.reshape(per_sample_weights, (-1,))
        emb = emb * ops.unsqueeze(ops.index_select(psw, 0, _index(kept, psw)), 1)
    bag_k = bag[kept]
    if mode == "max":
        rows = []
        for b in range(B):
            sel = np.nonzero(bag_k == b)[0]
            rows.append(ops.amax(ops.index_select(emb, 0, _index(sel, weight)), 0) if sel.size
                        else _creation.zeros(D, dtype=weight.dtype, device=weight.device))
        return ops.stack(rows, 0)
    out = ops.index_add_rows(B, _index(bag_k, weight), emb)
    if mode == "mean":
        counts = np.maximum(np.bincount(bag_k, minlength=B), 1).astype(weight.dtype).reshape(B, 1)
        out = out / _creation.tensor(counts, device=weight.device)
    return out


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):  # noqa: A002
    """The partial inverse of max_pool1d: (N, C, L) and its int64 indices -> (N, C, L_out) zeros with
    each value at its index; L_out = (L - 1) stride - 2 padding + kernel_size unless output_size says."""
    k = _single(kernel_size)
    s = k if stride is None else _single(stride)
    osz = None if output_size is None else (1, tuple(output_size)[-1])
    y = max_unpool2d(ops.unsqueeze(input, -2), ops.unsqueeze(indices, -2), (1, k), (1, s), (0, _single(padding)), osz)
    return ops.squeeze(y, -2)
