"""torch.nn.modules.instancenorm: InstanceNorm1d/2d/3d."""
from ..norm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, _InstanceNorm  # noqa: F401

__all__ = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]
