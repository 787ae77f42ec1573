"""torch.nn.modules.linear: Identity, Linear, Bilinear."""
from ..layers import Bilinear, Identity, Linear  # noqa: F401

__all__ = ["Identity", "Linear", "Bilinear"]
