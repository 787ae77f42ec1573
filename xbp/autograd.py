"""Graph control and gradient checking: no_grad, enable_grad, grad, gradcheck, gradgradcheck."""
from __future__ import annotations

import numpy as np

from ._debug import AnomalyError, detect_anomaly, is_anomaly_enabled, trace
from ._engine import backward, grad
from ._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ._tensor import Tensor, _wrap

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "grad", "backward",
           "gradcheck", "gradgradcheck", "GradcheckError", "trace", "detect_anomaly", "is_anomaly_enabled",
           "AnomalyError"]


class GradcheckError(AssertionError):
    """Analytical and numerical gradients disagree."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _host(t):
    return np.array(t.xp.to_numpy(t.array), dtype=np.float64, copy=True)


_ = Tensor


def _numeric_jacobian(fn, inputs, i, eps):
    """d outputs / d inputs[i] by central differences, one column per input element."""
    x = inputs[i]
    base = _host(x)
    cols = []
    for j in range(base.size):
        vals = []
        for sign in (1.0, -1.0):
            pert = base.copy()
            pert.reshape(-1)[j] += sign * eps
            xi = _wrap(x.xp.from_numpy(pert), x.xp, requires_grad=x.requires_grad)
            args = list(inputs)
            args[i] = xi
            outs = _as_tuple(fn(*args))   # with grad on: fn may itself take gradients
            vals.append(np.concatenate([_host(o).reshape(-1) for o in outs]))
        cols.append((vals[0] - vals[1]) / (2 * eps))
    return np.stack(cols, axis=1) if cols else np.zeros((0, 0))


def _analytic_jacobian(outs, inputs, i):
    rows = []
    for k, o in enumerate(outs):
        for j in range(o.numel()):
            onehot = np.zeros(o.numel())
            onehot[j] = 1.0
            gos = [(_wrap(o.xp.from_numpy(onehot.reshape(o.shape).astype(_host(o).dtype)), o.xp) if kk == k
                    else _wrap(oo.xp.zeros(oo.array.shape, dtype=oo.array.dtype), oo.xp)) for kk, oo in enumerate(outs)]
            live = [(oo, gg) for oo, gg in zip(outs, gos) if oo.requires_grad]
            if not live:
                rows.append(np.zeros(inputs[i].numel()))
                continue
            (gi,) = grad([oo for oo, _ in live], [inputs[i]], [gg for _, gg in live],
                         retain_graph=True, allow_unused=True)
            rows.append(np.zeros(inputs[i].numel()) if gi is None else _host(gi).reshape(-1))
    return np.stack(rows, axis=0)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True) -> bool:
    """Compare the gradients backward computes for ``fn(*inputs)`` with central finite differences.

    inputs: Tensors (float64 for those that require grad) or other arguments passed through. Works
    on any device. Raises GradcheckError naming the input and the worst element on a mismatch.
    """
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; finite differences need float64 inputs")
    outs = _as_tuple(fn(*inputs))
    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        num = _numeric_jacobian(fn, inputs, i, eps)
        ana = _analytic_jacobian(outs, inputs, i)
        if num.shape != ana.shape or not np.allclose(ana, num, atol=atol, rtol=rtol):
            err = np.abs(ana - num) if num.shape == ana.shape else None
            where = np.unravel_index(np.argmax(err), err.shape) if err is not None else "?"
            msg = (f"gradcheck: input {i} (shape {x.shape}): analytical and numerical Jacobians differ; "
                   f"max |diff| {err.max() if err is not None else 'shape mismatch'} at (output elem, input elem) {where}\n"
                   f"analytical:\n{ana}\nnumerical:\n{num}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True) -> bool:
    """Check second derivatives: gradcheck of the function (inputs, v) -> grad(fn(inputs)) · v,
    whose backward runs the VJPs themselves under create_graph."""
    inputs = _as_tuple(inputs)
    outs = _as_tuple(fn(*inputs))
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(_wrap(o.xp.from_numpy(rng.standard_normal(o.shape)), o.xp).requires_grad_()
                             for o in outs)
    grad_outputs = _as_tuple(grad_outputs)
    n_in = len(inputs)

    def first_order(*args):
        xs, gos = args[:n_in], args[n_in:]
        os_ = _as_tuple(fn(*xs))
        gs = grad(list(os_), [xs[i] for i in diff], list(gos), create_graph=True, allow_unused=True)
        return tuple(g if g is not None else _wrap(xs[i].xp.zeros(xs[i].array.shape, dtype=xs[i].array.dtype), xs[i].xp)
                     for g, i in zip(gs, diff))

    return gradcheck(first_order, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
