"""Adamax (Kingma & Ba): Adam with the infinity norm in place of the second moment."""
from __future__ import annotations

from .adam import normalize_betas, validate_adam_family
from .optimizer import Optimizer, implementation_flags, scalar_like

__all__ = ["Adamax", "adamax_update", "adamax_update_multi"]


def adamax_update(xp, param, grad, exp_avg, exp_inf, *, step, lr, beta1, beta2, eps, weight_decay=0.0,
                  maximize=False):
    """One Adamax step on arrays, PyTorch's formula, in place on `param`, `exp_avg`, `exp_inf`::

        g = -grad if maximize else grad
        g = g + weight_decay * param
        m += (1 - beta1) * (g - m)
        u = maximum(beta2 * u, |g| + eps)
        param -= lr / (1 - beta1**t) * m / u

    `step` is the 1-based step count after this update.
    """
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    exp_avg += (1.0 - beta1) * (g - exp_avg)
    exp_inf *= beta2
    exp_inf[...] = xp.maximum(exp_inf, xp.abs(g) + eps)
    clr = scalar_like(xp, lr / (1.0 - beta1 ** step), param)
    param -= clr * (exp_avg / exp_inf)


def adamax_update_multi(xp, params, grads, states, *, lr, beta1, beta2, eps, weight_decay=0.0, maximize=False):
    """`adamax_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"step"`` (1-based counts after this update), ``"exp_avg"`` and ``"exp_inf"``."""
    for param, grad, m, u, step in zip(params, grads, states["exp_avg"], states["exp_inf"], states["step"]):
        adamax_update(xp, param, grad, m, u, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, maximize=maximize)


class Adamax(Optimizer):
    """``Adamax(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *, maximize=False,
    foreach=None, capturable=False, differentiable=False)``

    The same trajectory as ``torch.optim.Adamax``. State per parameter: ``step``, ``exp_avg``,
    ``exp_inf``."""

    _float_keys = ("lr", "eps", "weight_decay")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, foreach=None, *,
                 maximize=False, fused=None, capturable=False, differentiable=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        **implementation_flags("Adamax", foreach, fused, capturable, differentiable))
        super().__init__(params, defaults)

    def _normalize_group(self, group):
        normalize_betas(group)
        super()._normalize_group(group)

    def _validate(self, g):
        validate_adam_family(g)

    def _param_state(self, p, group):
        return self._counted_state(p, "exp_avg", "exp_inf")

    def _step_group(self, group):
        beta1, beta2 = group["betas"]
        self._multi_tensor_step(group, adamax_update_multi, ("step", "exp_avg", "exp_inf"),
                                lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                                weight_decay=float(group["weight_decay"]), maximize=group["maximize"])
