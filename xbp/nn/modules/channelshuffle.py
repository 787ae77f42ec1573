"""torch.nn.modules.channelshuffle: ChannelShuffle."""
from ..layers import ChannelShuffle  # noqa: F401

__all__ = ["ChannelShuffle"]
