"""xbp.autograd.trace (the backward, step by step) and detect_anomaly (the first NaN/Inf, where it
was born). The trace is checked on the 2-2-2 network of Matt Mazur's "A Step by Step
Backpropagation Example", against his published numbers and against the chain rule written out by
hand in NumPy below; anomaly detection must name the op and this file's line."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import xbp
from xbp import _debug, _engine, _primitive
from xbp.autograd import AnomalyError, detect_anomaly, trace


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # NaN/Inf are made on purpose here


def _here():
    return inspect.currentframe().f_back.f_lineno


@pytest.fixture(autouse=True)
def _hooks_off():
    # these tests start with every debug mode off, even under XBP_DETECT_ANOMALY=1
    env = list(_debug._STATE.anomaly)
    _debug._STATE.anomaly.clear()
    _debug._STATE.refresh()
    yield
    # every context manager must leave the hot path as it found it: one `is None` check
    assert _primitive.ANOMALY[0] is None
    assert _engine.TRACE[0] is None
    _debug._STATE.anomaly[:] = env
    _debug._STATE.refresh()


# ------------------------------------------------------------------------------------------------
# Mazur's 2-2-2 network
# ------------------------------------------------------------------------------------------------
X = [[0.05, 0.10]]
W1 = [[0.15, 0.20], [0.25, 0.30]]    # rows: h1 <- (w1, w2), h2 <- (w3, w4)
W2 = [[0.40, 0.45], [0.50, 0.55]]    # rows: o1 <- (w5, w6), o2 <- (w7, w8)
B1, B2 = 0.35, 0.60
T = [[0.01, 0.99]]


def mazur_net(device):
    f64 = xbp.float64
    p = {"W1": xbp.tensor(W1, dtype=f64, device=device, requires_grad=True),
         "b1": xbp.tensor(B1, dtype=f64, device=device, requires_grad=True),
         "W2": xbp.tensor(W2, dtype=f64, device=device, requires_grad=True),
         "b2": xbp.tensor(B2, dtype=f64, device=device, requires_grad=True)}
    x = xbp.tensor(X, dtype=f64, device=device)
    t = xbp.tensor(T, dtype=f64, device=device)
    h = xbp.sigmoid(x @ p["W1"].T + p["b1"])
    o = xbp.sigmoid(h @ p["W2"].T + p["b2"])
    E = (0.5 * (t - o) ** 2).sum()
    return E, p


def hand_derived():
    """The chain rule of the tutorial, term by term, in NumPy."""
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    x, w1, w2, t = np.array(X[0]), np.array(W1), np.array(W2), np.array(T[0])
    out_h = sig(w1 @ x + B1)
    out_o = sig(w2 @ out_h + B2)
    dE_dout_o = -(t - out_o)                          # dE/dout_o
    dout_dnet_o = out_o * (1 - out_o)                 # dout_o/dnet_o
    delta_o = dE_dout_o * dout_dnet_o                 # dE/dnet_o
    dE_dW2 = np.outer(delta_o, out_h)                 # dnet_o/dw = out_h
    dE_dout_h = w2.T @ delta_o                        # each hidden unit feeds both outputs
    delta_h = dE_dout_h * out_h * (1 - out_h)
    dE_dW1 = np.outer(delta_h, x)
    return dict(out_h=out_h, out_o=out_o, dE_dout_o=dE_dout_o, delta_o=delta_o, dE_dW2=dE_dW2,
                dE_dout_h=dE_dout_h, delta_h=delta_h, dE_dW1=dE_dW1, dE_db2=delta_o.sum(), dE_db1=delta_h.sum())


def test_hand_derivation_matches_the_published_numbers():
    h = hand_derived()
    np.testing.assert_allclose(h["out_o"], [0.75136507, 0.772928465], atol=1e-9)
    np.testing.assert_allclose(h["dE_dout_o"][0], 0.74136507, atol=1e-9)
    np.testing.assert_allclose(h["dE_dW2"][0, 0], 0.082167041, atol=1e-9)      # dE/dw5
    np.testing.assert_allclose(h["dE_dout_h"][0], 0.036350306, atol=1e-9)
    np.testing.assert_allclose(h["dE_dW1"][0, 0], 0.000438568, atol=1e-9)      # dE/dw1


def test_trace_of_mazur_net_equals_chain_rule(device):
    E, p = mazur_net(device)
    np.testing.assert_allclose(E.item(), 0.298371109, atol=1e-9)
    with trace(params=p, values=True) as t:
        E.backward()
    h = hand_derived()
    ops = [r.op for r in t.rows]
    assert ops == ["sum", "mul", "pow", "sub", "sigmoid", "add", "matmul", "permute",
                   "sigmoid", "add", "matmul", "permute"]
    assert [r.step for r in t.rows] == list(range(12))
    sig_o, sig_h = t.find("sigmoid")
    # output sigmoid: in comes dE/dout_o, out goes delta_o = dE/dout_o * out_o(1 - out_o)
    np.testing.assert_allclose(sig_o.grad_output[0], h["dE_dout_o"], rtol=1e-12)
    np.testing.assert_allclose(sig_o.grad_inputs[0].value[0], h["delta_o"], rtol=1e-12)
    np.testing.assert_allclose(sig_o.grad_inputs[0].value[0, 0], 0.74136507 * 0.186815602, atol=1e-9)
    # the gradients that reach the leaves, by name
    leaf_edges = {t.name(e.target): e for r in t.rows for e in r.grad_inputs if t.name(e.target) in p}
    assert set(leaf_edges) == {"W1", "b1", "W2", "b2"}
    np.testing.assert_allclose(leaf_edges["W2"].value, h["dE_dW2"], rtol=1e-12)
    np.testing.assert_allclose(leaf_edges["W2"].value[0, 0], 0.082167041, atol=1e-9)
    np.testing.assert_allclose(sig_h.grad_output[0], h["dE_dout_h"], rtol=1e-12)
    np.testing.assert_allclose(sig_h.grad_inputs[0].value[0], h["delta_h"], rtol=1e-12)
    np.testing.assert_allclose(leaf_edges["W1"].value, h["dE_dW1"], rtol=1e-12)
    np.testing.assert_allclose(leaf_edges["W1"].value[0, 0], 0.000438568, atol=1e-9)
    # the bias is shared by both units: its edge carries the gradient summed back to its shape ()
    assert leaf_edges["b2"].shape == ()
    np.testing.assert_allclose(leaf_edges["b2"].value, h["dE_db2"], rtol=1e-12)
    np.testing.assert_allclose(leaf_edges["b1"].value, h["dE_db1"], rtol=1e-12)
    # norms and shapes agree with the values; .grad is what flowed into the leaves
    for r in t.rows:
        assert r.grad_output_shape == r.grad_output.shape
        np.testing.assert_allclose(r.grad_output_norm, np.linalg.norm(r.grad_output), rtol=1e-12)
        for e in r.grad_inputs:
            assert e.shape == e.value.shape
            np.testing.assert_allclose(e.norm, np.linalg.norm(e.value), rtol=1e-12)
    np.testing.assert_allclose(xbp.tensor(p["W1"].grad).numpy(), h["dE_dW1"], rtol=1e-12)


def test_trace_table_and_targets(device):
    E, p = mazur_net(device)
    with trace(params=p) as t:
        E.backward()
    assert len(t) == 12 and t.rows[0].grad_output is None   # no values kept by default
    text = str(t)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["step", "op"]
    assert "sum#0" in text and "permute#11" in text
    for name in ("W1", "b1", "W2", "b2"):
        assert f"] {name} " in text
    # the row of matmul#6 sends gradients to sigmoid#8 (the hidden layer) and permute#7
    mm = t.rows[6]
    assert mm.op == "matmul"
    assert [t.name(e.target) for e in mm.grad_inputs] == ["sigmoid#8", "permute#7"]
    assert mm.grad_output_shape == (1, 2)
    assert [e.shape for e in mm.grad_inputs] == [(1, 2), (2, 2)]
    # the creation site is not recorded unless a recording mode was on during the forward
    assert mm.where is None


def test_trace_names_unnamed_leaves_and_nests_with_anomaly(device):
    x = xbp.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    with detect_anomaly():
        y = (x * x).sum(); line = _here()  # noqa: E702
        with trace() as t:
            y.backward()
    assert [r.op for r in t.rows] == ["sum", "mul"]
    mul = t.rows[1]
    assert [t.name(e.target) for e in mul.grad_inputs] == ["leaf (3,)", "leaf (3,)"]
    np.testing.assert_allclose([e.norm for e in mul.grad_inputs], [np.sqrt(14)] * 2, rtol=1e-6)   # float32
    assert mul.where.line == line and os.path.samefile(mul.where.file, __file__)
    assert "test_debug.py" in str(t)


def test_trace_under_create_graph(device):
    x = xbp.tensor([0.5, -1.0], dtype=xbp.float64, device=device, requires_grad=True)
    y = (x ** 3).sum()
    with trace() as t:
        (g,) = xbp.grad(y, x, create_graph=True)
    np.testing.assert_allclose(t.rows[-1].grad_inputs[0].norm, np.linalg.norm(3 * np.array([0.5, -1.0]) ** 2))
    (gg,) = xbp.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * np.array([0.5, -1.0]))


# ------------------------------------------------------------------------------------------------
# anomaly detection
# ------------------------------------------------------------------------------------------------
def _same_line(err, line):
    assert err.where is not None
    assert os.path.samefile(err.where.file, __file__), err.where
    assert err.where.line == line, (err.where, line)


def test_forward_anomaly_log0(device):
    x = xbp.tensor([[1.0, 0.0], [2.0, 3.0]], device=device, requires_grad=True)
    y = x * 2.0
    with detect_anomaly():
        with pytest.raises(AnomalyError) as ei:
            line = _here() + 1
            xbp.log(y)
    e = ei.value
    assert isinstance(e, RuntimeError)
    assert (e.phase, e.op, e.bad_inputs) == ("forward", "log", [])
    assert e.input_shapes == ((2, 2),)
    _same_line(e, line)
    msg = str(e)
    assert "log" in msg and f"test_debug.py:{line}" in msg and "1 Inf of 4" in msg
    assert "all inputs were finite" in msg


def test_forward_anomaly_zero_over_zero_without_grad(device):
    a = xbp.zeros((3,), device=device)
    b = xbp.tensor([0.0, 1.0, 2.0], device=device)
    with detect_anomaly(), pytest.raises(AnomalyError) as ei:
        line = _here() + 1
        a / b                   # checked with or without a graph
    assert ei.value.op == "div" and ei.value.bad_inputs == []
    assert ei.value.input_shapes == ((3,), (3,))
    assert "1 NaN of 3" in str(ei.value)
    _same_line(ei.value, line)


def test_forward_anomaly_names_nonfinite_input(device):
    x = xbp.tensor([1.0, float("nan")], device=device, requires_grad=True)   # NaN from the data
    w = xbp.tensor([2.0, 3.0], device=device, requires_grad=True)
    with detect_anomaly(), pytest.raises(AnomalyError) as ei:
        line = _here() + 1
        w + x
    e = ei.value
    assert (e.op, e.bad_inputs) == ("add", [1])
    assert "input 1 was already non-finite (1 NaN of 2 values)" in str(e)
    _same_line(e, line)


def test_backward_anomaly_points_at_forward_line(device):
    x = xbp.tensor([0.0, 4.0], device=device, requires_grad=True)
    with detect_anomaly():
        y = xbp.sqrt(x); line = _here()  # noqa: E702   finite forward, infinite derivative at 0
        loss = (y * 3.0).sum()
        with pytest.raises(AnomalyError) as ei:
            loss.backward()
    e = ei.value
    assert (e.phase, e.op, e.bad_inputs, e.input_shapes) == ("backward", "sqrt", [0], ((2,),))
    _same_line(e, line)
    msg = str(e)
    assert "backward" in msg and "sqrt" in msg and f"test_debug.py:{line}" in msg
    assert "1 Inf of 2" in msg and "incoming gradient was finite" in msg


def test_backward_anomaly_0_times_inf(device):
    # x * log(x) at 0, the forward's NaN masked out: the backward of mul sends 1 * log(0)
    x = xbp.tensor([0.0, 1.0], device=device, requires_grad=True)
    with detect_anomaly(forward=False):
        y = x * xbp.log(x); line = _here()  # noqa: E702
        with pytest.raises(AnomalyError) as ei:
            xbp.where(xbp.isfinite(y), y, 0.0).sum().backward()
    e = ei.value
    assert (e.phase, e.op, e.bad_inputs) == ("backward", "mul", [0])
    _same_line(e, line)
    assert "saved input 1 (1 Inf of 2 values) is non-finite" in str(e)


def test_backward_without_recorded_forward(device):
    x = xbp.tensor([0.0, 1.0], device=device, requires_grad=True)
    loss = xbp.sqrt(x).sum()
    with detect_anomaly(), pytest.raises(AnomalyError) as ei:
        loss.backward()
    assert ei.value.op == "sqrt" and ei.value.where is None
    assert "outside detect_anomaly" in str(ei.value)


def test_no_anomaly_no_change(device):
    x = xbp.tensor([0.5, 1.5], dtype=xbp.float64, device=device, requires_grad=True)
    with detect_anomaly() as d:
        assert xbp.autograd.is_anomaly_enabled()
        y = (xbp.exp(x) * xbp.log(x)).sum()
        y.backward()
    assert not xbp.autograd.is_anomaly_enabled() and d.forward
    v = np.array([0.5, 1.5])
    np.testing.assert_allclose(x.grad.numpy(), np.exp(v) * np.log(v) + np.exp(v) / v)
    # a -inf mask is fine with the forward check off
    with detect_anomaly(forward=False):
        m = xbp.where(x > 1.0, x, float("-inf"))
        xbp.softmax(m, 0).sum().backward()


def test_decorator_and_nesting(device):
    @detect_anomaly()
    def f(x):
        return xbp.log(x)

    x = xbp.tensor([0.0], device=device)
    with pytest.raises(AnomalyError):
        f(x)
    with detect_anomaly(), detect_anomaly(forward=False):
        xbp.log(x)            # innermost wins: forward unchecked
    assert _primitive.ANOMALY[0] is None


def test_env_var_turns_it_on():
    code = ("import xbp\n"
            "x = xbp.tensor([0.0])\n"
            "try:\n"
            "    xbp.log(x)\n"
            "except xbp.autograd.AnomalyError as e:\n"
            "    print('caught', e.op, e.where.line)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(xbp.__file__)))   # prepended, not replaced
    env = dict(os.environ, XBP_DETECT_ANOMALY="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "caught log 4", out.stderr
