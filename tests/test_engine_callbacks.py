"""The engine's post-accumulate-grad hooks and end-of-backward callbacks (what DistributedDataParallel
builds on): when they fire, with what, and when they do not."""
import numpy as np
import pytest

import xbp
from xbp import _engine


def _leaf(device, values=(1.0, 2.0, 3.0)):
    return xbp.tensor(np.array(values), device=device, requires_grad=True)


def test_post_accumulate_hook_sees_the_final_gradient(device):
    w = _leaf(device)
    seen = []
    _engine.register_post_accumulate_grad_hook(w, lambda t: seen.append(t.grad.detach().to("cpu").numpy().copy()))
    ((w * w).sum() + (3.0 * w).sum()).backward()      # two uses of w: one call, with the sum
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * np.array([1.0, 2.0, 3.0]) + 3.0)
    (w.sum()).backward()                               # accumulates: the hook sees grad + 1
    assert len(seen) == 2
    np.testing.assert_allclose(seen[1], seen[0] + 1.0)


def test_post_accumulate_hook_skipped_by_grad_and_other_inputs():
    w, v = _leaf("cpu"), _leaf("cpu")
    calls = []
    h = _engine.register_post_accumulate_grad_hook(w, lambda t: calls.append("w"))
    xbp.autograd.grad((w * v).sum(), [w])              # xbp.grad touches no .grad: no hook
    assert calls == []
    (w * v).sum().backward(inputs=[v])                 # only v accumulates
    assert calls == [] and w.grad is None
    h.remove()
    (w * v).sum().backward()
    assert calls == []
    with pytest.raises(RuntimeError, match="leaf"):
        _engine.register_post_accumulate_grad_hook(w * 2, lambda t: None)


def test_queue_callback_runs_once_after_backward():
    w = _leaf("cpu")
    order = []

    def hook(t):
        order.append("hook")
        _engine.queue_callback(lambda: order.append(("callback", t.grad.numpy().tolist())))
    _engine.register_post_accumulate_grad_hook(w, hook)
    (w * 2.0).sum().backward()
    assert order == ["hook", ("callback", [2.0, 2.0, 2.0])]
    with pytest.raises(RuntimeError, match="outside a backward"):
        _engine.queue_callback(lambda: None)


def test_queue_callback_dropped_when_backward_raises():
    w = _leaf("cpu")
    ran = []
    y1 = w * 2.0
    y2 = y1 * 3.0
    y2.register_hook(lambda g: _engine.queue_callback(lambda: ran.append(1)))   # runs first: queues

    def boom(g):
        raise ValueError("boom")
    y1.register_hook(boom)                             # runs next: the backward fails
    with pytest.raises(ValueError, match="boom"):
        y2.sum().backward()
    assert ran == [] and not _engine._CALLBACKS and _engine._DEPTH[0] == 0
    (w * 1.0).sum().backward()                         # a later backward starts clean
    assert ran == []
