"""What every example's command line shares: one-line argument errors (exit 2, no traceback), the
device chosen before anything is built (an explicit --device beats XBP_DEVICE), an output
directory checked before any work, and checkpoints that never replace a good one with a
non-finite model."""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile

import xbp


class Parser(argparse.ArgumentParser):
    """argparse with errors on one line of stderr (exit status 2), no usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(message: str, status: int = 2):
    """Print `message` as one line on stderr and exit."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def positive_float(name):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a finite number > 0, got {text}")
        return v
    return parse


def int_at_least(name, low):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{name} must be >= {low}, got {v}")
        return v
    return parse


def use_device(flag):
    """The device named by --device (else $XBP_DEVICE, else cpu), made the default before any
    tensor or model is built; a one-line error naming where the device came from if it is
    unavailable."""
    if flag:
        source, name = "--device", flag
    elif os.environ.get("XBP_DEVICE"):
        source, name = "XBP_DEVICE", os.environ["XBP_DEVICE"]
    else:
        source, name = "default", "cpu"
    try:
        device = xbp.device(name)
        xbp.set_default_device(device)
        xbp.zeros(1)                      # fails here, in one line, if the device is unavailable
    except (xbp.DeviceError, ValueError, TypeError) as e:
        fail(f"{e} (device {name!r} from {source})")
    return device


def prepare_out_dir(path: str) -> str:
    """Create `path` and prove it is writable now, not after the training."""
    if not path:
        fail("--out must name a directory, got ''")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        fail(f"--out {path!r} is not a writable directory: {e.strerror or e}")
    return path


def non_finite(model, loss=None):
    """Names of the parameters (and 'loss') that hold NaN or inf; empty if all are finite."""
    bad = [] if loss is None or math.isfinite(loss) else ["loss"]
    with xbp.no_grad():
        for name, p in model.named_parameters():
            if not bool(xbp.isfinite(p).all().item()):
                bad.append(name)
    return bad


def save_checkpoint(obj, path, model, loss=None) -> bool:
    """xbp.save(obj, path) unless the model or loss is not finite: then the existing checkpoint
    (the last good one) is kept and the reason printed on stderr. Returns whether it saved."""
    bad = non_finite(model, loss)
    if bad:
        print(f"error: not saving {path}: non-finite values in {', '.join(bad[:5])}"
              f"{' ...' if len(bad) > 5 else ''}; the previous checkpoint (if any) is kept. "
              "Lower --lr or check the data.", file=sys.stderr)
        return False
    xbp.save(obj, path)
    return True
