"""torch.nn.modules.flatten: Flatten, Unflatten."""
from ..layers import Flatten, Unflatten  # noqa: F401

__all__ = ["Flatten", "Unflatten"]
