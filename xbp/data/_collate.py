"""Collation (a list of samples -> one batch) and the batch's move to its device, with PyTorch's
`default_collate` / `default_convert` rules.

default_collate, by the type of the first sample:
  Tensor -> stacked along a new dim 0 (same shapes, same device);
  NumPy array / NumPy scalar -> a tensor of its dtype, stacked (string/object arrays refused);
  float -> float64 tensor; int -> int64 tensor; bool -> bool tensor; str/bytes -> the list;
  dict (Mapping) -> the same type with each key collated; named tuple -> the same type;
  tuple -> a list of collated fields (PyTorch's backwards-compatible choice); list/other sequence ->
  the same type where it can be built, else a list. Nested containers recurse.
"""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from .._backend import is_device_array
from .._creation import as_tensor, tensor
from .._tensor import Tensor, _wrap

__all__ = ["default_collate", "default_convert"]

_ERR = ("default_collate: batch must contain tensors, NumPy arrays, numbers, strings, dicts or lists; "
        "found {}")


def _is_text_dtype(dt) -> bool:
    return dt.kind in "OSUV"          # object, bytes, str, void: no tensor of these


def _stack_tensors(batch):
    first = batch[0]
    src = first.xp
    for i, t in enumerate(batch):
        if not isinstance(t, Tensor):
            raise TypeError(f"default_collate: entry 0 of the batch is a Tensor but entry {i} is "
                            f"{type(t).__name__}")
        if t.xp is not src:
            raise RuntimeError("default_collate: samples of one batch live on different devices "
                               f"({sorted({str(s.device) for s in batch})})")
        if t.shape != first.shape:
            raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, but got "
                               f"{tuple(first.shape)} at entry 0 and {tuple(t.shape)} at entry {i}")
    return _wrap(src.stack([t.array for t in batch], axis=0), src)


def default_collate(batch):
    """Merge a list of samples into a batch (see the module docstring for the rules).

    ``default_collate([(x0, 0), (x1, 1)])`` with x of shape (3,) gives ``[X, y]``: X of shape
    (2, 3) and y the int64 tensor [0, 1]."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)):
        batch = list(batch)
    if not batch:
        raise ValueError("default_collate: the batch is empty")
    elem = batch[0]
    et = type(elem)
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if et is np.ndarray or isinstance(elem, np.memmap):
        if _is_text_dtype(elem.dtype):
            raise TypeError(_ERR.format(f"a NumPy array of dtype {elem.dtype}"))
        shapes = {a.shape for a in batch if isinstance(a, np.ndarray)}
        if len(shapes) > 1:
            raise RuntimeError(f"default_collate: stack expects each array to be equal size, got shapes "
                               f"{sorted(shapes)}")
        return as_tensor(np.stack([np.asarray(a) for a in batch]))
    if isinstance(elem, np.generic):
        if _is_text_dtype(elem.dtype):
            return batch
        return as_tensor(np.asarray(batch, dtype=elem.dtype))
    if is_device_array(elem):                         # CuPy / strict arrays: stacked on their device
        return _stack_tensors([as_tensor(a) for a in batch])
    if isinstance(elem, float):
        return tensor(list(batch), dtype=np.float64)
    if isinstance(elem, bool):
        return tensor(list(batch), dtype=np.bool_)
    if isinstance(elem, numbers.Integral):
        return tensor(list(batch), dtype=np.int64)
    if isinstance(elem, (str, bytes)):
        return batch                                 # as given: a list, or a tuple from a nested zip
    if isinstance(elem, collections.abc.Mapping):
        out = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return et(out)
        except TypeError:                            # a Mapping type that cannot be built from a dict
            return out
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):          # named tuple
        return et(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        n = len(elem)
        if any(len(e) != n for e in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal size, got "
                               f"lengths {[len(e) for e in batch]}")
        fields = [default_collate(s) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            return et(fields)
        except TypeError:
            return fields
    raise TypeError(_ERR.format(et))


def default_convert(data):
    """What the DataLoader applies to each sample when automatic batching is off
    (``batch_size=None``): NumPy arrays and scalars become tensors (no copy), containers are
    converted element-wise (tuples become lists), everything else is returned unchanged."""
    et = type(data)
    if isinstance(data, Tensor):
        return data
    if et is np.ndarray or isinstance(data, np.memmap):
        return data if _is_text_dtype(data.dtype) else as_tensor(data)
    if isinstance(data, np.generic):
        return data if _is_text_dtype(data.dtype) else as_tensor(np.asarray(data))
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        out = {k: default_convert(v) for k, v in data.items()}
        try:
            return et(out)
        except TypeError:
            return out
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return et(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence):
        items = [default_convert(d) for d in data]
        try:
            return et(items)
        except TypeError:
            return items
    return data


# --- the batch's way to its device --------------------------------------------------------------
def _pinned_copy(a: np.ndarray) -> np.ndarray:
    from .._cuda_runtime import pinned_empty
    p = pinned_empty(a.shape, a.dtype)
    p[...] = a
    return p


def move_batch(batch, target, pin: bool):
    """Every Tensor in `batch` (any nesting of lists, tuples, dicts) moved to `target` (a Backend;
    None keeps it where it is) in one transfer each. With `pin`, host arrays bound for a GPU are
    first copied into page-locked memory (CuPy's pinned pool); with `pin` and no target, host
    tensors are returned over pinned memory (PyTorch's pin_memory=True)."""
    if isinstance(batch, Tensor):
        src = batch.xp
        if target is None or target is src:
            if pin and src.kind == "numpy":
                return _wrap(_pinned_copy(batch.array), src)
            return batch
        host = src.to_numpy(batch.array)
        if pin and target.kind == "cupy":
            # a fresh pinned buffer per batch, never written again (CuPy keeps it alive until
            # the copy is done): the upload need not be waited for
            return _wrap(target.from_numpy(_pinned_copy(np.ascontiguousarray(host)), non_blocking=True), target)
        return _wrap(target.from_numpy(host), target)
    if isinstance(batch, (str, bytes)):
        return batch
    if isinstance(batch, collections.abc.Mapping):
        out = {k: move_batch(v, target, pin) for k, v in batch.items()}
        try:
            return type(batch)(out)  # type: ignore[call-arg]  # a Mapping subclass built from a dict
        except TypeError:
            return out
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_batch(v, target, pin) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_batch(v, target, pin) for v in batch)
    pin_fn = getattr(batch, "pin_memory", None)        # a custom batch type, as PyTorch allows
    if pin and target is None and callable(pin_fn):
        return pin_fn()
    return batch
