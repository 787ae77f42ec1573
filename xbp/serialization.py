"""Checkpoints: ``xbp.save(obj, f)`` and ``xbp.load(f, map_location=None)`` in the safetensors format,
and ``xbp.load`` of the files ``torch.save`` writes.

`obj` is any nesting of Tensors, NumPy arrays, Python numbers, strings, bytes, bools and None in
dicts, OrderedDicts, lists and tuples (module and optimizer state dicts, scheduler state, an
epoch counter...). Tensors and arrays are stored as safetensors tensors (through
``safetensors.numpy``); everything else, and where each tensor sits, is JSON in the header's
``__metadata__["xbp"]``. No pickle in xbp's format: loading one of its files can never run code.
`f` is a path or an open binary file object.

PyTorch's own files (zip and legacy formats) are read by `xbp._torch_pickle`, a restricted
unpickler that rebuilds tensors, NumPy arrays and containers from the reconstruction globals
PyTorch's ``weights_only=True`` allows and refuses anything else, naming it.

Tensor names are the state dict's keys joined by dots, so a module's state dict keeps PyTorch's
names (``0.weight``, ``0.bias``, ...): the file loads in any safetensors reader (e.g.
``safetensors.torch.load_file``) straight into a ``torch.nn`` model with the same layout, and a
file saved by PyTorch's safetensors loads here as a flat ``{name: Tensor}`` dict.

Writes are atomic and leave nothing behind: on Linux the bytes go to an unnamed file in the
target's directory (``O_TMPFILE``), which gets a name only once it is complete and fsync'ed, and is
renamed over the target at once; elsewhere (or where the filesystem lacks O_TMPFILE) to a named
temporary ``.<name>.<pid>.<random>.xbp-tmp``, and temporaries of that pattern whose process is gone
are removed by the next save into the directory. A crash mid-write leaves the previous checkpoint
intact. Saving over a symlink writes through to its target, as ``torch.save`` does.

Integrity: the metadata holds a BLAKE2b digest of the tensors (names, dtypes, shapes, bytes) and
the structure; `load` recomputes it, so a flipped bit in the data or the header is a
`CheckpointError` rather than silently changed weights. Files without a digest (written by other
tools) load as before.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import re
import secrets
import struct
from collections import OrderedDict

import numpy as np

from . import _torch_pickle
from ._backend import DTYPE_NAMES, get_backend
from ._tensor import Tensor, _wrap

__all__ = ["save", "load", "CheckpointError"]

FORMAT_VERSION = 1
INSTALL_HINT = "xbp.save/xbp.load need the safetensors package: pip install safetensors (or pip install 'xbp[io]')"


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt, not a safetensors file, or holds what xbp cannot read."""


def _safetensors():
    try:
        import safetensors.numpy as stn
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return stn


# --- encoding: Python structure <-> JSON with tagged containers --------------------------------------
# Containers and special values are one-key dicts ({"T": tensor name, "d": device}, {"N": NumPy array
# name}, {"D": [[key, value], ...]}, {"O": ...} for OrderedDicts, {"L": [...]}, {"U": [...]} for
# tuples, {"B": base64} for bytes, {"F": "inf"}); plain JSON values stand for themselves. User dicts
# are always tagged, so a tag can never be mistaken for data. Dicts are stored as [key, value]
# pairs so int (and bool, None, float) keys come back as they were.
_KEY_TYPES = (str, int, float, bool, type(None))


def _unique(name, tensors):
    if name in tensors:
        i = 1
        while f"{name}#{i}" in tensors:
            i += 1
        name = f"{name}#{i}"
    return name


def _encode(obj, path, tensors, where):
    if isinstance(obj, Tensor):
        name = _unique(path or "tensor", tensors)
        tensors[name] = np.asarray(obj.xp.to_numpy(obj.array), order="C")   # (ascontiguousarray makes 0-d 1-d)
        return {"T": name, "d": str(obj.device)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc" or obj.dtype.fields is not None:
            raise TypeError(f"xbp.save: the NumPy array at {where or 'the top level'} has dtype {obj.dtype}; "
                            "only numeric and bool arrays can be saved (no object or string arrays, no pickle)")
        name = _unique(path or "array", tensors)
        tensors[name] = np.asarray(obj, order="C").astype(obj.dtype.newbyteorder("="), copy=False)
        return {"N": name}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else {"F": repr(f)}
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (bytes, bytearray)):
        return {"B": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, np.integer):
                k = int(k)
            if not isinstance(k, _KEY_TYPES) or isinstance(k, float) and not math.isfinite(k):
                raise TypeError(f"xbp.save: dict key {k!r} at {where or 'the top level'} is a "
                                f"{type(k).__name__}; only str, int, finite float, bool and None keys can be saved")
            sub = f"{path}.{k}" if path else str(k)
            items.append([k, _encode(v, sub, tensors, sub)])
        return {"O" if isinstance(obj, OrderedDict) else "D": items}
    if isinstance(obj, (list, tuple)):
        enc = [_encode(v, f"{path}.{i}" if path else str(i), tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"L" if isinstance(obj, list) else "U": enc}
    hint = " (wrap arrays with xbp.tensor)" if hasattr(obj, "shape") else ""
    raise TypeError(f"xbp.save: cannot save a {type(obj).__module__}.{type(obj).__name__} at "
                    f"{where or 'the top level'}{hint}; checkpoints hold Tensors, NumPy arrays, numbers, strings, "
                    "bytes, bools, None, and dicts/OrderedDicts/lists/tuples of them (no pickle)")


def _decode(node, arrays, place):
    if isinstance(node, dict):
        tag = next(iter(node), None)
        if tag == "T" and set(node) <= {"T", "d"} and isinstance(node.get("d", "cpu"), str):
            v = node["T"]
            if not isinstance(v, str) or v not in arrays:
                raise CheckpointError(f"xbp.load: the metadata names tensor {v!r}, which the file does not hold")
            return place(arrays[v], node.get("d", "cpu"), False)
        if len(node) != 1:
            raise CheckpointError(f"xbp.load: malformed structure node {str(node)[:80]}")
        v = node[tag]
        if tag == "N":
            if not isinstance(v, str) or v not in arrays:
                raise CheckpointError(f"xbp.load: the metadata names array {v!r}, which the file does not hold")
            return arrays[v]
        if tag == "D":
            return {k: _decode(x, arrays, place) for k, x in v}
        if tag == "O":
            return OrderedDict((k, _decode(x, arrays, place)) for k, x in v)
        if tag == "L":
            return [_decode(x, arrays, place) for x in v]
        if tag == "U":
            return tuple(_decode(x, arrays, place) for x in v)
        if tag == "F":
            return float(v)
        if tag == "B":
            try:
                return base64.b64decode(v.encode("ascii"), validate=True)
            except (ValueError, AttributeError):
                raise CheckpointError("xbp.load: malformed bytes entry in the metadata") from None
        raise CheckpointError(f"xbp.load: unknown structure tag {tag!r}")
    return node


# --- files ---------------------------------------------------------------------------------------------
def save(obj, f, pickle_module=None, pickle_protocol=None, *, _use_new_zipfile_serialization=True) -> None:
    """Write `obj` to `f` (a path, atomically, or a binary file object opened for writing) in the
    safetensors format.

    `obj` is any nesting of Tensors, NumPy arrays (numeric and bool), numbers, strings, bytes,
    bools, None, dicts (str/int/float/bool/None keys), OrderedDicts, lists and tuples: a module's
    or optimizer's state dict, a whole training checkpoint. Example: ``xbp.save({"model":
    model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.pt")``. A module's state
    dict alone keeps PyTorch's tensor names and loads directly into an equivalent torch model
    through ``safetensors.torch.load_file``. PyTorch's `pickle_module`/`pickle_protocol` keywords
    are accepted and must be left at their defaults: xbp never pickles."""
    if pickle_module is not None or pickle_protocol is not None:
        raise TypeError("xbp.save: pickle_module/pickle_protocol are not used (xbp checkpoints are safetensors "
                        "files, never pickles); leave them out")
    stn = _safetensors()
    tensors: dict = {}
    structure = _encode(obj, "", tensors, "")
    metadata = {"format": "pt", "xbp": json.dumps(structure, allow_nan=False),
                "xbp_format": str(FORMAT_VERSION)}
    metadata["xbp_digest"] = _digest(metadata, tensors)
    data = stn.save(tensors, metadata=metadata)
    if hasattr(f, "write"):
        f.write(data)
        flush = getattr(f, "flush", None)
        if flush is not None:
            flush()
    else:
        _atomic_write(f, data)


def _digest(metadata: dict, arrays: dict) -> str:
    """BLAKE2b over the metadata (but the digest itself), each tensor's name, dtype and shape,
    and its bytes: what a flipped bit anywhere in a checkpoint would change."""
    h = hashlib.blake2b(digest_size=32)
    meta = {k: v for k, v in metadata.items() if k != "xbp_digest"}
    layout = [[k, arrays[k].dtype.str, list(arrays[k].shape)] for k in sorted(arrays)]
    h.update(json.dumps([meta, layout], sort_keys=True).encode())
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        if a.size:
            h.update(a.data.cast("B"))
    return "blake2b:" + h.hexdigest()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


_TMP_SUFFIX = ".xbp-tmp"


def _atomic_write(path, data: bytes) -> None:
    """Write `data` to `path` so that any interruption leaves the old file as it was and nothing
    else behind (see the module docstring). Errors name `path`, not a temporary."""
    shown = os.fspath(path)
    target = os.path.realpath(shown)       # through a symlink to its target, as torch.save
    directory = os.path.dirname(target)
    try:
        try:
            mode = os.stat(target).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        _remove_stale_temporaries(directory)
        if not _write_unnamed(target, directory, data, mode):
            _write_named(target, directory, data, mode)
    except OSError as e:
        raise type(e)(e.errno, f"xbp.save: cannot write the checkpoint {shown!r}: {e.strerror or e}") from None
    try:                                   # make the rename itself durable (POSIX; best effort)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _temp_name(target, directory) -> str:
    return os.path.join(directory, f".{os.path.basename(target)}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}")


def _write_all(fd, data: bytes, mode) -> None:
    os.fchmod(fd, mode)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _write_unnamed(target, directory, data: bytes, mode) -> bool:
    """Linux: an O_TMPFILE file has no name until it is complete; then it is linked in and renamed
    over the target straight away. False where the OS or filesystem has no O_TMPFILE."""
    if not _unnamed_files_work(directory):
        return False
    fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, mode)
    try:
        _write_all(fd, data, mode)
        tmp = _temp_name(target, directory)
        os.link(f"/proc/self/fd/{fd}", tmp)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return True


_UNNAMED_OK: dict = {}                     # st_dev -> whether O_TMPFILE + link works there


def _unnamed_files_work(directory) -> bool:
    """Whether an O_TMPFILE file can be made and linked into `directory` (probed once per
    filesystem with an empty file: no O_TMPFILE, a filesystem without it, or a sandbox that
    refuses linking from /proc all fall back to a named temporary)."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return False
    dev = os.stat(directory).st_dev
    ok = _UNNAMED_OK.get(dev)
    if ok is None:
        ok = False
        try:
            fd = os.open(directory, flag | os.O_WRONLY, 0o600)
        except OSError:
            pass
        else:
            probe = _temp_name("probe", directory)
            try:
                os.link(f"/proc/self/fd/{fd}", probe)
                ok = True
                _unlink_quietly(probe)
            except OSError:
                pass
            finally:
                os.close(fd)
        _UNNAMED_OK[dev] = ok
    return ok


def _write_named(target, directory, data: bytes, mode) -> None:
    tmp = _temp_name(target, directory)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            _write_all(fd, data, mode)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise


_TMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}" + re.escape(_TMP_SUFFIX) + "$")


def _remove_stale_temporaries(directory) -> None:
    """Remove xbp's own temporaries left in `directory` by a save whose process is gone (killed
    mid-save where O_TMPFILE is not available)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        m = _TMP_RE.match(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue                       # ours: another thread of this process may be saving
        try:
            os.kill(pid, 0)
            continue                       # that process is alive: maybe still saving
        except ProcessLookupError:
            pass                           # gone: its temporary is garbage
        except OSError:
            continue                       # alive, owned by someone else
        _unlink_quietly(os.path.join(directory, name))


def _unlink_quietly(p) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _read_header(data: bytes, shown) -> dict:
    """Check the safetensors framing ourselves, so a bad file gets a clear message."""
    what = f"xbp.load: {shown} is not a valid safetensors checkpoint"
    if len(data) < 8:
        raise CheckpointError(f"{what}: the file is {len(data)} bytes long (truncated or empty)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError(f"{what}: its header claims {n} bytes but only {len(data) - 8} follow "
                              "(truncated, or not a safetensors file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{what}: its header is not valid JSON (corrupt, or not a safetensors file)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what}: its header is not a JSON object")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CheckpointError(f"{what}: tensor entry {name!r} has no valid data_offsets") from None
    if 8 + n + end > len(data):
        raise CheckpointError(f"{what}: the tensors need {8 + n + end} bytes but the file has {len(data)} "
                              "(truncated: an interrupted copy or download?)")
    return header


def _place_function(map_location, device):
    """``place(array, location, requires_grad) -> Tensor`` for `map_location` (PyTorch's forms: None,
    a device string or xbp.device, a dict {saved location: device}, a callable(tensor, location))."""
    if device is not None and map_location is not None:
        raise TypeError("xbp.load: give map_location or device, not both")
    target = device if map_location is None else map_location
    cache: dict = {}

    def backend(spec):
        key = "" if spec is None else str(spec)
        b = cache.get(key)
        if b is None:
            b = cache[key] = get_backend(None if spec is None else str(spec))
        return b

    def finish(t, requires_grad):
        if requires_grad and t.is_floating_point():
            t.requires_grad_(True)
        return t

    if target is None or isinstance(target, str) or hasattr(target, "type") and not callable(target):
        b = backend(target)                  # a device string, xbp.device or torch.device
        return lambda a, loc, rg: finish(_wrap(b.from_numpy(a), b), rg)
    if isinstance(target, dict):
        mapping = {str(k): v for k, v in target.items()}

        def by_dict(a, loc, rg):
            dst = mapping.get(loc, mapping.get(loc.partition(":")[0]))
            b = backend(dst)
            return finish(_wrap(b.from_numpy(a), b), rg)
        return by_dict
    if callable(target):
        cpu = backend("cpu")

        def by_call(a, loc, rg):
            t = _wrap(cpu.from_numpy(a), cpu)
            out = target(t, loc)
            if out is None:                  # PyTorch: None means "the default placement"
                b = backend(None)
                out = _wrap(b.from_numpy(a), b)
            elif isinstance(out, str) or hasattr(out, "type") and not isinstance(out, Tensor):
                out = t.to(str(out))
            if not isinstance(out, Tensor):
                raise TypeError(f"xbp.load: map_location returned a {type(out).__name__}, not a Tensor")
            return finish(out, rg)
        return by_call
    raise TypeError(f"xbp.load: map_location must be None, a device, a dict or a callable, got "
                    f"{type(target).__name__}")


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, device=None,
         **pickle_load_args):
    """Read a checkpoint: one written by `xbp.save`, any safetensors file, or a file that
    ``torch.save`` wrote (zip or legacy format), from `f` (a path or a binary file object).

    `map_location` places the tensors, as in ``torch.load``: None (the default device), a device
    ("cpu", "cuda", "strict", an xbp.device), a dict ``{saved location: device}`` (e.g.
    ``{"cuda:0": "cpu"}``; unlisted locations go to the default device) or a callable
    ``fn(tensor, location)`` returning the tensor to use (or None for the default placement).
    `device` is the older spelling of a device map_location.

    Returns the saved structure with Tensors in place (NumPy arrays stay arrays); a safetensors
    file written by another library comes back as a flat ``{name: Tensor}`` dict. PyTorch's files
    are read with a restricted unpickler that rebuilds only tensors, NumPy arrays and plain
    containers and refuses any other global, naming it: no code from a file ever runs, so
    ``weights_only=False`` reads exactly what True does. Truncated, corrupt, hostile and unknown
    files raise `CheckpointError`."""
    if pickle_module is not None:
        raise TypeError("xbp.load: pickle_module is not used (xbp never unpickles with a pickle module); leave it out")
    unknown = set(pickle_load_args) - {"encoding"}
    if unknown:
        raise TypeError(f"xbp.load got unexpected keyword argument(s) {sorted(unknown)}")
    if weights_only not in (True, False, None) or mmap not in (True, False, None):
        raise TypeError("xbp.load: weights_only and mmap must be True, False or None")
    place = _place_function(map_location, device)
    try:
        stn, missing = _safetensors(), None
    except ImportError as e:                 # torch.save files need no safetensors
        stn, missing = None, e
    try:
        if hasattr(f, "read"):
            if isinstance(f, io.TextIOBase):
                raise TypeError("xbp.load: the file object must be opened in binary mode ('rb'), not text mode")
            data = f.read()
            path = getattr(f, "name", "<file object>")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("xbp.load: the file object must be opened in binary mode ('rb')")
            data = bytes(data)
        else:
            path = f
            with open(f, "rb") as fh:
                data = fh.read()
    except OSError:
        if missing is not None:
            raise missing from None
        raise
    shown = repr(os.fspath(path)) if isinstance(path, (str, bytes, os.PathLike)) else repr(path)
    if _torch_pickle.is_torch_zip(data) or _torch_pickle.is_pickle(data):
        return _load_torch(data, shown, place)
    if missing is not None:
        raise missing
    try:
        return _load_bytes(stn, data, shown, place)
    except CheckpointError:
        raise
    except (RecursionError, TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
        # anything a malformed header or structure can provoke: one error type for every bad file
        raise CheckpointError(f"xbp.load: {shown} is malformed ({type(e).__name__}: {str(e)[:200]})") from None


_TORCH_HINT = ("to share weights without pickle, write a safetensors file in PyTorch: "
               "safetensors.torch.save_file(model.state_dict(), path)")


def _xbp_dtype(name):
    """A dtype name of the torch file -> the dtype (as `xbp.<name>`), or the name, unknown, as is."""
    return np.dtype(name) if name in DTYPE_NAMES else name


def _load_torch(data: bytes, shown, place):
    kind = "zip" if _torch_pickle.is_torch_zip(data) else "legacy pickle"
    try:
        return _torch_pickle.read_torch_file(data, place, _xbp_dtype)
    except _torch_pickle.TorchFileError as e:
        raise CheckpointError(f"xbp.load: {shown} (a torch.save file? {kind} format) cannot be read safely: {e}. "
                              f"{_TORCH_HINT}") from None
    except (TypeError, ValueError, MemoryError, OverflowError, RecursionError) as e:
        raise CheckpointError(f"xbp.load: {shown} (a torch.save file? {kind} format) cannot be read: "
                              f"{type(e).__name__}: {str(e)[:200]}. {_TORCH_HINT}") from None


def _load_bytes(stn, data: bytes, shown, place):
    header = _read_header(data, shown)
    for name, info in header.items():
        if name != "__metadata__" and isinstance(info, dict) and info.get("dtype") == "BF16":
            raise CheckpointError(f"xbp.load: {shown} stores tensor {name!r} as bfloat16, which NumPy (and so "
                                  "xbp) has no dtype for; convert it to float32 before saving, e.g. "
                                  "{k: v.float() for k, v in state_dict.items()} in PyTorch")
    try:
        arrays = stn.load(data)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types (and numpy's)
        raise CheckpointError(f"xbp.load: {shown} could not be decoded as safetensors: {e}") from None
    # the buffers are read-only views into `data`: own writable copies (optimizers update in place)
    arrays = {k: np.array(v, copy=True) for k, v in arrays.items()}
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"xbp.load: {shown} has a malformed __metadata__ entry")
    if "xbp_digest" in meta and meta["xbp_digest"] != _digest(meta, arrays):
        raise CheckpointError(f"xbp.load: {shown} is corrupt: its contents do not match the digest stored "
                              "when it was saved (a changed byte in the data or the header); restore it "
                              "from a copy")
    if "xbp" in meta:
        try:
            structure = json.loads(meta["xbp"])
        except ValueError:
            raise CheckpointError(f"xbp.load: {shown} has corrupt xbp metadata (not JSON)") from None
        return _decode(structure, arrays, place)
    order = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    return {k: place(arrays[k], "cpu", False) for k in order}
