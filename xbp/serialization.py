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

import hashlib
import json
import math
import os
import re
import secrets
import struct

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
    metadata["xbp_digest"] = _digest(metadata, tensors)
    _atomic_write(path, stn.save(tensors, metadata=metadata))


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
            h.update(memoryview(a).cast("B"))
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
    try:
        return _load_bytes(stn, data, path, backend)
    except CheckpointError:
        raise
    except (RecursionError, TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
        # anything a malformed header or structure can provoke: one error type for every bad file
        raise CheckpointError(f"xbp.load: {os.fspath(path)!r} is malformed ({type(e).__name__}: "
                              f"{str(e)[:200]})") from None


_TORCH_HINT = ("xbp reads safetensors files; in PyTorch, write one with "
               "safetensors.torch.save_file(model.state_dict(), path)")


def _load_bytes(stn, data: bytes, path, backend):
    shown = repr(os.fspath(path))
    if data[:4] == b"PK\x03\x04":
        raise CheckpointError(f"xbp.load: {shown} is a zip archive, as torch.save writes (pickled Python "
                              f"objects, which xbp never unpickles); {_TORCH_HINT}")
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise CheckpointError(f"xbp.load: {shown} is a Python pickle (torch.save's legacy format, or "
                              f"pickle.dump); xbp never unpickles files; {_TORCH_HINT}")
    header = _read_header(data, path)
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
        return _decode(structure, arrays, backend)
    order = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    return {k: _wrap(backend.from_numpy(arrays[k]), backend) for k in order}
