"""Lazy layers, whose input size is read from the first input: LazyLinear, LazyConv1d/2d/3d,
LazyConvTranspose1d/2d/3d, LazyBatchNorm1d/2d/3d, LazyInstanceNorm1d/2d/3d (PyTorch's names).

Their parameters start as UninitializedParameter (and running statistics as UninitializedBuffer):
placeholders with no elements. The first forward call (or a load_state_dict, which takes the
shapes from the checkpoint) materialises them in place, initialises them as the regular layer
does, and turns the module into that regular class (``cls_to_become``), as PyTorch. Build the
optimizer after that first call (or dry run), since parameters change size when materialised.
"""
from __future__ import annotations

from .. import _creation
from .._tensor import Tensor
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .layers import Linear
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from .parameter import Parameter

__all__ = [
    "UninitializedParameter", "UninitializedBuffer", "LazyModuleMixin", "LazyLinear",
    "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyConvTranspose3d",
    "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
    "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d",
]


class _Materializable:
    __slots__ = ()
    cls_to_become = Parameter

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Give the placeholder real (uninitialised) storage of `shape`, in place; it becomes a
        plain Parameter (or Tensor buffer)."""
        new = _creation.empty(*tuple(shape), device=device if device is not None else self.device,
                              dtype=dtype if dtype is not None else self.dtype)
        self.array = new.array
        self.xp = new.xp
        self._version[0] += 1
        self.__class__ = self.cls_to_become

    def __repr__(self):
        return f"<{type(self).__name__}>"


class UninitializedParameter(_Materializable, Parameter):
    """A Parameter with no shape yet (a lazy layer's weight before its first input)."""
    __slots__ = ()
    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device=None, dtype=None):
        Parameter.__init__(self, _creation.empty(0, device=device, dtype=dtype), requires_grad)


class UninitializedBuffer(_Materializable, Tensor):
    """A buffer with no shape yet (a lazy norm layer's running statistics)."""
    __slots__ = ()
    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device=None, dtype=None):
        t = _creation.empty(0, device=device, dtype=dtype)
        Tensor.__init__(self, t.array, requires_grad=requires_grad)


def _is_lazy(t) -> bool:
    return isinstance(t, _Materializable)


def _infer_parameters(module, args):
    module.initialize_parameters(*args)
    if module.has_uninitialized_params():
        raise RuntimeError(f"{type(module).__name__}: initialize_parameters left parameters uninitialized")
    module._initialize_hook.remove()
    module._load_hook.remove()
    del module._initialize_hook
    del module._load_hook
    if module.cls_to_become is not None:
        module.__class__ = module.cls_to_become


def _lazy_load_hook(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    for registry in (module._parameters, module._buffers):
        for name, t in registry.items():
            key = prefix + name
            if key in state_dict and _is_lazy(t):
                t.materialize(tuple(state_dict[key].shape))


class LazyModuleMixin:
    """Mix into a layer whose __init__ leaves UninitializedParameter / UninitializedBuffer
    placeholders, and define ``initialize_parameters(input)``."""
    cls_to_become = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._load_hook = self.register_load_state_dict_pre_hook(_lazy_load_hook)
        self._initialize_hook = self.register_forward_pre_hook(_infer_parameters)

    def has_uninitialized_params(self) -> bool:
        """True while a parameter or buffer is still uninitialised (before the first input)."""
        return any(_is_lazy(t) for t in list(self._parameters.values()) + list(self._buffers.values()))

    def initialize_parameters(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define initialize_parameters(input)")


class LazyLinear(LazyModuleMixin, Linear):
    """Linear whose in_features is the last dim of the first input."""
    cls_to_become = Linear

    def __init__(self, out_features, bias=True, device=None, dtype=None):
        super().__init__(0, 0, False)
        self.out_features = out_features
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def initialize_parameters(self, input, *args):
        """Reads in_features from the last dim of the first input and materialises the weight
        (out_features, in_features) and bias, then initialises them."""
        self.in_features = input.shape[-1]      # also after a load_state_dict materialised the weights
        if self.has_uninitialized_params():
            self.weight.materialize((self.out_features, self.in_features))
            if self.bias is not None:
                self.bias.materialize((self.out_features,))
            self.reset_parameters()


class _LazyConv(LazyModuleMixin):
    def _lazy_init(self, out_channels, bias, device, dtype):
        self.out_channels = out_channels
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def initialize_parameters(self, input, *args):
        """Reads in_channels from the first input (dim 1, or dim 0 when unbatched) and materialises the
        weight and bias with their shapes, then initialises them; ValueError when in_channels is not
        divisible by groups."""
        n = len(self.kernel_size)
        self.in_channels = input.shape[0] if input.ndim == n + 1 else input.shape[1]
        if not self.has_uninitialized_params():
            return
        if self.in_channels % self.groups:
            raise ValueError(f"{type(self).__name__}: in_channels ({self.in_channels}) must be divisible by groups "
                             f"({self.groups})")
        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight.materialize(shape)
        if self.bias is not None:
            self.bias.materialize((self.out_channels,))
        self.reset_parameters()


def _lazy_conv(name, base, transposed):
    if transposed:
        def __init__(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True,
                     dilation=1, padding_mode="zeros", device=None, dtype=None):
            base.__init__(self, 0, 0, kernel_size, stride, padding, output_padding, groups, False, dilation,
                          padding_mode)
            self._lazy_init(out_channels, bias, device, dtype)
    else:
        def __init__(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                     padding_mode="zeros", device=None, dtype=None):
            base.__init__(self, 0, 0, kernel_size, stride, padding, dilation, groups, False, padding_mode)
            self._lazy_init(out_channels, bias, device, dtype)

    def init(self, *args, **kwargs):
        __init__(self, *args, **kwargs)
        self._load_hook = self.register_load_state_dict_pre_hook(_lazy_load_hook)
        self._initialize_hook = self.register_forward_pre_hook(_infer_parameters)

    init.__doc__ = None
    return type(name, (_LazyConv, base), {"__init__": init, "cls_to_become": base, "__module__": __name__,
                                          "__doc__": f"{base.__name__} whose in_channels is read from the first "
                                                     "input."})


LazyConv1d = _lazy_conv("LazyConv1d", Conv1d, False)
LazyConv2d = _lazy_conv("LazyConv2d", Conv2d, False)
LazyConv3d = _lazy_conv("LazyConv3d", Conv3d, False)
LazyConvTranspose1d = _lazy_conv("LazyConvTranspose1d", ConvTranspose1d, True)
LazyConvTranspose2d = _lazy_conv("LazyConvTranspose2d", ConvTranspose2d, True)
LazyConvTranspose3d = _lazy_conv("LazyConvTranspose3d", ConvTranspose3d, True)


class _LazyNorm(LazyModuleMixin):
    _instance = False

    def initialize_parameters(self, input, *args):
        """Reads num_features from the first input (dim 1, or dim 0 when unbatched) and materialises
        the weight, bias and running statistics with that size, then initialises them."""
        spatial = getattr(self, "_spatial", None)
        unbatched = self._instance and input.ndim == spatial + 1
        self.num_features = input.shape[0] if unbatched else input.shape[1]
        if not self.has_uninitialized_params():
            return
        C = self.num_features
        for name in ("weight", "bias"):
            t = self._parameters.get(name)
            if t is not None:
                t.materialize((C,))
        for name in ("running_mean", "running_var"):
            t = self._buffers.get(name)
            if t is not None:
                t.materialize((C,))
        self.reset_parameters()


def _lazy_norm(name, base, instance):
    # PyTorch's lazy norms all default to affine=True, track_running_stats=True (InstanceNorm's included)
    def init(self, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None, dtype=None):
        base.__init__(self, 0, eps, momentum, False, False)
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = UninitializedParameter(device=device, dtype=dtype)
            self.bias = UninitializedParameter(device=device, dtype=dtype)
        if track_running_stats:
            self.register_buffer("running_mean", UninitializedBuffer(device=device, dtype=dtype))
            self.register_buffer("running_var", UninitializedBuffer(device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", _creation.tensor(0, dtype="int64", device=device))
        self._load_hook = self.register_load_state_dict_pre_hook(_lazy_load_hook)
        self._initialize_hook = self.register_forward_pre_hook(_infer_parameters)

    return type(name, (_LazyNorm, base), {"__init__": init, "cls_to_become": base, "_instance": instance,
                                          "__module__": __name__,
                                          "__doc__": f"{base.__name__} whose num_features is read from the first "
                                                     "input."})


LazyBatchNorm1d = _lazy_norm("LazyBatchNorm1d", BatchNorm1d, False)
LazyBatchNorm2d = _lazy_norm("LazyBatchNorm2d", BatchNorm2d, False)
LazyBatchNorm3d = _lazy_norm("LazyBatchNorm3d", BatchNorm3d, False)
LazyInstanceNorm1d = _lazy_norm("LazyInstanceNorm1d", InstanceNorm1d, True)
LazyInstanceNorm2d = _lazy_norm("LazyInstanceNorm2d", InstanceNorm2d, True)
LazyInstanceNorm3d = _lazy_norm("LazyInstanceNorm3d", InstanceNorm3d, True)
