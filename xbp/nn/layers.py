"""Containers (Sequential, ModuleList, ModuleDict), basic layers (Linear, Identity, Flatten,
Dropout) and the loss modules. Layers own parameters and call `xbp.nn.functional`; they do no
maths of their own."""
from __future__ import annotations

import math
from collections import OrderedDict

from .. import _creation
from ..ops import flatten as _flatten
from ..ops import unflatten as _unflatten
from . import functional as F
from . import init
from ..ops._util import check_size
from .module import Module
from .parameter import Parameter

__all__ = [
    "Sequential", "ModuleList", "ModuleDict", "Linear", "Identity", "Flatten", "Dropout",
    "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
    "BCEWithLogitsLoss", "KLDivLoss",
    "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Bilinear", "Unflatten", "ParameterList", "ParameterDict",
    "CosineSimilarity", "PairwiseDistance", "CosineEmbeddingLoss", "MarginRankingLoss", "TripletMarginLoss",
    "HingeEmbeddingLoss", "SoftMarginLoss", "PoissonNLLLoss", "GaussianNLLLoss", "CTCLoss",
    "ChannelShuffle", "MultiLabelSoftMarginLoss", "MultiMarginLoss", "TripletMarginWithDistanceLoss",
    "MultiLabelMarginLoss",
]


# --- containers ---------------------------------------------------------------------------------
def _index(i, n, what):
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"{what}: index {i} is out of range for {n} modules")
    return i % n


class Sequential(Module):
    """Modules applied in order: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))``, or from an
    OrderedDict of names. Children are named "0", "1", ... (PyTorch's parameter names)."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, input):
        """Calls the modules in order, each on the previous one's output, and returns the last output."""
        for m in self._modules.values():
            input = m(input)
        return input

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        keys = list(self._modules)
        return self._modules[keys[_index(idx, len(keys), "Sequential")]]

    def __setitem__(self, idx, module):
        keys = list(self._modules)
        self.add_module(keys[_index(idx, len(keys), "Sequential")], module)

    def __delitem__(self, idx):
        keys = list(self._modules)
        for k in (keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(keys), "Sequential")]]):
            del self._modules[k]
        # renumber so names stay "0", "1", ... (PyTorch does the same)
        mods = list(self._modules.values())
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m

    def append(self, module) -> "Sequential":
        """Adds `module` at the end; returns the Sequential."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> "Sequential":
        """Appends each module of the iterable `modules`; returns the Sequential."""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module) -> "Sequential":
        """Inserts `module` before position `index` (negative counts from the end, as list.insert);
        IndexError outside [-len, len]. Returns the Sequential."""
        n = len(self)
        if not -n <= index <= n:
            raise IndexError(f"Sequential.insert: index {index} is out of range for {n} modules")
        mods = list(self._modules.values())
        mods.insert(index % (n + 1) if index < 0 else index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (names "0", "1", ...). It has no
    forward: iterate over it in your own."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx, module):
        self.add_module(str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[_index(idx, len(mods), "ModuleList")]
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def append(self, module) -> "ModuleList":
        """Adds `module` at the end; returns the ModuleList."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        """Appends each module of the iterable `modules` (a single Module is refused: use `append`);
        returns the ModuleList."""
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError("ModuleList.extend takes an iterable of modules, got a single "
                            f"{type(modules).__name__}; use append")
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module) -> None:
        """Inserts `module` before position `index`, as list.insert."""
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)


class ModuleDict(Module):
    """An ordered dict of modules whose parameters are registered under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        """The names of the modules, in insertion order."""
        return self._modules.keys()

    def items(self):
        """(name, module) pairs, in insertion order."""
        return self._modules.items()

    def values(self):
        """The modules, in insertion order."""
        return self._modules.values()

    def pop(self, key):
        """Removes the module named `key` and returns it (KeyError if absent)."""
        return self._modules.pop(key)

    def clear(self) -> None:
        """Removes every module."""
        self._modules.clear()

    def update(self, modules) -> None:
        """Adds or replaces modules from a mapping or an iterable of (name, module) pairs."""
        items = modules.items() if hasattr(modules, "items") else modules
        for k, m in items:
            self[k] = m


# --- layers -------------------------------------------------------------------------------------
class Identity(Module):
    """Returns its input (arguments are accepted and ignored, as PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        """Returns `input` unchanged (the same tensor object)."""
        return input


class Linear(Module):
    """y = x W^T + b. x (..., in_features) -> (..., out_features); weight (out, in), bias (out,).

    Initialised as PyTorch: W ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
    b ~ U(-1/sqrt(in), 1/sqrt(in)), from the device's seeded generator."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = check_size("Linear", in_features, "in_features")
        self.out_features = check_size("Linear", out_features, "out_features")
        self.weight = Parameter(_creation.empty(self.out_features, self.in_features, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(_creation.empty(self.out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draws the weight and bias as at construction (PyTorch's default): weight from
        `kaiming_uniform_` with a = sqrt(5), bias uniform in [-1/sqrt(in_features), 1/sqrt(in_features)]."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        """``input @ weight.T + bias``: (*, in_features) -> (*, out_features) (`xbp.nn.functional.linear`)."""
        p = self._parameters        # direct: attribute lookup through Module.__getattr__ costs ~1 µs
        # a parametrized or pruned weight/bias (nn.utils.parametrize, prune, weight_norm) is no longer in
        # _parameters: then the attribute (a property or the hook's recomputed tensor)
        return F.linear(input, p["weight"] if "weight" in p else self.weight, p["bias"] if "bias" in p else self.bias)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flatten dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        """`input` with dims `start_dim` .. `end_dim` merged into one, as ``xbp.flatten``."""
        return _flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero elements with probability p in training (scaling the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability must be in [0, 1], got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        """Returns ``F.dropout(input, self.p, self.training, self.inplace)``: see `xbp.nn.functional.dropout`."""
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"p={self.p}, inplace={self.inplace}"


# --- losses -------------------------------------------------------------------------------------
class _Loss(Module):
    """Base of the loss modules. PyTorch's signature (size_average, reduce, reduction): the
    deprecated pair maps to a reduction as PyTorch's `_Reduction.legacy_get_string`; a string in
    the first place is taken as the reduction (xbp's own losses pass it that way)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        if isinstance(size_average, str):
            size_average, reduction = None, size_average
        if size_average is not None or reduce is not None:
            size_average = True if size_average is None else size_average
            reduce = True if reduce is None else reduce
            reduction = ("mean" if size_average else "sum") if reduce else "none"
        self.reduction = reduction

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return ""


class _WeightedLoss(_Loss):
    """Keeps `weight` as a buffer (it moves with .to() and is saved), as PyTorch does."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean squared error (input - target)^2, reduced by `reduction` ('mean', 'sum' or 'none'); input
    and target of the same shape.

    Example::

        loss = nn.MSELoss()(prediction, target)     # a scalar tensor"""
    def forward(self, input, target):
        """Returns ``F.mse_loss(input, target, reduction=self.reduction)``: see `xbp.nn.functional.mse_loss`."""
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error |input - target|, reduced by `reduction` ('mean', 'sum' or 'none')."""
    def forward(self, input, target):
        """Returns ``F.l1_loss(input, target, reduction=self.reduction)``: see `xbp.nn.functional.l1_loss`."""
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target), reduced by
    `reduction`."""
    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):
        """Returns ``F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)``
        (see `xbp.nn.functional.smooth_l1_loss`)."""
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (d = input - target), reduced by
    `reduction`."""
    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        """Returns ``F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)``
        (see `xbp.nn.functional.huber_loss`)."""
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits `input` (N, C) (or (N, C, d1, ...), or (C,)) against class indices
    (N,) or class probabilities of the input's shape; `weight` (C,), `ignore_index` and
    `label_smoothing` as in `xbp.nn.functional.cross_entropy`.

    Example::

        loss = nn.CrossEntropyLoss()(logits, labels)   # logits (N, C) float, labels (N,) int64"""
    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        """Returns `xbp.nn.functional.cross_entropy` of the inputs, with this module's settings as
        its arguments."""
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities `input` (N, C, ...) at integer class `target`
    (N, ...); `weight` (C,) and `ignore_index` as in `xbp.nn.functional.nll_loss`."""
    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        """`xbp.nn.functional.nll_loss` applied with this module's settings:
        ``F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)``."""
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities `input` in [0, 1] against `target` of the same shape;
    `weight` rescales each element. Prefer BCEWithLogitsLoss on logits (more stable)."""
    def forward(self, input, target):
        """Returns ``F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)``
        (see `xbp.nn.functional.binary_cross_entropy`)."""
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross entropy in one stable expression, on logits `input` and `target` of
    the same shape; `pos_weight` (one per class, along the last dim) scales the positive term."""
    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        """Returns `xbp.nn.functional.binary_cross_entropy_with_logits` of the inputs, with this module's settings as
        its arguments."""
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """KL(target || exp(input)) for log-probabilities `input` (or log targets with `log_target`);
    use ``reduction='batchmean'`` for the true KL divergence per sample."""
    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input, target):
        """Returns ``F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)``
        (see `xbp.nn.functional.kl_div`)."""
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


# --- second wave: dropout variants, Bilinear, Unflatten, parameter containers, distances, losses ---
class _DropoutNd(Module):
    _fn = "dropout"

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        """Applies this class's dropout function (`xbp.nn.functional.dropout`, ``dropout2d``, ...) with
        probability `p` in training mode; in eval mode `input` is returned unchanged."""
        return getattr(F, self._fn)(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) / (C, L) with probability p in training (scale the rest)."""
    _fn = "dropout1d"


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) / (C, H, W) with probability p in training."""
    _fn = "dropout2d"


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) / (C, D, H, W) with probability p in training."""
    _fn = "dropout3d"


class AlphaDropout(_DropoutNd):
    """Dropout that keeps SELU's self-normalisation (zero mean, unit variance); see F.alpha_dropout."""
    _fn = "alpha_dropout"


class Bilinear(Module):
    """y = x1^T A x2 + b: (*, in1_features), (*, in2_features) -> (*, out_features). weight
    (out, in1, in2) and bias (out,) ~ U(-1/sqrt(in1), 1/sqrt(in1)), as PyTorch."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features = check_size("Bilinear", in1_features, "in1_features")
        self.in2_features = check_size("Bilinear", in2_features, "in2_features")
        self.out_features = check_size("Bilinear", out_features, "out_features")
        kw = dict(device=device, dtype=dtype)
        self.weight = Parameter(_creation.empty(out_features, in1_features, in2_features, **kw))
        if bias:
            self.bias = Parameter(_creation.empty(out_features, **kw))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draws weight and bias uniformly in [-1/sqrt(in1_features), 1/sqrt(in1_features)], as at
        construction."""
        bound = 1.0 / math.sqrt(self.weight.shape[1]) if self.weight.shape[1] else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        """Returns ``F.bilinear(input1, input2, self.weight, self.bias)``: see `xbp.nn.functional.bilinear`."""
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Unflatten(Module):
    """Split dim `dim` into `unflattened_size`: Unflatten(1, (2, 5)) maps (N, 10) to (N, 2, 5)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if isinstance(dim, str):
            raise NotImplementedError("Unflatten: named dims are not supported; pass an int dim")
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input):
        """`input` with dim `dim` split into `unflattened_size`, as ``xbp.unflatten``."""
        return _unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def _as_parameter(v):
    from .._tensor import Tensor
    if isinstance(v, Parameter) or v is None:
        return v
    if isinstance(v, Tensor):
        return Parameter(v)
    raise TypeError(f"expected a Parameter or Tensor, got {type(v).__name__}")


class ParameterList(Module):
    """A list of Parameters registered as "0", "1", ... (PyTorch's names; Tensors are wrapped)."""

    def __init__(self, values=None):
        super().__init__()
        self._size = 0
        if values is not None:
            self.extend(values)

    def __len__(self):
        return self._size

    def __iter__(self):
        return (self._parameters[str(i)] for i in range(self._size))

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ParameterList(list(self)[idx])
        return self._parameters[str(_index(idx, self._size, "ParameterList"))]

    def __setitem__(self, idx, param):
        self.register_parameter(str(_index(idx, self._size, "ParameterList")), _as_parameter(param))

    def __iadd__(self, params):
        return self.extend(params)

    def __dir__(self):
        return [k for k in super().__dir__() if not k.isdigit()]

    def append(self, value) -> "ParameterList":
        """Adds `value` at the end (a tensor becomes a Parameter); returns the ParameterList."""
        self.register_parameter(str(self._size), _as_parameter(value))
        self._size += 1
        return self

    def extend(self, values) -> "ParameterList":
        """Appends each value of the iterable `values`; returns the ParameterList."""
        for v in values:
            self.append(v)
        return self

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return "\n".join(f"({i}): Parameter containing: [{type(p).__name__} of size {'x'.join(map(str, p.shape))}]"
                         for i, p in enumerate(self))


class ParameterDict(Module):
    """An ordered dict of Parameters registered under their keys (Tensors are wrapped)."""

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        return self._parameters[key]

    def __setitem__(self, key, value):
        self.register_parameter(key, _as_parameter(value))

    def __delitem__(self, key):
        del self._parameters[key]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key):
        return key in self._parameters

    def keys(self):
        """The parameter names, in insertion order."""
        return self._parameters.keys()

    def items(self):
        """(name, parameter) pairs, in insertion order."""
        return self._parameters.items()

    def values(self):
        """The parameters, in insertion order."""
        return self._parameters.values()

    def get(self, key, default=None):
        """The parameter named `key`, or `default` when there is none."""
        return self._parameters.get(key, default)

    def setdefault(self, key, default=None):
        """The parameter named `key`; if absent, `default` is stored under `key` first."""
        if key not in self._parameters:
            self[key] = default
        return self._parameters[key]

    def pop(self, key):
        """Removes the parameter named `key` and returns it (KeyError if absent)."""
        return self._parameters.pop(key)

    def popitem(self):
        """Removes and returns the last inserted (name, parameter) pair."""
        return self._parameters.popitem()

    def clear(self) -> None:
        """Removes every parameter."""
        self._parameters.clear()

    def copy(self) -> "ParameterDict":
        """A new ParameterDict holding the same Parameter objects (a shallow copy)."""
        return ParameterDict(OrderedDict(self._parameters))

    def update(self, parameters) -> None:
        """Adds or replaces parameters from a mapping or an iterable of (name, value) pairs."""
        items = parameters.items() if hasattr(parameters, "items") else parameters
        for k, v in items:
            self[k] = v

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return "\n".join(f"({k}): Parameter containing: [{type(p).__name__} of size {'x'.join(map(str, p.shape))}]"
                         for k, p in self.items())


class CosineSimilarity(Module):
    """cos(x1, x2) along `dim` (eps guards zero norms): (*, D, *) -> (*, *)."""

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        """Returns ``F.cosine_similarity(x1, x2, self.dim, self.eps)``
        (see `xbp.nn.functional.cosine_similarity`)."""
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """||x1 - x2 + eps||_p over the last dim: (N, D) -> (N,)."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        """Returns ``F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)``
        (see `xbp.nn.functional.pairwise_distance`)."""
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class CosineEmbeddingLoss(_Loss):
    """1 - cos(x1, x2) for target 1, max(0, cos(x1, x2) - margin) for target -1."""

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        """`xbp.nn.functional.cosine_embedding_loss` applied with this module's settings:
        ``F.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)``."""
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class MarginRankingLoss(_Loss):
    """max(0, -target (x1 - x2) + margin)."""

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        """`xbp.nn.functional.margin_ranking_loss` applied with this module's settings:
        ``F.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)``."""
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """max(d(a, p) - d(a, n) + margin, 0) with the pairwise p-norm distance d."""

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {margin} instead")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        """Returns `xbp.nn.functional.triplet_margin_loss` of the inputs, with this module's settings as
        its arguments."""
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                     swap=self.swap, reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    """x for target 1, max(0, margin - x) for target -1."""

    def __init__(self, margin: float = 1.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input, target):
        """Returns ``F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)``
        (see `xbp.nn.functional.hinge_embedding_loss`)."""
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class SoftMarginLoss(_Loss):
    """log(1 + exp(-target x)), target 1 or -1."""

    def forward(self, input, target):
        """Returns ``F.soft_margin_loss(input, target, reduction=self.reduction)``
        (see `xbp.nn.functional.soft_margin_loss`)."""
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """exp(x) - t x (log_input) or x - t log(x + eps); full adds Stirling's term."""

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None, eps: float = 1e-8,
                 reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target):
        """Returns `xbp.nn.functional.poisson_nll_loss` of the inputs, with this module's settings as
        its arguments."""
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                  reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """(log var + (input - target)^2 / var) / 2, var clamped at eps; forward(input, target, var)."""

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(None, None, reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        """`xbp.nn.functional.gaussian_nll_loss` applied with this module's settings:
        ``F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)``."""
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)


class CTCLoss(_Loss):
    """Connectionist Temporal Classification: forward(log_probs (T, N, C), targets, input_lengths,
    target_lengths); see F.ctc_loss."""

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__(None, None, reduction)
        self.blank, self.zero_infinity = blank, zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        """Returns `xbp.nn.functional.ctc_loss` of the inputs, with this module's settings as
        its arguments."""
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction,
                          self.zero_infinity)


class ChannelShuffle(Module):
    """Interleave `groups` channel groups: (N, g * c, *) -> (N, c * g, *) (ShuffleNet)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, input):
        """Returns ``F.channel_shuffle(input, self.groups)``: see `xbp.nn.functional.channel_shuffle`."""
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"groups={self.groups}"


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """Per-class logistic loss averaged over classes: input (N, C), target (N, C) of 0/1."""

    def forward(self, input, target):
        """`xbp.nn.functional.multilabel_soft_margin_loss` applied with this module's settings:
        ``F.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)``."""
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """Multi-class hinge loss: input (N, C), target (N,) class ids."""

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError("MultiMarginLoss: only p == 1 and p == 2 supported")
        self.p, self.margin = p, margin

    def forward(self, input, target):
        """Returns `xbp.nn.functional.multi_margin_loss` of the inputs, with this module's settings as
        its arguments."""
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                   reduction=self.reduction)


class TripletMarginWithDistanceLoss(_Loss):
    """max(d(a, p) - d(a, n) + margin, 0) with a given distance function."""

    def __init__(self, *, distance_function=None, margin: float = 1.0, swap: bool = False, reduction: str = "mean"):
        super().__init__(None, None, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginWithDistanceLoss: expected margin to be greater than 0, got {margin} instead")
        self.distance_function, self.margin, self.swap = distance_function, margin, swap

    def forward(self, anchor, positive, negative):
        """Returns `xbp.nn.functional.triplet_margin_with_distance_loss` of the inputs, with this module's settings as
        its arguments."""
        return F.triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=self.distance_function,
                                                   margin=self.margin, swap=self.swap, reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    """Multi-label hinge loss: input (N, C), target (N, C) of class ids ended by -1."""

    def forward(self, input, target):
        """Returns ``F.multilabel_margin_loss(input, target, reduction=self.reduction)``
        (see `xbp.nn.functional.multilabel_margin_loss`)."""
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)
