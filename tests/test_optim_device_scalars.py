"""Optimizer updates with their learning rate and step counts as 0-d float64 arrays, as a captured
CUDA graph hands them over (xbp/_cuda_graph.py `_DeviceScalars`: values that change between replays
must live in device memory, PyTorch's ``capturable``).

A 0-d array is never a weak scalar (NumPy 2's NEP 50, and CuPy 14's type rules,
cupy/_core/_kernel.pyx): ``float64_0d * float32_array`` is a float64 array, where eager's Python
float leaves it float32. Unless the update casts its scalars to the parameter's dtype where they
meet an array, a captured step computes in float64 temporaries (twice the memory traffic) and
drifts from the eager step. Here, on NumPy (the same promotion rule), a step with array scalars
must equal the eager step bit for bit. (NAdam and RAdam are not here: a graph refuses them, since
NAdam replaces its host state mu_product on every step and RAdam branches on the step count.)"""
import numpy as np
import pytest

import xbp
import xbp.optim as optim
from xbp.optim import optimizer as _opt

CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
    (optim.Adam, dict(lr=1e-2)),
    (optim.Adam, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    (optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    (optim.Adamax, dict(lr=1e-2, weight_decay=0.1)),
    (optim.RMSprop, dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1)),
    (optim.Adagrad, dict(lr=1e-1, lr_decay=0.01, weight_decay=0.1)),
]


def _array_scalars(opt, group, sts, hyper, states):
    """The capture hook's contract, on the host: lr and the step counts as 0-d float64 arrays."""
    hyper = dict(hyper, lr=np.asarray(float(hyper["lr"])))
    if "step" in states:
        states = dict(states, step=[np.asarray(float(s)) for s in states["step"]])
    return hyper, states


def _run(cls, kw, hook, monkeypatch):
    rng = np.random.default_rng(0)
    w = xbp.tensor(rng.standard_normal((5, 7)).astype(np.float32), requires_grad=True)
    b = xbp.tensor(rng.standard_normal(7).astype(np.float32), requires_grad=True)
    opt = cls([w, b], fused=False, **kw)         # fused=False: the per-algorithm update functions
    x = xbp.tensor(rng.standard_normal((4, 5)).astype(np.float32))
    monkeypatch.setattr(_opt, "CAPTURE_HOOK", [hook])
    for _ in range(4):
        opt.zero_grad()
        ((x @ w + b) ** 2).sum().backward()
        opt.step()
    monkeypatch.setattr(_opt, "CAPTURE_HOOK", [None])
    return w.detach().numpy(), b.detach().numpy()


@pytest.mark.parametrize("cls,kw", CASES, ids=lambda v: v.__name__ if isinstance(v, type) else "-".join(v))
def test_a_step_with_array_scalars_equals_the_eager_step_bit_for_bit(cls, kw, monkeypatch):
    eager = _run(cls, kw, None, monkeypatch)
    arrays = _run(cls, kw, _array_scalars, monkeypatch)
    for e, a in zip(eager, arrays):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, e)
