"""torch.nn.modules.normalization: LayerNorm, GroupNorm, LocalResponseNorm."""
from ..norm import GroupNorm, LayerNorm, LocalResponseNorm  # noqa: F401

__all__ = ["LayerNorm", "GroupNorm", "LocalResponseNorm"]
