"""`torch.utils.data.distributed`'s path: DistributedSampler (from `xbp.distributed.sampler`,
imported on first use)."""
from ...data import _distributed_sampler

def __getattr__(name):
    if name == "DistributedSampler":
        return _distributed_sampler()
    raise AttributeError(f"module 'xbp.utils.data.distributed' has no attribute {name!r}")
