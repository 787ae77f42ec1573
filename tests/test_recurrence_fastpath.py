"""The NumPy backend's LSTM fast path (Backend.lstm_forward / lstm_backward, preallocated steps
with out= and a one-sweep sigmoid/tanh) against the portable body in xbp/ops/recurrence.py that
strict and the create_graph path run, and both against an LSTM written here in float64 NumPy."""
import numpy as np
import pytest

import xbp
from xbp._backend import get_backend
from xbp.ops import recurrence as R

CPU = get_backend("cpu")


def _data(T, B, H, dtype, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) * scale).astype(dtype)  # noqa: E731
    return f(T, B, 4 * H), f(B, H), f(B, H), f(4 * H, H) / float(np.sqrt(H)), f(T, B, 2 * H)


def _reference(xs, h0, c0, w, g, reverse):
    """Forward and backward of the LSTM steps in float64, step by step (no fused tricks)."""
    xs, h0, c0, w, g = (a.astype(np.float64) for a in (xs, h0, c0, w, g))
    T, H = xs.shape[0], h0.shape[1]
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    order = range(T - 1, -1, -1) if reverse else range(T)
    h, c, Y, saved = h0, c0, np.zeros((T,) + h0.shape[:1] + (2 * H,)), {}
    for t in order:
        a = xs[t] + h @ w.T
        i, f, gg, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        saved[t] = (h, c, i, f, gg, o)
        c = f * c + i * gg
        h = o * np.tanh(c)
        Y[t] = np.concatenate([h, c], axis=1)
    dh, dc, dA = np.zeros_like(h0), np.zeros_like(c0), np.zeros_like(xs)
    for t in reversed(list(order)):
        hp, cp, i, f, gg, o = saved[t]
        dh, dc = dh + g[t, :, :H], dc + g[t, :, H:]
        tc = np.tanh(Y[t, :, H:])
        dc = dc + dh * o * (1 - tc ** 2)
        dA[t] = np.concatenate([dc * gg * i * (1 - i), dc * cp * f * (1 - f), dc * i * (1 - gg ** 2),
                                dh * tc * o * (1 - o)], axis=1)
        dh, dc = dA[t] @ w, dc * f
    return Y, dA, dh, dc


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("T", [1, 5])
def test_lstm_fast_path_matches_portable_body_and_reference(dtype, tol, reverse, T):
    B, H = 3, 4
    xs, h0, c0, w, g = _data(T, B, H, dtype)
    # large pre-activations too: exp(-a) overflows to inf in the fast sigmoid (must give 0, silently)
    xs[0, 0, :] = np.array([-120.0, 95.0] * (2 * H), dtype=dtype)
    Y, ACT, TC = CPU.lstm_forward(xs, h0, c0, w, reverse)
    hs, cs, acts = R._recur_forward(CPU, xs, h0, c0, w, None, "LSTM", reverse)
    Yp = np.concatenate([np.stack(hs), np.stack(cs)], axis=2)
    ACTp, TCp = np.stack([a[0] for a in acts]), np.stack([a[1] for a in acts])
    for got, want in ((Y, Yp), (ACT, ACTp), (TC, TCp)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    dA, dh, dc = CPU.lstm_backward(g, Y, ACT, TC, c0, w, reverse)
    dAp, dhp, dcp = R._lstm_backward(CPU, g, ACTp, TCp, c0, Yp[:, :, H:], w, reverse)
    Yr, dAr, dhr, dcr = _reference(xs, h0, c0, w, g, reverse)
    np.testing.assert_allclose(Y, Yr, rtol=tol, atol=tol)
    for got, port, ref in ((dA, dAp, dAr), (dh, dhp, dhr), (dc, dcp, dcr)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, port, rtol=tol, atol=tol)
        np.testing.assert_allclose(got, ref, rtol=10 * tol, atol=10 * tol)


def test_lstm_fast_path_declines_what_it_does_not_cover():
    xs, h0, c0, w, g = _data(3, 2, 2, np.float32)
    assert CPU.lstm_forward(xs, h0.astype(np.float64), c0, w, False) is NotImplemented
    assert CPU.lstm_forward(xs.astype(np.float16), h0, c0, w, False) is NotImplemented
    assert CPU.lstm_forward(xs[:0], h0, c0, w, False) is NotImplemented
    assert get_backend("strict").lstm_forward is None


@pytest.mark.parametrize("reverse", [False, True])
def test_recurrence_gradients_same_with_and_without_the_fast_path(monkeypatch, reverse):
    """The whole primitive (output, gradients of xs, h0, c0, w_hh, b_hh) through the fast path and
    through the portable body (the fast path switched off on the backend)."""
    xs, h0, c0, w, g = _data(6, 3, 5, np.float64, seed=3)
    b = np.random.default_rng(4).standard_normal(20)

    def run():
        ts = [xbp.tensor(a, requires_grad=True) for a in (xs, h0, c0, w, b)]
        y = R.recurrence("LSTM", ts[0], ts[1], ts[2], ts[3], ts[4], reverse=reverse)
        (y * xbp.tensor(g)).sum().backward()
        return [y.detach().numpy()] + [t.grad.numpy() for t in ts]
    fast = run()
    monkeypatch.setattr(CPU, "lstm_forward", None)
    monkeypatch.setattr(CPU, "lstm_backward", None)
    portable = run()
    for a, p in zip(fast, portable):
        np.testing.assert_allclose(a, p, rtol=1e-12, atol=1e-12)
