"""Checkpoints: ``xbp.save(obj, path)`` and ``xbp.load(path, device=None)`` in the safetensors format.

`obj` is a state dict or a nesting of them: dicts (str or int keys), lists and tuples of Tensors,
Python numbers, strings, bools and None (module and optimizer state dicts, scheduler state, an
epoch counter...). Tensors are stored as safetensors tensors (through ``safetensors.numpy``);
everything else, and where each tensor sits, is JSON in the header's ``__metadata__["xbp"]``.
No pickle anywhere: loading a file can never run code.

Tensor names are the state dict's keys joined by dots, so a module's state dict keeps PyTorch's
names (``0.weight``, ``0.bias``, ...): the file loads in any safetensors reader (e.g.
``safetensors.torch.load_file``) straight into a ``torch.nn`` model with the same layout, and a
file saved by PyTorch's safetensors loads here as a flat ``{name: Tensor}`` dict.

Writes are atomic: the bytes go to a temporary file in the target's directory, which is flushed,
fsync'ed and renamed over the target (``os.replace``), so a crash mid-write leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import json
import math
import os
import struct
import tempfile

import numpy as np

from ._backend import get_backend
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
# Containers and special values are one-key dicts ({"T": tensor name}, {"D": [[key, value], ...]},
# {"L": [...]}, {"U": [...]} for tuples, {"F": "inf"}); plain JSON values stand for themselves.
# Dicts are stored as [key, value] pairs so int keys (optimizer state) come back as ints.
def _encode(obj, path, tensors, where):
    if isinstance(obj, Tensor):
        name = path or "tensor"
        if name in tensors:
            i = 1
            while f"{name}#{i}" in tensors:
                i += 1
            name = f"{name}#{i}"
        tensors[name] = np.asarray(obj.xp.to_numpy(obj.array), order="C")   # (ascontiguousarray makes 0-d 1-d)
        return {"T": name}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else {"F": repr(f)}
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, np.integer):
                k = int(k)
            if not isinstance(k, (str, int)):
                raise TypeError(f"xbp.save: dict key {k!r} at {where or 'the top level'} is a "
                                f"{type(k).__name__}; only str and int keys can be saved")
            sub = f"{path}.{k}" if path else str(k)
            items.append([k, _encode(v, sub, tensors, sub)])
        return {"D": items}
    if isinstance(obj, (list, tuple)):
        enc = [_encode(v, f"{path}.{i}" if path else str(i), tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"L" if isinstance(obj, list) else "U": enc}
    hint = " (wrap arrays with xbp.tensor)" if hasattr(obj, "shape") else ""
    raise TypeError(f"xbp.save: cannot save a {type(obj).__module__}.{type(obj).__name__} at "
                    f"{where or 'the top level'}{hint}; checkpoints hold Tensors, numbers, strings, bools, None, "
                    "and dicts/lists/tuples of them (no pickle)")


def _decode(node, arrays, backend):
    if isinstance(node, dict):
        if len(node) != 1:
            raise CheckpointError(f"xbp.load: malformed structure node {str(node)[:80]}")
        (tag, v), = node.items()
        if tag == "T":
            if v not in arrays:
                raise CheckpointError(f"xbp.load: the metadata names tensor {v!r}, which the file does not hold")
            return _wrap(backend.from_numpy(arrays[v]), backend)
        if tag == "D":
            return {k: _decode(x, arrays, backend) for k, x in v}
        if tag == "L":
            return [_decode(x, arrays, backend) for x in v]
        if tag == "U":
            return tuple(_decode(x, arrays, backend) for x in v)
        if tag == "F":
            return float(v)
        raise CheckpointError(f"xbp.load: unknown structure tag {tag!r}")
    return node


# --- files ---------------------------------------------------------------------------------------------
def save(obj, path) -> None:
    """Write `obj` (a state dict, or nested dicts/lists of them) to `path` as safetensors, atomically.

    Example: ``xbp.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
    "ckpt.safetensors")``. A module's state dict alone (``xbp.save(model.state_dict(), p)``) keeps
    PyTorch's tensor names and loads directly into an equivalent torch model."""
    stn = _safetensors()
    tensors: dict = {}
    structure = _encode(obj, "", tensors, "")
    metadata = {"format": "pt", "xbp": json.dumps(structure, allow_nan=False),
                "xbp_format": str(FORMAT_VERSION)}
    _atomic_write(path, stn.save(tensors, metadata=metadata))


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _atomic_write(path, data: bytes) -> None:
    """Write to a temp file next to `path`, fsync, then rename over `path`; on any failure the old
    file stays as it was and the temp file is removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:                                   # make the rename itself durable (POSIX; best effort)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _read_header(data: bytes, path) -> dict:
    """Check the safetensors framing ourselves, so a bad file gets a clear message."""
    what = f"xbp.load: {os.fspath(path)!r} is not a valid safetensors checkpoint"
    if len(data) < 8:
        raise CheckpointError(f"{what}: the file is {len(data)} bytes long (truncated or empty)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError(f"{what}: its header claims {n} bytes but only {len(data) - 8} follow "
                              "(truncated, or not a safetensors file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
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


def load(path, device=None):
    """Read a checkpoint written by `xbp.save` (or any safetensors file) onto `device`
    ("cpu", "cuda", "strict"; None: the default device).

    Returns the saved structure with Tensors in place; a safetensors file written by another
    library comes back as a flat ``{name: Tensor}`` dict. Truncated, corrupt and non-safetensors
    files raise `CheckpointError`."""
    stn = _safetensors()
    backend = get_backend(device)
    with open(path, "rb") as f:
        data = f.read()
    header = _read_header(data, path)
    try:
        arrays = stn.load(data)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types (and numpy's)
        raise CheckpointError(f"xbp.load: {os.fspath(path)!r} could not be decoded as safetensors: {e}") from None
    # the buffers are read-only views into `data`: own writable copies (optimizers update in place)
    arrays = {k: np.array(v, copy=True) for k, v in arrays.items()}
    meta = header.get("__metadata__") or {}
    if "xbp" in meta:
        try:
            structure = json.loads(meta["xbp"])
        except ValueError:
            raise CheckpointError(f"xbp.load: {os.fspath(path)!r} has corrupt xbp metadata (not JSON)") from None
        return _decode(structure, arrays, backend)
    order = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    return {k: _wrap(backend.from_numpy(arrays[k]), backend) for k in order}
