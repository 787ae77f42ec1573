"""Activation modules: each holds its hyperparameters and calls the function in
`xbp.nn.functional`. `inplace=` is accepted for PyTorch compatibility and ignored."""
from __future__ import annotations

from . import functional as F
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax",
           "ReLU6", "Hardtanh", "Hardswish", "Hardsigmoid", "Mish", "GLU", "Softsign", "Threshold", "PReLU", "SELU",
           "CELU", "LogSigmoid", "Tanhshrink", "Softshrink", "Hardshrink", "Softmin", "Softmax2d", "RReLU"]


class ReLU(Module):
    """Elementwise max(x, 0) (`xbp.nn.functional.relu`); any shape. `inplace` is accepted and ignored."""
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        """Returns ``F.relu(input)``: see `xbp.nn.functional.relu`."""
        return F.relu(input)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """Elementwise x for x > 0, else negative_slope * x; any shape. `inplace` is accepted and ignored."""
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        """Returns ``F.leaky_relu(input, self.negative_slope)``: see `xbp.nn.functional.leaky_relu`."""
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """Elementwise x for x > 0, else alpha (exp(x) - 1); any shape. `inplace` is accepted and ignored."""
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        """Returns ``F.elu(input, self.alpha)``: see `xbp.nn.functional.elu`."""
        return F.elu(input, self.alpha)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """Elementwise x Phi(x), or its tanh approximation with ``approximate='tanh'``; any shape."""
    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        """Returns ``F.gelu(input, approximate=self.approximate)``: see `xbp.nn.functional.gelu`."""
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """Elementwise x sigmoid(x) (swish); any shape. `inplace` is accepted and ignored."""
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        """Returns ``F.silu(input)``: see `xbp.nn.functional.silu`."""
        return F.silu(input)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    """Elementwise 1 / (1 + exp(-x)); any shape."""
    def forward(self, input):
        """Returns ``F.sigmoid(input)``: see `xbp.nn.functional.sigmoid`."""
        return F.sigmoid(input)


class Tanh(Module):
    """Elementwise tanh(x); any shape."""
    def forward(self, input):
        """Returns ``F.tanh(input)``: see `xbp.nn.functional.tanh`."""
        return F.tanh(input)


class Softplus(Module):
    """Elementwise log(1 + exp(beta x)) / beta, linear where beta x > threshold; any shape."""
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        """Returns ``F.softplus(input, self.beta, self.threshold)``: see `xbp.nn.functional.softplus`."""
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """Softmax along `dim`: exp(x) / sum(exp(x)), each slice along dim summing to 1; same shape."""
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        """Returns ``F.softmax(input, self.dim)``: see `xbp.nn.functional.softmax`."""
        return F.softmax(input, self.dim)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along `dim`, computed stably; same shape."""
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        """Returns ``F.log_softmax(input, self.dim)``: see `xbp.nn.functional.log_softmax`."""
        return F.log_softmax(input, self.dim)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"dim={self.dim}"


# --- second wave -----------------------------------------------------------------------------------
class _Elementwise(Module):
    """An activation without hyperparameters (beyond PyTorch's ignored `inplace`)."""
    _fn = ""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        """Applies the `xbp.nn.functional` function this class wraps (its ``_fn``) to `input`; same shape."""
        return getattr(F, self._fn)(input)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return "inplace=True" if self.inplace else ""


class ReLU6(_Elementwise):
    """min(max(x, 0), 6)."""
    _fn = "relu6"


class Hardswish(_Elementwise):
    """x * clamp(x + 3, 0, 6) / 6."""
    _fn = "hardswish"


class Hardsigmoid(_Elementwise):
    """clamp(x / 6 + 1/2, 0, 1)."""
    _fn = "hardsigmoid"


class Mish(_Elementwise):
    """x * tanh(softplus(x))."""
    _fn = "mish"


class SELU(_Elementwise):
    """scale * elu(x, alpha) with PyTorch's self-normalising constants."""
    _fn = "selu"


class _Plain(Module):
    _fn = ""

    def forward(self, input):
        """Applies the `xbp.nn.functional` function this class wraps (its ``_fn``) to `input`; same shape."""
        return getattr(F, self._fn)(input)


class Softsign(_Plain):
    """x / (1 + |x|)."""
    _fn = "softsign"


class LogSigmoid(_Plain):
    """log(sigmoid(x))."""
    _fn = "logsigmoid"


class Tanhshrink(_Plain):
    """x - tanh(x)."""
    _fn = "tanhshrink"


class Hardtanh(Module):
    """clamp(x, min_val, max_val)."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if max_val < min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) cannot be less than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        """Returns ``F.hardtanh(input, self.min_val, self.max_val)``: see `xbp.nn.functional.hardtanh`."""
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"min_val={self.min_val}, max_val={self.max_val}"


class GLU(Module):
    """a * sigmoid(b), a and b the halves of `dim`: (*, 2n, *) -> (*, n, *)."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        """Returns ``F.glu(input, self.dim)``: see `xbp.nn.functional.glu`."""
        return F.glu(input, self.dim)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"dim={self.dim}"


class Threshold(Module):
    """x where x > threshold, else value."""

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input):
        """Returns ``F.threshold(input, self.threshold, self.value)``: see `xbp.nn.functional.threshold`."""
        return F.threshold(input, self.threshold, self.value)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"threshold={self.threshold}, value={self.value}"


class PReLU(Module):
    """max(0, x) + a * min(0, x) with a learned slope a: one (num_parameters=1) or one per channel
    of dim 1; weight (num_parameters,) filled with `init`."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        from .. import _creation
        from .parameter import Parameter
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(_creation.full((num_parameters,), float(init), device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        """Sets every slope in `weight` back to its initial value `init`."""
        from . import init as _init
        _init.constant_(self.weight, self.init)

    def forward(self, input):
        """Returns ``F.prelu(input, self.weight)``: see `xbp.nn.functional.prelu`."""
        return F.prelu(input, self.weight)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"num_parameters={self.num_parameters}"


class CELU(Module):
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1))."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        """Returns ``F.celu(input, self.alpha)``: see `xbp.nn.functional.celu`."""
        return F.celu(input, self.alpha)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"alpha={self.alpha}"


class Softshrink(Module):
    """x - lambd sign(x) where |x| > lambd, else 0."""

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = lambd

    def forward(self, input):
        """Returns ``F.softshrink(input, self.lambd)``: see `xbp.nn.functional.softshrink`."""
        return F.softshrink(input, self.lambd)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return str(self.lambd)


class Hardshrink(Softshrink):
    """x where |x| > lambd, else 0."""

    def forward(self, input):
        """Returns ``F.hardshrink(input, self.lambd)``: see `xbp.nn.functional.hardshrink`."""
        return F.hardshrink(input, self.lambd)


class Softmin(Module):
    """softmax(-x) along dim."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        """Returns ``F.softmin(input, self.dim)``: see `xbp.nn.functional.softmin`."""
        return F.softmin(input, self.dim)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"dim={self.dim}"


class Softmax2d(Module):
    """Softmax over the channels at every position: (N, C, H, W) or (C, H, W), along dim -3."""

    def forward(self, input):
        """Softmax over the channel dim (-3) of a (C, H, W) or (N, C, H, W) input; other ranks raise
        ValueError."""
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected a 3-D or 4-D input, got shape {input.shape}")
        return F.softmax(input, -3)


class RReLU(Module):
    """Randomized leaky ReLU: slope ~ U(lower, upper) per negative element in training, the mean
    slope (lower + upper) / 2 in eval."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input):
        """Returns ``F.rrelu(input, self.lower, self.upper, self.training)``: see `xbp.nn.functional.rrelu`."""
        return F.rrelu(input, self.lower, self.upper, self.training)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        return f"lower={self.lower}, upper={self.upper}"
