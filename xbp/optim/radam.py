"""RAdam (Liu et al.): Adam with a rectified adaptive learning rate (SGD with momentum until the
variance estimate is trustworthy)."""
from __future__ import annotations

from .adam import normalize_betas, validate_adam_family
from .optimizer import Optimizer, implementation_flags

__all__ = ["RAdam", "radam_update", "radam_update_multi"]


def radam_update(xp, param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1, beta2, eps, weight_decay=0.0,
                 decoupled_weight_decay=False, maximize=False):
    """One RAdam step on arrays, PyTorch's formula, in place on `param` and the moments::

        g = -grad if maximize else grad;  weight decay as in Adam / AdamW (decoupled)
        m += (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
        m_hat = m / (1 - beta1**t)
        rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    param -= lr * m_hat * r * sqrt(1 - beta2**t) / (sqrt(v) + eps)
        otherwise:  param -= lr * m_hat

    `step` is the 1-based step count after this update.
    """
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        if decoupled_weight_decay:
            param *= 1.0 - lr * weight_decay
        else:
            g = g + weight_decay * param
    exp_avg += (1.0 - beta1) * (g - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    m_hat = exp_avg / bc1
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step * (beta2 ** step) / bc2
    if rho_t > 5.0:
        rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) ** 0.5
        adaptive = bc2 ** 0.5 / (xp.sqrt(exp_avg_sq) + eps)
        param -= m_hat * lr * adaptive * rect
    else:
        param -= m_hat * lr


def radam_update_multi(xp, params, grads, states, *, lr, beta1, beta2, eps, weight_decay=0.0,
                       decoupled_weight_decay=False, maximize=False):
    """`radam_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"step"`` (1-based counts after this update), ``"exp_avg"`` and ``"exp_avg_sq"``."""
    for param, grad, m, v, step in zip(params, grads, states["exp_avg"], states["exp_avg_sq"], states["step"]):
        radam_update(xp, param, grad, m, v, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                     weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)


class RAdam(Optimizer):
    """``RAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
    *, maximize=False, foreach=None, capturable=False, differentiable=False)``

    The same trajectory as ``torch.optim.RAdam``. State per parameter: ``step``, ``exp_avg``,
    ``exp_avg_sq``."""

    _float_keys = ("lr", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, *, maximize=False, foreach=None, fused=None, capturable=False,
                 differentiable=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=bool(decoupled_weight_decay), maximize=maximize,
                        **implementation_flags("RAdam", foreach, fused, capturable, differentiable))
        super().__init__(params, defaults)

    def _normalize_group(self, group):
        normalize_betas(group)
        super()._normalize_group(group)

    def _validate(self, g):
        validate_adam_family(g)

    def _param_state(self, p, group):
        return self._counted_state(p, "exp_avg", "exp_avg_sq")

    def _step_group(self, group):
        beta1, beta2 = group["betas"]
        self._multi_tensor_step(group, radam_update_multi, ("step", "exp_avg", "exp_avg_sq"),
                                lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                                weight_decay=float(group["weight_decay"]),
                                decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"])
