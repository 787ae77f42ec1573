"""torch.nn.modules.pooling: pooling layers."""
from ..pooling import *  # noqa: F401,F403
from ..pooling import __all__  # noqa: F401
