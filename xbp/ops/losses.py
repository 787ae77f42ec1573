"""Loss functions with PyTorch's semantics (``reduction="mean" | "sum" | "none"``).

Most losses are composites of primitives (so gradients of any order come for free). Three are
fused primitives, each for a stated reason:

cross_entropy (class-index targets): speed and stability. One forward computes log-softmax and
    picks the target entries (z = x - max, lse = log sum exp z, loss = lse - z[target]), so
    logits of 1e4 give a finite loss. Its VJP is the textbook  d loss / d x = p - onehot(target)
    (times the per-sample weight and the reduction's scale) from the softmax probabilities p
    kept from forward: one node instead of ~8, and nothing but p and the targets saved.
binary_cross_entropy: PyTorch clamps log(x) and log(1 - x) at -100 so x = 0 or 1 gives a finite
    loss; as a composite the clamp would send 0 * inf = nan back through log.
binary_cross_entropy_with_logits: stability. softplus(-x) = log1p(exp(-|x|)) + max(-x, 0) and a
    stable sigmoid in the VJP, so no exp overflows for large |x|.
"""
from __future__ import annotations

import functools

import math
import warnings

from .._backend import check_range
from .._primitive import Primitive, apply
from .._tensor import Tensor, _wrap
from . import elementwise as E, fused, reduce as R, shape as S
from .index import gather_p

__all__ = [
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
]

_REDUCTIONS = ("mean", "sum", "none")


# --- argument checks shared by the losses -------------------------------------------------------
def _check_reduction(name, reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{name}: reduction must be one of {', '.join(map(repr, allowed))}; got {reduction!r}")


def _check_float_tensor(name, what, t):
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {what} must be an xbp Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise TypeError(f"{name}: {what} must be a floating-point tensor, got dtype {t.dtype}")


def _check_same_shape(name, input, target, strict):
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: target must be an xbp Tensor, got {type(target).__name__}")
    if input.shape != target.shape:
        msg = (f"{name}: target shape {target.shape} differs from input shape {input.shape}")
        if strict:
            raise ValueError(msg + "; they must match")
        a, b = input.shape, target.shape
        n = max(len(a), len(b))
        a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
        if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
            raise ValueError(msg + "; they cannot even be broadcast together. Make them the same shape.")
        # PyTorch broadcasts with a warning: (N, 1) against (N,) silently becomes (N, N)
        warnings.warn(msg + "; they will be broadcast, which is likely wrong. Make them the same shape.",
                      stacklevel=3)


def _reduce(loss, reduction):
    if reduction == "mean":
        return R.mean(loss)
    if reduction == "sum":
        return R.sum(loss)
    return loss


@functools.lru_cache(maxsize=256)
def _class_message(name, input_shape, n_classes, ignore_index, deferred):
    # cached: formatting it (~1.3 us) on every loss call would cost more than the check itself
    return (f"{name}: target class index out of range: targets span [{{lo}}, {{hi}}]"
            f"{' (ignored ones as 0)' if deferred else ''} but the input (shape {input_shape}) has "
            f"{n_classes} classes; class indices must be in [0, {n_classes - 1}] (or equal "
            f"ignore_index={ignore_index})")


def _check_classes(name, input_shape, t, n_classes, ignore_index):
    """Validate class targets on every device (CuPy would wrap an out-of-range index silently,
    so this cannot be left to the gather). Returns (masked, deferred): whether some targets may
    equal `ignore_index` (then the loss masks them), and None or the message of the check that the
    caller runs on the masked targets. One host transfer on the common path: min and max together.

    Where a host read is a device sync (`Backend.defers_checks`: CuPy) nothing is read here: the
    loss takes the masked path (whose result is the same when nothing is ignored; whether
    something is cannot be known without a read) and checks the range of its masked targets
    (ignored ones as class 0) with `check_range`, which raises at the next host read or
    synchronize()."""
    xp = t.xp
    if t.numel() == 0:
        return False, None
    message = _class_message(name, input_shape, n_classes, ignore_index, xp.defers_checks)
    if xp.defers_checks:
        return True, message
    masked = xp.check_span(t.array, 0, n_classes - 1, message, IndexError, ignore=ignore_index)
    return masked, None


def _check_weight(name, weight, input, n_classes):
    if weight is None:
        return
    _check_float_tensor(name, "weight", weight)
    if weight.shape != (n_classes,):
        raise ValueError(f"{name}: weight must have shape ({n_classes},) (one per class), got {weight.shape}")
    if weight.xp is not input.xp:
        raise RuntimeError(f"{name}: weight is on {weight.device}, input on {input.device}; move it with .to()")


# --- cross entropy: the fused primitive ---------------------------------------------------------
# Layout: logits x (N, C, d1, ...), class axis 1; targets t (N, d1, ...), kept as ti (N, 1, d1, ...).
# Per sample, with a_i = (1 - eps) * w[t_i] * valid_i and b_i = eps / C * valid_i:
#     l_i = a_i * (lse_i - z_i,t_i) + b_i * sum_c w_c (lse_i - z_ic)
#     d l_i / d x_ic = A_i p_ic - D_ic,  A_i = a_i + b_i W (W = sum_c w_c),  D_ic = a_i [c == t_i] + b_i w_c
# mean divides by sum_i w[t_i] valid_i (PyTorch's weighted mean, also for the smoothing term).
# On the hot path (no weight, no smoothing, nothing ignored) a = 1, b = 0: grad = (p - onehot) / N.
def _ce_fwd(xp, x, t, w=None, *, reduction, eps, ignore_index, masked, check=None):
    C = x.shape[1]
    if w is not None and w.dtype != x.dtype:
        w = xp.astype(w, x.dtype)             # a float64 weight must not promote a float32 loss
    z = x - xp.max(x, axis=1, keepdims=True)
    e = xp.exp(z)
    s = xp.sum(e, axis=1, keepdims=True)
    lse = xp.log(s)
    e *= 1.0 / s                 # p = softmax, in e's buffer: one (N, C) allocation fewer on the hot path
    p = e
    ti = xp.reshape(t, (t.shape[0], 1) + tuple(t.shape[1:]))   # (cheaper than expand_dims in NumPy)
    valid = None
    if masked:
        valid = ti != ignore_index
        ti = xp.where(valid, ti, 0)
        if check is not None:                              # deferred class check (_check_classes)
            check_range(xp, ti, 0, C - 1, check)
    nll = lse - xp.take_along_axis(z, ti, axis=1)          # -log p[target], shape (N, 1, d...)
    if w is None and eps == 0.0 and valid is None:         # the hot path
        l, A, a1, b, denom = nll, None, None, None, None
    elif w is None and eps == 0.0:
        # the hot path with ignored targets (always taken where the class check is deferred):
        # a1 = valid as 0/1, denom = how many are kept; the VJP is (p - onehot) * valid
        a1 = xp.astype(valid, x.dtype)
        l, A, b = nll * a1, None, None
        denom = xp.sum(a1) if reduction == "mean" else None
    else:
        a = None                                           # w[t] * valid, or None for all ones
        if w is not None:
            a = xp.reshape(xp.take(w, xp.reshape(ti, (-1,)), axis=0), ti.shape)
        if valid is not None:
            vf = xp.astype(valid, x.dtype)
            a = vf if a is None else a * vf
        denom = xp.sum(a) if a is not None else None
        a1 = (1.0 - eps) if a is None else a * (1.0 - eps)
        l = nll * a1
        A, b = a1, None
        if eps > 0.0:
            b = eps / C if valid is None else vf * (eps / C)
            wb = None if w is None else xp.reshape(w, (C,) + (1,) * (x.ndim - 2))
            lz = lse - z                                   # -log p, >= 0
            l = l + b * xp.sum(lz if wb is None else lz * wb, axis=1, keepdims=True)
            A = a1 + b * (C if w is None else xp.sum(w))
    if reduction == "none":
        out = xp.reshape(l, t.shape)
    else:
        out = xp.sum(l)
        if reduction == "mean":
            out = out / (denom if denom is not None else float(math.prod(t.shape)))
    return out, (p, ti, A, a1, b, denom)


def _ce_vjp(c, g):
    graph = isinstance(g, Tensor)
    if graph:    # the residuals as arrays (under create_graph they come as constant Tensors)
        p, ti, A, a1, b, denom = (r.array if isinstance(r, Tensor) else r for r in c.res)
    else:
        p, ti, A, a1, b, denom = c.res
    x = c.ins[0]
    dt = p.dtype
    if graph:
        # create_graph: c.xp is the tensor namespace and the gradient must stay a differentiable
        # function of the logits, which the saved probabilities are not (a constant); so p is
        # recomputed from the saved logits with the fused softmax. Targets, weights and the
        # per-sample coefficients are constants: the arrays below are wrapped by `k`.
        be = x.xp
        p = fused.softmax(x, 1)
        k = lambda a: a if a is None or isinstance(a, float) else _wrap(a, be)  # noqa: E731
    else:
        be = c.xp
        k = lambda a: a  # noqa: E731
    xp = c.xp
    red = c.p["reduction"]
    if red == "none":
        gs = xp.reshape(g, ti.shape)                      # (N, d...) -> (N, 1, d...)
    elif red == "mean":
        # every target ignored: loss 0/0 = NaN, gradient 0 (as PyTorch)
        if denom is not None and A is None:     # a count of kept targets (the masked hot path)
            denom = be.maximum(denom, 1.0)
        elif denom is not None:
            denom = be.where(denom == 0, be.ones_like(denom), denom)
        gs = g / (k(denom) if denom is not None else float(math.prod(ti.shape)))
    else:
        gs = g
    C = p.shape[1]
    onehot = be.astype(ti == _class_ids(be, C, ti.ndim, ti.dtype), dt)     # (N, C, d...)
    if A is None and a1 is not None:                      # masked hot path: ignored samples get 0
        gs = gs * k(a1)
    if A is None:                                         # hot path: (p - onehot) * gs
        if not graph:
            # first order: build it in the one-hot buffer we own (one (N, C) allocation in all)
            onehot -= p
            onehot *= -gs
            gx = onehot
        else:
            gx = (p - k(onehot)) * gs
    else:
        d = onehot * a1
        if b is not None:
            w = c.ins[2] if len(c.ins) > 2 else None
            wb = 1.0 if w is None else be.reshape(w if not isinstance(w, Tensor) else w.array,
                                                  (C,) + (1,) * (p.ndim - 2))
            d = d + b * wb
        gx = (p * k(A) - k(d)) * gs
    return (gx,) + (None,) * (len(c.ins) - 1)


cross_entropy_p = Primitive("cross_entropy", _ce_fwd, _ce_vjp, save="in", res=True)


_CLASS_IDS: dict = {}


def _class_ids(be, C, ndim, dtype):
    """arange(C) shaped (C, 1, ...) to broadcast against targets (N, 1, d...), cached per
    backend/size/rank/dtype (never written to)."""
    key = (be, C, ndim, dtype)
    ids = _CLASS_IDS.get(key)
    if ids is None:
        ids = be.reshape(be.arange(0, C, dtype=dtype), (C,) + (1,) * (ndim - 2))
        if len(_CLASS_IDS) < 256:
            _CLASS_IDS[key] = ids
    return ids


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0):
    """Cross entropy between logits and targets (PyTorch's ``F.cross_entropy``).

    input: logits (N, C), (N, C, d1, ...) or unbatched (C,).
    target: class indices, an integer tensor (N,) / (N, d1, ...) / (); entries equal to
        `ignore_index` are left out. Or class probabilities: a float tensor of the input's shape.
    weight: (C,) per-class weights; "mean" then divides by the summed weights of the targets.
    label_smoothing: eps in [0, 1]: the target becomes (1 - eps) onehot + eps / C.
    Returns a scalar, or (N, d1, ...) with ``reduction="none"``.
    """
    name = "cross_entropy"
    _check_float_tensor(name, "input", input)
    _check_reduction(name, reduction)
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: target must be an xbp Tensor (class indices or probabilities), "
                        f"got {type(target).__name__}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 0:
        raise ValueError(f"{name}: input must be (C,), (N, C) or (N, C, d1, ...); got a 0-d tensor")
    unbatched = input.ndim == 1
    C = input.shape[0] if unbatched else input.shape[1]
    _check_weight(name, weight, input, C)
    kind = target.dtype.kind
    if kind == "f":
        if target.shape != input.shape:
            raise ValueError(
                f"{name}: a floating-point target is read as class probabilities and must have the "
                f"input's shape {input.shape}; got target shape {target.shape}. For class indices pass "
                "an integer tensor (target.long()).")
        return _cross_entropy_probs(input, target, weight, reduction, eps, unbatched)
    if kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class indices or float probabilities, "
                        f"got dtype {target.dtype}")
    expected = () if unbatched else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"{name}: class-index target must have shape {expected} for input shape "
                         f"{input.shape} (N, C, d1, ...); got {target.shape}")
    masked, check = _check_classes(name, input.shape, target, C, ignore_index)
    if unbatched:
        input, target = S.reshape(input, (1, C)), S.reshape(target, (1,))
    args = (input, target) if weight is None else (input, target, weight)
    params = {"reduction": reduction, "eps": eps, "ignore_index": int(ignore_index), "masked": masked}
    if check is not None:
        params["check"] = check
    out = apply(cross_entropy_p, args, params)
    if unbatched and reduction == "none":
        out = S.reshape(out, ())
    return out


def _cross_entropy_probs(input, target, weight, reduction, eps, unbatched):
    """Probability targets (soft labels): a composite, so the target gets a gradient too.
    "mean" divides by the number of samples N * d1 * ..., whatever the weights (as PyTorch)."""
    C = input.shape[0] if unbatched else input.shape[1]
    if unbatched:
        input, target = S.reshape(input, (1, C)), S.reshape(target, (1, C))
    if eps > 0.0:
        target = target * (1.0 - eps) + eps / C
    prod = fused.log_softmax(input, 1) * target
    if weight is not None:
        prod = prod * S.reshape(weight, (C,) + (1,) * (input.ndim - 2))
    if reduction == "none":
        out = -R.sum(prod, 1)
        return S.reshape(out, ()) if unbatched else out
    total = -R.sum(prod)
    if reduction == "sum":
        return total
    return total / float(input.numel() // C)


# --- nll_loss: a composite (gather, weights, reduction) -------------------------------------------
def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """Negative log-likelihood of log-probabilities `input` (N, C, d1, ...) or (C,) at integer
    class `target` (N, d1, ...) or (): loss_i = -w[t_i] input[i, t_i]; "mean" divides by the
    summed weights of the non-ignored targets (PyTorch's ``F.nll_loss``)."""
    name = "nll_loss"
    _check_float_tensor(name, "input", input)
    _check_reduction(name, reduction)
    if not isinstance(target, Tensor) or target.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must be an integer tensor of class indices, got "
                        f"{target.dtype if isinstance(target, Tensor) else type(target).__name__}")
    if input.ndim == 0:
        raise ValueError(f"{name}: input must be (C,), (N, C) or (N, C, d1, ...); got a 0-d tensor")
    unbatched = input.ndim == 1
    C = input.shape[0] if unbatched else input.shape[1]
    expected = () if unbatched else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"{name}: target must have shape {expected} for input shape {input.shape}; "
                         f"got {target.shape}")
    _check_weight(name, weight, input, C)
    masked, check = _check_classes(name, input.shape, target, C, ignore_index)
    if unbatched:
        input, target = S.reshape(input, (1, C)), S.reshape(target, (1,))
    xp = input.xp
    ti = xp.expand_dims(target.array, axis=1)
    a = None                                   # w[t] * valid as a constant array (N, 1, d...)
    if masked:
        valid = ti != ignore_index
        ti = xp.where(valid, ti, 0)
        if check is not None:                  # deferred class check (_check_classes)
            check_range(xp, ti, 0, C - 1, check)
        a = xp.astype(valid, input.array.dtype)
    if weight is not None:
        wt = xp.astype(xp.reshape(xp.take(weight.array, xp.reshape(ti, (-1,)), axis=0), ti.shape), input.array.dtype)
        a = wt if a is None else a * wt
    picked = apply(gather_p, (input, _wrap(ti, xp)), {"axis": 1})     # input[i, t_i], (N, 1, d...)
    loss = -picked if a is None else picked * _wrap(-a, xp)
    if reduction == "none":
        return S.reshape(loss, () if unbatched else target.shape)
    if reduction == "sum":
        return R.sum(loss)
    if a is None:
        return R.sum(loss) / float(target.numel())
    # mean over the kept weights; with every target ignored PyTorch's loss is 0/0 = NaN but its
    # gradient is 0, so divide by a safe count and add the NaN as a constant
    n = xp.sum(a)
    empty = n == 0
    safe = xp.where(empty, xp.ones_like(n), n)
    out = R.sum(loss) / _wrap(safe, xp)
    return out + _wrap(xp.where(empty, xp.full((), math.nan, dtype=n.dtype), xp.zeros_like(n)), xp)


# --- regression losses: composites ----------------------------------------------------------------
def mse_loss(input, target, reduction: str = "mean"):
    """Mean squared error: (input - target)^2, reduced."""
    _check_reduction("mse_loss", reduction)
    _check_same_shape("mse_loss", input, target, strict=False)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction: str = "mean"):
    """Mean absolute error: |input - target|, reduced."""
    _check_reduction("l1_loss", reduction)
    _check_same_shape("l1_loss", input, target, strict=False)
    return _reduce(E.abs(input - target), reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta = 0 is L1."""
    _check_reduction("smooth_l1_loss", reduction)
    _check_same_shape("smooth_l1_loss", input, target, strict=False)
    beta = float(beta)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    d = input - target
    ad = E.abs(d)
    if beta == 0.0:
        return _reduce(ad, reduction)
    return _reduce(E.where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (d = input - target)."""
    _check_reduction("huber_loss", reduction)
    _check_same_shape("huber_loss", input, target, strict=False)
    delta = float(delta)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    d = input - target
    ad = E.abs(d)
    return _reduce(E.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


# --- binary cross entropy: fused for the clamp ------------------------------------------------------
def _clamped_logs(xp, x):
    """max(log x, -100) and max(log(1 - x), -100), without evaluating log(0)."""
    pos, below1 = x > 0, x < 1
    lx = xp.where(pos, xp.log(xp.where(pos, x, 1.0)), -100.0)
    l1x = xp.where(below1, xp.log1p(-xp.where(below1, x, 0.0)), -100.0)
    return xp.maximum(lx, -100.0), xp.maximum(l1x, -100.0)


def _bce_fwd(xp, x, t):
    lx, l1x = _clamped_logs(xp, x)
    return -(t * lx + (1.0 - t) * l1x)


def _bce_vjp(c, g):
    # d/dx = (x - t) / (x (1 - x)), with the denominator kept >= 1e-12 (PyTorch's EPSILON);
    # d/dt = log(1 - x) - log(x) (clamped logs)
    xp = c.xp
    x, t = c.ins
    gx = gt = None
    if c.needs[0]:
        gx = g * (x - t) / xp.maximum(x * (1.0 - x), 1e-12)
    if c.needs[1]:
        lx, l1x = _clamped_logs(xp, x)
        gt = g * (l1x - lx)
    return gx, gt


bce_p = Primitive("binary_cross_entropy", _bce_fwd, _bce_vjp, save="in")


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean"):
    """-w (t log x + (1 - t) log(1 - x)) for probabilities `input` in [0, 1] (logs clamped at
    -100, as PyTorch). Prefer `binary_cross_entropy_with_logits` on logits (more stable)."""
    name = "binary_cross_entropy"
    _check_float_tensor(name, "input", input)
    _check_reduction(name, reduction)
    _check_same_shape(name, input, target, strict=True)
    _check_float_tensor(name, "target", target)
    if input.numel():    # one host read for both bounds (or none: deferred, see check_range)
        check_range(input.xp, input.array, 0.0, 1.0,
                    f"{name}: input must hold probabilities in [0, 1], got values in [{{lo}}, {{hi}}]; "
                    "apply sigmoid first, or use binary_cross_entropy_with_logits on the logits", ValueError)
    loss = apply(bce_p, (input, target))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _stable_sigmoid(xp, x):
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus_neg(xp, x):
    """softplus(-x) = log(1 + exp(-x)), exact for large |x|."""
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0.0)


def _bcel_fwd(xp, x, t, pw=None):
    sp = _softplus_neg(xp, x)
    if pw is None:
        return (1.0 - t) * x + sp
    return (1.0 - t) * x + (1.0 + (pw - 1.0) * t) * sp


def _bcel_vjp(c, g):
    # l = (1 - t) x + lw softplus(-x), lw = 1 + (pw - 1) t:
    #   dl/dx = (1 - t) - lw sigmoid(-x),  dl/dt = -x + (pw - 1) softplus(-x),  dl/dpw = t softplus(-x)
    xp = c.xp
    x, t = c.ins[0], c.ins[1]
    pw = c.ins[2] if len(c.ins) > 2 else None
    out = [None] * len(c.ins)
    if c.needs[0]:
        lw = 1.0 if pw is None else 1.0 + (pw - 1.0) * t
        out[0] = g * ((1.0 - t) - lw * _stable_sigmoid(xp, -x))
    if c.needs[1] or (pw is not None and c.needs[2]):
        sp = _softplus_neg(xp, x)
        if c.needs[1]:
            out[1] = g * (-x) if pw is None else g * ((pw - 1.0) * sp - x)
        if pw is not None and c.needs[2]:
            out[2] = g * t * sp
    return tuple(out)


bce_logits_p = Primitive("binary_cross_entropy_with_logits", _bcel_fwd, _bcel_vjp, save="in")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean", pos_weight=None):
    """Sigmoid + binary cross entropy in one stable expression (PyTorch's formula):
    l = w [(1 - t) x + (1 + (pos_weight - 1) t) log(1 + exp(-x))].
    pos_weight broadcasts against the last dim (one per class) and scales the positive term."""
    name = "binary_cross_entropy_with_logits"
    _check_float_tensor(name, "input", input)
    _check_reduction(name, reduction)
    _check_same_shape(name, input, target, strict=True)
    _check_float_tensor(name, "target", target)
    args = (input, target) if pos_weight is None else (input, target, pos_weight)
    loss = apply(bce_logits_p, args)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# --- KL divergence: a composite ---------------------------------------------------------------------
def kl_div(input, target, reduction: str = "mean", log_target: bool = False):
    """KL(target || exp(input)) pointwise, with `input` log-probabilities: target (log target -
    input), 0 where target = 0 (or exp(t) (t - input) with ``log_target``). "batchmean" divides
    the sum by the batch size input.shape[0] (the true KL divergence per sample); "mean"
    divides by the number of elements, as PyTorch."""
    name = "kl_div"
    _check_reduction(name, reduction, _REDUCTIONS + ("batchmean",))
    _check_float_tensor(name, "input", input)
    _check_float_tensor(name, "target", target)
    if input.shape != target.shape:
        warnings.warn(f"{name}: target shape {target.shape} differs from input shape {input.shape}; "
                      "they will be broadcast", stacklevel=2)
    if log_target:
        loss = E.exp(target) * (target - input)
    else:
        pos = target > 0
        xlogx = E.where(pos, target * E.log(E.where(pos, target, 1.0)), 0.0)   # 0 log 0 = 0
        loss = xlogx - target * input
    if reduction == "batchmean":
        total = R.sum(loss)
        return total / float(input.shape[0]) if input.ndim else total
    return _reduce(loss, reduction)
