"""PyTorch's ``torch.nn.utils``: gradient clipping (``clip_grad_norm_``, ``clip_grad_value_``),
``parameters_to_vector`` / ``vector_to_parameters``, and ``rnn`` (padding and packing sequences).

Gradient arrays may be shared between tensors (the engine hands one array to several leaves
where it can), so clipping rebinds ``p.grad`` to a new tensor instead of writing into the array.
"""
from __future__ import annotations

import math

from ..._tensor import Tensor, _wrap

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters", "rnn", "parametrize",
           "parametrizations", "weight_norm", "remove_weight_norm", "spectral_norm", "remove_spectral_norm",
           "get_total_norm", "clip_grads_with_norm_", "fuse_conv_bn_eval", "fuse_conv_bn_weights",
           "fuse_linear_bn_eval", "fuse_linear_bn_weights", "prune"]


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def _norm_pow(xp, g, p):
    """sum(|g|**p) (or max|g| for p=inf) as a 0-d array."""
    if p == math.inf:
        return xp.max(xp.abs(g)) if g.size else xp.zeros((), dtype=g.dtype)
    if p == 2.0:
        return xp.sum(g * g)
    if p == 1.0:
        return xp.sum(xp.abs(g))
    return xp.sum(xp.abs(g) ** p)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so that their joint `norm_type`-norm is at most `max_norm`.

    Returns the joint norm before clipping as a 0-d Tensor on the first gradient's device (no
    host synchronisation, unless ``error_if_nonfinite=True``, which reads it to check it).
    The scale is ``min(1, max_norm / (total_norm + 1e-6))``, as in PyTorch. `foreach` is accepted
    for PyTorch compatibility (the per-tensor loop is the only implementation)."""
    params = _grads(parameters)
    max_norm, p = float(max_norm), float(norm_type)
    if p <= 0.0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf), got {norm_type}")
    if not params:
        from ..._creation import tensor
        return tensor(0.0)
    xp = params[0].xp
    total = None
    for q in params:
        part = _norm_pow(q.xp, q.grad.array, p)
        if q.xp is not xp:                 # gradients on several devices: gather the scalars
            part = xp.from_numpy(q.xp.to_numpy(part))
        if total is None:
            total = part
        elif p == math.inf:
            total = xp.maximum(total, part)
        else:
            total = total + part
    if p == 2.0:
        total = xp.sqrt(total)
    elif p != math.inf and p != 1.0:
        total = total ** (1.0 / p)
    total = xp.asarray(total)
    if error_if_nonfinite and not bool(xp.to_numpy(xp.isfinite(total))):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           "non-finite, so they cannot be clipped; pass error_if_nonfinite=False to scale anyway")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for q in params:
        g = q.grad.array
        c = coef if q.xp is xp else q.xp.from_numpy(xp.to_numpy(coef))
        if c.dtype != g.dtype:
            c = q.xp.astype(c, g.dtype)
        q.grad = _wrap(g * c, q.xp)
    return _wrap(total, xp)


def _clip_grad_value(parameters, clip_value) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``."""
    v = float(clip_value)
    if v < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for q in _grads(parameters):
        q.grad = _wrap(q.xp.clip(q.grad.array, min=-v, max=v), q.xp)


def clip_grad_value_(parameters, clip_value, foreach=None) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``."""
    return _clip_grad_value(parameters, clip_value)


def parameters_to_vector(parameters):
    """Concatenate the parameters, each flattened, into one 1-D tensor (differentiable), all on one
    device."""
    from ... import ops
    params = list(parameters) if not isinstance(parameters, Tensor) else [parameters]
    if not params:
        raise ValueError("parameters_to_vector: got no parameters")
    dev = params[0].device
    for p in params:
        if p.device != dev:
            raise TypeError(f"parameters_to_vector: found parameters on {dev} and {p.device}; move them to one device")
    return ops.cat([ops.reshape(p, (-1,)) for p in params])


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of the 1-D `vec` into the parameters (in place, without recording),
    the inverse of parameters_to_vector."""
    from ...autograd import no_grad
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a Tensor, but got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: vec must be 1-D, got shape {vec.shape}")
    params = list(parameters) if not isinstance(parameters, Tensor) else [parameters]
    total = sum(p.numel() for p in params)
    if total != vec.shape[0]:
        raise ValueError(f"vector_to_parameters: vec has {vec.shape[0]} elements, the parameters {total}")
    i = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec.detach()[i:i + n].reshape(p.shape))
            i += n


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The `norm_type`-norm of all `tensors` together (e.g. gradients), as a 0-d tensor on the first
    one's device; PyTorch 2.6's split of clip_grad_norm_."""
    from ... import ops
    ts = [tensors] if isinstance(tensors, Tensor) else [t for t in tensors if t is not None]
    if not ts:
        from ..._creation import tensor
        return tensor(0.0)
    p = float(norm_type)
    if p == math.inf:
        total = ops.amax(ops.stack([ops.amax(ops.abs(t.detach())) for t in ts]))
    else:
        total = ops.norm(ops.stack([ops.norm(t.detach(), p) for t in ts]), p)
    if error_if_nonfinite and not bool(ops.isfinite(total).item()):
        raise RuntimeError(f"get_total_norm: the total norm of order {norm_type} is non-finite; pass "
                           "error_if_nonfinite=False to accept it")
    return total


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None) -> None:
    """Scale the gradients by min(1, max_norm / (total_norm + 1e-6)) (total_norm from get_total_norm)."""
    params = _grads(parameters)
    if not params:
        return
    coef = min(1.0, float(max_norm) / (float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
                                       + 1e-6))
    for q in params:
        q.grad = _wrap(q.grad.array * coef, q.xp)


from . import rnn, parametrize, parametrizations, prune  # noqa: E402
from .fusion import (  # noqa: E402,F401
    fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval, fuse_linear_bn_weights,
)
# the original hook-based forms, as torch.nn.utils.weight_norm / spectral_norm (the parametrization
# forms are nn.utils.parametrizations.weight_norm / spectral_norm)
from ._norm_hooks import remove_spectral_norm, remove_weight_norm, spectral_norm, weight_norm  # noqa: E402,F401
