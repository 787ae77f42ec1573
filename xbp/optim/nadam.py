"""NAdam (Dozat): Adam with Nesterov momentum and a momentum-decay schedule."""
from __future__ import annotations

from .adam import normalize_betas, validate_adam_family
from .optimizer import Optimizer, implementation_flags

__all__ = ["NAdam", "nadam_update", "nadam_update_multi"]


def nadam_update(xp, param, grad, exp_avg, exp_avg_sq, *, step, mu_product, lr, beta1, beta2, eps,
                 weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    """One NAdam step on arrays, PyTorch's formula, in place on `param` and the moments::

        g = -grad if maximize else grad
        param *= 1 - lr * weight_decay                 (decoupled_weight_decay)
        g = g + weight_decay * param                   (otherwise)
        mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay));  mu_{t+1} likewise
        mu_product *= mu_t
        m += (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        param -= lr * (1 - mu_t) / (1 - mu_product) * g / denom
        param -= lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * m / denom

    `step` is the 1-based step after this update and `mu_product` the product of the mu's before
    it; returns the new `mu_product` (a Python float)."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        if decoupled_weight_decay:
            param *= 1.0 - lr * weight_decay
        else:
            g = g + weight_decay * param
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    mu_product = mu_product * mu
    exp_avg += (1.0 - beta1) * (g - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    denom = xp.sqrt(exp_avg_sq / (1.0 - beta2 ** step)) + eps
    param -= (lr * (1.0 - mu) / (1.0 - mu_product)) * (g / denom)
    param -= (lr * mu_next / (1.0 - mu_product * mu_next)) * (exp_avg / denom)
    return mu_product


def nadam_update_multi(xp, params, grads, states, *, lr, beta1, beta2, eps, weight_decay=0.0,
                       momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    """`nadam_update` over lists of arrays (one device and dtype); ``states`` holds the lists
    ``"step"`` (1-based counts after this update), ``"mu_product"`` (Python floats before it),
    ``"exp_avg"`` and ``"exp_avg_sq"``. Returns ``{"mu_product": [new product per parameter]}``."""
    return {"mu_product": [
        nadam_update(xp, param, grad, m, v, step=step, mu_product=float(mu_product), lr=lr, beta1=beta1,
                     beta2=beta2, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                     decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        for param, grad, m, v, step, mu_product in zip(params, grads, states["exp_avg"], states["exp_avg_sq"],
                                                       states["step"], states["mu_product"])]}


class NAdam(Optimizer):
    """``NAdam(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
    decoupled_weight_decay=False, *, maximize=False, foreach=None, capturable=False, differentiable=False)``

    The same trajectory as ``torch.optim.NAdam``; ``decoupled_weight_decay=True`` is NAdamW. State
    per parameter: ``step``, ``mu_product``, ``exp_avg``, ``exp_avg_sq``."""

    _float_keys = ("lr", "eps", "weight_decay", "momentum_decay")
    _scalar_state = ("mu_product",)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, maximize=False, foreach=None, fused=None, capturable=False,
                 differentiable=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=bool(decoupled_weight_decay), maximize=maximize,
                        **implementation_flags("NAdam", foreach, fused, capturable, differentiable))
        super().__init__(params, defaults)

    def _normalize_group(self, group):
        normalize_betas(group)
        super()._normalize_group(group)

    def _validate(self, g):
        validate_adam_family(g)
        if g["momentum_decay"] < 0.0:
            raise ValueError(f"Invalid momentum_decay value: {g['momentum_decay']} (must be >= 0)")

    def _param_state(self, p, group):
        st = self.state[p]
        if not st:
            st["step"] = 0
            st["mu_product"] = 1.0
            st["exp_avg"] = self._zeros_state(p)
            st["exp_avg_sq"] = self._zeros_state(p)
        st["step"] += 1
        return st

    def _step_group(self, group):
        beta1, beta2 = group["betas"]
        self._multi_tensor_step(group, nadam_update_multi, ("step", "mu_product", "exp_avg", "exp_avg_sq"),
                                lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                                weight_decay=float(group["weight_decay"]),
                                momentum_decay=float(group["momentum_decay"]),
                                decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"])
