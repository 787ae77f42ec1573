"""``xbp.onnx.export``: write a model as an ONNX file (PyTorch's ``torch.onnx.export`` call).

Built on the `onnx` package (an optional extra: ``pip install onnx``, or ``pip install
'xbp[onnx]'``); run the file with onnxruntime or any ONNX runtime.

The exporter walks the module tree, not the ops: a model is a layer xbp knows or a `Sequential`
(nested freely) of them, and each becomes the ONNX nodes of its inference-mode forward. Layers:
Linear, Identity, Dropout, Flatten, ReLU, LeakyReLU, ELU, GELU (exact and tanh), SiLU, Sigmoid,
Tanh, Softplus, Softmax, LogSoftmax, Conv1d, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
BatchNorm1d/2d, LayerNorm, Embedding, and RNN/LSTM/GRU (any layers, directions, batch_first; zero
initial states; outputs ``output, h_n[, c_n]``), MultiheadAttention (exported as the
self-attention call ``m(x, x, x, need_weights=False)[0]``: one input, one output; not add_bias_kv
or add_zero_attn), TransformerEncoderLayer (norm_first either way; relu, gelu or an exported
activation module) and TransformerEncoder (with its final norm); as the whole model these three
also take masks as more graph inputs (see `export`). Anything else (a module with its own
forward, the decoder) is refused with an error naming it, before it is run. The example input is
run through each layer in eval mode, which checks the model and gives every intermediate shape.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["export", "INSTALL_HINT", "SUPPORTED"]

INSTALL_HINT = "xbp.onnx.export needs the onnx package: pip install onnx (or pip install 'xbp[onnx]')"
SUPPORTED = ("Sequential", "Linear", "Identity", "Dropout", "Flatten", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU",
             "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d",
             "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding", "RNN", "LSTM", "GRU",
             "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder")
_ATTENTION = ("MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder")


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
            if not isinstance(x, str):
                raise NotImplementedError(f"xbp.onnx.export: layer {path + '.' if path else ''}{i - 1} returns a "
                                          "tuple, which only the model's last layer may do")
            x, xt = _emit(b, child, x, xt, f"{path}.{i}" if path else str(i))
        return x, xt
    if kind in _ATTENTION and type(m) is getattr(nn, kind):
        from . import _onnx_attention as att
        if kind == "MultiheadAttention":
            return att.emit_mha(b, m, x, xt, path)
        return (att.emit_encoder_layer if kind == "TransformerEncoderLayer" else att.emit_encoder)(b, m, x, xt, path,
                                                                                                  _emit)
    if kind not in SUPPORTED:            # before running it: its forward may want other arguments
        _refuse(kind, where)
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
        shape = m.normalized_shape
        scale = _np(m.weight) if m.elementwise_affine else np.ones(shape, dtype)
        ins = [x, b.const(f"{path}.weight", scale)]
        if m.elementwise_affine and m.bias is not None:
            ins.append(b.const(f"{path}.bias", _np(m.bias)))
        if b.opset >= 17:
            y = b.node("LayerNormalization", ins, axis=-len(shape), epsilon=float(m.eps))
        else:          # before opset 17: (x - mean) / sqrt(var + eps) * weight + bias, biased variance
            axes = list(range(-len(shape), 0))
            d = b.node("Sub", [x, b.node("ReduceMean", [x], axes=axes, keepdims=1)])
            var = b.node("ReduceMean", [b.node("Mul", [d, d])], axes=axes, keepdims=1)
            y = b.node("Mul", [b.node("Div", [d, b.node("Sqrt", [b.node("Add", [var, c("eps", m.eps)])])]), ins[1]])
            if len(ins) == 3:
                y = b.node("Add", [y, ins[2]])
    elif kind == "Embedding":
        if getattr(m, "max_norm", None) is not None:
            raise NotImplementedError(f"xbp.onnx.export: Embedding(max_norm=...) at {where} renormalises rows")
        y = b.node("Gather", [b.const(f"{path}.weight", _np(m.weight)), x], axis=0)
    elif kind in ("RNN", "LSTM", "GRU"):
        return _emit_rnn(b, m, x, xt, path, where), yt
    else:
        _refuse(kind, where)
    return y, yt


def _refuse(kind, where):
    raise NotImplementedError(
        f"xbp.onnx.export: cannot export {kind} at {where}: the exporter knows {', '.join(SUPPORTED)}; "
        "write the model as a Sequential of those (a module with its own forward cannot be walked)")


# PyTorch's gate order -> ONNX's: LSTM (i, f, g, o) -> (i, o, f, c); GRU (r, z, n) -> (z, r, h)
_GATES = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}


def _emit_rnn(b: _Builder, m, x: str, xt, path: str, where: str):
    """ONNX RNN/LSTM/GRU nodes, one per layer (both directions in one node). Returns the names of
    (output, h_n) or (output, (h_n, c_n)), PyTorch's layout; the initial states are zeros."""
    kind = type(m).__name__
    if getattr(m, "proj_size", 0):
        raise NotImplementedError(f"xbp.onnx.export: LSTM(proj_size=...) at {where}")
    H, L = m.hidden_size, m.num_layers
    D = 2 if m.bidirectional else 1
    order = _GATES[kind]

    def gates(a):
        return np.concatenate([a[i * H:(i + 1) * H] for i in order], axis=0)

    cur = b.node("Transpose", [x], perm=[1, 0, 2]) if m.batch_first else x      # (T, B, input)
    hs, cs = [], []
    for layer in range(L):
        Ws, Rs, Bs = [], [], []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = _np(getattr(m, "weight_ih" + sfx)), _np(getattr(m, "weight_hh" + sfx))
            Ws.append(gates(w_ih))
            Rs.append(gates(w_hh))
            if m.bias:
                Bs.append(np.concatenate([gates(_np(getattr(m, "bias_ih" + sfx))),
                                          gates(_np(getattr(m, "bias_hh" + sfx)))]))
            else:
                Bs.append(np.zeros(2 * len(order) * H, dtype=w_ih.dtype))
        attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
        if kind == "GRU":
            attrs["linear_before_reset"] = 1          # PyTorch's n = tanh(W x + b + r * (R h + b_R))
        if kind == "RNN":
            attrs["activations"] = ["Relu" if m.nonlinearity == "relu" else "Tanh"] * D
        names = [b.name(f"{path}.y"), b.name(f"{path}.h")] + ([b.name(f"{path}.c")] if kind == "LSTM" else [])
        b.nodes.append(b.onnx.helper.make_node(
            kind, [cur, b.const(f"{path}.W{layer}", np.stack(Ws)), b.const(f"{path}.R{layer}", np.stack(Rs)),
                   b.const(f"{path}.B{layer}", np.stack(Bs))], names, **attrs))
        # Y is (T, D, B, H): PyTorch's output is (T, B, D * H)
        y = b.node("Transpose", [names[0]], perm=[0, 2, 1, 3])
        cur = b.node("Reshape", [y, b.const("shape", np.array([0, 0, -1], np.int64))])
        hs.append(names[1])
        if kind == "LSTM":
            cs.append(names[2])
    out = b.node("Transpose", [cur], perm=[1, 0, 2]) if m.batch_first else b.node("Identity", [cur])
    h_n = b.node("Concat", hs, axis=0) if L > 1 else b.node("Identity", hs)
    if kind != "LSTM":
        return (out, h_n)
    c_n = b.node("Concat", cs, axis=0) if L > 1 else b.node("Identity", cs)
    return (out, (h_n, c_n))


def _flat(v):
    if isinstance(v, (tuple, list)):
        return [a for x in v for a in _flat(x)]
    return [v]


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
    object) as ONNX with opset `opset_version` (>= 13; LayerNorm is LayerNormalization from 17 on,
    its decomposition before).

    `input_names`/`output_names` name the graph's input and output (default "input", "output");
    `dynamic_axes` (``{"input": {0: "batch"}, "output": {0: "batch"}}``) makes those dims symbolic,
    so the file runs on other batch sizes. The model runs in eval mode (dropout off, batch norm
    with its running statistics); its training flag is restored afterwards. Returns the
    ``onnx.ModelProto``. `do_constant_folding`, `export_params`, `training` and `verbose` are
    PyTorch's keywords (the weights are always stored; training=True is refused).

    Attention masks: for a MultiheadAttention, TransformerEncoderLayer or TransformerEncoder model,
    `args` may be ``(x, {keyword: value})``, PyTorch's form for keyword arguments, with the
    module's own keywords: MultiheadAttention attn_mask, key_padding_mask, is_causal (and
    need_weights=False); TransformerEncoderLayer src_mask, src_key_padding_mask, is_causal;
    TransformerEncoder mask, src_key_padding_mask, is_causal. Each mask Tensor (bool, True = may
    not attend, or float, added to the scores) becomes one more graph input, named by
    ``input_names[1:]`` in the dict's order or else by its keyword (so dynamic_axes can name it);
    is_causal=True without an attn_mask builds the causal mask in the graph (opset >= 14) for
    any sequence length. A query row with every key masked gives zeros, as xbp does."""
    onnx = _onnx()
    from ._tensor import Tensor
    from .autograd import no_grad
    from . import nn
    if kwargs:
        raise TypeError(f"xbp.onnx.export got unsupported keyword argument(s) {sorted(kwargs)}")
    if training not in (None, False) and str(training).split(".")[-1] not in ("EVAL", "PRESERVE"):
        raise NotImplementedError("xbp.onnx.export exports the inference-mode graph only (training=True is refused)")
    if not export_params:
        raise NotImplementedError("xbp.onnx.export(export_params=False): the weights are always stored in the file")
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or opset_version < 13:
        raise ValueError(f"xbp.onnx.export: opset_version must be an integer >= 13, got {opset_version!r}")
    xs = args if isinstance(args, tuple) else (args,)
    call_kwargs = None
    if len(xs) == 2 and isinstance(xs[1], dict):        # PyTorch's (x, {keyword: value}) form
        xs, call_kwargs = xs[:1], xs[1]
        if type(model).__name__ not in _ATTENTION or type(model) is not getattr(nn, type(model).__name__):
            raise TypeError("xbp.onnx.export: a keyword-argument dict in args is taken by MultiheadAttention, "
                            f"TransformerEncoderLayer and TransformerEncoder models (their masks), not by "
                            f"{type(model).__name__}")
    if len(xs) != 1 or not isinstance(xs[0], Tensor):
        raise TypeError("xbp.onnx.export: args must be one Tensor (or a 1-tuple of one, or for an attention model "
                        f"(x, {{mask keyword: Tensor}})): the exported models take one input, got {type(args).__name__}")
    x = xs[0]
    in_name = (input_names or ["input"])[0]
    # mask tensors become more graph inputs, named by input_names[1:] in the dict's order, else by keyword
    mask_inputs = [(k, v) for k, v in (call_kwargs or {}).items() if isinstance(v, Tensor)]
    mask_names = {k: (input_names[i + 1] if input_names and len(input_names) > i + 1 else k)
                  for i, (k, _) in enumerate(mask_inputs)}
    out_name = (output_names or ["output"])[0]
    dynamic_axes = dynamic_axes or {}
    known = ({in_name, out_name, *(output_names or []), *mask_names.values()}
             | {f"{out_name}_{i}" for i in range(1, 8)})
    unknown = set(dynamic_axes) - known
    if unknown:
        raise ValueError(f"xbp.onnx.export: dynamic_axes names {sorted(unknown)}, which are neither the input "
                         f"({in_name!r}) nor an output ({sorted(set(output_names or [out_name]))})")
    b = _Builder(onnx, opset_version)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            if call_kwargs is None:
                y, yt = _emit(b, model, in_name, x, "")
            else:
                from ._onnx_attention import emit_with_masks
                y, yt = emit_with_masks(b, model, in_name, x, call_kwargs, mask_names, _emit)
    finally:
        model.train(was_training)
    ys, yts = _flat(y), _flat(yt)
    if len(ys) != len(yts) or not all(isinstance(t, Tensor) for t in yts):
        raise TypeError(f"xbp.onnx.export: the model returned a {type(yt).__name__}; Tensors (or tuples of them) "
                        "are exported")
    names = list(output_names or [])
    names += [out_name if i == 0 else f"{out_name}_{i}" for i in range(len(names), len(ys))]
    outputs = []
    for name, inner, t in zip(names, ys, yts):
        b.nodes.append(onnx.helper.make_node("Identity", [inner], [name]))
        outputs.append(_value_info(onnx, name, t, _axes(dynamic_axes.get(name), name, t.ndim)))
    inputs = [_value_info(onnx, in_name, x, _axes(dynamic_axes.get(in_name), in_name, x.ndim))]
    for k, t in mask_inputs:
        inputs.append(_value_info(onnx, mask_names[k], t, _axes(dynamic_axes.get(mask_names[k]), mask_names[k], t.ndim)))
    graph = onnx.helper.make_graph(b.nodes, type(model).__name__, inputs, outputs, initializer=b.inits)
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
