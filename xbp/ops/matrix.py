"""Matrix helpers and products: tril, triu, diag, diagonal, diag_embed, trace, narrow, mm, bmm,
addmm, baddbmm, mv, addmv, dot, vdot, inner, cross, kron, cdist.

All are composed from differentiable primitives (where, getitem, matmul, norm, ...), so they
are differentiable to any order on every backend without VJPs of their own.
"""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor, _wrap
from ._util import check_size, dim_index
from .sorting import dim_aliases


def _t(op, x, what="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {what} must be an xbp.Tensor, got {type(x).__name__}")
    return x


def _offset(op, k):
    return check_size(op, k, "diagonal offset")


def _tri_mask(xp, n, m, k, lower):
    i = xp.reshape(xp.arange(0, n, dtype=xp.dtype(np.dtype("int64"))), (n, 1))
    j = xp.reshape(xp.arange(0, m, dtype=xp.dtype(np.dtype("int64"))), (1, m))
    return (j - i <= k) if lower else (j - i >= k)


def _tri(op, x, diagonal, lower):
    from .elementwise import where
    _t(op, x)
    if x.ndim < 2:
        raise RuntimeError(f"{op}: input must have at least 2 dims (a matrix or a batch of them), got shape {x.shape}")
    k = _offset(op, diagonal)
    mask = _wrap(_tri_mask(x.xp, x.shape[-2], x.shape[-1], k, lower), x.xp)
    zero = False if x.dtype.kind == "b" else 0
    return where(mask, x, zero)


def tril(x, diagonal=0):
    """The lower triangle of the last two dims (entries with j - i <= diagonal), zeros elsewhere.
    (..., n, m) -> (..., n, m)."""
    return _tri("tril", x, diagonal, True)


def triu(x, diagonal=0):
    """The upper triangle of the last two dims (entries with j - i >= diagonal), zeros elsewhere."""
    return _tri("triu", x, diagonal, False)


def diagonal(x, offset=0, dim1=0, dim2=1):
    """The diagonal of the (dim1, dim2) planes, with `offset` above (> 0) or below (< 0) the main one,
    as a new last dim: (..., n1, ..., n2, ...) -> (..., L). A differentiable gather."""
    from .shape import permute
    _t("diagonal", x)
    if x.ndim < 2:
        raise RuntimeError(f"diagonal: input must have at least 2 dims, got shape {x.shape}")
    d1, d2 = dim_index("diagonal", dim1, x.ndim), dim_index("diagonal", dim2, x.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal: dim1 and dim2 cannot be the same dim ({dim1}, {dim2})")
    k = _offset("diagonal", offset)
    rest = [i for i in range(x.ndim) if i not in (d1, d2)]
    y = permute(x, rest + [d1, d2])
    n1, n2 = x.shape[d1], x.shape[d2]
    length = max(0, min(n1, n2 - k) if k >= 0 else min(n1 + k, n2))
    xp = x.xp
    i64 = xp.dtype(np.dtype("int64"))
    rows = xp.arange(0, length, dtype=i64) + (0 if k >= 0 else -k)
    cols = xp.arange(0, length, dtype=i64) + (k if k >= 0 else 0)
    # one flat gather over the last two dims
    from .shape import reshape
    flat = reshape(y, y.shape[:-2] + (n1 * n2,))
    pos = _wrap(rows * n2 + cols, xp)
    return flat[(Ellipsis, pos)]


_diagonal = diagonal


def diag_embed(x, offset=0, dim1=-2, dim2=-1):
    """Matrices whose `offset` diagonal (in the planes dim1, dim2 of the result) holds the last dim
    of `x`: (..., n) -> (..., n + |offset|, n + |offset|) (dims placed at dim1, dim2)."""
    from .elementwise import where
    from .shape import pad, permute, reshape
    _t("diag_embed", x)
    if x.ndim == 0:
        raise RuntimeError("diag_embed: input must have at least 1 dim")
    k = _offset("diag_embed", offset)
    nd = x.ndim + 1
    d1, d2 = dim_index("diag_embed", dim1, nd), dim_index("diag_embed", dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diag_embed: dim1 and dim2 cannot be the same dim ({dim1}, {dim2})")
    n = x.shape[-1]
    m = n + abs(k)
    v = pad(x, (0, abs(k))) if k else x
    xp = x.xp
    eye = _wrap(_tri_mask(xp, m, m, k, True) & _tri_mask(xp, m, m, k, False), xp)
    v = reshape(v, v.shape[:-1] + ((m, 1) if k >= 0 else (1, m)))
    zero = False if x.dtype.kind == "b" else 0
    out = where(eye, v, zero)
    if (d1, d2) != (nd - 2, nd - 1):
        # out's last two dims are (rows, cols); rows go to d1 and cols to d2
        others = list(range(nd - 2))
        order = [None] * nd
        order[d1], order[d2] = nd - 2, nd - 1
        it = iter(others)
        order = [next(it) if o is None else o for o in order]
        out = permute(out, order)
    return out


def diag(x, diagonal=0):
    """1-D (n,) -> the (n+|k|, n+|k|) matrix with x on its k-th diagonal; 2-D -> its k-th diagonal
    as a 1-D tensor."""
    _t("diag", x)
    k = _offset("diag", diagonal)
    if x.ndim == 1:
        return diag_embed(x, k)
    if x.ndim == 2:
        return _diagonal(x, k, 0, 1)
    raise RuntimeError(f"diag: input must be 1-D or 2-D, got shape {x.shape}")


def trace(x):
    """Sum of the main diagonal of a 2-D tensor -> 0-d."""
    from .reduce import sum as rsum
    _t("trace", x)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a 2-D tensor (a matrix), got shape {x.shape}")
    return rsum(diagonal(x))


@dim_aliases
def narrow(x, dim, start, length):
    """The slice [start, start + length) of `dim` (a view). `start` may be negative (counted from
    the end) or a 0-d integer tensor."""
    _t("narrow", x)
    if x.ndim == 0:
        raise RuntimeError("narrow: cannot narrow a 0-d tensor")
    d = dim_index("narrow", dim, x.ndim)
    start = check_size("narrow", start.item() if isinstance(start, Tensor) else start, "start")
    length = check_size("narrow", length, "length")
    n = x.shape[d]
    if not -n <= start <= n:
        raise IndexError(f"narrow: start ({start}) is out of range for dim {d} of size {n}")
    if start < 0:
        start += n
    if length < 0 or start + length > n:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dim {d} of size {n}")
    return x[(slice(None),) * d + (slice(start, start + length),)]


# --- products --------------------------------------------------------------------------------------
def _shapes_error(op, msg, *ts):
    shapes = " and ".join(str(t.shape) for t in ts)
    raise RuntimeError(f"{op}: {msg} (got {shapes})")


def mm(a, b):
    """Matrix product of two 2-D tensors: (n, k) @ (k, m) -> (n, m)."""
    from .linalg import matmul
    _t("mm", a), _t("mm", b, "mat2")
    if a.ndim != 2 or b.ndim != 2:
        _shapes_error("mm", "both operands must be 2-D", a, b)
    if a.shape[1] != b.shape[0]:
        _shapes_error("mm", f"inner dimensions differ ({a.shape[1]} != {b.shape[0]})", a, b)
    return matmul(a, b)


def bmm(a, b):
    """Batched matrix product of 3-D tensors: (B, n, k) @ (B, k, m) -> (B, n, m) (no broadcasting)."""
    from .linalg import matmul
    _t("bmm", a), _t("bmm", b, "mat2")
    if a.ndim != 3 or b.ndim != 3:
        _shapes_error("bmm", "both operands must be 3-D", a, b)
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        _shapes_error("bmm", "expected (B, n, k) and (B, k, m)", a, b)
    return matmul(a, b)


def mv(a, v):
    """Matrix-vector product: (n, k) @ (k,) -> (n,)."""
    from .linalg import matmul
    _t("mv", a), _t("mv", v, "vec")
    if a.ndim != 2 or v.ndim != 1 or a.shape[1] != v.shape[0]:
        _shapes_error("mv", "expected a (n, k) matrix and a (k,) vector", a, v)
    return matmul(a, v)


def dot(a, b):
    """Dot product of two 1-D tensors of the same length -> 0-d."""
    from .linalg import matmul
    _t("dot", a), _t("dot", b, "tensor")
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        _shapes_error("dot", "expected two 1-D tensors of the same size", a, b)
    if a.dtype != b.dtype:
        raise RuntimeError(f"dot: expected both tensors to have the same dtype, got {a.dtype} and {b.dtype}")
    return matmul(a, b)


vdot = dot          # real tensors: conjugation is the identity


def inner(a, b):
    """Sum over the last dims: (..., k) and (..., k) -> a.shape[:-1] + b.shape[:-1]; scalars multiply."""
    from .linalg import matmul
    from .shape import reshape
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        _shapes_error("inner", "the last dims must match", a, b)
    out = matmul(reshape(a, (-1, a.shape[-1])), reshape(b, (-1, b.shape[-1])).mT)
    return reshape(out, a.shape[:-1] + b.shape[:-1])


def _add_scaled(op, inp, prod, beta, alpha):
    """beta * input + alpha * prod, with PyTorch's rule that beta = 0 ignores input (its NaN and
    inf do not propagate)."""
    from .shape import broadcast_to
    _t(op, inp)
    try:
        broadcast_to(inp, prod.shape) if inp.shape != prod.shape else None
    except ValueError:
        _shapes_error(op, f"input cannot be broadcast to the product's shape {prod.shape}", inp)
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return prod
    return (inp if beta == 1 else inp * beta) + prod


def addmm(input, mat1, mat2, *, beta=1, alpha=1):  # noqa: A002
    """beta * input + alpha * (mat1 @ mat2): input broadcastable to (n, m); mat1 (n, k), mat2 (k, m)."""
    return _add_scaled("addmm", input, mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):  # noqa: A002
    """beta * input + alpha * bmm(batch1, batch2): input broadcastable to (B, n, m)."""
    return _add_scaled("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):  # noqa: A002
    """beta * input + alpha * (mat @ vec): input broadcastable to (n,)."""
    return _add_scaled("addmv", input, mv(mat, vec), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):  # noqa: A002
    """beta * input + alpha * sum_b batch1[b] @ batch2[b]: input broadcastable to (n, m)."""
    from .reduce import sum as rsum
    return _add_scaled("addbmm", input, rsum(bmm(batch1, batch2), 0), beta, alpha)


def addr(input, vec1, vec2, *, beta=1, alpha=1):  # noqa: A002
    """beta * input + alpha * outer(vec1, vec2)."""
    from .linalg import outer
    if vec1.ndim != 1 or vec2.ndim != 1:
        _shapes_error("addr", "vec1 and vec2 must be 1-D", vec1, vec2)
    return _add_scaled("addr", input, outer(vec1, vec2), beta, alpha)


@dim_aliases
def cross(input, other, dim=None):  # noqa: A002
    """Cross product of 3-vectors along `dim` (broadcasting a and b): dim=None takes the first dim
    of size 3, as torch.cross; torch.linalg.cross's default is -1."""
    from .shape import broadcast_to, roll
    a, b = input, other
    _t("cross", a), _t("cross", b, "other")
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    a, b = broadcast_to(a, shape), broadcast_to(b, shape)
    if dim is None:
        dims = [i for i, s in enumerate(shape) if s == 3]
        if not dims:
            raise RuntimeError(f"cross: no dim of size 3 in the shape {shape}; pass dim=")
        d = dims[0]
    else:
        d = dim_index("cross", dim, len(shape))
    if shape[d] != 3:
        raise RuntimeError(f"cross: dim {d} must have size 3, got {shape[d]} (shape {shape})")
    # c_i = a_{i+1} b_{i+2} - a_{i+2} b_{i+1} (indices mod 3)
    return roll(a, -1, d) * roll(b, -2, d) - roll(a, -2, d) * roll(b, -1, d)


def kron(a, b):
    """Kronecker product: for (a0, a1, ...) and (b0, b1, ...) -> (a0*b0, a1*b1, ...) (shorter shapes
    get leading 1s)."""
    from .shape import reshape
    _t("kron", a), _t("kron", b, "other")
    nd = max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + a.shape
    sb = (1,) * (nd - b.ndim) + b.shape
    ai = reshape(a, tuple(v for s in sa for v in (s, 1)))
    bi = reshape(b, tuple(v for s in sb for v in (1, s)))
    return reshape(ai * bi, tuple(x * y for x, y in zip(sa, sb)))


def cdist(x1, x2, p=2.0, compute_mode=None):
    """p-norm distances between the rows of x1 (*B, P, M) and x2 (*B, R, M) -> (*B, P, R).
    p = 2 (gradient 0 at zero distance, as PyTorch), 1, inf, 0 (count of differing coordinates,
    no gradient) or any p > 0."""
    from . import elementwise as E
    from .reduce import amax, norm, sum as rsum
    from .shape import unsqueeze
    _t("cdist", x1, "x1"), _t("cdist", x2, "x2")
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        _shapes_error("cdist", "expected (*B, P, M) and (*B, R, M) with the same M", x1, x2)
    if x1.dtype.kind != "f" or x2.dtype.kind != "f":
        raise RuntimeError(f"cdist: only floating-point inputs are supported, got {x1.dtype} and {x2.dtype}")
    p = float(p)
    if p < 0 or p != p:
        raise RuntimeError(f"cdist: p must be a non-negative number, got {p}")
    diff = unsqueeze(x1, -2) - unsqueeze(x2, -3)             # (*B, P, R, M)
    if p == 2.0:
        return norm(diff, 2, dim=-1)
    if p == 1.0:
        return rsum(E.abs(diff), -1)
    if p == float("inf"):
        return amax(E.abs(diff), -1) if diff.shape[-1] else rsum(diff, -1)
    if p == 0.0:
        return rsum((diff.detach() != 0).to(dtype=x1.dtype), -1)
    return norm(diff, p, dim=-1)


def _tri_indices(op, row, col, offset, dtype, device, lower):
    from .._backend import canonical_dtype, get_backend
    row, col = check_size(op, row, "row"), check_size(op, col, "col")
    offset = _offset(op, offset)
    if row < 0 or col < 0:
        raise RuntimeError(f"{op}: row and col must be non-negative, got {row} and {col}")
    xp = get_backend(device)
    dt = canonical_dtype(dtype or "int64")
    if dt.kind not in "iu":
        raise RuntimeError(f"{op}: dtype must be an integer type, got {dt}")
    # a small host computation, then one transfer (the count is data-dependent only on the sizes)
    r, c = (np.tril_indices if lower else np.triu_indices)(row, offset, col)
    return _wrap(xp.from_numpy(np.stack([r, c]).astype(dt)), xp)


def tril_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) coordinates of the lower triangle (j - i <= offset) of a row x col matrix, row by
    row (int64)."""
    return _tri_indices("tril_indices", row, col, offset, dtype, device, True)


def triu_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) coordinates of the upper triangle (j - i >= offset) of a row x col matrix."""
    return _tri_indices("triu_indices", row, col, offset, dtype, device, False)


def block_diag(*tensors):
    """The block-diagonal matrix of the given 0-d, 1-D (a row) or 2-D tensors:
    (r1, c1), (r2, c2), ... -> (sum r, sum c), zeros off the blocks."""
    from .shape import cat, pad, reshape
    if not tensors:
        raise RuntimeError("block_diag: expected at least one tensor")
    mats = []
    for t in tensors:
        _t("block_diag", t, "each argument")
        if t.ndim > 2:
            raise RuntimeError(f"block_diag: inputs must have at most 2 dims, got shape {t.shape}")
        mats.append(reshape(t, (1, 1)) if t.ndim == 0 else (reshape(t, (1, -1)) if t.ndim == 1 else t))
    total = sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        rows.append(pad(m, (left, total - left - m.shape[1])))
        left += m.shape[1]
    return cat(rows, 0)
