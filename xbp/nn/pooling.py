"""Pooling layers: MaxPool2d, MaxUnpool2d, AvgPool2d, AdaptiveAvgPool2d (no parameters; PyTorch's
arguments)."""
from __future__ import annotations

from . import functional as F
from ..ops._util import check_size
from .module import Module

__all__ = ["MaxPool2d", "MaxUnpool2d", "AvgPool2d", "AdaptiveAvgPool2d", "MaxPool1d", "MaxPool3d", "AvgPool1d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveAvgPool1d", "AvgPool3d", "LPPool1d", "LPPool2d",
           "AdaptiveAvgPool3d", "AdaptiveMaxPool3d", "MaxUnpool1d"]


class MaxPool2d(Module):
    """Max over windows: (N, C, H, W) -> (N, C, H_out, W_out); stride defaults to kernel_size.
    return_indices: forward returns (output, int64 indices of the maxima in each (H, W) plane),
    the indices MaxUnpool2d takes."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input):
        """Returns `xbp.nn.functional.max_pool2d` of the inputs, with this module's settings as
        its arguments."""
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                             self.return_indices)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxUnpool2d(Module):
    """The partial inverse of MaxPool2d: forward(input (N, C, H, W), indices, output_size=None) ->
    (N, C, H_out, W_out) zeros with each input value at its index; H_out = (H - 1) stride - 2 padding
    + kernel_size unless output_size says otherwise. stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)

    def forward(self, input, indices, output_size=None):
        """Returns ``F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)``
        (see `xbp.nn.functional.max_unpool2d`)."""
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _pair(v):
    if isinstance(v, (list, tuple)):
        return tuple(check_size("pooling layer", a, "kernel_size/stride/padding") for a in v)
    v = check_size("pooling layer", v, "kernel_size/stride/padding")
    return (v, v)


class AvgPool2d(Module):
    """Mean over windows: (N, C, H, W) -> (N, C, H_out, W_out); stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input):
        """Returns `xbp.nn.functional.avg_pool2d` of the inputs, with this module's settings as
        its arguments."""
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Mean over PyTorch's adaptive bins to a fixed output size: (N, C, H, W) -> (N, C, *output_size)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        """Returns ``F.adaptive_avg_pool2d(input, self.output_size)``
        (see `xbp.nn.functional.adaptive_avg_pool2d`)."""
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"output_size={self.output_size}"


class MaxPool1d(MaxPool2d):
    """Max over windows of the last dim: (N, C, L) or (C, L) -> (N, C, L_out)."""

    def forward(self, input):
        """Returns `xbp.nn.functional.max_pool1d` of the inputs, with this module's settings as
        its arguments."""
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class MaxPool3d(MaxPool2d):
    """Max over (kd, kh, kw) windows: (N, C, D, H, W) or (C, D, H, W) -> (N, C, D_out, H_out, W_out)."""

    def forward(self, input):
        """Returns `xbp.nn.functional.max_pool3d` of the inputs, with this module's settings as
        its arguments."""
        return F.max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class AvgPool1d(Module):
    """Mean over windows of the last dim: (N, C, L) or (C, L) -> (N, C, L_out)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input):
        """`xbp.nn.functional.avg_pool1d` applied with this module's settings:
        ``F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)``."""
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptiveMaxPool(Module):
    _fn = ""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        """Adaptive max pooling of `input` to `output_size` (the function named by ``_fn``); with
        ``return_indices=True`` also the argmax indices."""
        return getattr(F, self._fn)(input, self.output_size, self.return_indices)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    """Max over PyTorch's adaptive bins of the last dim: (N, C, L) -> (N, C, output_size)."""
    _fn = "adaptive_max_pool1d"


class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    """Max over PyTorch's adaptive bins: (N, C, H, W) -> (N, C, *output_size)."""
    _fn = "adaptive_max_pool2d"


class AdaptiveAvgPool1d(Module):
    """Mean over PyTorch's adaptive bins of the last dim: (N, C, L) -> (N, C, output_size)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        """Returns ``F.adaptive_avg_pool1d(input, self.output_size)``
        (see `xbp.nn.functional.adaptive_avg_pool1d`)."""
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"output_size={self.output_size}"


class AvgPool3d(Module):
    """Mean over (kd, kh, kw) windows: (N, C, D, H, W) or (C, D, H, W) -> (N, C, D_out, H_out, W_out)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input):
        """Returns `xbp.nn.functional.avg_pool3d` of the inputs, with this module's settings as
        its arguments."""
        return F.avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class LPPool1d(Module):
    """(sum over windows of x^p)^(1/p) along the last dim: (N, C, L) -> (N, C, L_out)."""
    _fn = "lp_pool1d"

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def forward(self, input):
        """Power-average pooling: (sum over each window of x^p)^(1/p), with p = `norm_type` (the function
        named by ``_fn``: `xbp.nn.functional.lp_pool1d` or ``lp_pool2d``)."""
        return getattr(F, self._fn)(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, " \
               f"ceil_mode={self.ceil_mode}"


class LPPool2d(LPPool1d):
    """(sum over (kh, kw) windows of x^p)^(1/p): (N, C, H, W) -> (N, C, H_out, W_out)."""
    _fn = "lp_pool2d"


class AdaptiveMaxPool3d(_AdaptiveMaxPool):
    """Max over PyTorch's adaptive bins: (N, C, D, H, W) -> (N, C, *output_size)."""
    _fn = "adaptive_max_pool3d"


class AdaptiveAvgPool3d(AdaptiveAvgPool1d):
    """Mean over PyTorch's adaptive bins: (N, C, D, H, W) -> (N, C, *output_size)."""

    def forward(self, input):
        """Returns ``F.adaptive_avg_pool3d(input, self.output_size)``
        (see `xbp.nn.functional.adaptive_avg_pool3d`)."""
        return F.adaptive_avg_pool3d(input, self.output_size)


class MaxUnpool1d(Module):
    """The partial inverse of MaxPool1d: forward(input (N, C, L), indices, output_size=None) ->
    (N, C, L_out) zeros with each value at its index. stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding

    def forward(self, input, indices, output_size=None):
        """Returns ``F.max_unpool1d(input, indices, self.kernel_size, self.stride, self.padding, output_size)``
        (see `xbp.nn.functional.max_unpool1d`)."""
        return F.max_unpool1d(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
