"""Checkpoints: every malformed file is a CheckpointError (nothing else), a digest catches flipped
bits, interrupted saves leave nothing behind, a symlink is written through."""
import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import xbp
from xbp.serialization import CheckpointError, load, save

pytest.importorskip("safetensors")


def _ckpt(tmp_path):
    p = tmp_path / "c.safetensors"
    rng = np.random.default_rng(0)
    obj = {"model": {"w": xbp.tensor(rng.normal(size=(8, 4)).astype(np.float32)), "b": xbp.zeros(4)},
           "epoch": 7, "lr": 0.01, "name": "run", "steps": [1, 2, 3]}
    save(obj, p)
    return p, obj


def _same(a, b):
    if isinstance(a, xbp.Tensor):
        return isinstance(b, xbp.Tensor) and a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_every_bit_flip_is_caught_or_harmless(tmp_path):
    p, obj = _ckpt(tmp_path)
    data = bytearray(p.read_bytes())
    rng = np.random.default_rng(1)
    q = tmp_path / "flip.safetensors"
    caught = harmless = 0
    positions = list(rng.integers(0, len(data), 300)) + list(range(8, min(len(data), 8 + 400), 3))
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        q.write_bytes(bytes(flipped))
        try:
            back = load(q)
        except CheckpointError:
            caught += 1
            continue
        assert _same(back, obj), f"flip at byte {pos} changed the loaded values silently"
        harmless += 1                              # e.g. a flip in the header's space padding
    assert caught > 0.9 * len(positions), (caught, harmless)


def test_truncations_are_checkpoint_errors(tmp_path):
    p, _ = _ckpt(tmp_path)
    data = p.read_bytes()
    q = tmp_path / "t.safetensors"
    for n in list(range(0, 40)) + list(range(40, len(data), 37)):
        q.write_bytes(data[:n])
        with pytest.raises(CheckpointError):
            load(q)


def _file_with_header(tmp_path, header: bytes, body=b""):
    q = tmp_path / "h.safetensors"
    q.write_bytes(struct.pack("<Q", len(header)) + header + body)
    return q


def test_malformed_headers_and_metadata(tmp_path):
    deep = ("[" * 100000 + "]" * 100000).encode()
    cases = [deep, b'{"a": 1}', b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": "x"}}', b"[1, 2]",
             json.dumps({"__metadata__": {"xbp": "{\"D\": [[1]]}"}}).encode(),
             json.dumps({"__metadata__": {"xbp": "{\"T\": 5}"}}).encode(),
             json.dumps({"__metadata__": {"xbp": "[" * 50000 + "]" * 50000}}).encode(),
             json.dumps({"__metadata__": {"xbp": "{\"Q\": 1}"}}).encode(),
             json.dumps({"__metadata__": 7}).encode()]
    for h in cases:
        with pytest.raises(CheckpointError):
            load(_file_with_header(tmp_path, h))


def test_files_of_other_formats_say_what_they_are(tmp_path):
    q = tmp_path / "m.pt"
    q.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(CheckpointError, match="torch.save.*safetensors.torch.save_file"):
        load(q)
    q.write_bytes(b"\x80\x02" + b"\x00" * 100)
    with pytest.raises(CheckpointError, match="pickle"):
        load(q)
    h = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    with pytest.raises(CheckpointError, match="bfloat16.*float32"):
        load(_file_with_header(tmp_path, h, b"\x00" * 4))


def test_a_real_torch_save_file_loads_and_a_broken_one_is_named(tmp_path):
    # torch.save files are read by the restricted unpickler (tests/test_serialization_torch.py);
    # one that cannot be read says it looks like a torch.save file
    torch = pytest.importorskip("torch")
    q = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, q)
    assert load(q)["w"].tolist() == [1.0, 1.0]
    q.write_bytes(q.read_bytes()[:60])
    with pytest.raises(CheckpointError, match="torch.save"):
        load(q)


def test_files_without_a_digest_still_load(tmp_path):
    from safetensors.numpy import save_file
    q = tmp_path / "other.safetensors"
    save_file({"a": np.arange(3, dtype=np.float32)}, str(q))
    assert load(q)["a"].tolist() == [0.0, 1.0, 2.0]


def test_saving_over_a_symlink_writes_through(tmp_path):
    target = tmp_path / "real.safetensors"
    save({"x": 1}, target)
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    save({"x": 2}, link)
    assert link.is_symlink() and load(target)["x"] == 2


def test_errors_name_the_checkpoint_not_a_temporary(tmp_path):
    with pytest.raises(OSError, match="no_such_dir/c.safetensors"):
        save({"x": 1}, tmp_path / "no_such_dir" / "c.safetensors")


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".c.safetensors.{dead}.0123abcd.xbp-tmp"
    stale.write_bytes(b"x" * 10)
    other = tmp_path / "keep.tmp"                      # not xbp's pattern: untouched
    other.write_bytes(b"y")
    save({"x": 1}, tmp_path / "c.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["c.safetensors", "keep.tmp"]


SAVER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
import xbp
big = {{"w%d" % i: xbp.tensor(np.ones((1000, 1000), np.float32)) for i in range(8)}}
print("ready", flush=True)
while True:
    xbp.save(big, {path!r})
"""


def test_kill_9_during_saves_leaves_only_the_checkpoint(tmp_path):
    path = str(tmp_path / "c.safetensors")
    root = os.path.dirname(os.path.dirname(xbp.__file__))
    for k in range(6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER.format(root=root, path=path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while k == 0 and not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)                           # one complete save first (a loaded machine is slow)
        time.sleep(0.15 + 0.1 * k)                     # then somewhere inside a later save
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        # the next save (any process) cleans what a killed one may have left
        save({"x": k}, tmp_path / "other.safetensors")
        assert sorted(os.listdir(tmp_path)) in (["c.safetensors", "other.safetensors"], ["other.safetensors"])
    assert len(load(path)) == 8                        # the last complete checkpoint is intact
