"""torch.nn.modules.pixelshuffle: PixelShuffle, PixelUnshuffle."""
from ..upsampling import PixelShuffle, PixelUnshuffle  # noqa: F401

__all__ = ["PixelShuffle", "PixelUnshuffle"]
