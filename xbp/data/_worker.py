"""DataLoader worker processes: the loop each worker runs, its seeding, `get_worker_info()`, and
the wrapper that carries a worker's exception (with its traceback text) to the main process.

Protocol (one index queue per worker, one shared result queue):
  main -> worker: ``(epoch, task_index, task)``; ``RESET`` (persistent workers, new epoch: start the
  iterable dataset afresh); ``None`` (exit).
  worker -> main: ``(epoch, task_index, batch | ExceptionWrapper | IterableEnd)``, pickled.
A worker exits on ``None``, and by itself when its parent process is gone (polled every
`POLL_S`), so a killed main process leaves no workers behind.
"""
from __future__ import annotations

import os
import pickle
import queue
import random
import signal
import sys
import traceback

import numpy as np

POLL_S = 0.1          # how often an idle worker checks that its parent is alive
RESET = "__xbp_dataloader_reset__"

_WORKER_INFO = None


class WorkerInfo:
    """What `get_worker_info()` returns inside a worker: ``id`` (0..num_workers-1),
    ``num_workers``, ``seed`` (this worker's seed: base seed + id) and ``dataset`` (this worker's
    copy of the dataset)."""

    __slots__ = ("id", "num_workers", "seed", "dataset")

    def __init__(self, id, num_workers, seed, dataset):  # noqa: A002 - PyTorch's field name
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __setattr__(self, key, val):
        if hasattr(self, key):
            raise RuntimeError(f"WorkerInfo: cannot assign attribute {key!r}")
        object.__setattr__(self, key, val)

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, dataset=...)"


def get_worker_info():
    """The current worker's `WorkerInfo` inside a DataLoader worker process; None in the main
    process. Use it in ``IterableDataset.__iter__`` to split the stream between workers, or in
    ``worker_init_fn`` to configure each worker's copy of the dataset."""
    return _WORKER_INFO


class ExceptionWrapper:
    """An exception raised in a worker, carried to the main process as its type and traceback text."""

    def __init__(self, where: str):
        exc_type, exc, tb = sys.exc_info()
        self.exc_type = exc_type
        self.where = where
        self.text = "".join(traceback.format_exception(exc_type, exc, tb))

    def reraise(self):
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.text}"
        if self.exc_type is KeyError:
            msg = KeyError(msg)          # KeyError repr()s its message: keep the traceback readable
        try:
            exc = self.exc_type(msg)
        except Exception:  # noqa: BLE001 - exception types whose constructor takes other arguments
            exc = RuntimeError(msg)
        try:
            raise exc
        finally:
            # no local reference to the exception: its traceback would then keep this frame, the
            # DataLoader iterator and its worker processes alive until the garbage collector runs
            del exc


class IterableEnd:
    """Sent once by a worker whose iterable dataset is exhausted for this epoch."""

    def __init__(self, worker_id: int):
        self.worker_id = worker_id


def _dump(epoch, idx, data, where) -> bytes:
    try:
        return pickle.dumps((epoch, idx, data), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001
        if not isinstance(data, ExceptionWrapper):
            data = ExceptionWrapper(where + " (pickling the batch for the main process)")
    try:
        return pickle.dumps((epoch, idx, data), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception class that cannot be pickled (defined locally)
        data.exc_type = RuntimeError
        return pickle.dumps((epoch, idx, data), protocol=pickle.HIGHEST_PROTOCOL)


def seed_worker(seed: int) -> None:
    """Seed everything a dataset may draw from in this worker: Python's `random`, NumPy's legacy
    global generator (PyTorch leaves it unseeded, so forked workers repeat each other's
    "random" augmentations), and xbp's generators."""
    from .._backend import manual_seed
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    manual_seed(seed)


def worker_loop(iterable, dataset, index_queue, result_queue, done_event, auto_collation, collate_fn,
                drop_last, base_seed, init_fn, worker_id, num_workers, parent_pid):
    """The body of one worker process."""
    global _WORKER_INFO
    from ._fetch import make_fetcher
    # Ctrl-C reaches the whole process group: the main process handles it and shuts workers down
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = base_seed + worker_id
    seed_worker(seed)
    _WORKER_INFO = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)
    where = f"in DataLoader worker process {worker_id}"
    init_error = fetcher = None
    try:
        if init_fn is not None:
            init_fn(worker_id)
        fetcher = make_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
    except Exception:  # noqa: BLE001 - reported to the main process with the first task
        init_error = ExceptionWrapper(where)
    ended = False
    try:
        while True:
            try:
                msg = index_queue.get(timeout=POLL_S)
            except queue.Empty:
                if os.getppid() != parent_pid:         # the main process died: do not linger
                    return
                continue
            if msg is None:
                return
            if msg == RESET:
                ended = False
                if init_error is None:
                    try:
                        fetcher = make_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
                    except Exception:  # noqa: BLE001
                        init_error = ExceptionWrapper(where)
                continue
            if done_event.is_set() or ended:
                continue
            epoch, idx, task = msg
            if init_error is not None:
                data, init_error = init_error, None
            else:
                try:
                    data = fetcher.fetch(task)
                except StopIteration:
                    if not iterable:
                        data = ExceptionWrapper(where)
                    else:
                        data, ended = IterableEnd(worker_id), True
                except Exception:  # noqa: BLE001 - re-raised in the main process
                    data = ExceptionWrapper(where)
            # pickled here, not in the queue's feeder thread: a batch that cannot be pickled becomes
            # an error in the main process instead of a result that never arrives
            result_queue.put(_dump(epoch, idx, data, where))
            del data
    except KeyboardInterrupt:
        pass
    finally:
        if done_event.is_set():
            # nobody reads the results any more: do not block exit flushing them
            result_queue.cancel_join_thread()
            result_queue.close()
