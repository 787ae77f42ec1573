"""Random number generators as PyTorch has them: `xbp.Generator` objects with their own stream,
and the state of each device's default stream (`get_rng_state` / `set_rng_state`), so a
checkpoint can resume the exact sequence of random numbers.

A Generator belongs to one device and holds that device's native generator (NumPy's PCG64 on the
host for ``cpu`` and ``strict``, CuPy's device generator on ``cuda``); creation functions and
in-place fills take it as ``generator=`` and then draw from it instead of the device's default
stream, which they leave untouched. States are uint8 CPU tensors, as in PyTorch (their bytes are
backend-specific: a state restores a generator of the same device type).
"""
from __future__ import annotations

import os

import numpy as np

from . import _backend
from ._tensor import Tensor, _wrap

_TORCH_DEFAULT_SEED = 67280421310721     # torch.Generator().initial_seed()


class Generator:
    """An independent random stream on one device (``'cpu'``, ``'strict'`` or ``'cuda'``).

    ``g = xbp.Generator().manual_seed(0); xbp.rand(3, generator=g)`` draws from `g` only.
    ``get_state()`` / ``set_state(state)`` save and resume it exactly."""

    __slots__ = ("_backend", "_rng", "_initial_seed")

    def __init__(self, device="cpu"):
        self._backend = _backend.get_backend(device)
        self._rng = None
        self._initial_seed = _TORCH_DEFAULT_SEED

    @property
    def device(self) -> _backend.device:
        """The device whose random numbers this generator draws (``device('cpu')`` by default)."""
        return self._backend.device

    @property
    def native(self):
        """The backend generator draws come from (built at the first use)."""
        if self._rng is None:
            self._rng = self._backend.new_rng(self._initial_seed)
        return self._rng

    def manual_seed(self, seed) -> "Generator":
        """Restart the stream from `seed` (an int in [-2**63, 2**64)); returns the generator."""
        self._initial_seed = _check_seed(seed)
        self._rng = self._backend.new_rng(self._initial_seed)
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy; returns the new seed."""
        s = int.from_bytes(os.urandom(8), "little") >> 1
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed the stream started from."""
        return self._initial_seed

    def get_state(self) -> Tensor:
        """The generator's state as a uint8 CPU tensor (give it to `set_state` to resume)."""
        return _wrap(self._backend.rng_state(self.native), _backend.get_backend("cpu"))

    def set_state(self, new_state) -> "Generator":
        """Resume from a state returned by `get_state` of a generator of this device type."""
        self._backend.set_rng_state(self.native, _state_bytes(new_state, "Generator.set_state"))
        return self

    def __repr__(self):
        return f"<xbp.Generator device='{self.device}' initial_seed={self._initial_seed}>"


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise TypeError(f"manual_seed: seed must be an integer, got {type(seed).__name__} ({seed!r})")
    seed = int(seed)
    if not -(2 ** 63) <= seed < 2 ** 64:
        raise ValueError(f"manual_seed: seed must be in [-2**63, 2**64), got {seed}")
    return seed % 2 ** 64           # PyTorch maps negative seeds the same way


def _state_bytes(state, op):
    if isinstance(state, Tensor):
        a = state.xp.to_numpy(state.array)
    elif isinstance(state, (bytes, bytearray)):
        a = np.frombuffer(bytes(state), dtype=np.uint8)
    else:
        a = np.asarray(state)
    if a.dtype != np.uint8 or a.ndim != 1:
        raise TypeError(f"{op}: expected a 1-d uint8 tensor from get_state()/get_rng_state(), got "
                        f"dtype {a.dtype} and shape {a.shape}")
    return a


class _DefaultStream(Generator):
    """A device's default stream (the one `manual_seed` seeds) seen as a Generator, like
    `torch.default_generator`: seeding or restoring it changes what ``xbp.rand(...)`` draws."""

    __slots__ = ()

    def __init__(self, device="cpu"):
        super().__init__(device)
        self._initial_seed = None

    @property
    def native(self):
        return self._backend.rng

    def manual_seed(self, seed) -> "Generator":
        self._initial_seed = _check_seed(seed)
        self._backend.seed(self._initial_seed)
        return self

    def initial_seed(self) -> int:
        return _backend._SEED[0] if self._initial_seed is None else self._initial_seed

    def __repr__(self):
        return f"<xbp default generator device='{self.device}'>"


default_generator = _DefaultStream("cpu")


def native_rng(generator, backend, op):
    """The native generator a creation function on `backend` draws from: None (the device's own
    stream) without a generator; the generator's, checked to be on that device."""
    if generator is None or generator is default_generator and backend is default_generator._backend:
        return None
    if not isinstance(generator, Generator):
        raise TypeError(f"{op}: generator must be an xbp.Generator, got {type(generator).__name__}")
    if generator._backend is not backend:
        raise RuntimeError(f"{op}: the generator is on {generator.device} but the tensor is on "
                           f"{backend.device}; make it with xbp.Generator(device='{backend.device}')")
    return generator.native


# --- the default streams of the devices ----------------------------------------------------------
def get_rng_state(device="cpu") -> Tensor:
    """The state of `device`'s default stream (the one `manual_seed` seeds) as a uint8 CPU tensor."""
    b = _backend.get_backend(device)
    return _wrap(b.rng_state(b.rng), _backend.get_backend("cpu"))


def set_rng_state(new_state, device="cpu") -> None:
    """Resume `device`'s default stream from a state returned by `get_rng_state`."""
    b = _backend.get_backend(device)
    b.set_rng_state(b.rng, _state_bytes(new_state, "set_rng_state"))


def initial_seed() -> int:
    """The seed last given to `manual_seed` (0 before any call)."""
    return _backend._SEED[0]


def manual_seed(seed) -> Generator:
    """Seed the default stream of every device (reproducible on each device); returns
    `default_generator` (the CPU's stream), as `torch.manual_seed` does."""
    _backend.manual_seed(_check_seed(seed))
    default_generator._initial_seed = None
    return default_generator


def seed() -> int:
    """Seed every device's default stream from the operating system's entropy; returns the seed."""
    s = int.from_bytes(os.urandom(8), "little") >> 1
    manual_seed(s)
    return s


class fork_rng:
    """``with xbp.random.fork_rng(devices=["cpu"]): ...`` restores the default streams of those
    devices (default: cpu) when the block ends, as `torch.random.fork_rng`."""

    def __init__(self, devices=("cpu",), enabled=True):
        self.devices = list(devices)
        self.enabled = enabled

    def __enter__(self):
        if self.enabled:
            self.states = [(d, get_rng_state(d)) for d in self.devices]
        return self

    def __exit__(self, *exc):
        if self.enabled:
            for d, s in self.states:
                set_rng_state(s, d)
        return False
