"""``xbp.inference_mode``: PyTorch's inference mode, as grad mode off plus a flag one can query.

What it is in xbp: inside ``inference_mode()`` no graph is recorded (grad mode is off) and
``xbp.is_inference_mode_enabled()`` is True; ``inference_mode(False)`` turns grad mode back on
(as PyTorch's does) and the flag off. Both are per thread, like grad mode.

What it is not (stated, since PyTorch's differs): xbp's tensors carry no "inference tensor" mark
(that would cost a store in every tensor construction, the hot path), so there is no
``Tensor.is_inference()`` and tensors made inside may later be used in recorded computations;
and an ``enable_grad()`` nested inside does turn recording back on (PyTorch keeps recording off).
No speed-up beyond no_grad's is claimed: with grad mode off xbp already records nothing.
"""
from __future__ import annotations

import functools
import threading

from ._primitive import GRAD_STATE

__all__ = ["inference_mode", "is_inference_mode_enabled"]


class _InferenceState(threading.local):
    enabled = False


INFERENCE_STATE = _InferenceState()


def is_inference_mode_enabled() -> bool:
    """Whether the calling thread is inside ``inference_mode()`` (mode=True)."""
    return INFERENCE_STATE.enabled


class inference_mode:
    """Context manager and decorator: ``with xbp.inference_mode():``, ``@xbp.inference_mode()``
    and bare ``@xbp.inference_mode`` all work. mode=False switches inference mode off (and grad
    mode on) inside an enclosing one."""

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if callable(mode):             # bare decorator: @xbp.inference_mode
            self.mode = True
            return self(mode)
        return self

    def __init__(self, mode=True):
        if not callable(mode):
            self.mode = bool(mode)
        self._prev = []

    def __enter__(self):
        self._prev.append((GRAD_STATE.enabled, INFERENCE_STATE.enabled))
        GRAD_STATE.enabled = not self.mode
        INFERENCE_STATE.enabled = self.mode
        return self

    def __exit__(self, *exc):
        GRAD_STATE.enabled, INFERENCE_STATE.enabled = self._prev.pop()
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with inference_mode(mode):
                return fn(*a, **k)
        return wrapper

    def clone(self):
        """A new, unentered context manager with the same mode (PyTorch's context managers have it)."""
        return inference_mode(self.mode)
