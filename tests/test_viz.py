"""xbp.viz: the DOT text is parsed back (nodes, edges, labels, parameter names) for a 2-layer MLP,
Mazur's 2-2-2 net, a model with a reused parameter and a branching graph; edge gradient norms
are checked against closed forms. Graphviz is not needed (the render test skips without it)."""
import re
import shutil

import numpy as np
import pytest

import xbp
from xbp import _debug, _engine, _primitive
from xbp.viz import module_scope, record, render, to_dot

_NODE = re.compile(r'^\s*(\w+) \[(.*)\];$')
_EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$')
_ATTR = re.compile(r'([\w]+)="((?:[^"\\]|\\.)*)"')


def parse(dot):
    """{node id: attrs} and [(tail, head, attrs)] of the DOT text `to_dot` writes."""
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    nodes, edges = {}, []
    for line in dot.splitlines():
        m = _EDGE.match(line)
        if m:
            edges.append((m.group(1), m.group(2), dict(_ATTR.findall(m.group(3) or ""))))
            continue
        m = _NODE.match(line)
        if m and m.group(1) not in ("node", "edge", "graph"):
            attrs = {k: v.replace("\\n", "\n") for k, v in _ATTR.findall(m.group(2))}
            nodes[m.group(1)] = attrs
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def of_class(nodes, cls):
    return {k: v for k, v in nodes.items() if v.get("class") == cls}


def label_of(nodes, first_line):
    """The node ids whose label starts with the line `first_line`."""
    return [k for k, v in nodes.items() if v["label"].split("\n")[0] == first_line]


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
# models
# ------------------------------------------------------------------------------------------------
def mlp(device, dtype=xbp.float64, n=4):
    rng = np.random.default_rng(0)
    mk = lambda *s: xbp.tensor(rng.standard_normal(s), dtype=dtype, device=device, requires_grad=True)  # noqa: E731
    p = {"0.weight": mk(5, 3), "0.bias": mk(5), "2.weight": mk(2, 5), "2.bias": mk(2)}
    x = xbp.tensor(rng.standard_normal((n, 3)), dtype=dtype, device=device)
    h = xbp.relu(xbp.linear(x, p["0.weight"], p["0.bias"]))
    y = xbp.linear(h, p["2.weight"], p["2.bias"])
    loss = (y ** 2).mean()
    return loss, p


def mazur(device):
    f64 = xbp.float64
    p = {"W1": xbp.tensor([[.15, .20], [.25, .30]], dtype=f64, device=device, requires_grad=True),
         "b1": xbp.tensor(.35, dtype=f64, device=device, requires_grad=True),
         "W2": xbp.tensor([[.40, .45], [.50, .55]], dtype=f64, device=device, requires_grad=True),
         "b2": xbp.tensor(.60, dtype=f64, device=device, requires_grad=True)}
    x = xbp.tensor([[0.05, 0.10]], dtype=f64, device=device)
    t = xbp.tensor([[0.01, 0.99]], dtype=f64, device=device)
    h = xbp.sigmoid(x @ p["W1"].T + p["b1"])
    o = xbp.sigmoid(h @ p["W2"].T + p["b2"])
    return (0.5 * (t - o) ** 2).sum(), p


# ------------------------------------------------------------------------------------------------
# structure and labels
# ------------------------------------------------------------------------------------------------
def test_mlp_structure_and_names(device):
    loss, p = mlp(device)
    nodes, edges = parse(to_dot(loss, params=p))
    ops, params, inputs = of_class(nodes, "op"), of_class(nodes, "param"), of_class(nodes, "input")
    assert sorted(v["label"].split("\n")[0] for v in ops.values()) == ["linear", "linear", "mean", "pow", "relu"]
    assert sorted(v["label"].split("\n")[0] for v in params.values()) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert inputs == {}
    assert len(edges) == 8           # linear: W, b (+ x, no grad)  relu  linear: h, W, b  pow  mean
    # labels: name, output shape, dtype, device
    (l0,) = [k for k in label_of(nodes, "linear") if "(4, 5)" in nodes[k]["label"]]
    assert nodes[l0]["label"] == f"linear\n(4, 5) float64 {loss.device}"
    (w0,) = label_of(nodes, "0.weight")
    assert nodes[w0]["label"].split("\n")[1].startswith("(5, 3) float64")
    assert (w0, l0) in {(a, b) for a, b, _ in edges}
    (root,) = [k for k, v in nodes.items() if v.get("peripheries") == "2"]
    assert nodes[root]["label"].startswith("mean\n() float64")
    # data flows leaf -> op -> ... -> the output: every op but the root feeds another
    tails = {a for a, _, _ in edges}
    assert set(nodes) - tails == {root}


def test_unnamed_leaves_are_inputs_and_constants_optional(device):
    loss, p = mlp(device)
    nodes, edges = parse(to_dot(loss))
    assert len(of_class(nodes, "input")) == 4 and not of_class(nodes, "param")
    assert all(v["label"].startswith("input\n") for v in of_class(nodes, "input").values())
    nodes2, edges2 = parse(to_dot(loss, params=list(p.items())[:2], constants=True))
    assert len(of_class(nodes2, "param")) == 2 and len(of_class(nodes2, "input")) == 2
    (c,) = of_class(nodes2, "const").values()             # x, which needs no gradient
    assert c["label"] == "const (4, 3)" and len(edges2) == len(edges) + 1


def test_mazur_net_structure(device):
    E, p = mazur(device)
    nodes, edges = parse(to_dot(E, params=p))
    ops = [v["label"].split("\n")[0] for v in of_class(nodes, "op").values()]
    assert sorted(ops) == sorted(["permute", "matmul", "add", "sigmoid"] * 2 + ["sub", "pow", "mul", "sum"])
    assert len(of_class(nodes, "param")) == 4 and len(edges) == 15
    (b1,) = label_of(nodes, "b1")
    assert nodes[b1]["label"].split("\n")[1].startswith("() float64")
    heads = [b for a, b, _ in edges if a == b1]
    assert [nodes[h]["label"] for h in heads] == [f"add\n(1, 2) float64 {nodes[b1]['label'].split()[-1]}"]


def test_shared_parameter_and_repeated_input(device):
    w = xbp.tensor([0.5, -1.0, 2.0], dtype=xbp.float64, device=device, requires_grad=True)
    s = xbp.sin(w)
    z = (s * w).sum() + (w * w).sum()
    nodes, edges = parse(to_dot(z, params={"w": w}))
    (leaf,) = of_class(nodes, "param")
    out = [nodes[b]["label"].split("\n")[0] for a, b, _ in edges if a == leaf]
    assert sorted(out) == ["mul", "mul", "mul", "sin"]     # s*w once, w*w twice (both inputs)
    assert len(of_class(nodes, "op")) == 6                 # sin mul sum mul sum add
    assert len(edges) == 4 + 1 + 2 + 2                     # from w; sin->mul; mul->sum x2; sum->add x2


def test_branching_graph_and_several_outputs(device):
    x = xbp.tensor([0.1, 0.2], device=device, requires_grad=True)
    a = xbp.exp(x)
    b = a * 2.0
    c = xbp.sin(a)
    nodes, edges = parse(to_dot(b, c))
    (e,) = label_of(nodes, "exp")
    assert sorted(nodes[h]["label"].split("\n")[0] for t, h, _ in edges if t == e) == ["mul", "sin"]
    assert sorted(nodes[k]["label"].split("\n")[0] for k, v in nodes.items() if v.get("peripheries") == "2") \
        == ["mul", "sin"]
    assert nodes[e]["label"] == f"exp\n(2,) float32 {x.device}"
    nodes, edges = parse(to_dot([b, c], (b + c).sum()))     # lists and tuples of outputs
    assert len(of_class(nodes, "op")) == 5 and len(edges) == 6


def test_dtype_and_device_survive_backward(device):
    x = xbp.tensor([1.0, 2.0], dtype=xbp.float32, device=device, requires_grad=True)
    y = (xbp.exp(x.to(xbp.float64)) * 3.0).sum()
    y.backward()                                            # frees the saved arrays
    nodes, _ = parse(to_dot(y))
    labels = sorted(v["label"] for v in of_class(nodes, "op").values())
    dev = x.device
    assert labels == [f"astype\n(2,) float64 {dev}", f"exp\n(2,) float64 {dev}", f"mul\n(2,) float64 {dev}",
                      f"sum\n() float64 {dev}"]
    assert of_class(nodes, "input")["leaf0"]["label"] == f"input\n(2,) float32 {dev}"


def test_errors():
    with pytest.raises(ValueError, match="does not require grad"):
        to_dot(xbp.ones((2,)))
    with pytest.raises(TypeError):
        to_dot(np.ones(2))
    loss, _ = mlp("cpu")
    with pytest.raises(ValueError, match="record"):
        to_dot(loss, group_by_module=True)


# ------------------------------------------------------------------------------------------------
# gradient norms on the edges
# ------------------------------------------------------------------------------------------------
def _edge_norm(nodes, edges, tail_label, head_label):
    """Norms on the edges tail -> head, read from the tooltip (6 digits; the label shows 3)."""
    out = [float(re.search(r"\|grad\| (\S+)$", a["tooltip"]).group(1)) for t, h, a in edges
           if nodes[t]["label"].split("\n")[0] == tail_label and nodes[h]["label"].split("\n")[0] == head_label]
    return out


def test_grad_norms_recorded(device):
    E, p = mazur(device)
    n_before = len(_debug.EDGE_NORMS)
    with record():
        E.backward()
    assert len(_debug.EDGE_NORMS) > n_before
    nodes, edges = parse(to_dot(E, params=p, show_grads=True))
    assert all("label" in a for _, _, a in edges)
    gW2 = np.array([[0.082167041, 0.082667628], [-0.022602540, -0.022740242]])   # Mazur's dE/dw5..w8
    (n,) = _edge_norm(nodes, edges, "W2", "permute")
    np.testing.assert_allclose(n, np.linalg.norm(gW2), rtol=1e-5)
    (n,) = _edge_norm(nodes, edges, "b2", "add")
    np.testing.assert_allclose(n, 0.138498562 - 0.038098236, rtol=1e-5)        # delta_o1 + delta_o2
    (n,) = _edge_norm(nodes, edges, "mul", "sum")
    np.testing.assert_allclose(n, np.sqrt(2), rtol=1e-5)
    (n,) = _edge_norm(nodes, edges, "W1", "permute")
    np.testing.assert_allclose(n, np.linalg.norm(p["W1"].grad.numpy()), rtol=1e-5)
    labels = [a["label"] for t, h, a in edges if nodes[t]["label"].startswith("b2")]
    assert labels == ["0.1"]                                                    # 3 significant digits


def test_grad_norms_per_edge_of_shared_parameter(device):
    v = np.array([0.5, -1.0, 2.0])
    w = xbp.tensor(v, device=device, requires_grad=True)
    z = (xbp.sin(w) * w).sum()
    # graph still intact: to_dot runs its own backward, without touching .grad
    nodes, edges = parse(to_dot(z, params={"w": w}, show_grads=True))
    assert w.grad is None
    (to_sin,) = _edge_norm(nodes, edges, "w", "sin")
    (to_mul,) = _edge_norm(nodes, edges, "w", "mul")
    np.testing.assert_allclose(to_sin, np.linalg.norm(np.cos(v) * v), rtol=1e-5)
    np.testing.assert_allclose(to_mul, np.linalg.norm(np.sin(v)), rtol=1e-5)
    z.backward()                                  # the graph was kept: a real backward still works
    np.testing.assert_allclose(w.grad.numpy(), np.cos(v) * v + np.sin(v))


def test_show_grads_after_freeing_backward_shows_leaf_grads_and_says_how(device):
    E, params = mazur(device)
    E.backward()
    dot = to_dot(E, params=params, show_grads=True)
    assert abs(float(params["W2"].grad.numpy()[0, 0]) - 0.082167041) < 1e-8   # Mazur's dE/dw5
    for nm, t in params.items():
        want = float(np.linalg.norm(t.grad.numpy()))
        assert f"|.grad| {want:.3g}" in dot or f"|.grad| {want:.4g}" in dot, (nm, want)
    assert "xbp.viz.record" in dot and "gradients flow back against the arrows" in dot
    assert "edge numbers" not in dot                       # no edge norms were recorded


def test_legend_explains_edges_and_numbers(device):
    E, params = mazur(device)
    assert "legend" not in to_dot(E, params=params)      # plain pictures stay as they were
    dot = to_dot(E, params=params, show_grads=True)
    assert "edge numbers: norm of the gradient" in dot and "data flow of the forward pass" in dot
    assert "dashed notes" in to_dot(E, params=params, constants=True, legend=True)


# ------------------------------------------------------------------------------------------------
# module grouping
# ------------------------------------------------------------------------------------------------
class Lin:
    """A stand-in for an xbp.nn module: its __call__ enters module_scope like Module.__call__."""

    def __init__(self, i, o, device, seed):
        rng = np.random.default_rng(seed)
        self.weight = xbp.tensor(rng.standard_normal((o, i)), dtype=xbp.float32, device=device, requires_grad=True)
        self.bias = xbp.tensor(rng.standard_normal(o), dtype=xbp.float32, device=device, requires_grad=True)

    def __call__(self, x):
        with module_scope(self):
            return x @ self.weight.T + self.bias


class Net:
    def __init__(self, device, twice=False):
        self.fc1, self.fc2, self.twice = Lin(3, 3, device, 1), Lin(3, 2, device, 2), twice

    def named_modules(self):
        return [("", self), ("fc1", self.fc1), ("fc2", self.fc2)]

    def named_parameters(self):
        return [(f"{m}.{k}", getattr(getattr(self, m), k)) for m in ("fc1", "fc2") for k in ("weight", "bias")]

    def __call__(self, x):
        with module_scope(self):
            h = xbp.relu(self.fc1(x))
            if self.twice:
                h = xbp.relu(self.fc1(h))
            return self.fc2(h)


def test_group_by_module_scopes(device):
    net = Net(device)
    x = xbp.ones((4, 3), device=device)
    with record():
        loss = (net(x) ** 2).sum()
        loss.backward()
    full, _ = parse(to_dot(loss, params=net))
    assert len(of_class(full, "op")) == 3 + 1 + 3 + 2
    nodes, edges = parse(to_dot(loss, params=net, group_by_module=True, show_grads=True))
    mods = of_class(nodes, "module")
    assert sorted(v["label"].split("\n")[0] for v in mods.values()) == ["fc1: Lin", "fc2: Lin"]
    (fc1,) = label_of(nodes, "fc1: Lin")
    assert "3 ops" in nodes[fc1]["label"] and "fc1.weight (3, 3)" in nodes[fc1]["label"]
    assert nodes[fc1]["label"].endswith(f"-> (4, 3) float32 {x.device}")
    assert not of_class(nodes, "param")                      # parameters are drawn inside their module
    assert sorted(v["label"].split("\n")[0] for v in of_class(nodes, "op").values()) == ["pow", "relu", "sum"]
    chain = {(nodes[a]["label"].split("\n")[0], nodes[b]["label"].split("\n")[0]): at for a, b, at in edges}
    assert set(chain) == {("fc1: Lin", "relu"), ("relu", "fc2: Lin"), ("fc2: Lin", "pow"), ("pow", "sum")}
    assert float(chain[("relu", "fc2: Lin")]["label"]) > 0


def test_group_by_module_reused_module(device):
    net = Net(device, twice=True)
    with record(grads=False):
        loss = net(xbp.ones((2, 3), device=device)).sum()
    nodes, edges = parse(to_dot(loss, params=net, group_by_module=True))
    assert sorted(v["label"].split("\n")[0] for v in of_class(nodes, "module").values()) \
        == ["fc1: Lin", "fc1: Lin (call 2)", "fc2: Lin"]
    # fc1's parameters feed two module calls: they stay visible, with an edge to each call
    shared = {v["label"].split("\n")[0]: k for k, v in of_class(nodes, "param").items()}
    assert set(shared) == {"fc1.weight", "fc1.bias"}
    heads = sorted(nodes[b]["label"].split("\n")[0] for a, b, _ in edges if a == shared["fc1.weight"])
    assert heads == ["fc1: Lin", "fc1: Lin (call 2)"]


def _xbp_modules():
    nnm = pytest.importorskip("xbp.nn.module")
    from xbp.nn.parameter import Parameter

    class Dense(nnm.Module):
        def __init__(self, i, o, seed):
            super().__init__()
            rng = np.random.default_rng(seed)
            self.weight = Parameter(xbp.tensor(rng.standard_normal((o, i)), dtype=xbp.float32))
            self.bias = Parameter(xbp.zeros((o,)))

        def forward(self, x):
            return xbp.relu(xbp.linear(x, self.weight, self.bias))

    class Block(nnm.Module):
        def __init__(self, seed):
            super().__init__()
            self.a, self.b = Dense(4, 4, seed), Dense(4, 4, seed + 1)

        def forward(self, x):
            return x + self.b(self.a(x))         # residual

    class Model(nnm.Module):
        def __init__(self):
            super().__init__()
            self.inp = Dense(3, 4, 0)
            self.block1, self.block2 = Block(1), Block(3)
            self.out = Dense(4, 2, 5)

        def forward(self, x):
            return self.out(self.block2(self.block1(self.inp(x))))

    return Model


def test_group_by_module_with_xbp_nn_modules():
    Model = _xbp_modules()
    model = Model()
    x = xbp.ones((5, 3))
    with record():
        loss = model(x).sum()
    full, _ = parse(to_dot(loss, params=model))
    assert len(of_class(full, "op")) == 6 * 2 + 2 + 1 and len(of_class(full, "param")) == 12
    # depth 1: the model's children; each Block collapses to one node, parameters inside
    nodes, edges = parse(to_dot(loss, params=model, group_by_module=True))
    mods = {v["label"].split("\n")[0]: k for k, v in of_class(nodes, "module").items()}
    assert set(mods) == {"inp: Dense", "block1: Block", "block2: Block", "out: Dense"}
    assert "5 ops" in nodes[mods["block1: Block"]]["label"]
    assert "block1.a.weight (4, 4)" in nodes[mods["block1: Block"]]["label"]
    (total,) = of_class(nodes, "op")                                            # the final sum
    assert not of_class(nodes, "param")
    pairs = {(a, b) for a, b, _ in edges}
    assert pairs == {(mods["inp: Dense"], mods["block1: Block"]), (mods["block1: Block"], mods["block2: Block"]),
                     (mods["block2: Block"], mods["out: Dense"]), (mods["out: Dense"], total)}
    # depth 2: inside the blocks, the Dense layers and the residual add
    nodes, edges = parse(to_dot(loss, params=model, group_by_module=2))
    labels = sorted(v["label"].split("\n")[0] for v in of_class(nodes, "module").values())
    assert labels == ["block1.a: Dense", "block1.b: Dense", "block1: Block", "block2.a: Dense", "block2.b: Dense",
                      "block2: Block", "inp: Dense", "out: Dense"]
    (blk,) = label_of(nodes, "block1: Block")
    assert nodes[blk]["label"].startswith("block1: Block\n1 op\n")       # its own residual add
    assert [v["label"].split("\n")[0] for v in of_class(nodes, "op").values()] == ["sum"]
    # outside record() nothing is tagged: grouping falls back to the parameter names, same depth-1 view
    loss2 = model(x).sum()
    nodes2, _ = parse(to_dot(loss2, params=model, group_by_module=True))
    assert sorted(v["label"].split("\n")[0] for v in of_class(nodes2, "module").values()) \
        == ["block1", "block2", "inp", "out"]


def test_group_by_module_from_param_names(device):
    loss, p = mlp(device)
    nodes, edges = parse(to_dot(loss, params=p, group_by_module=True))
    mods = of_class(nodes, "module")
    assert sorted(v["label"].split("\n")[0] for v in mods.values()) == ["0", "2"]
    assert sorted(v["label"].split("\n")[0] for v in of_class(nodes, "op").values()) == ["mean", "pow", "relu"]
    assert len(edges) == 4                                   # 0 -> relu -> 2 -> pow -> mean
    # matmul-and-add layers: the transpose, product and bias add all join the layer
    E, q = mazur(device)
    named = {"l1.weight": q["W1"], "l1.bias": q["b1"], "l2.weight": q["W2"], "l2.bias": q["b2"]}
    nodes, _ = parse(to_dot(E, params=named, group_by_module=True))
    assert sorted(v["label"] for v in of_class(nodes, "module").values())[0].startswith("l1\n3 ops")


def test_module_scope_is_free_when_not_recording():
    assert module_scope(object()) is module_scope(object())     # one shared null context
    with record():
        assert module_scope(object()) is not module_scope(object())


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------
def test_render_without_graphviz(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    loss, p = mlp("cpu")
    path = render(loss, tmp_path / "g.svg", params=p)
    assert path == str(tmp_path / "g.dot")
    text = (tmp_path / "g.dot").read_text()
    assert parse(text)[0] and not (tmp_path / "g.svg").exists()
    err = capsys.readouterr().err
    assert "dot -Tsvg" in err and "g.dot" in err
    assert render(text, tmp_path / "h.dot") == str(tmp_path / "h.dot")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_svg(tmp_path):
    E, p = mazur("cpu")
    with record():
        E.backward()
    path = render(to_dot(E, params=p, show_grads=True), tmp_path / "m.svg")
    svg = open(path).read()
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg
    assert "W2" in svg and "sigmoid" in svg


def test_deep_graph_has_no_recursion_limit():
    x = xbp.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    with record():
        y.sum().backward()
    nodes, edges = parse(to_dot(y, show_grads=True))
    assert len(of_class(nodes, "op")) == 5000 and len(edges) == 5000


def test_graph_tour_example(tmp_path, capsys):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "graph_tour.py")
    spec = importlib.util.spec_from_file_location("graph_tour", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "all terms match" in out and "0.082167041" in out and "0.000438568" in out
    assert "anomaly in forward: log" in out
    ext = ".svg" if shutil.which("dot") else ".dot"
    assert {f"mazur_222{ext}", f"digits_mlp_ops{ext}", f"digits_mlp_modules{ext}"} <= set(os.listdir(tmp_path))
