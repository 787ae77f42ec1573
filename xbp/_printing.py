"""Printing tensors as PyTorch does: `repr(t)` reads like `repr` of the same torch tensor.

A port of the layout and precision rules of PyTorch's `torch/_tensor_str.py` (BSD licence) onto a
host NumPy copy of the data:
- floats: 4 decimals (``precision``); when every finite value is a whole number they print as
  ``1.``; scientific notation when the largest |value| over the smallest nonzero one exceeds 1000,
  or the largest is above 1e8, or the smallest below 1e-4 (or as ``sci_mode`` forces);
- every element is right-aligned to the widest one, lines wrap at ``linewidth``;
- above ``threshold`` elements, each dimension shows ``edgeitems`` at either end and ``...``;
- suffixes: ``device='cuda:0'`` (when not the default device), ``dtype=xbp.float64`` (unless the
  default float dtype, int64 or bool), ``size=...`` for empty tensors, ``grad_fn=<MulBackward0>``
  or ``requires_grad=True``.
The one deliberate difference: dtypes print as ``xbp.float64``, not ``torch.float64``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

_DEFAULTS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None}
_PROFILES: dict[str, dict[str, Any]] = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}


class _PrintOptions:
    __slots__ = tuple(_DEFAULTS)
    precision: int
    threshold: Any       # int or float, kept as given
    edgeitems: int
    linewidth: int
    sci_mode: "bool | None"

    def __init__(self):
        for k, v in _DEFAULTS.items():
            setattr(self, k, v)


PRINT_OPTS = _PrintOptions()


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None,
                     sci_mode=None) -> None:
    """Options for printing tensors, as `torch.set_printoptions`.

    Args:
        precision: digits after the decimal point for floats (default 4).
        threshold: element count above which a tensor is summarised with ``...`` (default 1000).
        edgeitems: items shown at each end of a summarised dimension (default 3).
        linewidth: characters per line before wrapping (default 80).
        profile: ``"default"``, ``"short"`` or ``"full"`` (no summarisation); the other
            arguments override it.
        sci_mode: True / False force scientific notation on / off; None (the default, and what
            every call without it sets, as in PyTorch) chooses from the values.
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: unknown profile {profile!r}; use 'default', 'short' or 'full'")
        for k, v in _PROFILES[profile].items():
            setattr(PRINT_OPTS, k, v)
    for name, v in (("precision", precision), ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"set_printoptions: {name} must be a non-negative integer, got {v!r}")
            setattr(PRINT_OPTS, name, int(v))
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
                or not threshold >= 0:
            raise ValueError(f"set_printoptions: threshold must be a non-negative number, got {threshold!r}")
        PRINT_OPTS.threshold = threshold
    if sci_mode is not None and not isinstance(sci_mode, bool):
        raise ValueError(f"set_printoptions: sci_mode must be True, False or None, got {sci_mode!r}")
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict:
    """The current print options, as keyword arguments for `set_printoptions`."""
    return {k: getattr(PRINT_OPTS, k) for k in _DEFAULTS}


class printoptions:
    """``with xbp.printoptions(precision=2): ...`` sets print options for the block only."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __enter__(self):
        self.old = get_printoptions()
        set_printoptions(**self.kwargs)
        return self

    def __exit__(self, *exc):
        set_printoptions(**self.old)
        return False


class _Formatter:
    """Chooses int / fixed / scientific notation and the column width from the (summarised)
    values, as PyTorch's `_Formatter`."""

    def __init__(self, a: np.ndarray):
        self.floating = a.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        opts = PRINT_OPTS
        flat = a.reshape(-1)
        if not self.floating:
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(f"{v}"))
            return
        vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return
        absd = np.abs(vals.astype(np.float64))
        lo, hi = absd.min(), absd.max()
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        self.sci_mode = (hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4) if opts.sci_mode is None else opts.sci_mode
        p = opts.precision
        values = vals.tolist()
        if self.sci_mode:
            w = max(len(f"{v:.{p}e}") for v in values)
        elif self.int_mode:
            w = max(len(f"{v:.0f}") for v in values) + 1
        else:
            w = max(len(f"{v:.{p}f}") for v in values)
        self.max_width = max(self.max_width, w)

    def format(self, v) -> str:
        if self.floating:
            p = PRINT_OPTS.precision
            if self.sci_mode:
                s = f"{v:{self.max_width}.{p}e}"
            elif self.int_mode:
                s = f"{v:.0f}"
                if not (math.isinf(v) or math.isnan(v)):
                    s += "."
            else:
                s = f"{v:.{p}f}"
        else:
            s = f"{v}"
        return (self.max_width - len(s)) * " " + s


def _complex_str(v, f1, f2) -> str:
    real = f1.format(v.real)
    imag = (f2.format(v.imag) + "j").lstrip()
    return real + imag if imag[0] in "+-" else real + "+" + imag


def _vector_str(a, n, indent, summarize, f1, f2):
    opts = PRINT_OPTS
    element_length = f1.max_width + 2
    if f2 is not None:
        element_length += f2.max_width + 1
    per_line = max(1, math.floor((opts.linewidth - indent) / element_length))
    fmt = (lambda v: f1.format(v)) if f2 is None else (lambda v: _complex_str(v, f1, f2))
    e = opts.edgeitems
    if summarize and not e:
        data = ["..."]
    elif summarize and n > 2 * e:
        data = [fmt(v) for v in a[:e].tolist()] + [" ..."] + [fmt(v) for v in a[-e:].tolist()]
    else:
        data = [fmt(v) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _str_with_formatter(a, shape, indent, summarize, f1, f2=None):
    """`a` holds the printed elements of a tensor of `shape`: all of them, or (summarising) the
    first and last `edgeitems` along each longer dim."""
    if not shape:
        v = a.item()
        return f1.format(v) if f2 is None else _complex_str(v, f1, f2)
    if len(shape) == 1:
        return _vector_str(a, shape[0], indent, summarize, f1, f2)
    e = PRINT_OPTS.edgeitems
    n, inner = shape[0], shape[1:]
    if summarize and n > 2 * e:
        m = a.shape[0]
        slices = ([_str_with_formatter(a[i], inner, indent + 1, summarize, f1, f2) for i in range(e)] + ["..."]
                  + [_str_with_formatter(a[i], inner, indent + 1, summarize, f1, f2) for i in range(m - e, m)])
    else:
        slices = [_str_with_formatter(a[i], inner, indent + 1, summarize, f1, f2) for i in range(n)]
    return "[" + ("," + "\n" * (len(shape) - 1) + " " * (indent + 1)).join(slices) + "]"


def _summarized(a: np.ndarray) -> np.ndarray:
    """The elements a summarised print shows (PyTorch's `get_summarized_data`): they alone choose
    the notation and the width."""
    e = PRINT_OPTS.edgeitems
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        return np.concatenate((a[:e], a[-e:])) if a.shape[0] > 2 * e else a
    if not e:
        return a[(slice(0, 0),) * a.ndim]
    rows = list(range(e)) + list(range(a.shape[0] - e, a.shape[0])) if a.shape[0] > 2 * e else range(a.shape[0])
    return np.stack([_summarized(a[i]) for i in rows])


def edges(xp, x, e: int):
    """The first and last `e` entries along every dim longer than 2e, on the device (so printing
    a large GPU tensor copies only what is shown): the same elements as `_summarized`."""
    for d, n in enumerate(x.shape):
        if n > 2 * e:
            head = (slice(None),) * d
            x = xp.concat([x[head + (slice(0, e), Ellipsis)], x[head + (slice(n - e, n), Ellipsis)]], axis=d)
    return x


def tensor_str(a: np.ndarray, indent: int, shape=None) -> str:
    """The bracketed body of a tensor's repr (PyTorch's `_tensor_str`), from a host array: the
    whole tensor, or for a summarised print of a tensor of `shape`, its `edges`."""
    shape = tuple(a.shape) if shape is None else tuple(shape)
    if math.prod(shape) == 0:
        return "[]"
    summarize = math.prod(shape) > PRINT_OPTS.threshold
    if a.dtype == np.float16:
        a = a.astype(np.float32)          # same values; formatting reads Python floats anyway
    # the values that choose the notation and width: the printed ones (a itself once reduced)
    part = _summarized(a) if summarize and tuple(a.shape) == shape else a
    if a.dtype.kind == "c":
        return _str_with_formatter(a, shape, indent, summarize, _Formatter(part.real), _Formatter(part.imag))
    return _str_with_formatter(a, shape, indent, summarize, _Formatter(part))


def _add_suffixes(s: str, suffixes, indent: int) -> str:
    out = [s]
    last_line_len = len(s) - s.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            out.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            out.append(", " + suffix)
            last_line_len += len(suffix) + 2
    out.append(")")
    return "".join(out)


def dtype_name(dt) -> str:
    """``xbp.float32`` style name of a NumPy dtype."""
    return "xbp." + np.dtype(dt).name


def _size_str(shape) -> str:
    return "size=" + str(tuple(shape))


def tensor_repr(t, prefix: str = "tensor(") -> str:
    """`repr(t)` as PyTorch prints the same tensor (see the module docstring)."""
    from ._backend import get_default_device
    from ._creation import DEFAULT_FLOAT
    indent = len(prefix)
    suffixes = []
    if t.device != get_default_device():
        suffixes.append(f"device='{t.device}'")
    arr, shape = t.array, tuple(t.array.shape)
    e = PRINT_OPTS.edgeitems
    if e and math.prod(shape) > PRINT_OPTS.threshold:
        arr = edges(t.xp, arr, e)
    a = t.xp.to_numpy(arr)
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    dt = a.dtype
    default_float = DEFAULT_FLOAT[0]
    default_complex = np.dtype("complex128") if default_float == np.float64 else np.dtype("complex64")
    has_default_dtype = dt in (default_float, default_complex, np.dtype("int64"), np.dtype("bool"))
    if a.size == 0:
        if len(shape) != 1:
            suffixes.append(_size_str(shape))
        if dt != default_float:
            suffixes.append("dtype=" + dtype_name(dt))
        body = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append(_size_str(shape))
        if not has_default_dtype:
            suffixes.append("dtype=" + dtype_name(dt))
        body = tensor_str(a, indent, shape)
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)
