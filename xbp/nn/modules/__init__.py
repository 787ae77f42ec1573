"""`xbp.nn.modules`: PyTorch's `torch.nn.modules` paths (module, linear, activation, conv, pooling,
batchnorm, instancenorm, normalization, loss, container, dropout, rnn, transformer, sparse, flatten,
distance, padding, pixelshuffle, upsampling, fold, channelshuffle, utils), each re-exporting the xbp
classes, so code written as ``from torch.nn.modules.loss import _Loss`` works with xbp. Every module
class is also here."""
from . import (  # noqa: F401
    module, linear, activation, conv, pooling, batchnorm, instancenorm, normalization, loss, container,
    dropout,
)
from . import (  # noqa: F401
    rnn, transformer, sparse, flatten, distance, padding, pixelshuffle, upsampling, fold,
    channelshuffle, utils,
)
from .. import (  # noqa: F401  (every layer class, as torch.nn.modules has them)
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool3d, AdaptiveMaxPool1d,
    AdaptiveMaxPool2d, AlphaDropout, AvgPool1d,
    AvgPool2d, AvgPool3d, BCELoss, BCEWithLogitsLoss, BatchNorm1d, BatchNorm2d, BatchNorm3d, Bilinear,
    CELU, CTCLoss, ChannelShuffle, CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d,
    ConstantPad2d, ConstantPad3d, Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
    CosineEmbeddingLoss, CosineSimilarity, CrossEntropyLoss, Dropout, Dropout1d, Dropout2d, Dropout3d,
    ELU, Embedding, Flatten, Fold, GELU, GLU, GRU, GRUCell, GaussianNLLLoss, GroupNorm, Hardshrink,
    Hardsigmoid, Hardswish, Hardtanh, HingeEmbeddingLoss, HuberLoss, Identity, InstanceNorm1d,
    InstanceNorm2d, InstanceNorm3d, KLDivLoss, L1Loss, LPPool1d, LPPool2d, LSTM, LSTMCell, LayerNorm,
    LeakyReLU, Linear, LocalResponseNorm, LogSigmoid, LogSoftmax, MSELoss, MarginRankingLoss, MaxPool1d,
    MaxPool2d, MaxPool3d, MaxUnpool2d, Mish, Module, ModuleDict, ModuleList, MultiLabelSoftMarginLoss,
    MultiMarginLoss, MultiheadAttention, NLLLoss, PReLU, PairwiseDistance, ParameterDict, ParameterList,
    PixelShuffle, PixelUnshuffle, PoissonNLLLoss, RMSNorm, RNN, RNNCell, RReLU, ReLU, ReLU6,
    ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d,
    ReplicationPad3d, SELU, Sequential, SiLU, Sigmoid, SmoothL1Loss, SoftMarginLoss, Softmax, Softmax2d,
    Softmin, Softplus, Softshrink, Softsign, Tanh, Tanhshrink, Threshold, Transformer,
    TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
    TripletMarginLoss, TripletMarginWithDistanceLoss, Unflatten, Unfold, Upsample, UpsamplingBilinear2d,
    UpsamplingNearest2d, ZeroPad1d, ZeroPad2d, ZeroPad3d,
)

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AlphaDropout",
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d",
    "BatchNorm3d", "Bilinear", "CELU", "CTCLoss", "ChannelShuffle", "CircularPad1d", "CircularPad2d",
    "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "Conv1d", "Conv2d", "Conv3d",
    "ConvTranspose1d", "ConvTranspose2d", "CosineEmbeddingLoss", "CosineSimilarity", "CrossEntropyLoss",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "ELU", "Embedding", "Flatten", "Fold", "GELU",
    "GLU", "GRU", "GRUCell", "GaussianNLLLoss", "GroupNorm", "Hardshrink", "Hardsigmoid", "Hardswish",
    "Hardtanh", "HingeEmbeddingLoss", "HuberLoss", "Identity", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "KLDivLoss", "L1Loss", "LPPool1d", "LPPool2d", "LSTM", "LSTMCell", "LayerNorm",
    "LeakyReLU", "Linear", "LocalResponseNorm", "LogSigmoid", "LogSoftmax", "MSELoss",
    "MarginRankingLoss", "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool2d", "Mish", "Module",
    "ModuleDict", "ModuleList", "MultiLabelSoftMarginLoss", "MultiMarginLoss", "MultiheadAttention",
    "NLLLoss", "PReLU", "PairwiseDistance", "ParameterDict", "ParameterList", "PixelShuffle",
    "PixelUnshuffle", "PoissonNLLLoss", "RMSNorm", "RNN", "RNNCell", "RReLU", "ReLU", "ReLU6",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "SELU", "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "SoftMarginLoss",
    "Softmax", "Softmax2d", "Softmin", "Softplus", "Softshrink", "Softsign", "Tanh", "Tanhshrink",
    "Threshold", "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerEncoderLayer", "TripletMarginLoss", "TripletMarginWithDistanceLoss", "Unflatten",
    "Unfold", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d", "ZeroPad1d", "ZeroPad2d",
    "ZeroPad3d",
]
