"""``torch.nn.utils.parametrizations``: weight_norm and spectral_norm as parametrizations (state
dicts as PyTorch: ``parametrizations.weight.original0`` (g) and ``original1`` (v) for weight_norm;
``parametrizations.weight.original`` and the power-iteration vectors ``parametrizations.weight.0._u``
and ``._v`` for spectral_norm)."""
from __future__ import annotations

from ... import _creation, ops
from ...autograd import no_grad
from .. import functional as F
from ..module import Module
from .parametrize import register_parametrization

__all__ = ["weight_norm", "spectral_norm"]


def _norm_except_dim(v, dim):
    """The 2-norm over every dim but `dim` (kept, others size 1); all dims when dim is None/-1."""
    if dim is None or dim == -1:
        return ops.norm(v)
    d = dim % v.ndim
    axes = tuple(i for i in range(v.ndim) if i != d)
    return ops.norm(v, 2, axes, keepdim=True) if axes else ops.abs(v)


class _WeightNorm(Module):
    def __init__(self, dim=0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return weight_v * (weight_g / _norm_except_dim(weight_v, self.dim))

    def right_inverse(self, weight):
        return _norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int = 0):
    """Reparametrize ``module.<name>`` as g * v / ||v|| (norm over every dim but `dim`; the whole
    tensor when dim is None). Returns the module."""
    return register_parametrization(module, name, _WeightNorm(dim), unsafe=True)


class _SpectralNorm(Module):
    def __init__(self, weight, n_power_iterations=1, dim=0, eps=1e-12):
        super().__init__()
        nd = weight.ndim
        if not -nd <= dim < max(nd, 1):
            raise IndexError(f"spectral_norm: dim {dim} is out of range for a {nd}-D weight")
        if n_power_iterations <= 0:
            raise ValueError(f"spectral_norm: expected n_power_iterations to be positive, got {n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + nd
        self.eps = eps
        if nd > 1:
            self.n_power_iterations = n_power_iterations
            w = self._matrix(weight.detach())
            h, wd = w.shape
            u = _creation.empty(h, dtype=weight.dtype, device=weight.device)
            v = _creation.empty(wd, dtype=weight.dtype, device=weight.device)
            from .. import init
            init.normal_(u)
            init.normal_(v)
            self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
            self._power_method(w, 15)

    def _matrix(self, weight):
        if self.dim != 0:
            weight = ops.movedim(weight, self.dim, 0)
        return ops.reshape(weight, (weight.shape[0], -1))

    def _power_method(self, w, n):
        with no_grad():
            for _ in range(n):
                self._u.copy_(F.normalize(ops.matmul(w, self._v), dim=0, eps=self.eps))
                self._v.copy_(F.normalize(ops.matmul(ops.swapaxes(w, 0, 1), self._u), dim=0, eps=self.eps))

    def forward(self, weight):
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        w = self._matrix(weight)
        if self.training:
            self._power_method(w.detach(), self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()
        sigma = ops.sum(u * ops.matmul(w, v))
        return weight / sigma

    def right_inverse(self, value):
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim=None):
    """Divide ``module.<name>`` by its largest singular value, estimated by power iteration (one
    step per forward in training; the vectors are buffers). dim defaults to 1 for transposed
    convolutions, else 0. Returns the module."""
    weight = getattr(module, name)
    if dim is None:
        from ..conv import ConvTranspose1d, ConvTranspose2d
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d)) else 0
    return register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
