"""The op table (tests/op_specs.py) swept over devices: forward against the NumPy reference,
float32 in -> float32 out, gradcheck in float64, and gradgradcheck for the smooth rows."""
import warnings

import numpy as np
import pytest

import xbp
from xbp.autograd import gradcheck, gradgradcheck

from op_specs import NC, SPECS

CASES = [pytest.param(spec, i, id=f"{spec.name}-{i}") for spec in SPECS for i in range(len(spec.cases))]
GRAD_CASES = [p for p in CASES if p.values[0].grad]
SMOOTH_CASES = [p for p in GRAD_CASES if p.values[0].smooth]


def _case(spec, i):
    c = spec.cases[i]
    # a case is one input spec (unary) or a tuple of them
    if isinstance(c, NC) or (isinstance(c, tuple) and all(isinstance(s, int) for s in c)):
        return (c,)
    return c


def _domain(spec, k):
    d = spec.domain
    return d[k] if isinstance(d, list) else d


def _values(rng, shape, domain):
    if domain == "away0":
        mag = rng.uniform(0.3, 1.0, size=shape)
        return np.where(rng.uniform(size=shape) < 0.5, -mag, mag)
    lo, hi = domain
    return rng.uniform(lo, hi, size=shape)


def make_inputs(spec, i, device, dtype=np.float64, seed=0):
    """-> (leaves, transform, arrays): leaves are the tensors gradcheck perturbs; transform(*leaves)
    gives what the op receives (transposed views for NC inputs); arrays are the NumPy values the op
    receives (for the reference)."""
    rng = np.random.default_rng(seed)
    leaves, arrays, flags = [], [], []
    for k, s in enumerate(_case(spec, i)):
        nc = isinstance(s, NC)
        shape = s.shape if nc else s
        a = _values(rng, shape, _domain(spec, k)).astype(dtype)
        arrays.append(a)
        leaf_vals = np.ascontiguousarray(a.T) if nc else a
        leaves.append(xbp.tensor(leaf_vals, device=device, requires_grad=spec.grad))
        flags.append(nc)

    def transform(*ts):
        return tuple(t.T if nc else t for t, nc in zip(ts, flags))
    return leaves, transform, arrays


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@pytest.mark.parametrize("spec,i", CASES)
def test_forward(spec, i, device):
    leaves, transform, arrays = make_inputs(spec, i, device)
    before = [leaf.detach().numpy() for leaf in leaves]
    outs = _tuple(spec.fn(*transform(*leaves)))
    refs = _tuple(spec.ref(*arrays))
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        assert isinstance(o, xbp.Tensor)
        assert o.device == xbp.tensor(0.0, device=device).device
        r = np.asarray(r)
        assert o.shape == r.shape, f"{spec.name}: shape {o.shape} != reference {r.shape}"
        np.testing.assert_allclose(o.detach().numpy(), r, atol=spec.atol, rtol=spec.rtol)
    for leaf, b in zip(leaves, before):      # forward must not modify its inputs
        np.testing.assert_array_equal(leaf.detach().numpy(), b)


@pytest.mark.parametrize("spec,i", [p for p in CASES if p.values[0].float32_ok])
def test_float32_stays_float32(spec, i, device):
    leaves, transform, _ = make_inputs(spec, i, device, dtype=np.float32)
    for o in _tuple(spec.fn(*transform(*leaves))):
        assert o.dtype == xbp.float32, f"{spec.name}: float32 inputs gave {o.dtype}"


@pytest.mark.parametrize("spec,i", GRAD_CASES)
def test_gradcheck(spec, i, device):
    leaves, transform, _ = make_inputs(spec, i, device)
    assert gradcheck(lambda *ts: spec.fn(*transform(*ts)), leaves)


@pytest.mark.parametrize("spec,i", SMOOTH_CASES)
def test_gradgradcheck(spec, i, device):
    leaves, transform, _ = make_inputs(spec, i, device)
    assert gradgradcheck(lambda *ts: spec.fn(*transform(*ts)), leaves)


def test_table_covers_the_issue_list():
    required = """add sub mul div neg pow exp log log1p expm1 sqrt rsqrt abs sign sin cos tanh sigmoid relu
    leaky_relu elu gelu gelu_tanh silu softplus maximum minimum clamp where sum mean prod max min amax amin
    var std logsumexp norm matmul linear reshape view flatten transpose permute swapaxes expand
    broadcast_to squeeze unsqueeze cat stack split chunk flip roll pad take_along_dim gather getitem_slices
    getitem_none_ellipsis getitem_list getitem_mask softmax log_softmax one_hot""".split()
    names = {s.name for s in SPECS}
    prefixes = {n.split("_")[0] for n in names}
    missing = [r for r in required if r not in names and r not in prefixes and not any(n.startswith(r) for n in names)]
    assert not missing, missing
    assert any(s.name.startswith("einsum") for s in SPECS)


@pytest.mark.parametrize("spec,i", [p for p in GRAD_CASES if p.values[0].float32_ok])
def test_float32_gradients_stay_float32(spec, i, device):
    # gradients are captured at non-leaf copies of the inputs, where nothing casts them back
    leaves, transform, _ = make_inputs(spec, i, device, dtype=np.float32)
    mids = [leaf * 1.0 for leaf in leaves]
    outs = [o for o in _tuple(spec.fn(*transform(*mids))) if o.requires_grad]
    grads = xbp.grad(outs, mids, [xbp.ones_like(o) for o in outs], allow_unused=True)
    for g in grads:
        assert g is None or g.dtype == xbp.float32, f"{spec.name}: float32 inputs got {g.dtype} gradients"


# --- max/min with ties: PyTorch's gradient routing -------------------------------------------------
TIES = np.array([[[1.0, 3.0, 3.0, -2.0], [2.0, 2.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0]],
                 [[0.0, -1.0, 0.0, -1.0], [4.0, 1.0, 4.0, 1.0], [-3.0, -3.0, 7.0, 7.0]]])


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim_gradient_goes_to_the_returned_index(device, op, dim, keepdim):
    # max(x, dim) gathers the values at the indices it returns, so the whole gradient goes to that
    # element (the first of ties), as in PyTorch; amax shares it among ties
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(0).normal(size=np.max(TIES, axis=dim, keepdims=keepdim).shape)
    x = xbp.tensor(TIES, device=device, requires_grad=True)
    t = torch.tensor(TIES, requires_grad=True)
    values, indices = getattr(x, op)(dim, keepdim=keepdim)
    tv, ti = getattr(t, op)(dim, keepdim=keepdim)
    (values * xbp.tensor(w, device=device)).sum().backward()
    (tv * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(values.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(indices.numpy(), ti.numpy())
    assert not indices.requires_grad and indices.dtype == xbp.int64
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    # independent NumPy reference: w placed at the first extreme along dim
    arg = np.argmax if op == "max" else np.argmin
    ref = np.zeros_like(TIES)
    wk = w if keepdim else np.expand_dims(w, dim)
    np.put_along_axis(ref, arg(TIES, axis=dim, keepdims=True), wk, axis=dim)
    np.testing.assert_array_equal(x.grad.numpy(), ref)


@pytest.mark.parametrize("fn", ["amax_dim", "amin_dim", "max_all", "min_all", "amax_all"])
def test_amax_and_full_max_share_the_gradient_among_ties(device, fn):
    torch = pytest.importorskip("torch")
    a = TIES if "min" not in fn else -TIES
    x = xbp.tensor(a, device=device, requires_grad=True)
    t = torch.tensor(a, requires_grad=True)
    name = fn.split("_")[0]
    if fn.endswith("_dim"):
        getattr(x, name)(-1).sum().backward()
        getattr(t, name)(-1).sum().backward()
    else:
        getattr(x, name)().backward()
        getattr(t, name)().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())
    assert (x.grad.numpy() > 0).sum() > 1          # the ties really share it


def test_max_dim_second_order_and_0d(device):
    torch = pytest.importorskip("torch")
    x = xbp.tensor(TIES, device=device, requires_grad=True)
    t = torch.tensor(TIES, requires_grad=True)
    (g,) = xbp.grad((x.max(1).values ** 2).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad((t.max(1).values ** 2).sum(), [t], create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), tg.detach().numpy())
    (g * g).sum().backward()
    (tg * tg).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    s = xbp.tensor(2.5, device=device, requires_grad=True)
    v, i = s.min(-1, keepdim=True)
    v.backward()
    assert v.shape == () and i.tolist() == 0 and s.grad.tolist() == 1.0
    with pytest.raises(TypeError, match="amax"):
        x.max((0, 1))


@pytest.mark.parametrize("name", ["softplus", "silu"])
def test_softplus_silu_backward_do_not_overflow_for_large_negative_inputs(name):
    # d softplus/dx = sigmoid(x) and silu's derivative use the overflow-free sigmoid: no
    # RuntimeWarning from exp(-x) = inf, and the gradients match the closed forms in float64
    x_np = np.array([-1000.0, -80.0, -5.0, 0.0, 5.0, 80.0])
    x = xbp.tensor(x_np, requires_grad=True)
    f = getattr(xbp.nn.functional, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(x).sum().backward()
    sig = np.exp(-np.logaddexp(0.0, -x_np))            # sigmoid, stable
    want = sig if name == "softplus" else sig * (1.0 + x_np * (1.0 - sig))
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-300)
