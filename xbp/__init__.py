"""xbp: define-by-run reverse-mode autodiff on the Python Array API (NumPy on the CPU, CuPy on
NVIDIA GPUs), with a PyTorch-shaped API."""
import numpy as _np

from ._backend import (
    DeviceError, cuda_available, device, get_default_device, set_default_device,
)
from ._tensor import Tensor
from ._creation import (
    arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full, full_like, linspace,
    ones, ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from .autograd import enable_grad, grad, no_grad, set_grad_enabled, is_grad_enabled
from .ops import (
    abs, add, all, amax, amin, any, argmax, argmin, broadcast_to, cat, ceil, chunk, clamp, clip,
    clone, concat, cos, cumsum, div, einsum, elu, eq, erf, exp, expand, expm1, flatten, flip, floor,
    floor_divide, gather, ge, gelu, gt, index_select, isfinite, isinf, isnan, le, leaky_relu, linear,
    log, log1p, log_softmax, logical_and, logical_not, logical_or, logical_xor, logsumexp, lt,
    masked_fill, matmul, max, maximum, mean, min, minimum, movedim, mul, ne, neg, norm, one_hot,
    outer, pad, permute, pow, prod, relu, remainder, repeat_interleave, reshape, roll, round, rsqrt,
    sigmoid, sign, silu, sin, softmax, softplus, split, sqrt, squeeze, stack, std, sub, sum,
    swapaxes, swapdims, take_along_dim, tanh, tile, transpose, unbind, unflatten, unsqueeze, var,
    view, where,
)
from . import autograd  # noqa: F401
from . import viz  # noqa: F401

float16 = _np.dtype("float16")
float32 = _np.dtype("float32")
float64 = _np.dtype("float64")
int8 = _np.dtype("int8")
int16 = _np.dtype("int16")
int32 = _np.dtype("int32")
int64 = _np.dtype("int64")
uint8 = _np.dtype("uint8")
bool = _np.dtype("bool")  # noqa: A001
half, float, double, long = float16, float32, float64, int64  # noqa: A001

__version__ = "0.1.0"
from . import optim, data  # noqa: E402
from .serialization import save, load  # noqa: E402
from . import nn  # noqa: E402

# --- elementwise math and reductions ---
from .ops import (  # noqa: E402
    acos, acosh, allclose, aminmax, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, asin,
    asinh, atan, atan2, atanh, clamp_max, clamp_min, cosh, count_nonzero, cummax, cummin, cumprod,
    diff, digamma, erfc, erfinv, exp2, fix, fmod, frac, heaviside, hypot, isclose, lerp, lgamma, log10,
    log2, logaddexp, logaddexp2, logcumsumexp, multinomial, nan_to_num, polygamma, reciprocal, sgn,
    sinc, sinh, square, std_mean, tan, trunc, var_mean, xlogy,
)

# --- sorting, indexing, scatter and linear algebra ---
from .ops import (  # noqa: E402,F401
    addbmm, addmm, addmv, addr, argsort, argwhere, baddbmm, block_diag, bmm, bucketize, cdist,
    cholesky, cross, det, diag, diag_embed, diagonal, dot, index_add, index_copy, index_fill, inner,
    inverse, kron, kthvalue, logdet, masked_scatter, matrix_exp, matrix_power, median, mm, mode, msort, mv,
    nanmedian, nanquantile, narrow, nonzero, pinverse, quantile, scatter, scatter_add, scatter_reduce,
    searchsorted, slogdet, solve, sort, topk, trace, tril, tril_indices, triu, triu_indices, unique,
    vdot, index_put, put, take, cholesky_inverse, cholesky_solve, unique_consecutive,
)
from .ops import legacy_qr as qr, legacy_svd as svd  # noqa: E402,F401  (torch.qr / torch.svd spellings)
from . import linalg  # noqa: E402,F401

# --- autograd extension: Function, functional transforms, inference mode ---
import sys as _sys  # noqa: E402

from ._inference import inference_mode, is_inference_mode_enabled  # noqa: E402
from . import _function as _autograd_function  # noqa: E402
# torch.autograd.Function, torch.autograd.function.once_differentiable: xbp.autograd stays one
# module (xbp/autograd.py); its submodule paths are registered here, explicitly, one by one
autograd.Function = _autograd_function.Function  # type: ignore[attr-defined]
autograd.function = _autograd_function  # type: ignore[attr-defined]
autograd.inference_mode = inference_mode  # type: ignore[attr-defined]
_sys.modules["xbp.autograd.function"] = _autograd_function
from . import func  # noqa: E402
from . import autograd_functional as _autograd_functional  # noqa: E402
autograd.functional = _autograd_functional  # type: ignore[attr-defined]
_sys.modules["xbp.autograd.functional"] = _autograd_functional

# --- tensor surface: printing, Size, dtypes, random generators ---
from ._printing import get_printoptions, printoptions, set_printoptions  # noqa: E402,F401
from ._size import Size  # noqa: E402,F401
from ._creation import get_default_dtype, randint_like, set_default_dtype  # noqa: E402,F401
from ._predicates import is_complex, is_floating_point, is_tensor, numel  # noqa: E402,F401
# manual_seed returns the CPU's default generator, as torch.manual_seed
from ._random import (  # noqa: E402,F401
    Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state,
)
from . import random  # noqa: E402,F401
from . import return_types  # noqa: E402,F401
from ._legacy_types import (  # noqa: E402,F401
    BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor, LongTensor, ShortTensor,
)
uint16 = _np.dtype("uint16")
uint32 = _np.dtype("uint32")
uint64 = _np.dtype("uint64")
complex64 = _np.dtype("complex64")
complex128 = _np.dtype("complex128")
cfloat, cdouble, short = complex64, complex128, int16
# PyTorch's `torch.int` is int32 (this shadows the builtin inside this module: use it last)
int = int32  # noqa: A001


def __getattr__(name):
    # NumPy and CuPy have no bfloat16, so xbp cannot hold one: say so instead of a bare AttributeError
    if name == "bfloat16":
        raise AttributeError("xbp.bfloat16 is not available: NumPy and CuPy (xbp's array backends) have no "
                             "bfloat16 dtype; use xbp.float16 or xbp.float32")
    raise AttributeError(f"module 'xbp' has no attribute {name!r}")

# --- device namespace and data pipeline ---
from . import cuda  # noqa: E402
from . import utils  # noqa: E402
from .utils import data as _utils_data  # noqa: E402,F401  (so that xbp.utils.data works after import xbp)

# --- layers, modules ---

# --- optimizers, schedulers, I/O ---
from . import onnx  # noqa: E402,F401  (xbp.onnx.export; the onnx package is imported only when exporting)
from .serialization import CheckpointError  # noqa: E402,F401

# --- distributed ---
from . import distributed  # noqa: E402  (torch.distributed's names; the backends import mpi4py/CuPy lazily)

# --- compile ---
from ._compile import CompileError, compile  # noqa: E402,F401,A004

from . import array_api  # noqa: E402,F401  (the Array API namespace of xbp tensors)

# --- docstrings ---
from . import _tensor_docs  # noqa: E402,F401  (attaches the docstrings of Tensor's one-line methods)
