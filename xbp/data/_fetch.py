"""Fetchers: turn one task of the index sampler into one batch (the same code in the main process
and in a worker process)."""
from __future__ import annotations

import numpy as np

from ._collate import default_collate


class MapFetcher:
    """Map-style dataset: a task is a list of indices (automatic batching) or one index."""

    def __init__(self, dataset, auto_collation: bool, collate_fn, drop_last: bool):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        # TensorDataset (and a Subset of one) gathers a batch in one take per tensor; only when the
        # result is what default_collate would build from the samples
        gather = getattr(dataset, "_gather", None) if auto_collation and collate_fn is default_collate else None
        self.gather = gather
        getitems = getattr(dataset, "__getitems__", None)
        self.getitems = getitems if callable(getitems) else None

    def fetch(self, task):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[task])
        if self.gather is not None:
            return self.gather(np.asarray(task, dtype=np.int64))
        if self.getitems is not None:
            data = self.getitems(task)
        else:
            data = [self.dataset[i] for i in task]
        return self.collate_fn(data)


class IterableFetcher:
    """Iterable dataset: a task is a list of placeholders (automatic batching: that many samples)
    or one placeholder (one sample). Raises StopIteration when the stream ends (or, with
    `drop_last`, when it cannot fill a batch)."""

    def __init__(self, dataset, auto_collation: bool, collate_fn, drop_last: bool):
        self.iterator = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.ended = False

    def fetch(self, task):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.iterator))
        data = []
        for _ in task:
            try:
                data.append(next(self.iterator))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(task)):
            raise StopIteration
        return self.collate_fn(data)


def make_fetcher(iterable: bool, dataset, auto_collation, collate_fn, drop_last):
    cls = IterableFetcher if iterable else MapFetcher
    return cls(dataset, auto_collation, collate_fn, drop_last)
