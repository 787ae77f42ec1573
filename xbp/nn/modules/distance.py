"""torch.nn.modules.distance: PairwiseDistance, CosineSimilarity."""
from ..layers import CosineSimilarity, PairwiseDistance  # noqa: F401

__all__ = ["PairwiseDistance", "CosineSimilarity"]
