"""DistributedDataParallel: the same model on every rank, gradients averaged during backward.

How the overlap works (PyTorch's reducer, in small):
- At construction the parameters are split into buckets in reverse registration order (about
  the order backward produces their gradients): the first bucket is capped at 1 MB so its
  all-reduce starts early, the others at `bucket_cap_mb`. Parameters and buffers are broadcast
  from rank 0.
- Each bucket owns one flat buffer, allocated at its first use and kept across steps (counted in
  ``buckets_allocated``), with one view of it per parameter. When the last gradient of a bucket
  has been accumulated (a post-accumulate-grad hook, `xbp._engine`), every gradient of the bucket
  is copied into its view already divided by the world size (``Backend.copy_scaled``: one pass,
  no temporary) and the buffer's non-blocking all-reduce (SUM) starts while backward goes on
  computing earlier layers' gradients. Buckets are launched strictly in bucket order, so every
  rank issues the same collectives in the same order even if their gradients become ready in a
  different order.
- MPI (MPICH) advances a non-blocking collective only inside MPI calls. So every gradient hook
  call -- each parameter's gradient becoming ready, not only a bucket's last one -- also tests the
  oldest bucket in flight (``MPI_Test``; MPI's progress engine then moves every outstanding
  request): the backward pass itself drives the all-reduces forward between its layers.
- At the end of backward an engine callback launches any bucket still waiting (parameters that
  got no gradient, with ``find_unused_parameters=True``), waits for all of them and sets each
  ``.grad`` to its view of the reduced buffer (no copy back).
- Reusing a buffer: with ``gradient_as_bucket_view=True`` the gradients *are* the bucket views,
  as in PyTorch: a ``.grad`` kept from the previous step is overwritten by the next one. By
  default (False) a gradient kept by the user keeps its values: a bucket reuses its buffer only
  when nothing outside DDP references it or its views any more (``Backend.refcounts``; after
  ``zero_grad()`` that is the normal case), else it allocates a new one for this step. Backends
  that cannot tell (array-api-strict, CuPy) allocate a new buffer per step in that mode.

The hook path runs once per parameter per step, so its state lives in a plain `_Reducer` object
(attribute writes on a Module go through ``Module.__setattr__``) and it makes as few Python calls
as it can (``bench/count_ddp_calls.py`` counts them).
"""
from __future__ import annotations

import threading
import time
import weakref
from contextlib import contextmanager

import numpy as np

from ... import _engine
from ..._creation import tensor as _tensor
from ..._tensor import _wrap
from ...autograd import is_grad_enabled, no_grad
from ..module import Module

__all__ = ["DistributedDataParallel"]

FIRST_BUCKET_BYTES = 1024 * 1024      # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES


def _dist():
    from ... import distributed
    return distributed


def _flat(tensors):
    xp = tensors[0].xp
    return _wrap(xp.concat([xp.reshape(t.array, (-1,)) for t in tensors]), xp)


def _unflatten_into(flat, tensors):
    """Copy the flat tensor's consecutive blocks into `tensors`, in place."""
    xp = flat.xp
    off = 0
    for t in tensors:
        n = int(np.prod(t.shape, dtype=np.int64))
        xp.setitem(t.array, (Ellipsis,), xp.reshape(flat.array[off:off + n], t.shape))
        t._version[0] += 1
        off += n


def _groups(tensors):
    """Tensors grouped by (device, dtype), each group in the given order."""
    out = {}
    for t in tensors:
        out.setdefault((str(t.device), str(t.dtype)), []).append(t)
    return list(out.values())


def _remove_all(handles):
    for h in handles:
        h.remove()


class _Progress:
    """A helper thread that turns MPI's progress engine every `interval` seconds while a
    backward has buckets in flight (MPICH moves a non-blocking collective only inside MPI calls,
    and backward's long kernels -- the first layer's weight-gradient matmul -- make none; NumPy
    releases the GIL in them, so this thread runs there). It calls ``comm.progress()`` only
    (``MPI_Iprobe``), never touches a request, and sleeps between calls, unlike
    MPICH_ASYNC_PROGRESS's thread, which spins on a core of its own."""

    def __init__(self, comm, interval):
        self.comm, self.interval = comm, float(interval)
        self.go = threading.Event()
        self.closed = False
        self.thread = threading.Thread(target=self.loop, name="xbp-ddp-mpi-progress", daemon=True)
        self.thread.start()

    def loop(self):
        go, progress, sleep, interval = self.go, self.comm.progress, time.sleep, self.interval
        while True:
            go.wait()
            while go.is_set() and not self.closed:
                progress()
                sleep(interval)
            if self.closed:
                return

    def close(self):
        """End the thread (the wrapper was collected); it never calls MPI afterwards."""
        self.closed = True
        self.go.set()


class _Bucket:
    __slots__ = ("index", "params", "n", "ready", "numel", "xp", "dtype", "work", "test",
                 "flat", "views", "arrays", "refs")

    def __init__(self, index):
        self.index, self.params = index, []
        self.n = self.ready = self.numel = 0
        self.xp = self.dtype = None
        self.work = self.test = None
        self.flat = self.views = self.arrays = self.refs = None


def _hook(ref, i, b):
    """Parameter i's post-accumulate-grad hook (its gradient is in ``.grad``); b its bucket.
    One Python call per parameter per step unless a bucket fills or finishes."""
    def hook(p):
        r = ref()
        if r is None or not r.sync:
            return
        seen = r.seen
        if not seen:
            _engine.queue_callback(r.finish)
        elif i in seen:
            raise RuntimeError(f"DistributedDataParallel: parameter {r.names[i]} got a gradient twice in one "
                               "backward pass (a second backward through the same forward); run a new forward")
        seen.add(i)
        b.ready += 1
        if b.ready == b.n:
            r.launch_ready(True)
        elif r.poll is not None and r.poll_in_hooks and r.poll():
            r.advance()
    return hook


class _Reducer:
    """The gradient averaging of one DDP wrapper: buckets, their buffers and the per-step state."""

    # set False only to measure what testing from every hook buys (bench/bench_distributed.py);
    # then the buckets in flight are tested only when one becomes full
    poll_in_hooks = True
    # seconds between the progress thread's MPI calls during backward (`_Progress`), or None for
    # no thread: off by default (on 2 cores shared by 2 ranks its benefit is not yet measured);
    # DistributedDataParallel.mpi_progress_interval sets it per wrapper
    progress_interval = None
    # set False only to measure what reusing the buffers buys: then (gradient_as_bucket_view
    # False) every bucket allocates a new buffer each step that only the .grad views keep alive,
    # as DDP did before (freed at zero_grad)
    reuse_buffers = True

    def __init__(self, params, names, buckets, bucket_of, group, find_unused, as_view):
        self.params, self.names, self.buckets = params, names, buckets
        self.bucket_of = bucket_of    # parameter index -> its bucket
        self.group = group
        self.comm = group.comm
        self.scale = 1.0 / group.size()
        self.find_unused = find_unused
        self.as_view = as_view
        self.sync = True
        # statistics (benchmark, tests): seconds spent in the end-of-backward wait; buckets whose
        # all-reduce started from a gradient hook (while backward was still running); buckets
        # whose all-reduce had already finished when backward ended (the overlap, counted); bucket
        # buffers allocated so far (constant over steps when they are reused)
        self.comm_wait_s = 0.0
        self.buckets_launched_early = 0
        self.buckets_completed_early = 0
        self.buckets_allocated = 0
        self.progress = None          # the _Progress thread, made at the first backward that wants one
        self.reset()

    def reset(self):
        self.seen = set()
        self.next = 0             # buckets [0, next) are launched
        self.oldest = 0           # buckets [0, oldest) are known to have finished
        self.poll = None          # the raw test of bucket `oldest`, while it is in flight
        for b in self.buckets:
            b.ready, b.work, b.test = 0, None, None

    def advance(self):
        """The bucket polled last has finished: poll the next one in flight."""
        bs, k = self.buckets, self.oldest + 1
        while k < self.next and bs[k].test():
            k += 1
        self.oldest = k
        self.poll = bs[k].test if k < self.next else None

    def launch_ready(self, early=False):
        bs, k = self.buckets, self.next
        while k < len(bs) and bs[k].ready == bs[k].n:
            self.launch(bs[k])
            k += 1
        if early:
            self.buckets_launched_early += k - self.next
            if self.progress_interval is not None and self.next == 0 and k < len(bs):
                self.start_progress()
        self.next = k
        if self.poll is not None:
            if self.poll():
                self.advance()
        elif self.oldest < k:
            self.poll = bs[self.oldest].test

    def start_progress(self):
        """Buckets are in flight and backward goes on: let the progress thread run (MPI only)."""
        pr = self.progress
        if pr is None:
            comm = self.comm
            if not hasattr(comm, "progress") or not comm.threads_ok():
                self.progress_interval = None          # NCCL progresses on the GPU; MPI without threads
                return
            pr = self.progress = _Progress(comm, self.progress_interval)
            weakref.finalize(self, pr.close)
        pr.go.set()

    def allocate(self, b):
        xp = b.xp
        buf = xp.empty((b.numel,), dtype=b.dtype)
        views, off = [], 0
        for p in b.params:
            n = p.numel()
            views.append(xp.reshape(buf[off:off + n], p.array.shape))
            off += n
        b.flat, b.views, b.arrays = _wrap(buf, xp), views, [buf] + views
        self.buckets_allocated += 1

    def launch(self, b):
        xp = b.xp
        if b.arrays is None:
            self.allocate(b)
            b.refs = xp.refcounts(b.arrays)
        elif not self.as_view and (b.refs is None or xp.refcounts(b.arrays) != b.refs):
            # a gradient handed out last step (or a view of it) is still held: leave it alone
            self.allocate(b)
            b.refs = xp.refcounts(b.arrays)
        copy, scale = xp.copy_scaled, self.scale
        for p, v in zip(b.params, b.views):
            g = p.grad
            if g is None:                  # unused here (find_unused_parameters): counts as zero
                xp.setitem(v, (Ellipsis,), 0)
            else:
                copy(v, g.array, scale)
        # pre-scaled, so a SUM is the average (no division pass afterwards; NCCL or MPI alike)
        b.work = self.comm.all_reduce(b.flat, "sum", True)
        b.test = b.work._test

    def finish(self):
        t0 = time.perf_counter()
        params = self.params
        if self.progress is not None:
            self.progress.go.clear()                   # the waits below progress MPI themselves
        try:
            # the overlap, counted before any wait: buckets already finished as backward ends
            self.buckets_completed_early += sum([b.test() for b in self.buckets[:self.next]])
            if len(self.seen) < len(params):
                used = self.launch_missing()
            else:
                used = None
                if self.find_unused:
                    used = self.all_used()
            for b in self.buckets:
                b.work.wait()
                xp = b.xp
                for p, v in zip(b.params, b.views):
                    p.grad = _wrap(v, xp)
                if not self.reuse_buffers and not self.as_view:
                    b.flat = b.views = b.arrays = None     # the buffer lives on in the .grad views only
            if used is not None:
                for i in np.flatnonzero(used == 0):
                    params[i].grad = None
        finally:
            self.reset()
            self.comm_wait_s += time.perf_counter() - t0

    def all_used(self, had_grad=None):
        """Which parameters got a gradient on some rank (MAX over ranks of this rank's flags)."""
        dist = _dist()
        if had_grad is None:
            had_grad = np.ones(len(self.params), dtype=np.uint8)
        used = _tensor(had_grad, device=self.params[0].device)
        dist.all_reduce(used, op=dist.ReduceOp.MAX, group=self.group)
        return used.to("cpu").numpy()

    def launch_missing(self):
        """End of a backward in which some parameters got no gradient: refuse, or (with
        find_unused_parameters) count them as zero and launch the buckets still waiting."""
        params = self.params
        missing = [i for i in range(len(params)) if i not in self.seen]
        if not self.find_unused:
            for b in self.buckets[:self.next]:
                b.work.wait()
            names = ", ".join(self.names[i] for i in missing[:10])
            raise RuntimeError(
                f"DistributedDataParallel: rank {_dist().get_rank()}: {len(missing)} parameter(s) got no gradient "
                f"in this backward ({names}); pass find_unused_parameters=True if some parameters are unused "
                "by design, or make every parameter contribute to the loss")
        had_grad = np.array([p.grad is not None for p in params], dtype=np.uint8)
        for i in missing:
            self.bucket_of[i].ready += 1
        self.launch_ready()
        return self.all_used(had_grad)


class DistributedDataParallel(Module):
    """``DistributedDataParallel(module, device_ids=None, output_device=None, dim=0,
    broadcast_buffers=True, process_group=None, bucket_cap_mb=25, find_unused_parameters=False,
    gradient_as_bucket_view=False, static_graph=False)``

    Wraps `module` for data-parallel training: run the same script on every rank, give each rank
    its shard of the batch (`xbp.distributed.DistributedSampler`), and after ``loss.backward()``
    every parameter's ``.grad`` is the average over ranks of the local gradients -- the gradient
    of the mean loss over the concatenated batch when shards are equal-sized. Forward is the
    module's own (inputs and outputs of any shape).

    Args:
        module: the model (already on its device); ``ddp.module`` is it, unwrapped.
        device_ids, output_device, dim: accepted for PyTorch compatibility; one device per process.
        broadcast_buffers: copy rank 0's buffers (BatchNorm running statistics) to every rank at
            the start of each forward with grad enabled.
        process_group: the group to average over (default: the world).
        bucket_cap_mb: bucket size in MB (the first bucket is at most 1 MB, as in PyTorch).
        find_unused_parameters: allow parameters that get no gradient in a backward (they count
            as zero; those that got none on every rank keep ``.grad = None``). Without it such a
            parameter is an error that names it.
        gradient_as_bucket_view: as PyTorch's: after backward each ``.grad`` is a view of its
            bucket's buffer, which every step reuses (a ``.grad`` kept from one step is
            overwritten by the next). False (default): ``.grad`` is still a view of the reduced
            buffer (no copy back), but a buffer is reused only while nothing else holds a view
            of it, so a gradient kept from a step keeps its values.

    ``state_dict()`` has the wrapped module's keys (no "module." prefix) and ``load_state_dict``
    accepts both forms, so checkpoints load into the plain model and back.

    Statistics (read-only): ``buckets_allocated``, ``buckets_launched_early``,
    ``buckets_completed_early``, ``comm_wait_s``. On MPI, ``mpi_progress_interval`` (seconds, default
    None) lets a helper thread advance the all-reduces during backward.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb=25,
                 find_unused_parameters: bool = False, gradient_as_bucket_view: bool = False,
                 static_graph: bool = False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be an xbp.nn.Module, got {type(module).__name__}")
        dist = _dist()
        self.process_group = dist._group(process_group)
        if bucket_cap_mb is None:
            bucket_cap_mb = 25
        if not float(bucket_cap_mb) > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module = module
        self.device_ids = device_ids
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.gradient_as_bucket_view = bool(gradient_as_bucket_view)
        self.bucket_bytes_cap = int(float(bucket_cap_mb) * 1024 * 1024)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._device = self._params[0].device if self._params else "cpu"
        self._check_same_model(named)
        self._sync_from_rank0([p for p in module.parameters()] + list(module.buffers()))
        # the buffers broadcast at each forward: their (registry, name) slots, found once (as
        # PyTorch collects them at construction); a buffer reassigned later is still found
        self._buffer_slots = [(m._buffers, k) for m in module.modules() for k in m._buffers]
        buckets, bucket_of = self._make_buckets()
        self._reducer = r = _Reducer(self._params, self._names, buckets, bucket_of, self.process_group,
                                     self.find_unused_parameters, self.gradient_as_bucket_view)
        # the hooks hold the reducer weakly (they live on the parameters, which outlive the
        # wrapper) and are removed when the wrapper is collected, so re-wrapping a model never
        # reduces twice
        me = weakref.ref(r)
        handles = [_engine.register_post_accumulate_grad_hook(p, _hook(me, i, bucket_of[i]))
                   for i, p in enumerate(self._params)]
        weakref.finalize(self, _remove_all, handles)

    # --- statistics and switches (kept by the reducer) ---
    @property
    def require_backward_grad_sync(self) -> bool:
        """False inside `no_sync()`: backward then only accumulates local gradients."""
        return self._reducer.sync

    @require_backward_grad_sync.setter
    def require_backward_grad_sync(self, value):
        self._reducer.sync = bool(value)

    @property
    def comm_wait_s(self) -> float:
        """Seconds spent, over all steps so far, in the end-of-backward wait for the all-reduces
        (the communication not hidden behind backward, plus the skew between ranks)."""
        return self._reducer.comm_wait_s

    @property
    def buckets_launched_early(self) -> int:
        """Buckets, over all steps so far, whose all-reduce started from a gradient hook (while
        backward was still running)."""
        return self._reducer.buckets_launched_early

    @property
    def buckets_completed_early(self) -> int:
        """Buckets, over all steps so far, whose all-reduce had finished when backward ended."""
        return self._reducer.buckets_completed_early

    @property
    def buckets_allocated(self) -> int:
        """Bucket buffers allocated so far: one per bucket at the first backward, then constant
        while the buffers are reused (always with ``gradient_as_bucket_view=True``; by default
        as long as no gradient of the previous step is still held when the next one reduces)."""
        return self._reducer.buckets_allocated

    @property
    def mpi_progress_interval(self):
        """Seconds between the MPI progress calls of a helper thread that runs while buckets are
        in flight during backward, or None (default: no thread). On MPI, non-blocking all-reduces
        advance only inside MPI calls; the thread makes them advance during backward's long
        kernels (which release the GIL), so buckets can finish before backward ends. It sleeps
        between calls and needs MPI_THREAD_MULTIPLE (mpi4py's default); ignored on NCCL."""
        return self._reducer.progress_interval

    @mpi_progress_interval.setter
    def mpi_progress_interval(self, seconds):
        if seconds is not None and not float(seconds) > 0:
            raise ValueError(f"mpi_progress_interval must be > 0 seconds or None, got {seconds!r}")
        self._reducer.progress_interval = None if seconds is None else float(seconds)

    @property
    def _buckets(self):
        return self._reducer.buckets

    # --- setup ---
    def _check_same_model(self, named):
        """Every rank must hold the same parameter shapes in the same order, or the buckets
        would silently mismatch."""
        dist = _dist()
        import zlib
        sig = zlib.crc32(repr([(n, tuple(p.shape), str(p.dtype)) for n, p in named]).encode())
        t = _tensor([sig, -sig], dtype=np.int64, device=self._device)   # NCCL needs device tensors
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.process_group)
        if int(t[0].item()) != sig or int(-t[1].item()) != sig:
            raise RuntimeError(f"DistributedDataParallel: rank {dist.get_rank()}'s model has different parameter "
                               "names, shapes or dtypes than another rank's; build the same model on every rank")

    def _sync_from_rank0(self, tensors):
        dist = _dist()
        pg = self.process_group
        if pg.size() == 1 or not tensors:
            return
        src = pg.ranks[0]
        with no_grad():
            for grp in _groups(tensors):
                flat = _flat(grp)
                dist.broadcast(flat, src, group=pg)
                _unflatten_into(flat, grp)

    def _make_buckets(self):
        buckets, cur, size, bucket_of = [], {}, {}, {}
        cap = min(FIRST_BUCKET_BYTES, self.bucket_bytes_cap)
        for i in reversed(range(len(self._params))):
            p = self._params[i]
            if p.dtype.kind not in "fc":
                raise TypeError(f"DistributedDataParallel: parameter {self._names[i]} is {p.dtype}; gradients "
                                "are averaged, so parameters that require grad must be floating point")
            key = (str(p.device), str(p.dtype))
            b = cur.get(key)
            if b is None:
                b = cur[key] = _Bucket(len(buckets))
                b.xp, b.dtype = p.xp, p.array.dtype
                buckets.append(b)
                size[key] = 0
            b.params.append(p)
            b.n += 1
            b.numel += p.numel()
            bucket_of[i] = b
            size[key] += p.numel() * p.dtype.itemsize
            if size[key] >= cap:
                del cur[key]
                cap = self.bucket_bytes_cap
        return buckets, bucket_of

    # --- forward ---
    def forward(self, *args, **kwargs):
        r = self._reducer
        if r.seen or r.next:
            r.reset()          # a backward that raised left a half-reduced step behind
        if self._buffer_slots and self.broadcast_buffers and r.sync and is_grad_enabled():
            bufs = [d[k] for d, k in self._buffer_slots if d.get(k) is not None]
            self._sync_from_rank0(bufs)
        return self.module(*args, **kwargs)

    @contextmanager
    def no_sync(self):
        """Inside, backward accumulates local gradients without communication; the first
        backward after it averages the accumulated gradients (gradient accumulation)."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # --- state ---
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):  # type: ignore[override]
        """The wrapped module's state dict (keys without a "module." prefix)."""
        return self.module.state_dict(destination, prefix, keep_vars)

    def load_state_dict(self, state_dict, strict: bool = True):
        """Load into the wrapped module; keys may carry PyTorch DDP's "module." prefix or not."""
        if state_dict and all(k.startswith("module.") for k in state_dict):
            state_dict = type(state_dict)((k[len("module."):], v) for k, v in state_dict.items())
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self):
        return (f"world_size={self.process_group.size()}, buckets={len(self._buckets)}, "
                f"bucket_cap_mb={self.bucket_bytes_cap / 2 ** 20:g}")
