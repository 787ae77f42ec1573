"""Read the files ``torch.save`` writes (the zip format and the legacy format), safely.

PyTorch's files are pickles whose tensors point into raw storages. This module reads them with
a restricted unpickler: `find_class` hands out xbp's own stand-ins for the reconstruction globals
that PyTorch's ``weights_only=True`` allows (``torch._utils._rebuild_tensor_v2``,
``_rebuild_parameter``, the storage types, dtypes, ``torch.Size``, ``torch.device``,
``collections.OrderedDict``, ``_codecs.encode`` for bytes, ...) plus NumPy's array and scalar
reconstruction, and refuses every other global with an error naming it. Nothing is imported from
the file's names (torch is never imported) and no callable from the file ever runs: the only
callables the pickle can reach are the stand-ins below, which check their arguments and build
inert placeholders; a second pass turns the placeholders into arrays once every storage is read.

Checks beyond PyTorch's: a storage's claimed size must fit in the bytes the file holds, a
tensor's shape, strides and offset must stay inside its storage, an expanded (stride 0) tensor
may not materialise more than `MAX_EXPANDED_BYTES` beyond its storage, and object arrays are
refused.
"""
from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import struct
import zipfile
from collections import Counter, OrderedDict

import numpy as np

__all__ = ["TorchFileError", "is_torch_zip", "is_pickle", "read_torch_file"]

MAX_EXPANDED_BYTES = 1 << 26          # 64 MiB: what a stride-0 view may grow to beyond its storage
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class TorchFileError(ValueError):
    """A torch.save file that is malformed or holds something xbp refuses to rebuild."""


def is_torch_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def is_pickle(data: bytes) -> bool:
    return data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


# --- placeholders and stand-ins (inert: __slots__, and BUILD on them is refused) -----------------------
class _Inert:
    __slots__ = ()

    def __setstate__(self, state):
        raise TorchFileError(f"the pickle tries to set the state of {self!r}, which no torch.save file does")

    def __reduce__(self):
        raise TypeError("not picklable")


class _Marker(_Inert):
    """A named constant from the file: a dtype, a storage type, a layout, Parameter, ndarray."""
    __slots__ = ("name", "np_dtype", "bf16")

    def __init__(self, name, np_dtype=None, bf16=False):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "np_dtype", np_dtype)
        object.__setattr__(self, "bf16", bf16)

    def __setattr__(self, k, v):
        raise TorchFileError(f"the pickle tries to set {k!r} on {self.name}")

    def __repr__(self):
        return self.name


class _StandIn(_Inert):
    """A callable the pickle may REDUCE: one of this module's functions, under its torch name."""
    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fn", fn)

    def __setattr__(self, k, v):
        raise TorchFileError(f"the pickle tries to set {k!r} on {self.name}")

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return self.name


class _Storage(_Inert):
    """One storage: its dtype and element count as the pickle claims them; `data` once read."""
    __slots__ = ("dtype", "bf16", "numel", "location", "data", "base", "offset")

    def __init__(self, dtype, bf16, numel, location):
        self.dtype, self.bf16, self.numel, self.location = dtype, bf16, numel, location
        self.data, self.base, self.offset = None, None, 0

    def array(self) -> np.ndarray:
        if self.base is not None:                        # a legacy storage view
            root = self.base.array()
            return root[self.offset:self.offset + self.numel]
        if self.data is None:
            raise TorchFileError("a tensor's storage is missing from the file")
        return self.data


class _PendingTensor(_Inert):
    __slots__ = ("storage", "offset", "size", "stride", "requires_grad")

    def __init__(self, storage, offset, size, stride, requires_grad=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.requires_grad = requires_grad


class _PendingArray(_Inert):
    """numpy.ndarray being rebuilt: _reconstruct(...) makes it, BUILD gives it its state."""
    __slots__ = ("value",)

    def __init__(self):
        self.value = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise TorchFileError("a NumPy array's pickled state is malformed")
        shape, dtype, fortran, raw = state[-4:]
        dt = dtype.value if isinstance(dtype, _PendingDtype) else None
        if dt is None:
            raise TorchFileError("a NumPy array's dtype is malformed")
        shape = _int_tuple(shape, "NumPy array shape")
        if not isinstance(raw, (bytes, bytearray)):
            raise TorchFileError("a NumPy array's data is not bytes (object arrays are refused)")
        n = math.prod(shape)
        if len(raw) != n * dt.itemsize:
            raise TorchFileError(f"a NumPy array of shape {shape} and dtype {dt} needs {n * dt.itemsize} bytes, "
                                 f"the file gives {len(raw)}")
        self.value = np.frombuffer(bytes(raw), dtype=dt).reshape(shape, order="F" if fortran else "C").copy()


class _PendingDtype(_Inert):
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise TorchFileError("a NumPy dtype's pickled state is malformed")
        if state[1] == ">":
            self.value = self.value.newbyteorder(">")


# --- what the pickle may call ----------------------------------------------------------------------------
def _int_tuple(v, what):
    if not isinstance(v, tuple) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        raise TorchFileError(f"{what} must be a tuple of non-negative integers, got {v!r}"[:200])
    return v


def _check_storage(s, what):
    if not isinstance(s, _Storage):
        raise TorchFileError(f"{what}: expected a storage, got {type(s).__name__}")
    return s


def _rebuild_tensor(storage, storage_offset, size, stride):
    _check_storage(storage, "_rebuild_tensor")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise TorchFileError(f"tensor storage offset {storage_offset!r} is not a non-negative integer")
    size = _int_tuple(tuple(size), "tensor size")
    stride = _int_tuple(tuple(stride), "tensor stride")
    if len(size) != len(stride):
        raise TorchFileError(f"tensor size {size} and stride {stride} have different lengths")
    n = math.prod(size)
    if n:
        last = storage_offset + sum((d - 1) * s for d, s in zip(size, stride))
        if last >= storage.numel:
            raise TorchFileError(f"a tensor of size {size}, stride {stride} at offset {storage_offset} reaches "
                                 f"element {last} of a storage of {storage.numel}")
        item = 2 if storage.bf16 else storage.dtype.itemsize
        if n > storage.numel and n * item > MAX_EXPANDED_BYTES:
            raise TorchFileError(f"a tensor of size {size} expands a storage of {storage.numel} elements to "
                                 f"{n * item} bytes (over xbp's {MAX_EXPANDED_BYTES}-byte limit for expanded views)")
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    t = _rebuild_tensor(storage, storage_offset, size, stride)
    t.requires_grad = bool(requires_grad)
    return t


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None):
    if not isinstance(data, _PendingTensor):
        raise TorchFileError(f"_rebuild_parameter: expected a tensor, got {type(data).__name__}")
    data.requires_grad = bool(requires_grad)
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if not isinstance(func, _StandIn) or not isinstance(args, tuple):
        raise TorchFileError("_rebuild_from_type_v2: malformed arguments")
    return func(*args)


def _torch_size(dims=()):
    return _int_tuple(tuple(dims), "torch.Size")


def _torch_device(kind, index=None):
    if not isinstance(kind, str) or not (index is None or isinstance(index, int)):
        raise TorchFileError(f"torch.device: malformed arguments {kind!r}, {index!r}")
    return kind if index is None else f"{kind}:{index}"


def _get_layout(name):
    if name != "torch.strided":
        raise TorchFileError(f"layout {name!r}: xbp reads only dense (strided) tensors")
    return _Marker(name)


def _codecs_encode(obj, encoding="utf-8"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise TorchFileError(f"_codecs.encode: only (str, 'latin1') is used for bytes, got {type(obj).__name__}, "
                             f"{encoding!r}")
    return obj.encode("latin1")


def _bytearray(data=b"", encoding=None):
    # bytearray(n) would allocate n zero bytes from a number in the file: only data is accepted
    if isinstance(data, str) and encoding in ("latin1", "latin-1"):
        return bytearray(data.encode("latin1"))
    if isinstance(data, (bytes, bytearray)) and encoding is None:
        return bytearray(data)
    raise TorchFileError("builtins.bytearray: only bytes (or a latin1 string) are accepted")


_NUMERIC_KINDS = "biufc"


def _np_dtype_value(spec):
    try:
        dt = np.dtype(spec)
    except TypeError:
        raise TorchFileError(f"NumPy dtype {spec!r} is not a plain numeric dtype") from None
    if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise TorchFileError(f"NumPy dtype {dt} is refused: only numeric and bool arrays are read (no object arrays)")
    return dt


def _np_dtype(spec, align=False, copy=True):
    if not isinstance(spec, str):
        raise TorchFileError(f"numpy.dtype: expected a type code, got {type(spec).__name__}")
    return _PendingDtype(_np_dtype_value(spec))


def _np_reconstruct(cls, shape, typecode):
    if not (isinstance(cls, _Marker) and cls.name == "numpy.ndarray"):
        raise TorchFileError(f"numpy _reconstruct of {cls!r}: only numpy.ndarray is rebuilt")
    return _PendingArray()


def _np_scalar(dtype, data=None):
    dt = dtype.value if isinstance(dtype, _PendingDtype) else None
    if dt is None or not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise TorchFileError("a NumPy scalar's pickled form is malformed (object scalars are refused)")
    return np.frombuffer(bytes(data), dtype=dt)[0]


_STORAGE_DTYPES = {
    "Double": "f8", "Float": "f4", "Half": "f2", "BFloat16": None, "Long": "i8", "Int": "i4", "Short": "i2",
    "Char": "i1", "Byte": "u1", "Bool": "?", "ComplexFloat": "c8", "ComplexDouble": "c16",
}
_TORCH_DTYPES = {
    "float64": "f8", "double": "f8", "float32": "f4", "float": "f4", "float16": "f2", "half": "f2",
    "bfloat16": None, "int64": "i8", "long": "i8", "int32": "i4", "int": "i4", "int16": "i2", "short": "i2",
    "int8": "i1", "uint8": "u1", "bool": "?", "complex64": "c8", "complex128": "c16", "uint16": "u2",
    "uint32": "u4", "uint64": "u8",
}


def _allowed_globals() -> dict:
    g = {
        ("collections", "OrderedDict"): OrderedDict,
        ("collections", "Counter"): Counter,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): _StandIn("builtins.bytearray", _bytearray),
        ("builtins", "complex"): complex,
        ("_codecs", "encode"): _StandIn("_codecs.encode", _codecs_encode),
        ("torch", "Size"): _StandIn("torch.Size", _torch_size),
        ("torch", "device"): _StandIn("torch.device", _torch_device),
        ("torch.serialization", "_get_layout"): _StandIn("torch.serialization._get_layout", _get_layout),
        ("torch._utils", "_rebuild_tensor"): _StandIn("torch._utils._rebuild_tensor", _rebuild_tensor),
        ("torch._utils", "_rebuild_tensor_v2"): _StandIn("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
        ("torch._utils", "_rebuild_parameter"): _StandIn("torch._utils._rebuild_parameter", _rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state"): _StandIn("torch._utils._rebuild_parameter_with_state",
                                                                     _rebuild_parameter),
        ("torch._tensor", "_rebuild_from_type_v2"): _StandIn("torch._tensor._rebuild_from_type_v2",
                                                             _rebuild_from_type_v2),
        ("torch.nn.parameter", "Parameter"): _Marker("torch.nn.parameter.Parameter"),
        ("torch", "Tensor"): _Marker("torch.Tensor"),
        ("numpy", "ndarray"): _Marker("numpy.ndarray"),
        ("numpy", "dtype"): _StandIn("numpy.dtype", _np_dtype),
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        g[(mod, "_reconstruct")] = _StandIn(f"{mod}._reconstruct", _np_reconstruct)
        g[(mod, "scalar")] = _StandIn(f"{mod}.scalar", _np_scalar)
    for kind, code in _STORAGE_DTYPES.items():
        dt = np.dtype("u2") if code is None else np.dtype(code)
        for mod in ("torch", "torch.cuda"):
            g[(mod, f"{kind}Storage")] = _Marker(f"{mod}.{kind}Storage", dt, bf16=code is None)
    for mod, name in (("torch", "UntypedStorage"), ("torch.storage", "UntypedStorage")):
        g[(mod, name)] = _Marker(f"{mod}.{name}", np.dtype("u1"))
    for name, code in _TORCH_DTYPES.items():
        g[("torch", name)] = _Marker(f"torch.{name}", np.dtype("u2") if code is None else np.dtype(code),
                                     bf16=code is None)
    return g


_ALLOWED = _allowed_globals()


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, persistent_load):
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load

    def find_class(self, module, name):
        # protocol 2 names Python 3's modules by their Python 2 names (__builtin__.eval): map them back,
        # as the stock unpickler does, so the check (and the message) sees the real name
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise TorchFileError(
                f"refused to load the global {module}.{name}: xbp rebuilds only tensors, NumPy arrays and plain "
                "containers (the reconstruction globals of PyTorch's weights_only=True), and never runs code "
                "from a file; re-save the file with only state dicts (tensors, numbers, strings, containers)")
        return obj

    def persistent_load(self, pid):
        return self._persistent(pid)


def _storage_spec(storage_type):
    if not isinstance(storage_type, _Marker) or storage_type.np_dtype is None:
        raise TorchFileError(f"a storage's type {storage_type!r} is not a storage type")
    return storage_type.np_dtype, storage_type.bf16


def _count(v, what):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise TorchFileError(f"{what} {v!r} is not a non-negative integer")
    return v


# --- the two file formats --------------------------------------------------------------------------------
def _load_zip(data: bytes):
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = z.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise TorchFileError(f"the zip archive is malformed or truncated ({e})") from None
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise TorchFileError("the zip archive has no (or more than one) <name>/data.pkl: not a torch.save file")
    prefix = pkl[0][: -len("data.pkl")]
    infos = {i.filename: i for i in z.infolist()}
    big_endian = False
    if prefix + "byteorder" in infos:
        order = _read_entry(z, infos[prefix + "byteorder"], min(16, infos[prefix + "byteorder"].file_size))
        if order not in (b"little", b"big"):
            raise TorchFileError(f"unknown byte order {order[:16]!r}")
        big_endian = order == b"big"
    storages: dict = {}

    def persistent_load(pid):
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise TorchFileError(f"unknown persistent id {str(pid)[:80]}")
        _, storage_type, key, location, numel = pid
        dtype, bf16 = _storage_spec(storage_type)
        if not isinstance(key, str) or not isinstance(location, str):
            raise TorchFileError("a storage's key or location is not a string")
        if key in storages:
            return storages[key]
        numel = _count(numel, "storage size")
        info = infos.get(f"{prefix}data/{key}")
        if info is None:
            raise TorchFileError(f"storage {key!r} is missing from the archive")
        item = 2 if bf16 else dtype.itemsize
        if info.file_size < numel * item:
            raise TorchFileError(f"storage {key!r} claims {numel} elements ({numel * item} bytes) but the archive "
                                 f"holds {info.file_size} bytes for it")
        s = _Storage(dtype, bf16, numel, location)
        s.data = _as_array(_read_entry(z, info, numel * item), dtype, numel, big_endian)
        storages[key] = s
        return s
    raw = _read_entry(z, infos[pkl[0]], infos[pkl[0]].file_size)
    return _unpickle(raw, persistent_load)


def _read_entry(z, info, n) -> bytes:
    try:
        with z.open(info) as f:
            out = f.read(n)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as e:
        # (NotImplementedError: a compression method or zip version the zipfile module lacks)
        raise TorchFileError(f"entry {info.filename!r} of the zip archive cannot be read ({e}): truncated or "
                             "corrupt") from None
    if len(out) < n:
        raise TorchFileError(f"entry {info.filename!r} is truncated ({len(out)} of {n} bytes)")
    return out


def _as_array(raw: bytes, dtype, numel, big_endian) -> np.ndarray:
    a = np.frombuffer(raw, dtype=dtype.newbyteorder(">" if big_endian else "<") if dtype.itemsize > 1 else dtype,
                      count=numel)
    return a.astype(dtype.newbyteorder("="), copy=True)


def _unpickle(raw: bytes, persistent_load, f=None):
    f = io.BytesIO(raw) if f is None else f
    try:
        return _Unpickler(f, persistent_load).load()
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError, struct.error, RecursionError) as e:
        raise TorchFileError(f"the pickle is malformed or truncated ({type(e).__name__}: {str(e)[:160]})") from None


def _load_legacy(data: bytes):
    f = io.BytesIO(data)
    no_storage = (lambda pid: (_ for _ in ()).throw(TorchFileError("unexpected persistent id in a header")))
    magic = _unpickle(b"", no_storage, f)
    if magic != LEGACY_MAGIC:
        raise TorchFileError("a pickle, but not one torch.save wrote (no legacy magic number)")
    if _unpickle(b"", no_storage, f) != LEGACY_PROTOCOL:
        raise TorchFileError("unknown torch.save legacy protocol version")
    sys_info = _unpickle(b"", no_storage, f)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages: dict = {}

    def persistent_load(pid):
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
            raise TorchFileError(f"unknown persistent id {str(pid)[:80]}")
        _, storage_type, root_key, location, numel, view = pid
        dtype, bf16 = _storage_spec(storage_type)
        numel = _count(numel, "storage size")
        if not isinstance(root_key, str) or not isinstance(location, str):
            raise TorchFileError("a storage's key or location is not a string")
        root = storages.get(root_key)
        if root is None:
            root = storages[root_key] = _Storage(dtype, bf16, numel, location)
        if view is None:
            return root
        if not isinstance(view, tuple) or len(view) != 3:
            raise TorchFileError("a storage view's metadata is malformed")
        view_key, offset, size = view
        offset, size = _count(offset, "storage view offset"), _count(size, "storage view size")
        if offset + size > root.numel:
            raise TorchFileError(f"a storage view [{offset}, {offset + size}) exceeds its storage of {root.numel}")
        v = storages.get(view_key)
        if v is None:
            v = storages[view_key] = _Storage(dtype, bf16, size, location)
            v.base, v.offset = root, offset
        return v
    result = _unpickle(b"", persistent_load, f)
    keys = _unpickle(b"", no_storage, f)
    if not isinstance(keys, list):
        raise TorchFileError("the legacy storage key list is malformed")
    for key in keys:
        s = storages.get(key)
        if s is None or s.base is not None:
            raise TorchFileError(f"storage {key!r} is listed but no tensor uses it")
        head = f.read(8)
        if len(head) < 8:
            raise TorchFileError(f"storage {key!r} is truncated")
        (numel,) = struct.unpack("<q" if little else ">q", head)
        if numel != s.numel:
            raise TorchFileError(f"storage {key!r} claims {s.numel} elements in the pickle and {numel} in the data")
        item = 2 if s.bf16 else s.dtype.itemsize
        raw = f.read(numel * item)
        if len(raw) < numel * item:
            raise TorchFileError(f"storage {key!r} claims {numel} elements ({numel * item} bytes) but only "
                                 f"{len(raw)} bytes follow (truncated or oversized claim)")
        s.data = _as_array(raw, s.dtype, numel, not little)
    return result


# --- the second pass: placeholders -> arrays and tensors ------------------------------------------------------
def _materialise(t: _PendingTensor) -> np.ndarray:
    base = t.storage.array()
    if not t.size:
        a = base[t.offset:t.offset + 1].reshape(())
    elif math.prod(t.size) == 0:
        a = np.zeros(t.size, dtype=base.dtype)
    else:
        item = base.dtype.itemsize
        a = np.lib.stride_tricks.as_strided(base[t.offset:], shape=t.size, strides=[s * item for s in t.stride],
                                            writeable=False)
    a = np.array(a, copy=True, order="C")
    if t.storage.bf16:                   # bfloat16 is the top half of a float32: exact
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a


def _finish(obj, make_tensor, make_dtype, memo):
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _PendingTensor):
        out = make_tensor(_materialise(obj), obj.storage.location, obj.requires_grad)
    elif isinstance(obj, _PendingArray):
        if obj.value is None:
            raise TorchFileError("a NumPy array was never given its data")
        out = obj.value
    elif isinstance(obj, _PendingDtype):
        out = obj.value
    elif isinstance(obj, _Marker):
        if obj.name.startswith("torch.") and obj.name[6:] in _TORCH_DTYPES:
            out = make_dtype(obj.name[6:])
        else:
            raise TorchFileError(f"the file holds {obj.name} itself, which xbp does not rebuild")
    elif isinstance(obj, (_Inert, )):
        raise TorchFileError(f"the file holds a bare {type(obj).__name__.strip('_')}, which xbp does not rebuild")
    elif isinstance(obj, dict):
        out = memo[key] = type(obj)() if type(obj) in (dict, OrderedDict, Counter) else dict()
        for k, v in obj.items():
            if isinstance(k, _Inert):
                raise TorchFileError("a dict key is a tensor or array, which xbp does not rebuild")
            out[k] = _finish(v, make_tensor, make_dtype, memo)
        return out
    elif isinstance(obj, list):
        out = memo[key] = []
        out.extend(_finish(v, make_tensor, make_dtype, memo) for v in obj)
        return out
    elif isinstance(obj, tuple):
        out = tuple(_finish(v, make_tensor, make_dtype, memo) for v in obj)
    elif isinstance(obj, (set, frozenset)):
        if any(isinstance(v, _Inert) for v in obj):
            raise TorchFileError("a set holds a tensor or array, which xbp does not rebuild")
        out = obj
    elif obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, bytearray, np.generic)):
        out = obj
    else:
        raise TorchFileError(f"the file holds a {type(obj).__name__}, which xbp does not rebuild")
    memo[key] = out
    return out


def read_torch_file(data: bytes, make_tensor, make_dtype=lambda name: name):
    """Rebuild the object in a torch.save file (bytes `data`).

    `make_tensor(array, location, requires_grad)` turns each tensor (a C-contiguous NumPy copy,
    with the location string torch saved, e.g. "cpu" or "cuda:0") into the caller's tensor;
    `make_dtype(name)` does the same for a dtype object ("float32"). NumPy arrays come back as
    arrays, containers as their types (dict, OrderedDict, list, tuple, set). Raises
    `TorchFileError` for a malformed file and for any global outside the allowed set."""
    if is_torch_zip(data):
        raw = _load_zip(data)
    elif is_pickle(data):
        raw = _load_legacy(data)
    else:
        raise TorchFileError("not a torch.save file (neither a zip archive nor a pickle)")
    try:
        return _finish(raw, make_tensor, make_dtype, {})
    except RecursionError:
        raise TorchFileError("the structure is nested too deeply") from None
