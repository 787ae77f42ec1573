"""The fused normalisation core shared by batch, layer and group norm."""
from __future__ import annotations

from .._primitive import Primitive, apply
from .._tensor import Tensor


# One fused primitive serves batch, layer and group norm: y = (x - mean) * rstd over `axes`, with
# the statistics computed once in `normalize` (they are also what batch norm's running averages
# need). Composed from sum/sub/mul/sqrt it would record ~9 nodes and save as many arrays; fused it
# saves x alone. With M elements per statistic and xhat = (x - mean) rstd,
#     dx = rstd * (g - sum(g) / M - xhat * sum(g * xhat) / M)
# (the two sums are the gradients through the mean and through the variance). Under create_graph
# the statistics are recomputed from x as tensors, so second derivatives include their dependence.
def _normalize_fwd(xp, x, *, axes, eps, mean, rstd):
    return (x - mean) * rstd


def _normalize_vjp(c, g):
    xp = c.xp
    axes = c.p["axes"]
    x = c.ins[0]
    M = 1
    for a in axes:
        M *= c.shapes[0][a]
    if isinstance(g, Tensor):
        mean = xp.sum(x, axis=axes, keepdims=True) / M
        d = x - mean
        rstd = 1.0 / xp.sqrt(xp.sum(d * d, axis=axes, keepdims=True) / M + c.p["eps"])
    else:
        mean, rstd = c.p["mean"], c.p["rstd"]
    xhat = (x - mean) * rstd
    mg = xp.sum(g, axis=axes, keepdims=True) / M
    mgx = xp.sum(g * xhat, axis=axes, keepdims=True) / M
    return ((g - mg - xhat * mgx) * rstd,)


normalize_p = Primitive("normalize", _normalize_fwd, _normalize_vjp, save="in")


def normalize(x, axes, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over `axes` (biased variance, statistics kept as size-1 dims).
    Returns (normalized tensor, mean, biased var) with mean and var as backend arrays (no graph)."""
    if x.dtype.kind != "f":
        raise TypeError(f"normalize: expects a floating-point input, got {x.dtype}")
    xp = x.xp
    axes = tuple(sorted(a % x.ndim for a in axes))
    mean = xp.mean(x.array, axis=axes, keepdims=True)
    d = x.array - mean
    var = xp.mean(d * d, axis=axes, keepdims=True)
    del d
    rstd = 1.0 / xp.sqrt(var + float(eps))
    y = apply(normalize_p, (x,), {"axes": axes, "eps": float(eps), "mean": mean, "rstd": rstd})
    return y, mean, var
