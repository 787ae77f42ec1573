"""Rprop (Riedmiller & Braun): per-element step sizes adapted from the sign of the gradient."""
from __future__ import annotations

import math

from .optimizer import Optimizer, implementation_flags

__all__ = ["Rprop", "rprop_update", "rprop_update_multi"]


def rprop_update(xp, param, grad, prev, step_size, *, etaminus, etaplus, step_size_min, step_size_max,
                 maximize=False):
    """One Rprop step on arrays, PyTorch's formula, in place on `param`, `prev` and `step_size`::

        g = -grad if maximize else grad
        s = sign(g * prev);  factor = etaplus (s > 0), etaminus (s < 0), 1 (s == 0)
        step_size = clip(step_size * factor, step_size_min, step_size_max)
        g = 0 where s < 0                  (a sign change: skip this element's step once)
        param -= sign(g) * step_size;  prev = g

    Hyperparameters are Python floats; the state arrays are updated in place.
    """
    g = -grad if maximize else grad
    s = xp.sign(g * prev)
    factor = xp.where(s > 0, etaplus, xp.where(s < 0, etaminus, xp.ones_like(s)))
    step_size[...] = xp.clip(step_size * factor, step_size_min, step_size_max)
    g = xp.where(s < 0, xp.zeros_like(g), g)
    param -= xp.sign(g) * step_size
    prev[...] = g


def rprop_update_multi(xp, params, grads, states, *, etaminus, etaplus, step_size_min, step_size_max,
                       maximize=False):
    """`rprop_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"prev"`` and ``"step_size"``, updated in place."""
    for param, grad, prev, step_size in zip(params, grads, states["prev"], states["step_size"]):
        rprop_update(xp, param, grad, prev, step_size, etaminus=etaminus, etaplus=etaplus,
                     step_size_min=step_size_min, step_size_max=step_size_max, maximize=maximize)


def _pair(name, v):
    try:
        a, b = v
        return float(a), float(b)
    except (TypeError, ValueError):
        raise ValueError(f"Rprop: {name} must be a pair of numbers, got {v!r}") from None


class Rprop(Optimizer):
    """``Rprop(params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
    maximize=False, differentiable=False)``

    The same trajectory as ``torch.optim.Rprop`` (full-batch training). `lr` is the initial
    per-element step; `etas` = (etaminus, etaplus) shrink/grow it, `step_sizes` = (min, max) bound
    it. State per parameter: ``step``, ``prev``, ``step_size``."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False,
                 foreach=None, maximize=False, differentiable=False, fused=None):
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize,
                        **implementation_flags("Rprop", foreach, fused, capturable, differentiable))
        super().__init__(params, defaults)

    def _normalize_group(self, group):
        group["etas"] = _pair("etas", group["etas"])
        group["step_sizes"] = _pair("step_sizes", group["step_sizes"])
        super()._normalize_group(group)

    def _validate(self, g):
        if g["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {g['lr']} (must be >= 0)")
        em, ep = g["etas"]
        if not (0.0 < em < 1.0 < ep) or not math.isfinite(ep):
            raise ValueError(f"Invalid eta values: {em}, {ep} (need 0 < etaminus < 1 < etaplus, finite)")
        lo, hi = g["step_sizes"]
        if not (0.0 <= lo <= hi) or not math.isfinite(hi):
            raise ValueError(f"Invalid step_sizes values: {lo}, {hi} (need 0 <= min <= max, finite)")

    def _param_state(self, p, group):
        st = self.state[p]
        if not st:
            st["step"] = 0
            st["prev"] = self._zeros_state(p)
            st["step_size"] = self._zeros_state(p, float(group["lr"]))
        st["step"] += 1
        return st

    def _step_group(self, group):
        em, ep = group["etas"]
        lo, hi = group["step_sizes"]
        self._multi_tensor_step(group, rprop_update_multi, ("prev", "step_size"), etaminus=em, etaplus=ep,
                                step_size_min=lo, step_size_max=hi, maximize=group["maximize"])
