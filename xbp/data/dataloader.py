"""`DataLoader`: PyTorch's signature and argument rules, in-process or with worker processes.

With ``num_workers=0`` batches are made in the calling process. With ``num_workers > 0`` each
worker is a real process (``fork`` where the platform has it, else ``spawn``; or the
`multiprocessing_context` given) holding its own copy of the dataset; tasks (lists of indices)
go to the workers round-robin, at most ``prefetch_factor * num_workers`` ahead, and batches come
back in sampler order. A worker's exception is raised again in the main process with the
worker's traceback in its message. Workers are shut down when the epoch ends (unless
`persistent_workers`), when the iterator is garbage-collected (``del``, an exception or Ctrl-C
leaving the loop), at interpreter exit, and by themselves when the main process dies.

xbp additions: ``seed=`` (shuffle with epoch ``e`` using ``numpy.random.default_rng([seed, e])``,
reproducible and resumable with ``state_dict()``) and ``device=`` (deliver batches on that device,
one transfer per tensor; with ``pin_memory`` the host copy is staged in CuPy pinned memory).
A TensorDataset (or a Subset of one) with the default collate_fn is gathered with one take per
tensor per batch, not sample by sample.
"""
from __future__ import annotations

import atexit
import itertools
import math
import multiprocessing as mp
import numbers
import os
import pickle
import queue
import threading
import time
import warnings
import weakref

from .._backend import cuda_available, get_backend
from ._collate import default_collate, default_convert, move_batch
from ._fetch import make_fetcher
from ._worker import RESET, ExceptionWrapper, IterableEnd, get_worker_info, worker_loop
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, _host_rng

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]

_LOCKED = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class _InfiniteConstantSampler(Sampler):
    """The sampler of an IterableDataset: None forever (the dataset decides when to stop)."""

    def __iter__(self):
        while True:
            yield None


def _nonneg_int(value, name, msg):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(msg + f" (got {name}={value!r})")
    return int(value)


class DataLoader:
    """Batches of `dataset`, as PyTorch's ``torch.utils.data.DataLoader``.

    ``DataLoader(dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
    num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
    worker_init_fn=None, multiprocessing_context=None, generator=None, *, prefetch_factor=None,
    persistent_workers=False, pin_memory_device='', in_order=True, seed=None, device=None)``

    - `batch_size` None turns automatic batching off: each sample goes through `collate_fn`
      (default: `default_convert`) alone.
    - `shuffle` / `sampler` / `batch_sampler`: mutually exclusive as in PyTorch (ValueError).
    - `num_workers`: worker processes (0: load in this process); `timeout` (seconds, > 0) bounds
      the wait for one batch from the workers; `prefetch_factor` (default 2) batches ahead per
      worker; `persistent_workers` keeps the workers across epochs; `worker_init_fn(worker_id)`
      runs in each worker after seeding. Worker ``i`` is seeded with ``base_seed + i`` (Python's
      `random`, NumPy's global generator, xbp's generators); `base_seed` comes from `generator`,
      else from xbp's global generator.
    - `pin_memory`: host batches bound for a GPU are copied into page-locked (CuPy pinned) memory;
      a no-op without a GPU.
    - `generator`: a ``numpy.random.Generator`` for the shuffle and the worker seeds.
    - `seed`, `device`: xbp additions (see the module docstring); ``len(loader)`` is the number of
      batches per epoch; ``state_dict()``/``load_state_dict()`` hold the epoch counter.
    - `in_order=False` is accepted; batches still arrive in order.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="", in_order=True,
                 seed=None, device=None):
        num_workers = _nonneg_int(num_workers, "num_workers", "DataLoader: num_workers option should be "
                                  "non-negative; use num_workers=0 to disable multiprocessing.")
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative (got timeout={timeout!r})")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; "
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor "
                             "to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None:
            prefetch_factor = _nonneg_int(prefetch_factor, "prefetch_factor",
                                          "DataLoader: prefetch_factor option should be non-negative")
            if prefetch_factor == 0:
                raise ValueError("DataLoader: prefetch_factor should be at least 1 (got 0)")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: give seed= (xbp's reproducible epochs) or generator=, not both")

        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            if shuffle not in (None, False):
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle option, but "
                                 f"got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler option, but "
                                 f"got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
                if seed is not None:
                    sampler._seed = int(seed)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)   # validates batch_size
        if pin_memory and not cuda_available():
            warnings.warn("DataLoader: 'pin_memory' argument is set as true but no GPU is found, so pinned "
                          "memory won't be used", UserWarning, stacklevel=2)
        if multiprocessing_context is not None and isinstance(multiprocessing_context, str):
            multiprocessing_context = mp.get_context(multiprocessing_context)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if batch_sampler is not None else default_convert)
        self.pin_memory = bool(pin_memory)
        self.pin_memory_device = pin_memory_device
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.in_order = bool(in_order)
        self.seed = None if seed is None else int(seed)
        self._target = None if device is None else get_backend(device)
        self.device = None if device is None else self._target.device
        self.epoch = 0
        self._iterable = iterable
        self._iterator = None
        self.__initialized = True

    def __setattr__(self, name, value):
        if name in _LOCKED and self.__dict__.get("_DataLoader__initialized"):
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        object.__setattr__(self, name, value)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
            return n
        return len(self._index_sampler)

    def _start_epoch(self):
        if isinstance(self.sampler, RandomSampler):
            self.sampler._epoch = self.epoch
        self.epoch += 1

    def _pin(self) -> bool:
        if not self.pin_memory:
            return False
        if self._target is not None:
            return self._target.kind == "cupy"
        return cuda_available()

    def _base_seed(self) -> int:
        return int(_host_rng(self.generator).integers(0, 2 ** 62))

    def __iter__(self):
        self._start_epoch()              # the epoch's order is drawn now, not at the first next()
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._iterator is None or self._iterator._closed:
                self._iterator = _MultiProcessIter(self)
            else:
                self._iterator._reset(self)
            return self._iterator
        return _MultiProcessIter(self)

    def state_dict(self) -> dict:
        """{'epoch': ..., 'seed': ...}: what a resumed run needs to shuffle as this one."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores the epoch and the shuffling seed saved by `state_dict`."""
        self.epoch = int(state_dict["epoch"])
        if state_dict.get("seed") is not None:
            self.seed = int(state_dict["seed"])
            if isinstance(self.sampler, RandomSampler):
                self.sampler._seed = self.seed


class _SingleProcessIter:
    def __init__(self, loader):
        self._tasks = iter(loader._index_sampler)
        self._fetcher = make_fetcher(loader._iterable, loader.dataset, loader._auto_collation,
                                     loader.collate_fn, loader.drop_last)
        self._target, self._pin = loader._target, loader._pin()
        self._len = None if loader._iterable else len(loader)

    def __iter__(self):
        return self

    def __next__(self):
        task = next(self._tasks)
        return move_batch(self._fetcher.fetch(task), self._target, self._pin)

    def __len__(self):
        return self._len


# live multi-process iterators, shut down at interpreter exit (before multiprocessing's own
# exit handler terminates what is left)
_LIVE = weakref.WeakSet()


@atexit.register
def _shutdown_all():
    for it in list(_LIVE):
        it._shutdown()


def _context(loader):
    if loader.multiprocessing_context is not None:
        return loader.multiprocessing_context
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


class _MultiProcessIter:
    """Tasks out to worker processes, batches back in order."""

    def __init__(self, loader):
        self._closed = True                     # until the workers exist (for __del__)
        ctx = _context(loader)
        self._num_workers = nw = loader.num_workers
        self._prefetch = loader.prefetch_factor * nw
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._iterable = loader._iterable
        self._target, self._pin = loader._target, loader._pin()
        self._result_queue = ctx.Queue()
        self._done_event = ctx.Event()
        self._index_queues, self._workers = [], []
        base_seed = loader._base_seed()
        parent = os.getpid()
        try:
            for wid in range(nw):
                q = ctx.Queue()
                q.cancel_join_thread()          # never block exit flushing tasks nobody will run
                w = ctx.Process(target=worker_loop, daemon=True, name=f"xbp-dataloader-worker-{wid}",
                                args=(loader._iterable, loader.dataset, q, self._result_queue, self._done_event,
                                      loader._auto_collation, loader.collate_fn, loader.drop_last, base_seed,
                                      loader.worker_init_fn, wid, nw, parent))
                w.start()
                self._index_queues.append(q)
                self._workers.append(w)
        finally:
            self._closed = False
            _LIVE.add(self)
        self._epoch = -1
        self._reset(loader, first=True)

    def _reset(self, loader, first=False):
        self._epoch += 1
        self._tasks = iter(loader._index_sampler)
        self._len = None if loader._iterable else len(loader)
        self._send_idx = self._rcvd_idx = 0
        self._task_info = {}                    # task index -> [worker id] or [worker id, batch]
        self._outstanding = 0
        self._active = [True] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first and self._iterable:
            for q in self._index_queues:        # persistent workers: start the stream afresh
                q.put(RESET)
        for _ in range(self._prefetch):
            self._put_task()

    def _put_task(self):
        if self._outstanding >= self._prefetch:
            return
        for _ in range(self._num_workers):
            wid = next(self._worker_cycle)
            if self._active[wid]:
                break
        else:
            return
        try:
            task = next(self._tasks)
        except StopIteration:
            return
        self._index_queues[wid].put((self._epoch, self._send_idx, task))
        self._task_info[self._send_idx] = [wid]
        self._outstanding += 1
        self._send_idx += 1

    def _get(self):
        """One result from the workers, checking worker health and the timeout while waiting."""
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                return pickle.loads(self._result_queue.get(timeout=wait))
            except queue.Empty:
                pass
            dead = [w for w in self._workers if not w.is_alive()]
            if dead:
                codes = ", ".join(f"pid {w.pid} exit code {w.exitcode}" for w in dead)
                self._shutdown()
                raise RuntimeError(f"DataLoader worker ({codes}) exited unexpectedly; if it was killed "
                                   "(exit code -9: out of memory?), use fewer workers or smaller batches")
            if deadline is not None and time.monotonic() >= deadline:
                self._shutdown()
                raise RuntimeError(f"DataLoader timed out after {self._timeout:g} seconds waiting for a batch "
                                   "from its workers")

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        while True:
            # tasks sent to a worker whose stream has ended get no answer: skip them
            while self._rcvd_idx < self._send_idx:
                info = self._task_info[self._rcvd_idx]
                if len(info) == 2 or self._active[info[0]]:
                    break
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            if self._rcvd_idx >= self._send_idx:
                if not self._persistent:
                    self._shutdown()
                raise StopIteration
            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._deliver(info[1])
            epoch, idx, data = self._get()
            if epoch != self._epoch:
                continue                        # left over from an epoch abandoned midway
            self._outstanding -= 1
            if isinstance(data, IterableEnd):
                # its task (and any later one sent to that worker) is skipped above
                self._active[data.worker_id] = False
                continue
            if idx != self._rcvd_idx:
                self._task_info[idx].append(data)       # early: keep it until its turn
                continue
            del self._task_info[idx]
            self._rcvd_idx += 1
            return self._deliver(data)

    def _deliver(self, data):
        self._put_task()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return move_batch(data, self._target, self._pin)

    def __len__(self):
        return self._len

    def _shutdown(self):
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        self._done_event.set()
        for q in self._index_queues:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 1.0         # idle workers exit at once; a busy one is terminated
        for w in self._workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            if w.is_alive():
                w.terminate()
                w.join(timeout=2.0)
        for q in self._index_queues:
            q.close()
        self._result_queue.cancel_join_thread()
        self._result_queue.close()

    def __del__(self):
        # the loop was left early (break, exception, Ctrl-C) or the loader was deleted
        if threading is not None and not getattr(self, "_closed", True):
            self._shutdown()
