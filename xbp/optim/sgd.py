"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from .._tensor import _wrap
from .optimizer import Optimizer, implementation_flags, required

__all__ = ["SGD", "sgd_update"]


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
    param -= lr * d
    return buf


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
        lr = float(group["lr"])
        wd = float(group["weight_decay"])
        mom = float(group["momentum"])
        damp = float(group["dampening"])
        nesterov = group["nesterov"]
        maximize = group["maximize"]
        state = self.state
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            if mom != 0.0:
                st = state[p]
                buf = st.get("momentum_buffer")
                new = sgd_update(p.xp, p.array, g.array, None if buf is None else buf.array, lr=lr,
                                 weight_decay=wd, momentum=mom, dampening=damp, nesterov=nesterov,
                                 maximize=maximize)
                if buf is None:
                    st["momentum_buffer"] = _wrap(new, p.xp)
            else:
                sgd_update(p.xp, p.array, g.array, None, lr=lr, weight_decay=wd, maximize=maximize)
            p._version[0] += 1
