"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from .optimizer import Optimizer, implementation_flags, required, scalar_like

__all__ = ["SGD", "sgd_update", "sgd_update_multi"]


def sgd_update(xp, param, grad, buf, *, lr, weight_decay=0.0, momentum=0.0, dampening=0.0,
               nesterov=False, maximize=False):
    """One SGD step on arrays, PyTorch's formula, in place on `param` (and `buf`)::

        d = -grad if maximize else grad
        d = d + weight_decay * param
        buf = d (first step) | momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
        param -= lr * d

    Returns the momentum buffer: a new array on the first momentum step (`buf` None), else `buf`;
    None without momentum. `xp` is the parameter's Backend; hyperparameters are Python floats.
    """
    d = -grad if maximize else grad
    if weight_decay != 0.0:
        d = d + weight_decay * param
    if momentum != 0.0:
        if buf is None:
            buf = xp.asarray(d, copy=True)
        else:
            buf *= momentum
            buf += d if dampening == 0.0 else (1.0 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    param -= scalar_like(xp, lr, param) * d
    return buf


def sgd_update_multi(xp, params, grads, states, *, lr, weight_decay=0.0, momentum=0.0, dampening=0.0,
                     nesterov=False, maximize=False):
    """`sgd_update` over lists of arrays (one device and dtype): ``states["momentum_buffer"]`` is
    the list of buffers (None before the first momentum step), absent without momentum. Returns
    ``{"momentum_buffer": [buffer per parameter]}`` with momentum, else None."""
    if momentum == 0.0:
        for param, grad in zip(params, grads):
            sgd_update(xp, param, grad, None, lr=lr, weight_decay=weight_decay, maximize=maximize)
        return None
    return {"momentum_buffer": [
        sgd_update(xp, param, grad, buf, lr=lr, weight_decay=weight_decay, momentum=momentum,
                   dampening=dampening, nesterov=nesterov, maximize=maximize)
        for param, grad, buf in zip(params, grads, states["momentum_buffer"])]}


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)``

    The same trajectory as ``torch.optim.SGD``. State per parameter: ``momentum_buffer`` (with momentum)."""

    _float_keys = ("lr", "momentum", "dampening", "weight_decay")

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, foreach=None, fused=None, capturable=False, differentiable=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize,
                        **implementation_flags('SGD', foreach, fused, capturable, differentiable))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def _validate(self, g):
        if g["lr"] is not required and g["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {g['lr']} (must be >= 0)")
        if g["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {g['momentum']} (must be >= 0)")
        if g["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {g['weight_decay']} (must be >= 0)")

    def _step_group(self, group):
        mom = float(group["momentum"])
        # plain SGD names no state, so no (empty) entry is created: state dicts stay as PyTorch's
        self._multi_tensor_step(group, sgd_update_multi, ("momentum_buffer",) if mom != 0.0 else (),
                                lr=float(group["lr"]), weight_decay=float(group["weight_decay"]), momentum=mom,
                                dampening=float(group["dampening"]), nesterov=group["nesterov"],
                                maximize=group["maximize"])
