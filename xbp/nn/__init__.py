"""Neural-network building blocks with PyTorch's names: Module, Parameter, layers, losses,
``functional`` (F) and ``init``. Explicit re-exports only; later layer files (conv, norm, rnn,
attention) append their own import lines below."""
from .parameter import Parameter
from .module import Module
from . import functional, init
from .layers import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Dropout, Flatten, HuberLoss, Identity, KLDivLoss,
    L1Loss, Linear, ModuleDict, ModuleList, MSELoss, NLLLoss, Sequential, SmoothL1Loss,
)
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from . import utils  # noqa: E402  (clip_grad_norm_, clip_grad_value_)
from .conv import Conv1d, Conv2d, ConvTranspose2d  # noqa: E402
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d  # noqa: E402
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm  # noqa: E402
from .embedding import Embedding  # noqa: E402
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell  # noqa: E402
from .attention import MultiheadAttention, TransformerEncoderLayer  # noqa: E402

# --- layers, modules ---

# --- distributed (nn.parallel) ---
from . import parallel  # noqa: E402  (DistributedDataParallel)
