"""Weight initialisation, in place and without recording a graph (PyTorch's ``torch.nn.init``).

Random values come from the tensor's own device generator (``t.xp.random_uniform`` /
``random_normal``), so ``xbp.manual_seed`` makes them reproducible on every device. Each function
returns the tensor it filled.
"""
from __future__ import annotations

import math

from .._random import native_rng
from .._tensor import Tensor, _wrap
from ..autograd import no_grad

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "eye_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "trunc_normal_", "orthogonal_", "sparse_", "dirac_",
]

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for an activation (PyTorch's table): 1 for linear/conv/sigmoid,
    5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu (slope `param`,
    default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; use one of "
                     f"{', '.join(_LINEAR_LIKE)}, tanh, relu, leaky_relu, selu")


def _calculate_fan_in_and_fan_out(tensor: Tensor):
    """fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (weights are
    (out, in, *kernel), as in Linear and Conv)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out cannot be computed for a tensor with fewer than 2 dims "
                         f"(shape {tensor.shape})")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, arr) -> Tensor:
    with no_grad():
        tensor.copy_(_wrap(arr, tensor.xp))
    return tensor


def _float_kind(tensor, name):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected an xbp Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"{name}: needs a floating-point tensor, got dtype {tensor.dtype}")


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with samples from U(a, b) (from `generator`, an xbp.Generator, when given)."""
    _float_kind(tensor, "uniform_")
    rng = native_rng(generator, tensor.xp, "uniform_")
    return _fill(tensor, tensor.xp.random_uniform(tensor.shape, tensor.dtype, float(a), float(b), rng=rng))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with samples from N(mean, std^2) (from `generator`, an xbp.Generator, when given)."""
    _float_kind(tensor, "normal_")
    rng = native_rng(generator, tensor.xp, "normal_")
    return _fill(tensor, tensor.xp.random_normal(tensor.shape, tensor.dtype, float(mean), float(std), rng=rng))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with `val`."""
    with no_grad():
        tensor.fill_(val)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fills `tensor` with zeros in place (without recording it for autograd) and returns it."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fills `tensor` with ones in place (without recording it for autograd) and returns it."""
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: needs a 2-D tensor, got shape {tensor.shape}")
    xp = tensor.xp
    return _fill(tensor, xp.eye(tensor.shape[0], tensor.shape[1], dtype=tensor.array.dtype))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(2.0 / float(fan_in + fan_out)) * math.sqrt(3.0)
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He: U(-bound, bound) with bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)."""
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor      # an empty tensor: nothing to fill (PyTorch warns and returns)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He: N(0, std^2) with std = gain / sqrt(fan)."""
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


# --- second wave: truncated normal, orthogonal, sparse, Dirac ----------------------------------------
def _host_normal(tensor, shape, mean=0.0, std=1.0):
    """Normal samples from the tensor's device generator, as a float64 NumPy array."""
    import numpy as np
    return np.asarray(tensor.xp.to_numpy(tensor.xp.random_normal(shape, np.dtype("float64"), mean, std)),
                      dtype=np.float64)


def _fill_host(tensor, a):
    import numpy as np
    return _fill(tensor, tensor.xp.from_numpy(np.asarray(a).astype(tensor.dtype)))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Fill with N(mean, std^2) samples conditioned on [a, b] (a and b are absolute bounds, as
    PyTorch). Rejection sampling: out-of-range draws are redrawn (from the device's seeded
    generator) until none is left; an interval so far in the tail that 64 rounds do not fill it is
    refused rather than clipped."""
    import numpy as np
    _float_kind(tensor, "trunc_normal_")
    if generator is not None:
        raise NotImplementedError("trunc_normal_: generator= is not supported; seed with xbp.manual_seed")
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    if not a < b:
        raise ValueError(f"trunc_normal_: the interval [a, b] = [{a}, {b}] is empty")
    x = _host_normal(tensor, tensor.shape, mean, std)
    for _ in range(64):
        bad = (x < a) | (x > b)
        if not bad.any():
            return _fill_host(tensor, x)
        x = np.where(bad, _host_normal(tensor, tensor.shape, mean, std), x)
    raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] lies too far in the tail of N({mean}, {std}^2) for "
                     "rejection sampling; move the interval towards the mean")


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix: the Q of the QR decomposition of a normal matrix, with
    signs fixed by R's diagonal (PyTorch's recipe), times `gain`. The tensor is viewed as
    (shape[0], prod(shape[1:])); rows or columns are orthonormal, whichever are fewer."""
    import numpy as np
    _float_kind(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got {tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _host_normal(tensor, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill_host(tensor, (q * float(gain)).reshape(tensor.shape))


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    """Fill a 2-D tensor with N(0, std^2) and zero ceil(sparsity * rows) random rows of each column."""
    import numpy as np
    _float_kind(tensor, "sparse_")
    if tensor.ndim != 2:
        raise ValueError(f"sparse_: only tensors with 2 dimensions are supported, got {tensor.shape}")
    rows, cols = tensor.shape
    x = _host_normal(tensor, (rows, cols), 0.0, float(std))
    num_zeros = int(math.ceil(float(sparsity) * rows))
    order = np.argsort(np.asarray(tensor.xp.to_numpy(tensor.xp.random_uniform((rows, cols), np.dtype("float64")))),
                       axis=0)
    np.put_along_axis(x, order[:num_zeros], 0.0, axis=0)
    return _fill_host(tensor, x)


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight (out, in, *kernel) with the Dirac delta, so the
    convolution keeps its input channels (per group: out channel d of group g sees in channel d
    at the kernel centre)."""
    import numpy as np
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got {tensor.shape}")
    sizes = tensor.shape
    if sizes[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({sizes[0]}) must be divisible by groups ({groups})")
    per = sizes[0] // groups
    x = np.zeros(sizes)
    centre = tuple(k // 2 for k in sizes[2:])
    for g in range(groups):
        for d in range(min(per, sizes[1])):
            x[(g * per + d, d) + centre] = 1.0
    return _fill_host(tensor, x)
