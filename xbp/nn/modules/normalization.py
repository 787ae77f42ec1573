"""torch.nn.modules.normalization: LayerNorm, GroupNorm, LocalResponseNorm, RMSNorm."""
from ..norm import GroupNorm, LayerNorm, LocalResponseNorm, RMSNorm  # noqa: F401

__all__ = ["LayerNorm", "GroupNorm", "LocalResponseNorm", "RMSNorm"]
