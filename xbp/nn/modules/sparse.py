"""torch.nn.modules.sparse: Embedding."""
from ..embedding import Embedding  # noqa: F401

__all__ = ["Embedding"]
