"""The PyTorch-shaped tensor surface: graph introspection, xbp.Size, keyword aliases, out=,
overloads, default dtype, predicates and random generators. PyTorch 2.13 is the oracle where it
has the same function; NumPy written here otherwise."""
import pickle
import warnings

import numpy as np
import pytest

import xbp
from conftest import to_np

torch = pytest.importorskip("torch")
F = xbp.nn.functional


def _pair(shape, device, seed=0, requires_grad=False, dtype=np.float32):
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return (xbp.tensor(a, device=device, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _close(x, t, tol=1e-5):
    np.testing.assert_allclose(to_np(x), t.detach().numpy(), rtol=tol, atol=tol)


# --- graph introspection ---------------------------------------------------------------------------
NODE_CASES = {
    "mul": lambda m, a, b, v: a * b, "add scalar": lambda m, a, b, v: a + 1.0,
    "add": lambda m, a, b, v: a + b, "sub": lambda m, a, b, v: a - b, "rsub": lambda m, a, b, v: 1.0 - a,
    "div": lambda m, a, b, v: a / b, "pow scalar": lambda m, a, b, v: a ** 2, "pow tensor": lambda m, a, b, v: a ** b,
    "rpow": lambda m, a, b, v: 2.0 ** a, "neg": lambda m, a, b, v: -a, "exp": lambda m, a, b, v: a.exp(),
    "log1p": lambda m, a, b, v: (a * a).log1p(), "sum": lambda m, a, b, v: a.sum(),
    "sum dim": lambda m, a, b, v: a.sum(0), "mean": lambda m, a, b, v: a.mean(),
    "mean dim": lambda m, a, b, v: a.mean(1), "prod dim": lambda m, a, b, v: a.prod(0),
    "amax": lambda m, a, b, v: a.amax(0), "max dim": lambda m, a, b, v: a.max(0)[0],
    "min dim keepdim": lambda m, a, b, v: a.min(1, keepdim=True)[0],
    "mm": lambda m, a, b, v: a @ b.T, "mv": lambda m, a, b, v: a @ v, "dot": lambda m, a, b, v: v @ v,
    "addmm": lambda m, a, b, v: m.nn.functional.linear(a, b, b[:, 0]),
    "linear no bias": lambda m, a, b, v: m.nn.functional.linear(a, b),
    "softmax": lambda m, a, b, v: a.softmax(-1), "log_softmax": lambda m, a, b, v: a.log_softmax(-1),
    "relu": lambda m, a, b, v: a.relu(), "sigmoid": lambda m, a, b, v: a.sigmoid(), "tanh": lambda m, a, b, v: a.tanh(),
    "view": lambda m, a, b, v: a.reshape(-1), "permute": lambda m, a, b, v: a.permute(1, 0),
    "expand": lambda m, a, b, v: a[:1].expand(3, 3), "cat": lambda m, a, b, v: m.cat([a, b]),
    "select": lambda m, a, b, v: a[0], "slice": lambda m, a, b, v: a[1:],
    "clamp": lambda m, a, b, v: a.clamp(0, 1), "where": lambda m, a, b, v: m.where(a > 0, a, b),
    "maximum": lambda m, a, b, v: m.maximum(a, b), "clone": lambda m, a, b, v: a.clone(),
    "to double": lambda m, a, b, v: a.double(), "gelu": lambda m, a, b, v: m.nn.functional.gelu(a),
    "cross_entropy": lambda m, a, b, v: m.nn.functional.cross_entropy(a, m.tensor([0, 1, 2])),
    "cumsum": lambda m, a, b, v: a.cumsum(0), "flip": lambda m, a, b, v: a.flip(0),
    "layer_norm": lambda m, a, b, v: m.nn.functional.layer_norm(a, (3,)),
    "batch_norm": lambda m, a, b, v: m.nn.functional.batch_norm(a, None, None, training=True),
    "index_select": lambda m, a, b, v: m.index_select(a, 0, m.tensor([2, 0])),
    "index": lambda m, a, b, v: a[m.tensor([2, 0])], "stack": lambda m, a, b, v: m.stack([a, b], 1),
    "embedding": lambda m, a, b, v: m.nn.functional.embedding(m.tensor([[0, 2]]), a),
    "conv2d": lambda m, a, b, v: m.nn.functional.conv2d(a.reshape(1, 1, 3, 3), b.reshape(1, 1, 3, 3)),
    "max_pool2d": lambda m, a, b, v: m.nn.functional.max_pool2d(a.reshape(1, 1, 3, 3), 2),
    "bce_logits none": lambda m, a, b, v: m.nn.functional.binary_cross_entropy_with_logits(
        a, b.detach().sigmoid(), reduction="none"),
}
# Functions xbp composes from several primitives show their last primitive's node (logsumexp
# ends in a reshape: ViewBackward0; mse_loss and the reduced BCE losses in MeanBackward0), where
# PyTorch has one node.


@pytest.mark.parametrize("name", list(NODE_CASES))
def test_grad_fn_names_match_torch(name):
    f = NODE_CASES[name]
    rng = np.random.default_rng(1)
    arrays = [rng.uniform(0.5, 1.5, s).astype(np.float32) for s in ((3, 3), (3, 3), (3,))]
    xs = [xbp.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = f(xbp, *xs), f(torch, *ts)
    assert out.grad_fn.name() == type(ref.grad_fn).__name__
    assert f"grad_fn=<{type(ref.grad_fn).__name__}>" in repr(out)


def _structure(node, leaves, name):
    """A graph as nested (name, children) using leaf names for AccumulateGrad nodes."""
    if node is None:
        return None
    if name(node) == "AccumulateGrad":
        return ("AccumulateGrad", leaves[id(node.variable)])
    return (name(node), tuple(_structure(n, leaves, name) for n, _ in node.next_functions))


def test_next_functions_match_torch(device):
    arrays = [np.random.default_rng(i).standard_normal((2, 3)).astype(np.float32) for i in range(3)]
    x, w = (xbp.tensor(a, device=device, requires_grad=True) for a in arrays[:2])
    c = xbp.tensor(arrays[2], device=device)                         # no grad: (None, 0)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in arrays[:2])
    tc = torch.tensor(arrays[2])
    z = ((x * w + c).exp() * x).sum()
    tz = ((tx * tw + tc).exp() * tx).sum()
    names = {id(x): "x", id(w): "w"}
    tnames = {id(tx): "x", id(tw): "w"}
    mine = _structure(z.grad_fn, names, lambda n: n.name())
    assert mine == _structure(tz.grad_fn, tnames, lambda n: type(n).__name__)
    assert mine[0] == "SumBackward0"
    pairs = (x * w + c).grad_fn.next_functions
    assert isinstance(pairs, tuple) and len(pairs) == 2 and pairs[1] == (None, 0)
    acc = pairs[0][0].next_functions[0][0]
    assert acc.name() == "AccumulateGrad" and acc.variable is x and acc.next_functions == ()
    assert (x * w).grad_fn.prim.name == "mul"           # the primitive's name, for xbp.viz
    assert "MulBackward0" in repr((x * w).grad_fn)


# --- xbp.Size -------------------------------------------------------------------------------------
def test_size_is_a_tuple_that_prints_like_torch(device):
    x = xbp.zeros(3, 4, 5, device=device)
    t = torch.zeros(3, 4, 5)
    s = x.shape
    assert type(s) is xbp.Size and isinstance(s, tuple)
    assert s == (3, 4, 5) and x.size() == s and hash(s) == hash((3, 4, 5))
    assert repr(s) == repr(t.shape).replace("torch.", "xbp.") == "xbp.Size([3, 4, 5])"
    assert str(s) == "xbp.Size([3, 4, 5])" and repr(xbp.zeros(()).shape) == "xbp.Size([])"
    assert s.numel() == t.shape.numel() == 60 and xbp.Size([]).numel() == 1
    assert type(s[1:]) is xbp.Size and s[1:] == (4, 5) and s[-1] == 5 and type(s[0]) is int
    assert type(s + (6,)) is xbp.Size and (2,) + s == (2, 3, 4, 5)
    assert x.size(-1) == t.size(-1) == 5 and x.size(0) == 3
    with pytest.raises(IndexError):
        x.size(3)
    with pytest.raises(IndexError) as theirs:
        torch.zeros(()).size(0)
    with pytest.raises(IndexError, match="no dimensions"):
        xbp.zeros((), device=device).size(0)
    assert "no dimensions" in str(theirs.value)
    assert pickle.loads(pickle.dumps(s)) == s and type(pickle.loads(pickle.dumps(s))) is xbp.Size
    assert xbp.Size([2, 3]) == (2, 3) and xbp.zeros(xbp.Size([2, 3]), device=device).shape == (2, 3)
    assert f"{s}" == "(3, 4, 5)"                         # f-strings keep the tuple (error messages)
    with pytest.raises(TypeError):
        xbp.Size([2.5])


# --- keyword aliases ------------------------------------------------------------------------------
ALIAS_CASES = {
    # name: (xbp call with aliases, torch call with PyTorch's spelling)
    "sum": (lambda m, x: m.sum(x, axis=1, keepdims=True), lambda x: torch.sum(x, dim=1, keepdim=True)),
    "mean": (lambda m, x: m.mean(x, axis=(0, 1)), lambda x: torch.mean(x, dim=(0, 1))),
    "amax": (lambda m, x: m.amax(x, axis=0, keepdims=True), lambda x: torch.amax(x, 0, True)),
    "max": (lambda m, x: m.max(x, axis=1, keepdims=True)[0], lambda x: torch.max(x, 1, True)[0]),
    "min": (lambda m, x: m.min(x, axis=0)[0], lambda x: torch.min(x, 0)[0]),
    "argmax": (lambda m, x: m.argmax(x, axis=1, keepdims=True), lambda x: torch.argmax(x, 1, True)),
    "argmin": (lambda m, x: m.argmin(x, axis=0), lambda x: torch.argmin(x, 0)),
    "var": (lambda m, x: m.var(x, axis=1, keepdims=True), lambda x: torch.var(x, 1, keepdim=True)),
    "logsumexp": (lambda m, x: m.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, 1)),
    "norm": (lambda m, x: m.norm(x, dim=1, keepdims=True), lambda x: torch.norm(x, dim=1, keepdim=True)),
    "all": (lambda m, x: m.all(x > 0, axis=1), lambda x: torch.all(x > 0, dim=1)),
    "any": (lambda m, x: m.any(x > 0, axis=0, keepdims=True), lambda x: torch.any(x > 0, 0, True)),
    "softmax": (lambda m, x: m.softmax(x, axis=0), lambda x: torch.softmax(x, 0)),
    "log_softmax": (lambda m, x: m.log_softmax(x, axis=0), lambda x: torch.log_softmax(x, 0)),
    "F.softmax dtype": (lambda m, x: m.nn.functional.softmax(x, dim=1, dtype=m.float64),
                        lambda x: torch.nn.functional.softmax(x, dim=1, dtype=torch.float64)),
    "cumsum": (lambda m, x: m.cumsum(x, axis=1), lambda x: torch.cumsum(x, 1)),
    "cat": (lambda m, x: m.cat([x, x], axis=1), lambda x: torch.cat([x, x], 1)),
    "stack": (lambda m, x: m.stack([x, x], axis=2), lambda x: torch.stack([x, x], 2)),
    "flip": (lambda m, x: m.flip(x, axis=(0,)), lambda x: torch.flip(x, (0,))),
    "squeeze": (lambda m, x: m.squeeze(m.unsqueeze(x, axis=0), axis=0), lambda x: x),
    "unsqueeze": (lambda m, x: m.unsqueeze(x, axis=-1), lambda x: torch.unsqueeze(x, -1)),
    "chunk": (lambda m, x: m.chunk(x, 2, axis=1)[0], lambda x: torch.chunk(x, 2, 1)[0]),
    "unbind": (lambda m, x: m.unbind(x, axis=1)[2], lambda x: torch.unbind(x, 1)[2]),
    "gather": (lambda m, x: m.gather(x, axis=1, index=m.tensor([[0], [2], [1]], device=x.device)),
               lambda x: torch.gather(x, 1, torch.tensor([[0], [2], [1]]))),
    "index_select": (lambda m, x: m.index_select(x, axis=1, index=m.tensor([2, 0], device=x.device)),
                     lambda x: torch.index_select(x, 1, torch.tensor([2, 0]))),
    "repeat_interleave": (lambda m, x: m.repeat_interleave(x, 2, axis=1), lambda x: torch.repeat_interleave(x, 2, 1)),
    "swapaxes": (lambda m, x: m.swapaxes(x, axis0=0, axis1=1), lambda x: torch.swapaxes(x, axis0=0, axis1=1)),
    "transpose": (lambda m, x: m.transpose(x, dim0=1, dim1=0), lambda x: torch.transpose(x, dim0=1, dim1=0)),
    "mean dtype": (lambda m, x: m.mean(x, 1, dtype=m.float64), lambda x: torch.mean(x, 1, dtype=torch.float64)),
    "prod dtype": (lambda m, x: m.prod(x, axis=0, dtype=m.float64), lambda x: torch.prod(x, 0, dtype=torch.float64)),
    "cumsum dtype": (lambda m, x: m.cumsum(x, axis=0, dtype=m.float64), lambda x: torch.cumsum(x, 0, dtype=torch.float64)),
    # Tensor methods
    "T.max": (lambda m, x: x.max(axis=0).values, lambda x: x.max(0).values),
    "T.argmax": (lambda m, x: x.argmax(axis=1), lambda x: x.argmax(1)),
    "T.softmax": (lambda m, x: x.softmax(axis=1), lambda x: x.softmax(1)),
    "T.cumsum": (lambda m, x: x.cumsum(axis=0), lambda x: x.cumsum(0)),
    "T.mean": (lambda m, x: x.mean(axis=1, keepdims=True), lambda x: x.mean(1, keepdim=True)),
    "T.flip varargs": (lambda m, x: x.flip(0, 1), lambda x: x.flip(0, 1)),
    "T.squeeze": (lambda m, x: x[None].squeeze(axis=0), lambda x: x[None].squeeze(0)),
    "T.std": (lambda m, x: x.std(axis=0, keepdims=True), lambda x: x.std(0, keepdim=True)),
    "T.logsumexp": (lambda m, x: x.logsumexp(axis=1, keepdims=True), lambda x: x.logsumexp(1, keepdim=True)),
    "T.norm": (lambda m, x: x.norm(axis=0), lambda x: x.norm(dim=0)),
}


@pytest.mark.parametrize("name", list(ALIAS_CASES))
def test_keyword_aliases_match_torch(name, device):
    mine, ref = ALIAS_CASES[name]
    x, t = _pair((3, 4), device)
    out, expected = mine(xbp, x), ref(t)
    assert tuple(out.shape) == tuple(expected.shape)
    assert out.dtype == np.dtype(str(expected.dtype).split(".")[1])
    if expected.dtype == torch.bool or not expected.is_floating_point():
        assert to_np(out).tolist() == expected.numpy().tolist()
    else:
        _close(out, expected)


def test_aliases_keep_gradients(device):
    x, t = _pair((3, 4), device, requires_grad=True)
    (xbp.softmax(x, axis=0) * xbp.cumsum(x, axis=1)).sum(axis=(0, 1)).backward()
    (torch.softmax(t, 0) * torch.cumsum(t, 1)).sum().backward()
    _close(x.grad, t.grad)


def test_alias_and_name_together_is_an_error(device):
    x = xbp.zeros(2, 3, device=device)
    for call in (lambda: xbp.sum(x, dim=0, axis=1), lambda: x.max(dim=0, axis=1),
                 lambda: xbp.cat([x, x], dim=1, axis=0), lambda: xbp.mean(x, 0, keepdim=True, keepdims=True)):
        with pytest.raises(TypeError, match="axis=|keepdims="):
            call()


def test_input_other_keywords_and_alpha(device):
    a, ta = _pair((2, 3), device, 0)
    b, tb = _pair((3, 2), device, 1)
    c, tc = _pair((2, 3), device, 2)
    _close(xbp.matmul(input=a, other=b), torch.matmul(input=ta, other=tb))
    _close(xbp.add(input=a, other=c, alpha=2.5), torch.add(input=ta, other=tc, alpha=2.5))
    _close(xbp.sub(a, c, alpha=-3), torch.sub(ta, tc, alpha=-3))
    _close(xbp.mul(input=a, other=c), torch.mul(input=ta, other=tc))
    _close(a.add(c, alpha=2), ta.add(tc, alpha=2))
    _close(xbp.pow(xbp.abs(a), exponent=1.5), torch.pow(ta.abs(), exponent=1.5))
    ints = np.array([-7, -6, 5, 7])
    for mode in ("trunc", "floor"):
        got = xbp.div(xbp.tensor(ints, device=device), 2, rounding_mode=mode)
        assert to_np(got).tolist() == torch.div(torch.tensor(ints), 2, rounding_mode=mode).tolist()
        _close(xbp.div(a, 0.3, rounding_mode=mode), torch.div(ta, 0.3, rounding_mode=mode))


# --- out= -----------------------------------------------------------------------------------------
OUT_CASES = {
    "add": (lambda m, a, b, o: m.add(a, b, out=o), lambda a, b, o: torch.add(a, b, out=o), (2, 3)),
    "add alpha": (lambda m, a, b, o: m.add(a, b, alpha=2, out=o), lambda a, b, o: torch.add(a, b, alpha=2, out=o), (2, 3)),
    "sub": (lambda m, a, b, o: m.sub(a, b, out=o), lambda a, b, o: torch.sub(a, b, out=o), (2, 3)),
    "mul": (lambda m, a, b, o: m.mul(a, 3.0, out=o), lambda a, b, o: torch.mul(a, 3.0, out=o), (2, 3)),
    "div": (lambda m, a, b, o: m.div(a, b, out=o), lambda a, b, o: torch.div(a, b, out=o), (2, 3)),
    "pow": (lambda m, a, b, o: m.pow(m.abs(a), 2.0, out=o), lambda a, b, o: torch.pow(a.abs(), 2.0, out=o), (2, 3)),
    "exp": (lambda m, a, b, o: m.exp(a, out=o), lambda a, b, o: torch.exp(a, out=o), (2, 3)),
    "maximum": (lambda m, a, b, o: m.maximum(a, b, out=o), lambda a, b, o: torch.maximum(a, b, out=o), (2, 3)),
    "clamp": (lambda m, a, b, o: m.clamp(a, -0.5, 0.5, out=o), lambda a, b, o: torch.clamp(a, -0.5, 0.5, out=o), (2, 3)),
    "where": (lambda m, a, b, o: m.where(a > b, a, b, out=o), lambda a, b, o: torch.where(a > b, a, b, out=o), (2, 3)),
    "floor": (lambda m, a, b, o: m.floor(a * 3, out=o), lambda a, b, o: torch.floor(a * 3, out=o), (2, 3)),
    "gt into float": (lambda m, a, b, o: m.gt(a, b, out=o), lambda a, b, o: torch.gt(a, b, out=o), (2, 3)),
    "matmul": (lambda m, a, b, o: m.matmul(a, b.T, out=o), lambda a, b, o: torch.matmul(a, b.T, out=o), (2, 2)),
    "cat": (lambda m, a, b, o: m.cat([a, b], 0, out=o), lambda a, b, o: torch.cat([a, b], 0, out=o), (4, 3)),
    "stack": (lambda m, a, b, o: m.stack([a, b], 1, out=o), lambda a, b, o: torch.stack([a, b], 1, out=o), (2, 2, 3)),
}


@pytest.mark.parametrize("name", list(OUT_CASES))
def test_out_writes_into_the_given_tensor(name, device):
    mine, ref, shape = OUT_CASES[name]
    a, ta = _pair((2, 3), device, 0)
    b, tb = _pair((2, 3), device, 1)
    o = xbp.zeros(*shape, device=device)
    to = torch.zeros(*shape)
    r = mine(xbp, a, b, o)
    ref(ta, tb, to)
    assert r is o
    _close(o, to)


@pytest.mark.parametrize("name", ["add", "matmul", "cat", "exp"])
def test_out_refused_when_grad_is_needed(name, device):
    mine, ref, shape = OUT_CASES[name]
    a, ta = _pair((2, 3), device, 0, requires_grad=True)
    b, tb = _pair((2, 3), device, 1)
    with pytest.raises(RuntimeError) as theirs:
        ref(ta, tb, torch.zeros(*shape))
    with pytest.raises(RuntimeError) as ours:
        mine(xbp, a, b, xbp.zeros(*shape, device=device))
    assert str(ours.value) == str(theirs.value)
    assert "don't support automatic differentiation" in str(ours.value)
    with xbp.no_grad():                                        # allowed without autograd, as in torch
        o = xbp.zeros(*shape, device=device)
        assert mine(xbp, a, b, o) is o and not o.requires_grad
    out_rg = xbp.zeros(*shape, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        mine(xbp, a.detach(), b, out_rg)


def test_out_dtype_shape_and_views(device):
    a, ta = _pair((2, 3), device)
    with pytest.raises(RuntimeError) as theirs:
        torch.add(ta, 1.5, out=torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(RuntimeError) as ours:
        xbp.add(a, 1.5, out=xbp.zeros(2, 3, dtype=xbp.int64, device=device))
    assert str(ours.value).startswith(str(theirs.value))
    o64 = xbp.zeros(2, 3, dtype=xbp.float64, device=device)
    xbp.add(a, 1, out=o64)
    assert o64.dtype == xbp.float64
    np.testing.assert_allclose(to_np(o64), ta.numpy().astype(np.float64) + 1, rtol=1e-6)
    small = xbp.zeros(2, device=device)
    with pytest.warns(UserWarning, match="resized"):
        xbp.mul(a, 2.0, out=small)
    assert small.shape == (2, 3)
    _close(small, ta * 2)
    empty = xbp.zeros(0, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xbp.mul(a, 2.0, out=empty)
    assert empty.shape == (2, 3)
    base = xbp.zeros(2, 2, 3, device=device)
    xbp.add(a, 1.0, out=base[1])                                # a view: the write reaches the base
    _close(base[1], ta + 1)
    assert float(base[0].abs().sum()) == 0.0


# --- overloads and small functions ---------------------------------------------------------------
def test_randint_overloads(device):
    a = xbp.randint(5, (200,), device=device)
    b = xbp.randint(3, 7, (2, 100), device=device)
    c = xbp.randint(10, size=(4,), device=device)
    assert a.shape == (200,) and a.dtype == xbp.int64 and set(to_np(a).tolist()) <= set(range(5))
    assert b.shape == (2, 100) and set(to_np(b).ravel().tolist()) <= set(range(3, 7))
    assert c.shape == (4,) and set(to_np(c).tolist()) <= set(range(10))
    assert set(to_np(a).tolist()) == set(range(5))            # 200 draws hit all 5 values
    with pytest.raises(RuntimeError, match="low < high"):
        xbp.randint(5, 5, (2,), device=device)
    like = xbp.randint_like(xbp.zeros(3, 2, dtype=xbp.int32, device=device), 4)
    assert like.shape == (3, 2) and like.dtype == xbp.int32


def test_legacy_tensor_constructors():
    for args in [([1, 2, 3],), ([[1.5, 2], [3, 4]],), (2, 3), (), (torch.Size([2, 3]),)]:
        targs = args
        xargs = (xbp.Size(args[0]),) if args and isinstance(args[0], torch.Size) else args
        x, t = xbp.Tensor(*xargs), torch.Tensor(*targs)
        assert x.dtype == xbp.float32 and tuple(x.shape) == tuple(t.shape)
        if args and isinstance(args[0], list):
            assert to_np(x).tolist() == t.tolist()
        else:
            assert float(x.abs().sum()) == 0.0                   # zeros (torch leaves memory uninitialised)
    assert xbp.Tensor(np.ones(2)).dtype == xbp.float64           # an array is wrapped as is
    with pytest.raises(TypeError):
        xbp.Tensor(["a"])


def test_default_dtype():
    assert xbp.get_default_dtype() == xbp.float32 == np.dtype(str(torch.get_default_dtype()).split(".")[1])
    try:
        xbp.set_default_dtype(xbp.float64)
        assert xbp.tensor([1.5]).dtype == xbp.float64 and xbp.zeros(2).dtype == xbp.float64
        assert xbp.Tensor([1]).dtype == xbp.float64 and xbp.rand(2).dtype == xbp.float64
        assert xbp.tensor([1]).dtype == xbp.int64
        with pytest.raises(TypeError, match="floating-point"):
            xbp.set_default_dtype(xbp.int64)
    finally:
        xbp.set_default_dtype(xbp.float32)
    assert xbp.tensor([1.5]).dtype == xbp.float32


def test_predicates_and_dtype_names(device):
    x = xbp.zeros(2, 3, device=device)
    t = torch.zeros(2, 3)
    assert xbp.is_tensor(x) and not xbp.is_tensor(np.zeros(2)) and torch.is_tensor(t)
    assert xbp.is_floating_point(x) == torch.is_floating_point(t) is True
    assert xbp.is_floating_point(xbp.zeros(2, dtype=xbp.int64, device=device)) is False
    assert xbp.numel(x) == torch.numel(t) == 6
    assert xbp.is_tensor(xbp.nn.Parameter(xbp.zeros(1)))
    with pytest.raises(TypeError, match="is_floating_point"):
        xbp.is_floating_point(np.zeros(2))
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
                 "complex64", "complex128", "uint16", "uint32", "uint64", "half", "float", "double",
                 "long", "int", "short", "cfloat", "cdouble"):
        assert getattr(xbp, name) == np.dtype(str(getattr(torch, name)).split(".")[1]), name
    with pytest.raises(AttributeError, match="bfloat16.*NumPy"):
        xbp.bfloat16


# --- random generators ----------------------------------------------------------------------------
def test_generator_streams(device):
    g1 = xbp.Generator(device=device).manual_seed(123)
    g2 = xbp.Generator(device=device).manual_seed(123)
    assert g1.initial_seed() == 123 and g1.device == xbp.zeros(1, device=device).device
    a = xbp.rand(5, generator=g1, device=device)
    b = xbp.rand(5, generator=g2, device=device)
    assert to_np(a).tolist() == to_np(b).tolist()                           # same seed, same stream
    assert to_np(xbp.rand(5, generator=g1, device=device)).tolist() != to_np(a).tolist()
    g1.manual_seed(123)
    assert to_np(xbp.rand(5, generator=g1, device=device)).tolist() == to_np(a).tolist()
    assert xbp.Generator(device=device).initial_seed() == torch.Generator().initial_seed()


def test_generator_state_round_trip(device):
    g = xbp.Generator(device=device).manual_seed(7)
    xbp.randn(3, generator=g, device=device)
    state = g.get_state()
    assert state.dtype == xbp.uint8 and state.ndim == 1 and state.device == "cpu"
    draws = [xbp.randn(4, generator=g, device=device), xbp.randint(0, 100, (6,), generator=g, device=device),
             xbp.randperm(8, generator=g, device=device), xbp.zeros(3, device=device).uniform_(generator=g)]
    g.set_state(state)
    again = [xbp.randn(4, generator=g, device=device), xbp.randint(0, 100, (6,), generator=g, device=device),
             xbp.randperm(8, generator=g, device=device), xbp.zeros(3, device=device).uniform_(generator=g)]
    for d, e in zip(draws, again):
        assert to_np(d).tolist() == to_np(e).tolist()
    # a copy of the state restores a fresh generator of the same device too
    h = xbp.Generator(device=device).set_state(state.clone())
    assert to_np(xbp.randn(4, generator=h, device=device)).tolist() == to_np(draws[0]).tolist()


def test_generators_are_independent_of_the_global_stream(device):
    xbp.manual_seed(5)
    expected = to_np(xbp.rand(6, device=device)).tolist()
    xbp.manual_seed(5)
    g = xbp.Generator(device=device).manual_seed(99)
    first = to_np(xbp.rand(3, device=device)).tolist()
    xbp.randn(100, generator=g, device=device)                            # draws from g only
    xbp.nn.init.normal_(xbp.zeros(10, device=device), generator=g)
    second = to_np(xbp.rand(3, device=device)).tolist()
    assert first + second == expected


def test_global_rng_state_resumes(device):
    xbp.manual_seed(11)
    xbp.rand(4, device=device)
    state = xbp.get_rng_state(device)
    assert state.dtype == xbp.uint8
    a = to_np(xbp.randn(5, device=device)).tolist()
    xbp.rand(50, device=device)
    xbp.set_rng_state(state, device)
    assert to_np(xbp.randn(5, device=device)).tolist() == a
    assert xbp.random.get_rng_state is xbp.get_rng_state and xbp.random.set_rng_state is xbp.set_rng_state
    with xbp.random.fork_rng(devices=[device]):
        xbp.rand(10, device=device)
    xbp.set_rng_state(state, device)
    b = to_np(xbp.randn(5, device=device)).tolist()
    assert b == a


def test_rng_state_in_a_checkpoint(tmp_path):
    xbp.manual_seed(3)
    g = xbp.Generator().manual_seed(4)
    path = tmp_path / "ckpt.xbp"
    xbp.save({"rng": xbp.get_rng_state(), "gen": g.get_state()}, str(path))
    a, b = xbp.rand(3).tolist(), xbp.rand(3, generator=g).tolist()
    ck = xbp.load(str(path))
    xbp.set_rng_state(ck["rng"])
    g.set_state(ck["gen"])
    assert xbp.rand(3).tolist() == a and xbp.rand(3, generator=g).tolist() == b


def test_generator_errors(device):
    g = xbp.Generator(device="cpu")
    if device != "cpu":
        with pytest.raises(RuntimeError, match="generator is on cpu"):
            xbp.rand(2, generator=g, device=device)
    with pytest.raises(TypeError, match="xbp.Generator"):
        xbp.rand(2, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="uint8"):
        g.set_state(xbp.zeros(3))
    with pytest.raises(TypeError, match="integer"):
        g.manual_seed(1.5)
    s = g.seed()
    assert g.initial_seed() == s
    assert xbp.Generator().manual_seed(-1).initial_seed() == torch.Generator().manual_seed(-1).initial_seed()


# --- a PyTorch-style script, run unchanged on both libraries --------------------------------------
def _script(m, device, emit):
    """A short PyTorch program (spellings as PyTorch users write them) whose printed output is
    compared between torch and xbp. Data comes from NumPy so both see the same numbers."""
    F = m.nn.functional
    rng = np.random.default_rng(0)
    X = m.tensor(rng.standard_normal((8, 5)).astype(np.float32), device=device)
    y = m.tensor(rng.integers(0, 3, 8), device=device)
    W = m.tensor(rng.standard_normal((3, 5)).astype(np.float32) * 0.1, device=device, requires_grad=True)
    b = m.zeros(3, device=device, requires_grad=True)
    emit(X.shape, X.size(1), W, b)
    for step in range(3):
        logits = F.linear(X, W, b)
        loss = F.cross_entropy(logits, y)
        probs = F.softmax(logits, dim=-1)
        top, idx = probs.max(axis=1, keepdims=True)
        emit(step, logits.grad_fn.name(), f"{loss.item():.4f}", top.grad_fn.name(), idx.flatten())
        W.grad = None
        b.grad = None
        loss.backward()
        with m.no_grad():
            W.sub_(W.grad, alpha=0.5)
            b -= 0.5 * b.grad
    with m.no_grad():
        buf = m.empty(8, 3, device=device)
        m.matmul(input=X, other=W.T, out=buf)
        m.add(buf, b, alpha=1.0, out=buf)
        emit(buf.argmax(axis=1), m.cat([buf[:2], buf[-2:]], axis=0))
    emit(m.stack([W.sum(axis=0), W.mean(axis=0)], axis=0), m.flip(X[:2, :3], dims=(1,)))
    # (dtype objects themselves print differently: xbp's are NumPy dtypes, `float32`)
    emit(m.is_tensor(W), m.is_floating_point(y), m.numel(X), m.get_default_dtype() == m.float32)


def test_pytorch_style_script_prints_the_same(device):
    lines = {"torch": [], "xbp": []}
    _script(torch, "cpu", lambda *a: lines["torch"].append(" ".join(str(v) for v in a)))
    old = xbp.get_default_device()
    xbp.set_default_device(device)          # no device suffix, as torch's tensors on its default
    try:
        _script(xbp, device, lambda *a: lines["xbp"].append(" ".join(str(v) for v in a)))
    finally:
        xbp.set_default_device(old)
    assert lines["xbp"] == [s.replace("torch.", "xbp.") for s in lines["torch"]]


# --- conversions and legacy types -----------------------------------------------------------------
LEGACY = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "ShortTensor", "CharTensor",
          "ByteTensor", "BoolTensor"]


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_types_match_torch(name):
    mine, theirs = getattr(xbp, name), getattr(torch, name)
    for args in ([[1, 0, 3]], [[[1.0, 2.0]]], [2, 3]):
        x, t = mine(*args), theirs(*args)
        assert x.dtype == np.dtype(str(t.dtype).split(".")[1]) and tuple(x.shape) == tuple(t.shape)
        if isinstance(args[0], list):
            assert to_np(x).tolist() == t.tolist()
        assert isinstance(x, mine) and not isinstance(x, xbp.FloatTensor if name != "FloatTensor" else xbp.LongTensor)
        assert x.type() == t.type().replace("torch.", "xbp.")


def test_conversion_methods_match_torch(device):
    x, t = _pair((2, 3), device)
    for method in ("half", "float", "double", "long", "int", "short", "char", "byte", "bool"):
        if device == "strict" and method == "half":
            continue
        got, ref = getattr(x, method)(), getattr(t, method)()
        assert got.dtype == np.dtype(str(ref.dtype).split(".")[1]), method
        np.testing.assert_allclose(to_np(got).astype(np.float64), ref.numpy().astype(np.float64), rtol=1e-3)
    assert x.type(xbp.float64).dtype == xbp.float64 and x.type("torch.LongTensor").dtype == xbp.int64
    assert x.type(xbp.IntTensor).dtype == xbp.int32
    assert x.type(xbp.float32) is x and x.type(xbp.FloatTensor) is x          # unchanged: itself, as torch
    assert t.type(torch.float32) is t
    c = xbp.tensor(np.array([1 + 2j], np.complex64), device=device)
    assert c.type() == torch.tensor([1 + 2j]).type().replace("torch.", "xbp.cuda." if device == "cuda" else "xbp.")
    assert c.type("xbp.ComplexDoubleTensor").dtype == xbp.complex128
    with pytest.raises(ValueError, match="unknown tensor type"):
        x.type("xbp.FooTensor")
    assert (x.element_size(), x.itemsize, x.nbytes, x.nelement(), x.ndimension()) == \
        (t.element_size(), t.itemsize, t.nbytes, t.nelement(), t.ndimension())
    assert x.is_cuda == (device == "cuda") and x.is_cpu == (device == "cpu") and x.is_contiguous()
    assert (float(x[0, 1]) in x) and (123.0 not in x) and (float(t[0, 1]) in t)
    # type() keeps gradients flowing, like .to(dtype)
    xr = xbp.tensor(to_np(x), device=device, requires_grad=True)
    xr.type(xbp.float64).sum().backward()
    assert xr.grad.dtype == xbp.float32 and float(xr.grad.sum()) == 6.0


def test_default_generator_is_the_cpu_stream():
    g = xbp.manual_seed(21)
    assert g is xbp.default_generator is xbp.random.default_generator
    assert torch.manual_seed(21) is torch.default_generator                 # the same protocol
    assert g.initial_seed() == xbp.initial_seed() == 21 == torch.initial_seed()
    a = xbp.rand(3).tolist()
    assert xbp.get_rng_state().tolist() == g.get_state().tolist()
    g.manual_seed(21)
    assert xbp.rand(3).tolist() == a
    g.manual_seed(21)
    assert xbp.rand(3, generator=g).tolist() == a                          # drawing from it is the default stream
    s = g.get_state()
    b = xbp.rand(2).tolist()
    g.set_state(s)
    assert xbp.rand(2).tolist() == b


def test_unlisted_primitives_get_pytorch_style_names():
    from xbp._grad_fn_names import torch_name
    from xbp._primitive import Primitive

    class FakeNode:
        p, shapes, needs = {}, ((2,),), (True,)

        def __init__(self, name):
            self.prim = Primitive(name, None, None)
    assert torch_name(FakeNode("log_cumsum_exp")) == "LogCumsumExpBackward0"
    assert torch_name(FakeNode("tril")) == "TrilBackward0"              # torch: TrilBackward0
    assert torch_name(FakeNode("MyFunctionBackward")) == "MyFunctionBackward"
