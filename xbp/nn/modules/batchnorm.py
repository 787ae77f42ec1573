"""torch.nn.modules.batchnorm: BatchNorm1d/2d/3d and their bases."""
from ..norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, _BatchNorm  # noqa: F401

_NormBase = _BatchNorm
__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]
