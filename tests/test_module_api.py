"""nn.Module API against PyTorch 2.13: full backward hooks and pre-hooks (what they see, replacing
gradients, several inputs and outputs, inputs that need no gradient), forward hooks with kwargs and
prepend, state-dict hooks and _metadata, load_state_dict pre/post hooks, extra state, to_empty,
lookups, requires_grad_, zero_grad, the xbp.nn.modules paths; nn.init's trunc_normal_,
orthogonal_, sparse_, dirac_; nn.utils parameters_to_vector / vector_to_parameters."""
import math

import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F

from conftest import to_np

torch = pytest.importorskip("torch")


class TwoInTwoOut:
    """A module taking (a, b) and returning (a @ W + b, tanh(a)), for both libraries."""

    @staticmethod
    def make(lib, F_):
        class M(lib.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.Linear(3, 3)

            def forward(self, a, b):
                return self.lin(a) + b, F_.tanh(a) if hasattr(F_, "tanh") else lib.functional.tanh(a)
        return M()


def _np(g):
    return None if g is None else g.detach().numpy().copy()


def _run(lib, m, a, b, with_pre_scale):
    log = []
    if with_pre_scale:
        m.register_full_backward_pre_hook(lambda mod, go: tuple(None if g is None else g * 3 for g in go))

    def hook(mod, gi, go):
        log.append(([_np(g) for g in gi], [_np(g) for g in go]))
        return tuple(None if g is None else g * 2 for g in gi)

    m.register_full_backward_hook(hook)
    y1, y2 = m(a, b)
    (y1.sum() * 1.5 + (y2 ** 2).sum()).backward()
    return log


@pytest.mark.parametrize("with_pre_scale", [False, True])
@pytest.mark.parametrize("b_needs_grad", [True, False])
def test_full_backward_hooks_match_pytorch(device, with_pre_scale, b_needs_grad):
    torch.manual_seed(0)
    tm = TwoInTwoOut.make(torch.nn, torch).double()
    xm = TwoInTwoOut.make(nn, xbp).double()
    xm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    xm.to(device)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=b_needs_grad)
    xa, xb = xbp.tensor(a, device=device, requires_grad=True), xbp.tensor(b, device=device,
                                                                           requires_grad=b_needs_grad)
    tlog = _run(torch.nn, tm, ta, tb, with_pre_scale)
    xlog = _run(nn, xm, xa, xb, with_pre_scale)
    assert len(tlog) == len(xlog) == 1
    for want, got in zip(tlog[0][0] + tlog[0][1], xlog[0][0] + xlog[0][1]):
        assert (want is None) == (got is None)
        if want is not None:
            np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(to_np(xa.grad), ta.grad.numpy(), atol=1e-12)
    if b_needs_grad:
        np.testing.assert_allclose(to_np(xb.grad), tb.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(to_np(xm.lin.weight.grad), tm.lin.weight.grad.numpy(), atol=1e-12)


def test_backward_hook_when_no_input_needs_grad_and_removal(device):
    m = nn.Linear(2, 2, device=device)
    seen = []
    h = m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go[0].shape)))
    m(xbp.randn(3, 2, device=device)).sum().backward()
    assert seen == [((None,), (3, 2))]
    h.remove()
    m(xbp.randn(3, 2, device=device)).sum().backward()
    assert len(seen) == 1


def test_forward_hooks_kwargs_and_prepend(device):
    m = nn.Linear(2, 2, device=device)
    order = []
    m.register_forward_hook(lambda mod, args, out: order.append("second"))
    m.register_forward_hook(lambda mod, args, out: order.append("first"), prepend=True)
    m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] * 0.0,), kwargs), with_kwargs=True)
    got = {}
    m.register_forward_hook(lambda mod, args, kwargs, out: got.update(kw=kwargs, out=out), with_kwargs=True)
    y = m(xbp.ones(1, 2, device=device))
    assert order == ["first", "second"]
    np.testing.assert_allclose(to_np(y), to_np(m.bias)[None], atol=1e-7)     # the input was zeroed
    assert got["kw"] == {} and got["out"] is y
    with m.register_forward_hook(lambda mod, a, o: o * 0.0):
        assert float(m(xbp.ones(1, 2, device=device)).abs().sum().item()) == 0.0
    assert float(m(xbp.ones(1, 2, device=device)).abs().sum().item()) != 0.0


def test_state_dict_hooks_metadata_prefix_keep_vars():
    tm, xm = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)), \
        nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    sd = xm.state_dict(prefix="model.")
    assert list(sd) == list(tm.state_dict(prefix="model."))
    assert dict(sd._metadata) == dict(tm.state_dict(prefix="model.")._metadata)
    assert xm.state_dict(keep_vars=True)["0.weight"] is xm[0].weight
    assert xm.state_dict()["0.weight"] is not xm[0].weight
    calls = []
    xm[0].register_state_dict_pre_hook(lambda mod, prefix, keep_vars: calls.append(("pre", prefix)))

    def add_key(mod, state, prefix, meta):
        state[prefix + "note"] = xbp.tensor(1.0)
        calls.append(("post", prefix))
    xm[0]._register_state_dict_hook(add_key)
    sd = xm.state_dict()
    assert calls == [("pre", "0."), ("post", "0.")]
    assert "0.note" in sd and list(sd).index("0.note") == 2


def test_load_state_dict_hooks_rename_and_forgive():
    src = nn.Linear(2, 2)
    dst = nn.Linear(2, 2)
    old = {"w_old": src.weight.detach(), "bias": src.bias.detach()}

    def rename(mod, state, prefix, meta, strict, missing, unexpected, errors):
        state[prefix + "weight"] = state.pop(prefix + "w_old")
    dst.register_load_state_dict_pre_hook(rename)
    dst.load_state_dict(old)
    np.testing.assert_array_equal(to_np(dst.weight), to_np(src.weight))
    assert "w_old" in old                                     # the caller's dict is untouched
    m = nn.Linear(2, 2)
    m.register_load_state_dict_post_hook(lambda mod, keys: keys.missing_keys.remove("bias"))
    res = m.load_state_dict({"weight": src.weight.detach()})   # strict, but the hook forgave "bias"
    assert res.missing_keys == [] and res.unexpected_keys == []
    with pytest.raises(RuntimeError, match="Missing"):
        nn.Linear(2, 2).load_state_dict({"weight": src.weight.detach()})


def test_extra_state_round_trip():
    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 1)
            self.counter = 0

        def get_extra_state(self):
            return {"counter": self.counter}

        def set_extra_state(self, state):
            self.counter = state["counter"]

    a, b = WithExtra(), WithExtra()
    a.counter = 7
    sd = a.state_dict()
    assert list(sd) == ["_extra_state", "lin.weight", "lin.bias"]      # own entries first, as PyTorch
    b.load_state_dict(sd)
    assert b.counter == 7
    with pytest.raises(RuntimeError, match="_extra_state"):
        WithExtra().load_state_dict({"lin.weight": sd["lin.weight"], "lin.bias": sd["lin.bias"]})


def test_lookups_requires_grad_zero_grad_to_empty(device):
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).to(device)
    assert m.get_submodule("1") is m[1]
    assert m.get_parameter("0.bias") is m[0].bias
    assert m.get_buffer("1.running_mean") is m[1].running_mean
    assert [n for n, _ in m.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    with pytest.raises(AttributeError, match="no submodule"):
        m.get_submodule("3")
    with pytest.raises(AttributeError, match="no parameter"):
        m.get_parameter("0.nope")
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()
    m(xbp.randn(4, 2, device=device)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum().item()) == 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    w = m[0].weight
    m.to_empty(device=device)
    assert m[0].weight is w and w.shape == (2, 2) and str(w.device) == str(xbp.zeros(1, device=device).device)


def test_modules_paths_like_pytorch():
    from xbp.nn.modules.loss import _Loss, _WeightedLoss
    from xbp.nn.modules.module import Module
    from xbp.nn.modules.batchnorm import _BatchNorm, _NormBase  # noqa: F401
    from xbp.nn.modules.rnn import RNNBase
    from xbp.nn.modules import container, conv, transformer, sparse, dropout, activation, linear  # noqa: F401
    assert Module is nn.Module and issubclass(nn.LSTM, RNNBase)
    assert transformer.Transformer is nn.Transformer and sparse.Embedding is nn.Embedding
    assert issubclass(nn.CrossEntropyLoss, _WeightedLoss)

    class Focal(_Loss):
        def __init__(self, gamma=2.0, size_average=None, reduce=None, reduction="mean"):
            super().__init__(size_average, reduce, reduction)
            self.gamma = gamma

        def forward(self, input, target):
            return F.mse_loss(input, target, reduction=self.reduction)

    assert Focal(reduce=False).reduction == "none" and Focal().reduction == "mean"
    import torch.nn.modules as tmods
    missing = [n for n in nn.modules.__all__ if not hasattr(tmods, n)]
    assert missing == [], missing


# --- nn.init ---------------------------------------------------------------------------------------
def test_trunc_normal(device):
    t = xbp.empty(200, 50, device=device)
    nn.init.trunc_normal_(t, mean=0.5, std=1.0, a=-0.5, b=1.0)
    v = to_np(t)
    assert v.min() >= -0.5 and v.max() <= 1.0
    # the mean of N(0.5, 1) truncated to [-0.5, 1]: mu + sigma (phi(alpha) - phi(beta)) / Z
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))       # noqa: E731
    want = 0.5 + (phi(-1.0) - phi(0.5)) / (Phi(0.5) - Phi(-1.0))
    assert abs(v.mean() - want) < 0.02


def test_orthogonal_sparse_dirac(device):
    for shape in [(3, 5), (6, 2), (4, 2, 3)]:
        t = nn.init.orthogonal_(xbp.empty(*shape, device=device, dtype=np.float64), gain=2.0)
        m = to_np(t).reshape(shape[0], -1)
        g = m @ m.T if shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(g, 4.0 * np.eye(g.shape[0]), atol=1e-10)
    s = to_np(nn.init.sparse_(xbp.empty(10, 4, device=device), sparsity=0.3))
    assert ((s == 0).sum(0) == 3).all()
    w = xbp.empty(4, 2, 3, 3, device=device)
    nn.init.dirac_(w, groups=2)
    want = torch.empty(4, 2, 3, 3)
    torch.nn.init.dirac_(want, groups=2)
    np.testing.assert_array_equal(to_np(w), want.numpy())
    x = xbp.randn(1, 2, 5, 5, device=device)
    np.testing.assert_allclose(to_np(F.conv2d(x, nn.init.dirac_(xbp.empty(2, 2, 3, 3, device=device)), padding=1)),
                               to_np(x), atol=1e-6)
    with pytest.raises(ValueError, match="dimensions"):
        nn.init.dirac_(xbp.empty(2, 2, device=device))


def test_calculate_gain_matches_pytorch():
    for name in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                 "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert nn.init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", 0.2))


# --- nn.utils ------------------------------------------------------------------------------------
def test_parameters_to_vector_and_back(device):
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)).to(device)
    v = nn.utils.parameters_to_vector(m.parameters())
    assert v.shape == (3 * 2 + 2 + 2 + 1,)
    want = np.concatenate([to_np(p).reshape(-1) for p in m.parameters()])
    np.testing.assert_array_equal(to_np(v), want)
    (v * 2.0).sum().backward()                 # differentiable
    assert float(m[0].weight.grad.sum().item()) == pytest.approx(12.0)
    nn.utils.vector_to_parameters(v * 0.0 + 1.0, m.parameters())
    assert all((to_np(p) == 1.0).all() for p in m.parameters())
    with pytest.raises(ValueError, match="elements"):
        nn.utils.vector_to_parameters(xbp.zeros(3, device=device), m.parameters())
    m[0].weight.grad = xbp.full((2, 3), 10.0, device=device)
    n = nn.utils.clip_grad_norm_([m[0].weight], 1.0, foreach=True, error_if_nonfinite=True)
    assert float(n.item()) == pytest.approx(math.sqrt(600.0))


@pytest.mark.parametrize("transpose", [False, True])
def test_fuse_conv_bn_eval_matches_pytorch(device, transpose):
    from torch.nn.utils import fusion as tfu
    torch.manual_seed(0)
    tc = (torch.nn.ConvTranspose2d(2, 3, 2) if transpose else torch.nn.Conv2d(2, 3, 2)).double().eval()
    tb = torch.nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        tb.running_mean.uniform_(-1, 1)
        tb.running_var.uniform_(0.5, 2)
        tb.weight.uniform_(0.5, 2)
        tb.bias.uniform_(-1, 1)
    xc = (nn.ConvTranspose2d(2, 3, 2) if transpose else nn.Conv2d(2, 3, 2)).double()
    xb = nn.BatchNorm2d(3).double()
    xc.load_state_dict({k: v.numpy() for k, v in tc.state_dict().items()})
    xb.load_state_dict({k: v.numpy() for k, v in tb.state_dict().items()})
    xc.to(device).eval()
    xb.to(device).eval()
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    fused = nn.utils.fuse_conv_bn_eval(xc, xb, transpose=transpose)
    want = tfu.fuse_conv_bn_eval(tc, tb, transpose=transpose)(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(to_np(fused(xbp.tensor(x, device=device))), want, atol=1e-12)
    np.testing.assert_allclose(to_np(xb(xc(xbp.tensor(x, device=device)))), want, atol=1e-12)
    with pytest.raises(AssertionError, match="eval"):
        nn.utils.fuse_conv_bn_eval(xc.train(), xb)


def test_get_total_norm_and_clip_grads_with_norm(device):
    grads = [np.array([3.0, 4.0]), np.array([12.0])]
    xs = [xbp.tensor(g, device=device) for g in grads]
    ts = [torch.tensor(g) for g in grads]
    for p in (2.0, 1.0, math.inf):
        assert float(nn.utils.get_total_norm(xs, p).item()) == pytest.approx(
            float(torch.nn.utils.get_total_norm(ts, p)))
    w = nn.Parameter(xbp.zeros(3, device=device))
    w.grad = xbp.tensor(np.array([3.0, 4.0, 12.0]), device=device)
    nn.utils.clip_grads_with_norm_([w], 1.3, nn.utils.get_total_norm([w.grad]))
    np.testing.assert_allclose(to_np(w.grad), np.array([3.0, 4.0, 12.0]) * 1.3 / (13 + 1e-6), rtol=1e-9)


@pytest.mark.parametrize("name,args,shape", [
    ("LazyLinear", (4,), (2, 3)),
    ("LazyConv2d", (5, 3), (1, 2, 4, 4)),
    ("LazyConvTranspose1d", (3, 2), (2, 4, 5)),
    ("LazyBatchNorm1d", (), (4, 3)),
    ("LazyInstanceNorm2d", (), (2, 3, 4, 4)),
])
def test_lazy_modules(device, name, args, shape):
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(*args)
    xm = getattr(nn, name)(*args, device=device)
    assert list(xm.state_dict()) == list(tm.state_dict())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tm(torch.tensor(x))                                    # materialised by the first input
    xm(xbp.tensor(x, device=device))
    assert type(xm).__name__ == type(tm).__name__ and not xm._forward_pre_hooks
    assert [(k, tuple(v.shape)) for k, v in xm.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in tm.state_dict().items()]
    # a lazy module loads a checkpoint of the regular one (shapes from the file), then matches it
    fresh = getattr(nn, name)(*args, device=device)
    fresh.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    tm.eval()
    fresh.eval()
    np.testing.assert_allclose(to_np(fresh(xbp.tensor(x, device=device))), tm(torch.tensor(x)).detach().numpy(),
                               atol=1e-5)
    assert type(fresh).__name__ == type(tm).__name__
