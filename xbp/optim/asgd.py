"""ASGD: averaged stochastic gradient descent (Polyak & Juditsky), PyTorch's variant."""
from __future__ import annotations

from .optimizer import Optimizer, implementation_flags

__all__ = ["ASGD", "asgd_update", "asgd_update_multi"]


def asgd_update(xp, param, grad, ax, *, step, eta, mu, lr, lambd, alpha, t0, weight_decay=0.0,
                maximize=False):
    """One ASGD step on arrays, PyTorch's formula, in place on `param` and the average `ax`::

        g = -grad if maximize else grad
        g = g + weight_decay * param
        param *= 1 - lambd * eta;  param -= eta * g
        ax += mu * (param - ax)            (ax = param when mu == 1)
        eta = lr / (1 + lambd * lr * t) ** alpha;  mu = 1 / max(1, t - t0)

    `step` is the 1-based step after this update; returns the new (eta, mu) as Python floats."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    param *= 1.0 - lambd * eta
    param -= eta * g
    if mu != 1.0:
        ax += (param - ax) * mu
    else:
        ax[...] = param
    return lr / ((1.0 + lambd * lr * step) ** alpha), 1.0 / max(1.0, step - t0)


def asgd_update_multi(xp, params, grads, states, *, lr, lambd, alpha, t0, weight_decay=0.0, maximize=False):
    """`asgd_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"step"`` (1-based counts after this update), ``"eta"``, ``"mu"`` (Python floats) and ``"ax"``.
    Returns ``{"eta": [...], "mu": [...]}``, the new values per parameter."""
    etas, mus = [], []
    for param, grad, ax, step, eta, mu in zip(params, grads, states["ax"], states["step"], states["eta"],
                                              states["mu"]):
        eta, mu = asgd_update(xp, param, grad, ax, step=step, eta=float(eta), mu=float(mu), lr=lr, lambd=lambd,
                              alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        etas.append(eta)
        mus.append(mu)
    return {"eta": etas, "mu": mus}


class ASGD(Optimizer):
    """``ASGD(params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
    maximize=False, differentiable=False, capturable=False)``

    The same trajectory as ``torch.optim.ASGD``. The averaged parameters are ``state[p]["ax"]``
    (averaging starts after `t0` steps). State per parameter: ``step``, ``eta``, ``mu``, ``ax``."""

    _float_keys = ("lr", "lambd", "alpha", "t0", "weight_decay")
    _scalar_state = ("eta", "mu")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, foreach=None,
                 maximize=False, differentiable=False, capturable=False, *, fused=None):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize,
                        **implementation_flags("ASGD", foreach, fused, capturable, differentiable))
        super().__init__(params, defaults)

    def _validate(self, g):
        if g["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {g['lr']} (must be >= 0)")
        if g["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {g['weight_decay']} (must be >= 0)")
        if g["lambd"] < 0.0:
            raise ValueError(f"Invalid lambd value: {g['lambd']} (must be >= 0)")

    def _param_state(self, p, group):
        st = self.state[p]
        if not st:
            st["step"] = 0
            st["eta"] = float(group["lr"])
            st["mu"] = 1.0
            st["ax"] = self._zeros_state(p)
        st["step"] += 1
        return st

    def _step_group(self, group):
        self._multi_tensor_step(group, asgd_update_multi, ("step", "eta", "mu", "ax"), lr=float(group["lr"]),
                                lambd=float(group["lambd"]), alpha=float(group["alpha"]), t0=float(group["t0"]),
                                weight_decay=float(group["weight_decay"]), maximize=group["maximize"])
