"""Adagrad (Duchi et al.), with learning-rate decay and weight decay."""
from __future__ import annotations

from .optimizer import Optimizer, implementation_flags, scalar_like

__all__ = ["Adagrad", "adagrad_update", "adagrad_update_multi"]


def adagrad_update(xp, param, grad, state_sum, *, step, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                   maximize=False):
    """One Adagrad step on arrays, PyTorch's formula, in place on `param` and `state_sum`::

        g = -grad if maximize else grad
        g = g + weight_decay * param
        clr = lr / (1 + (step - 1) * lr_decay)
        state_sum += g * g
        param -= clr * g / (sqrt(state_sum) + eps)

    `step` is the 1-based step count after this update.
    """
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    clr = scalar_like(xp, lr / (1.0 + (step - 1) * lr_decay), param)
    state_sum += g * g
    param -= clr * (g / (xp.sqrt(state_sum) + eps))


def adagrad_update_multi(xp, params, grads, states, *, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                         maximize=False):
    """`adagrad_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"step"`` (1-based counts after this update) and ``"sum"``, updated in place."""
    for param, grad, state_sum, step in zip(params, grads, states["sum"], states["step"]):
        adagrad_update(xp, param, grad, state_sum, step=step, lr=lr, lr_decay=lr_decay,
                       weight_decay=weight_decay, eps=eps, maximize=maximize)


class Adagrad(Optimizer):
    """``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, maximize=False)``

    The same trajectory as ``torch.optim.Adagrad``. State per parameter (created with the
    optimizer, as PyTorch does): ``step``, ``sum``."""

    _float_keys = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, *, maximize=False,
                 foreach=None, fused=None, capturable=False, differentiable=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
                        **implementation_flags('Adagrad', foreach, fused, capturable, differentiable))
        super().__init__(params, defaults)

    def _validate(self, g):
        if g["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {g['lr']} (must be >= 0)")
        if g["lr_decay"] < 0.0:
            raise ValueError(f"Invalid lr_decay value: {g['lr_decay']} (must be >= 0)")
        if g["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {g['weight_decay']} (must be >= 0)")
        if g["initial_accumulator_value"] < 0.0:
            raise ValueError(f"Invalid initial_accumulator_value value: {g['initial_accumulator_value']} "
                             "(must be >= 0)")
        if g["eps"] < 0.0:
            raise ValueError(f"Invalid epsilon value: {g['eps']} (must be >= 0)")

    def _init_group_state(self, group):
        for p in group["params"]:
            st = self.state[p]
            st["step"] = 0
            st["sum"] = self._zeros_state(p, group["initial_accumulator_value"])

    def _param_state(self, p, group):
        st = self.state[p]
        if not st:                      # e.g. a state dict that lacked this parameter
            st["step"] = 0
            st["sum"] = self._zeros_state(p, group["initial_accumulator_value"])
        st["step"] += 1
        return st

    def _step_group(self, group):
        self._multi_tensor_step(group, adagrad_update_multi, ("step", "sum"), lr=float(group["lr"]),
                                lr_decay=float(group["lr_decay"]), weight_decay=float(group["weight_decay"]),
                                eps=float(group["eps"]), maximize=group["maximize"])
