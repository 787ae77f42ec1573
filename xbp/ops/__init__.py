"""Differentiable operations, grouped by kind. Each module keeps forward and VJP side by side."""
from .elementwise import (  # noqa: F401
    abs, add, ceil, clamp, clip, cos, elu, eq, erf, exp, expm1, floor, floor_divide, ge, gelu, gt,
    isfinite, isinf, isnan, le, leaky_relu, log, log1p, logical_and, logical_not, logical_or,
    logical_xor, lt, maximum, minimum, mul, ne, neg, pow, relu, remainder, round, rsqrt, sigmoid,
    sign, silu, sin, softplus, sqrt, sub, tanh, where, div,
)
from .reduce import (  # noqa: F401
    all, amax, amin, any, argmax, argmin, cumsum, logsumexp, max, mean, min, norm, prod, std, sum, var,
)
from .shape import (  # noqa: F401
    broadcast_to, cat, chunk, concat, expand, flatten, flip, movedim, pad, permute, repeat_interleave,
    reshape, roll, split, squeeze, stack, swapaxes, swapdims, tile, transpose, unbind, unflatten,
    unsqueeze, view,
)
from .index import (  # noqa: F401
    add_, copy_, div_, fill_, gather, getitem, index_add_rows, inplace_, index_select, masked_fill, mul_,
    one_hot, setitem_, sub_, take_along_dim, take_rows,
)
from .linalg import einsum, linear, matmul, outer  # noqa: F401
from .fused import log_softmax, softmax  # noqa: F401
from .device import astype, clone, to_device  # noqa: F401
from ._tensor_ns import tensor_namespace  # noqa: F401

# --- elementwise math and reductions ---
from .math import (  # noqa: F401
    acos, acosh, allclose, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, asin, asinh, atan,
    atan2, atanh, clamp_max, clamp_min, cosh, digamma, erfc, erfinv, exp2, fix, fmod, frac, heaviside,
    hypot, isclose, lerp, lgamma, log10, log2, logaddexp, logaddexp2, nan_to_num, polygamma, reciprocal,
    sgn, sinc, sinh, square, tan, trunc, xlogy,
)
from .scan import cummax, cummin, cumprod, diff, logcumsumexp  # noqa: F401
from .statistics import aminmax, count_nonzero, std_mean, var_mean  # noqa: F401
from .sampling import multinomial  # noqa: F401

# --- sorting, indexing, scatter and linear algebra ---
from .sorting import (  # noqa: F401,E402
    argsort, argwhere, bucketize, kthvalue, median, mode, msort, nanmedian, nanquantile, nonzero,
    quantile, searchsorted, sort, topk, unique, unique_consecutive,
)
from .matrix import (  # noqa: F401,E402
    addbmm, addmm, addmv, addr, baddbmm, block_diag, bmm, cdist, cross, diag, diag_embed, diagonal,
    dot, inner, kron, mm, mv, narrow, trace, tril, tril_indices, triu, triu_indices, vdot,
)
from .scatter import (  # noqa: F401,E402
    index_add, index_add_, index_copy, index_copy_, index_fill, index_fill_, index_put, index_put_,
    masked_scatter, masked_scatter_, put, put_, scatter, scatter_, scatter_add, scatter_add_,
    scatter_reduce, scatter_reduce_, take,
)
from .decompositions import (  # noqa: F401,E402
    cholesky, cholesky_inverse, cholesky_solve, det, eigh, eigvalsh, inv, inverse, legacy_qr, legacy_svd, logdet, matrix_exp, matrix_power,
    pinv, pinverse, slogdet, solve, svdvals,
)

# --- tensor surface ---
