"""torch.nn.modules.module: Module."""
from ..module import Module, _IncompatibleKeys  # noqa: F401

__all__ = ["Module"]
