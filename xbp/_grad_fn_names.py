"""PyTorch's names for graph nodes (`grad_fn.name()`, `repr(t)`): ``MulBackward0``, ``AddmmBackward0``.

A node keeps its primitive (``node.prim.name``: "mul", "linear"), which the visualiser and the
debugging tools use; this module only translates it to the class name PyTorch's autograd gives
the node of the same operation. Where PyTorch's name depends on the call (``sum(x)`` is
SumBackward0, ``sum(x, dim)`` SumBackward1; ``linear`` with a bias on a matrix is AddmmBackward0),
a rule reads the node's parameters and input shapes. A primitive without an entry gets its own
name in PyTorch's style (``log_softmax`` -> ``LogSoftmaxBackward0``), so new primitives print
sensibly without being listed here.
"""
from __future__ import annotations

# primitive name -> PyTorch node name, where the two differ only in spelling
_FIXED = {
    "add": "AddBackward0", "sub": "SubBackward0", "mul": "MulBackward0", "div": "DivBackward0",
    "neg": "NegBackward0", "log1p": "Log1PBackward0", "expm1": "Expm1Backward0",
    "norm": "LinalgVectorNormBackward0", "norm_p": "LinalgVectorNormBackward0",
    "std": "SqrtBackward0",            # xbp's std is var (VarBackward0) then this sqrt
    "reshape": "ViewBackward0", "permute": "PermuteBackward0", "expand": "ExpandBackward0",
    "concat": "CatBackward0", "pad": "ConstantPadNdBackward0", "clamp": "ClampBackward1",
    "index": "IndexBackward0", "astype": "ToCopyBackward0", "to_device": "ToCopyBackward0",
    "clone": "CloneBackward0", "cross_entropy": "NllLossBackward0",
    "binary_cross_entropy": "BinaryCrossEntropyBackward0",
    "binary_cross_entropy_with_logits": "BinaryCrossEntropyWithLogitsBackward0",
    "conv2d": "ConvolutionBackward0", "conv_transpose2d": "ConvolutionBackward0",
    "max_pool2d": "MaxPool2DWithIndicesBackward0", "avg_pool2d": "AvgPool2DBackward0",
    "max_unpool2d": "MaxUnpool2DBackward0",
    "embedding": "EmbeddingBackward0", "setitem": "CopySlices", "take_rows": "IndexSelectBackward0",
    "leaky_relu": "LeakyReluBackward0", "gelu": "GeluBackward0", "silu": "SiluBackward0",
    "softplus": "SoftplusBackward0", "log_softmax": "LogSoftmaxBackward0",
}


def _reduction(base):
    # PyTorch: the full reduction is <Op>Backward0, the one over dims <Op>Backward1
    return lambda n: f"{base}Backward{0 if n.p.get('axis') is None else 1}"


def _matmul(n):
    a, b = (len(s) if s is not None else 0 for s in n.shapes)
    if a == 2 and b == 2:
        return "MmBackward0"
    if a == 2 and b == 1:
        return "MvBackward0"
    if a == 1 and b == 1:
        return "DotBackward0"
    return "UnsafeViewBackward0"


def _linear(n):
    x = n.shapes[0]
    if x is not None and len(x) == 2:
        return "AddmmBackward0" if len(n.shapes) > 2 and n.shapes[2] is not None else "MmBackward0"
    return "ViewBackward0"


def _pow(n):
    sa, sb = n.shapes              # a Python number's shape is None
    if sb is None:
        return "PowBackward0"      # tensor ** number
    return "PowBackward2" if sa is None else "PowBackward1"


def _getitem(n):
    key = n.p.get("key")
    parts = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, int) for k in parts):
        return "SelectBackward0"
    return "SliceBackward0"


def _normalize(n):
    # one primitive serves layer_norm (trailing dims) and batch_norm (dim 0 and the spatial dims)
    return "NativeBatchNormBackward0" if 0 in tuple(n.p.get("axes", ())) else "NativeLayerNormBackward0"


def _sub(n):
    # 2 - x is PyTorch's rsub
    return "RsubBackward1" if n.shapes[0] is None else "SubBackward0"


_RULES = {
    "sum": _reduction("Sum"), "mean": _reduction("Mean"), "prod": _reduction("Prod"),
    "amax": lambda n: "AmaxBackward0", "amin": lambda n: "AminBackward0",
    "max": lambda n: "MaxBackward0", "min": lambda n: "MinBackward0",
    "matmul": _matmul, "linear": _linear, "pow": _pow, "getitem": _getitem, "sub": _sub,
    "normalize": _normalize,
}


def _camel(name: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in name.split("_") if w)


def torch_name(node) -> str:
    """PyTorch's class name for the node of this primitive application."""
    prim = node.prim
    rule = _RULES.get(prim.name)
    if rule is not None:
        try:
            return rule(node)
        except (AttributeError, TypeError, ValueError):   # an unusual call: fall back to the table
            pass
    fixed = _FIXED.get(prim.name)
    if fixed is not None:
        return fixed
    if prim.name[:1].isupper():
        return prim.name             # already a node name (autograd.Function's "MyFnBackward")
    return _camel(prim.name) + "Backward0"
