"""DistributedDataParallel: the same model on every rank, gradients averaged during backward.

How the overlap works (PyTorch's reducer, in small):
- At construction the parameters are split into buckets in reverse registration order (about
  the order backward produces their gradients): the first bucket is capped at 1 MB so its
  all-reduce starts early, the others at `bucket_cap_mb`. Parameters and buffers are broadcast
  from rank 0.
- Each parameter has a post-accumulate-grad hook (`xbp._engine`). When the last gradient of a
  bucket has been accumulated, the bucket is flattened into one tensor and its non-blocking
  all-reduce (AVG) starts while backward goes on computing earlier layers' gradients. Buckets
  are launched strictly in bucket order, so every rank issues the same collectives in the same
  order even if their gradients become ready in a different order.
- MPI (MPICH) advances a non-blocking collective only inside MPI calls. So every gradient hook
  call -- each parameter's gradient becoming ready, not only a bucket's last one -- also tests the
  buckets in flight (``MPI_Test``): the backward pass itself drives the all-reduces forward between
  its layers. Testing only reads completion; the values are those of the final wait.
- At the end of backward an engine callback launches any bucket still waiting (parameters that
  got no gradient, with ``find_unused_parameters=True``), waits for all of them and stores the
  averaged gradients back into ``.grad`` (as slices of the reduced bucket: no extra copy).
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager

import numpy as np

from ... import _engine
from ..._creation import tensor as _tensor
from ..._tensor import _wrap
from ...autograd import no_grad
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


def _hook(ref, i):
    def hook(p):
        ddp = ref()
        if ddp is not None:
            ddp._ready(i)
    return hook


def _remove_all(handles):
    for h in handles:
        h.remove()


class _Bucket:
    __slots__ = ("params", "index", "ready", "work", "flat")

    def __init__(self, index):
        self.index, self.params = index, []
        self.ready, self.work, self.flat = 0, None, None


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
        gradient_as_bucket_view: accepted; gradients are always views of the reduced bucket.

    ``state_dict()`` has the wrapped module's keys (no "module." prefix) and ``load_state_dict``
    accepts both forms, so checkpoints load into the plain model and back.
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
        self.require_backward_grad_sync = True
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._device = self._params[0].device if self._params else "cpu"
        self._check_same_model(named)
        self._sync_from_rank0([p for p in module.parameters()] + list(module.buffers()))
        self._buckets = self._make_buckets()
        self._bucket_of = {}
        for b in self._buckets:
            for i in b.params:
                self._bucket_of[i] = b
        # the hooks hold this wrapper weakly (they live on the parameters, which outlive it) and
        # are removed when it is collected, so re-wrapping a model never reduces twice
        me = weakref.ref(self)
        handles = [_engine.register_post_accumulate_grad_hook(p, _hook(me, i)) for i, p in enumerate(self._params)]
        weakref.finalize(self, _remove_all, handles)
        self._reset()
        # statistics (benchmark, tests): seconds spent in the end-of-backward wait, and how many
        # buckets started their all-reduce from a gradient hook, i.e. while backward was still running
        self.comm_wait_s = 0.0
        self.buckets_launched_early = 0
        # buckets whose all-reduce had already finished when backward ended (the overlap, counted)
        self.buckets_completed_early = 0

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
        buckets, cur, size = [], {}, {}
        cap = min(FIRST_BUCKET_BYTES, self.bucket_bytes_cap)
        for i in reversed(range(len(self._params))):
            p = self._params[i]
            key = (str(p.device), str(p.dtype))
            b = cur.get(key)
            if b is None:
                b = cur[key] = _Bucket(len(buckets))
                buckets.append(b)
                size[key] = 0
            b.params.append(i)
            size[key] += p.numel() * p.dtype.itemsize
            if size[key] >= cap:
                del cur[key]
                cap = self.bucket_bytes_cap
        return buckets

    def _reset(self):
        self._seen = set()
        self._next = 0
        self._tested = 0          # buckets [0, _tested) have finished their all-reduce
        self._queued = False
        for b in self._buckets:
            b.ready, b.work, b.flat = 0, None, None

    # --- backward ---
    def _ready(self, i):
        """Parameter i's gradient is accumulated (a post-accumulate-grad hook)."""
        if not self.require_backward_grad_sync:
            return
        if not self._queued:
            _engine.queue_callback(self._finish)
            self._queued = True
        if i in self._seen:
            raise RuntimeError(f"DistributedDataParallel: parameter {self._names[i]} got a gradient twice in one "
                               "backward pass (a second backward through the same forward); run a new forward")
        self._seen.add(i)
        b = self._bucket_of[i]
        b.ready += 1
        if b.ready == len(b.params):
            self.buckets_launched_early += self._launch_ready()
        if self._poll_in_hooks or b.ready == len(b.params):
            self._progress()

    # set False only to measure what testing from every hook buys (bench/bench_distributed.py);
    # then buckets are tested only when one becomes full
    _poll_in_hooks = True

    def _progress(self):
        """Test the buckets in flight, oldest first (``MPI_Test`` runs MPI's progress engine, so
        the all-reduces advance while backward computes the next gradients)."""
        bs = self._buckets
        while self._tested < self._next and bs[self._tested].work.is_completed():
            self._tested += 1
        # MPI progress is global: one test moves every outstanding request, the later ones included
        for b in bs[self._tested + 1:self._next]:
            b.work.is_completed()

    def _launch_ready(self) -> int:
        bs = self._buckets
        first = self._next
        while self._next < len(bs) and bs[self._next].ready == len(bs[self._next].params):
            self._launch(bs[self._next])
            self._next += 1
        return self._next - first

    def _launch(self, b):
        dist = _dist()
        b.flat = _flat([self._params[i].grad for i in b.params])
        b.work = dist.all_reduce(b.flat, op=dist.ReduceOp.AVG, group=self.process_group, async_op=True)

    def _finish(self):
        import time
        dist = _dist()
        t0 = time.perf_counter()
        params = self._params
        missing = [i for i in range(len(params)) if i not in self._seen]
        try:
            self.buckets_completed_early += sum(1 for b in self._buckets[:self._next] if b.work.is_completed())
            if missing and not self.find_unused_parameters:
                for b in self._buckets[:self._next]:
                    b.work.wait()
                names = ", ".join(self._names[i] for i in missing[:10])
                raise RuntimeError(
                    f"DistributedDataParallel: rank {dist.get_rank()}: {len(missing)} parameter(s) got no gradient in "
                    f"this backward ({names}); pass find_unused_parameters=True if some parameters are unused "
                    "by design, or make every parameter contribute to the loss")
            had_grad = None
            if missing:
                had_grad = np.array([p.grad is not None for p in params], dtype=np.uint8)
                for i in missing:
                    p = params[i]
                    if p.grad is None:
                        p.grad = _wrap(p.xp.zeros(p.array.shape, dtype=p.array.dtype), p.xp)
                    b = self._bucket_of[i]
                    b.ready += 1
                self._launch_ready()
            if self.find_unused_parameters:
                if had_grad is None:
                    had_grad = np.ones(len(params), dtype=np.uint8)
                used = _tensor(had_grad, device=self._device)
                dist.all_reduce(used, op=dist.ReduceOp.MAX, group=self.process_group)
                used = used.to("cpu").numpy()
            for b in self._buckets:
                b.work.wait()
                xp = b.flat.xp
                flat, off = b.flat.array, 0
                for i in b.params:
                    p = params[i]
                    n = p.numel()
                    p.grad = _wrap(xp.reshape(flat[off:off + n], p.array.shape), xp)
                    off += n
            if self.find_unused_parameters:
                for i in np.flatnonzero(used == 0):
                    params[i].grad = None
        finally:
            self._reset()
            self.comm_wait_s += time.perf_counter() - t0

    # --- forward ---
    def forward(self, *args, **kwargs):
        from ...autograd import is_grad_enabled
        if self._seen or self._next:
            self._reset()          # a backward that raised left a half-reduced step behind
        if self.broadcast_buffers and self.require_backward_grad_sync and is_grad_enabled():
            self._sync_from_rank0(list(self.module.buffers()))
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
