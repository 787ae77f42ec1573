"""torch.nn.modules.fold: Fold, Unfold."""
from ..fold import Fold, Unfold  # noqa: F401

__all__ = ["Fold", "Unfold"]
