"""Matrix products: matmul (1-D, 2-D, batched, broadcasting), the fused linear layer, einsum."""
from __future__ import annotations

from .._primitive import _EMPTY, Primitive, _apply_n, apply, apply2
from .._tensor import Tensor


def _matmul_vjp(c, g):
    xp = c.xp
    a, b = c.ins
    a2 = xp.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = xp.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    if a.ndim == 1 and b.ndim == 1:      # a dot product: g is 0-d
        g = xp.reshape(g, (1, 1))
    elif a.ndim == 1:
        g = xp.expand_dims(g, axis=-2)
    elif b.ndim == 1:
        g = xp.expand_dims(g, axis=-1)
    ga = gb = None
    if c.needs[0]:
        ga = xp.matmul(g, xp.matrix_transpose(b2))
        if a.ndim == 1:
            ga = xp.reshape(ga, ga.shape[:-2] + (ga.shape[-1],))
    if c.needs[1]:
        gb = xp.matmul(xp.matrix_transpose(a2), g)
        if b.ndim == 1:
            gb = xp.reshape(gb, gb.shape[:-1])
    return ga, gb


matmul_p = Primitive("matmul", lambda xp, a, b: xp.matmul(a, b), _matmul_vjp, save="in")


def matmul(input, other, *, out=None):  # noqa: A002 - PyTorch's names
    """Matrix product with NumPy semantics: (..., n, k) @ (..., k, m) -> (..., n, m); 1-D operands
    are promoted to a row/column and the added dim is removed. `out`: write the result there."""
    if out is not None:
        from ._out import check_out, write_out
        check_out("matmul", out, input, other)
        return write_out("matmul", matmul(input, other), out)
    a, b = input, other
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul: both operands must be tensors")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: 0-d operands are not allowed; use mul")
    ka = a.array.shape[-1]
    kb = b.array.shape[0] if b.ndim == 1 else b.array.shape[-2]
    if ka != kb:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} ({ka} != {kb})")
    return apply(matmul_p, (a, b))


def _linear_fwd(xp, x, w, b=None):
    lead = x.shape[:-1]
    if len(lead) > 1:        # (..., in): one matrix product over the flattened rows, not a batch of them
        x = xp.reshape(x, (-1, x.shape[-1]))
    y = xp.matmul(x, xp.matrix_transpose(w))
    if b is not None:
        if b.dtype == y.dtype:
            y += b                # in place on the fresh product: one (N, out) allocation fewer
        else:
            y = y + b
    return y if len(lead) <= 1 else xp.reshape(y, lead + (y.shape[-1],))


def _linear_vjp(c, g):
    # y = x W^T + b with x (..., in), W (out, in): flatten the batch dims so each weight
    # gradient is one matrix product instead of a batched product and a sum.
    xp = c.xp
    x, w = c.ins[0], c.ins[1]
    gx = gw = gb = None
    g2 = xp.reshape(g, (-1, g.shape[-1])) if g.ndim != 2 else g
    if c.needs[0]:
        if g.ndim > 2:
            # one GEMM over the flattened rows: a (T, B, out) @ (out, in) product is a batch of T
            # small GEMMs in NumPy (~3x slower at the small LSTM's (16, 8, 256) @ (256, 64))
            gx = xp.reshape(xp.matmul(g2, w), tuple(g.shape[:-1]) + (w.shape[-1],))
        else:
            gx = xp.matmul(g, w)
    if c.needs[1] or (len(c.needs) > 2 and c.needs[2]):
        if c.needs[1]:
            gw = xp.matmul(xp.matrix_transpose(g2), xp.reshape(x, (-1, x.shape[-1])))
        if len(c.needs) > 2 and c.needs[2]:
            gb = xp.sum(g2, axis=0)
    return (gx, gw) if len(c.needs) == 2 else (gx, gw, gb)


linear_p = Primitive("linear", _linear_fwd, _linear_vjp, save="in")


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias. x (..., in), weight (out, in), bias (out,) -> (..., out)."""
    ws, xs = weight.array.shape, x.array.shape
    if len(ws) != 2 or not xs or xs[-1] != ws[1]:
        raise ValueError(f"linear: input shape {x.shape} does not match weight shape {weight.shape} "
                         f"(expected input (..., {ws[1] if len(ws) == 2 else '?'}))")
    if bias is None:
        return apply2(linear_p, x, weight)
    if bias.array.shape != (ws[0],):
        raise ValueError(f"linear: bias shape {bias.shape} does not match weight shape {weight.shape}")
    return _apply_n(linear_p, (x, weight, bias), _EMPTY)


def outer(a, b):
    """Outer product of two 1-D tensors."""
    from .shape import reshape
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def einsum(subscripts: str, *operands):
    """Einstein summation built from permute, broadcasting multiply and sum (and matmul for the
    two-operand contractions), so it is differentiable to any order on every backend.
    Supports explicit ('ij,jk->ik') and implicit ('ij,jk') forms; no repeated index within one
    operand and no ellipsis."""
    from .shape import permute, reshape
    from .reduce import sum as rsum
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    s = subscripts.replace(" ", "")
    if "..." in s:
        raise NotImplementedError("einsum: ellipsis is not supported")
    if "->" in s:
        ins, out = s.split("->")
    else:
        ins, out = s, None
    terms = ins.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {len(terms)} subscripts for {len(operands)} operands")
    sizes = {}
    for t, x in zip(terms, operands):
        if len(t) != x.ndim:
            raise ValueError(f"einsum: subscript {t!r} has {len(t)} letters for an operand of shape {x.shape}")
        if len(set(t)) != len(t):
            raise NotImplementedError(f"einsum: repeated index in {t!r} (diagonals) is not supported")
        for ch, n in zip(t, x.shape):
            if sizes.setdefault(ch, n) != n and n != 1 and sizes[ch] != 1:
                raise ValueError(f"einsum: index {ch!r} has sizes {sizes[ch]} and {n}")
            sizes[ch] = max(sizes[ch], n)
    if out is None:
        counts = {}
        for t in terms:
            for ch in t:
                counts[ch] = counts.get(ch, 0) + 1
        out = "".join(sorted(ch for ch, k in counts.items() if k == 1))
    letters = list(out) + sorted(set("".join(terms)) - set(out))
    acc = None
    for t, x in zip(terms, operands):
        order = [t.index(ch) for ch in letters if ch in t]
        y = permute(x, order) if order != list(range(x.ndim)) else x
        y = reshape(y, tuple(sizes[ch] if ch in t else 1 for ch in letters))
        acc = y if acc is None else acc * y
    summed = tuple(range(len(out), len(letters)))
    if summed:
        acc = rsum(acc, summed)
    return acc
