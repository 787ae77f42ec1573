"""xbp.save/xbp.load: paths and file objects, NumPy arrays, bytes, OrderedDicts, map_location in
PyTorch's forms; files written by real torch 2.13 (zip and legacy formats) read safely; hostile
pickles (an os.system reduce, eval/exec and getattr reduces, oversized storage claims, tensors
reaching past their storage, truncated zips) refused with CheckpointError before anything runs."""
import io
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import xbp
from xbp import nn, optim
from xbp.serialization import CheckpointError, load, save
from conftest import to_np


def _dev(device):
    """The device a tensor made on `device` reports (\"cuda\" -> \"cuda:0\")."""
    return xbp._backend.get_backend(device).device

pytest.importorskip("safetensors")


def _nested(device):
    rng = np.random.default_rng(0)
    return {
        "w": xbp.tensor(rng.normal(size=(3, 2)).astype(np.float32), device=device),
        "arr": rng.normal(size=(2, 3)),
        "ints": np.arange(4, dtype=np.int16),
        "mask": np.array([True, False]),
        "blob": b"\x00\xffbytes",
        "od": OrderedDict([("z", 1), ("a", xbp.arange(3, device=device))]),
        "keys": {7: "int", 2.5: "float", True: "bool", None: "none"},
        "seq": [1, 2.5, None, "s", (xbp.ones(2, device=device), np.float32(3.0)), float("inf")],
    }


def _check(got, device):
    want = _nested("cpu")
    assert to_np(got["w"]).tolist() == to_np(want["w"]).tolist() and got["w"].device == _dev(device)
    assert isinstance(got["arr"], np.ndarray) and np.array_equal(got["arr"], want["arr"])
    assert got["ints"].dtype == np.int16 and got["mask"].dtype == np.bool_
    assert got["blob"] == b"\x00\xffbytes"
    assert type(got["od"]) is OrderedDict and list(got["od"]) == ["z", "a"]
    assert got["keys"] == {7: "int", 2.5: "float", True: "bool", None: "none"}
    assert got["seq"][:4] == [1, 2.5, None, "s"] and isinstance(got["seq"][4], tuple)
    assert got["seq"][5] == float("inf")


def test_round_trip_paths_and_file_objects(device, tmp_path):
    obj = _nested(device)
    save(obj, tmp_path / "a.pt")
    _check(load(tmp_path / "a.pt", map_location=device), device)
    buf = io.BytesIO()
    save(obj, buf)
    buf.seek(0)
    _check(load(buf, map_location=device), device)
    with open(tmp_path / "b.pt", "wb") as f:
        save(obj, f)
    with open(tmp_path / "b.pt", "rb") as f:
        _check(load(f, map_location=_dev(device)), device)
    with open(tmp_path / "b.pt", "r") as f:
        with pytest.raises(TypeError, match="binary mode"):
            load(f)


def test_map_location_dict_and_callable(device, tmp_path):
    save({"a": xbp.ones(2, device=device), "b": xbp.zeros(1)}, tmp_path / "m.pt")
    got = load(tmp_path / "m.pt", map_location={str(_dev(device)): "cpu", "cpu": device})
    assert got["a"].device == xbp.device("cpu") and got["b"].device == _dev(device)
    seen = []

    def fn(t, location):
        seen.append(location)
        return t.to(device)
    got = load(tmp_path / "m.pt", map_location=fn)
    assert sorted(seen) == sorted([str(_dev(device)), "cpu"]) and got["b"].device == _dev(device)
    got = load(tmp_path / "m.pt", map_location=lambda storage, loc: storage)      # PyTorch's idiom
    assert got["a"].device == xbp.device("cpu")
    with pytest.raises(TypeError, match="map_location or device"):
        load(tmp_path / "m.pt", map_location="cpu", device="cpu")
    with pytest.raises(TypeError, match="map_location must be"):
        load(tmp_path / "m.pt", map_location=3)
    with pytest.raises(TypeError, match="pickle_module"):
        load(tmp_path / "m.pt", None, pickle)
    assert load(tmp_path / "m.pt", weights_only=False)["a"].shape == (2,)


def test_optimizer_state_dict_with_numpy_and_nesting_round_trips(tmp_path):
    p = xbp.tensor(np.ones(3), requires_grad=True)
    opt = optim.NAdam([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    obj = {"opt": opt.state_dict(), "extra": [OrderedDict(a=np.eye(2))]}
    save(obj, tmp_path / "o.pt")
    got = load(tmp_path / "o.pt")
    assert got["opt"]["state"][0]["step"] == 1 and got["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert np.array_equal(got["extra"][0]["a"], np.eye(2))


# --- files real torch writes --------------------------------------------------------------------------
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_what_torch_save_writes(torch, zip_format, device, tmp_path):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    obj = {"model": tm.state_dict(), "epoch": 4, "name": "run", "np": np.arange(6.0).reshape(2, 3),
           "param": torch.nn.Parameter(torch.ones(2)), "strided": torch.arange(12.0).reshape(3, 4).t(),
           "bf16": torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16), "half": torch.ones(2, dtype=torch.float16),
           "double": torch.ones(2, dtype=torch.float64),
           "long": torch.tensor([1, -2], dtype=torch.int64), "flag": torch.tensor([True, False]),
           "empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5), "size": torch.Size([2, 3]),
           "dtype": torch.float16, "bytes": b"ab", "tuple": (1, [2, {"k": torch.ones(1)}]),
           "npscalar": np.float64(1.25), "shared": None}
    obj["shared"] = obj["model"]["0.weight"]            # two names for one storage
    p = tmp_path / "t.pt"
    torch.save(obj, p, _use_new_zipfile_serialization=zip_format)
    # (array-api-strict has no float16: the half tensor goes to the cpu there)
    got = load(p, map_location=lambda t, loc: t if t.dtype == xbp.float16 else t.to(device))
    assert type(got["model"]) is OrderedDict and list(got["model"]) == list(tm.state_dict())
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(device)
    model.load_state_dict(got["model"])
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(to_np(model(xbp.tensor(x, device=device))), want, rtol=1e-5, atol=1e-6)
    assert got["epoch"] == 4 and got["name"] == "run" and got["bytes"] == b"ab"
    assert isinstance(got["np"], np.ndarray) and np.array_equal(got["np"], np.arange(6.0).reshape(2, 3))
    assert got["param"].requires_grad and got["param"].device == _dev(device)
    assert to_np(got["strided"]).tolist() == torch.arange(12.0).reshape(3, 4).t().tolist()
    assert got["bf16"].dtype == xbp.float32 and to_np(got["bf16"]).tolist() == [1.5, -2.25, 3.0]
    assert got["half"].dtype == xbp.float16 and got["double"].dtype == xbp.float64 and got["long"].dtype == xbp.int64 and got["flag"].dtype == xbp.bool
    assert got["empty"].shape == (0, 3) and got["scalar"].shape == () and float(got["scalar"].item()) == 2.5
    assert got["size"] == (2, 3) and got["dtype"] == xbp.float16
    assert got["tuple"][0] == 1 and to_np(got["tuple"][1][1]["k"]).tolist() == [1.0]
    assert got["npscalar"] == 1.25
    assert to_np(got["shared"]).tolist() == to_np(got["model"]["0.weight"]).tolist()


def test_torch_optimizer_state_continues_in_xbp(torch, tmp_path):
    torch.manual_seed(0)
    w0 = np.random.default_rng(0).normal(size=(4,))
    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=0.1, amsgrad=True)
    for _ in range(3):
        topt.zero_grad()
        (tw ** 4).sum().backward()
        topt.step()
    torch.save({"w": tw.detach(), "opt": topt.state_dict()}, tmp_path / "ck.pt")
    for _ in range(3):
        topt.zero_grad()
        (tw ** 4).sum().backward()
        topt.step()
    ck = load(tmp_path / "ck.pt")
    w = xbp.tensor(to_np(ck["w"]), requires_grad=True)
    opt = optim.Adam([w], lr=1.0)
    opt.load_state_dict(ck["opt"])
    assert opt.param_groups[0]["lr"] == 0.1 and opt.state[w]["step"] == 3
    for _ in range(3):
        opt.zero_grad()
        (w ** 4).sum().backward()
        opt.step()
    np.testing.assert_allclose(to_np(w), tw.detach().numpy(), rtol=1e-12)


# --- hostile files --------------------------------------------------------------------------------------
class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _zip_with(pkl: bytes, extra=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for k, v in (extra or {}).items():
            z.writestr(f"archive/data/{k}", v)
    return buf.getvalue()


def _legacy_with(main: bytes):
    return (pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2)
            + pickle.dumps({"little_endian": True}, 2) + main + pickle.dumps([], 2))


@pytest.mark.parametrize("evil,refused", [
    (lambda m: _Reduce(os.system, (f"touch {m}",)), r"(os|posix)\.system"),
    (lambda m: _Reduce(eval, (f"open({str(m)!r}, 'w')",)), r"builtins\.eval"),
    (lambda m: _Reduce(exec, (f"open({str(m)!r}, 'w')",)), r"builtins\.exec"),
    (lambda m: _Reduce(getattr, ("x", "upper")), r"builtins\.getattr"),
    (lambda m: {"ok": 1, "bad": [_Reduce(os.system, (f"touch {m}",))]}, r"(os|posix)\.system"),
    (lambda m: _Reduce(pickle.loads, (b"x",)), r"pickle\._?loads"),
    (lambda m: _Reduce(np.load, (str(m),)), r"numpy\.load"),
])
@pytest.mark.parametrize("wrap", ["zip", "legacy", "bare"])
def test_hostile_pickles_are_refused_and_never_run(evil, refused, wrap, tmp_path):
    marker = tmp_path / "pwned"
    pkl = pickle.dumps(evil(marker), protocol=2)
    data = {"zip": _zip_with, "legacy": _legacy_with, "bare": lambda b: b}[wrap](pkl)
    p = tmp_path / "evil.pt"
    p.write_bytes(data)
    with pytest.raises(CheckpointError, match=f"refused to load the global {refused}"):
        load(p)
    with pytest.raises(CheckpointError):
        load(p, weights_only=False)                 # never a way to run it
    assert not marker.exists()


def test_a_lambdas_reduce_cannot_even_be_named(tmp_path):
    # pickle cannot store a lambda by reference; a hand-written GLOBAL naming one is refused
    pkl = b"\x80\x02c__main__\n<lambda>\nq\x00)R."
    (tmp_path / "l.pt").write_bytes(_zip_with(pkl))
    with pytest.raises(CheckpointError, match=r"refused to load the global __main__\.<lambda>"):
        load(tmp_path / "l.pt")


def test_setting_state_on_xbp_stand_ins_is_refused(tmp_path):
    # BUILD on an allowed callable (to change its attributes) is refused, as is any bare stand-in
    pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00}q\x01X\x02\x00\x00\x00fnq\x02K\x01sb."
    (tmp_path / "s.pt").write_bytes(_zip_with(pkl))
    with pytest.raises(CheckpointError, match="tries to set"):
        load(tmp_path / "s.pt")


def _torch_zip(torch, t):
    buf = io.BytesIO()
    torch.save(t, buf)
    return buf.getvalue()


def _rewrite_zip(data, edit):
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, edit(info.filename, src.read(info.filename)))
    return out.getvalue()


def test_oversized_storage_claims_are_refused(torch, tmp_path):
    data = _torch_zip(torch, torch.ones(4))
    p = tmp_path / "o.pt"
    # the pickle claims a billion elements for storage 0 (the archive holds 16 bytes)
    big = _rewrite_zip(data, lambda n, b: re.sub(rb"(Xcpu|X\x03\x00\x00\x00cpu)(q.)K\x04",
                                                 lambda m: m.group(1) + m.group(2) + b"J" + struct.pack("<i", 10 ** 9),
                                                 b, count=1) if n.endswith("data.pkl") else b)
    p.write_bytes(big)
    with pytest.raises(CheckpointError, match="claims 1000000000 elements"):
        load(p)
    # the storage entry is cut short
    p.write_bytes(_rewrite_zip(data, lambda n, b: b[:5] if n.endswith("data/0") else b))
    with pytest.raises(CheckpointError, match="claims 4 elements"):
        load(p)
    # a tensor of 64 elements over the storage of 4
    p.write_bytes(_rewrite_zip(data, lambda n, b: re.sub(rb"K\x00K\x04\x85", b"K\x00K\x40\x85", b)
                               if n.endswith("data.pkl") else b))
    with pytest.raises(CheckpointError, match="reaches element 63 of a storage of 4"):
        load(p)
    # a legacy file whose data is shorter than its storage claims
    buf = io.BytesIO()
    torch.save(torch.ones(4), buf, _use_new_zipfile_serialization=False)
    p.write_bytes(buf.getvalue()[:-8])
    with pytest.raises(CheckpointError, match="claims 4 elements .* only 8 bytes follow"):
        load(p)


def test_expanded_views_are_bounded(tmp_path):
    # a stride-0 view of one float claiming 2**40 elements would allocate terabytes
    pkl = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
           b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x85K\x00\x85"
           b"\x89ccollections\nOrderedDict\n)Rtq\x00R.")
    (tmp_path / "e.pt").write_bytes(_zip_with(pkl, {"0": b"\x00\x00\x80\x3f"}))
    with pytest.raises(CheckpointError, match="expands a storage of 1 elements"):
        load(tmp_path / "e.pt")


def test_truncated_and_corrupt_torch_files_are_checkpoint_errors(torch, tmp_path):
    data = _torch_zip(torch, {"w": torch.ones(3, 3), "n": np.arange(3)})
    p = tmp_path / "t.pt"
    for n in list(range(0, 64, 7)) + list(range(64, len(data), max(1, len(data) // 60))):
        p.write_bytes(data[:n])
        with pytest.raises(CheckpointError):
            load(p)
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3, 3)}, buf, _use_new_zipfile_serialization=False)
    legacy = buf.getvalue()
    for n in range(2, len(legacy), max(1, len(legacy) // 60)):
        p.write_bytes(legacy[:n])
        with pytest.raises(CheckpointError):
            load(p)


def test_object_arrays_and_unknown_persistent_ids_are_refused(tmp_path):
    pkl = pickle.dumps(np.array([1, "x"], dtype=object), protocol=2)
    (tmp_path / "a.pt").write_bytes(_zip_with(pkl))
    with pytest.raises(CheckpointError, match="object"):
        load(tmp_path / "a.pt")
    pkl = b"\x80\x02X\x04\x00\x00\x00evilQ."
    (tmp_path / "b.pt").write_bytes(_zip_with(pkl))
    with pytest.raises(CheckpointError, match="unknown persistent id"):
        load(tmp_path / "b.pt")


def test_random_byte_changes_are_checkpoint_errors_or_harmless(torch):
    rng = np.random.default_rng(0)
    obj = {"m": torch.nn.Linear(3, 2).state_dict(), "n": np.arange(4.0), "b": b"xy", "l": [1, (2, 3)]}
    for zip_format in (True, False):
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
        data = buf.getvalue()
        blobs = [data]
        if zip_format:         # also change the pickle inside the archive (the zip's CRC would catch it)
            blobs.append(zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl"))
        for which, blob in enumerate(blobs):
            for _ in range(250):
                d = bytearray(blob)
                for _ in range(int(rng.integers(1, 4))):
                    d[int(rng.integers(0, len(d)))] = int(rng.integers(0, 256))
                f = bytes(d) if which == 0 else _rewrite_zip(data, lambda n, b: bytes(d) if n.endswith("data.pkl") else b)
                try:
                    got = load(io.BytesIO(f))
                except CheckpointError:
                    continue
                assert isinstance(got, dict)        # a change that still parses gives plain data
