"""A compiled step bakes in the Python numbers it used (``x / temperature`` records a division by
1.0): the plain Python values it can reach by name are guarded (xbp/_pyguards.py), so setting
one anew records the step again instead of replaying the old number: the compiled step gives the
eager step's result after the change. A value that changes on every call (a counter the step
increments) makes it run eagerly, naming the value."""
import warnings

import numpy as np

import xbp
import xbp.nn as nn
from xbp._pyguards import PythonState

X = xbp.tensor(np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4))

temperature = 1.0
config = {"scale": 1.0, "name": "a"}
calls = 0


def _model():
    xbp.manual_seed(0)
    return nn.Linear(4, 3)


def _eager_and_compiled(step):
    """Four calls of both (records and replays), as a check that they agree before any change."""
    f = xbp.compile(step)
    for _ in range(4):
        assert float(f(X)) == float(step(X))
    assert f.stats["replayed"] >= 2
    return f


def test_a_global_set_anew_is_honoured():
    global temperature
    m = _model()

    def step(x):
        with xbp.no_grad():
            return (m(x) / temperature).sum()
    try:
        f = _eager_and_compiled(step)
        temperature = 2.0
        assert float(f(X)) == float(step(X))
        for _ in range(3):                     # recorded again: replays with the new value
            assert float(f(X)) == float(step(X))
        assert f.stats["invalidated"] == 1 and f.stats["replayed"] >= 3 and f.stats["eager"] == 0
    finally:
        temperature = 1.0


def test_closure_cell_dict_item_and_module_attribute_are_honoured():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)
            self.scale = 0.5

        def forward(self, x):
            return self.lin(x) * self.scale

    xbp.manual_seed(0)
    m = Scaled()
    offset = 0.0

    def step(x):
        with xbp.no_grad():
            return (m(x) * config["scale"] + offset).sum()
    try:
        f = _eager_and_compiled(step)
        for change in ("cell", "dict", "attr"):
            if change == "cell":
                offset = 3.0
            elif change == "dict":
                config["scale"] = 4.0
            else:
                m.scale = 0.25
            for _ in range(3):
                assert float(f(X)) == float(step(X)), change
        assert f.stats["invalidated"] == 3
    finally:
        config["scale"] = 1.0


def test_training_step_sees_a_new_loss_weight():
    # the same through backward and an optimizer step: parameters equal the eager twin's
    def make():
        m = _model()
        opt = xbp.optim.SGD(m.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = (m(x) ** 2).mean() * w_of()
            loss.backward()
            opt.step()
            return loss.detach()
        return m, step

    state = {"w": 1.0}

    def w_of():                                  # a helper the step calls: its dict is watched
        return state["w"]
    m_e, eager = make()
    m_c, step = make()
    f = xbp.compile(step)
    for i in range(8):
        if i == 5:
            state["w"] = 3.0
        assert float(f(X)) == float(eager(X))
    np.testing.assert_array_equal(m_c.weight.detach().numpy(), m_e.weight.detach().numpy())


def test_a_counter_the_step_increments_runs_eagerly_and_keeps_counting():
    m = _model()

    def step(x):
        global calls
        calls += 1                              # a side effect a replay would skip
        with xbp.no_grad():
            return (m(x) * 1.0).sum()
    before = calls
    f = xbp.compile(step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(12):
            f(X)
    assert calls - before == 12                 # every call ran the step's Python code
    assert any("a Python value the step reads (calls) keeps changing" in str(w.message) for w in caught)


def test_unchanged_values_keep_replaying():
    nan = float("nan")
    holder = {"v": nan, "t": (1, 2.0, "x")}
    m = _model()

    def step(x):
        with xbp.no_grad():
            return m(x).sum() + (0.0 if holder["v"] != holder["v"] else 1.0) + holder["t"][0]
    f = xbp.compile(step)
    for _ in range(6):
        f(X)
    assert f.stats["replayed"] == 4 and "invalidated" not in f.stats


def test_python_state_what_it_watches():
    class Owner:
        def __init__(self):
            self.k = 3
            self._private = 1
            self.items = [1, 2]

        def method(self, x):
            return x * self.k * config["scale"] * temperature

    o = Owner()
    st = PythonState(o.method)
    labels = {e[3] for e in st.entries}
    assert {"Owner.k", "config['scale']", "config['name']", "temperature"} <= labels
    assert "Owner._private" not in labels and "Owner.items" not in labels
    assert st.changed() is None
    o.k = 3.0                                   # 3 and 3.0 are not the same value here
    assert st.changed() == "Owner.k"
    o.k = 3
    big = dict.fromkeys(range(100), 1)          # a large dict is data, not configuration

    def uses_big():
        return big[0]
    assert PythonState(uses_big).entries == []

    weights = [1.0, 2.0]

    def uses_list():
        return weights[0]
    st = PythonState(uses_list)
    assert [e[3] for e in st.entries] == ["weights"] and st.changed() is None
    weights[1] = 5.0
    assert st.changed() == "weights"

    def inner():
        return temperature

    def outer():
        return inner() + 1                      # a function it names: its globals are watched
    assert "temperature" in {e[3] for e in PythonState(outer).entries}
