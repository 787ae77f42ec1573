"""PyTorch's original (pre-parametrization) ``torch.nn.utils.weight_norm`` and ``spectral_norm``:
forward pre-hooks that recompute ``module.weight`` from new parameters before every call, with
PyTorch's state-dict keys (``weight_g`` and ``weight_v``; ``weight_orig``, ``weight_u`` and
``weight_v``), so checkpoints of models built with them (vocoders, GANs) load as they are."""
from __future__ import annotations

from ... import _creation, ops
from ...autograd import no_grad
from .. import functional as F
from ..parameter import Parameter
from .parametrizations import _norm_except_dim

__all__ = ["weight_norm", "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]


class _WeightNormHook:
    def __init__(self, name, dim):
        self.name = name
        self.dim = -1 if dim is None else dim

    def compute_weight(self, module):
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return v * (g / _norm_except_dim(v, self.dim))

    def __call__(self, module, inputs):
        object.__setattr__(module, self.name, self.compute_weight(module))


def _hook_of(module, kind, name):
    for hid, h in module._forward_pre_hooks.items():
        if isinstance(h, kind) and h.name == name:
            return hid, h
    return None, None


def weight_norm(module, name: str = "weight", dim: int = 0):
    """Replace ``module.<name>`` by g * v / ||v|| (norm over every dim but `dim`; all dims when
    None), with parameters ``<name>_g`` and ``<name>_v``, recomputed before each forward.
    Deprecated in PyTorch in favour of nn.utils.parametrizations.weight_norm; kept for its state
    dicts. Returns the module."""
    if _hook_of(module, _WeightNormHook, name)[1] is not None:
        raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
    fn = _WeightNormHook(name, dim)
    weight = module._parameters[name]
    del module._parameters[name]
    with no_grad():
        g = _norm_except_dim(weight.detach(), fn.dim)
    module.register_parameter(name + "_g", Parameter(g))
    module.register_parameter(name + "_v", Parameter(weight.detach()))
    fn(module, ())
    module.register_forward_pre_hook(fn)
    return module


def remove_weight_norm(module, name: str = "weight"):
    """Fold the weight norm back into a plain ``<name>`` Parameter."""
    hid, fn = _hook_of(module, _WeightNormHook, name)
    if fn is None:
        raise ValueError(f"weight_norm of '{name}' not found in {module}")
    with no_grad():
        w = fn.compute_weight(module).detach()
    del module._forward_pre_hooks[hid]
    module.__dict__.pop(name, None)
    del module._parameters[name + "_g"]
    del module._parameters[name + "_v"]
    module.register_parameter(name, Parameter(w))
    return module


class _SpectralNormHook:
    def __init__(self, name, n_power_iterations, dim, eps):
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations="
                             f"{n_power_iterations}")
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def matrix(self, weight):
        if self.dim != 0:
            weight = ops.movedim(weight, self.dim, 0)
        return ops.reshape(weight, (weight.shape[0], -1))

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        w = self.matrix(weight)
        if do_power_iteration:
            wd = w.detach()
            with no_grad():
                for _ in range(self.n_power_iterations):
                    v.copy_(F.normalize(ops.matmul(ops.swapaxes(wd, 0, 1), u), dim=0, eps=self.eps))
                    u.copy_(F.normalize(ops.matmul(wd, v), dim=0, eps=self.eps))
            u, v = u.clone(), v.clone()
        sigma = ops.sum(u * ops.matmul(w, v))
        return weight / sigma

    def __call__(self, module, inputs):
        object.__setattr__(module, self.name, self.compute_weight(module, module.training))


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12, dim=None):
    """Divide ``module.<name>`` by its spectral norm (power iteration, one step per training
    forward), with ``<name>_orig`` (parameter) and ``<name>_u``, ``<name>_v`` (buffers), as
    PyTorch's original spectral_norm. Returns the module."""
    if _hook_of(module, _SpectralNormHook, name)[1] is not None:
        raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
    if dim is None:
        from ..conv import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)) else 0
    fn = _SpectralNormHook(name, n_power_iterations, dim, eps)
    weight = module._parameters[name]
    with no_grad():
        h, w = fn.matrix(weight.detach()).shape
        from .. import init
        u = init.normal_(_creation.empty(h, dtype=weight.dtype, device=weight.device))
        v = init.normal_(_creation.empty(w, dtype=weight.dtype, device=weight.device))
        u, v = F.normalize(u, dim=0, eps=eps), F.normalize(v, dim=0, eps=eps)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)
    object.__setattr__(module, name, weight.detach())
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    module.register_forward_pre_hook(fn)
    return module


def remove_spectral_norm(module, name: str = "weight"):
    """Fold the spectral normalisation back into a plain ``<name>`` Parameter."""
    hid, fn = _hook_of(module, _SpectralNormHook, name)
    if fn is None:
        raise ValueError(f"spectral_norm of '{name}' not found in {module}")
    with no_grad():
        w = fn.compute_weight(module, False).detach()
    del module._forward_pre_hooks[hid]
    module.__dict__.pop(name, None)
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_u"]
    del module._buffers[name + "_v"]
    module.register_parameter(name, Parameter(w))
    return module
