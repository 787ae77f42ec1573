"""Grad mode: whether operations are recorded for autograd (``no_grad``, ``enable_grad``,
``set_grad_enabled``, ``is_grad_enabled``), per thread. It stands beside the Primitive, whose `apply`
reads it, so that every layer above (the ops' in-place and ``out=`` paths, nn, optim) can switch it;
`xbp.autograd` and `xbp` re-export these names."""
from __future__ import annotations

import functools

from ._primitive import GRAD_STATE

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


class set_grad_enabled:
    """Context manager and decorator that turns graph recording on or off."""

    def __init__(self, mode: bool = True):
        # like PyTorch: calling it sets the mode at once (so a bare call works as a function)
        self.mode = bool(mode)
        self.prev = GRAD_STATE.enabled
        GRAD_STATE.enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        GRAD_STATE.enabled = self.prev
        return False

    def __call__(self, fn):
        """As a decorator: undo the mode change made by __init__, and set the mode only while
        `fn` runs."""
        GRAD_STATE.enabled = self.prev
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*a, **k):
            prev = GRAD_STATE.enabled
            GRAD_STATE.enabled = mode
            try:
                return fn(*a, **k)
            finally:
                GRAD_STATE.enabled = prev
        return wrapper


class _GradMode:
    """Context manager and decorator; ``@xbp.no_grad`` and ``@xbp.no_grad()`` both work."""
    mode = True

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __init__(self, fn=None):
        pass

    def __enter__(self):
        self.prev = GRAD_STATE.enabled
        GRAD_STATE.enabled = self.mode
        return self

    def __exit__(self, *exc):
        GRAD_STATE.enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            with type(self)():
                return fn(*a, **k)
        return wrapper


class no_grad(_GradMode):
    """``with xbp.no_grad():`` (or ``@xbp.no_grad()``): record no graph; results need no grad."""
    mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a no_grad block."""
    mode = True


def is_grad_enabled() -> bool:
    """True when operations are recorded for autograd (not inside `no_grad` or ``set_grad_enabled(False)``)."""
    return GRAD_STATE.enabled


# Their public home is xbp.autograd (as torch.no_grad's is torch.autograd.grad_mode): that is the name
# repr, pickle and the API reference show; this module only keeps them below the ops in the layering.
for _f in (set_grad_enabled, no_grad, enable_grad, is_grad_enabled):
    _f.__module__ = "xbp.autograd"
del _f
