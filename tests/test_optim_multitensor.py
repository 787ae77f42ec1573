"""The one multi-tensor update path (Optimizer._multi_tensor_step): parameters of several dtypes in
one group follow PyTorch, the Backend's fused-kernel hook is offered each (device, dtype) bucket,
and state stays the live Tensors PyTorch's state dict layout names."""
import numpy as np
import pytest

import xbp
from xbp import optim
from conftest import to_np

# (xbp class, torch name, keywords): every algorithm that steps through the multi-tensor path
ALGOS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("NAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("ASGD", dict(lr=0.01, t0=2)),
    ("Rprop", dict(lr=0.01)),
]


def _init():
    rng = np.random.default_rng(3)
    return [rng.standard_normal((3, 2)), rng.standard_normal((4,)), rng.standard_normal((2, 2))]


# params 0 and 2 float64, param 1 float32: two dtype buckets in one group, interleaved
DTYPES = [np.float64, np.float32, np.float64]


def _loss_terms(ps):
    # a different smooth loss per parameter, so each gets its own gradient
    return [(p * p * p).sum() * 0.1 + (p * (i + 1.0)).sum() for i, p in enumerate(ps)]


@pytest.fixture
def torch64():
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)    # PyTorch's 0-d scalar state (NAdam's mu_product, ASGD's eta)
    yield torch
    torch.set_default_dtype(old)


@pytest.mark.parametrize("name,kw", ALGOS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALGOS)])
def test_mixed_dtype_group_follows_torch(name, kw, torch64):
    torch = torch64
    init = _init()
    xs = [xbp.tensor(a.astype(dt), requires_grad=True) for a, dt in zip(init, DTYPES)]
    ts = [torch.tensor(a.astype(dt), requires_grad=True) for a, dt in zip(init, DTYPES)]
    xo = getattr(optim, name)(xs, **kw)
    to = getattr(torch.optim, name)(ts, foreach=False, **kw)
    for step in range(6):
        xo.zero_grad()
        to.zero_grad()
        # param 2 has no gradient on odd steps: it must be skipped, its step count not advanced
        live = [0, 1] if step % 2 else [0, 1, 2]
        sum(t for i, t in enumerate(_loss_terms(xs)) if i in live).backward()
        sum(t for i, t in enumerate(_loss_terms(ts)) if i in live).backward()
        xo.step()
        to.step()
    for x, t, dt in zip(xs, ts, DTYPES):
        assert x.dtype == xbp.float32 if dt is np.float32 else x.dtype == xbp.float64
        tol = 1e-5 if dt is np.float32 else 1e-12
        np.testing.assert_allclose(to_np(x), t.detach().numpy(), rtol=tol, atol=tol)
    xsd, tsd = xo.state_dict(), to.state_dict()
    assert sorted(xsd["state"]) == sorted(tsd["state"])
    for k in tsd["state"]:
        assert sorted(xsd["state"][k]) == sorted(tsd["state"][k])
        if "step" in tsd["state"][k]:
            assert int(xsd["state"][k]["step"]) == int(tsd["state"][k]["step"])


def test_plain_sgd_keeps_no_state_and_momentum_state_stays_live():
    p = xbp.tensor([1.0, 2.0], dtype=xbp.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert opt.state_dict()["state"] == {}          # PyTorch: no entry for plain SGD
    q = xbp.tensor([1.0, 2.0], dtype=xbp.float64, requires_grad=True)
    opt = optim.SGD([q], lr=0.1, momentum=0.9)
    (q * q).sum().backward()
    opt.step()
    buf = opt.state[q]["momentum_buffer"]
    np.testing.assert_allclose(to_np(buf), [2.0, 4.0])     # first buffer = the gradient 2q
    opt.step()                                              # same gradient again: buf = 0.9 buf + g
    assert opt.state[q]["momentum_buffer"] is buf           # updated in place, the same Tensor
    np.testing.assert_allclose(to_np(buf), [0.9 * 2.0 + 2.0, 0.9 * 4.0 + 4.0])


def _one_param_step(opt_kw, hook, fused=None):
    p = xbp.tensor([1.0, -2.0, 3.0], dtype=xbp.float64, requires_grad=True)
    q = xbp.tensor([0.5, 0.25], dtype=xbp.float32, requires_grad=True)
    opt = optim.Adam([p, q], lr=0.1, fused=fused, **opt_kw)
    ((p * p).sum() + (q * q).sum()).backward()
    be = p.xp
    old = type(be).__dict__.get("fused_optimizer_step", None)
    be.fused_optimizer_step = hook
    try:
        opt.step()
    finally:
        if old is None:
            del be.fused_optimizer_step         # back to the class attribute (None)
        else:
            be.fused_optimizer_step = old
    return p, q, opt


def test_fused_hook_is_offered_each_bucket_and_may_replace_the_loop():
    calls = []

    def hook(algorithm, params, grads, states, hyper):
        calls.append((algorithm, len(params), params[0].dtype, sorted(states), sorted(hyper)))
        return None                              # "done": this fake kernel changes nothing

    p, q, opt = _one_param_step({}, hook)
    assert [c[:3] for c in calls] == [("Adam", 1, np.float64), ("Adam", 1, np.float32)]
    assert calls[0][3] == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert {"lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"} <= set(calls[0][4])
    np.testing.assert_array_equal(to_np(p), [1.0, -2.0, 3.0])     # the hook, not the loop, ran
    assert opt.state[p]["step"] == 1 and p._version[0] >= 1


def test_fused_hook_not_implemented_falls_back_and_fused_false_skips_it():
    calls = []

    def decline(algorithm, params, grads, states, hyper):
        calls.append(algorithm)
        return NotImplemented

    p, q, _ = _one_param_step({}, decline)
    assert calls == ["Adam", "Adam"]
    # first Adam step moves each element by lr against its gradient's sign (|m_hat / sqrt(v_hat)| = 1)
    np.testing.assert_allclose(to_np(p), [0.9, -1.9, 2.9], rtol=1e-6)
    np.testing.assert_allclose(to_np(q), [0.4, 0.15], rtol=1e-5)
    calls.clear()
    p, q, _ = _one_param_step({}, decline, fused=False)
    assert calls == []
    np.testing.assert_allclose(to_np(p), [0.9, -1.9, 2.9], rtol=1e-6)


def test_backend_has_no_fused_kernel_by_default():
    p = xbp.tensor([1.0])
    assert p.xp.fused_optimizer_step is None


def test_update_multi_functions_are_public():
    for n in ["sgd", "adam", "rmsprop", "adagrad", "nadam", "radam", "adamax", "asgd", "rprop"]:
        assert callable(getattr(optim, f"{n}_update_multi"))
        assert callable(getattr(optim, f"{n}_update"))
