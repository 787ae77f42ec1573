"""``xbp.onnx.export``: write a model as an ONNX file (PyTorch's ``torch.onnx.export`` call).

Built on the `onnx` package (an optional extra: ``pip install onnx``, or ``pip install
'xbp[onnx]'``); run the file with onnxruntime or any ONNX runtime.

The exporter walks the module tree, not the ops: a model is a layer xbp knows or a `Sequential`
(nested freely) of them, and each becomes the ONNX nodes of its inference-mode forward. Layers:
Linear, Identity, Dropout, Flatten, ReLU, LeakyReLU, ELU, GELU (exact and tanh), SiLU, Sigmoid,
Tanh, Softplus, Softmax, LogSoftmax, Conv1d, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
BatchNorm1d/2d, LayerNorm and Embedding. Anything else (a module with its own forward, an RNN,
attention) is refused with an error naming it. The example input is run through each layer in
eval mode, which checks the model and gives every intermediate shape.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["export", "INSTALL_HINT", "SUPPORTED"]

INSTALL_HINT = "xbp.onnx.export needs the onnx package: pip install onnx (or pip install 'xbp[onnx]')"
SUPPORTED = ("Sequential", "Linear", "Identity", "Dropout", "Flatten", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU",
             "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d",
             "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return onnx


def _pair(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class _Builder:
    """Nodes and initializers of one graph; fresh names for every intermediate value."""

    def __init__(self, onnx, opset):
        self.onnx, self.opset = onnx, opset
        self.nodes, self.inits = [], []
        self._n = 0

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint, array):
        n = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def node(self, op, inputs, hint=None, **attrs):
        out = self.name(hint or op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], **attrs))
        return out


def _np(t):
    return t.detach().numpy()


def _emit(b: _Builder, m, x: str, xt, path: str):
    """ONNX nodes for module `m` applied to value `x` (example tensor `xt`); returns (name, tensor)."""
    from . import nn
    kind = type(m).__name__
    where = path or "the model"
    if isinstance(m, nn.Sequential):
        for i, child in enumerate(m):
            x, xt = _emit(b, child, x, xt, f"{path}.{i}" if path else str(i))
        return x, xt
    if kind in ("Softmax", "LogSoftmax") and m.dim is None:
        raise ValueError(f"xbp.onnx.export: {kind} at {where} has dim=None; give it a dim")
    yt = m(xt)
    dtype = np.dtype(xt.dtype) if kind != "Embedding" else np.dtype(m.weight.dtype)

    def c(hint, v):
        return b.const(hint, np.asarray(v, dtype=dtype))

    if kind in ("Identity", "Dropout"):
        y = b.node("Identity", [x])
    elif kind == "Linear":
        y = b.node("MatMul", [x, b.const(f"{path}.weight_t", _np(m.weight).T)])
        if m.bias is not None:
            y = b.node("Add", [y, b.const(f"{path}.bias", _np(m.bias))])
    elif kind == "Flatten":
        nd = xt.ndim
        s, e = m.start_dim % nd, m.end_dim % nd
        if e == nd - 1:
            if s == 0:
                y = b.node("Reshape", [x, b.const("shape", np.array([-1], np.int64))])
            else:      # keep the leading dims (0 = copy from the input, so a dynamic batch works)
                y = b.node("Reshape", [x, b.const("shape", np.array([0] * s + [-1], np.int64))])
        else:
            shape = [0] * s + [-1] + list(xt.shape[e + 1:])
            y = b.node("Reshape", [x, b.const("shape", np.array(shape, np.int64))])
    elif kind in ("ReLU", "Sigmoid", "Tanh"):
        y = b.node({"ReLU": "Relu"}.get(kind, kind), [x])
    elif kind == "LeakyReLU":
        y = b.node("LeakyRelu", [x], alpha=float(m.negative_slope))
    elif kind == "ELU":
        y = b.node("Elu", [x], alpha=float(m.alpha))
    elif kind == "SiLU":
        y = b.node("Mul", [x, b.node("Sigmoid", [x])])
    elif kind == "GELU":
        if m.approximate == "tanh":      # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            x3 = b.node("Mul", [x, b.node("Mul", [x, x])])
            inner = b.node("Mul", [c("k", math.sqrt(2 / math.pi)), b.node("Add", [x, b.node("Mul", [x3, c("a", 0.044715)])])])
            y = b.node("Mul", [b.node("Mul", [x, c("half", 0.5)]), b.node("Add", [c("one", 1.0), b.node("Tanh", [inner])])])
        else:                            # 0.5 x (1 + erf(x / sqrt 2))
            e = b.node("Erf", [b.node("Div", [x, c("sqrt2", math.sqrt(2.0))])])
            y = b.node("Mul", [b.node("Mul", [x, c("half", 0.5)]), b.node("Add", [e, c("one", 1.0)])])
    elif kind == "Softplus":
        # ONNX's Softplus is log(1 + exp(x)); PyTorch's is linear above `threshold`, where the two agree
        # to rounding (log1p(exp(x)) - x < exp(-x) <= 2e-9 for the default threshold 20)
        if float(m.beta) == 1.0:
            y = b.node("Softplus", [x])
        else:
            y = b.node("Div", [b.node("Softplus", [b.node("Mul", [x, c("beta", m.beta)])]), c("beta", m.beta)])
    elif kind in ("Softmax", "LogSoftmax"):
        y = b.node(kind, [x], axis=int(m.dim))
    elif kind in ("Conv1d", "Conv2d"):
        n = 1 if kind == "Conv1d" else 2
        attrs = dict(kernel_shape=list(m.kernel_size), strides=list(m.stride), dilations=list(m.dilation),
                     group=int(m.groups))
        if m.padding == "same":
            pads = []
            for k, d in zip(m.kernel_size, m.dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            attrs["pads"] = [p[0] for p in pads] + [p[1] for p in pads]
        elif m.padding == "valid":
            attrs["pads"] = [0] * (2 * n)
        else:
            attrs["pads"] = list(m.padding) * 2
        ins = [x, b.const(f"{path}.weight", _np(m.weight))]
        if m.bias is not None:
            ins.append(b.const(f"{path}.bias", _np(m.bias)))
        y = b.node("Conv", ins, **attrs)
    elif kind in ("MaxPool2d", "AvgPool2d"):
        k, s, p = _pair(m.kernel_size, 2), _pair(m.stride, 2), _pair(m.padding, 2)
        attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p) * 2, ceil_mode=int(bool(m.ceil_mode)))
        if kind == "MaxPool2d":
            if m.return_indices:
                raise NotImplementedError(f"xbp.onnx.export: MaxPool2d(return_indices=True) at {where}")
            attrs["dilations"] = list(_pair(m.dilation, 2))
            y = b.node("MaxPool", [x], **attrs)
        else:
            if m.divisor_override is not None:
                raise NotImplementedError(f"xbp.onnx.export: AvgPool2d(divisor_override=...) at {where}")
            attrs["count_include_pad"] = int(bool(m.count_include_pad))
            y = b.node("AveragePool", [x], **attrs)
    elif kind == "AdaptiveAvgPool2d":
        out = _pair(m.output_size, 2)
        h, w = xt.shape[-2:]
        if out == (1, 1):
            y = b.node("GlobalAveragePool", [x])
        elif all(o is not None and i % o == 0 for i, o in zip((h, w), out)):
            k = [h // out[0], w // out[1]]      # equal bins: an ordinary average pool
            y = b.node("AveragePool", [x], kernel_shape=k, strides=k)
        else:
            raise NotImplementedError(f"xbp.onnx.export: AdaptiveAvgPool2d{out} at {where} on a {h}x{w} input has "
                                      "unequal bins, which ONNX's pools cannot express")
    elif kind in ("BatchNorm1d", "BatchNorm2d"):
        if m.running_mean is None:
            raise NotImplementedError(f"xbp.onnx.export: {kind}(track_running_stats=False) at {where} normalises "
                                      "with batch statistics even in eval mode")
        C = m.num_features
        scale = _np(m.weight) if m.affine else np.ones(C, dtype)
        bias = _np(m.bias) if m.affine else np.zeros(C, dtype)
        y = b.node("BatchNormalization", [x, b.const(f"{path}.weight", scale), b.const(f"{path}.bias", bias),
                                          b.const(f"{path}.running_mean", _np(m.running_mean)),
                                          b.const(f"{path}.running_var", _np(m.running_var))], epsilon=float(m.eps))
    elif kind == "LayerNorm":
        if b.opset < 17:
            raise ValueError(f"xbp.onnx.export: LayerNorm at {where} needs opset_version >= 17")
        shape = m.normalized_shape
        scale = _np(m.weight) if m.elementwise_affine else np.ones(shape, dtype)
        ins = [x, b.const(f"{path}.weight", scale)]
        if m.elementwise_affine and m.bias is not None:
            ins.append(b.const(f"{path}.bias", _np(m.bias)))
        y = b.node("LayerNormalization", ins, axis=-len(shape), epsilon=float(m.eps))
    elif kind == "Embedding":
        if getattr(m, "max_norm", None) is not None:
            raise NotImplementedError(f"xbp.onnx.export: Embedding(max_norm=...) at {where} renormalises rows")
        y = b.node("Gather", [b.const(f"{path}.weight", _np(m.weight)), x], axis=0)
    else:
        raise NotImplementedError(
            f"xbp.onnx.export: cannot export {kind} at {where}: the exporter knows {', '.join(SUPPORTED)}; "
            "write the model as a Sequential of those (a module with its own forward cannot be walked)")
    return y, yt


_ELEM = {"float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7, "bool": 9,
         "float16": 10, "float64": 11}


def _value_info(onnx, name, t, axes):
    dt = np.dtype(t.dtype).name
    if dt not in _ELEM:
        raise TypeError(f"xbp.onnx.export: {name} has dtype {dt}, which ONNX export does not handle")
    dims = [axes.get(i, d) for i, d in enumerate(t.shape)]
    return onnx.helper.make_tensor_value_info(name, _ELEM[dt], dims)


def _axes(spec, name, ndim):
    """dynamic_axes entry -> {axis: symbolic name} (PyTorch takes a dict or a list of axes)."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        out = {int(k) % ndim: str(v) for k, v in spec.items()}
    else:
        out = {int(k) % ndim: f"{name}_dynamic_axes_{int(k) % ndim + 1}" for k in spec}
    return out


def export(model, args, f, export_params=True, verbose=False, training=None, input_names=None,
           output_names=None, opset_version=17, dynamic_axes=None, do_constant_folding=True, **kwargs):
    """Write `model` applied to `args` (a Tensor, or a 1-tuple of one) to `f` (a path or a binary file
    object) as ONNX with opset `opset_version` (>= 13; LayerNorm needs 17).

    `input_names`/`output_names` name the graph's input and output (default "input", "output");
    `dynamic_axes` (``{"input": {0: "batch"}, "output": {0: "batch"}}``) makes those dims symbolic,
    so the file runs on other batch sizes. The model runs in eval mode (dropout off, batch norm
    with its running statistics); its training flag is restored afterwards. Returns the
    ``onnx.ModelProto``. `do_constant_folding`, `export_params`, `training` and `verbose` are
    PyTorch's keywords (the weights are always stored; training=True is refused)."""
    onnx = _onnx()
    from ._tensor import Tensor
    from .autograd import no_grad
    if kwargs:
        raise TypeError(f"xbp.onnx.export got unsupported keyword argument(s) {sorted(kwargs)}")
    if training not in (None, False) and str(training).split(".")[-1] not in ("EVAL", "PRESERVE"):
        raise NotImplementedError("xbp.onnx.export exports the inference-mode graph only (training=True is refused)")
    if not export_params:
        raise NotImplementedError("xbp.onnx.export(export_params=False): the weights are always stored in the file")
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or opset_version < 13:
        raise ValueError(f"xbp.onnx.export: opset_version must be an integer >= 13, got {opset_version!r}")
    xs = args if isinstance(args, tuple) else (args,)
    if len(xs) != 1 or not isinstance(xs[0], Tensor):
        raise TypeError("xbp.onnx.export: args must be one Tensor (or a 1-tuple of one): the exported models take "
                        f"one input, got {type(args).__name__}")
    x = xs[0]
    in_name = (input_names or ["input"])[0]
    out_name = (output_names or ["output"])[0]
    dynamic_axes = dynamic_axes or {}
    unknown = set(dynamic_axes) - {in_name, out_name}
    if unknown:
        raise ValueError(f"xbp.onnx.export: dynamic_axes names {sorted(unknown)}, which are neither the input "
                         f"({in_name!r}) nor the output ({out_name!r})")
    b = _Builder(onnx, opset_version)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            y, yt = _emit(b, model, in_name, x, "")
    finally:
        model.train(was_training)
    if not isinstance(yt, Tensor):
        raise TypeError(f"xbp.onnx.export: the model returned a {type(yt).__name__}; one Tensor output is exported")
    b.nodes.append(onnx.helper.make_node("Identity", [y], [out_name]))
    graph = onnx.helper.make_graph(
        b.nodes, type(model).__name__, [_value_info(onnx, in_name, x, _axes(dynamic_axes.get(in_name), in_name, x.ndim))],
        [_value_info(onnx, out_name, yt, _axes(dynamic_axes.get(out_name), out_name, yt.ndim))], initializer=b.inits)
    proto = onnx.helper.make_model(graph, producer_name="xbp",
                                   opset_imports=[onnx.helper.make_opsetid("", opset_version)])
    proto.ir_version = min(proto.ir_version, 9)      # runtimes lag the newest IR version
    onnx.checker.check_model(proto)
    if verbose:
        print(onnx.helper.printable_graph(proto.graph))
    if hasattr(f, "write"):
        f.write(proto.SerializeToString())
    else:
        onnx.save_model(proto, f)
    return proto
