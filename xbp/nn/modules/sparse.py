"""torch.nn.modules.sparse: Embedding, EmbeddingBag."""
from ..embedding import Embedding, EmbeddingBag  # noqa: F401

__all__ = ["Embedding", "EmbeddingBag"]
