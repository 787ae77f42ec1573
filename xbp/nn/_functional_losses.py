"""Functional forms of the second wave of losses (re-exported by ``xbp.nn.functional``):
cosine_embedding_loss, margin_ranking_loss, triplet_margin_loss, hinge_embedding_loss,
soft_margin_loss, poisson_nll_loss, gaussian_nll_loss and ctc_loss, with PyTorch's formulas and
arguments. All are composed from differentiable ops; CTC runs the forward (alpha) recursion in log
space, and its gradient is the backward pass through that recursion (the beta recursion of the
textbook formulation, derived by the engine)."""
from __future__ import annotations

import math

import numpy as np

from .. import _creation, ops
from .._tensor import Tensor
from ..ops.losses import _check_reduction, _reduce
from ._functional_layers import pairwise_distance

__all__ = [
    "cosine_embedding_loss", "margin_ranking_loss", "triplet_margin_loss", "hinge_embedding_loss",
    "soft_margin_loss", "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss", "multilabel_soft_margin_loss",
    "multi_margin_loss", "triplet_margin_with_distance_loss", "multilabel_margin_loss",
]


def _legacy_reduction(name, size_average, reduce, reduction):
    """PyTorch's deprecated size_average/reduce pair -> a reduction string."""
    if size_average is None and reduce is None:
        _check_reduction(name, reduction)
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return ("mean" if size_average else "sum") if reduce else "none"


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                          reduction="mean"):
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1.
    input1, input2 (N, D) or (D,); target (N,) or () of 1 / -1. cos uses |x|^2 + 1e-12 (PyTorch's)."""
    reduction = _legacy_reduction("cosine_embedding_loss", size_average, reduce, reduction)
    if input1.shape != input2.shape or input1.ndim not in (1, 2):
        raise ValueError(f"cosine_embedding_loss: input1 {input1.shape} and input2 {input2.shape} must be the "
                         "same shape, (N, D) or (D,)")
    d = input1.ndim - 1
    eps = 1e-12
    cos = ops.sum(input1 * input2, d) / ops.sqrt((ops.sum(input1 * input1, d) + eps) *
                                                 (ops.sum(input2 * input2, d) + eps))
    pos = ops.where(target == 1, 1.0 - cos, 0.0)
    neg = ops.where(target == -1, ops.clamp(cos - float(margin), min=0.0), 0.0)
    return _reduce(pos + neg, reduction)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -target (x1 - x2) + margin), target 1 (x1 should rank higher) or -1."""
    reduction = _legacy_reduction("margin_ranking_loss", size_average, reduce, reduction)
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise ValueError(f"margin_ranking_loss: all inputs should have the same dimension, got {input1.shape}, "
                         f"{input2.shape} and {target.shape}")
    return _reduce(ops.clamp(-target * (input1 - input2) + float(margin), min=0.0), reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with d the pairwise_distance (p-norm, eps); swap: d(a, n)
    becomes min(d(a, n), d(p, n)). anchor, positive, negative (N, D) or (D,)."""
    reduction = _legacy_reduction("triplet_margin_loss", size_average, reduce, reduction)
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(f"triplet_margin_loss: anchor {anchor.shape}, positive {positive.shape} and negative "
                           f"{negative.shape} must have the same number of dimensions")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ops.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(ops.clamp(d_pos - d_neg + float(margin), min=0.0), reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):  # noqa: A002
    """x where target is 1, max(0, margin - x) where target is -1."""
    reduction = _legacy_reduction("hinge_embedding_loss", size_average, reduce, reduction)
    m = ops.clamp(float(margin) - input, min=0.0)
    out = ops.where(target == 1, input, 0.0) + ops.where(target == -1, m, 0.0)
    return _reduce(out, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):  # noqa: A002
    """log(1 + exp(-target x)) (target 1 or -1), computed as softplus(-target x)."""
    reduction = _legacy_reduction("soft_margin_loss", size_average, reduce, reduction)
    return _reduce(ops.softplus(-target * input), reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,  # noqa: A002
                     reduce=None, reduction="mean"):
    """Negative log-likelihood of target ~ Poisson(rate): exp(x) - t x with log_input (x = log rate),
    else x - t log(x + eps); full adds Stirling's t log t - t + log(2 pi t)/2 where t > 1."""
    reduction = _legacy_reduction("poisson_nll_loss", size_average, reduce, reduction)
    if log_input:
        loss = ops.exp(input) - target * input
    else:
        loss = input - target * ops.log(input + float(eps))
    if full:
        t = target.detach()
        safe = ops.where(t > 1, t, 1.0)
        stirling = safe * ops.log(safe) - safe + 0.5 * ops.log(2 * math.pi * safe)
        loss = loss + ops.where(t > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):  # noqa: A002
    """(log(max(var, eps)) + (input - target)^2 / max(var, eps)) / 2 (+ log(2 pi)/2 when full).

    var: input's shape, input's shape without the last dim, or with a last dim of 1 (one variance
    per sample), or a float. As PyTorch, the clamp at eps does not stop the gradient (var is clamped
    in place under no_grad, so the gradient flows as if unclamped)."""
    _check_reduction("gaussian_nll_loss", reduction)
    if not isinstance(var, Tensor):
        var = _creation.full(input.shape, float(var), dtype=input.dtype, device=input.device)
    if var.shape != input.shape:
        if input.shape[:-1] == var.shape:
            var = ops.unsqueeze(var, -1)
        elif not (input.shape[:-1] == var.shape[:-1] and var.shape[-1:] == (1,)):
            raise ValueError(f"gaussian_nll_loss: var is of incorrect size {var.shape} for input {input.shape}")
    if bool(ops.any(var.detach() < 0).item()):
        raise ValueError("gaussian_nll_loss: var has negative entry/entries")
    v = var.detach()
    var = var + (ops.clamp(v, min=float(eps)) - v)     # the clamped value, the identity's gradient
    loss = 0.5 * (ops.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# --- CTC ---------------------------------------------------------------------------------------------
_NEG = -1e30   # log(0) as a finite number: logsumexp over all-"zero" terms then has finite gradients


def _host_ints(name, v):
    if isinstance(v, Tensor):
        if v.dtype.kind not in "iu":
            raise TypeError(f"ctc_loss: {name} must be an integer tensor, got dtype {v.dtype}")
        return np.asarray(v.detach().numpy(), dtype=np.int64).reshape(-1)
    return np.asarray(v, dtype=np.int64).reshape(-1)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",  # noqa: C901
             zero_infinity=False):
    """Connectionist Temporal Classification loss: -log sum over alignments of prod_t p_t(label).

    log_probs (T, N, C) (log_softmax outputs; unbatched (T, C)); targets (N, S) padded or the 1-D
    concatenation of all targets (sum(target_lengths),); input_lengths (N,), target_lengths (N,)
    (tensors or sequences). Labels may not be `blank`. reduction 'mean': each loss is divided by its
    target length (at least 1), then averaged over the batch; 'sum'; 'none' -> (N,). Impossible
    alignments give inf (0 with zero_infinity, which also zeroes their gradient).

    The gradient is the exact derivative of the loss with respect to log_probs (-posterior of each
    label at each step). PyTorch's own kernel returns exp(log_probs) - posterior instead (a shortcut
    that is right only once propagated through a log_softmax); through log_softmax both agree."""
    _check_reduction("ctc_loss", reduction)
    if log_probs.dtype.kind != "f":
        raise TypeError(f"ctc_loss: log_probs must be floating point, got dtype {log_probs.dtype}")
    unbatched = log_probs.ndim == 2
    lp = ops.unsqueeze(log_probs, 1) if unbatched else log_probs
    if lp.ndim != 3:
        raise ValueError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got {log_probs.shape}")
    T, N, C = lp.shape
    il = _host_ints("input_lengths", input_lengths)
    tl = _host_ints("target_lengths", target_lengths)
    tg_arr = np.asarray(targets.detach().numpy() if isinstance(targets, Tensor) else targets, dtype=np.int64)
    if unbatched:
        tg_arr = tg_arr.reshape(-1)
    if il.shape != (N,) or tl.shape != (N,):
        raise ValueError(f"ctc_loss: input_lengths {il.shape} and target_lengths {tl.shape} must have one entry "
                         f"per batch element ({N})")
    if (il < 0).any() or (il > T).any():
        raise ValueError(f"ctc_loss: input_lengths must be in [0, {T}], got {il.tolist()}")
    if (tl < 0).any():
        raise ValueError(f"ctc_loss: target_lengths must be non-negative, got {tl.tolist()}")
    if not 0 <= blank < C:
        raise ValueError(f"ctc_loss: blank ({blank}) must be in [0, {C})")
    S = int(tl.max()) if N else 0
    padded = np.full((N, S), blank, dtype=np.int64)
    if tg_arr.ndim == 1:                       # concatenated targets
        if tg_arr.shape[0] != tl.sum():
            raise ValueError(f"ctc_loss: 1-D targets have {tg_arr.shape[0]} labels, target_lengths sum to "
                             f"{int(tl.sum())}")
        offs = np.concatenate([[0], np.cumsum(tl)])
        for n in range(N):
            padded[n, :tl[n]] = tg_arr[offs[n]:offs[n + 1]]
    else:
        if tg_arr.shape[0] != N or tg_arr.shape[1] < S:
            raise ValueError(f"ctc_loss: targets {tg_arr.shape} must be (N={N}, S>={S}) or 1-D")
        for n in range(N):
            padded[n, :tl[n]] = tg_arr[n, :tl[n]]
    used = padded[np.arange(S)[None, :] < tl[:, None]]
    if used.size and ((used < 0).any() or (used >= C).any() or (used == blank).any()):
        raise ValueError(f"ctc_loss: target labels must be in [0, {C}) and differ from blank ({blank})")

    L = 2 * S + 1
    ext = np.full((N, L), blank, dtype=np.int64)          # blank, l1, blank, l2, ..., blank
    ext[:, 1::2] = padded
    skip = np.zeros((N, L), dtype=bool)                   # may jump from s-2 (a label unlike the one before)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    dev, dt = lp.device, lp.dtype
    emit = ops.gather(lp, 2, _creation.tensor(np.broadcast_to(ext, (T, N, L)).copy(), device=dev))  # (T, N, L)
    skip_t = _creation.tensor(skip, device=dev)
    neg1 = _creation.full((N, 1), _NEG, dtype=dt, device=dev)
    neg2 = _creation.full((N, 2), _NEG, dtype=dt, device=dev)
    start = np.full((N, L), _NEG)
    start[:, 0] = 0.0
    if L > 1:
        start[:, 1] = 0.0
    alpha = emit[0] + _creation.tensor(start.astype(dt), device=dev)
    if T == 0:
        alpha = _creation.tensor(np.where(np.arange(L)[None, :] == 0, 0.0, _NEG).astype(dt), device=dev)
    for t in range(1, T):
        prev1 = ops.cat([neg1, alpha[:, :L - 1]], 1) if L > 1 else neg1
        prev2 = ops.where(skip_t, ops.cat([neg2, alpha[:, :L - 2]], 1), _NEG) if L > 2 else None
        terms = [alpha, prev1] + ([prev2] if prev2 is not None else [])
        new = ops.logsumexp(ops.stack(terms, 0), 0) + emit[t]
        live = _creation.tensor((t < il)[:, None], device=dev)
        alpha = ops.where(live, new, alpha)
    # an input of length 0 has the empty alignment only (log-likelihood 0 for an empty target)
    empty = il == 0
    if empty.any():
        e = np.where(np.arange(L)[None, :] == 0, 0.0, _NEG).astype(dt)
        alpha = ops.where(_creation.tensor(empty[:, None], device=dev), _creation.tensor(e, device=dev), alpha)
    last = np.stack([2 * tl, np.maximum(2 * tl - 1, 0)], 1)
    ok = np.stack([np.ones(N, dtype=bool), tl > 0], 1)
    ends = ops.where(_creation.tensor(ok, device=dev),
                     ops.gather(alpha, 1, _creation.tensor(last, device=dev)), _NEG)
    ll = ops.logsumexp(ends, 1)                                          # (N,)
    impossible = ll.detach() < _NEG / 10
    loss = ops.where(impossible, 0.0 if zero_infinity else math.inf, -ll)
    if reduction == "mean":
        denom = _creation.tensor(np.maximum(tl, 1).astype(dt), device=dev)
        loss = ops.mean(loss / denom)
    elif reduction == "sum":
        loss = ops.sum(loss)
    elif unbatched:
        loss = loss[0]
    return loss


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,  # noqa: A002
                                reduction="mean"):
    """-mean over classes of (t log sigmoid(x) + (1 - t) log sigmoid(-x)) (times weight per class),
    one value per sample (N, C) -> (N,), then the reduction."""
    reduction = _legacy_reduction("multilabel_soft_margin_loss", size_average, reduce, reduction)
    loss = -(target * -ops.softplus(-input) + (1.0 - target) * -ops.softplus(input))
    if weight is not None:
        loss = loss * weight
    loss = ops.mean(loss, input.ndim - 1)
    return _reduce(loss, reduction)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,  # noqa: A002
                      reduction="mean"):
    """Multi-class hinge: sum over i != y of max(0, margin - x[y] + x[i])^p (times weight[y]) / C,
    input (N, C) or (C,), target (N,) class ids."""
    reduction = _legacy_reduction("multi_margin_loss", size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported, got {p}")
    x = ops.unsqueeze(input, 0) if input.ndim == 1 else input
    t = ops.reshape(target, (-1,))
    N, C = x.shape
    idx = ops.reshape(t, (N, 1))
    xy = ops.gather(x, 1, idx)                                              # (N, 1)
    h = ops.clamp(float(margin) - xy + x, min=0.0)
    if p == 2:
        h = h * h
    if weight is not None:
        h = h * ops.reshape(ops.index_select(weight, 0, t), (N, 1))
    others = _creation.tensor(np.arange(C)[None, :], device=x.device) != idx   # drop i == y
    loss = ops.sum(ops.where(others, h, 0.0), 1) * (1.0 / C)
    if input.ndim == 1:
        loss = loss[0] if reduction == "none" else loss
    return _reduce(loss, reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0,
                                      swap=False, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with any distance function (pairwise_distance by default)."""
    _check_reduction("triplet_margin_with_distance_loss", reduction)
    if margin <= 0:
        raise ValueError(f"triplet_margin_with_distance_loss: margin must be greater than 0, got {margin}")
    d = distance_function if distance_function is not None else pairwise_distance
    d_pos, d_neg = d(anchor, positive), d(anchor, negative)
    if swap:
        d_neg = ops.minimum(d_neg, d(positive, negative))
    return _reduce(ops.clamp(d_pos - d_neg + float(margin), min=0.0), reduction)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):  # noqa: A002
    """Multi-label hinge: sum over target classes j and non-target classes i of
    max(0, 1 - (x[j] - x[i])) / C. target (N, C) (or (C,)) holds class ids, ended by the first -1."""
    reduction = _legacy_reduction("multilabel_margin_loss", size_average, reduce, reduction)
    x = ops.unsqueeze(input, 0) if input.ndim == 1 else input
    t = np.asarray(target.detach().numpy()).astype(np.int64).reshape(x.shape)
    N, C = x.shape
    is_t = np.zeros((N, C), dtype=bool)
    for n in range(N):
        for c in t[n]:
            if c < 0:
                break
            if c >= C:
                raise ValueError(f"multilabel_margin_loss: target class {c} is out of range for {C} classes")
            is_t[n, c] = True
    pair = (is_t[:, :, None] & ~is_t[:, None, :]).astype(x.dtype)       # (N, j, i)
    h = ops.clamp(1.0 - ops.unsqueeze(x, 2) + ops.unsqueeze(x, 1), min=0.0)
    loss = ops.sum(h * _creation.tensor(pair, device=x.device), (1, 2)) * (1.0 / C)
    if input.ndim == 1 and reduction == "none":
        loss = loss[0]
    return _reduce(loss, reduction)
