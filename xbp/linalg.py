"""xbp.linalg: PyTorch's torch.linalg names, portable through the Array API `linalg` extension.

Every function is differentiable with its standard VJP (see xbp/ops/decompositions.py for the
formulas and their limits: distinct singular values/eigenvalues for the vectors' gradients,
invertible matrices for det/inv/solve, m >= n for qr).
"""
from .ops.decompositions import (  # noqa: F401
    EighResult, LstsqResult, QRResult, SlogdetResult, SVDResult, cholesky, cholesky_ex, cond, det, eigh,
    eigvalsh, inv, inv_ex, lstsq, matrix_exp, matrix_norm, matrix_power, matrix_rank, multi_dot, norm, pinv, qr,
    slogdet, solve, solve_triangular, svd, svdvals, vecdot, vector_norm,
)
from .ops.linalg import matmul  # noqa: F401
from .ops import matrix as _matrix

__all__ = [
    "EighResult", "LstsqResult", "QRResult", "SVDResult", "SlogdetResult", "cholesky",
    "cholesky_ex", "cond", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "inv_ex",
    "lstsq", "matmul", "matrix_exp", "matrix_norm", "matrix_power", "matrix_rank", "multi_dot",
    "norm", "pinv", "qr", "slogdet", "solve", "solve_triangular", "svd", "svdvals", "vecdot",
    "vector_norm",
]


def cross(input, other, *, dim=-1):  # noqa: A002
    """Cross product of 3-vectors along `dim` (default the last, unlike xbp.cross)."""
    return _matrix.cross(input, other, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """The `offset` diagonal of the matrices in the last two dims (by default): (..., n, m) -> (..., L)."""
    return _matrix.diagonal(A, offset, dim1, dim2)
