"""Adam (with AMSGrad and L2 weight decay) and AdamW (decoupled weight decay)."""
from __future__ import annotations

from .optimizer import Optimizer, implementation_flags, scalar_like

__all__ = ["Adam", "AdamW", "adam_update", "adam_update_multi"]


def adam_update(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False, maximize=False):
    """One Adam/AdamW step on arrays, PyTorch's formula, in place on `param` and the moments::

        g = -grad if maximize else grad
        param *= 1 - lr * weight_decay            (AdamW: decoupled)
        g = g + weight_decay * param              (Adam: L2 in the gradient)
        m += (1 - beta1) * (g - m)                (torch's lerp)
        v = beta2 * v + (1 - beta2) * g * g
        vmax = maximum(vmax, v); use vmax for v   (amsgrad)
        param -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

    `step` is the 1-based step count after this update; `max_exp_avg_sq` is None without amsgrad.
    """
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        if decoupled_weight_decay:
            param *= scalar_like(xp, 1.0 - lr * weight_decay, param)
        else:
            g = g + weight_decay * param
    exp_avg += (1.0 - beta1) * (g - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    if amsgrad:
        max_exp_avg_sq[...] = xp.maximum(max_exp_avg_sq, exp_avg_sq)
        v = max_exp_avg_sq
    else:
        v = exp_avg_sq
    step_size = scalar_like(xp, lr / (1.0 - beta1 ** step), param)
    bc2_sqrt = scalar_like(xp, (1.0 - beta2 ** step) ** 0.5, param)
    denom = xp.sqrt(v) / bc2_sqrt + eps
    param -= step_size * (exp_avg / denom)


def adam_update_multi(xp, params, grads, states, *, lr, beta1, beta2, eps, weight_decay=0.0,
                      decoupled_weight_decay=False, amsgrad=False, maximize=False):
    """`adam_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"step"`` (1-based counts after this update), ``"exp_avg"``, ``"exp_avg_sq"`` and
    ``"max_exp_avg_sq"`` (entries None without amsgrad). Everything is updated in place."""
    for param, grad, m, v, vmax, step in zip(params, grads, states["exp_avg"], states["exp_avg_sq"],
                                             states["max_exp_avg_sq"], states["step"]):
        adam_update(xp, param, grad, m, v, vmax if amsgrad else None, step=step, lr=lr, beta1=beta1,
                    beta2=beta2, eps=eps, weight_decay=weight_decay,
                    decoupled_weight_decay=decoupled_weight_decay, amsgrad=amsgrad, maximize=maximize)


def normalize_betas(group: dict) -> None:
    """``group["betas"]`` as a tuple of two Python floats (for every Adam-like algorithm)."""
    b = tuple(group["betas"])
    if len(b) != 2:
        raise ValueError(f"Invalid betas: {group['betas']} (expected two numbers)")
    group["betas"] = (float(b[0]), float(b[1]))


def validate_adam_family(g: dict) -> None:
    """PyTorch's checks for lr, eps, betas and weight_decay (NaN fails every comparison; inf lr,
    eps and weight_decay are refused earlier, in `Optimizer._normalize_group`)."""
    if g["lr"] < 0.0:
        raise ValueError(f"Invalid learning rate: {g['lr']} (must be >= 0)")
    if g["eps"] < 0.0:
        raise ValueError(f"Invalid epsilon value: {g['eps']} (must be >= 0)")
    for i, b in enumerate(g["betas"]):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b} (must be in [0, 1))")
    if g["weight_decay"] < 0.0:
        raise ValueError(f"Invalid weight_decay value: {g['weight_decay']} (must be >= 0)")


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False)``

    The same trajectory as ``torch.optim.Adam``. Weight decay is L2 added to the gradient (see
    `AdamW` for the decoupled form). State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``
    (and ``max_exp_avg_sq`` with amsgrad)."""

    _float_keys = ("lr", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, foreach=None, fused=None, capturable=False, differentiable=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, **implementation_flags(type(self).__name__, foreach, fused,
                                                                  capturable, differentiable))
        super().__init__(params, defaults)

    def _normalize_group(self, group):
        normalize_betas(group)
        super()._normalize_group(group)

    def _validate(self, g):
        validate_adam_family(g)

    def _param_state(self, p, group):
        st = self.state[p]
        amsgrad = group["amsgrad"]
        if not st:
            st["step"] = 0
            st["exp_avg"] = self._zeros_state(p)
            st["exp_avg_sq"] = self._zeros_state(p)
            if amsgrad:
                st["max_exp_avg_sq"] = self._zeros_state(p)
        elif amsgrad and "max_exp_avg_sq" not in st:
            st["max_exp_avg_sq"] = self._zeros_state(p)
        st["step"] += 1
        return st

    def _step_group(self, group):
        beta1, beta2 = (float(b) for b in group["betas"])
        self._multi_tensor_step(group, adam_update_multi, ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
                                lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                                weight_decay=float(group["weight_decay"]),
                                decoupled_weight_decay=self._decoupled, amsgrad=group["amsgrad"],
                                maximize=group["maximize"])


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False)``

    Adam with decoupled weight decay (Loshchilov & Hutter): ``param *= 1 - lr * weight_decay``
    before the Adam step. The same trajectory as ``torch.optim.AdamW``."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, fused=None, capturable=False, differentiable=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, foreach=foreach, fused=fused,
                         capturable=capturable, differentiable=differentiable)
