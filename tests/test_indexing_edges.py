"""Slices whose bounds run past the ends of an axis (``x[2:100]``, ``x[-100:3]``, ``x[100::-1]``),
negative and large steps, empty selections, None and Ellipsis mixed in: getitem, setitem and views
must give NumPy's results on every device (array-api-strict itself refuses out-of-range bounds, so
xbp clips them). References: NumPy indexing of the same numbers, and np.add.at of the upstream
gradient at the selected flat positions."""
import numpy as np
import pytest

import xbp
from conftest import rand, to_np

S = slice
KEYS = [
    (S(2, 100),),
    (S(-100, 3),),
    (S(10, 20),),                               # wholly past the end: empty
    (S(-100, -50),),                            # wholly before the start: empty
    (S(3, 1),),                                 # empty by order
    (S(1, 100, 2),),
    (S(None, None, 3), S(-100, 100, 4)),        # step > 1 with both bounds out of range
    (S(None, None, -1),),
    (S(100, -100, -1),),                        # negative step, both bounds out of range
    (S(None, None, -2), S(5, -100, -1)),
    (S(None), S(-1, None, -1)),
    (S(None, None, -7),),                       # |step| larger than the axis: one element
    (S(-1, -100, -3), Ellipsis, None),
    (Ellipsis, S(4, 100)),
    (None, S(2, 100), None, S(-100, 3)),
    (1, S(-100, 100, 3)),
    (-1, Ellipsis, S(100, 0, -2)),
    (S(0, 4), S(0, 6)),                         # bounds exactly at the ends
    ([0, 2], S(3, 100)),                        # mixed with advanced keys
    (S(-100, 100, -2), [1, 5]),
]


def _grad_ref(shape, key, w):
    """Gradient of sum(x[key] * w) by x: w added at the flat positions the key selects."""
    pos = np.arange(int(np.prod(shape))).reshape(shape)[key]
    ref = np.zeros(int(np.prod(shape)))
    np.add.at(ref, pos.ravel(), w.ravel())
    return ref.reshape(shape)


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_getitem_out_of_range_slices_match_numpy(device, key):
    x, a = rand((4, 6), device)
    y = x[key]
    assert y.shape == a[key].shape
    np.testing.assert_array_equal(to_np(y), a[key])
    w = np.random.default_rng(1).normal(size=a[key].shape)
    (y * xbp.tensor(w, device=device)).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), _grad_ref(a.shape, key, w))


@pytest.mark.parametrize("key", [k for k in KEYS if None not in k and not any(isinstance(i, list) for i in k)],
                         ids=str)
def test_setitem_out_of_range_slices_match_numpy(device, key):
    # untracked: a plain write into a buffer
    buf = xbp.zeros(4, 6, dtype=xbp.float64, device=device)
    want = np.zeros((4, 6))
    n = want[key].size
    vals = np.arange(1.0, n + 1).reshape(want[key].shape)
    buf[key] = vals
    want[key] = vals
    np.testing.assert_array_equal(to_np(buf), want)
    # recorded: y = 2x, then y[key] = v * 3; gradients of sum(y * w)
    x, a = rand((4, 6), device)
    v, c = rand(want[key].shape, device, seed=2)
    y = x * 2.0
    y[key] = v * 3.0
    want_y = 2 * a
    want_y[key] = 3 * c
    np.testing.assert_allclose(to_np(y), want_y)
    w = np.random.default_rng(3).normal(size=(4, 6))
    (y * xbp.tensor(w, device=device)).sum().backward()
    gx = 2 * w.copy()
    gx[key] = 0.0
    np.testing.assert_allclose(to_np(x.grad), gx)
    np.testing.assert_allclose(to_np(v.grad), 3 * w[key])


def test_setitem_scalar_and_broadcast_past_the_end(device):
    x = xbp.zeros(5, 3, dtype=xbp.float64, device=device)
    x[3:100] = 1.0
    x[-100:1, 1:50] = xbp.tensor([7.0, 8.0], dtype=xbp.float64, device=device)
    x[100:-100:-2, -1] = 2.0
    want = np.zeros((5, 3))
    want[3:100] = 1.0
    want[-100:1, 1:50] = [7.0, 8.0]
    want[100:-100:-2, -1] = 2.0
    np.testing.assert_array_equal(to_np(x), want)


def test_views_with_out_of_range_slices_write_through(device):
    x, a = rand((6,), device)
    w, b = rand((3,), device, seed=1)
    y = x * 1.0
    v = y[3:100]                       # view of the last three
    v *= w                             # y changes too
    r = y[100::-2]                     # y[5], y[3], y[1]
    r += 1.0
    want = a.copy()
    want[3:100] *= b
    want[100::-2] += 1.0
    np.testing.assert_allclose(to_np(y), want)
    np.testing.assert_allclose(to_np(v), want[3:100])
    (y * y).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * want * np.array([1, 1, 1, b[0], b[1], b[2]]))
    np.testing.assert_allclose(to_np(w.grad), 2 * want[3:] * a[3:])


def test_second_order_through_out_of_range_slices(device):
    # d/dx sum(x[k]^3) = 3 x^2 on the selection; its sum's gradient is 6 x there
    x, a = rand((7,), device)
    key = slice(100, -100, -3)
    (g,) = xbp.grad((x[key] ** 3).sum(), [x], create_graph=True)
    mask = np.zeros(7)
    mask[key] = 1.0
    np.testing.assert_allclose(to_np(g), 3 * a * a * mask)
    g.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 6 * a * mask)


def test_zero_size_axes_and_errors(device):
    x = xbp.zeros(0, 3, device=device, requires_grad=True)
    for key in [(slice(2, 100),), (slice(None, None, -1), slice(-100, 2)), (slice(1, 0, -1),)]:
        y = x[key]
        assert y.shape == np.zeros((0, 3))[key].shape
    x[slice(5, 100)].sum().backward()
    assert x.grad.shape == (0, 3)
    z = xbp.zeros(4, device=device)
    with pytest.raises(ValueError, match="step cannot be zero"):
        z[::0]
    with pytest.raises(IndexError, match="single ellipsis"):
        z[..., ...]
