"""Tensor: one backend array, its device's Backend, and its place in the graph.

A Tensor does no maths; its methods call the functions in `xbp.ops` (and the engine, creation,
printing, ...), imported in the binding block at the end of this file. Fields:
  array         the backend array (NumPy, CuPy or array-api-strict); `t.data` is PyTorch's: a
                detached Tensor sharing this array, with a version counter of its own
  xp            the Backend of its device, resolved once when the tensor is made
  requires_grad whether backward computes a gradient for it
  grad_fn       the graph Node that made it (None for a leaf)
  grad          the accumulated gradient (a Tensor) of a leaf, after backward
  _version      [int], bumped by in-place ops; shared with views, checked by backward
  _base, _view  for a view (indexing, reshape, permute, expand): the tensor owning the memory, and
                [parent, primitive, params, version] to write in-place changes through to the
                parent and to rebuild the view's grad_fn after its memory changed (ops/index.py)
`array` is always an array, also for 0-d tensors (NumPy's 0-d results are scalars; _wrap fixes them).
"""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from . import _backend
from ._size import _CACHE as _SIZES, Size, as_size

_NP_SCALARS = frozenset(t for t in np.sctypeDict.values() if issubclass(t, np.generic))


class Tensor:
    """An n-dimensional array on a device that records the operations applied to it, so that
    `backward` can compute gradients (reverse-mode autodiff), with PyTorch's API.

    The data is a backend array: NumPy on 'cpu', CuPy on 'cuda', array-api-strict on 'strict' (a
    test device). Make tensors with `xbp.tensor`, `xbp.zeros`, `xbp.rand`, ... rather than this
    constructor. Main attributes: `shape`, `dtype`, `device`, `requires_grad`, `grad` (filled by
    `backward` on leaves that require grad) and `grad_fn` (the node that produced a non-leaf).

    Example::

        x = xbp.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = (x * x).sum()        # a 0-d tensor with a grad_fn
        y.backward()
        x.grad                   # tensor([2., 4., 6.])
    """

    __slots__ = ("array", "xp", "requires_grad", "grad_fn", "grad", "_version", "_accum", "_hooks",
                 "_base", "_view", "_retain", "__weakref__")
    # for type checkers: `array` is the backend's array (NumPy, CuPy or array-api-strict), untyped
    array: Any
    _accum: Any
    _view: Any
    _base: Any
    grad_fn: Any
    grad: Any
    __array_priority__ = 1000  # so ndarray op Tensor defers to Tensor's reflected operator

    def __init__(self, *args, requires_grad: bool = False, device=None):
        """``Tensor(array)`` wraps a backend array (or shares a Tensor's) as is, without a copy.
        PyTorch's legacy constructors: ``Tensor([1, 2])`` (a list or tuple of numbers: a copy, in
        the default float dtype), ``Tensor(2, 3)`` or ``Tensor(xbp.Size([2, 3]))`` (zeros of that
        shape, where PyTorch leaves the memory uninitialised), ``Tensor()`` (shape (0,)).
        Prefer `xbp.tensor(...)` / `xbp.zeros(...)`, which also take a dtype."""
        data = args[0] if len(args) == 1 else None
        if isinstance(data, Tensor):
            data = data.array
        elif data.__class__ in _NP_SCALARS:
            data = np.asarray(data)
        elif len(args) != 1 or not _backend.is_device_array(data):
            data = _legacy_data(args, device)
        self.array = data
        self.xp = _backend.backend_of(data)
        self.grad_fn = None
        self.grad = None
        self._version = [0]
        self._accum = None
        self._hooks = None
        self._base = None
        self._view = None
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # --- metadata ---------------------------------------------------------------------------------
    @property
    def shape(self) -> "Size":
        """The shape as an `xbp.Size` (a tuple); built here, on access, so ops (which read
        ``x.array.shape``) never pay for it."""
        s = self.array.shape
        r = _SIZES.get(s)
        return r if r is not None else as_size(s)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self):
        return self.xp.canonical(self.array.dtype)

    @property
    def device(self) -> _backend.device:
        return self.xp.device

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def data(self) -> "Tensor":
        """PyTorch's ``.data``: a tensor sharing this one's memory, outside the graph.

        Unlike :meth:`detach`, changes made through it are invisible to autograd (it has a version
        counter of its own), which is what ``p.data.add_(...)`` / ``p.data.zero_()`` rely on.
        Assigning ``t.data = other`` makes `t` use `other`'s array (shape and device included)."""
        return _wrap(self.array, self.xp)

    @data.setter
    def data(self, value) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data = value needs a Tensor, got {type(value).__name__}; "
                            "wrap arrays with xbp.tensor(...) or xbp.from_numpy(...)")
        self.array = value.array
        self.xp = value.xp

    def size(self, dim=None):
        """``size()``: the shape (an `xbp.Size`); ``size(dim)``: one entry (negative dims count
        from the end; out of range is an IndexError)."""
        if dim is None:
            return as_size(self.array.shape)
        if self.array.ndim == 0:
            raise IndexError(f"size: dimension specified as {dim} but the tensor has no dimensions")
        return self.array.shape[_op_args.dim_index("size", dim, self.array.ndim)]

    def numel(self) -> int:
        n = 1
        for s in self.array.shape:
            n *= s
        return n

    def dim(self) -> int:
        return self.array.ndim

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def is_floating_point(self) -> bool:
        return self.dtype.kind == "f"

    # --- graph control -----------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.dtype.kind not in "fc":
            raise RuntimeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}; "
                               "convert with .to(xbp.float32) first")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> "Tensor":
        """The same data (shared, with its version counter) cut off from the graph."""
        t = _wrap(self.array, self.xp)
        t._version = self._version
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is not None and not self._retain:
            self._retain = True
            self.grad_fn.add_hook(_engine.retain_grad_hook(self))

    def register_hook(self, fn):
        """Call ``fn(grad) -> Tensor | None`` with this tensor's gradient during backward; a
        returned tensor replaces the gradient. Returns a handle with ``.remove()``."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad")
        if self.grad_fn is not None:
            return self.grad_fn.add_hook(fn)
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return _HookHandle(self._hooks, fn)

    def backward(self, gradient=None, retain_graph: bool = False, create_graph: bool = False, inputs=None):
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad``. `gradient` is required unless
        this tensor has one element (then it defaults to 1)."""
        _engine.backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # --- host / device -------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array: on the CPU it shares memory with the tensor (as in PyTorch,
        ``n = t.numpy(); t.add_(1)`` changes `n`); from other devices it is a host copy.
        Refused while the tensor requires grad, as PyTorch does."""
        if self.requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad; call .detach().numpy()")
        a = self.xp.to_numpy(self.array)
        return a if isinstance(a, np.ndarray) else np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)``: a host copy (refused while the tensor requires grad, like `numpy()`)."""
        if self.requires_grad:
            raise RuntimeError("np.asarray() on a tensor that requires grad; call .detach() first")
        a = self.xp.to_numpy(self.array)
        return a if dtype is None else a.astype(dtype, copy=False)

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.xp.to_numpy(self.array).reshape(()).item()

    def tolist(self):
        return self.xp.to_numpy(self.array).tolist()

    def to(self, *args, device=None, dtype=None, non_blocking: bool = False, copy: bool = False,
           memory_format=None) -> "Tensor":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)``; differentiable.
        `non_blocking` as PyTorch's: transfers are ordered on the device's stream either way, and
        with False (the default) the source may be overwritten as soon as this returns (an upload
        from pinned memory waits for its copy); True lets that upload run on. `memory_format` is
        accepted for PyTorch compatibility (xbp has one memory layout)."""
        flags = []
        for a in args:
            if a is True or a is False:            # PyTorch's positional non_blocking, copy
                flags.append(a)
            elif isinstance(a, str) or isinstance(a, _backend.Backend):
                device = a
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            else:
                dtype = a
        if flags:
            non_blocking = flags[0]
        if len(flags) > 1:
            copy = flags[1]
        out = self
        if device is not None and _backend.get_backend(device) is not self.xp:
            out = _ops.to_device(out, device, non_blocking=bool(non_blocking))
        if dtype is not None and _backend.canonical_dtype(dtype) != self.dtype:
            out = _ops.astype(out, dtype)
        if copy and out is self:
            out = _ops.clone(self)
        return out

    def cpu(self, memory_format=None) -> "Tensor":
        """This tensor on the CPU (itself if it is there already)."""
        return self.to("cpu")

    def cuda(self, device=None, non_blocking: bool = False, memory_format=None) -> "Tensor":
        """This tensor on the GPU (``cuda:0``, or `device`: an index or a "cuda:N" name)."""
        if device is None:
            device = 0
        return self.to(device if isinstance(device, str) else f"cuda:{int(device)}", non_blocking=non_blocking)

    def pin_memory(self, device=None) -> "Tensor":
        """PyTorch's page-locked copy for fast host-to-GPU transfers. Needs a GPU (as in PyTorch);
        the DataLoader's ``pin_memory=True`` pins its batches itself."""
        if not _backend.cuda_available():
            raise RuntimeError("pin_memory: no CUDA device is available (pinned memory only helps host-to-GPU "
                               "copies); drop .pin_memory() on CPU-only machines")
        if self.device != "cpu":
            raise RuntimeError(f"pin_memory: only CPU tensors can be pinned; this one is on {self.device}")
        from ._cuda_runtime import pinned_copy
        return _wrap(pinned_copy(self.array), self.xp)

    def is_pinned(self, device=None) -> bool:
        """Whether the tensor's memory is page-locked (always False without a GPU)."""
        if not _backend.cuda_available() or self.device != "cpu":
            return False
        return _backend.host_is_pinned(self.array)

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def long(self):
        return self.to(dtype=np.int64)

    def int(self):
        return self.to(dtype=np.int32)

    def bool(self):
        return self.to(dtype=np.bool_)

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """The DLPack capsule of the backend array (zero-copy exchange with NumPy, CuPy, PyTorch)."""
        kw = {k: v for k, v in (("stream", stream), ("max_version", max_version), ("dl_device", dl_device),
                                ("copy", copy)) if v is not None}
        return self.array.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    # --- printing -----------------------------------------------------------------------------------
    def __repr__(self):
        """PyTorch's layout and precision (see xbp/_printing.py and `xbp.set_printoptions`)."""
        return _printing.tensor_repr(self)

    def __format__(self, spec):
        """f"{loss:.4f}" formats a one-element tensor's value; other tensors format their repr."""
        if spec and self.numel() == 1:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"truth value of a tensor with {self.numel()} elements is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError("only integer tensors can be used as an index")
        return int(self.item())

    def __hash__(self):
        return id(self)

    # copy.deepcopy / pickle: the Backend holds modules and cannot be copied; copy the array and
    # look the device's Backend up again (so deepcopy(model) works for modules with buffers)
    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError("deepcopy of a non-leaf tensor (one with a grad_fn); deepcopy t.detach() instead")
        r = memo.get(id(self))
        if r is None:
            r = _wrap(self.xp.asarray(self.array, copy=True), self.xp, self.requires_grad)
            if self.grad is not None:
                r.grad = _wrap(self.xp.asarray(self.grad.array, copy=True), self.xp)
            memo[id(self)] = r
        return r

    def __reduce_ex__(self, protocol):
        return (_rebuild, (str(self.device), self.xp.to_numpy(self.array), self.requires_grad))

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # --- arithmetic (no maths here: every operator calls an op) ---------------------------------------
    def __add__(self, o): return _elementwise._add(self, o)
    def __radd__(self, o): return _elementwise._add(o, self)
    def __sub__(self, o): return _elementwise._sub(self, o)
    def __rsub__(self, o): return _elementwise._sub(o, self)
    def __mul__(self, o): return _elementwise._mul(self, o)
    def __rmul__(self, o): return _elementwise._mul(o, self)
    def __truediv__(self, o): return _elementwise._div(self, o)
    def __rtruediv__(self, o): return _elementwise._div(o, self)
    def __floordiv__(self, o): return _ops.floor_divide(self, o)
    def __rfloordiv__(self, o): return _ops.floor_divide(o, self)
    def __mod__(self, o): return _ops.remainder(self, o)
    def __rmod__(self, o): return _ops.remainder(o, self)
    def __pow__(self, o): return _ops.pow(self, o)
    def __rpow__(self, o): return _ops.pow(o, self)
    def __matmul__(self, o): return _ops.matmul(self, o)
    def __rmatmul__(self, o): return _ops.matmul(o, self)
    def __neg__(self): return _ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops.abs(self)
    def __eq__(self, o): return _ops.eq(self, o)
    def __ne__(self, o): return _ops.ne(self, o)
    def __lt__(self, o): return _ops.lt(self, o)
    def __le__(self, o): return _ops.le(self, o)
    def __gt__(self, o): return _ops.gt(self, o)
    def __ge__(self, o): return _ops.ge(self, o)
    # bool tensors: logical ops; integer tensors: bitwise ops (as PyTorch and the standard)
    def __and__(self, o): return _bitwise("bitwise_and", _ops.logical_and, self, o)
    def __rand__(self, o): return _bitwise("bitwise_and", _ops.logical_and, o, self)
    def __or__(self, o): return _bitwise("bitwise_or", _ops.logical_or, self, o)
    def __ror__(self, o): return _bitwise("bitwise_or", _ops.logical_or, o, self)
    def __xor__(self, o): return _bitwise("bitwise_xor", _ops.logical_xor, self, o)
    def __rxor__(self, o): return _bitwise("bitwise_xor", _ops.logical_xor, o, self)
    def __invert__(self):
        return _ops.logical_not(self) if self.dtype == np.bool_ else _array_api.bitwise_invert(self)
    def __lshift__(self, o): return _array_api.bitwise_left_shift(self, o)
    def __rlshift__(self, o): return _array_api.bitwise_left_shift(o, self)
    def __rshift__(self, o): return _array_api.bitwise_right_shift(self, o)
    def __rrshift__(self, o): return _array_api.bitwise_right_shift(o, self)
    def __getitem__(self, key): return _ops.getitem(self, key)
    def __setitem__(self, key, value): _ops.setitem_(self, key, value)

    # in place: +=, -=, *=, /= update the data and bump the version counter
    def __iadd__(self, o): return _ops.add_(self, o)
    def __isub__(self, o): return _ops.sub_(self, o)
    def __imul__(self, o): return _ops.mul_(self, o)
    def __itruediv__(self, o): return _ops.div_(self, o)

    def add_(self, o, alpha=1): return _ops.add_(self, o if alpha == 1 else o * alpha)
    def sub_(self, o, alpha=1): return _ops.sub_(self, o if alpha == 1 else o * alpha)
    def mul_(self, o): return _ops.mul_(self, o)
    def div_(self, o): return _ops.div_(self, o)
    def zero_(self): return _ops.fill_(self, 0)
    def fill_(self, v): return _ops.fill_(self, v)
    def copy_(self, src): return _ops.copy_(self, src)
    def clamp_(self, min=None, max=None): return _ops.inplace_(self, "clamp_", lambda t: _ops.clamp(t, min, max))
    clip_ = clamp_
    def relu_(self): return _ops.inplace_(self, "relu_", _ops.relu)
    def neg_(self): return _ops.inplace_(self, "neg_", _ops.neg)
    def pow_(self, e): return _ops.inplace_(self, "pow_", lambda t: _ops.pow(t, e))
    def exp_(self): return _ops.inplace_(self, "exp_", _ops.exp)
    def sqrt_(self): return _ops.inplace_(self, "sqrt_", _ops.sqrt)

    # --- methods PyTorch users expect ---------------------------------------------------------------
    @property
    def T(self): return _ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))
    @property
    def mT(self): return _ops.transpose(self, -1, -2)

    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def log1p(self): return _ops.log1p(self)
    def expm1(self): return _ops.expm1(self)
    def sqrt(self): return _ops.sqrt(self)
    def rsqrt(self): return _ops.rsqrt(self)
    def abs(self): return _ops.abs(self)
    def sign(self): return _ops.sign(self)
    def sin(self): return _ops.sin(self)
    def cos(self): return _ops.cos(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def neg(self): return _ops.neg(self)
    def square(self): return _ops.mul(self, self)
    def pow(self, e): return _ops.pow(self, e)
    def clamp(self, min=None, max=None): return _ops.clamp(self, min, max)
    clip = clamp
    def maximum(self, o): return _ops.maximum(self, o)
    def minimum(self, o): return _ops.minimum(self, o)
    def add(self, other, *, alpha=1): return _ops.add(self, other, alpha=alpha)
    def sub(self, other, *, alpha=1): return _ops.sub(self, other, alpha=alpha)
    def mul(self, o): return _ops.mul(self, o)
    def div(self, other, *, rounding_mode=None): return _ops.div(self, other, rounding_mode=rounding_mode)
    def matmul(self, o): return _ops.matmul(self, o)

    def sum(self, dim=None, keepdim=False, **kw): return _ops.sum(self, dim, keepdim, **kw)
    def mean(self, dim=None, keepdim=False, **kw): return _ops.mean(self, dim, keepdim, **kw)
    def prod(self, dim=None, keepdim=False, **kw): return _ops.prod(self, dim, keepdim, **kw)
    def var(self, dim=None, keepdim=False, correction=1, **kw): return _ops.var(self, dim, keepdim, correction=correction, **kw)
    def std(self, dim=None, keepdim=False, correction=1, **kw): return _ops.std(self, dim, keepdim, correction=correction, **kw)
    def amax(self, dim=None, keepdim=False, **kw): return _ops.amax(self, dim, keepdim, **kw)
    def amin(self, dim=None, keepdim=False, **kw): return _ops.amin(self, dim, keepdim, **kw)
    def max(self, dim=None, keepdim=False, **kw): return _ops.max(self, dim, keepdim, **kw)
    def min(self, dim=None, keepdim=False, **kw): return _ops.min(self, dim, keepdim, **kw)
    def argmax(self, dim=None, keepdim=False, **kw): return _ops.argmax(self, dim, keepdim, **kw)
    def argmin(self, dim=None, keepdim=False, **kw): return _ops.argmin(self, dim, keepdim, **kw)
    def logsumexp(self, dim=None, keepdim=False, **kw): return _ops.logsumexp(self, dim, keepdim, **kw)
    def norm(self, p=2, dim=None, keepdim=False, **kw): return _ops.norm(self, p, dim, keepdim, **kw)
    def all(self, dim=None, keepdim=False, **kw): return _ops.all(self, dim, keepdim, **kw)
    def any(self, dim=None, keepdim=False, **kw): return _ops.any(self, dim, keepdim, **kw)
    def softmax(self, dim=-1, dtype=None, **kw): return _ops.softmax(self, dim, dtype, **kw)
    def log_softmax(self, dim=-1, dtype=None, **kw): return _ops.log_softmax(self, dim, dtype, **kw)

    def reshape(self, *shape): return _ops.reshape(self, _shape_args(shape))
    def view(self, *shape): return _ops.reshape(self, _shape_args(shape))
    def view_as(self, other): return _ops.reshape(self, other.shape)
    def reshape_as(self, other): return _ops.reshape(self, other.shape)
    def flatten(self, start_dim=0, end_dim=-1): return _ops.flatten(self, start_dim, end_dim)
    def transpose(self, dim0, dim1): return _ops.transpose(self, dim0, dim1)
    def swapaxes(self, axis0, axis1): return _ops.transpose(self, axis0, axis1)
    def swapdims(self, dim0, dim1): return _ops.transpose(self, dim0, dim1)
    def permute(self, *dims): return _ops.permute(self, _shape_args(dims))
    def expand(self, *shape): return _ops.expand(self, _shape_args(shape))
    def expand_as(self, other): return _ops.expand(self, other.shape)
    def broadcast_to(self, shape): return _ops.broadcast_to(self, shape)
    def squeeze(self, dim=None, **kw): return _ops.squeeze(self, dim, **kw)
    def unsqueeze(self, dim=None, **kw): return _ops.unsqueeze(self, dim, **kw)
    def flip(self, *dims, **kw): return _ops.flip(self, _shape_args(dims) if dims else None, **kw)
    def roll(self, shifts, dims=None, **kw): return _ops.roll(self, shifts, dims, **kw)
    def split(self, split_size_or_sections, dim=0, **kw): return _ops.split(self, split_size_or_sections, dim, **kw)
    def chunk(self, chunks, dim=0, **kw): return _ops.chunk(self, chunks, dim, **kw)
    def gather(self, dim=None, index=None, **kw): return _ops.gather(self, dim, index, **kw)
    def take_along_dim(self, indices, dim=None, **kw): return _ops.take_along_dim(self, indices, dim, **kw)
    def masked_fill(self, mask, value): return _ops.masked_fill(self, mask, value)
    def index_select(self, dim=None, index=None, **kw): return _ops.index_select(self, dim, index, **kw)
    def movedim(self, source, destination): return _ops.movedim(self, source, destination)
    def unflatten(self, dim, sizes): return _ops.unflatten(self, dim, sizes)
    def unbind(self, dim=0, **kw): return _ops.unbind(self, dim, **kw)
    def tile(self, *reps): return _ops.tile(self, _shape_args(reps))
    def repeat_interleave(self, repeats, dim=0, **kw): return _ops.repeat_interleave(self, repeats, dim, **kw)
    def cumsum(self, dim=None, **kw): return _ops.cumsum(self, dim, **kw)
    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dims, got shape {self.shape}; use .mT or .transpose()")
        return self.T
    def eq(self, o): return _ops.eq(self, o)
    def ne(self, o): return _ops.ne(self, o)
    def lt(self, o): return _ops.lt(self, o)
    def le(self, o): return _ops.le(self, o)
    def gt(self, o): return _ops.gt(self, o)
    def ge(self, o): return _ops.ge(self, o)
    def floor(self): return _ops.floor(self)
    def ceil(self): return _ops.ceil(self)
    def round(self): return _ops.round(self)
    def erf(self): return _ops.erf(self)
    def isnan(self): return _ops.isnan(self)
    def isfinite(self): return _ops.isfinite(self)
    def masked_fill_(self, mask, value):
        return _ops.inplace_(self, "masked_fill_", lambda t: _ops.masked_fill(t, mask, value))
    def abs_(self): return _ops.inplace_(self, "abs_", _ops.abs)

    # new tensors on this tensor's device (and, unless given, with its dtype)
    def new_tensor(self, data, dtype=None, requires_grad=False):
        return _creation.tensor(data, dtype=dtype or self.dtype, device=self.xp, requires_grad=requires_grad)
    def new_zeros(self, *size, dtype=None, requires_grad=False):
        return _creation.zeros(*size, dtype=dtype or self.dtype, device=self.xp, requires_grad=requires_grad)
    def new_ones(self, *size, dtype=None, requires_grad=False):
        return _creation.ones(*size, dtype=dtype or self.dtype, device=self.xp, requires_grad=requires_grad)
    def new_full(self, size, fill_value, dtype=None, requires_grad=False):
        return _creation.full(size, fill_value, dtype=dtype or self.dtype, device=self.xp, requires_grad=requires_grad)
    def new_empty(self, *size, dtype=None, requires_grad=False):
        return self.new_zeros(*size, dtype=dtype, requires_grad=requires_grad)

    def contiguous(self): return self
    def clone(self): return _ops.clone(self)
    def repeat(self, *sizes): return _ops.tile(self, _shape_args(sizes))

    # --- elementwise math and reductions ---
    def tan(self): return _ops.tan(self)
    def asin(self): return _ops.asin(self)
    def acos(self): return _ops.acos(self)
    def atan(self): return _ops.atan(self)
    def sinh(self): return _ops.sinh(self)
    def cosh(self): return _ops.cosh(self)
    def asinh(self): return _ops.asinh(self)
    def acosh(self): return _ops.acosh(self)
    def atanh(self): return _ops.atanh(self)
    arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
    def atan2(self, other): return _ops.atan2(self, other)
    arctan2 = atan2
    def hypot(self, other): return _ops.hypot(self, other)
    def logaddexp(self, other): return _ops.logaddexp(self, other)
    def logaddexp2(self, other): return _ops.logaddexp2(self, other)
    def log2(self): return _ops.log2(self)
    def log10(self): return _ops.log10(self)
    def exp2(self): return _ops.exp2(self)
    def reciprocal(self): return _ops.reciprocal(self)
    def clamp_min(self, min): return _ops.clamp_min(self, min)
    def clamp_max(self, max): return _ops.clamp_max(self, max)
    def lerp(self, end, weight): return _ops.lerp(self, end, weight)
    def nan_to_num(self, nan=0.0, posinf=None, neginf=None): return _ops.nan_to_num(self, nan, posinf, neginf)
    def heaviside(self, values): return _ops.heaviside(self, values)
    def fmod(self, other): return _ops.fmod(self, other)
    def frac(self): return _ops.frac(self)
    def trunc(self): return _ops.trunc(self)
    fix = trunc
    def sinc(self): return _ops.sinc(self)
    def xlogy(self, other): return _ops.xlogy(self, other)
    def erfc(self): return _ops.erfc(self)
    def erfinv(self): return _ops.erfinv(self)
    def lgamma(self): return _ops.lgamma(self)
    def digamma(self): return _ops.digamma(self)
    def polygamma(self, n): return _ops.polygamma(n, self)
    def sgn(self): return _ops.sgn(self)
    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _ops.isclose(self, other, rtol, atol, equal_nan)
    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _ops.allclose(self, other, rtol, atol, equal_nan)
    def cumprod(self, dim=None, **kw): return _ops.cumprod(self, dim, **kw)
    def cummax(self, dim=None, **kw): return _ops.cummax(self, dim, **kw)
    def cummin(self, dim=None, **kw): return _ops.cummin(self, dim, **kw)
    def logcumsumexp(self, dim=None, **kw): return _ops.logcumsumexp(self, dim, **kw)
    def diff(self, n=1, dim=-1, prepend=None, append=None, **kw): return _ops.diff(self, n, dim, prepend, append, **kw)
    def aminmax(self, *, dim=None, keepdim=False, **kw): return _ops.aminmax(self, dim=dim, keepdim=keepdim, **kw)
    def count_nonzero(self, dim=None, **kw): return _ops.count_nonzero(self, dim, **kw)
    def multinomial(self, num_samples, replacement=False, *, generator=None):
        return _ops.multinomial(self, num_samples, replacement, generator=generator)
    # in place: recorded like the other in-place ops (version counter, autograd through them)
    def tan_(self): return _ops.inplace_(self, "tan_", _ops.tan)
    def sinh_(self): return _ops.inplace_(self, "sinh_", _ops.sinh)
    def cosh_(self): return _ops.inplace_(self, "cosh_", _ops.cosh)
    def asin_(self): return _ops.inplace_(self, "asin_", _ops.asin)
    def acos_(self): return _ops.inplace_(self, "acos_", _ops.acos)
    def atan_(self): return _ops.inplace_(self, "atan_", _ops.atan)
    def log2_(self): return _ops.inplace_(self, "log2_", _ops.log2)
    def log10_(self): return _ops.inplace_(self, "log10_", _ops.log10)
    def exp2_(self): return _ops.inplace_(self, "exp2_", _ops.exp2)
    def square_(self): return _ops.inplace_(self, "square_", _ops.square)
    def reciprocal_(self): return _ops.inplace_(self, "reciprocal_", _ops.reciprocal)
    def trunc_(self): return _ops.inplace_(self, "trunc_", _ops.trunc)
    fix_ = trunc_
    def frac_(self): return _ops.inplace_(self, "frac_", _ops.frac)
    def erfinv_(self): return _ops.inplace_(self, "erfinv_", _ops.erfinv)
    def lgamma_(self): return _ops.inplace_(self, "lgamma_", _ops.lgamma)
    def digamma_(self): return _ops.inplace_(self, "digamma_", _ops.digamma)
    def clamp_min_(self, min): return _ops.inplace_(self, "clamp_min_", lambda t: _ops.clamp_min(t, min))
    def clamp_max_(self, max): return _ops.inplace_(self, "clamp_max_", lambda t: _ops.clamp_max(t, max))
    def atan2_(self, other): return _ops.inplace_(self, "atan2_", lambda t: _ops.atan2(t, other))
    def hypot_(self, other): return _ops.inplace_(self, "hypot_", lambda t: _ops.hypot(t, other))
    def fmod_(self, other): return _ops.inplace_(self, "fmod_", lambda t: _ops.fmod(t, other))
    def xlogy_(self, other): return _ops.inplace_(self, "xlogy_", lambda t: _ops.xlogy(t, other))
    def lerp_(self, end, weight): return _ops.inplace_(self, "lerp_", lambda t: _ops.lerp(t, end, weight))
    def nan_to_num_(self, nan=0.0, posinf=None, neginf=None):
        return _ops.inplace_(self, "nan_to_num_", lambda t: _ops.nan_to_num(t, nan, posinf, neginf))

    # --- sorting, indexing, scatter and linear algebra ---
    def sort(self, dim=-1, descending=False, stable=False, **kw): return _ops.sort(self, dim, descending, stable, **kw)
    def argsort(self, dim=-1, descending=False, stable=False, **kw): return _ops.argsort(self, dim, descending, stable, **kw)
    def msort(self): return _ops.msort(self)
    def topk(self, k, dim=-1, largest=True, sorted=True, **kw): return _ops.topk(self, k, dim, largest, sorted, **kw)
    def kthvalue(self, k, dim=-1, keepdim=False, **kw): return _ops.kthvalue(self, k, dim, keepdim, **kw)
    def median(self, dim=None, keepdim=False, **kw): return _ops.median(self, dim, keepdim, **kw)
    def nanmedian(self, dim=None, keepdim=False, **kw): return _ops.nanmedian(self, dim, keepdim, **kw)
    def quantile(self, q, dim=None, keepdim=False, **kw): return _ops.quantile(self, q, dim, keepdim, **kw)
    def nanquantile(self, q, dim=None, keepdim=False, **kw): return _ops.nanquantile(self, q, dim, keepdim, **kw)
    def mode(self, dim=-1, keepdim=False, **kw): return _ops.mode(self, dim, keepdim, **kw)
    def unique(self, *args, **kw): return _ops.unique(self, *args, **kw)
    def unique_consecutive(self, *args, **kw): return _ops.unique_consecutive(self, *args, **kw)
    def nonzero(self, *, as_tuple=False): return _ops.nonzero(self, as_tuple=as_tuple)
    def argwhere(self): return _ops.argwhere(self)
    def tril(self, diagonal=0): return _ops.tril(self, diagonal)
    def triu(self, diagonal=0): return _ops.triu(self, diagonal)
    def tril_(self, diagonal=0): return _ops.inplace_(self, "tril_", lambda t: _ops.tril(t, diagonal))
    def triu_(self, diagonal=0): return _ops.inplace_(self, "triu_", lambda t: _ops.triu(t, diagonal))
    def diag(self, diagonal=0): return _ops.diag(self, diagonal)
    def diagonal(self, offset=0, dim1=0, dim2=1): return _ops.diagonal(self, offset, dim1, dim2)
    def diag_embed(self, offset=0, dim1=-2, dim2=-1): return _ops.diag_embed(self, offset, dim1, dim2)
    def trace(self): return _ops.trace(self)
    def narrow(self, *args, **kw): return _ops.narrow(self, *args, **kw)
    def mm(self, mat2): return _ops.mm(self, mat2)
    def bmm(self, mat2): return _ops.bmm(self, mat2)
    def mv(self, vec): return _ops.mv(self, vec)
    def dot(self, other): return _ops.dot(self, other)
    def vdot(self, other): return _ops.vdot(self, other)
    def inner(self, other): return _ops.inner(self, other)
    def outer(self, other): return _ops.outer(self, other)
    ger = outer
    def addmm(self, mat1, mat2, *, beta=1, alpha=1): return _ops.addmm(self, mat1, mat2, beta=beta, alpha=alpha)
    def baddbmm(self, b1, b2, *, beta=1, alpha=1): return _ops.baddbmm(self, b1, b2, beta=beta, alpha=alpha)
    def addbmm(self, b1, b2, *, beta=1, alpha=1): return _ops.addbmm(self, b1, b2, beta=beta, alpha=alpha)
    def addmv(self, mat, vec, *, beta=1, alpha=1): return _ops.addmv(self, mat, vec, beta=beta, alpha=alpha)
    def addr(self, v1, v2, *, beta=1, alpha=1): return _ops.addr(self, v1, v2, beta=beta, alpha=alpha)
    def addmm_(self, mat1, mat2, *, beta=1, alpha=1):
        return _ops.inplace_(self, "addmm_", lambda t: _ops.addmm(t, mat1, mat2, beta=beta, alpha=alpha))
    def cross(self, *args, **kw): return _ops.cross(self, *args, **kw)
    def kron(self, other): return _ops.kron(self, other)
    def scatter(self, *args, **kw): return _ops.scatter(self, *args, **kw)
    def scatter_(self, *args, **kw): return _ops.scatter_(self, *args, **kw)
    def scatter_add(self, *args, **kw): return _ops.scatter_add(self, *args, **kw)
    def scatter_add_(self, *args, **kw): return _ops.scatter_add_(self, *args, **kw)
    def scatter_reduce(self, *args, **kw): return _ops.scatter_reduce(self, *args, **kw)
    def scatter_reduce_(self, *args, **kw): return _ops.scatter_reduce_(self, *args, **kw)
    def index_add(self, *args, **kw): return _ops.index_add(self, *args, **kw)
    def index_add_(self, *args, **kw): return _ops.index_add_(self, *args, **kw)
    def index_copy(self, *args, **kw): return _ops.index_copy(self, *args, **kw)
    def index_copy_(self, *args, **kw): return _ops.index_copy_(self, *args, **kw)
    def index_fill(self, *args, **kw): return _ops.index_fill(self, *args, **kw)
    def index_fill_(self, *args, **kw): return _ops.index_fill_(self, *args, **kw)
    def masked_scatter(self, mask, source): return _ops.masked_scatter(self, mask, source)
    def index_put(self, indices, values, accumulate=False): return _ops.index_put(self, indices, values, accumulate)
    def index_put_(self, indices, values, accumulate=False): return _ops.index_put_(self, indices, values, accumulate)
    def take(self, index): return _ops.take(self, index)
    def put(self, index, source, accumulate=False): return _ops.put(self, index, source, accumulate)
    def put_(self, index, source, accumulate=False): return _ops.put_(self, index, source, accumulate)
    def masked_scatter_(self, mask, source): return _ops.masked_scatter_(self, mask, source)
    def det(self): return _ops.det(self)
    def logdet(self): return _ops.logdet(self)
    def slogdet(self): return _ops.slogdet(self)
    def inverse(self): return _ops.inverse(self)
    def cholesky(self, upper=False): return _ops.cholesky(self, upper=upper)
    def cholesky_solve(self, L, upper=False): return _ops.cholesky_solve(self, L, upper)
    def cholesky_inverse(self, upper=False): return _ops.cholesky_inverse(self, upper)
    def qr(self, some=True): return _ops.legacy_qr(self, some)
    def svd(self, some=True, compute_uv=True): return _ops.legacy_svd(self, some, compute_uv)
    def pinverse(self, rcond=1e-15): return _ops.pinverse(self, rcond)
    def matrix_power(self, n): return _ops.matrix_power(self, n)
    def matrix_exp(self): return _ops.matrix_exp(self)

    # --- tensor surface: conversions, printing, aliases ---
    def half(self):
        try:
            self.xp.dtype(np.dtype("float16"))
        except KeyError:
            raise TypeError(f"half: device {self.device!r} has no float16 dtype (array-api-strict has none); "
                            "use float32 there") from None
        return self.to(dtype=np.float16)

    def char(self): return self.to(dtype=np.int8)
    def byte(self): return self.to(dtype=np.uint8)
    def short(self): return self.to(dtype=np.int16)
    def cfloat(self): return self.to(dtype=np.complex64)
    def cdouble(self): return self.to(dtype=np.complex128)

    def type(self, dtype=None, non_blocking=False, **kwargs):
        """``t.type()``: the legacy type name ('xbp.FloatTensor'); ``t.type(dtype)``: `t` converted
        to a dtype or a legacy type (``xbp.LongTensor``, 'torch.LongTensor'), differentiably."""
        if dtype is None:
            return _legacy_types.type_name(self)
        dt = _legacy_types.legacy_dtype(dtype)
        device = None
        if isinstance(dtype, str):
            if dt is None:
                raise ValueError(f"type: unknown tensor type {dtype!r}; use e.g. 'xbp.FloatTensor', "
                                 "'xbp.LongTensor' or a dtype such as xbp.float32")
            # 'xbp.cuda.FloatTensor' names a GPU type, 'xbp.FloatTensor' a CPU one (as in PyTorch)
            device = "cuda" if ".cuda." in dtype else ("cpu" if self.device.type == "cuda" else None)
        dt = _backend.canonical_dtype(dtype) if dt is None else dt
        if dt == self.dtype and (device is None or self.device.type == device):
            return self                     # already of that type: the tensor itself, as PyTorch
        return self.to(device=device, dtype=dt) if device is not None else self.to(dtype=dt)

    @property
    def is_cuda(self) -> builtins.bool:
        return self.xp.device.type == "cuda"

    @property
    def is_cpu(self) -> builtins.bool:
        return self.xp.device == "cpu"

    def is_complex(self) -> builtins.bool:
        return self.dtype.kind == "c"

    def element_size(self) -> builtins.int:
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def itemsize(self) -> builtins.int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> builtins.int:
        return self.numel() * self.dtype.itemsize

    def nelement(self) -> builtins.int:
        return self.numel()

    def ndimension(self) -> builtins.int:
        return self.array.ndim

    def is_contiguous(self, memory_format=None) -> builtins.bool:
        # xbp has no strides at its surface: every tensor reads as contiguous (contiguous() is a no-op)
        return True

    def __contains__(self, element):
        """``v in t``: whether any element equals `v` (a number or a broadcastable tensor)."""
        return bool(_ops.any(_ops.eq(self, element)).item())

    def uniform_(self, from_=0.0, to=1.0, *, generator=None):
        """Fill in place with uniform samples in [``from_``, ``to``) (from `generator`, an
        xbp.Generator, if given)."""
        return self.copy_(_random_fill(self, "uniform_", generator, from_, to))

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill in place with samples from N(mean, std^2) (from `generator`, if given)."""
        return self.copy_(_random_fill(self, "normal_", generator, mean, std))


    # --- autograd extension ---

    # --- the Array API standard (xbp/array_api.py) ---
    def __array_namespace__(self, *, api_version=None):
        """The Array API namespace of xbp tensors (`xbp.array_api`), for code written against
        the standard (`array_api_compat.array_namespace(t)` returns it)."""
        ns = _array_api
        if api_version is not None and api_version not in ns.SUPPORTED_VERSIONS:
            raise ValueError(f"__array_namespace__: api_version {api_version!r} is not supported; "
                             f"xbp implements {', '.join(ns.SUPPORTED_VERSIONS)}")
        return ns

    def to_device(self, device, /, *, stream=None):
        """The standard's spelling of `.to(device)`."""
        return self.to(device)

    def __complex__(self):
        return complex(self.item())

    def __ipow__(self, o): return _ops.inplace_(self, "pow_", lambda t: _ops.pow(t, o))
    def __ifloordiv__(self, o): return _ops.inplace_(self, "floor_divide_", lambda t: _ops.floor_divide(t, o))
    def __imod__(self, o): return _ops.inplace_(self, "remainder_", lambda t: _ops.remainder(t, o))
    def __imatmul__(self, o): return _ops.inplace_(self, "matmul_", lambda t: _ops.matmul(t, o))
    def __iand__(self, o): return _ops.inplace_(self, "bitwise_and_", lambda t: t & o)
    def __ior__(self, o): return _ops.inplace_(self, "bitwise_or_", lambda t: t | o)
    def __ixor__(self, o): return _ops.inplace_(self, "bitwise_xor_", lambda t: t ^ o)
    def __ilshift__(self, o): return _ops.inplace_(self, "bitwise_left_shift_", lambda t: t << o)
    def __irshift__(self, o): return _ops.inplace_(self, "bitwise_right_shift_", lambda t: t >> o)


def _bitwise(name, logical, a, b):
    """`a & b` etc.: the logical op for bool operands, the standard's bitwise op for integers."""
    da = a.dtype if isinstance(a, Tensor) else None
    db = b.dtype if isinstance(b, Tensor) else None
    if (da is None or da == np.bool_) and (db is None or db == np.bool_) and not (
            isinstance(a, int) and a.__class__ is not bool or isinstance(b, int) and b.__class__ is not bool):
        return logical(a, b)
    return getattr(_array_api, name)(a, b)


def _random_fill(t, op, generator, a, b) -> "Tensor":
    """Samples for `uniform_` / `normal_` of `t`'s shape, dtype and device, as a new tensor."""
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: needs a floating-point tensor, got dtype {t.dtype}")
    rng = _random.native_rng(generator, t.xp, op)
    draw = t.xp.random_uniform if op == "uniform_" else t.xp.random_normal
    return _wrap(draw(t.array.shape, t.dtype, float(a), float(b), rng=rng), t.xp)


def _legacy_data(args, device):
    """The array of a legacy ``Tensor(...)`` call: sizes, a Size, a sequence of numbers, nothing."""
    b = _backend.get_backend(device)
    dt = b.dtype(_creation.DEFAULT_FLOAT[0])
    if len(args) == 1 and isinstance(args[0], Size):
        args = tuple(args[0])
    elif len(args) == 1 and not hasattr(args[0], "__index__"):
        host = np.asarray(args[0])
        if host.dtype == object or host.dtype.kind not in "biuf":
            raise TypeError(f"Tensor(): cannot build a tensor from {type(args[0]).__name__}; pass a "
                            "(nested) list of numbers, sizes as ints, or a NumPy/CuPy array")
        return b.from_numpy(host.astype(_creation.DEFAULT_FLOAT[0]))
    shape = tuple(_op_args.check_size("Tensor()", s, "size") for s in args) if args else (0,)
    return b.zeros(shape, dtype=dt)


def _shape_args(args):
    """Accept both f(2, 3) and f((2, 3))."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


class _HookHandle:
    __slots__ = ("hooks", "fn")

    def __init__(self, hooks, fn):
        self.hooks, self.fn = hooks, fn

    def remove(self):
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


def _rebuild(device, array, requires_grad):
    b = _backend.get_backend(device)
    return _wrap(b.from_numpy(np.asarray(array)), b, requires_grad)


def _wrap(data, xp, requires_grad=False, grad_fn=None) -> Tensor:
    """Fast constructor used by the graph machinery: no type inspection."""
    if data.__class__ in _NP_SCALARS:
        # NumPy ops on 0-d arrays return NumPy scalars, which are immutable (no in-place ops,
        # no setitem, no DLPack): keep every tensor's data a real array
        data = np.asarray(data)
    t = Tensor.__new__(Tensor)
    t.array = data
    t.xp = xp
    t.requires_grad = requires_grad
    t.grad_fn = grad_fn
    t.grad = None
    t._version = [0]
    t._accum = None
    t._hooks = None
    t._base = None
    t._view = None
    t._retain = False
    return t


# --- the binding: Tensor's methods meet the layers above -------------------------------------------
# The operators and methods above call these modules at run time, and every one of them imports
# Tensor: so they are imported here, once the class exists, when xbp is imported. This block is the
# one place where xbp's import graph runs upward (tests/test_layering.py allows it here alone).
from . import ops as _ops  # noqa: E402
from .ops import _util as _op_args, elementwise as _elementwise  # noqa: E402  (dim checks; operator bodies)
from . import _engine  # noqa: E402
from . import _creation, _legacy_types, _printing, _random  # noqa: E402
from . import array_api as _array_api  # noqa: E402
