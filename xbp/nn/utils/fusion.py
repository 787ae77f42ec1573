"""``torch.nn.utils.fusion``: fold an eval-mode BatchNorm into the convolution or linear layer before
it (one layer instead of two at inference): W' = W * gamma / sqrt(var + eps) per output channel,
b' = (b - mean) * gamma / sqrt(var + eps) + beta."""
from __future__ import annotations

import copy

from ... import ops
from ...autograd import no_grad
from ..parameter import Parameter

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights"]


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose=False):
    """(fused weight, fused bias) Parameters for conv weights and batch-norm statistics/affine."""
    with no_grad():
        if conv_b is None:
            conv_b = bn_rm * 0.0
        if bn_w is None:
            bn_w = bn_rm * 0.0 + 1.0
        if bn_b is None:
            bn_b = bn_rm * 0.0
        scale = bn_w * ops.rsqrt(bn_rv + float(bn_eps))
        shape = (1, -1) + (1,) * (conv_w.ndim - 2) if transpose else (-1,) + (1,) * (conv_w.ndim - 1)
        w = (conv_w * ops.reshape(scale, shape)).to(dtype=conv_w.dtype)
        b = ((conv_b - bn_rm) * scale + bn_b).to(dtype=conv_w.dtype)
    return Parameter(w, conv_w.requires_grad), Parameter(b, conv_b.requires_grad)


def fuse_conv_bn_eval(conv, bn, transpose=False):
    """A copy of the eval-mode `conv` with the eval-mode `bn` after it folded in."""
    if conv.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                    bn.eps, bn.weight, bn.bias, transpose)
    return fused


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(fused weight, fused bias) Parameters for a Linear followed by BatchNorm1d."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def fuse_linear_bn_eval(linear, bn):
    """A copy of the eval-mode `linear` with the eval-mode BatchNorm1d `bn` after it folded in."""
    if linear.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    if linear.out_features != bn.num_features:
        raise AssertionError("To fuse, linear.out_features must equal bn.num_features")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
    return fused
