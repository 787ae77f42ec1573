"""Hostile inputs: every public function and Tensor method that takes a dim refuses an out-of-range
one with PyTorch's IndexError (never wraps around), and the shared checks give PyTorch's messages.

Expected behaviour is PyTorch 2.13's, written in: e.g. ``torch.ones(2, 3).transpose(1, 2)`` raises
``IndexError: Dimension out of range (expected to be in range of [-2, 1], but got 2)``."""
import inspect

import numpy as np
import pytest

import xbp
import xbp.nn.functional as F
from conftest import raises_checked

DIM_PARAMS = ("dim", "dims", "axis", "dim0", "dim1", "axis0", "axis1", "start_dim", "end_dim", "source",
              "destination")


def _dim_params(name, params):
    # `source` is a dim only for movedim; index_add/index_copy/masked_scatter take a source tensor
    return [p for p in params if p in DIM_PARAMS and (p != "source" or name == "movedim")]


def _callables():
    found = []
    for prefix, mod in (("xbp", xbp), ("F", F)):
        for name in sorted(dir(mod)):
            f = getattr(mod, name)
            if name.startswith("_") or inspect.isclass(f) or not callable(f):
                continue
            try:
                params = inspect.signature(f).parameters
            except (TypeError, ValueError):
                continue
            dims = _dim_params(name, params)
            if dims:
                found.append((f"{prefix}.{name}", f, False, dims))
    for name in sorted(dir(xbp.Tensor)):
        f = getattr(xbp.Tensor, name)
        if name.startswith("_") or not callable(f):
            continue
        try:
            params = inspect.signature(f).parameters
        except (TypeError, ValueError):
            continue
        dims = _dim_params(name, params)
        if dims:
            found.append((f"Tensor.{name}", f, True, dims))
    return found


CALLABLES = _callables()


_FILLS = {"other": lambda x: x, "src": lambda x: x, "source": lambda x: x, "k": lambda x: 1, "q": lambda x: 0.5,
          "value": lambda x: 1.0, "reduce": lambda x: "sum", "start": lambda x: 0, "length": lambda x: 1}


def _args(name, f, x, bad_param, bad):
    """Valid arguments for `f` on the (2, 3) tensor x, with `bad_param` set to the bad dim."""
    short = name.split(".")[-1]
    params = list(inspect.signature(f).parameters.values())
    kw = {}
    pos = []
    for i, p in enumerate(params):
        if i == 0:
            pos.append([x, x] if short in ("cat", "concat", "stack") else x)
            continue
        if p.kind is p.VAR_POSITIONAL and p.name == bad_param:
            pos.extend((0,) + tuple(bad))          # permute(x, *dims)
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name == bad_param:
            kw[p.name] = bad
        elif p.name in ("index", "indices"):
            shape = (1,) if short == "index_select" else (2, 3)
            kw[p.name] = xbp.zeros(shape, dtype=xbp.int64, device=x.device)
        elif p.name in DIM_PARAMS and p.default is inspect.Parameter.empty:
            kw[p.name] = 0
        elif p.name == "chunks":
            kw[p.name] = 1
        elif p.name in ("split_size_or_sections", "size"):
            kw[p.name] = 1
        elif p.name == "sizes":
            kw[p.name] = (2,)
        elif p.name == "repeats":
            kw[p.name] = 1
        elif p.name == "shifts":
            kw[p.name] = 1
        elif p.name in _FILLS:                     # sorting, scatter and matrix functions
            kw[p.name] = _FILLS[p.name](x)
        elif p.name == "x2":                       # a second operand of x's shape (cosine_similarity)
            kw[p.name] = x
        elif p.default is inspect.Parameter.empty:
            raise AssertionError(f"test does not know how to fill {name}({p.name})")
    if short == "unflatten" and bad_param == "dim":
        kw["sizes"] = (1, 2)
    return pos, kw


@pytest.mark.parametrize("name,f,method,dims", CALLABLES, ids=[c[0] for c in CALLABLES])
def test_out_of_range_dim_raises(name, f, method, dims):
    assert len(CALLABLES) > 60        # the sweep found the API (functions, F, methods)
    x = xbp.ones(2, 3)
    for param in dims:
        if param == "axis" and "dim" in dims:
            continue                   # the Array API alias: checked through `dim`
        result_dim = name.split(".")[-1] in ("stack", "unsqueeze", "diag_embed")     # a dim of the (3-d) result
        for bad in ((3, -4, 7) if result_dim else (2, -3, 7)):
            pos, kw = _args(name, f, x, param, (bad,) if param in ("dims",) else bad)
            with pytest.raises(IndexError, match="[Dd]imension out of range|out of range"):
                f(*pos, **kw)


def test_pytorch_messages(device):
    x = xbp.ones(2, 3, device=device)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        x.transpose(1, 2)
    with pytest.raises(IndexError, match=r"range of \[-2, 1\], but got 2"):
        xbp.cat([x, x], dim=2)
    with pytest.raises(IndexError, match=r"range of \[-2, 1\], but got 3"):
        x.permute(0, 3)
    with pytest.raises(IndexError, match=r"range of \[-3, 2\], but got 3"):
        x.unsqueeze(3)                 # a result dim: [-3, 2] as in PyTorch
    with pytest.raises(RuntimeError, match="appears multiple times"):
        x.sum(dim=(0, -2))
    with pytest.raises(TypeError, match="dim must be an integer"):
        xbp.softmax(x, dim=1.7)
    assert x.transpose(0, -1).shape == (3, 2) and x.unsqueeze(-1).shape == (2, 3, 1)


def test_negative_indices_refused_where_pytorch_refuses(device):
    x = xbp.tensor(np.arange(6.0).reshape(2, 3), device=device)
    neg = xbp.tensor([[-1, 0, 0]], device=device)
    with raises_checked(IndexError, match=r"outside \[0, 2\)"):
        xbp.gather(x, 0, neg)
    with raises_checked(IndexError, match=r"outside \[0, 3\)"):
        xbp.index_select(x, 1, xbp.tensor([-1], device=device))
    with raises_checked(IndexError, match="out of range"):
        xbp.take_along_dim(x, xbp.tensor([[3, 0, 0]], device=device), 1)
    with raises_checked(IndexError):
        F.one_hot(xbp.tensor([-1, 0], device=device), 3)
    with raises_checked(IndexError):
        F.embedding(xbp.tensor([-1], device=device), x)
    assert x[-1].tolist() == [3.0, 4.0, 5.0]           # Python indexing keeps negative indices
    assert xbp.gather(x, 1, xbp.tensor([[2], [0]], device=device)).tolist() == [[2.0], [3.0]]


def test_sizes_must_be_integers(device):
    x = xbp.ones(4, device=device)
    for call in (lambda: x.reshape(2.5, -1), lambda: xbp.repeat_interleave(x, 2.5),
                 lambda: x.expand(2.0, 4), lambda: xbp.chunk(x, 2.0), lambda: x.unflatten(0, (2.0, 2))):
        with pytest.raises(TypeError, match="must be an integer"):
            call()
    with pytest.raises(TypeError, match="must be an integer"):
        x.reshape(True, 4)                         # bool is not a size


def test_internal_exceptions_do_not_leak(device):
    x = xbp.ones(2, 3, device=device)
    s = xbp.tensor(1.0, device=device)
    with pytest.raises(ValueError, match="cat: zero-dimensional"):
        xbp.cat([s, s])
    with pytest.raises(ValueError, match="chunk: chunks must be a positive"):
        xbp.chunk(x, 0)
    with pytest.raises(ValueError, match="split: split_size must be a positive"):
        xbp.split(x, 0)
    with pytest.raises(ValueError, match="stack: expected a non-empty"):
        xbp.stack([])
    with pytest.raises(ValueError, match="cat: expected a non-empty"):
        xbp.cat([])
    with pytest.raises(ValueError, match=r"cat: sizes of tensors must match except in dim 0"):
        xbp.cat([x, xbp.ones(2, 4, device=device)])
    with pytest.raises(ValueError, match="flatten: start_dim"):
        x.flatten(1, 0)
    assert xbp.softmax(xbp.ones(2, 0, device=device), dim=1).shape == (2, 0)   # legal empty input


def test_inplace_ops_follow_pytorchs_casting_rule(device):
    # torch: a = torch.tensor([1, 2]); a += 0.5 -> RuntimeError: result type Float can't be cast to
    # the desired output type Long
    a = xbp.tensor([1, 2], device=device)
    for op in (lambda: a.__iadd__(0.5), lambda: a.add_(xbp.tensor([0.5, 0.5], device=device)),
               lambda: a.__iadd__(xbp.tensor([0.5, 0.5], device=device, requires_grad=True)),
               lambda: a.div_(2), lambda: a.mul_(1.5)):
        with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
            op()
    assert a.tolist() == [1, 2] and a.dtype == xbp.int64          # untouched
    f = xbp.tensor([1.0, 2.0], device=device)
    f += xbp.tensor([1, 1], device=device)                         # int into float: allowed
    f += xbp.tensor([1.0, 1.0], dtype=xbp.float64, device=device)  # float64 into float32: allowed
    assert f.dtype == xbp.float32 and f.tolist() == [3.0, 4.0]
    a *= 3
    assert a.tolist() == [3, 6]


def test_layer_and_creation_sizes_must_be_integers():
    import xbp.nn as nn
    for make, what in [(lambda: xbp.zeros(2.5, 3), "size"), (lambda: xbp.ones((2.0,)), "size"),
                       (lambda: xbp.randn(2.5), "size"), (lambda: nn.Linear(2.5, 3), "Linear: in_features"),
                       (lambda: nn.Embedding(10, 2.5), "Embedding: embedding_dim"),
                       (lambda: nn.Conv2d(1, 2, 2.5), "kernel_size"),
                       (lambda: nn.LSTM(3, 4.0), "LSTM: hidden_size")]:
        with pytest.raises(TypeError, match=what):
            make()


def test_conv_and_pool_arguments_are_checked():
    x, w = xbp.ones(1, 1, 5, 5), xbp.ones(1, 1, 3, 3)
    with pytest.raises(ValueError, match="conv2d: stride must be positive"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="conv2d: padding must be non-negative"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="dilation must be positive"):
        F.conv2d(x, w, dilation=0)
    with pytest.raises(ValueError, match="stride must be positive"):
        xbp.nn.Conv2d(1, 1, 3, stride=0)(x)


def test_broadcast_errors_name_the_op_and_both_shapes(device):
    a, b = xbp.ones(2, 3, device=device), xbp.ones(4, device=device, requires_grad=True)
    with pytest.raises(ValueError, match=r"add: the shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"mul: the shapes \(2, 3\) and \(4,\)"):
        a * b
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(4, 3\) differs from input shape \(2, 3\)"):
        F.mse_loss(a, xbp.ones(4, 3, device=device))


def test_fully_masked_attention_row_is_zero_with_finite_gradients(device):
    rng = np.random.default_rng(0)
    qa = rng.normal(size=(1, 3, 4))
    m = np.array([[True, False, True], [False, False, False], [True, True, True]])
    q = xbp.tensor(qa, device=device, requires_grad=True)
    o = F.scaled_dot_product_attention(q, q, q, attn_mask=xbp.tensor(m, device=device))
    o.sum().backward()
    assert o.detach().numpy()[0, 1].tolist() == [0.0] * 4         # torch 2.13: zeros for that row
    assert np.isfinite(q.grad.numpy()).all()
    # the other rows: softmax over the allowed keys only (NumPy reference)
    s = qa[0] @ qa[0].T / 2.0
    s = np.where(m, s, -np.inf)
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    np.testing.assert_allclose(o.detach().numpy()[0, [0, 2]], (w @ qa[0])[[0, 2]], rtol=1e-10)


def test_masked_attention_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    qa = rng.normal(size=(2, 3, 4)).astype(np.float32)
    m = np.array([[True, False, True], [False, False, False], [True, True, True]])
    q, tq = xbp.tensor(qa, requires_grad=True), torch.tensor(qa, requires_grad=True)
    F.scaled_dot_product_attention(q, q, q, attn_mask=xbp.tensor(m)).sum().backward()
    torch.nn.functional.scaled_dot_product_attention(tq, tq, tq, attn_mask=torch.tensor(m)).sum().backward()
    np.testing.assert_allclose(q.grad.numpy(), tq.grad.numpy(), atol=1e-5)
