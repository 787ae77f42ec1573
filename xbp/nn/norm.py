"""Normalisation layers: BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, with PyTorch's
parameters (weight = 1, bias = 0) and buffers (running_mean = 0, running_var = 1,
num_batches_tracked = 0), so PyTorch state dicts load as they are."""
from __future__ import annotations

import numpy as np

from .. import _creation
from ..autograd import no_grad
from . import functional as F
from . import init
from ..ops._util import check_size
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LocalResponseNorm", "BatchNorm3d", "RMSNorm"]


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = (2, 3)
    _version = 2         # PyTorch's _NormBase version (num_batches_tracked added), in state_dict metadata

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        self.num_features = check_size(type(self).__name__, num_features, "num_features")
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        C = self.num_features
        if affine:
            self.weight = Parameter(_creation.ones(C, device=device, dtype=dtype))
            self.bias = Parameter(_creation.zeros(C, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", _creation.zeros(C, device=device, dtype=dtype))
            self.register_buffer("running_var", _creation.ones(C, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", _creation.tensor(0, dtype=np.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Resets running_mean to 0, running_var to 1 and num_batches_tracked to 0 (when the module
        tracks running statistics)."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1.0)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Resets the running statistics and, with `affine`, the weight to 1 and the bias to 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        """Normalises `input` per channel (dim 1). In training mode with batch statistics, updating the
        running ones (momentum, or a cumulative average when momentum is None); in eval mode with
        the running statistics (batch statistics when the module tracks none). Wrong rank: ValueError."""
        if input.ndim not in self._ndims:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{d}-D' for d in self._ndims)} "
                             f"input, got shape {input.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:      # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        # batch statistics when training or when there are no running ones
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                             self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs, per channel C."""
    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, per channel C."""
    _ndims = (4,)


class LayerNorm(Module):
    """Normalise over the last dims (normalized_shape) of each sample; weight = 1, bias = 0 of
    normalized_shape when elementwise_affine."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(check_size("LayerNorm", s, "normalized_shape") for s in normalized_shape)
        self.eps, self.elementwise_affine = float(eps), elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_creation.ones(*self.normalized_shape, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(_creation.zeros(*self.normalized_shape, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input):
        """Returns ``F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)``
        (see `xbp.nn.functional.layer_norm`)."""
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalise each of num_groups channel groups per sample: (N, C, *) -> same; per-channel
    weight = 1, bias = 0 when affine."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = check_size("GroupNorm", num_groups, "num_groups")
        self.num_channels = check_size("GroupNorm", num_channels, "num_channels")
        self.eps, self.affine = float(eps), affine
        if affine:
            self.weight = Parameter(_creation.ones(self.num_channels, device=device, dtype=dtype))
            self.bias = Parameter(_creation.zeros(self.num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input):
        """Returns ``F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)``
        (see `xbp.nn.functional.group_norm`)."""
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(_BatchNorm):
    """PyTorch's _InstanceNorm: the _BatchNorm layout (weight, bias, running_mean, running_var,
    num_batches_tracked), but affine and track_running_stats default to False and statistics are
    per (sample, channel) over the spatial dims."""
    _spatial = 1

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)

    def forward(self, input):
        """Normalises each sample and channel over its spatial dims (unbatched input accepted), with
        batch statistics in training mode or without running statistics, else the running ones."""
        n = self._spatial
        if input.ndim not in (n + 1, n + 2):
            raise ValueError(f"{type(self).__name__}: expected a {n + 1}-D (unbatched) or {n + 2}-D input, got "
                             f"shape {input.shape}")
        unbatched = input.ndim == n + 1
        x = input[None, ...] if unbatched else input
        if x.shape[1] != self.num_features and self.affine:
            raise ValueError(f"{type(self).__name__}: expected input with {self.num_features} channels (dim "
                             f"{0 if unbatched else 1}), got shape {input.shape}")
        y = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training or not self.track_running_stats,
                            self.momentum if self.momentum is not None else 0.0, self.eps)
        return y[0, ...] if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """Instance norm of (N, C, L) or (C, L): each (sample, channel) normalised over L."""
    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance norm of (N, C, H, W) or (C, H, W): each (sample, channel) normalised over H, W."""
    _spatial = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance norm of (N, C, D, H, W) or (C, D, H, W)."""
    _spatial = 3


class LocalResponseNorm(Module):
    """x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta: (N, C, *) -> same."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        """Returns ``F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)``
        (see `xbp.nn.functional.local_response_norm`)."""
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W) inputs, per channel C."""
    _ndims = (5,)


class RMSNorm(Module):
    """x / sqrt(mean(x^2 over normalized_shape) + eps) * weight (weight = 1 when elementwise_affine);
    eps=None uses the input dtype's machine epsilon, as PyTorch."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(check_size("RMSNorm", s, "normalized_shape") for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_creation.ones(*self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self) -> None:
        """Sets the weight (if any) back to ones."""
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, x):
        """Returns ``F.rms_norm(x, self.normalized_shape, self.weight, self.eps)``
        (see `xbp.nn.functional.rms_norm`)."""
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
