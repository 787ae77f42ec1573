"""Datasets, samplers and batching (`xbp.data`, also importable as `xbp.utils.data`), with
PyTorch's names and rules; plus the sklearn digits data (`load_digits`).

- `dataset`: Dataset, IterableDataset, TensorDataset, Subset, ConcatDataset, ChainDataset,
  StackDataset, random_split.
- `sampler`: Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler,
  WeightedRandomSampler, BatchSampler; `DistributedSampler` (from `xbp.distributed.sampler`).
- `dataloader`: DataLoader (worker processes, pinned memory), default_collate, default_convert,
  get_worker_info.

The DataLoader gathers a TensorDataset's batch with ONE array-indexing call per tensor on the
source array (where the data lives, usually host memory) and moves the gathered batch to the
target device (``device=``) in one transfer per tensor, never sample by sample. Shuffling is done
on the host with NumPy's PCG64: with a `seed`, epoch ``e`` uses the permutation of
``default_rng([seed, e])``, so every epoch is reshuffled, runs are reproducible, and a run resumed
at an epoch boundary (``state_dict()``) sees the same batches as one that never stopped.
"""
from ._collate import default_collate, default_convert
from ._digits import SKLEARN_HINT, load_digits
from ._worker import WorkerInfo, get_worker_info
from .dataloader import DataLoader
from .dataset import (
    ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset, random_split,
)
from .sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler,
)

__all__ = [
    "Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset", "StackDataset",
    "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
    "WeightedRandomSampler", "BatchSampler", "DataLoader", "default_collate",
    "default_convert", "get_worker_info", "WorkerInfo", "load_digits", "SKLEARN_HINT",
]


def _distributed_sampler():
    """`xbp.distributed.sampler.DistributedSampler`, imported on first use (it lives with the
    distributed package), or an ImportError that says so."""
    try:
        from ..distributed.sampler import DistributedSampler
    except ImportError as e:
        raise ImportError("xbp.data.DistributedSampler comes from xbp.distributed.sampler, which could not be "
                          f"imported ({e}); it is part of xbp's distributed package") from e
    return DistributedSampler


def __getattr__(name):
    if name == "DistributedSampler":
        return _distributed_sampler()
    raise AttributeError(f"module 'xbp.data' has no attribute {name!r}")
