"""The namespace VJPs see under ``create_graph=True``: Array API names over differentiable xbp
ops, so one VJP body computes first-order gradients on arrays and higher-order ones on Tensors."""
from __future__ import annotations

from .. import _engine
from .._backend import canonical_dtype
from .._tensor import Tensor, _wrap
from . import elementwise as E, fused, index as I, linalg as L, reduce as R, shape as S


class TensorNamespace:
    """Per-device: creation functions put new tensors on the device of `backend`."""

    def __init__(self, backend):
        self.backend = backend

    def _dt(self, dtype):
        return self.backend.dtype(canonical_dtype(dtype))

    # creation (constants: no gradient)
    def zeros(self, shape, dtype=None):
        return _wrap(self.backend.zeros(shape, dtype=self._dt(dtype)), self.backend)

    def zeros_like(self, x):
        return _wrap(self.backend.zeros_like(x.array), self.backend)

    def asarray(self, x, copy=None):
        return S.reshape(E.add(x, 0.0), x.shape) if copy else x

    # elementwise
    exp = staticmethod(E.exp)
    log = staticmethod(E.log)
    log1p = staticmethod(E.log1p)
    expm1 = staticmethod(E.expm1)
    sqrt = staticmethod(E.sqrt)
    abs = staticmethod(E.abs)
    sign = staticmethod(E.sign)
    sin = staticmethod(E.sin)
    cos = staticmethod(E.cos)
    tanh = staticmethod(E.tanh)
    erf = staticmethod(E.erf)
    maximum = staticmethod(E.maximum)
    minimum = staticmethod(E.minimum)
    isfinite = staticmethod(E.isfinite)

    @staticmethod
    def where(cond, a, b):
        return E.where(cond, a, b)

    @staticmethod
    def mask(g, keep):
        return E.where(keep, g, 0.0)

    @staticmethod
    def astype(x, dtype):
        return x.to(dtype=dtype)

    # reductions
    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return R.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def prod(x, axis=None, keepdims=False):
        return R.prod(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return R.amax(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def cumulative_sum(x, axis=None):
        return R.cumsum(x, axis)

    # shapes
    @staticmethod
    def reshape(x, shape):
        return S.reshape(x, shape)

    @staticmethod
    def broadcast_to(x, shape):
        return S.broadcast_to(x, shape)

    @staticmethod
    def expand_dims(x, axis):
        return S.unsqueeze(x, axis)

    @staticmethod
    def permute_dims(x, axes):
        return S.permute(x, axes)

    @staticmethod
    def matrix_transpose(x):
        return S.swapaxes(x, -1, -2)

    @staticmethod
    def flip(x, axis=None):
        return S.flip(x, axis if axis is not None else tuple(range(x.ndim)))

    @staticmethod
    def roll(x, shift, axis=None):
        return S.roll(x, shift, axis)

    @staticmethod
    def concat(xs, axis=0):
        return S.cat(xs, axis)

    @staticmethod
    def stack(xs, axis=0):
        return S.stack(xs, axis)

    @staticmethod
    def row_major(x):
        return x      # a memory-layout hint for first-order speed; nothing to do on the graph

    # products and gathers
    matmul = staticmethod(L.matmul)

    @staticmethod
    def take(x, idx, axis=0):
        if axis != 0:
            raise NotImplementedError("take under create_graph supports axis=0")
        return I.take_rows(x, idx if isinstance(idx, Tensor) else _wrap(idx, x.xp))

    def index_add_rows(self, n, idx, values):
        return I.index_add_rows(n, idx if isinstance(idx, Tensor) else _wrap(idx, self.backend), values)

    def setitem(self, x, key, value):
        I.setitem_(x, key, value)

    @staticmethod
    def getitem(x, key):
        return I.getitem(x, key)

    softmax = staticmethod(fused.softmax)


_CACHE: dict = {}


def tensor_namespace(backend) -> TensorNamespace:
    ns = _CACHE.get(backend)
    if ns is None:
        ns = _CACHE[backend] = TensorNamespace(backend)
    return ns


_engine.TENSOR_NAMESPACE[0] = tensor_namespace   # the engine runs create_graph VJPs with it
