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
from .transformer import (  # noqa: E402
    Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
)
from .activation import (  # noqa: E402
    CELU, GLU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh, LogSigmoid, Mish, PReLU, ReLU6, SELU, Softmin,
    Softshrink, Softsign, Tanhshrink, Threshold, Softmax2d, RReLU,
)
from .layers import (  # noqa: E402
    AlphaDropout, Bilinear, CosineEmbeddingLoss, CosineSimilarity, CTCLoss, Dropout1d, Dropout2d, Dropout3d,
    GaussianNLLLoss, HingeEmbeddingLoss, MarginRankingLoss, PairwiseDistance, ParameterDict, ParameterList,
    PoissonNLLLoss, SoftMarginLoss, TripletMarginLoss, Unflatten, ChannelShuffle, MultiLabelSoftMarginLoss,
    MultiMarginLoss, TripletMarginWithDistanceLoss, MultiLabelMarginLoss,
)
from .conv import Conv3d, ConvTranspose1d, ConvTranspose3d  # noqa: E402
from .pooling import (  # noqa: E402
    AdaptiveAvgPool1d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d, MaxPool1d, MaxPool3d, AvgPool3d, LPPool1d,
    LPPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool3d, MaxUnpool1d,
)
from .norm import (  # noqa: E402
    BatchNorm3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LocalResponseNorm, RMSNorm,
)
from .upsampling import (  # noqa: E402
    PixelShuffle, PixelUnshuffle, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d,
)
from .padding import (  # noqa: E402
    CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d, ReflectionPad1d,
    ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, ZeroPad1d, ZeroPad2d,
    ZeroPad3d,
)
from .fold import Fold, Unfold  # noqa: E402
from .embedding import EmbeddingBag  # noqa: E402
from .lazy import (  # noqa: E402
    LazyBatchNorm1d, LazyBatchNorm2d, LazyBatchNorm3d, LazyConv1d, LazyConv2d, LazyConv3d, LazyConvTranspose1d,
    LazyConvTranspose2d, LazyConvTranspose3d, LazyInstanceNorm1d, LazyInstanceNorm2d, LazyInstanceNorm3d, LazyLinear,
    UninitializedBuffer, UninitializedParameter,
)
from . import modules  # noqa: E402,F401  (torch.nn.modules paths)

# --- distributed (nn.parallel) ---
from . import parallel  # noqa: E402  (DistributedDataParallel)
