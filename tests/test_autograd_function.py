"""xbp.autograd.Function: PyTorch's custom-function protocol, checked against closed forms,
finite differences (gradcheck / gradgradcheck in float64) and torch running the same classes.

The Function classes are built by factories over (Function base, cat, once_differentiable), with
bodies that use only Tensor methods both libraries share, so xbp and torch run the same code."""
import numpy as np
import pytest

import xbp
from xbp.autograd import Function, gradcheck, gradgradcheck
from xbp.autograd.function import once_differentiable

from conftest import rand, to_np


# ----------------------------------------------------------------------------------------------
# the same Function classes for xbp and torch
# ----------------------------------------------------------------------------------------------
def make_exp(base):
    class Exp(base):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y
    return Exp


def make_cube(base):
    """x^3 saving the input: backward 3 x^2 g is differentiable in x and g."""
    class Cube(base):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g
    return Cube


def make_scaled_split(base, cat):
    """Two outputs, a non-tensor argument (k), a constant keyword argument and ctx attributes."""
    class ScaledSplit(base):
        @staticmethod
        def forward(ctx, x, w, k, scale=1.0):
            ctx.k, ctx.scale = k, scale
            ctx.save_for_backward(x, w)
            return x[:k] * w[:k] * scale, (x[k:] * w[k:]).sin()

        @staticmethod
        def backward(ctx, ga, gb):
            x, w = ctx.saved_tensors
            k, s = ctx.k, ctx.scale
            cb = (x[k:] * w[k:]).cos() * gb
            gx = cat([ga * w[:k] * s, cb * w[k:]]) if ctx.needs_input_grad[0] else None
            gw = cat([ga * x[:k] * s, cb * x[k:]]) if ctx.needs_input_grad[1] else None
            return gx, gw, None, None
    return ScaledSplit


def make_once(base, once):
    class SquareOnce(base):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @once
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g
    return SquareOnce


def make_scale_inplace(base):
    """mark_dirty: multiplies its input by 2 in place and returns it."""
    class Double_(base):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2
    return Double_


def make_sort_like(base):
    """An output marked non-differentiable (a mask), and a float output."""
    class PosPart(base):
        @staticmethod
        def forward(ctx, x):
            mask = x > 0
            ctx.save_for_backward(mask)
            ctx.mark_non_differentiable(mask)
            return x * mask, mask

        @staticmethod
        def backward(ctx, g, g_mask):
            (mask,) = ctx.saved_tensors
            ctx.got_mask_grad = g_mask
            return g * mask
    return PosPart


# ----------------------------------------------------------------------------------------------
def test_exp_closed_form_gradcheck_and_double_backward(device):
    Exp = make_exp(Function)
    x, a = rand((3,), device)
    y = Exp.apply(x)
    assert y.grad_fn is not None and y.grad_fn.name() == "ExpBackward"     # PyTorch's node name
    np.testing.assert_allclose(to_np(y), np.exp(a), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), np.exp(a), rtol=1e-12)
    assert gradcheck(Exp.apply, (x,))
    assert gradgradcheck(Exp.apply, (x,))      # backward is written with xbp ops: differentiable


def test_cube_second_derivative_closed_form(device):
    Cube = make_cube(Function)
    x, a = rand((4,), device)
    (g,) = xbp.grad(Cube.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(to_np(g), 3 * a ** 2, rtol=1e-12)
    (h,) = xbp.grad(g.sum(), x)
    np.testing.assert_allclose(to_np(h), 6 * a, rtol=1e-12)
    assert gradgradcheck(Cube.apply, (x,))


def test_multi_output_nontensor_arg_kwargs_match_torch(device):
    torch = pytest.importorskip("torch")
    S = make_scaled_split(Function, xbp.cat)
    St = make_scaled_split(torch.autograd.Function, torch.cat)
    x, a = rand((5,), device, seed=1)
    w, b = rand((5,), device, seed=2)
    p, q = S.apply(x, w, 2, scale=3.0)
    assert p.grad_fn is not q.grad_fn          # one selector node per output, named as the function
    (p.sum() * 2 + (q * q).sum()).backward()
    xt = torch.tensor(a, requires_grad=True)
    wt = torch.tensor(b, requires_grad=True)
    pt, qt = St.apply(xt, wt, 2, scale=3.0)
    assert p.grad_fn.name() == q.grad_fn.name() == pt.grad_fn.name() == "ScaledSplitBackward"
    (pt.sum() * 2 + (qt * qt).sum()).backward()
    np.testing.assert_allclose(to_np(p), pt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(q), qt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(w.grad), wt.grad.numpy(), rtol=1e-12)
    assert gradcheck(lambda x, w: S.apply(x, w, 2, scale=0.5), (x, w))
    assert gradgradcheck(lambda x, w: S.apply(x, w, 3), (x, w))


def test_unused_output_gets_materialized_zeros_or_none(device):
    seen = {}

    class Two(Function):
        @staticmethod
        def forward(ctx, x, materialize):
            ctx.set_materialize_grads(materialize)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            seen["gb"] = gb
            return ga * 2 + (0 if gb is None else gb * 3), None

    x, a = rand((3,), device)
    p, _ = Two.apply(x, True)
    p.sum().backward()
    np.testing.assert_array_equal(to_np(seen["gb"]), np.zeros(3))
    np.testing.assert_allclose(to_np(x.grad), np.full(3, 2.0))
    x.grad = None
    p, _ = Two.apply(x, False)
    p.sum().backward()
    assert seen["gb"] is None
    np.testing.assert_allclose(to_np(x.grad), np.full(3, 2.0))


def test_needs_input_grad_matches_torch(device):
    torch = pytest.importorskip("torch")
    got = {}

    def make(base):
        class Probe(base):
            @staticmethod
            def forward(ctx, x, w, n):
                got[base] = tuple(ctx.needs_input_grad)
                return x * w * n

            @staticmethod
            def backward(ctx, g):
                return None, None, None
        return Probe

    x, a = rand((2,), device)
    w, b = rand((2,), device, requires_grad=False)
    make(Function).apply(x, w, 2)
    make(torch.autograd.Function).apply(torch.tensor(a, requires_grad=True), torch.tensor(b), 2)
    assert got[Function] == got[torch.autograd.Function] == (True, False, False)
    with xbp.no_grad():
        y = make(Function).apply(x, w, 2)
    assert got[Function] == (False, False, False) and not y.requires_grad and y.grad_fn is None


def test_non_differentiable_output_and_int_output(device):
    P = make_sort_like(Function)
    x = xbp.tensor(np.array([-1.0, 2.0, 0.5, -3.0]), device=device, requires_grad=True)
    y, mask = P.apply(x)
    assert y.requires_grad and not mask.requires_grad and mask.grad_fn is None
    y.sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), [0.0, 1.0, 1.0, 0.0])

    class Count(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, (x > 0).sum()

        @staticmethod
        def backward(ctx, g, g_count):
            return g * 2

    y, n = Count.apply(x)
    assert not n.requires_grad and n.item() == 2
    assert y.requires_grad


def test_mark_dirty_matches_torch(device):
    torch = pytest.importorskip("torch")
    D = make_scale_inplace(Function)
    x, a = rand((3,), device)
    h = x * 3                                  # a non-leaf: in-place on it is allowed
    out = D.apply(h)
    assert out is h and h.grad_fn.name() == "Double_Backward"
    np.testing.assert_allclose(to_np(h), 6 * a)
    (out * out).sum().backward()
    xt = torch.tensor(a, requires_grad=True)
    ht = xt * 3
    Dt = make_scale_inplace(torch.autograd.Function)
    ot = Dt.apply(ht)
    (ot * ot).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-12)
    leaf, _ = rand((3,), device)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        D.apply(leaf)


def test_dirty_tensor_must_be_returned(device):
    class Forgot(Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g

    x, _ = rand((2,), device)
    with pytest.raises(RuntimeError, match="marked dirty .* was not returned"):
        Forgot.apply(x * 1)


def test_saved_tensor_modified_in_place_raises(device):
    Cube = make_cube(Function)
    x, _ = rand((3,), device)
    h = x * 1
    y = Cube.apply(h)
    with xbp.no_grad():
        h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()
    Exp = make_exp(Function)
    y = Exp.apply(x * 1)
    with xbp.no_grad():
        y.mul_(2.0)                            # the saved output itself
    with pytest.raises(RuntimeError, match="saved tensor 0 .* version 1, saved at version 0"):
        y.sum().backward()


def test_output_that_is_an_input(device):
    class Ident(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x, x + y

        @staticmethod
        def backward(ctx, ga, gb):
            return ga + gb, gb

    x, a = rand((3,), device)
    y, b = rand((3,), device, seed=3)
    p, q = Ident.apply(x, y)
    assert p is not x and x.is_leaf and x.grad_fn is None and p.grad_fn is not None
    np.testing.assert_array_equal(to_np(p), a)
    (p * 2 + q).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), np.full(3, 3.0))
    np.testing.assert_allclose(to_np(y.grad), np.full(3, 1.0))


def test_wrong_gradients_are_refused_clearly(device):
    def make(result):
        class Bad(Function):
            @staticmethod
            def forward(ctx, x, n):
                return x * n

            @staticmethod
            def backward(ctx, g):
                return result(g)
        return Bad

    x, _ = rand((2, 3), device)
    with pytest.raises(RuntimeError, match=r"incorrect number of gradients \(expected 2, got 1\)"):
        make(lambda g: g).apply(x, 2).sum().backward()
    with pytest.raises(RuntimeError, match="different than None at position 2"):
        make(lambda g: (g, g)).apply(x, 2).sum().backward()
    with pytest.raises(RuntimeError, match=r"invalid gradient at position 1: shape \(3, 2\)"):
        make(lambda g: (g.reshape(3, 2), None)).apply(x, 2).sum().backward()
    with pytest.raises(TypeError, match="returned a int"):
        make(lambda g: (5, None)).apply(x, 2).sum().backward()
    # extra trailing Nones are allowed (as in PyTorch), and a broadcast-shaped gradient is summed back
    out = make(lambda g: (g.unsqueeze(0).expand(4, 2, 3), None, None)).apply(x, 2)
    out.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), np.full((2, 3), 4.0))


def test_save_for_backward_refuses_non_tensors(device):
    class Keep(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, 3)
            return x

        @staticmethod
        def backward(ctx, g):
            return g

    x, _ = rand((2,), device)
    with pytest.raises(TypeError, match="save_for_backward can only save Tensors"):
        Keep.apply(x)


def test_once_differentiable(device):
    torch = pytest.importorskip("torch")
    Sq = make_once(Function, once_differentiable)
    x, a = rand((3,), device)
    Sq.apply(x).sum().backward()
    from torch.autograd.function import once_differentiable as tonce
    xt = torch.tensor(a, requires_grad=True)
    make_once(torch.autograd.Function, tonce).apply(xt).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-12)
    assert gradcheck(Sq.apply, (x,))
    (g,) = xbp.grad(Sq.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(to_np(g), 2 * a, rtol=1e-12)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_setup_context_style_matches_classic(device):
    class MulAdd(Function):
        @staticmethod
        def forward(x, w, bias=0.5):
            return x * w + bias

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, w, bias = inputs
            ctx.bias = bias
            ctx.save_for_backward(x, w)

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return g * w, g * x, None

    x, a = rand((3,), device)
    w, b = rand((3,), device, seed=5)
    y = MulAdd.apply(x, w=w)
    np.testing.assert_allclose(to_np(y), a * b + 0.5, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), b, rtol=1e-12)
    np.testing.assert_allclose(to_np(w.grad), a, rtol=1e-12)
    assert gradcheck(lambda x, w: MulAdd.apply(x, w, 2.0), (x, w))


def test_tensor_given_by_keyword_gets_its_gradient(device):
    S = make_scaled_split(Function, xbp.cat)
    x, a = rand((4,), device)
    w, b = rand((4,), device, seed=4)
    p, q = S.apply(x, k=2, w=w)
    (p.sum() + q.sum()).backward()
    np.testing.assert_allclose(to_np(w.grad), np.concatenate([a[:2], np.cos(a[2:] * b[2:]) * a[2:]]), rtol=1e-12)


def test_graph_freed_after_backward_unless_retained(device):
    Exp = make_exp(Function)
    x, a = rand((2,), device)
    y = Exp.apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * np.exp(a), rtol=1e-12)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_hooks_on_outputs_and_calling_an_instance(device):
    S = make_scaled_split(Function, xbp.cat)
    x, a = rand((4,), device)
    w, b = rand((4,), device, seed=4, requires_grad=False)
    p, q = S.apply(x, w, 2)
    seen = []
    q.register_hook(lambda g: seen.append(to_np(g)))
    (p.sum() + 3 * q.sum()).backward()
    np.testing.assert_array_equal(seen[0], np.full(2, 3.0))
    assert w.grad is None
    with pytest.raises(RuntimeError, match=r"\.apply\("):
        S()(x, w, 2)


def test_function_inside_func_transforms(device):
    """A custom Function composes with xbp.func: hessian of sum(Cube(x)) is diag(6x)."""
    Cube = make_cube(Function)
    x, a = rand((3,), device)
    H = xbp.func.hessian(lambda t: Cube.apply(t).sum())(x.detach())
    np.testing.assert_allclose(to_np(H), np.diag(6 * a), rtol=1e-12, atol=1e-12)
    J = xbp.func.jacfwd(make_exp(Function).apply)(x.detach())
    np.testing.assert_allclose(to_np(J), np.diag(np.exp(a)), rtol=1e-12)


def test_vjp_is_an_alias_of_backward(device):
    class Twice(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def vjp(ctx, g):
            return g * 2

    x, _ = rand((3,), device)
    Twice.apply(x).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), np.full(3, 2.0))

    class Both(Twice):
        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(RuntimeError, match="both backward and vjp"):
        Both.apply(x).sum().backward()


def test_saved_output_makes_no_reference_cycle(device):
    """A saved output is kept like PyTorch's SavedVariable: dropping the output frees its node at
    once (no cycle output -> node -> ctx -> output left for the garbage collector)."""
    import gc
    import weakref
    Exp = make_exp(Function)
    x, a = rand((3,), device)
    gc.disable()
    try:
        y = Exp.apply(x)
        node = weakref.ref(y.grad_fn)
        del y
        assert node() is None
    finally:
        gc.enable()
    y = Exp.apply(x)
    (saved,) = y.grad_fn.res.saved_tensors
    assert saved.grad_fn is y.grad_fn and saved._version is y._version
    np.testing.assert_allclose(to_np(saved), np.exp(a), rtol=1e-12)


def test_multi_output_saving_outputs_double_backward(device):
    class Exps(Function):
        @staticmethod
        def forward(ctx, x):
            y1, y2 = x.exp(), (x * 2).exp()
            ctx.save_for_backward(y1, y2)
            return y1, y2

        @staticmethod
        def backward(ctx, g1, g2):
            y1, y2 = ctx.saved_tensors
            return g1 * y1 + g2 * 2 * y2

    x, a = rand((3,), device)
    y1, y2 = Exps.apply(x)
    (g,) = xbp.grad((y1 + y2).sum(), x, create_graph=True)
    np.testing.assert_allclose(to_np(g), np.exp(a) + 2 * np.exp(2 * a), rtol=1e-12)
    (h,) = xbp.grad(g.sum(), x)
    np.testing.assert_allclose(to_np(h), np.exp(a) + 4 * np.exp(2 * a), rtol=1e-12)
    assert gradgradcheck(Exps.apply, (x,))


def test_gradient_dtype_is_cast_to_the_inputs(device):
    class Up(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.to(xbp.float64) * 2           # a float64 gradient for a float32 input

    x, a = rand((3,), device, dtype=np.float32)
    Up.apply(x).sum().backward()
    assert x.grad.dtype == xbp.float32
    np.testing.assert_array_equal(to_np(x.grad), np.full(3, 2.0, dtype=np.float32))
