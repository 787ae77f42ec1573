"""Linear algebra through the Array API `linalg` extension: det, slogdet, inv, solve, cholesky,
qr, svd, svdvals, eigh, eigvalsh, and what is built on them (norms, pinv, lstsq, cond,
solve_triangular, matrix_power, matrix_exp, matrix_rank).

Forward calls the backend's ``xp.linalg`` (NumPy, CuPy, array-api-strict all have it); a backend
without it gets a clear error, and the backend's LinAlgError (singular, not positive-definite)
is re-raised naming the op. Each VJP is the standard one, written once on Tensors: in a plain
backward the arrays are wrapped as constant Tensors (grad mode is off there), under
``create_graph=True`` the same body runs on the graph, so second derivatives work.

Decompositions with several outputs (qr, svd, eigh) are one primitive whose output packs them
along a last dim; the public function slices them apart (differentiable views), so backward sees
all their gradients at once. Limits, as PyTorch's: the svd/eigh gradients need distinct singular
values/eigenvalues when the loss depends on the vectors (repeated ones give inf/NaN), and the
loss must not depend on the sign of the vectors; qr's gradient needs m >= n; mode='r' and
'complete' with m > n are not differentiable. det's gradient is the cofactor matrix, also for
singular matrices (there through the SVD adjugate, first order only).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .._primitive import Primitive, apply
from .._tensor import Tensor, _wrap
from ._util import dim_index, dim_tuple
from .sorting import dim_aliases

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
SlogdetResult.__doc__ = "What `slogdet` returns: (sign, logabsdet) with det = sign * exp(logabsdet)."
QRResult = namedtuple("QRResult", ["Q", "R"])
QRResult.__doc__ = "What `qr` returns: (Q, R) with Q having orthonormal columns, R upper triangular and A = Q R."
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
SVDResult.__doc__ = "What `svd` returns: (U, S, Vh) with A = U diag(S) Vh and S in descending order."
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
EighResult.__doc__ = "What `eigh` returns: (eigenvalues in ascending order, eigenvectors as the columns)."


def backend_linalg(op, xp):
    """The backend's Array API linalg extension (array-api-strict loads it lazily)."""
    la = getattr(xp, "linalg", None)
    if la is None:
        la = getattr(xp.ns, "linalg", None)
    if la is None:
        raise RuntimeError(f"{op}: the array backend of device '{xp.device}' has no Array API linalg extension "
                           "(xp.linalg); move the tensor to a device whose backend provides it (cpu, cuda)")
    return la


def _call(op, xp, fn, *args, what="singular", **kw):
    """fn(*args) from the backend's linalg, its LinAlgError re-raised naming the op and the fix."""
    try:
        return getattr(backend_linalg(op, xp), fn)(*args, **kw)
    except Exception as e:  # noqa: BLE001 - each backend has its own LinAlgError class
        if type(e).__name__ != "LinAlgError":
            raise
        shapes = ", ".join(str(tuple(a.shape)) for a in args if hasattr(a, "shape"))
        hint = {"singular": "the matrix (or one in the batch) is singular; check its rank, or use "
                            "xbp.linalg.pinv / lstsq",
                "pd": "the matrix (or one in the batch) is not symmetric positive-definite"}[what]
        raise RuntimeError(f"{op}: {hint} (input shape {shapes}; backend: {e})") from None


def _tensor_vjp(body):
    """A VJP written on Tensors: plain backward wraps the arrays (and unwraps the results)."""
    def vjp(c, g):
        if isinstance(g, Tensor):
            return body(c, g, c.ins, c.out, c.res)
        xp = c.xp

        def w(a):
            if a is None:
                return None
            if isinstance(a, tuple):
                return tuple(w(e) for e in a)
            return _wrap(a, xp) if xp.is_array(a) or isinstance(a, np.generic) else a
        out = body(c, _wrap(g, xp), w(c.ins), w(c.out), w(c.res))
        return tuple(None if r is None else r.array for r in out)
    return vjp


def _square(op, a):
    if not isinstance(a, Tensor):
        raise TypeError(f"{op}: expected an xbp.Tensor, got {type(a).__name__}")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"{op}: expected a square matrix or a batch of them (..., n, n), got shape {a.shape}")
    _float(op, a)


def _float(op, a):
    if a.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating-point tensor, got dtype {a.dtype}; convert with .double() "
                           "or .float()")


def _mat(op, a):
    if not isinstance(a, Tensor):
        raise TypeError(f"{op}: expected an xbp.Tensor, got {type(a).__name__}")
    if a.ndim < 2:
        raise RuntimeError(f"{op}: expected a matrix or a batch of them (..., m, n), got shape {a.shape}")
    _float(op, a)


def _T(x):
    from .shape import swapaxes
    return swapaxes(x, -1, -2)


def _mm(a, b):
    from .linalg import matmul
    return matmul(a, b)


def _ex(x, *axes):
    """x with size-1 dims appended/inserted (negative axes, applied in order)."""
    from .shape import unsqueeze
    for a in axes:
        x = unsqueeze(x, a)
    return x


# --- det / slogdet ---------------------------------------------------------------------------------
@_tensor_vjp
def _det_vjp(c, g, ins, out, res):
    # d det(A) = tr(adj(A) dA): gA = g adj(A)^T, with adj(A) = det(A) A^-1 when A is invertible;
    # with a singular matrix in the batch, adj(A) = det(U) det(V) V diag(prod_{j!=i} s_j) U^T from
    # the SVD A = U S V^T (finite, as PyTorch's; first order only there)
    (a,) = ins
    xp = a.xp
    s = backend_linalg("det", xp).svdvals(a.detach().array)
    n = a.shape[-1]
    # invertible to working precision: the inverse is accurate (and differentiable once more)
    if n == 0 or bool(xp.all(s[..., -1] > s[..., 0] * (n * float(np.finfo(a.dtype).eps) * 1e3))):
        return (_ex(g * out, -1, -1) * _T(inv(a)),)
    return (_ex(g, -1, -1) * _T(_adjugate(a.detach())),)


def _adjugate(a):
    from .reduce import prod
    from .shape import unsqueeze
    u, s, vh = svd(a, full_matrices=False)
    n = s.shape[-1]
    others = []
    for i in range(n):       # prod_{j != i} s_j without dividing by a zero singular value
        keep = [j for j in range(n) if j != i]
        others.append(prod(s[..., keep], -1) if keep else s[..., 0] * 0 + 1)
    from .shape import stack
    p = stack(others, -1)
    sign = det(u) * det(_T(vh))
    return unsqueeze(unsqueeze(sign, -1), -1) * _mm(_T(vh) * _ex(p, -2), _T(u))


det_p = Primitive("det", lambda xp, a: backend_linalg("det", xp).det(a), _det_vjp, save="in,out")


def det(A):
    """Determinant of a square matrix (..., n, n) -> (...). Gradient det(A) A^-T (A invertible)."""
    _square("det", A)
    return apply(det_p, (A,))


@_tensor_vjp
def _logabsdet_vjp(c, g, ins, out, res):
    (a,) = ins
    return (_ex(g, -1, -1) * _T(inv(a)),)


logabsdet_p = Primitive("slogdet", lambda xp, a: backend_linalg("slogdet", xp).slogdet(a).logabsdet,
                        _logabsdet_vjp, save="in")


def slogdet(A):
    """(sign, log|det|) of a square matrix (..., n, n), each (...); the log is differentiable
    (gradient A^-T), the sign is not. For a singular matrix: (0, -inf)."""
    _square("slogdet", A)
    xp = A.xp
    sign = _wrap(backend_linalg("slogdet", xp).slogdet(A.array).sign, xp)
    return SlogdetResult(sign, apply(logabsdet_p, (A,)))


def logdet(A):
    """log det(A) (..., n, n) -> (...): NaN where det < 0, -inf where det = 0, as PyTorch."""
    from .elementwise import where
    s, la = slogdet(A)
    return where(s < 0, float("nan"), where(s == 0, float("-inf"), la))


# --- inv / solve -----------------------------------------------------------------------------------
@_tensor_vjp
def _inv_vjp(c, g, ins, out, res):
    # d(A^-1) = -A^-1 dA A^-1: gA = -A^-T g A^-T
    it = _T(out)
    return (-_mm(_mm(it, g), it),)


inv_p = Primitive("inv", lambda xp, a: _call("inv", xp, "inv", a), _inv_vjp, save="out")


def inv(A):
    """Inverse of a square matrix (..., n, n). Gradient -A^-T g A^-T."""
    _square("inv", A)
    return apply(inv_p, (A,))


inverse = inv


@_tensor_vjp
def _solve_vjp(c, g, ins, out, res):
    # X = A^-1 B: gB = A^-T g, gA = -gB X^T
    a, _ = ins
    gb = solve(_T(a), g)
    return (-_mm(gb, _T(out)) if c.needs[0] else None, gb)


solve_p = Primitive("solve", lambda xp, a, b: _call("solve", xp, "solve", a, b), _solve_vjp, save="in,out")


def solve(A, B, *, left=True):
    """X with A X = B (left=True) or X A = B. A (..., n, n); B (..., n, k), or a vector (n,) or a
    batch of vectors (..., n) whose batch dims match A's; batch dims broadcast."""
    from .shape import reshape
    _square("solve", A)
    if not isinstance(B, Tensor):
        raise TypeError(f"solve: B must be an xbp.Tensor, got {type(B).__name__}")
    _float("solve", B)
    if not left:                             # X A = B  <=>  A^T X^T = B^T
        return _T(solve(_T(A), _T(B)))
    n = A.shape[-1]
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and B.shape == A.shape[:-1])
    if vector:
        if B.shape[-1] != n:
            raise RuntimeError(f"solve: A is {A.shape} but the vector B has {B.shape[-1]} entries")
        x = apply(solve_p, (A, reshape(B, B.shape + (1,))))
        return reshape(x, x.shape[:-1])
    if B.ndim < 2 or B.shape[-2] != n:
        raise RuntimeError(f"solve: A of shape {A.shape} needs B of shape (..., {n}, k) or (..., {n}), got {B.shape}")
    try:
        batch = tuple(np.broadcast_shapes(A.shape[:-2], B.shape[:-2]))
    except ValueError:
        raise RuntimeError(f"solve: the batch dims of A {A.shape} and B {B.shape} do not broadcast") from None
    # broadcast the batch dims here (not every backend's solve does; the engine sums the gradients back)
    from .shape import broadcast_to
    if A.shape[:-2] != batch:
        A = broadcast_to(A, batch + A.shape[-2:])
    if B.shape[:-2] != batch:
        B = broadcast_to(B, batch + B.shape[-2:])
    return apply(solve_p, (A, B))


# --- cholesky ----------------------------------------------------------------------------------------
@_tensor_vjp
def _cholesky_vjp(c, g, ins, out, res):
    # Murray (2016), as PyTorch: with L lower, P = tril(L^T gL) with its diagonal halved and made
    # symmetric, gA = L^-T P L^-1 (a symmetric gradient: A is read as a symmetric matrix)
    from .matrix import tril
    L = out
    p = tril(_mm(_T(L), g))
    p = 0.5 * (p + _T(tril(p, -1)))
    s = solve(_T(L), p)                      # L^-T P
    return (_T(solve(_T(L), _T(s))),)        # (L^-T (L^-T P)^T)^T = L^-T P L^-1


cholesky_p = Primitive("cholesky", lambda xp, a: _call("cholesky", xp, "cholesky", a, what="pd"), _cholesky_vjp,
                       save="out")


def cholesky(A, *, upper=False):
    """The Cholesky factor of a symmetric positive-definite matrix (..., n, n): lower L with
    A = L L^T (upper=True: U = L^T). Only the lower triangle of A is read; the gradient is
    symmetric (Murray 2016)."""
    _square("cholesky", A)
    L = apply(cholesky_p, (A,))
    return _T(L) if upper else L


# --- qr ----------------------------------------------------------------------------------------------
def _qr_fwd(xp, a, mode):
    q, r = backend_linalg("qr", xp).qr(a, mode=mode)
    lead = a.shape[:-2]
    return xp.concat([xp.reshape(q, lead + (-1,)), xp.reshape(r, lead + (-1,))], axis=-1), (q.shape, r.shape)


def _unpack(x, shapes):
    """Split the packed last dim of `x` into pieces of the given (..., *s) shapes."""
    from .shape import reshape
    lead = tuple(x.shape[:-1])
    out, start = [], 0
    for s in shapes:
        k = int(np.prod(s[len(lead):]))
        out.append(reshape(x[..., start:start + k], lead + tuple(s[len(lead):])))
        start += k
    return out


@_tensor_vjp
def _qr_vjp(c, g, ins, out, res):
    # m >= n (PyTorch's linalg_qr_backward): M = gR R^T - Q^T gQ, S = triu(M) + triu(M, 1)^T,
    # gA = (gQ + Q S) R^-T
    from .matrix import triu
    q, r = _unpack(out, res)
    gq, gr = _unpack(g, res)
    m, n = q.shape[-2], r.shape[-1]
    if m < n:
        raise NotImplementedError("qr: the gradient for a wide matrix (m < n) is not implemented; "
                                  "use qr of A^T (tall) instead")
    M = _mm(gr, _T(r)) - _mm(_T(q), gq)
    up = triu(M)
    S = up + _T(triu(M, 1))
    b = gq + _mm(q, S)
    return (_T(solve(r, _T(b))),)          # b R^-T = (R^-1 b^T)^T


qr_p = Primitive("qr", _qr_fwd, _qr_vjp, save="out", res=True)


def qr(A, mode="reduced"):
    """QR decomposition A = Q R of (..., m, n): mode 'reduced' gives Q (..., m, k), R (..., k, n)
    with k = min(m, n); 'complete' gives Q (..., m, m), R (..., m, n); 'r' gives (empty Q, R).
    Differentiable for m >= n ('complete' only when m == n)."""
    _mat("qr", A)
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    m, n = A.shape[-2], A.shape[-1]
    if mode == "r" or (mode == "complete" and m > n):
        xp = A.xp
        q, r = backend_linalg("qr", xp).qr(A.array, mode="complete" if mode == "complete" else "reduced")
        if mode == "r":
            q = xp.zeros((0,), dtype=A.array.dtype)
        if A.requires_grad:
            raise RuntimeError(f"qr: mode={mode!r} is not differentiable (PyTorch's rule: 'r' computes no Q, "
                               "'complete' with m > n has no unique Q); use mode='reduced' or A.detach()")
        return QRResult(_wrap(q, xp), _wrap(r, xp))
    packed = apply(qr_p, (A,), {"mode": mode})
    k = min(m, n)
    lead = A.shape[:-2]
    q, r = _unpack(packed, ((lead + (m, k)), (lead + (k, n))))
    return QRResult(q, r)


# --- svd ---------------------------------------------------------------------------------------------
def _svd_fwd(xp, a, full_matrices):
    u, s, vh = backend_linalg("svd", xp).svd(a, full_matrices=full_matrices)
    lead = a.shape[:-2]
    # explicit sizes: reshape(..., -1) is ambiguous for an empty batch
    flat = [xp.reshape(u, lead + (u.shape[-2] * u.shape[-1],)), s, xp.reshape(vh, lead + (vh.shape[-2] * vh.shape[-1],))]
    return xp.concat(flat, axis=-1), (u.shape, s.shape, vh.shape)


def _all_zero(t):
    from .reduce import all as rall
    return bool(rall(t.detach() == 0).item())


def _svd_grad(u, s, vh, gu, gs, gvh):
    """PyTorch's svd_backward (real case) on the reduced factors: gu / gvh None when unused."""
    from .matrix import diag_embed
    m, n, k = u.shape[-2], vh.shape[-1], s.shape[-1]
    if gu is None and gvh is None:
        return _mm(u * _ex(gs, -2), vh)
    s2 = s * s
    e = _ex(s2, -2) - _ex(s2, -1)                    # E[i, j] = s_j^2 - s_i^2, 1 on the diagonal
    from .._creation import eye
    one = eye(k, dtype=s.dtype, device=s.xp)
    e = e + one
    skew = (lambda x: x - _T(x))
    if gu is not None and gvh is not None:
        ret = (skew(_mm(_T(u), gu)) * _ex(s, -2) + _ex(s, -1) * skew(_mm(vh, _T(gvh)))) / e
    elif gu is not None:
        ret = (skew(_mm(_T(u), gu)) / e) * _ex(s, -2)
    else:
        ret = _ex(s, -1) * (skew(_mm(vh, _T(gvh))) / e)
    ret = ret * (1 - one)                            # the diagonal of the vector terms is 0
    if gs is not None:
        ret = ret + diag_embed(gs)
    if m > k and gu is not None:
        ga = _mm(u, ret)
        gus = gu / _ex(s, -2)
        ga = ga + gus - _mm(u, _mm(_T(u), gus))
        return _mm(ga, vh)
    if n > k and gvh is not None:
        ga = _mm(ret, vh)
        sgv = gvh / _ex(s, -1)
        ga = ga + sgv - _mm(_mm(sgv, _T(vh)), vh)
        return _mm(u, ga)
    return _mm(u, _mm(ret, vh))


@_tensor_vjp
def _svd_vjp(c, g, ins, out, res):
    u, s, vh = _unpack(out, res)
    gu, gs, gvh = _unpack(g, res)
    m, n = u.shape[-2], vh.shape[-1]
    k = s.shape[-1]
    if u.shape[-1] != k or vh.shape[-2] != k:
        # full_matrices with m != n: the columns of U (rows of Vh) past k are not unique, so no
        # gradient may flow into them; the first k are the reduced factors
        if not (_all_zero(gu[..., k:]) and _all_zero(gvh[..., k:, :])):
            raise RuntimeError("svd: the gradient through the extra columns of U or rows of Vh that "
                               "full_matrices=True adds (m != n) is not defined, as in PyTorch; use "
                               "full_matrices=False")
        u, vh, gu, gvh = u[..., :k], vh[..., :k, :], gu[..., :k], gvh[..., :k, :]
    gu = None if _all_zero(gu) else gu
    gvh = None if _all_zero(gvh) else gvh
    del m, n
    return (_svd_grad(u, s, vh, gu, gs, gvh),)


svd_p = Primitive("svd", _svd_fwd, _svd_vjp, save="out", res=True)


def svd(A, full_matrices=True):
    """Singular value decomposition A = U diag(S) Vh of (..., m, n): U (..., m, m), S (..., k),
    Vh (..., n, n) with k = min(m, n) (full_matrices=False: U (..., m, k), Vh (..., k, n)).
    S descending. Differentiable (distinct singular values; the loss must not depend on the signs
    of the singular vectors)."""
    _mat("svd", A)
    m, n = A.shape[-2], A.shape[-1]
    k = min(m, n)
    lead = A.shape[:-2]
    packed = apply(svd_p, (A,), {"full_matrices": bool(full_matrices)})
    su = lead + ((m, m) if full_matrices else (m, k))
    sv = lead + ((n, n) if full_matrices else (k, n))
    u, s, vh = _unpack(packed, (su, lead + (k,), sv))
    return SVDResult(u, s, vh)


def svdvals(A):
    """The singular values of (..., m, n), descending: (..., min(m, n)). Gradient U diag(g) Vh.
    Computed as svd(A, full_matrices=False).S, so the vectors are on the graph for second order."""
    _mat("svdvals", A)
    return svd(A, full_matrices=False).S


# --- eigh --------------------------------------------------------------------------------------------
def _eigh_fwd(xp, a):
    w, v = backend_linalg("eigh", xp).eigh(a)
    lead = a.shape[:-2]
    return xp.concat([w, xp.reshape(v, lead + (-1,))], axis=-1), (w.shape, v.shape)


@_tensor_vjp
def _eigh_vjp(c, g, ins, out, res):
    # PyTorch's linalg_eig_backward (hermitian): gA = V (skew(V^T gV)/2 / E + diag(gL)) V^T with
    # E[i, j] = L_j - L_i
    from .matrix import diag_embed
    from .._creation import eye
    w, v = _unpack(out, res)
    gw, gv = _unpack(g, res)
    n = w.shape[-1]
    one = eye(n, dtype=w.dtype, device=w.xp)
    ret = diag_embed(gw)
    if not _all_zero(gv):
        vg = _mm(_T(v), gv)
        vg = 0.5 * (vg - _T(vg))
        e = _ex(w, -2) - _ex(w, -1) + one
        ret = ret + vg / e * (1 - one)
    return (_mm(v, _mm(ret, _T(v))),)


eigh_p = Primitive("eigh", _eigh_fwd, _eigh_vjp, save="out", res=True)


def eigh(A, UPLO="L"):
    """Eigenvalues (ascending, (..., n)) and orthonormal eigenvectors (columns, (..., n, n)) of a
    symmetric matrix (..., n, n); only the lower triangle is read (UPLO='L'). Differentiable for
    distinct eigenvalues and losses that do not depend on the eigenvectors' signs."""
    _square("eigh", A)
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    if UPLO == "U":
        from .matrix import triu
        A = triu(A) + _T(triu(A, 1))
    n = A.shape[-1]
    lead = A.shape[:-2]
    w, v = _unpack(apply(eigh_p, (A,)), (lead + (n,), lead + (n, n)))
    return EighResult(w, v)


def eigvalsh(A, UPLO="L"):
    """Eigenvalues (ascending) of a symmetric matrix (..., n, n) -> (..., n). Gradient V diag(g) V^T."""
    _square("eigvalsh", A)
    return eigh(A, UPLO).eigenvalues


# --- norms and derived functions ---------------------------------------------------------------------
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):  # noqa: A002
    """The vector ord-norm over `dim` (int, tuple, or None for all entries): ord = 2 (default),
    1, inf, -inf, 0 (the count of nonzeros, no gradient) or any other number. Gradients as
    `norm` (0 at the zero vector for ord 2)."""
    from . import elementwise as E
    from .reduce import amax, amin, norm, sum as rsum
    if axis is not None:
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    if not isinstance(x, Tensor):
        raise TypeError(f"vector_norm: expected an xbp.Tensor, got {type(x).__name__}")
    _float("vector_norm", x)
    if dtype is not None:
        x = x.to(dtype=dtype)
    dims = None if dim is None else tuple(dim_tuple("vector_norm", dim, x.ndim))
    ord = float(ord)
    if ord == float("inf"):
        return amax(E.abs(x), dims, keepdim)
    if ord == float("-inf"):
        return amin(E.abs(x), dims, keepdim)
    if ord == 0:
        return rsum((x.detach() != 0).to(dtype=x.dtype), dims, keepdim)
    if ord == 1:
        return rsum(E.abs(x), dims, keepdim)
    if ord < 0:
        return rsum(E.abs(x) ** ord, dims, keepdim) ** (1.0 / ord)
    return norm(x, ord, dims, keepdim)


@dim_aliases
def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):  # noqa: A002
    """Matrix norm over the two dims `dim` of A: 'fro' (Frobenius), 'nuc' (sum of singular values),
    2 / -2 (largest / smallest singular value), 1 / -1 (max / min column abs-sum), inf / -inf
    (max / min row abs-sum)."""
    from . import elementwise as E
    from .reduce import amax, amin, sum as rsum
    from .shape import unsqueeze
    _mat("matrix_norm", A)
    if dtype is not None:
        A = A.to(dtype=dtype)
    if len(tuple(dim)) != 2:
        raise RuntimeError(f"matrix_norm: dim must be a pair of dims, got {dim}")
    d0, d1 = dim_tuple("matrix_norm", tuple(dim), A.ndim)
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2, 2.0, -2.0):
        # move the pair to the end, take singular values, reduce
        s = svdvals(_pair_last(A, d0, d1))
        r = rsum(s, -1) if ord == "nuc" else (amax(s, -1) if ord in (2, 2.0) else amin(s, -1))
        if keepdim:
            for d in sorted((d0, d1)):
                r = unsqueeze(r, d)
        return r
    if ord in (1, -1, float("inf"), float("-inf")):
        sum_dim, red_dim = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = rsum(E.abs(A), sum_dim, True)
        r = (amax if ord in (1, float("inf")) else amin)(s, red_dim, True)
        if not keepdim:
            from .shape import squeeze
            r = squeeze(r, (d0, d1))
        return r
    raise RuntimeError(f"matrix_norm: ord must be 'fro', 'nuc', 2, -2, 1, -1, inf or -inf, got {ord!r}")


def _pair_last(A, d0, d1):
    from .shape import permute
    rest = [i for i in range(A.ndim) if i not in (d0, d1)]
    return permute(A, rest + [d0, d1])


@dim_aliases
def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):  # noqa: A002
    """torch.linalg.norm: with dim an int (or ord None and dim None: all entries) a vector norm;
    with dim a pair (or A 2-D and ord given) a matrix norm."""
    if not isinstance(A, Tensor):
        raise TypeError(f"norm: expected an xbp.Tensor, got {type(A).__name__}")
    if dim is not None and not isinstance(dim, (tuple, list)):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype)
        if A.ndim == 1:
            return vector_norm(A, ord, None, keepdim, dtype=dtype)
        if A.ndim == 2:
            return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
        raise RuntimeError(f"norm: with ord={ord!r} and dim=None the input must be 1-D or 2-D, got {A.shape}")
    if len(dim) == 1:
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    raise RuntimeError(f"norm: dim must be an int or a pair, got {dim}")


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None):
    """The number of singular values above max(atol, rtol * largest) (rtol defaults to
    eps * max(m, n) when atol is not given), per matrix (..., m, n) -> (...) int64; no gradient."""
    _mat("matrix_rank", A)
    xp = A.xp
    s = backend_linalg("matrix_rank", xp).svdvals(A.array)
    if tol is not None:
        atol = tol
    eps = float(np.finfo(A.dtype).eps)
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else eps * max(A.shape[-2], A.shape[-1])
    top = xp.max(s, axis=-1, keepdims=True) if s.shape[-1] else xp.zeros(s.shape[:-1] + (1,), dtype=s.dtype)
    thresh = xp.maximum(top * rtol, xp.asarray(float(atol or 0.0), dtype=s.dtype))
    return _wrap(xp.sum(xp.astype(s > thresh, xp.dtype(np.dtype("int64"))), axis=-1), xp)


def matrix_power(A, n):
    """A multiplied by itself n times (n = 0: identity; n < 0: powers of inv(A)), by repeated
    squaring."""
    from .._creation import eye
    from .shape import broadcast_to
    _square("matrix_power", A)
    n = int(n)
    if n == 0:
        return broadcast_to(eye(A.shape[-1], dtype=A.dtype, device=A.xp), A.shape) * 1
    base = inv(A) if n < 0 else A
    n = abs(n)
    result = None
    while n:
        if n & 1:
            result = base if result is None else _mm(result, base)
        n >>= 1
        if n:
            base = _mm(base, base)
    return result


def multi_dot(tensors):
    """The product of a list of matrices (the first may be 1-D, a row; the last 1-D, a column)."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise RuntimeError("multi_dot: expected at least two tensors")
    out = tensors[0]
    for t in tensors[1:]:
        out = _mm(out, t)
    return out


@dim_aliases
def vecdot(x, y, *, dim=-1):
    """Dot products along `dim` (broadcasting): sum(x * y, dim)."""
    from .reduce import sum as rsum
    d = dim_index("vecdot", dim, max(x.ndim, y.ndim))
    return rsum(x * y, d - max(x.ndim, y.ndim))


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """Moore-Penrose pseudo-inverse (..., m, n) -> (..., n, m) through the SVD: singular values at
    most max(atol, rtol * largest) are treated as zero. Differentiable where the rank is constant
    and the kept singular values are distinct."""
    from . import elementwise as E
    from .reduce import amax
    _mat("pinv", A)
    u, s, vh = svd(A, full_matrices=False)
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else float(np.finfo(A.dtype).eps) * max(A.shape[-2:])
    cut = E.maximum(amax(s.detach(), -1, True) * rtol, float(atol or 0.0)) if s.shape[-1] else 0.0
    keep = s.detach() > cut
    sinv = E.where(keep, 1.0 / E.where(keep, s, 1.0), 0.0)
    return _mm(_T(vh) * _ex(sinv, -2), _T(u))


# --- PyTorch's older top-level spellings -------------------------------------------------------------
def legacy_svd(A, some=True, compute_uv=True):
    """torch.svd: (U, S, V) with V (not Vh); some=True is the reduced decomposition. With
    compute_uv=False, U and V are zero-filled (S alone is computed), as PyTorch."""
    if not compute_uv:
        s = svdvals(A)
        from .._creation import zeros
        m, n = A.shape[-2], A.shape[-1]
        return SVDResult(zeros(*(A.shape[:-2] + (m, m)), dtype=A.dtype, device=A.xp), s,
                         zeros(*(A.shape[:-2] + (n, n)), dtype=A.dtype, device=A.xp))
    u, s, vh = svd(A, full_matrices=not some)
    return namedtuple("SVD", ["U", "S", "V"])(u, s, _T(vh))


def legacy_qr(A, some=True):
    """torch.qr: (Q, R), reduced when some=True, complete otherwise."""
    return qr(A, "reduced" if some else "complete")


def pinverse(A, rcond=1e-15):
    """torch.pinverse: pinv with singular values below rcond * largest treated as zero."""
    return pinv(A, rtol=rcond)


# --- more torch.linalg names, composed from the above ----------------------------------------------
def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """X with A X = B (left) or X A = B for a triangular A (..., n, n): only the `upper` or lower
    triangle of A is read (its diagonal taken as ones with unitriangular). Through `solve` on the
    masked matrix, so it is differentiable in A (that triangle) and B."""
    from .._creation import eye
    from .matrix import tril, triu
    _square("solve_triangular", A)
    T = triu(A, 1 if unitriangular else 0) if upper else tril(A, -1 if unitriangular else 0)
    if unitriangular:
        T = T + eye(A.shape[-1], dtype=A.dtype, device=A.xp)
    if not isinstance(B, Tensor) or B.ndim < 2:
        raise RuntimeError("solve_triangular: B must be a matrix or a batch of them (..., n, k)")
    return solve(T, B, left=left)


LstsqResult = namedtuple("LstsqResult", ["solution", "residuals", "rank", "singular_values"])
LstsqResult.__doc__ = "What `lstsq` returns: (solution, residuals, rank, singular_values), as torch.linalg.lstsq."


def lstsq(A, B, rcond=None, *, driver=None):
    """Least-squares solution of A X = B for A (..., m, n), B (..., m, k): the minimum-norm X,
    through the pseudo-inverse (differentiable where A's rank is constant). residuals, rank and
    singular_values are empty, as PyTorch's default CPU driver gives."""
    from .shape import reshape
    _mat("lstsq", A)
    vector = isinstance(B, Tensor) and B.ndim == A.ndim - 1
    Bm = reshape(B, B.shape + (1,)) if vector else B
    x = _mm(pinv(A, rtol=rcond), Bm)
    if vector:
        x = reshape(x, x.shape[:-1])
    xp = A.xp
    empty = _wrap(xp.zeros((0,), dtype=A.array.dtype), xp)
    return LstsqResult(x, empty, _wrap(xp.zeros((0,), dtype=xp.dtype(np.dtype("int64"))), xp), empty)


def cond(A, p=None):
    """Condition number: p = None / 2 the ratio of the largest to the smallest singular value (-2 the
    inverse), otherwise matrix_norm(A, p) * matrix_norm(inv(A), p)."""
    from .reduce import amax, amin
    _mat("cond", A)
    if p in (None, 2, -2):
        s = svdvals(A)
        r = amax(s, -1) / amin(s, -1)
        return r if p != -2 else 1.0 / r
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


def inv_ex(A, *, check_errors=False):
    """(inverse, info) as torch.linalg.inv_ex; info is 0 (a singular matrix raises in the backend)."""
    out = inv(A)
    xp = A.xp
    return namedtuple("InvEx", ["inverse", "info"])(out, _wrap(xp.zeros(A.shape[:-2], dtype=xp.dtype(np.dtype("int32"))), xp))


def cholesky_ex(A, *, upper=False, check_errors=False):
    """(L, info) as torch.linalg.cholesky_ex; info is 0 (a matrix that is not positive-definite
    raises in the backend)."""
    out = cholesky(A, upper=upper)
    xp = A.xp
    return namedtuple("CholeskyEx", ["L", "info"])(out, _wrap(xp.zeros(A.shape[:-2], dtype=xp.dtype(np.dtype("int32"))), xp))


def matrix_exp(A):
    """exp(A) of square matrices (..., n, n) by scaling and squaring: exp(A) = exp(A / 2^s)^(2^s)
    with s chosen so that the 1-norm of A / 2^s is at most 1/2, and an order-18 Taylor polynomial
    (Horner) for the scaled matrix (truncation below 1e-21 there). Composed of matmuls, so
    differentiable to any order."""
    from .._creation import eye
    _square("matrix_exp", A)
    xp = A.xp
    n = A.shape[-1]
    if n == 0 or A.numel() == 0:
        return A * 1
    a = A.detach().array
    norm1 = float(xp.to_numpy(xp.max(xp.sum(xp.abs(a), axis=-2)))) if n else 0.0
    s = max(0, int(np.ceil(np.log2(norm1 / 0.5)))) if norm1 > 0.5 else 0
    if not np.isfinite(norm1):
        raise RuntimeError("matrix_exp: the input has inf or NaN entries")
    b = A * (0.5 ** s) if s else A
    ident = eye(n, dtype=A.dtype, device=xp)
    e = ident
    for k in range(18, 0, -1):
        e = ident + _mm(b, e) * (1.0 / k)
    for _ in range(s):
        e = _mm(e, e)
    return e


def cholesky_solve(B, L, upper=False):
    """X with A X = B given A's Cholesky factor L (A = L L^T; upper=True: A = U^T U with U = L):
    two triangular solves. B (..., n, k), L (..., n, n)."""
    Lo = _T(L) if upper else L
    y = solve_triangular(Lo, B, upper=False)
    return solve_triangular(_T(Lo), y, upper=True)


def cholesky_inverse(L, upper=False):
    """inv(A) from A's Cholesky factor (A = L L^T, or U^T U with upper=True)."""
    from .._creation import eye
    from .shape import broadcast_to
    _square("cholesky_inverse", L)
    ident = broadcast_to(eye(L.shape[-1], dtype=L.dtype, device=L.xp), L.shape)
    return cholesky_solve(ident, L, upper)
