"""xbp.nn.init: in place, no graph, seeded, and PyTorch's bounds, gains and fans."""
import math

import numpy as np
import pytest

import xbp
from xbp._backend import get_backend
import xbp.nn as nn
from xbp.nn import init

from conftest import to_np


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1.0 and init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for nl, param in [("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


def test_fill_in_place_without_graph(device):
    p = nn.Parameter(xbp.empty(3, 4, device=device))
    data_version = p._version[0]
    for fn in (init.zeros_, init.ones_, lambda t: init.constant_(t, 2.5), init.uniform_, init.normal_,
               init.xavier_uniform_, init.kaiming_normal_):
        out = fn(p)
        assert out is p and p.grad_fn is None and p.requires_grad and p.device == get_backend(device).device
    assert p._version[0] > data_version
    init.constant_(p, 2.5)
    assert np.all(to_np(p) == 2.5)
    init.eye_(p)
    np.testing.assert_array_equal(to_np(p), np.eye(3, 4))
    assert p.dtype == xbp.float32


def test_seeded_and_per_device_reproducible(device):
    a, b = xbp.empty(50, 20, device=device), xbp.empty(50, 20, device=device)
    xbp.manual_seed(7)
    init.kaiming_uniform_(a)
    xbp.manual_seed(7)
    init.kaiming_uniform_(b)
    np.testing.assert_array_equal(to_np(a), to_np(b))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_and_xavier_statistics(mode):
    t = xbp.empty(300, 200, 3, dtype=xbp.float64)          # fan_in 600, fan_out 900
    fan = 600 if mode == "fan_in" else 900
    init.kaiming_uniform_(t, a=0.0, mode=mode, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / fan)
    v = to_np(t)
    assert np.abs(v).max() <= bound and np.abs(v).max() > 0.99 * bound
    assert v.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    init.kaiming_normal_(t, mode=mode, nonlinearity="tanh")
    assert to_np(t).std() == pytest.approx(5 / 3 / math.sqrt(fan), rel=0.01)
    init.xavier_uniform_(t, gain=2.0)
    a = 2.0 * math.sqrt(6 / 1500)
    assert np.abs(to_np(t)).max() <= a and to_np(t).std() == pytest.approx(a / math.sqrt(3), rel=0.01)
    init.xavier_normal_(t)
    assert to_np(t).std() == pytest.approx(math.sqrt(2 / 1500), rel=0.01)
    init.normal_(t, 1.0, 0.5)
    assert to_np(t).mean() == pytest.approx(1.0, abs=0.005) and to_np(t).std() == pytest.approx(0.5, rel=0.01)
    init.uniform_(t, -2, 3)
    assert to_np(t).min() >= -2 and to_np(t).max() < 3


def test_fan_errors():
    with pytest.raises(ValueError, match="fewer than 2 dims"):
        init.xavier_uniform_(xbp.empty(5))
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_uniform_(xbp.empty(2, 2), mode="fan")
    with pytest.raises(TypeError, match="floating-point"):
        init.uniform_(xbp.zeros(2, dtype=xbp.int64))


def test_linear_init_statistics():
    """PyTorch's default: weight ~ kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(in)), bias ~ U(+-1/sqrt(in))."""
    lin = nn.Linear(400, 500)
    bound = 1 / math.sqrt(400)
    w, b = to_np(lin.weight), to_np(lin.bias)
    assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert abs(w.mean()) < 0.01 * bound
    assert np.abs(b).max() <= bound and b.std() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_linear_init_matches_torch_statistics():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = torch.nn.Linear(256, 128)
    x = nn.Linear(256, 128)
    for tp, xp_ in ((t.weight, x.weight), (t.bias, x.bias)):
        tv, xv = tp.detach().numpy(), to_np(xp_)
        assert xv.shape == tv.shape
        assert np.abs(xv).max() <= np.abs(tv).max() * 1.01 + 1e-3
        assert xv.std() == pytest.approx(tv.std(), rel=0.15)
