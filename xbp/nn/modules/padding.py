"""torch.nn.modules.padding: the padding layers."""
from ..padding import *  # noqa: F401,F403
from ..padding import __all__  # noqa: F401
