"""xbp.nn: module mechanics (naming, state dicts, modes, devices, repr), containers, layers and
activation modules against NumPy, float64 gradchecks, dropout."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import xbp
from xbp._backend import get_backend
import xbp.nn as nn
import xbp.nn.functional as F
from xbp.autograd import gradcheck

from conftest import rand, to_np


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.blocks = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2, bias=False))
        self.register_buffer("steps", xbp.tensor(0))
        self.register_buffer("scratch", xbp.zeros(2), persistent=False)

    def forward(self, x):
        return self.blocks(self.act(self.fc1(x)))


# --- registration and naming --------------------------------------------------------------------------
def test_named_parameters_and_state_dict_keys():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias", "blocks.2.weight"]
    assert [p.shape for p in net.parameters()] == [(4, 3), (4,), (4, 4), (4,), (2, 4)]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_buffers()] == ["steps", "scratch"]
    # persistent buffers only, each module's params then buffers then children
    assert list(net.state_dict()) == ["steps", "fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias",
                                      "blocks.2.weight"]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "blocks"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "act", "blocks", "blocks.0", "blocks.1", "blocks.2"]
    assert len(list(net.modules())) == 7 and len(list(net.children())) == 3
    assert [n for n, _ in net.named_parameters(recurse=False)] == []
    assert net.get_submodule("blocks.2") is net.blocks[2]
    assert net.get_parameter("blocks.0.bias") is net.blocks[0].bias


def test_torch_names_match():
    torch = pytest.importorskip("torch")
    tnet = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                               torch.nn.Sequential(torch.nn.Linear(4, 2)))
    xnet = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    assert list(xnet.state_dict()) == list(tnet.state_dict())
    assert repr(xnet) == repr(tnet)


def test_shared_parameter_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]   # as PyTorch


def test_reassignment_rules():
    m = nn.Module()
    m.w = nn.Parameter(xbp.ones(2))
    with pytest.raises(TypeError, match="Parameter or None expected"):
        m.w = xbp.ones(2)
    m.w = None
    assert list(m.named_parameters()) == [] and m.w is None
    m.w = nn.Parameter(xbp.zeros(3))
    m.sub = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="Module or None expected"):
        m.sub = 5
    m.register_buffer("b", None)
    m.b = xbp.ones(1)
    assert [n for n, _ in m.named_buffers()] == ["b"]
    del m.w
    assert [n for n, _ in m.named_parameters()] == ["sub.weight", "sub.bias"]
    with pytest.raises(KeyError, match="no '.'"):
        m.register_buffer("a.b", xbp.ones(1))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        m.nope
    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        class Bad(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(xbp.ones(1))
        Bad()


def test_parameter_basics():
    t = xbp.ones(2, 3)
    p = nn.Parameter(t)
    assert p.requires_grad and p.is_leaf and p.shape == (2, 3)
    assert p.array is t.array                    # shares the data, as PyTorch
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert "requires_grad=True" in repr(p)
    assert not nn.Parameter(xbp.ones(1), requires_grad=False).requires_grad
    assert type(p * 2) is xbp.Tensor          # ops give plain tensors
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.array is not p.array and np.array_equal(to_np(q), to_np(p))
    r = pickle.loads(pickle.dumps(p))
    assert isinstance(r, nn.Parameter) and np.array_equal(to_np(r), to_np(p))


# --- state dict --------------------------------------------------------------------------------------
def test_state_dict_round_trip_in_place(device):
    a, b = Net().to(device), Net().to(device)
    a.steps.fill_(7)
    sd = a.state_dict()
    assert all(not v.requires_grad for v in sd.values())
    assert sd["fc1.weight"].array is a.fc1.weight.array            # shares data
    w_obj = b.fc1.weight
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert b.fc1.weight is w_obj                                 # copied in place
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(to_np(b.state_dict()[k]), to_np(v))
    assert b.steps.item() == 7
    with xbp.no_grad():
        a.fc1.weight.fill_(0.0)                                  # b holds a copy, not a's data
    assert np.all(to_np(a.state_dict()["fc1.weight"]) == 0) and not np.all(to_np(b.fc1.weight) == 0)


def test_load_state_dict_casts_device_and_dtype():
    src = Net().double()
    dst = Net().to("strict")
    dst.load_state_dict(src.state_dict())
    assert dst.fc1.weight.device == "strict" and dst.fc1.weight.dtype == xbp.float32
    np.testing.assert_allclose(to_np(dst.fc1.weight), to_np(src.fc1.weight).astype(np.float32))
    # NumPy arrays are accepted as values too
    dst.load_state_dict({k: v.numpy() for k, v in src.state_dict().items()})


def test_load_state_dict_reports_all_problems_together():
    net = Net()
    sd = net.state_dict()
    del sd["fc1.bias"]
    sd["extra.weight"] = xbp.ones(1)
    sd["blocks.0.weight"] = xbp.ones(5, 4)
    before = to_np(net.fc1.weight).copy()
    sd["fc1.weight"] = xbp.zeros(4, 3)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "Error(s) in loading state_dict for Net" in msg
    assert 'Missing key(s) in state_dict: "fc1.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    assert "size mismatch for blocks.0.weight: copying a param with shape (5, 4)" in msg
    assert "the shape in current model is (4, 4)" in msg
    np.testing.assert_array_equal(to_np(net.fc1.weight), before)   # nothing copied on error
    # strict=False: missing/unexpected are returned, shape mismatches still raise
    with pytest.raises(RuntimeError, match="size mismatch"):
        net.load_state_dict(sd, strict=False)
    del sd["blocks.0.weight"]
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc1.bias", "blocks.0.weight"] and res.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(to_np(net.fc1.weight), 0.0)


# --- modes, gradients, devices ----------------------------------------------------------------------
def test_train_eval_and_dropout():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert net.training and net[1].training
    assert net.eval() is net and not net.training and not net[1].training
    x = xbp.randn(4, 2)
    np.testing.assert_array_equal(to_np(net[1](x)), to_np(x))      # identity in eval
    net.train()
    assert net[1].training


def test_dropout_mask_and_scale(device):
    xbp.manual_seed(3)
    x = xbp.ones(200, 50, dtype=xbp.float64, device=device, requires_grad=True)
    y = F.dropout(x, 0.3, training=True)
    yn = to_np(y)
    kept = yn != 0
    np.testing.assert_allclose(yn[kept], 1 / 0.7)
    assert abs(kept.mean() - 0.7) < 0.02
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), yn)                  # gradient goes through the same mask
    xbp.manual_seed(3)
    np.testing.assert_array_equal(to_np(F.dropout(x, 0.3)), yn)   # seeded
    assert F.dropout(x, 0.3, training=False) is x
    np.testing.assert_array_equal(to_np(F.dropout(x, 1.0)), 0.0)
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)
    assert F.dropout(xbp.ones(3, dtype=xbp.float32), 0.5).dtype == xbp.float32


def test_zero_grad_and_requires_grad_():
    net = Net()
    net(xbp.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(to_np(p.grad) == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.fc1.requires_grad_(False)
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["blocks.0.weight", "blocks.0.bias",
                                                                         "blocks.2.weight"]


def test_to_dtype_keeps_parameter_identity():
    net = Net()
    ids = [id(p) for p in net.parameters()]
    net(xbp.randn(2, 3)).sum().backward()
    opt = xbp.optim.SGD(net.parameters(), lr=0.1)
    assert net.double() is net
    assert [id(p) for p in net.parameters()] == ids
    assert all(p.dtype == xbp.float64 and p.grad.dtype == xbp.float64 for p in net.parameters())
    assert net.steps.dtype == xbp.int64                 # integer buffers keep their dtype
    before = to_np(net.fc1.weight).copy()
    net.zero_grad()
    net(xbp.randn(2, 3, dtype=xbp.float64)).sum().backward()
    opt.step()                                          # the optimizer built before .to() still works
    assert not np.allclose(to_np(net.fc1.weight), before)
    with pytest.raises(TypeError, match="floating point"):
        net.to(xbp.int64)


def test_to_device_moves_parameters_and_buffers():
    net = Net()
    w = net.fc1.weight
    net.to("strict")
    assert net.fc1.weight is w and w.device == "strict"
    assert net.steps.device == "strict" and net.scratch.device == "strict"
    out = net(xbp.randn(2, 3, device="strict"))
    assert out.device == "strict"
    net.cpu()
    assert w.device == "cpu"


def test_apply_and_forward_hooks():
    net = Net()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Tanh", "Linear", "Sequential", "Net"]
    net.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert np.all(to_np(net.blocks[2].weight) == 0)
    calls = []
    h = net.fc1.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    net(xbp.randn(5, 3))
    h.remove()
    net(xbp.randn(5, 3))
    assert calls == [(5, 4)]


def test_repr():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (fc1): Linear(in_features=3, out_features=4, bias=True)\n"
        "  (act): ReLU()\n"
        "  (blocks): Sequential(\n"
        "    (0): Linear(in_features=4, out_features=4, bias=True)\n"
        "    (1): Tanh()\n"
        "    (2): Linear(in_features=4, out_features=2, bias=False)\n"
        "  )\n"
        ")")
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


def test_activation_reprs_match_torch():
    torch = pytest.importorskip("torch")
    pairs = [(nn.ReLU(), torch.nn.ReLU()), (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
             (nn.ELU(), torch.nn.ELU()), (nn.GELU(), torch.nn.GELU()), (nn.SiLU(), torch.nn.SiLU()),
             (nn.Softplus(2.0), torch.nn.Softplus(2.0)), (nn.LogSoftmax(1), torch.nn.LogSoftmax(1)),
             (nn.Identity(), torch.nn.Identity()), (nn.MSELoss(), torch.nn.MSELoss())]
    for a, b in pairs:
        assert repr(a) == repr(b)


def test_deepcopy_and_pickle_module(device):
    net = Net().to(device)
    net.steps.fill_(3)
    for net2 in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert net2.fc1.weight is not net.fc1.weight and isinstance(net2.fc1.weight, nn.Parameter)
        assert net2.fc1.weight.device == get_backend(device).device and net2.steps.item() == 3
        assert net2.steps is not net.steps
        for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
            np.testing.assert_array_equal(to_np(a), to_np(b))


# --- containers -------------------------------------------------------------------------------------
def test_sequential_container():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b and list(seq) == [a, b]
    seq.append(c)
    assert seq[2] is c and [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    x = xbp.randn(4, 2)
    np.testing.assert_array_equal(to_np(seq(x)), to_np(c(b(a(x)))))
    named = nn.Sequential(OrderedDict([("inp", a), ("act", b)]))
    assert [n for n, _ in named.named_parameters()] == ["inp.weight", "inp.bias"]
    del seq[0]
    assert list(seq) == [b, c] and list(seq._modules) == ["0", "1"]
    with pytest.raises(IndexError):
        seq[5]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    ml.append(nn.Linear(2, 1))
    ml.extend([nn.ReLU()])
    assert len(ml) == 5 and [n for n, _ in ml.named_parameters()][-2:] == ["3.weight", "3.bias"]
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    ml.insert(0, nn.Tanh())
    assert isinstance(ml[0], nn.Tanh) and isinstance(ml[1], nn.Linear)
    md = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    assert list(md) == ["enc", "dec"] and "enc" in md and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    md["act"] = nn.ReLU()
    assert list(md.keys()) == ["enc", "dec", "act"]
    md.pop("act")
    assert len(md) == 2


# --- layers against NumPy -------------------------------------------------------------------------------
def test_linear_forward_and_gradcheck(device):
    lin = nn.Linear(3, 2, device=device, dtype=xbp.float64)
    assert lin.weight.shape == (2, 3) and lin.bias.shape == (2,) and lin.weight.device == get_backend(device).device
    x, xn = rand((4, 3), device)
    ref = xn @ to_np(lin.weight).T + to_np(lin.bias)
    np.testing.assert_allclose(to_np(lin(x)), ref, rtol=1e-12)
    x3, _ = rand((2, 2, 3), device)
    assert lin(x3).shape == (2, 2, 2)
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), (x, lin.weight, lin.bias))
    nobias = nn.Linear(3, 2, bias=False, device=device, dtype=xbp.float64)
    assert nobias.bias is None and len(list(nobias.parameters())) == 1
    np.testing.assert_allclose(to_np(nobias(x)), xn @ to_np(nobias.weight).T, rtol=1e-12)


def test_linear_default_dtype_and_float32_training():
    lin = nn.Linear(4, 3)
    assert lin.weight.dtype == xbp.float32
    loss = F.cross_entropy(lin(xbp.randn(5, 4)), xbp.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    assert loss.dtype == xbp.float32 and lin.weight.grad.dtype == xbp.float32


def np_gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


ACTIVATIONS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (nn.ELU(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    (nn.GELU(), np_gelu),
    (nn.GELU("tanh"), lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    (nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
    (nn.Softplus(beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
    (nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    (nn.LogSoftmax(dim=0), lambda x: x - np.log(np.exp(x).sum(0, keepdims=True))),
    (nn.Identity(), lambda x: x),
    (nn.Flatten(0), lambda x: x.reshape(-1)),
]


@pytest.mark.parametrize("mod,ref", ACTIVATIONS, ids=lambda v: repr(v) if isinstance(v, nn.Module) else "")
def test_activation_modules(device, mod, ref):
    x, xn = rand((3, 4), device, low=-2, high=2)
    # erf on backends without a native one is an approximation (|error| < 1.5e-7)
    tol = 1e-6 if isinstance(mod, nn.GELU) else 1e-12
    np.testing.assert_allclose(to_np(mod(x)), ref(xn), rtol=tol, atol=tol)
    assert gradcheck(mod, (x,), atol=1e-5 if tol > 1e-12 else 1e-6)


def test_softmax_without_dim_warns():
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = nn.Softmax()(xbp.randn(2, 3))
    np.testing.assert_allclose(to_np(out).sum(1), 1.0, rtol=1e-6)


def test_flatten_module():
    x = xbp.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)


def test_mlp_trains():
    """End to end: a small MLP fits XOR with the fused cross-entropy and SGD."""
    xbp.manual_seed(0)
    x = xbp.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = xbp.tensor([0, 1, 1, 0])
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = xbp.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(net(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert to_np(net(x).argmax(1)).tolist() == [0, 1, 1, 0]
