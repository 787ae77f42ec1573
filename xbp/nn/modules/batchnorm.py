"""torch.nn.modules.batchnorm: BatchNorm1d, BatchNorm2d and their bases."""
from ..norm import BatchNorm1d, BatchNorm2d, _BatchNorm  # noqa: F401

_NormBase = _BatchNorm
__all__ = ["BatchNorm1d", "BatchNorm2d"]
