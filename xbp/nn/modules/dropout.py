"""torch.nn.modules.dropout: Dropout, Dropout1d/2d/3d, AlphaDropout."""
from ..layers import AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d, _DropoutNd  # noqa: F401

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"]
