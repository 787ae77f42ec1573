"""Resampling layers: Upsample (F.interpolate), UpsamplingNearest2d, UpsamplingBilinear2d,
PixelShuffle, PixelUnshuffle (no parameters; PyTorch's arguments)."""
from __future__ import annotations

from . import functional as F
from .module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle"]


class Upsample(Module):
    """Resample (N, C, *spatial) to `size` or `scale_factor` times with `mode` ('nearest',
    'nearest-exact', 'linear', 'bilinear', 'trilinear'); see F.interpolate."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        super().__init__()
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor
        self.mode, self.align_corners, self.recompute_scale_factor = mode, align_corners, recompute_scale_factor

    def forward(self, input):
        """Returns `xbp.nn.functional.interpolate` of the inputs, with this module's settings as
        its arguments."""
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Upsample(mode='nearest') of (N, C, H, W)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample(mode='bilinear', align_corners=True) of (N, C, H, W)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r), r = upscale_factor."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        """Returns ``F.pixel_shuffle(input, self.upscale_factor)``: see `xbp.nn.functional.pixel_shuffle`."""
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H r, W r) -> (*, C r^2, H, W), r = downscale_factor."""

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input):
        """Returns ``F.pixel_unshuffle(input, self.downscale_factor)``
        (see `xbp.nn.functional.pixel_unshuffle`)."""
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"downscale_factor={self.downscale_factor}"
