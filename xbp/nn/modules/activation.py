"""torch.nn.modules.activation: the activation modules and MultiheadAttention."""
from ..activation import *  # noqa: F401,F403
from ..activation import __all__ as _act
from ..attention import MultiheadAttention  # noqa: F401

__all__ = _act + ["MultiheadAttention"]
