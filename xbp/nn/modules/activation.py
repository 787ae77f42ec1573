"""torch.nn.modules.activation: the activation modules and MultiheadAttention."""
from ..activation import (  # noqa: F401
    CELU, ELU, GELU, GLU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid,
    LogSoftmax, Mish, PReLU, RReLU, ReLU, ReLU6, SELU, SiLU, Sigmoid, Softmax, Softmax2d, Softmin,
    Softplus, Softshrink, Softsign, Tanh, Tanhshrink, Threshold,
)
from ..attention import MultiheadAttention  # noqa: F401

__all__ = [
    "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax",
    "ReLU6", "Hardtanh", "Hardswish", "Hardsigmoid", "Mish", "GLU", "Softsign", "Threshold", "PReLU",
    "SELU", "CELU", "LogSigmoid", "Tanhshrink", "Softshrink", "Hardshrink", "Softmin", "Softmax2d",
    "RReLU", "MultiheadAttention",
]
