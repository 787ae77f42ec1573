"""``torch.nn.utils.prune``: zero parts of a tensor through a mask, as PyTorch.

Pruning ``module.weight`` renames the parameter to ``weight_orig``, adds the buffer
``weight_mask`` and makes ``module.weight`` the product ``weight_orig * weight_mask``, recomputed by
a forward pre-hook (so state dicts have PyTorch's keys). Pruning the same tensor again prunes only
what is still unpruned and multiplies the masks. ``remove`` makes the pruning permanent.

Methods: identity, random_unstructured, l1_unstructured, random_structured, ln_structured,
custom_from_mask, global_unstructured. `amount` is a fraction in [0, 1] (rounded to a count, as
PyTorch) or a number of entries (or slices, for the structured methods).
"""
from __future__ import annotations

import numbers

import numpy as np

from ... import _creation
from ..._tensor import Tensor
from ...autograd import no_grad
from ..parameter import Parameter

__all__ = ["identity", "random_unstructured", "l1_unstructured", "random_structured", "ln_structured",
           "custom_from_mask", "global_unstructured", "remove", "is_pruned", "BasePruningMethod"]


def _count(amount, n):
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"Invalid type for amount: {amount}. Must be int or float.")
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")
        if amount > n:
            raise ValueError(f"amount={amount} should be smaller than the number of parameters to prune={n}")
        return int(amount)
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")
    return int(round(float(amount) * n))


def _host(t):
    return np.asarray(t.detach().numpy()) if isinstance(t, Tensor) else np.asarray(t)


class BasePruningMethod:
    """A pruning method: ``compute_mask(t, default_mask)`` on host arrays returns the new mask."""
    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t, default_mask):
        raise NotImplementedError

    def __call__(self, module, inputs):
        _recompute(module, self._tensor_name)

    @classmethod
    def apply(cls, module, name, *args, importance_scores=None, **kwargs):
        return _apply(module, name, cls(*args, **kwargs), importance_scores)


class _Identity(BasePruningMethod):
    def compute_mask(self, t, default_mask):
        return default_mask


class _RandomUnstructured(BasePruningMethod):
    def __init__(self, amount, rng):
        self.amount, self.rng = amount, rng

    def compute_mask(self, t, default_mask):
        k = _count(self.amount, t.size)
        mask = default_mask.copy()
        if k:
            order = np.argsort(self.rng(t.shape).reshape(-1), kind="stable")[:k]
            mask.reshape(-1)[order] = 0
        return mask


class _L1Unstructured(BasePruningMethod):
    def __init__(self, amount):
        self.amount = amount

    def compute_mask(self, t, default_mask):
        k = _count(self.amount, t.size)
        mask = default_mask.copy()
        if k:
            order = np.argsort(np.abs(t).reshape(-1), kind="stable")[:k]
            mask.reshape(-1)[order] = 0
        return mask


class _Structured(BasePruningMethod):
    PRUNING_TYPE = "structured"

    def __init__(self, amount, dim, score):
        self.amount, self.dim, self.score = amount, dim, score

    def compute_mask(self, t, default_mask):
        d = self.dim % t.ndim
        n = t.shape[d]
        k = _count(self.amount, n)
        keep = n - k
        mask = np.zeros_like(default_mask)
        if keep:
            scores = self.score(t, d)
            idx = np.argsort(-scores, kind="stable")[:keep]                   # the largest slices stay
            sl = [slice(None)] * t.ndim
            sl[d] = idx
            mask[tuple(sl)] = 1
        return mask * default_mask


class _CustomFromMask(BasePruningMethod):
    def __init__(self, mask):
        self.mask = _host(mask)

    def compute_mask(self, t, default_mask):
        if self.mask.shape != default_mask.shape:
            raise ValueError(f"custom_from_mask: mask shape {self.mask.shape} differs from the tensor's "
                             f"{default_mask.shape}")
        return default_mask * self.mask.astype(default_mask.dtype)


def _tensor_of(module, name):
    """The parameter being pruned: `name` itself, or `name`_orig once pruned."""
    p = module._parameters.get(name)
    return p if p is not None else getattr(module, name + "_orig")


def _hook_of(module, name):
    for hid, h in module._forward_pre_hooks.items():
        if isinstance(h, BasePruningMethod) and h._tensor_name == name:
            return hid, h
    return None, None


def _recompute(module, name):
    orig = getattr(module, name + "_orig")
    mask = getattr(module, name + "_mask")
    object.__setattr__(module, name, orig * mask)


def _apply(module, name, method, importance_scores=None):
    hid, old = _hook_of(module, name)
    if old is None:
        orig = module._parameters.get(name)
        if orig is None:
            raise AttributeError(f"Parameter '{name}' of module {type(module).__name__} has to be pruned, but it "
                                 "is not a parameter")
        default = np.ones(orig.shape, dtype=np.dtype(orig.dtype))
    else:
        orig = getattr(module, name + "_orig")
        default = _host(getattr(module, name + "_mask")).astype(np.dtype(orig.dtype))
    scores = _host(importance_scores if importance_scores is not None else orig).astype(np.float64)
    if scores.shape != tuple(orig.shape):
        raise ValueError(f"importance_scores should have the same shape as parameter {name} of {module}")
    if old is None:
        new = method.compute_mask(scores, default)
    elif method.PRUNING_TYPE == "unstructured":
        # prune only among what is still unpruned (PyTorch's PruningContainer): the entries ...
        live = default == 1
        new = default.copy()
        new[live] = method.compute_mask(scores[live], default[live])
    else:
        # ... or, for a structured method, the slices along its dim that still hold a nonzero
        d = method.dim % default.ndim
        axes = tuple(i for i in range(default.ndim) if i != d)
        keep = np.nonzero(default.sum(axis=axes) != 0)[0]
        sl = [slice(None)] * default.ndim
        sl[d] = keep
        new = np.zeros_like(default)
        new[tuple(sl)] = method.compute_mask(scores[tuple(sl)], default[tuple(sl)])
    method._tensor_name = name
    mask = _creation.tensor(new.astype(np.dtype(orig.dtype)), device=orig.device)
    if old is None:
        del module._parameters[name]
        module.register_parameter(name + "_orig", orig)
        module.register_buffer(name + "_mask", mask)
        module.register_forward_pre_hook(method)
    else:
        with no_grad():
            module._buffers[name + "_mask"].copy_(mask)
        module._forward_pre_hooks[hid] = method
    _recompute(module, name)
    return module


def identity(module, name):
    """Prune nothing (a mask of ones), setting up the weight_orig / weight_mask layout."""
    return _apply(module, name, _Identity())


def random_unstructured(module, name, amount):
    """Zero `amount` of the entries chosen at random (the device generator of xbp.manual_seed)."""
    p = _tensor_of(module, name)

    def draw(shape):
        return np.asarray(p.xp.to_numpy(p.xp.random_uniform(tuple(shape), np.dtype("float64"))))
    return _apply(module, name, _RandomUnstructured(amount, draw))


def l1_unstructured(module, name, amount, importance_scores=None):
    """Zero the `amount` entries of smallest absolute value (of importance_scores when given)."""
    return _apply(module, name, _L1Unstructured(amount), importance_scores)


def random_structured(module, name, amount, dim):
    """Zero `amount` whole slices along `dim`, chosen at random."""
    p = _tensor_of(module, name)
    r = np.asarray(p.xp.to_numpy(p.xp.random_uniform((p.shape[dim],), np.dtype("float64"))))
    return _apply(module, name, _Structured(amount, dim, lambda t, d: r))


def ln_structured(module, name, amount, n, dim, importance_scores=None):
    """Zero the `amount` slices along `dim` of smallest L`n` norm."""
    def score(t, d):
        axes = tuple(i for i in range(t.ndim) if i != d)
        a = np.abs(t)
        if n == np.inf:
            return a.max(axis=axes)
        if n == -np.inf:
            return a.min(axis=axes)
        return (a ** n).sum(axis=axes) ** (1.0 / n)
    return _apply(module, name, _Structured(amount, dim, score), importance_scores)


def custom_from_mask(module, name, mask):
    """Prune with a given 0/1 mask of the tensor's shape."""
    return _apply(module, name, _CustomFromMask(mask))


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs):
    """Prune the (module, name) pairs together: the method (l1_unstructured's or
    random_unstructured's function, or their classes) ranks all their entries at once."""
    pairs = list(parameters)
    importance_scores = importance_scores or {}
    vals, masks, sizes = [], [], []
    for m, name in pairs:
        t = _tensor_of(m, name)
        vals.append(_host(importance_scores.get((m, name), t)).astype(np.float64).reshape(-1))
        pruned = _hook_of(m, name)[1] is not None
        masks.append(_host(getattr(m, name + "_mask")).reshape(-1).astype(np.float64) if pruned
                     else np.ones(vals[-1].shape[0]))
        sizes.append(vals[-1].shape[0])
    flat, mask = np.concatenate(vals), np.concatenate(masks)
    if pruning_method in (l1_unstructured, _L1Unstructured):
        method = _L1Unstructured(kwargs["amount"])
    elif pruning_method in (random_unstructured, _RandomUnstructured):
        t0 = _tensor_of(*pairs[0])
        method = _RandomUnstructured(kwargs["amount"], lambda shape: np.asarray(
            t0.xp.to_numpy(t0.xp.random_uniform(tuple(shape), np.dtype("float64")))))
    else:
        raise TypeError("global_unstructured: pruning_method must be l1_unstructured or random_unstructured")
    live = mask == 1
    new = mask.copy()
    new[live] = method.compute_mask(flat[live], mask[live])
    start = 0
    for (m, name), n in zip(pairs, sizes):
        custom_from_mask(m, name, new[start:start + n].reshape(_tensor_of(m, name).shape))
        start += n


def remove(module, name):
    """Make the pruning of `name` permanent: a plain Parameter holding orig * mask again."""
    hid, method = _hook_of(module, name)
    if method is None:
        raise ValueError(f"Parameter '{name}' of module {module} has to be pruned before pruning can be removed")
    with no_grad():
        w = (getattr(module, name + "_orig") * getattr(module, name + "_mask")).detach()
    del module._forward_pre_hooks[hid]
    module.__dict__.pop(name, None)
    req = module._parameters[name + "_orig"].requires_grad
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    module.register_parameter(name, Parameter(w, requires_grad=req))
    return module


def is_pruned(module) -> bool:
    """Whether `module` or any submodule has a pruning hook."""
    return any(isinstance(h, BasePruningMethod) for m in module.modules() for h in m._forward_pre_hooks.values())
