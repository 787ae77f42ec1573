"""Data parallelism across processes: ``DistributedDataParallel`` (needs xbp.distributed)."""
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
