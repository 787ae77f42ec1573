"""The layer examples run briefly and print what they promise: the digits CNN learns (accuracy
well above chance after a few epochs) and the character LSTM's loss falls and it samples text."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run(script, *args, timeout=120):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args], capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_train_digits_cnn_briefly():
    pytest.importorskip("sklearn")
    out = run("train_digits_cnn.py", "--epochs", "3")
    acc = float(re.search(r"final test accuracy: ([0-9.]+)", out).group(1))
    assert acc > 0.85, out


def test_char_lstm_loss_falls_and_it_samples():
    out = run("char_lstm.py", "--steps", "40", "--sample-chars", "60")
    first = float(re.search(r"initial loss ([0-9.]+)", out).group(1))
    final = float(re.search(r"final loss ([0-9.]+)", out).group(1))
    assert first > 3.8 and final < first - 1.0, out
    text = out.split("sample:\n", 1)[1]
    assert text.startswith("Shall I ") and len(text.strip()) >= 60, out
