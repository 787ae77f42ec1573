"""Hostile inputs: every public function and Tensor method that takes a dim refuses an out-of-range
one with PyTorch's IndexError (never wraps around), and the shared checks give PyTorch's messages.

Expected behaviour is PyTorch 2.13's, written in: e.g. ``torch.ones(2, 3).transpose(1, 2)`` raises
``IndexError: Dimension out of range (expected to be in range of [-2, 1], but got 2)``."""
import inspect

import numpy as np
import pytest

import xbp
import xbp.nn.functional as F

DIM_PARAMS = ("dim", "dims", "axis", "dim0", "dim1", "start_dim", "end_dim", "source", "destination")


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
            dims = [p for p in params if p in DIM_PARAMS]
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
        dims = [p for p in params if p in DIM_PARAMS]
        if dims:
            found.append((f"Tensor.{name}", f, True, dims))
    return found


CALLABLES = _callables()


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
        result_dim = name.split(".")[-1] in ("stack", "unsqueeze")     # a dim of the (3-d) result
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
    with pytest.raises(IndexError, match=r"outside \[0, 2\)"):
        xbp.gather(x, 0, neg)
    with pytest.raises(IndexError, match=r"outside \[0, 3\)"):
        xbp.index_select(x, 1, xbp.tensor([-1], device=device))
    with pytest.raises(IndexError, match="out of range"):
        xbp.take_along_dim(x, xbp.tensor([[3, 0, 0]], device=device), 1)
    with pytest.raises(IndexError):
        F.one_hot(xbp.tensor([-1, 0], device=device), 3)
    with pytest.raises(IndexError):
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
