"""Docstrings of `Tensor`'s methods and properties, kept beside the class rather than in it so that
its method table stays one line per method (PyTorch keeps them apart the same way, in
torch/_tensor_docs.py). Imported once by ``xbp/__init__.py``.

Three kinds of entry:
- DELEGATES: methods whose body is ``return _ops.<op>(self, ...)``; the docstring says which call
  the method is and then shows that function's own docstring, so the two never drift apart;
- INPLACE: methods whose body is ``_ops.inplace_(self, name, fn)``, i.e. ``t = fn(t)`` in place;
- DOCS: everything else, written out.
tests/test_docstrings.py checks the first two tables against the source of _tensor.py.
"""
from __future__ import annotations

import inspect
import re

from . import ops as _ops
from ._tensor import Tensor

# method: (the function of xbp.ops it calls, that call with the tensor written as `t`)
DELEGATES = {
    'T': ('permute', 'xbp.permute(t, tuple(range(self.ndim - 1, -1, -1)))'),
    'mT': ('transpose', 'xbp.transpose(t, -1, -2)'),
    'exp': ('exp', 'xbp.exp(t)'),
    'log': ('log', 'xbp.log(t)'),
    'log1p': ('log1p', 'xbp.log1p(t)'),
    'expm1': ('expm1', 'xbp.expm1(t)'),
    'sqrt': ('sqrt', 'xbp.sqrt(t)'),
    'rsqrt': ('rsqrt', 'xbp.rsqrt(t)'),
    'abs': ('abs', 'xbp.abs(t)'),
    'sign': ('sign', 'xbp.sign(t)'),
    'sin': ('sin', 'xbp.sin(t)'),
    'cos': ('cos', 'xbp.cos(t)'),
    'tanh': ('tanh', 'xbp.tanh(t)'),
    'sigmoid': ('sigmoid', 'xbp.sigmoid(t)'),
    'relu': ('relu', 'xbp.relu(t)'),
    'neg': ('neg', 'xbp.neg(t)'),
    'pow': ('pow', 'xbp.pow(t, e)'),
    'clamp': ('clamp', 'xbp.clamp(t, min, max)'),
    'maximum': ('maximum', 'xbp.maximum(t, o)'),
    'minimum': ('minimum', 'xbp.minimum(t, o)'),
    'add': ('add', 'xbp.add(t, other, alpha=alpha)'),
    'sub': ('sub', 'xbp.sub(t, other, alpha=alpha)'),
    'mul': ('mul', 'xbp.mul(t, o)'),
    'div': ('div', 'xbp.div(t, other, rounding_mode=rounding_mode)'),
    'matmul': ('matmul', 'xbp.matmul(t, o)'),
    'sum': ('sum', 'xbp.sum(t, dim, keepdim, **kw)'),
    'mean': ('mean', 'xbp.mean(t, dim, keepdim, **kw)'),
    'prod': ('prod', 'xbp.prod(t, dim, keepdim, **kw)'),
    'var': ('var', 'xbp.var(t, dim, keepdim, correction=correction, **kw)'),
    'std': ('std', 'xbp.std(t, dim, keepdim, correction=correction, **kw)'),
    'amax': ('amax', 'xbp.amax(t, dim, keepdim, **kw)'),
    'amin': ('amin', 'xbp.amin(t, dim, keepdim, **kw)'),
    'max': ('max', 'xbp.max(t, dim, keepdim, **kw)'),
    'min': ('min', 'xbp.min(t, dim, keepdim, **kw)'),
    'argmax': ('argmax', 'xbp.argmax(t, dim, keepdim, **kw)'),
    'argmin': ('argmin', 'xbp.argmin(t, dim, keepdim, **kw)'),
    'logsumexp': ('logsumexp', 'xbp.logsumexp(t, dim, keepdim, **kw)'),
    'norm': ('norm', 'xbp.norm(t, p, dim, keepdim, **kw)'),
    'all': ('all', 'xbp.all(t, dim, keepdim, **kw)'),
    'any': ('any', 'xbp.any(t, dim, keepdim, **kw)'),
    'softmax': ('softmax', 'xbp.softmax(t, dim, dtype, **kw)'),
    'log_softmax': ('log_softmax', 'xbp.log_softmax(t, dim, dtype, **kw)'),
    'reshape': ('reshape', 'xbp.reshape(t, _shape_args(shape))'),
    'view': ('reshape', 'xbp.reshape(t, _shape_args(shape))'),
    'view_as': ('reshape', 'xbp.reshape(t, other.shape)'),
    'reshape_as': ('reshape', 'xbp.reshape(t, other.shape)'),
    'flatten': ('flatten', 'xbp.flatten(t, start_dim, end_dim)'),
    'transpose': ('transpose', 'xbp.transpose(t, dim0, dim1)'),
    'swapaxes': ('transpose', 'xbp.transpose(t, axis0, axis1)'),
    'swapdims': ('transpose', 'xbp.transpose(t, dim0, dim1)'),
    'permute': ('permute', 'xbp.permute(t, _shape_args(dims))'),
    'expand': ('expand', 'xbp.expand(t, _shape_args(shape))'),
    'expand_as': ('expand', 'xbp.expand(t, other.shape)'),
    'broadcast_to': ('broadcast_to', 'xbp.broadcast_to(t, shape)'),
    'squeeze': ('squeeze', 'xbp.squeeze(t, dim, **kw)'),
    'unsqueeze': ('unsqueeze', 'xbp.unsqueeze(t, dim, **kw)'),
    'flip': ('flip', 'xbp.flip(t, _shape_args(dims) if dims else None, **kw)'),
    'roll': ('roll', 'xbp.roll(t, shifts, dims, **kw)'),
    'split': ('split', 'xbp.split(t, split_size_or_sections, dim, **kw)'),
    'chunk': ('chunk', 'xbp.chunk(t, chunks, dim, **kw)'),
    'gather': ('gather', 'xbp.gather(t, dim, index, **kw)'),
    'take_along_dim': ('take_along_dim', 'xbp.take_along_dim(t, indices, dim, **kw)'),
    'masked_fill': ('masked_fill', 'xbp.masked_fill(t, mask, value)'),
    'index_select': ('index_select', 'xbp.index_select(t, dim, index, **kw)'),
    'movedim': ('movedim', 'xbp.movedim(t, source, destination)'),
    'unflatten': ('unflatten', 'xbp.unflatten(t, dim, sizes)'),
    'unbind': ('unbind', 'xbp.unbind(t, dim, **kw)'),
    'tile': ('tile', 'xbp.tile(t, _shape_args(reps))'),
    'repeat_interleave': ('repeat_interleave', 'xbp.repeat_interleave(t, repeats, dim, **kw)'),
    'cumsum': ('cumsum', 'xbp.cumsum(t, dim, **kw)'),
    'eq': ('eq', 'xbp.eq(t, o)'),
    'ne': ('ne', 'xbp.ne(t, o)'),
    'lt': ('lt', 'xbp.lt(t, o)'),
    'le': ('le', 'xbp.le(t, o)'),
    'gt': ('gt', 'xbp.gt(t, o)'),
    'ge': ('ge', 'xbp.ge(t, o)'),
    'floor': ('floor', 'xbp.floor(t)'),
    'ceil': ('ceil', 'xbp.ceil(t)'),
    'round': ('round', 'xbp.round(t)'),
    'erf': ('erf', 'xbp.erf(t)'),
    'isnan': ('isnan', 'xbp.isnan(t)'),
    'isfinite': ('isfinite', 'xbp.isfinite(t)'),
    'clone': ('clone', 'xbp.clone(t)'),
    'repeat': ('tile', 'xbp.tile(t, _shape_args(sizes))'),
    'tan': ('tan', 'xbp.tan(t)'),
    'asin': ('asin', 'xbp.asin(t)'),
    'acos': ('acos', 'xbp.acos(t)'),
    'atan': ('atan', 'xbp.atan(t)'),
    'sinh': ('sinh', 'xbp.sinh(t)'),
    'cosh': ('cosh', 'xbp.cosh(t)'),
    'asinh': ('asinh', 'xbp.asinh(t)'),
    'acosh': ('acosh', 'xbp.acosh(t)'),
    'atanh': ('atanh', 'xbp.atanh(t)'),
    'atan2': ('atan2', 'xbp.atan2(t, other)'),
    'hypot': ('hypot', 'xbp.hypot(t, other)'),
    'logaddexp': ('logaddexp', 'xbp.logaddexp(t, other)'),
    'logaddexp2': ('logaddexp2', 'xbp.logaddexp2(t, other)'),
    'log2': ('log2', 'xbp.log2(t)'),
    'log10': ('log10', 'xbp.log10(t)'),
    'exp2': ('exp2', 'xbp.exp2(t)'),
    'reciprocal': ('reciprocal', 'xbp.reciprocal(t)'),
    'clamp_min': ('clamp_min', 'xbp.clamp_min(t, min)'),
    'clamp_max': ('clamp_max', 'xbp.clamp_max(t, max)'),
    'lerp': ('lerp', 'xbp.lerp(t, end, weight)'),
    'nan_to_num': ('nan_to_num', 'xbp.nan_to_num(t, nan, posinf, neginf)'),
    'heaviside': ('heaviside', 'xbp.heaviside(t, values)'),
    'fmod': ('fmod', 'xbp.fmod(t, other)'),
    'frac': ('frac', 'xbp.frac(t)'),
    'trunc': ('trunc', 'xbp.trunc(t)'),
    'sinc': ('sinc', 'xbp.sinc(t)'),
    'xlogy': ('xlogy', 'xbp.xlogy(t, other)'),
    'erfc': ('erfc', 'xbp.erfc(t)'),
    'erfinv': ('erfinv', 'xbp.erfinv(t)'),
    'lgamma': ('lgamma', 'xbp.lgamma(t)'),
    'digamma': ('digamma', 'xbp.digamma(t)'),
    'sgn': ('sgn', 'xbp.sgn(t)'),
    'isclose': ('isclose', 'xbp.isclose(t, other, rtol, atol, equal_nan)'),
    'allclose': ('allclose', 'xbp.allclose(t, other, rtol, atol, equal_nan)'),
    'cumprod': ('cumprod', 'xbp.cumprod(t, dim, **kw)'),
    'cummax': ('cummax', 'xbp.cummax(t, dim, **kw)'),
    'cummin': ('cummin', 'xbp.cummin(t, dim, **kw)'),
    'logcumsumexp': ('logcumsumexp', 'xbp.logcumsumexp(t, dim, **kw)'),
    'diff': ('diff', 'xbp.diff(t, n, dim, prepend, append, **kw)'),
    'aminmax': ('aminmax', 'xbp.aminmax(t, dim=dim, keepdim=keepdim, **kw)'),
    'count_nonzero': ('count_nonzero', 'xbp.count_nonzero(t, dim, **kw)'),
    'multinomial': ('multinomial', 'xbp.multinomial(t, num_samples, replacement, generator=generator)'),
    'sort': ('sort', 'xbp.sort(t, dim, descending, stable, **kw)'),
    'argsort': ('argsort', 'xbp.argsort(t, dim, descending, stable, **kw)'),
    'msort': ('msort', 'xbp.msort(t)'),
    'topk': ('topk', 'xbp.topk(t, k, dim, largest, sorted, **kw)'),
    'kthvalue': ('kthvalue', 'xbp.kthvalue(t, k, dim, keepdim, **kw)'),
    'median': ('median', 'xbp.median(t, dim, keepdim, **kw)'),
    'nanmedian': ('nanmedian', 'xbp.nanmedian(t, dim, keepdim, **kw)'),
    'quantile': ('quantile', 'xbp.quantile(t, q, dim, keepdim, **kw)'),
    'nanquantile': ('nanquantile', 'xbp.nanquantile(t, q, dim, keepdim, **kw)'),
    'mode': ('mode', 'xbp.mode(t, dim, keepdim, **kw)'),
    'unique': ('unique', 'xbp.unique(t, *args, **kw)'),
    'unique_consecutive': ('unique_consecutive', 'xbp.unique_consecutive(t, *args, **kw)'),
    'nonzero': ('nonzero', 'xbp.nonzero(t, as_tuple=as_tuple)'),
    'argwhere': ('argwhere', 'xbp.argwhere(t)'),
    'tril': ('tril', 'xbp.tril(t, diagonal)'),
    'triu': ('triu', 'xbp.triu(t, diagonal)'),
    'diag': ('diag', 'xbp.diag(t, diagonal)'),
    'diagonal': ('diagonal', 'xbp.diagonal(t, offset, dim1, dim2)'),
    'diag_embed': ('diag_embed', 'xbp.diag_embed(t, offset, dim1, dim2)'),
    'trace': ('trace', 'xbp.trace(t)'),
    'narrow': ('narrow', 'xbp.narrow(t, *args, **kw)'),
    'mm': ('mm', 'xbp.mm(t, mat2)'),
    'bmm': ('bmm', 'xbp.bmm(t, mat2)'),
    'mv': ('mv', 'xbp.mv(t, vec)'),
    'dot': ('dot', 'xbp.dot(t, other)'),
    'vdot': ('vdot', 'xbp.vdot(t, other)'),
    'inner': ('inner', 'xbp.inner(t, other)'),
    'outer': ('outer', 'xbp.outer(t, other)'),
    'addmm': ('addmm', 'xbp.addmm(t, mat1, mat2, beta=beta, alpha=alpha)'),
    'baddbmm': ('baddbmm', 'xbp.baddbmm(t, b1, b2, beta=beta, alpha=alpha)'),
    'addbmm': ('addbmm', 'xbp.addbmm(t, b1, b2, beta=beta, alpha=alpha)'),
    'addmv': ('addmv', 'xbp.addmv(t, mat, vec, beta=beta, alpha=alpha)'),
    'addr': ('addr', 'xbp.addr(t, v1, v2, beta=beta, alpha=alpha)'),
    'cross': ('cross', 'xbp.cross(t, *args, **kw)'),
    'kron': ('kron', 'xbp.kron(t, other)'),
    'scatter': ('scatter', 'xbp.scatter(t, *args, **kw)'),
    'scatter_add': ('scatter_add', 'xbp.scatter_add(t, *args, **kw)'),
    'scatter_reduce': ('scatter_reduce', 'xbp.scatter_reduce(t, *args, **kw)'),
    'index_add': ('index_add', 'xbp.index_add(t, *args, **kw)'),
    'index_copy': ('index_copy', 'xbp.index_copy(t, *args, **kw)'),
    'index_fill': ('index_fill', 'xbp.index_fill(t, *args, **kw)'),
    'masked_scatter': ('masked_scatter', 'xbp.masked_scatter(t, mask, source)'),
    'index_put': ('index_put', 'xbp.index_put(t, indices, values, accumulate)'),
    'take': ('take', 'xbp.take(t, index)'),
    'put': ('put', 'xbp.put(t, index, source, accumulate)'),
    'det': ('det', 'xbp.det(t)'),
    'logdet': ('logdet', 'xbp.logdet(t)'),
    'slogdet': ('slogdet', 'xbp.slogdet(t)'),
    'inverse': ('inverse', 'xbp.inverse(t)'),
    'cholesky': ('cholesky', 'xbp.cholesky(t, upper=upper)'),
    'cholesky_solve': ('cholesky_solve', 'xbp.cholesky_solve(t, L, upper)'),
    'cholesky_inverse': ('cholesky_inverse', 'xbp.cholesky_inverse(t, upper)'),
    'pinverse': ('pinverse', 'xbp.pinverse(t, rcond)'),
    'matrix_power': ('matrix_power', 'xbp.matrix_power(t, n)'),
    'matrix_exp': ('matrix_exp', 'xbp.matrix_exp(t)'),
}

# method: (the out-of-place function of xbp.ops, the call whose result is written into `t`)
INPLACE = {
    'clamp_': ('clamp', 'xbp.clamp(t, min, max)'),
    'relu_': ('relu', 'xbp.relu(t)'),
    'neg_': ('neg', 'xbp.neg(t)'),
    'pow_': ('pow', 'xbp.pow(t, e)'),
    'exp_': ('exp', 'xbp.exp(t)'),
    'sqrt_': ('sqrt', 'xbp.sqrt(t)'),
    'masked_fill_': ('masked_fill', 'xbp.masked_fill(t, mask, value)'),
    'abs_': ('abs', 'xbp.abs(t)'),
    'tan_': ('tan', 'xbp.tan(t)'),
    'sinh_': ('sinh', 'xbp.sinh(t)'),
    'cosh_': ('cosh', 'xbp.cosh(t)'),
    'asin_': ('asin', 'xbp.asin(t)'),
    'acos_': ('acos', 'xbp.acos(t)'),
    'atan_': ('atan', 'xbp.atan(t)'),
    'log2_': ('log2', 'xbp.log2(t)'),
    'log10_': ('log10', 'xbp.log10(t)'),
    'exp2_': ('exp2', 'xbp.exp2(t)'),
    'square_': ('square', 'xbp.square(t)'),
    'reciprocal_': ('reciprocal', 'xbp.reciprocal(t)'),
    'trunc_': ('trunc', 'xbp.trunc(t)'),
    'frac_': ('frac', 'xbp.frac(t)'),
    'erfinv_': ('erfinv', 'xbp.erfinv(t)'),
    'lgamma_': ('lgamma', 'xbp.lgamma(t)'),
    'digamma_': ('digamma', 'xbp.digamma(t)'),
    'clamp_min_': ('clamp_min', 'xbp.clamp_min(t, min)'),
    'clamp_max_': ('clamp_max', 'xbp.clamp_max(t, max)'),
    'atan2_': ('atan2', 'xbp.atan2(t, other)'),
    'hypot_': ('hypot', 'xbp.hypot(t, other)'),
    'fmod_': ('fmod', 'xbp.fmod(t, other)'),
    'xlogy_': ('xlogy', 'xbp.xlogy(t, other)'),
    'lerp_': ('lerp', 'xbp.lerp(t, end, weight)'),
    'nan_to_num_': ('nan_to_num', 'xbp.nan_to_num(t, nan, posinf, neginf)'),
    'tril_': ('tril', 'xbp.tril(t, diagonal)'),
    'triu_': ('triu', 'xbp.triu(t, diagonal)'),
    'addmm_': ('addmm', 'xbp.addmm(t, mat1, mat2, beta=beta, alpha=alpha)'),
}

_INPLACE_TAIL = """Overwrites the data of `t` with the result (same shape) and returns `t`. Autograd records it
when grad mode is on and `t` or an operand requires grad (gradients flow through the old value);
the version counter is bumped, so a backward that needs the old value raises instead of using the
new one. As in PyTorch, it is refused on a leaf that requires grad (do it under ``xbp.no_grad()``)
and, when not recorded, for a result whose dtype category is above `t`'s (a float result into an
integer tensor)."""

_CONVERT = "A copy of `t` converted to {dtype} (``t.to(dtype=xbp.{dtype})``); `t` itself if it is already {dtype}."

# written out: properties, conversions and the methods that are not one-call delegations
DOCS = {
    "ndim": "Number of dimensions (``len(t.shape)``); 0 for a scalar tensor.",
    "dtype": "The element type, as an xbp dtype (``xbp.float32``, ``xbp.int64``, ...) on every device.",
    "device": "The device holding the data: an `xbp.device` such as ``device('cpu')``, ``device('strict')``\n"
              "or ``device('cuda:0')``.",
    "is_leaf": "True when `t` was not produced by a recorded op (``t.grad_fn is None``): created by the user,\n"
               "detached, or computed without grad. Only leaves that require grad get ``.grad`` filled by\n"
               "`backward` (unless ``retain_grad()`` was called).",
    "numel": "Number of elements, the product of ``t.shape`` (1 for a scalar tensor).",
    "dim": "Number of dimensions, as `ndim`.",
    "is_floating_point": "True when the dtype is a real floating type (float16, float32 or float64).",
    "requires_grad_": "Sets ``requires_grad`` in place and returns `t`. Only floating and complex tensors may\n"
                      "require grad (others raise RuntimeError), and ``requires_grad_(False)`` is refused on a\n"
                      "non-leaf (use `detach`).",
    "detach_": "Detaches `t` from the graph in place: it becomes a leaf (``grad_fn`` None) that does not\n"
               "require grad. Returns `t`.",
    "item": "The value of a one-element tensor as a Python number (float, int, bool or complex). Any\n"
            "shape with a single element works; otherwise ValueError. Copies to the host on cuda.",
    "tolist": "The data as (nested) Python lists of Python numbers; a scalar tensor gives a number.",
    "cpu": "`t` on the CPU (``t.to('cpu')``): a copy from another device, `t` itself if already there.",
    "cuda": "`t` on the GPU ``cuda:<index>`` (``t.to(f'cuda:{index}')``); needs CuPy and a GPU.",
    "float": _CONVERT.format(dtype="float32"),
    "double": _CONVERT.format(dtype="float64"),
    "long": _CONVERT.format(dtype="int64"),
    "int": _CONVERT.format(dtype="int32"),
    "bool": _CONVERT.format(dtype="bool"),
    "half": _CONVERT.format(dtype="float16") + " Refused with a TypeError on a device without float16\n"
            "(strict).",
    "char": _CONVERT.format(dtype="int8"),
    "byte": _CONVERT.format(dtype="uint8"),
    "short": _CONVERT.format(dtype="int16"),
    "cfloat": _CONVERT.format(dtype="complex64"),
    "cdouble": _CONVERT.format(dtype="complex128"),
    "type_as": "`t` converted to the dtype of `other` (``t.to(dtype=other.dtype)``); the device is kept.",
    "t": "Transpose of a tensor with at most 2 dims: (m, n) -> (n, m); 0-d and 1-d tensors keep their\n"
         "shape. More dims raise ValueError (use `mT` or `transpose`).",
    "T": "All dims reversed: shape (a, b, c) -> (c, b, a), as ``t.permute(*reversed(range(t.ndim)))``.",
    "mT": "The last two dims swapped (a batch of transposed matrices): (..., m, n) -> (..., n, m).",
    "square": "Elementwise ``t * t``, as `xbp.square`; differentiable.",
    "new_tensor": "A new tensor from `data` (as `xbp.tensor`) on `t`'s device, in `t`'s dtype unless `dtype`\n"
                  "is given (so ``int_tensor.new_tensor([1.5])`` is an integer tensor).",
    "new_zeros": "Zeros of shape `size` (ints or one sequence) on `t`'s device, in `t`'s dtype unless `dtype`\n"
                 "is given.",
    "new_ones": "Ones of shape `size` (ints or one sequence) on `t`'s device, in `t`'s dtype unless `dtype`\n"
                "is given.",
    "new_full": "A tensor of shape `size` filled with `fill_value`, on `t`'s device, in `t`'s dtype unless\n"
                "`dtype` is given.",
    "new_empty": "A tensor of shape `size` on `t`'s device, in `t`'s dtype unless `dtype` is given. xbp fills\n"
                 "it with zeros (it is `new_zeros`), where PyTorch leaves the memory uninitialised.",
    "contiguous": "Returns `t` itself: xbp tensors show no strides, so every tensor counts as contiguous.",
    "is_contiguous": "Always True: xbp tensors show no strides (see `contiguous`).",
    "polygamma": "``t.polygamma(n)`` is ``xbp.polygamma(n, t)``: the n-th derivative of digamma at each element.",
    "is_cuda": "True when the data is on a CUDA GPU (device type 'cuda').",
    "is_cpu": "True when the data is on the CPU (NumPy). The strict test device is not 'cpu'.",
    "is_complex": "True when the dtype is complex (complex64 or complex128).",
    "itemsize": "Size of one element in bytes (4 for float32).",
    "nbytes": "Size of the data in bytes: ``t.numel() * t.itemsize``.",
    "nelement": "Number of elements, as `numel`.",
    "ndimension": "Number of dimensions, as `ndim`.",
    "add_": "In-place ``t += alpha * other`` (a tensor or a number, broadcast to `t`'s shape); returns `t`.\n"
            "The result keeps `t`'s dtype.\n\n" + _INPLACE_TAIL,
    "sub_": "In-place ``t -= alpha * other`` (a tensor or a number, broadcast to `t`'s shape); returns `t`.\n"
            "The result keeps `t`'s dtype.\n\n" + _INPLACE_TAIL,
    "mul_": "In-place ``t *= other`` (a tensor or a number, broadcast to `t`'s shape); returns `t`.\n\n"
            + _INPLACE_TAIL,
    "div_": "In-place ``t /= other`` (true division: refused on an integer `t`); returns `t`.\n\n" + _INPLACE_TAIL,
    "zero_": "Fills `t` with zeros in place and returns it (on the graph, the old value gets no gradient).",
    "fill_": "Fills `t` with the number `v` in place and returns it (a tensor `v` is copied as by `copy_`).\n"
             "On the graph, the old value gets no gradient.",
    "copy_": "Copies `src` (a tensor broadcastable to `t`'s shape, on the same device, or a number, list\n"
             "or NumPy array) into `t` in place, converting to `t`'s dtype, and returns `t`.\n"
             "Differentiable with respect to `src`; `t`'s old value gets no gradient.",
    "qr": "PyTorch's legacy ``torch.qr``: ``(Q, R)`` with ``Q @ R == t`` for (..., m, n); reduced when\n"
          "``some=True`` (Q is (..., m, k), k = min(m, n)), complete otherwise. Prefer `xbp.linalg.qr`.",
    "svd": "PyTorch's legacy ``torch.svd``: ``(U, S, V)`` with ``t == U @ diag(S) @ V.mT`` (V, not Vh);\n"
           "``some=True`` is the reduced decomposition. With ``compute_uv=False`` only S is computed and U, V\n"
           "are zero-filled, as in PyTorch. Prefer `xbp.linalg.svd`.",
}


# in-place forms of the scatter/index ops, which take their out-of-place form's arguments
_SCATTER_INPLACE = ("scatter_", "scatter_add_", "scatter_reduce_", "index_add_", "index_copy_", "index_fill_",
                    "index_put_", "put_", "masked_scatter_")


# `_shape_args(x)` in a call: the method takes the sizes as separate ints or as one tuple/list
_SHAPE_ARGS = re.compile(r"_shape_args\((\w+)\)")
_VARIADIC = "\nThe sizes (or dims) may be given as separate ints or as one tuple or list."


def _set_doc(name: str, doc: str) -> None:
    attr = Tensor.__dict__[name]            # the function or property object itself
    attr.__doc__ = doc


def _attach() -> None:
    for name, (op, call) in DELEGATES.items():
        body = inspect.cleandoc(getattr(_ops, op).__doc__ or "")
        shown = _SHAPE_ARGS.sub(r"\1", call)
        note = _VARIADIC if shown != call else ""
        _set_doc(name, f"``t.{name}(...)`` is ``{shown}``.{note}\n\n{body}")
    for name, (op, call) in INPLACE.items():
        _set_doc(name, f"In-place form of `{op}`: ``t.{name}(...)`` computes ``{call}``.\n\n" + _INPLACE_TAIL)
    for name in _SCATTER_INPLACE:
        base = name[:-1]
        _set_doc(name, f"In-place `{base}`: ``t.{name}(...)`` takes the arguments of ``t.{base}(...)`` and "
                 f"writes the result into `t`.\n\n" + _INPLACE_TAIL + "\n\nThe out-of-place form:\n\n"
                 + inspect.cleandoc(getattr(_ops, base).__doc__ or ""))
    for name, doc in DOCS.items():
        _set_doc(name, doc)


_attach()
