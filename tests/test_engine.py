"""The backward engine: accumulation, freeing, retain_graph, create_graph, xbp.grad, hooks,
no_grad, in-place operations and version counters, gradcheck itself, and the errors."""
import gc
import weakref

import numpy as np
import pytest

import xbp
from xbp._primitive import Primitive, apply
from xbp.autograd import GradcheckError, gradcheck, gradgradcheck
from conftest import raises_checked, rand, to_np


# --- accumulation and graph shapes --------------------------------------------------------------
def test_backward_accumulates_into_leaf_grad(device):
    x, a = rand((3,), device)
    (x * x).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * a)
    (x * x).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 4 * a)
    x.grad = None
    (3.0 * x).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), np.full(3, 3.0))


def test_shared_subexpressions_sum_their_gradients(device):
    x, a = rand((2, 2), device)
    y = x.exp()
    z = (y * y + y.sin() * x).sum()               # y used three times, x twice
    z.backward()
    e = np.exp(a)
    want = 2 * e * e + np.cos(e) * e * a + np.sin(e)
    np.testing.assert_allclose(to_np(x.grad), want, rtol=1e-12)


def test_chain_of_10000_ops_is_iterative(device):
    n = 10000
    x = xbp.tensor(1.0, dtype=xbp.float64, device=device, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** n, rtol=1e-10)


def test_deep_chain_create_graph():
    x = xbp.tensor(0.3, dtype=xbp.float64, requires_grad=True)
    y = x
    for _ in range(2000):
        y = y + 0.001 * y * y
    (g,) = xbp.grad(y, x, create_graph=True)
    (g2,) = xbp.grad(g, x)
    assert np.isfinite(g2.item()) and g2.item() > 0


def test_leaf_grads_never_alias(device):
    x = xbp.ones(3, device=device, requires_grad=True)
    w = xbp.ones(3, device=device, requires_grad=True)
    gout = xbp.ones(3, device=device)
    (x + w).backward(gout)
    x.grad.array[...] = 5.0
    gout.array[...] = 7.0
    assert to_np(w.grad).tolist() == [1.0, 1.0, 1.0]
    v = xbp.ones(2, 3, device=device, requires_grad=True)
    v.sum().backward()                           # sum's gradient is a broadcast view
    v.grad.array[0, 0] = 3.0                      # .grad is a writable array of its own
    assert to_np(v.grad).sum() == 8.0


def test_grad_dtype_follows_the_leaf(device):
    x = xbp.ones(2, device=device, requires_grad=True)
    (x.double() * xbp.ones(2, dtype=xbp.float64, device=device)).sum().backward()
    assert x.grad.dtype == xbp.float32


def test_gradient_through_device_transfer(device):
    x, a = rand((2,), "cpu")
    y = x.to(device).exp().to("cpu")
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), np.exp(a))


def test_multiple_roots_and_inputs_argument(device):
    x, a = rand((2,), device)
    w, b = rand((2,), device, seed=1)
    y1 = (x * w).sum()
    y2 = x * 2.0
    xbp.autograd.backward([y1, y2], [None, xbp.ones(2, device=device, dtype=xbp.float64)])
    np.testing.assert_allclose(to_np(x.grad), b + 2.0)
    np.testing.assert_allclose(to_np(w.grad), a)
    x.grad = w.grad = None
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None
    np.testing.assert_allclose(to_np(w.grad), a)


def test_backward_with_explicit_gradient(device):
    x, a = rand((2, 3), device)
    g = np.arange(6.0).reshape(2, 3)
    (x * 3.0).backward(xbp.tensor(g, device=device))
    np.testing.assert_allclose(to_np(x.grad), 3 * g)
    x.grad = None
    (x * 3.0).backward(g)                        # a NumPy array is accepted too
    np.testing.assert_allclose(to_np(x.grad), 3 * g)


def test_backward_on_a_leaf(device):
    x = xbp.tensor(2.0, device=device, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


# --- freeing and retain_graph --------------------------------------------------------------------
def test_saved_tensors_are_freed_after_backward(device):
    x, _ = rand((3,), device)
    y = x.exp()
    node = y.grad_fn
    assert node.out is not None
    y.sum().backward()
    assert node.out is None and node.ins is None and node.freed


def test_backward_twice_raises_clear_error(device):
    x, _ = rand((3,), device)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through mul a second time.*freed.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_walk(device):
    x, a = rand((3,), device)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * (np.exp(a) * a + np.exp(a)))


def test_graph_does_not_keep_dropped_leaves_alive():
    x = xbp.ones(3, requires_grad=True)
    y = x * 2.0
    ref = weakref.ref(x)
    node = y.grad_fn
    del x
    gc.collect()
    # the mul node saved the input array (not the Tensor); the leaf itself may go
    assert ref() is None
    y.sum().backward()                     # nothing to accumulate into: no error
    assert node.freed


# --- errors ----------------------------------------------------------------------------------------
def test_backward_on_non_scalar_needs_gradient(device):
    x, _ = rand((3,), device)
    with pytest.raises(RuntimeError, match="1-element output, got shape \\(3,\\).*gradient="):
        (x * 2.0).backward()


def test_backward_without_grad_raises(device):
    x = xbp.ones(2, device=device)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2.0).sum().backward()
    y = xbp.ones(2, device=device, requires_grad=True)
    with xbp.no_grad():
        z = (y * 2.0).sum()
    with pytest.raises(RuntimeError, match="no_grad"):
        z.backward()


def test_backward_gradient_shape_and_device_checked(device):
    x, _ = rand((2, 3), device)
    with pytest.raises(RuntimeError, match="gradient shape \\(3,\\) does not match output shape \\(2, 3\\)"):
        (x * 2.0).backward(xbp.ones(3, device=device))
    other = "cpu" if device != "cpu" else "strict"
    with pytest.raises(xbp.DeviceError, match="gradient is on"):
        (x * 2.0).backward(xbp.ones(2, 3, device=other))


def test_shape_errors_name_the_op_and_shapes(device):
    a = xbp.ones(2, 3, device=device)
    with pytest.raises(ValueError, match="matmul: inner dimensions differ: \\(2, 3\\) @ \\(2, 3\\)"):
        a @ a
    with pytest.raises(ValueError, match="matmul: 0-d"):
        a @ xbp.tensor(1.0, device=device)
    with pytest.raises(ValueError, match="linear: input shape \\(2, 3\\) does not match weight shape \\(4, 2\\)"):
        xbp.linear(a, xbp.ones(4, 2, device=device))
    with pytest.raises(ValueError, match="linear: bias shape \\(3,\\) does not match weight shape \\(4, 3\\)"):
        xbp.linear(a, xbp.ones(4, 3, device=device), xbp.ones(3, device=device))
    with pytest.raises(ValueError, match="reshape: shape \\(4,\\) is invalid for a tensor of 6 elements"):
        a.reshape(4)
    with pytest.raises(ValueError, match="cannot broadcast shape \\(2, 3\\) to \\(3, 3\\)"):
        a.expand(3, 3)
    with pytest.raises(ValueError, match="stack: tensor 1 has shape"):
        xbp.stack([a, xbp.ones(3, device=device)])
    with pytest.raises(RuntimeError, match="permute.*multiple times"):
        a.permute(0, 0)
    with pytest.raises(IndexError, match=r"sum: Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        a.sum(2)
    with pytest.raises(ValueError, match="split: sections"):
        xbp.split(a, [1, 1], 1)
    with pytest.raises(ValueError, match="einsum"):
        xbp.einsum("ij,jk->ik", a, xbp.ones(2, 2, device=device))
    with pytest.raises(TypeError, match="gather: index must be an integer tensor"):
        xbp.gather(a, 1, xbp.zeros(2, 1, device=device))
    with raises_checked(IndexError, match="gather.*out of range"):
        xbp.gather(a, 1, xbp.tensor([[3], [0]], device=device))
    with raises_checked(IndexError, match="one_hot: class index out of range"):
        xbp.one_hot(xbp.tensor([0, 5], device=device), 3)
    with pytest.raises(TypeError, match="mean: needs a floating-point tensor"):
        xbp.tensor([1, 2], device=device).mean()
    with pytest.raises(TypeError, match="where: condition must be a bool tensor"):
        xbp.where(a, a, a)


# --- grad mode -------------------------------------------------------------------------------------
def test_no_grad_and_enable_grad_as_contexts_and_decorators(device):
    x = xbp.ones(2, device=device, requires_grad=True)
    with xbp.no_grad():
        assert not xbp.is_grad_enabled()
        y = x * 2.0
        with xbp.enable_grad():
            z = x * 2.0
        w = x * 2.0
    assert xbp.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad and not w.requires_grad

    @xbp.no_grad()
    def f1():
        return x * 2.0

    @xbp.no_grad
    def f2():
        return x * 2.0

    @xbp.enable_grad()
    def f3():
        return x * 2.0

    assert not f1().requires_grad and not f2().requires_grad
    assert f2.__name__ == "f2"
    with xbp.no_grad():
        assert f3().requires_grad
    with xbp.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert xbp.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with xbp.no_grad():
            1 / 0
    assert xbp.is_grad_enabled()

    @xbp.no_grad
    def boom():
        raise ValueError

    with pytest.raises(ValueError):
        boom()
    assert xbp.is_grad_enabled()


def test_backward_does_not_leave_grad_mode_changed(device):
    x, _ = rand((2,), device)
    with xbp.no_grad():
        pass
    y = (x * x).sum()

    def bad_hook(g):
        raise KeyError("hook")
    y.register_hook(bad_hook)
    with pytest.raises(KeyError):
        y.backward()
    assert xbp.is_grad_enabled()


# --- xbp.grad ----------------------------------------------------------------------------------------
def test_grad_returns_gradients_without_touching_dot_grad(device):
    x, a = rand((3,), device)
    w, b = rand((3,), device, seed=1)
    y = (x * w).sum()
    gx, gw = xbp.grad(y, [x, w])
    np.testing.assert_allclose(to_np(gx), b)
    np.testing.assert_allclose(to_np(gw), a)
    assert x.grad is None and w.grad is None
    (gx2,) = xbp.grad((x * w), x, grad_outputs=xbp.full((3,), 2.0, dtype=xbp.float64, device=device))
    np.testing.assert_allclose(to_np(gx2), 2 * b)
    single = xbp.grad((x * x).sum(), x)
    assert isinstance(single, tuple) and len(single) == 1


def test_grad_of_a_non_leaf(device):
    x, a = rand((3,), device)
    h = x.exp()
    y = (h * h).sum()
    (gh,) = xbp.grad(y, h)
    np.testing.assert_allclose(to_np(gh), 2 * np.exp(a))


def test_grad_allow_unused(device):
    x, _ = rand((2,), device)
    w, _ = rand((2,), device, seed=1)
    y = (x * 2.0).sum()
    with pytest.raises(RuntimeError, match="input 1 .* was not used.*allow_unused=True"):
        xbp.grad(y, [x, w], retain_graph=True)
    gx, gw = xbp.grad(y, [x, w], allow_unused=True)
    assert gw is None and to_np(gx).tolist() == [2.0, 2.0]


def test_grad_errors(device):
    x = xbp.ones(2, device=device)
    w = xbp.ones(2, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="input 0 .* does not require grad"):
        xbp.grad((w * x).sum(), [x])
    with pytest.raises(RuntimeError, match="output does not require grad"):
        xbp.grad((x * 2.0).sum(), [w])
    y = (w * w).sum()
    xbp.grad(y, w)
    with pytest.raises(RuntimeError, match="second time"):
        xbp.grad(y, w)
    z = (w * w).sum()
    xbp.grad(z, w, retain_graph=True)
    xbp.grad(z, w)


def test_create_graph_gives_gradients_of_gradients(device):
    x, a = rand((3,), device)
    y = (x ** 3).sum()
    (g,) = xbp.grad(y, x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    np.testing.assert_allclose(to_np(g), 3 * a ** 2)
    (h,) = xbp.grad(g.sum(), x, create_graph=True)
    np.testing.assert_allclose(to_np(h), 6 * a)
    (k,) = xbp.grad(h.sum(), x)
    np.testing.assert_allclose(to_np(k), np.full(3, 6.0))


def test_backward_create_graph_then_backward_through_grad(device):
    x, a = rand((2,), device)
    (x.sin() * x).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    g.sum().backward()
    # d/dx (sin x + x cos x) = 2 cos x - x sin x
    np.testing.assert_allclose(to_np(x.grad), 2 * np.cos(a) - a * np.sin(a), rtol=1e-12)


def test_gradient_penalty_pattern(device):
    # WGAN-GP style: || d out / d x || used in a loss, differentiated w.r.t. the weights
    x, a = rand((2, 3), device)
    w, b = rand((3, 1), device, seed=1)
    out = (x @ w).tanh().sum()
    (gx,) = xbp.grad(out, x, create_graph=True)
    pen = (gx * gx).sum()
    pen.backward()
    t = np.tanh(a @ b)
    s = 1 - t * t                                   # (2,1)
    # gx = s @ w.T; pen = sum(s^2) * |w|^2
    want = 2 * np.sum(s * s) * b + np.sum(b * b) * (a.T @ (2 * s * (-2 * t * s)))
    np.testing.assert_allclose(to_np(w.grad), want, rtol=1e-10)


# --- hooks -------------------------------------------------------------------------------------------
def test_hooks_on_leaf_and_non_leaf(device):
    x, a = rand((2,), device)
    seen = []
    h = x.register_hook(lambda g: seen.append(to_np(g)) or g * 10.0)
    y = x * 3.0
    y.register_hook(lambda g: g + 1.0)
    y.sum().backward()
    np.testing.assert_allclose(seen[0], [6.0, 6.0])
    np.testing.assert_allclose(to_np(x.grad), [60.0, 60.0])
    h.remove()
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), [3.0, 3.0])


def test_retain_grad(device):
    x, a = rand((2,), device)
    y = x * 2.0
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(to_np(y.grad), 4 * a)


def test_detach_stops_gradient(device):
    x, a = rand((2,), device)
    y = x * x.detach()
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), a)


# --- in-place operations and version counters -----------------------------------------------------
def test_inplace_on_saved_tensor_raises_at_backward(device):
    x, _ = rand((3,), device)
    y = x.exp()
    z = y.sum()
    y += 1.0                                       # exp saved its output
    with pytest.raises(RuntimeError, match="exp: a tensor saved for backward was modified by an in-place "
                                           "operation \\(now at version 1, saved at version 0\\).*clone"):
        z.backward()


@pytest.mark.parametrize("modify", ["add_", "mul_", "setitem", "zero_", "copy_", "fill_", "view", "detach"])
def test_every_inplace_op_bumps_the_version(device, modify):
    x, _ = rand((3,), device)
    y = x * 1.0
    z = (y * y).sum()                              # mul saved y
    if modify == "add_":
        y.add_(1.0)
    elif modify == "mul_":
        y.mul_(xbp.ones(3, dtype=xbp.float64, device=device))
    elif modify == "setitem":
        y[0] = 5.0
    elif modify == "zero_":
        y.zero_()
    elif modify == "copy_":
        y.copy_(xbp.zeros(3, dtype=xbp.float64, device=device))
    elif modify == "fill_":
        y.fill_(2.0)
    elif modify == "view":
        v = y[1:]
        v.mul_(2.0)
    elif modify == "detach":
        y.detach().sub_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()


def test_inplace_on_leaf_requiring_grad_is_refused(device):
    x = xbp.ones(2, device=device, requires_grad=True)
    for f in (lambda: x.add_(1.0), lambda: x.__iadd__(1.0), lambda: x.zero_(), lambda: x.__setitem__(0, 1.0),
              lambda: x.copy_(xbp.zeros(2, device=device)), lambda: x.mul_(2.0)):
        with pytest.raises(RuntimeError, match="in-place change of a leaf tensor that requires grad.*no_grad"):
            f()
    with pytest.raises(RuntimeError, match="view .* of a leaf tensor that requires grad"):
        x[0:1].add_(1.0)
    with xbp.no_grad():                            # what optimizers do
        x -= 0.5
        x.mul_(2.0)
    assert to_np(x).tolist() == [1.0, 1.0] and x.is_leaf and x.requires_grad


def test_inplace_ops_are_recorded(device):
    x, a = rand((3,), device)
    w, b = rand((3,), device, seed=1)
    y = x * 1.0
    y += w                                         # y = x + w
    y.mul_(w)                                      # y = (x + w) w
    y.sub_(x, alpha=2.0)                           # y = (x + w) w - 2x
    y /= 2.0
    y.sum().backward()
    np.testing.assert_allclose(to_np(y), ((a + b) * b - 2 * a) / 2)
    np.testing.assert_allclose(to_np(x.grad), (b - 2) / 2)
    np.testing.assert_allclose(to_np(w.grad), (a + 2 * b) / 2)


def test_setitem_is_differentiable(device):
    x, a = rand((2, 3), device)
    v, c = rand((3,), device, seed=1)
    y = x * 2.0
    y[1] = v * v
    y[0, 0] = 7.0
    y.sum().backward()
    want_y = 2 * a
    want_y[1] = c * c
    want_y[0, 0] = 7.0
    np.testing.assert_allclose(to_np(y), want_y)
    np.testing.assert_allclose(to_np(x.grad), [[0.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(to_np(v.grad), 2 * c)


def test_setitem_with_advanced_keys(device):
    x, a = rand((3, 2), device)
    y = x * 1.0
    y[[0, 2]] = 0.0
    y[xbp.tensor([False, True, False], device=device)] = xbp.tensor([5.0, 6.0], dtype=xbp.float64, device=device)
    y.sum().backward()
    np.testing.assert_allclose(to_np(y), [[0, 0], [5, 6], [0, 0]])
    np.testing.assert_allclose(to_np(x.grad), np.zeros((3, 2)))
    buf = xbp.zeros(4, device=device)
    buf[xbp.tensor([3, 1], device=device)] = 1.0
    assert buf.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_indexed_inplace_updates_write_through_views(device):
    x, a = rand((4,), device)
    w, b = rand((2,), device, seed=1)
    y = x * 1.0
    y[0] += 5.0                       # getitem, iadd on the view, setitem
    v = y[1:3]
    v *= w                            # through a view: y changes too
    assert to_np(y)[1:3].tolist() == (a[1:3] * b).tolist()
    (y * y).sum().backward()
    want_y = a.copy()
    want_y[0] += 5.0
    want_y[1:3] *= b
    np.testing.assert_allclose(to_np(x.grad), 2 * want_y * np.array([1.0, b[0], b[1], 1.0]))
    np.testing.assert_allclose(to_np(w.grad), 2 * want_y[1:3] * a[1:3])


def test_inplace_into_a_constant_buffer_makes_it_require_grad(device):
    w, b = rand((2,), device)
    buf = xbp.zeros(4, dtype=xbp.float64, device=device)
    buf[1:3] += w
    assert buf.requires_grad
    (buf * xbp.arange(4.0, device=device).double()).sum().backward()
    np.testing.assert_allclose(to_np(w.grad), [1.0, 2.0])


def test_inplace_through_reshaped_and_permuted_views(device):
    x, a = rand((2, 3), device)
    w, b = rand((3,), device, seed=1)
    y = x * 1.0
    flat = y.reshape(6)
    flat.mul_(2.0)                                   # y = 2x
    yt = y.T
    yt[0] += 1.0                                     # column 0 of y
    y.mul_(w)                                        # flat and yt now see y * w
    want = 2 * a
    want[:, 0] += 1.0
    want = want * b
    np.testing.assert_allclose(to_np(y), want)
    np.testing.assert_allclose(to_np(flat), want.reshape(6))
    np.testing.assert_allclose(to_np(yt), want.T)
    (flat * flat).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * want * 2 * b)
    np.testing.assert_allclose(to_np(w.grad), (2 * want * (want / b)).sum(0))


def test_inplace_on_expanded_view_is_refused(device):
    y = xbp.ones(3, device=device, requires_grad=True) * 1.0
    with pytest.raises(RuntimeError, match=r"expanded \(broadcast\) view.*clone"):
        y.expand(2, 3).add_(1.0)


def test_reshape_that_copies_is_not_a_view(device):
    y = xbp.arange(6.0, device=device).reshape(2, 3).T        # non-contiguous
    r = y.reshape(6)                                          # NumPy copies here
    r += 1.0
    if device == "cpu":
        assert y.tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]


def test_inplace_cannot_change_shape(device):
    y = xbp.ones(3, device=device, requires_grad=True) * 1.0
    with pytest.raises(RuntimeError, match="cannot change a tensor's shape"):
        y += xbp.ones(2, 3, device=device)


def test_inplace_keeps_dtype(device):
    y = xbp.ones(2, device=device)
    y += xbp.ones(2, dtype=xbp.float64, device=device)
    assert y.dtype == xbp.float32 and y.tolist() == [2.0, 2.0]
    z = xbp.ones(2, device=device, requires_grad=True) * 1.0
    z.mul_(xbp.full((2,), 3.0, dtype=xbp.float64, device=device))
    assert z.dtype == xbp.float32


def test_zero_and_fill_on_graph_cut_the_gradient(device):
    x, _ = rand((3,), device)
    y = x * 2.0
    y.zero_()
    (y + x).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), np.ones(3))


def test_copy_is_differentiable_wrt_source(device):
    x, a = rand((3,), device)
    buf = xbp.zeros(2, 3, dtype=xbp.float64, device=device)
    buf.copy_(x)                                      # broadcast source
    (buf * buf).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 4 * a)


def test_clamp_inplace_is_differentiable(device):
    x = xbp.tensor([-2.0, 0.5, 3.0], dtype=xbp.float64, device=device, requires_grad=True)
    y = x * 1.0
    y.clamp_(-1.0, 1.0)
    y.sum().backward()
    assert to_np(y).tolist() == [-1.0, 0.5, 1.0]
    assert to_np(x.grad).tolist() == [0.0, 1.0, 0.0]


def test_view_made_under_no_grad_then_changed_is_refused(device):
    x, _ = rand((3,), device)
    y = x * 1.0
    with xbp.no_grad():
        v = y[1:]
    with pytest.raises(RuntimeError, match="view .* made under no_grad"):
        v.add_(1.0)


# --- gradcheck itself --------------------------------------------------------------------------------
def _bad_square():
    # d(x^2)/dx written wrongly as x (instead of 2x)
    p = Primitive("bad_square", lambda xp, x: x * x, lambda c, g: (g * c.ins[0],), save="in")
    return lambda x: apply(p, (x,))


def _detached_cube():
    # correct first derivative 3x^2, but computed from a constant: second derivative is lost
    def vjp(c, g):
        x = c.ins[0]
        x = x.detach() if isinstance(x, xbp.Tensor) else x
        return (g * 3.0 * x * x,)
    p = Primitive("detached_cube", lambda xp, x: x * x * x, vjp, save="in")
    return lambda x: apply(p, (x,))


def test_gradcheck_catches_a_wrong_vjp(device):
    x, _ = rand((3,), device)
    with pytest.raises(GradcheckError, match="input 0 .* analytical and numerical Jacobians differ"):
        gradcheck(_bad_square(), [x])
    assert gradcheck(_bad_square(), [x], raise_exception=False) is False
    assert gradcheck(_detached_cube(), [x])


def test_gradgradcheck_catches_a_wrong_second_derivative(device):
    x, _ = rand((3,), device)
    with pytest.raises(GradcheckError):
        gradgradcheck(_detached_cube(), [x])
    assert gradgradcheck(lambda t: t * t * t, [x])


def test_gradcheck_wants_float64():
    x = xbp.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="float32.*float64"):
        gradcheck(lambda t: t * 2.0, [x])


def test_gradcheck_multiple_inputs_outputs_and_constants(device):
    x, _ = rand((2,), device)
    w, _ = rand((2,), device, seed=1)
    k = xbp.tensor([1.0, 2.0], dtype=xbp.float64, device=device)       # not requiring grad
    assert gradcheck(lambda a, b, c, s: (a * b * c * s, (a + b).exp()), [x, w, k, 3.0])
    assert gradgradcheck(lambda a, b: (a * b).sin(), [x, w])


# --- gradients at the edges of their domains (where a naive rule gives nan) -------------------------
def test_prod_gradient_with_zeros(device):
    a = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]])
    x = xbp.tensor(a, device=device, requires_grad=True)
    x.prod(1).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0], [8.0, 4.0, 2.0]])
    x.grad = None
    x.prod().backward()
    np.testing.assert_allclose(to_np(x.grad), np.zeros((3, 3)))
    for v in ([2.0, 0.0, 3.0], [0.0, 1.5, 0.0], [0.0, 0.0, 0.0], [[1.5, 0.0], [-2.0, 0.5]]):
        y = xbp.tensor(v, dtype=xbp.float64, device=device, requires_grad=True)
        assert gradcheck(lambda t: t.prod(), [y])
        assert gradgradcheck(lambda t: t.prod(), [y])
        assert gradgradcheck(lambda t: t.prod(-1), [y])


def test_norm_gradient_at_zero_is_zero(device):
    x = xbp.zeros(3, device=device, requires_grad=True)
    x.norm().backward()
    assert to_np(x.grad).tolist() == [0.0, 0.0, 0.0]
    z = xbp.zeros(2, 2, dtype=xbp.float64, device=device, requires_grad=True)
    xbp.norm(z, dim=1).sum().backward()
    assert np.all(to_np(z.grad) == 0.0)


def test_abs_gradient_at_zero_is_zero(device):
    x = xbp.tensor([-1.0, 0.0, 2.0], device=device, requires_grad=True)
    x.abs().sum().backward()
    assert to_np(x.grad).tolist() == [-1.0, 0.0, 1.0]


def test_pow_edge_cases(device):
    x = xbp.tensor([0.0, 2.0], dtype=xbp.float64, device=device, requires_grad=True)
    (x ** 0).sum().backward()
    assert to_np(x.grad).tolist() == [0.0, 0.0]
    e = xbp.tensor([1.0, 2.0], dtype=xbp.float64, device=device, requires_grad=True)
    (0.0 ** e).sum().backward()                  # d/de 0^e = 0 for e > 0
    assert to_np(e.grad).tolist() == [0.0, 0.0]
    e.grad = None
    (2.0 ** e).sum().backward()
    np.testing.assert_allclose(to_np(e.grad), np.log(2.0) * 2.0 ** np.array([1.0, 2.0]))
    e.grad = None
    ((-2.0) ** xbp.tensor([2.0], dtype=xbp.float64, device=device, requires_grad=True)).sum().backward()


def test_erf_is_accurate_in_float64(device):
    import math
    v = np.concatenate([np.linspace(-6, 6, 241), [2.9999999, 3.0, 3.0000001]])
    got = to_np(xbp.erf(xbp.tensor(v, device=device)))
    np.testing.assert_allclose(got, [math.erf(t) for t in v], atol=5e-15)
    got32 = xbp.erf(xbp.tensor(v, dtype=xbp.float32, device=device))
    assert got32.dtype == xbp.float32
    np.testing.assert_allclose(to_np(got32), [math.erf(t) for t in v], atol=1e-6)


def test_where_with_two_numbers(device):
    m = xbp.tensor([True, False], device=device)
    y = xbp.where(m, 1.0, 0.0)
    assert y.dtype == xbp.float32 and y.tolist() == [1.0, 0.0]
    assert xbp.where(m, 2, 3).tolist() == [2, 3]


def test_create_graph_through_device_transfer(device):
    x, a = rand((2,), "cpu")
    y = (x.to(device) ** 3).to("cpu").sum()
    (g,) = xbp.grad(y, x, create_graph=True)
    (h,) = xbp.grad(g.sum(), x)
    np.testing.assert_allclose(to_np(h), 6 * a)


def test_slice_bounds_from_tensors_and_numpy_ints(device):
    x = xbp.arange(6.0, device=device)
    assert x[: xbp.tensor(2, device=device)].tolist() == [0.0, 1.0]
    assert x[np.int64(1): np.int64(5): np.int64(2)].tolist() == [1.0, 3.0]
    assert x[np.int64(3)].item() == 3.0


def test_set_grad_enabled_as_function_context_and_decorator(device):
    x = xbp.ones(2, device=device, requires_grad=True)
    xbp.set_grad_enabled(False)
    try:
        assert not xbp.is_grad_enabled() and not (x * 2.0).requires_grad
    finally:
        xbp.set_grad_enabled(True)
    assert xbp.is_grad_enabled()

    @xbp.set_grad_enabled(False)
    def f():
        return x * 2.0
    assert xbp.is_grad_enabled()           # decorating does not change the mode
    assert not f().requires_grad and xbp.is_grad_enabled()


def test_view_sees_later_inplace_change_of_its_base(device):
    # v is taken before y changes in place; its values and its gradient follow the new y
    x, a = rand((2, 3), device)
    w, b = rand((3,), device, seed=1)
    y = x * 1.0
    v = y[1]
    y *= w                                           # y = x * w, so v = x[1] * w
    np.testing.assert_allclose(to_np(v), a[1] * b)
    (v * v).sum().backward()
    gx = np.zeros((2, 3))
    gx[1] = 2 * a[1] * b * b
    np.testing.assert_allclose(to_np(x.grad), gx)
    np.testing.assert_allclose(to_np(w.grad), 2 * a[1] ** 2 * b)


def test_sibling_views_and_views_of_views(device):
    x, a = rand((3, 3), device)
    y = x * 1.0
    top = y[0:2]
    inner = top[:, 1:]
    other = y[1]
    other.mul_(3.0)                                  # changes a row inside `top` and `inner`
    inner.add_(1.0)                                  # written through to top, then to y
    want = a.copy()
    want[1] *= 3.0
    want[0:2, 1:] += 1.0
    np.testing.assert_allclose(to_np(y), want)
    np.testing.assert_allclose(to_np(top), want[0:2])
    (top * top).sum().backward()
    gx = np.zeros((3, 3))
    gx[0:2] = 2 * want[0:2]
    gx[1] *= 3.0
    np.testing.assert_allclose(to_np(x.grad), gx)


def test_inplace_sequences_match_pytorch(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal(3)

    def program(lib, x, w):
        y = x * 1.0
        v = y[1:]
        v[:, 0] += w[0]
        y[0] *= w
        u = y[:, 1]
        y.sub_(w * 0.5)
        u *= 2.0
        y[2, 2] = w[1] * 3.0
        return (y * y).sum() + (v * w).sum() + u.sum(), y

    outs = []
    for lib in ("torch", "xbp"):
        if lib == "torch":
            x, w = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        else:
            x = xbp.tensor(a, device=device, requires_grad=True)
            w = xbp.tensor(b, device=device, requires_grad=True)
        loss, y = program(lib, x, w)
        loss.backward()
        outs.append([t.detach().numpy() for t in (loss, y, x.grad, w.grad)])
    for p, q in zip(*outs):
        np.testing.assert_allclose(q, p, rtol=1e-12)
