"""Convolution layers: Conv1d, Conv2d, ConvTranspose2d. Parameter shapes and default
initialisation follow PyTorch, so PyTorch state dicts load as they are:

    Conv*d           weight (out, in/groups, *kernel), bias (out,)
    ConvTranspose2d  weight (in, out/groups, kh, kw),  bias (out,)

weight ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in =
weight.shape[1] * prod(kernel), and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""
from __future__ import annotations

import math

from .. import _creation
from . import functional as F
from . import init
from ..ops._util import check_size
from .module import Module
from .parameter import Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d", "Conv3d", "ConvTranspose1d", "ConvTranspose3d"]


def _ntuple(v, n, name):
    if not isinstance(v, (list, tuple)):
        return (check_size("Conv", v, name),) * n
    v = tuple(check_size("Conv", a, name) for a in v)
    if len(v) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {v}")
    return v


class _ConvNd(Module):
    _dims = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", output_padding=0, device=None, dtype=None):
        super().__init__()
        n = self._dims
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must be divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{type(self).__name__}: padding_mode={padding_mode!r}; only 'zeros'")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{type(self).__name__}: padding must be 'same', 'valid', an int or a tuple")
            if padding == "same" and _ntuple(stride, n, "stride") != (1,) * n:
                raise ValueError(f"{type(self).__name__}: padding='same' is not supported for strided convolutions")
        self.in_channels, self.out_channels = check_size("_ConvNd", in_channels, "in_channels"), check_size("_ConvNd", out_channels, "out_channels")
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size")
        self.stride = _ntuple(stride, n, "stride")
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, n, "padding")
        self.dilation = _ntuple(dilation, n, "dilation")
        self.output_padding = _ntuple(output_padding, n, "output_padding")
        self.groups = check_size("_ConvNd", groups, "groups")
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(_creation.empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(_creation.empty(self.out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draws weight and bias as at construction (PyTorch's default): weight from `kaiming_uniform_`
        with a = sqrt(5), bias uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] with
        fan_in = weight.shape[1] * prod(kernel_size)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * self._dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    """1-D convolution: (N, C_in, L) or (C_in, L) -> (N, C_out, L_out)."""
    _dims = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input):
        """`xbp.nn.functional.conv1d` applied with this module's settings:
        ``F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)``."""
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-D convolution: (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out), with
    H_out = (H + 2 padding - dilation (kernel - 1) - 1) // stride + 1."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input):
        """`xbp.nn.functional.conv2d` applied with this module's settings:
        ``F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)``."""
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution: (N, C_in, H, W) -> (N, C_out, H_out, W_out) with
    H_out = (H - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1.
    `output_size` in forward picks output_padding to reach a given size, as PyTorch."""
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError("ConvTranspose2d: padding must be an int or a tuple")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device=device, dtype=dtype)

    def forward(self, input, output_size=None):
        """Transposed 2-D convolution of (N, C_in, H, W) (or unbatched) input. `output_size`, when given,
        picks the output_padding that makes the output that size (ValueError when it is not
        reachable). See `xbp.nn.functional.conv_transpose2d`."""
        op = self.output_padding
        if output_size is not None:
            want = tuple(output_size)[-2:]
            op = []
            for d in range(2):
                n = input.shape[-2 + d]
                base = ((n - 1) * self.stride[d] - 2 * self.padding[d]
                        + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
                extra = want[d] - base
                if not 0 <= extra < max(self.stride[d], self.dilation[d]):
                    top = base + max(self.stride[d], self.dilation[d]) - 1
                    raise ValueError(f"ConvTranspose2d: output_size {tuple(output_size)} is not reachable from input "
                                     f"{input.shape} (sizes {base} to {top})")
                op.append(extra)
            op = tuple(op)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                                   self.dilation)


class Conv3d(_ConvNd):
    """3-D convolution: (N, C_in, D, H, W) or (C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out);
    weight (out, in/groups, kd, kh, kw)."""
    _dims = 3

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input):
        """`xbp.nn.functional.conv3d` applied with this module's settings:
        ``F.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)``."""
        return F.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose1d(_ConvNd):
    """Transposed 1-D convolution: (N, C_in, L) -> (N, C_out, L_out) with
    L_out = (L - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1;
    weight (in, out/groups, k).
    `output_size` in forward picks output_padding to reach a given length, as PyTorch."""
    _dims = 1
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError("ConvTranspose1d: padding must be an int or a tuple")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device=device, dtype=dtype)

    def forward(self, input, output_size=None):
        """Transposed 1-D convolution of (N, C_in, L) (or unbatched) input. `output_size`, when given,
        picks the output_padding that makes the output that length (ValueError when it is not
        reachable). See `xbp.nn.functional.conv_transpose1d`."""
        op = self.output_padding[0]
        if output_size is not None:
            want = tuple(output_size)[-1]
            s, d = self.stride[0], self.dilation[0]
            base = (input.shape[-1] - 1) * s - 2 * self.padding[0] + d * (self.kernel_size[0] - 1) + 1
            op = want - base
            if not 0 <= op < max(s, d):
                raise ValueError(f"ConvTranspose1d: output_size {tuple(output_size)} is not reachable from input "
                                 f"{input.shape} (sizes {base} to {base + max(s, d) - 1})")
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride[0], self.padding[0], op, self.groups,
                                  self.dilation[0])


class ConvTranspose3d(_ConvNd):
    """Transposed 3-D convolution: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out);
    weight (in, out/groups, kd, kh, kw). `output_size` in forward picks output_padding."""
    _dims = 3
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError("ConvTranspose3d: padding must be an int or a tuple")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device=device, dtype=dtype)

    def forward(self, input, output_size=None):
        """Transposed 3-D convolution of (N, C_in, D, H, W) (or unbatched) input. `output_size`, when
        given, picks the output_padding that makes the output that size (ValueError when it is not
        reachable). See `xbp.nn.functional.conv_transpose3d`."""
        op = self.output_padding
        if output_size is not None:
            want = tuple(output_size)[-3:]
            op = []
            for d in range(3):
                s, dl = self.stride[d], self.dilation[d]
                base = ((input.shape[-3 + d] - 1) * s - 2 * self.padding[d] + dl * (self.kernel_size[d] - 1) + 1)
                extra = want[d] - base
                if not 0 <= extra < max(s, dl):
                    raise ValueError(f"ConvTranspose3d: output_size {tuple(output_size)} is not reachable from input "
                                     f"{input.shape}")
                op.append(extra)
            op = tuple(op)
        return F.conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                                  self.dilation)
