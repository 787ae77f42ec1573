"""`torch.utils.data`'s path for `xbp.data`: the same objects, with PyTorch's submodules
(`xbp.utils.data.dataloader`, `.dataset`, `.sampler`, `.distributed`)."""
from ...data import (
    SKLEARN_HINT, BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler,
    Sampler, SequentialSampler, StackDataset, Subset, SubsetRandomSampler, TensorDataset, WeightedRandomSampler,
    WorkerInfo, _distributed_sampler, default_collate, default_convert, get_worker_info, load_digits, random_split,
)
from . import dataloader, dataset, distributed, sampler

__all__ = [
    "Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset", "StackDataset",
    "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
    "WeightedRandomSampler", "BatchSampler", "DataLoader", "default_collate", "default_convert",
    "get_worker_info", "WorkerInfo", "load_digits", "SKLEARN_HINT", "dataloader", "dataset", "distributed",
    "sampler",
]


def __getattr__(name):
    if name == "DistributedSampler":
        return _distributed_sampler()
    raise AttributeError(f"module 'xbp.utils.data' has no attribute {name!r}")
