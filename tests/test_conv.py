"""Convolution and pooling: forward against direct NumPy loops, float64 gradcheck of every input
and parameter across strides, paddings, dilations and groups, second order, the layers' shapes and
init, the im2col fast path against the portable body, and PyTorch weights through state dicts."""
import math
import tracemalloc

import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp._backend import Backend, get_backend
from xbp.autograd import gradcheck, gradgradcheck

from conftest import raises_checked, rand, to_np


# --- NumPy references: plain loops over output positions ---------------------------------------------
def ref_conv2d(x, w, b, stride, pad, dilation, groups):
    """pad = (top, bottom, left, right)."""
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    pt, pb, pl, pr = pad
    xp = np.zeros((N, C, H + pt + pb, W + pl + pr))
    xp[:, :, pt:pt + H, pl:pl + W] = x
    Ho = (H + pt + pb - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + pl + pr - dw * (kw - 1) - 1) // sw + 1
    Og = O // groups
    out = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            g = o // Og
            for h in range(Ho):
                for v in range(Wo):
                    acc = 0.0
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                acc += w[o, c, i, j] * xp[n, g * Cg + c, h * sh + i * dh, v * sw + j * dw]
                    out[n, o, h, v] = acc + (b[o] if b is not None else 0.0)
    return out


def ref_conv_transpose2d(x, w, b, stride, pad, output_padding, groups, dilation):
    """Scatter each input pixel times the kernel into the (padded) output, then crop."""
    N, Cin, H, W = x.shape
    _, Cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    Ho = (H - 1) * sh - 2 * ph + dh * (kh - 1) + output_padding[0] + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (kw - 1) + output_padding[1] + 1
    full = np.zeros((N, Cg * groups, Ho + 2 * ph, Wo + 2 * pw))
    Ig = Cin // groups
    for n in range(N):
        for ci in range(Cin):
            g = ci // Ig
            for h in range(H):
                for v in range(W):
                    for co in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                r, s = h * sh + i * dh, v * sw + j * dw
                                full[n, g * Cg + co, r, s] += x[n, ci, h, v] * w[ci, co, i, j]
    out = full[:, :, ph:ph + Ho, pw:pw + Wo]
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0.0)


def ref_pool(x, k, s, p, d, ceil_mode, how, count_include_pad=True):
    N, C, H, W = x.shape
    outs = []
    for n_, k_, s_, p_, d_ in ((H, k[0], s[0], p[0], d[0]), (W, k[1], s[1], p[1], d[1])):
        span = n_ + 2 * p_ - d_ * (k_ - 1) - 1
        o = (math.ceil(span / s_) if ceil_mode else span // s_) + 1
        if ceil_mode and (o - 1) * s_ >= n_ + p_:
            o -= 1
        outs.append(o)
    Ho, Wo = outs
    out = np.zeros((N, C, Ho, Wo))
    for h in range(Ho):
        for v in range(Wo):
            vals, cnt = [], 0
            for i in range(k[0]):
                for j in range(k[1]):
                    r, c = h * s[0] + i * d[0] - p[0], v * s[1] + j * d[1] - p[1]
                    inside = 0 <= r < H and 0 <= c < W
                    in_pad = -p[0] <= r < H + p[0] and -p[1] <= c < W + p[1]
                    if inside:
                        vals.append(x[:, :, r, c])
                    if inside or (count_include_pad and in_pad):
                        cnt += 1
            if how == "max":
                out[:, :, h, v] = np.max(np.stack(vals), axis=0)
            else:
                out[:, :, h, v] = np.sum(np.stack(vals), axis=0) / cnt
    return out


def ref_adaptive_avg(x, oh, ow):
    N, C, H, W = x.shape
    out = np.zeros((N, C, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * H) // oh, -((-(i + 1) * H) // oh)
            w0, w1 = (j * W) // ow, -((-(j + 1) * W) // ow)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


# (N, C, H, W, O, kernel, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 5, 5, 4, (3, 3), (1, 1), 0, (1, 1), 1),
    (1, 2, 6, 5, 2, (3, 2), (2, 1), (1, 2), (1, 1), 1),
    (2, 4, 6, 6, 6, (2, 2), (1, 2), 1, (2, 1), 2),
    (1, 4, 5, 5, 4, (3, 3), (1, 1), "same", (2, 2), 4),        # depthwise, dilated "same"
    (1, 2, 4, 5, 3, (2, 3), (1, 1), "same", (1, 1), 1),        # even kernel: asymmetric "same"
    (1, 3, 5, 4, 2, (1, 1), (2, 2), "valid", (1, 1), 1),
]


def _pad4(padding, k, d):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        t = [dd * (kk - 1) for kk, dd in zip(k, d)]
        return (t[0] // 2, t[0] - t[0] // 2, t[1] // 2, t[1] - t[1] // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph, pw, pw)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_matches_loops(device, case):
    N, C, H, W, O, k, s, p, d, g = case
    x, xn = rand((N, C, H, W), device, seed=1)
    w, wn = rand((O, C // g) + k, device, seed=2)
    b, bn = rand((O,), device, seed=3)
    y = F.conv2d(x, w, b, s, p, d, g)
    np.testing.assert_allclose(to_np(y), ref_conv2d(xn, wn, bn, s, _pad4(p, k, d), d, g), atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradcheck(device, case):
    N, C, H, W, O, k, s, p, d, g = case
    x, _ = rand((N, C, H, W), device, seed=1)
    w, _ = rand((O, C // g) + k, device, seed=2)
    b, _ = rand((O,), device, seed=3)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), (x, w, b))


# (N, Cin, H, W, Cout, kernel, stride, padding, output_padding, groups, dilation)
CONVT_CASES = [
    (2, 3, 3, 3, 2, (3, 3), (1, 1), (0, 0), (0, 0), 1, (1, 1)),
    (1, 2, 3, 2, 4, (3, 2), (2, 2), (1, 0), (1, 1), 2, (1, 1)),
    (1, 4, 2, 3, 2, (2, 2), (2, 3), (1, 1), (0, 2), 2, (2, 1)),
    (2, 2, 3, 3, 3, (2, 3), (1, 2), (0, 1), (0, 1), 1, (2, 2)),
]


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose2d_forward_and_gradcheck(device, case):
    N, Cin, H, W, Cout, k, s, p, op, g, d = case
    x, xn = rand((N, Cin, H, W), device, seed=4)
    w, wn = rand((Cin, Cout // g) + k, device, seed=5)
    b, bn = rand((Cout,), device, seed=6)
    fn = lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d)  # noqa: E731
    np.testing.assert_allclose(to_np(fn(x, w, b)), ref_conv_transpose2d(xn, wn, bn, s, p, op, g, d), atol=1e-12)
    assert gradcheck(fn, (x, w, b))


def test_conv_transpose_is_the_adjoint_of_conv(device):
    """<conv(x, w), y> == <x, conv_transpose(y, w)> for the same geometry."""
    x, xn = rand((2, 4, 7, 6), device, seed=7, requires_grad=False)
    w, _ = rand((6, 2, 3, 2), device, seed=8, requires_grad=False)
    y = F.conv2d(x, w, None, 2, 1, (1, 2), 2)
    v, vn = rand(y.shape, device, seed=9, requires_grad=False)
    back = F.conv_transpose2d(v, w, None, 2, 1, (0, 1), 2, (1, 2))
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(to_np(y) * vn), np.sum(xn * to_np(back)), rtol=1e-12)


def test_conv1d_forward_and_gradcheck(device):
    x, xn = rand((2, 4, 7), device, seed=10)
    w, wn = rand((6, 2, 3), device, seed=11)
    b, bn = rand((6,), device, seed=12)
    y = F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2)
    ref = ref_conv2d(xn[:, :, None], wn[:, :, None], bn, (1, 2), (0, 0, 1, 1), (1, 2), 2)[:, :, 0]
    np.testing.assert_allclose(to_np(y), ref, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b, 1, "same", 1, 1), (x[:, :2], w[:2], b[:2]))


def test_conv_gradgradcheck():
    x, _ = rand((1, 2, 4, 4), "cpu", seed=13)
    w, _ = rand((2, 1, 2, 3), "cpu", seed=14)
    b, _ = rand((2,), "cpu", seed=15)
    assert gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, (2, 1), 1, (1, 2), 2), (x, w, b))
    wt, _ = rand((2, 1, 2, 2), "cpu", seed=16)
    assert gradgradcheck(lambda x, w: F.conv_transpose2d(x, w, None, 2, 0, 1, 2), (x, wt))


def test_conv_unbatched_and_errors(device):
    x, xn = rand((3, 5, 5), device, seed=17)
    w, wn = rand((2, 3, 3, 3), device, seed=18)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (2, 5, 5)
    np.testing.assert_allclose(to_np(y), ref_conv2d(xn[None], wn, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)[0], atol=1e-12)
    with pytest.raises(ValueError, match="weight"):
        F.conv2d(x[None, ...], w[:, :2])
    with pytest.raises(ValueError, match="same"):
        F.conv2d(x[None, ...], w, stride=2, padding="same")
    with pytest.raises(ValueError, match="too small"):
        F.conv2d(x[None, :, :2, :2], w)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(x[None, ...].to(dtype=xbp.float32), w)


def test_float32_stays_float32(device):
    conv = nn.Conv2d(2, 3, 3, padding=1, device=device)
    x = xbp.randn(2, 2, 5, 5, device=device, requires_grad=True)
    y = F.max_pool2d(conv(x), 2) + F.avg_pool2d(x[:, :1], 2)
    assert y.dtype == xbp.float32
    y.sum().backward()
    assert x.grad.dtype == xbp.float32 and conv.weight.grad.dtype == xbp.float32


# --- the im2col fast path -----------------------------------------------------------------------------
@pytest.mark.parametrize("k,s,d", [((3, 3), (1, 1), (1, 1)), ((2, 3), (2, 1), (2, 2)), ((1, 2), (3, 2), (1, 3))])
def test_window_columns_fast_path_matches_portable(k, s, d):
    xp = get_backend("cpu")
    x = np.random.default_rng(0).standard_normal((3, 9, 10, 2))          # (A, Hp, Wp, B)
    Ho = (9 - d[0] * (k[0] - 1) - 1) // s[0] + 1
    Wo = (10 - d[1] * (k[1] - 1) - 1) // s[1] + 1
    fast = xp.window_columns(x, k, s, d, (Ho, Wo))
    portable = Backend.window_columns(xp, x, k, s, d, (Ho, Wo))
    assert fast.flags.c_contiguous and fast.shape == (3, k[0], k[1], Ho, Wo, 2)
    np.testing.assert_array_equal(fast, portable)
    i, j, h, w = k[0] - 1, k[1] - 1, Ho - 1, Wo - 1
    np.testing.assert_array_equal(fast[:, i, j, h, w, :], x[:, h * s[0] + i * d[0], w * s[1] + j * d[1], :])
    # also on a non-contiguous input (an NCHW array seen as CHWN, as conv2d passes when there is
    # no padding)
    xt = np.transpose(np.random.default_rng(1).standard_normal((2, 3, 9, 10)), (1, 2, 3, 0))
    np.testing.assert_array_equal(xp.window_columns(xt, k, s, d, (Ho, Wo)),
                                  Backend.window_columns(xp, xt, k, s, d, (Ho, Wo)))


def test_conv_backward_keeps_at_most_one_column_buffer():
    """Backward of a conv whose column buffer dwarfs everything else: the peak allocation during
    backward stays below 1.5 column buffers (the weight gradient's columns are freed before the
    input gradient's are made)."""
    N, C, H, W, O, k = 8, 16, 24, 24, 4, 5
    x = xbp.randn(N, C, H, W, dtype=xbp.float64, requires_grad=True)
    w = xbp.randn(O, C, k, k, dtype=xbp.float64, requires_grad=True)
    y = F.conv2d(x, w, padding=2)
    cols = C * k * k * N * H * W * 8
    g = xbp.ones_like(y)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    y.backward(g)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert x.grad is not None and w.grad is not None
    assert peak - base < 1.5 * cols, (peak - base) / cols


# --- pooling ------------------------------------------------------------------------------------------
POOL_CASES = [  # kernel, stride, padding, dilation, ceil_mode
    ((2, 2), None, (0, 0), (1, 1), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), False),
    ((3, 2), (2, 1), (1, 1), (1, 1), True),
    ((2, 3), (3, 2), (0, 1), (1, 1), True),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d(device, case):
    k, s, p, d, ceil = case
    x, xn = rand((2, 2, 7, 6), device, seed=20)
    fn = lambda x: F.max_pool2d(x, k, s, p, d, ceil)  # noqa: E731
    np.testing.assert_allclose(to_np(fn(x)), ref_pool(xn, k, s or k, p, d, ceil, "max"))
    assert gradcheck(fn, (x,))


def test_max_pool2d_dilation_and_first_maximum_takes_the_gradient(device):
    x, xn = rand((1, 2, 7, 7), device, seed=21)
    fn = lambda x: F.max_pool2d(x, 2, 2, 1, (2, 2))  # noqa: E731
    np.testing.assert_allclose(to_np(fn(x)), ref_pool(xn, (2, 2), (2, 2), (1, 1), (2, 2), False, "max"))
    assert gradcheck(fn, (x,))
    t = xbp.tensor(np.ones((1, 1, 2, 2)), device=device, requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    np.testing.assert_array_equal(to_np(t.grad)[0, 0], [[1.0, 0.0], [0.0, 0.0]])   # as PyTorch


def ref_pool_indices(x, k, s, p, d, ceil_mode):
    """PyTorch's scan: over the window's positions inside the input, row-major, keep the first
    strictly greater value (or any NaN); start at the first inside position with -inf."""
    N, C, H, W = x.shape
    Ho, Wo = ref_pool(x[:1, :1], k, s, p, d, ceil_mode, "max").shape[2:]
    out = np.zeros((N, C, Ho, Wo), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for h in range(Ho):
                for v in range(Wo):
                    best, pos = -np.inf, None
                    for i in range(k[0]):
                        for j in range(k[1]):
                            r, q = h * s[0] + i * d[0] - p[0], v * s[1] + j * d[1] - p[1]
                            if 0 <= r < H and 0 <= q < W:
                                val = x[n, c, r, q]
                                if pos is None:
                                    pos = r * W + q
                                if val > best or np.isnan(val):
                                    best, pos = val, r * W + q
                    out[n, c, h, v] = pos
    return out


@pytest.mark.parametrize("case", POOL_CASES + [((3, 3), (1, 2), (1, 1), (2, 1), False)])
def test_max_pool2d_return_indices(device, case):
    k, s, p, d, ceil = case
    x, xn = rand((2, 2, 7, 6), device, seed=26)
    xn[0, 0, :3, :3] = -np.inf        # an all -inf window points at its first real element
    xn[1, 0, 2, 2] = xn[1, 0, 3, 3] = np.nan
    xn[1, 1, 4, :] = 0.5              # ties: the first maximum
    x = xbp.tensor(xn, device=device)
    y, i = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(to_np(y), ref_pool(xn, k, s or k, p, d, ceil, "max"))
    assert i.dtype == xbp.int64 and i.shape == y.shape and not i.requires_grad
    np.testing.assert_array_equal(to_np(i), ref_pool_indices(xn, k, s or k, p, d, ceil))
    x, xn = rand((2, 2, 7, 6), device, seed=27)
    assert gradcheck(lambda x: F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)[0], (x[:1, :1],))
    y1, i1 = F.max_pool2d(x[0], k, s, p, d, ceil, return_indices=True)      # unbatched (C, H, W)
    np.testing.assert_array_equal(to_np(i1), ref_pool_indices(xn[:1], k, s or k, p, d, ceil)[0])
    y1, i1 = nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil)(x)
    np.testing.assert_array_equal(to_np(i1), ref_pool_indices(xn, k, s or k, p, d, ceil))


def ref_unpool(x, idx, hw):
    N, C = x.shape[:2]
    out = np.zeros((N, C, hw[0] * hw[1]))
    for n in range(N):
        for c in range(C):
            out[n, c, idx[n, c].ravel()] = x[n, c].ravel()
    return out.reshape(N, C, *hw)


@pytest.mark.parametrize("case", [  # kernel, stride, padding, output_size, input (H, W)
    (2, None, 0, None, (7, 6)), ((3, 2), (2, 1), (1, 0), (10, 6), (9, 6)), (3, 2, 1, (1, 1, 7, 6), (7, 6))])
def test_max_unpool2d(device, case):
    k, s, p, size, hw = case
    x, xn = rand((2, 3) + hw, device, seed=28)
    y, i = F.max_pool2d(x, k, s, p, return_indices=True)
    kk, ss, pp = nn.pooling._pair(k), nn.pooling._pair(s or k), nn.pooling._pair(p)
    out_hw = tuple(size[-2:]) if size else tuple((y.shape[2 + a] - 1) * ss[a] + kk[a] - 2 * pp[a] for a in range(2))
    u = F.max_unpool2d(y, i, k, s, p, size)
    assert u.shape == (2, 3) + out_hw
    np.testing.assert_array_equal(to_np(u), ref_unpool(to_np(y), to_np(i), out_hw))
    # non-overlapping windows put every maximum back where it was
    if s is None and size is None:
        np.testing.assert_array_equal(to_np(u), np.where(to_np(u) != 0, xn[:, :, :6, :6], 0.0))
    # differentiable in the input, the gradient a gather at the indices (PyTorch's backward; where
    # overlapping windows repeat an index, one write wins and that is not the forward's derivative)
    flat = to_np(i).reshape(6, -1)
    if all(len(np.unique(r)) == r.size for r in flat):
        assert gradcheck(lambda t: F.max_unpool2d(t, i, k, s, p, size), (y.detach().requires_grad_(),))
    g, gn = rand(u.shape, device, seed=29, requires_grad=False)
    yd = y.detach().requires_grad_()
    F.max_unpool2d(yd, i, k, s, p, size).backward(g)
    np.testing.assert_array_equal(to_np(yd.grad), np.take_along_axis(
        gn.reshape(2, 3, -1), to_np(i).reshape(2, 3, -1), axis=2).reshape(y.shape))
    # unbatched, and the layer
    u1 = F.max_unpool2d(y[1], i[1], k, s, p, size[-2:] if size else None)
    np.testing.assert_array_equal(to_np(u1), to_np(u)[1])
    np.testing.assert_array_equal(to_np(nn.MaxUnpool2d(k, s, p)(y, i, size)), to_np(u))


def test_max_unpool2d_through_max_pool2d_second_order():
    x, _ = rand((1, 2, 6, 5), "cpu", seed=30)
    fn = lambda x: F.max_unpool2d(*F.max_pool2d(x, 2, 2, return_indices=True), 2, 2, output_size=(6, 5))  # noqa: E731
    assert gradcheck(fn, (x,)) and gradgradcheck(fn, (x,))
    y, i = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    yd = y.detach().requires_grad_()
    assert gradgradcheck(lambda t: F.max_unpool2d(t * t, i, 3, 2, 1, (6, 5)), (yd,))


def test_max_unpool2d_errors(device):
    x, _ = rand((1, 2, 4, 4), device, seed=31)
    y, i = F.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="invalid output_size"):
        F.max_unpool2d(y, i, 2, output_size=(6, 4))
    with pytest.raises(ValueError, match="2 or 4 elements"):
        F.max_unpool2d(y, i, 2, output_size=(4,))
    with pytest.raises(ValueError, match="indices must be an integer tensor"):
        F.max_unpool2d(y, y, 2)
    with raises_checked(IndexError, match="outside"):
        F.max_unpool2d(y, i + 100, 2)


def test_max_pool_indices_and_unpool_match_pytorch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(32).standard_normal((2, 3, 9, 8)).astype(np.float32)
    a[0, 1, 2:5, 3] = np.nan
    for k, s, p, d, ceil in POOL_CASES + [((3, 3), (1, 1), (1, 1), (2, 2), True)]:
        y, i = nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil)(xbp.tensor(a))
        yt, it = torch.nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil)(torch.tensor(a))
        np.testing.assert_array_equal(to_np(y), yt.numpy())
        np.testing.assert_array_equal(to_np(i), it.numpy())
        if d == (1, 1):
            size = (9, 8) if s is not None else None
            u = nn.MaxUnpool2d(k, s, p)(y, i, size)
            ut = torch.nn.MaxUnpool2d(k, s, p)(yt, it, size)
            np.testing.assert_array_equal(to_np(u), ut.numpy())


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d(device, case, count_include_pad):
    k, s, p, _, ceil = case
    x, xn = rand((2, 2, 7, 6), device, seed=22)
    fn = lambda x: F.avg_pool2d(x, k, s, p, ceil, count_include_pad)  # noqa: E731
    np.testing.assert_allclose(to_np(fn(x)), ref_pool(xn, k, s or k, p, (1, 1), ceil, "avg", count_include_pad),
                               atol=1e-12)
    assert gradcheck(fn, (x,))


def test_avg_pool2d_divisor_override(device):
    x, xn = rand((1, 1, 4, 4), device, seed=23)
    np.testing.assert_allclose(to_np(F.avg_pool2d(x, 2, divisor_override=3)),
                               xn.reshape(1, 1, 2, 2, 2, 2).sum(axis=(3, 5)) / 3, atol=1e-12)


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (7, 5), (2, None)])
def test_adaptive_avg_pool2d(device, size):
    x, xn = rand((2, 3, 7, 5), device, seed=24)
    oh, ow = size[0], size[1] if size[1] is not None else 5
    y = F.adaptive_avg_pool2d(x, size)
    np.testing.assert_allclose(to_np(y), ref_adaptive_avg(xn, oh, ow), atol=1e-12)
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, size), (x[:1, :1],))


def test_pooling_gradgradcheck():
    x, _ = rand((1, 2, 5, 4), "cpu", seed=25)
    assert gradgradcheck(lambda x: F.max_pool2d(x, 3, 2, 1), (x,))
    assert gradgradcheck(lambda x: F.avg_pool2d(x, 2, 1, 1, False, False), (x,))


# --- layers -------------------------------------------------------------------------------------------
def test_conv_layers_shapes_and_init(device):
    c = nn.Conv2d(4, 8, (3, 5), stride=2, padding=1, groups=2, device=device)
    assert c.weight.shape == (8, 2, 3, 5) and c.bias.shape == (8,)
    bound = 1 / math.sqrt(2 * 3 * 5)
    assert np.abs(to_np(c.weight)).max() <= bound and np.abs(to_np(c.weight)).max() > 0.8 * bound
    assert np.abs(to_np(c.bias)).max() <= bound
    assert c(xbp.randn(2, 4, 9, 9, device=device)).shape == (2, 8, 5, 4)
    t = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False, device=device)
    assert t.weight.shape == (4, 3, 3, 3) and t.bias is None
    assert np.abs(to_np(t.weight)).max() <= 1 / math.sqrt(3 * 9)
    assert t(xbp.randn(1, 4, 5, 5, device=device)).shape == (1, 6, 10, 10)
    assert t(xbp.randn(1, 4, 5, 5, device=device), output_size=(9, 10)).shape == (1, 6, 9, 10)
    c1 = nn.Conv1d(3, 5, 4, padding="same", device=device)
    assert c1.weight.shape == (5, 3, 4) and c1(xbp.randn(2, 3, 11, device=device)).shape == (2, 5, 11)
    assert [k for k, _ in c.named_parameters()] == ["weight", "bias"]
    x = xbp.randn(2, 3, 8, 8, device=device)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.AvgPool2d(3, 2, 1)(x).shape == (2, 3, 4, 4)
    assert nn.AdaptiveAvgPool2d((1, 1))(x).shape == (2, 3, 1, 1)


def _load_torch(xm, tm):
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.load_state_dict(sd)


@pytest.mark.parametrize("kind", ["conv2d", "conv_transpose2d", "conv1d"])
def test_pytorch_weights_give_pytorch_outputs(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    if kind == "conv2d":
        args = (4, 6, (3, 2), (2, 1), (1, 2), (1, 2), 2)
        tm, xm, shape = torch.nn.Conv2d(*args), nn.Conv2d(*args), (2, 4, 9, 8)
    elif kind == "conv_transpose2d":
        tm = torch.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, dilation=1)
        xm = nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, dilation=1)
        shape = (2, 4, 5, 4)
    else:
        kw = dict(padding="same", dilation=2)
        tm, xm, shape = torch.nn.Conv1d(3, 4, 3, **kw), nn.Conv1d(3, 4, 3, **kw), (2, 3, 10)
    _load_torch(xm, tm)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    xx = xbp.tensor(x, requires_grad=True)
    yt, yx = tm(xt), xm(xx)
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=1e-5)
    yt.square().sum().backward()
    (yx * yx).sum().backward()
    np.testing.assert_allclose(to_np(xx.grad), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_np(xm.weight.grad), tm.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_np(xm.bias.grad), tm.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
