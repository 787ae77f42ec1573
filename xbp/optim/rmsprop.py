"""RMSprop (Hinton), optionally centered and with momentum."""
from __future__ import annotations

from .optimizer import Optimizer, implementation_flags, scalar_like

__all__ = ["RMSprop", "rmsprop_update", "rmsprop_update_multi"]


def rmsprop_update(xp, param, grad, square_avg, grad_avg, buf, *, lr, alpha, eps, weight_decay=0.0,
                   momentum=0.0, centered=False, maximize=False):
    """One RMSprop step on arrays, PyTorch's formula, in place on `param` and the state::

        g = -grad if maximize else grad
        g = g + weight_decay * param
        sq = alpha * sq + (1 - alpha) * g * g
        ga += (1 - alpha) * (g - ga);  avg = sqrt(sq - ga * ga)   (centered)
        avg = sqrt(sq)                                           (otherwise)
        buf = momentum * buf + g / (avg + eps);  param -= lr * buf   (momentum > 0)
        param -= lr * g / (avg + eps)                                (otherwise)

    `grad_avg` is None unless centered, `buf` None unless momentum > 0.
    """
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    square_avg *= alpha
    square_avg += (1.0 - alpha) * g * g
    if centered:
        grad_avg += (1.0 - alpha) * (g - grad_avg)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = xp.sqrt(square_avg) + eps
    if momentum > 0.0:
        buf *= momentum
        buf += g / avg
        param -= scalar_like(xp, lr, param) * buf
    else:
        param -= scalar_like(xp, lr, param) * (g / avg)


def rmsprop_update_multi(xp, params, grads, states, *, lr, alpha, eps, weight_decay=0.0, momentum=0.0,
                         centered=False, maximize=False):
    """`rmsprop_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"square_avg"``, ``"grad_avg"`` (used when centered) and ``"momentum_buffer"`` (used when
    momentum > 0), updated in place."""
    for param, grad, sq, ga, buf in zip(params, grads, states["square_avg"], states["grad_avg"],
                                        states["momentum_buffer"]):
        rmsprop_update(xp, param, grad, sq, ga if centered else None, buf if momentum > 0.0 else None,
                       lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                       centered=centered, maximize=maximize)


class RMSprop(Optimizer):
    """``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, maximize=False)``

    The same trajectory as ``torch.optim.RMSprop``. State per parameter: ``step``,
    ``square_avg`` (and ``momentum_buffer``, ``grad_avg`` when used)."""

    _float_keys = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False,
                 foreach=None, fused=None, capturable=False, differentiable=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize,
                        **implementation_flags('RMSprop', foreach, fused, capturable, differentiable))
        super().__init__(params, defaults)

    def _validate(self, g):
        if g["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {g['lr']} (must be >= 0)")
        if g["eps"] < 0.0:
            raise ValueError(f"Invalid epsilon value: {g['eps']} (must be >= 0)")
        if g["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {g['momentum']} (must be >= 0)")
        if g["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {g['weight_decay']} (must be >= 0)")
        if g["alpha"] < 0.0:
            raise ValueError(f"Invalid alpha value: {g['alpha']} (must be >= 0)")

    def _param_state(self, p, group):
        st = self.state[p]
        if not st:
            st["step"] = 0
            st["square_avg"] = self._zeros_state(p)
        if group["momentum"] > 0.0 and "momentum_buffer" not in st:
            st["momentum_buffer"] = self._zeros_state(p)
        if group["centered"] and "grad_avg" not in st:
            st["grad_avg"] = self._zeros_state(p)
        st["step"] += 1
        return st

    def _step_group(self, group):
        self._multi_tensor_step(group, rmsprop_update_multi, ("square_avg", "grad_avg", "momentum_buffer"),
                                lr=float(group["lr"]), alpha=float(group["alpha"]), eps=float(group["eps"]),
                                weight_decay=float(group["weight_decay"]), momentum=float(group["momentum"]),
                                centered=group["centered"], maximize=group["maximize"])
