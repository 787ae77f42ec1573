"""Draw the computational graph: Graphviz DOT text for the graph behind some outputs.

    dot = xbp.viz.to_dot(loss, params=model)            # ops, parameters, data flow
    xbp.viz.render(dot, "graph.svg")                     # needs Graphviz's `dot`; else writes graph.dot

    with xbp.viz.record():                               # records module scopes and gradient norms
        loss = loss_fn(model(x), y)
        loss.backward()
    xbp.viz.render(xbp.viz.to_dot(loss, params=model, show_grads=True, group_by_module=True), "g.svg")

Nodes: one per operation (name, output shape, dtype, device; the creation site as a tooltip when
it was recorded) and one per leaf tensor (the parameter's name from ``params``, else ``input``).
Edges point the way data flows: leaf/op -> the op that consumed it. An op that reads the same
tensor twice (``x * x``) gets two edges; a reused parameter one leaf with an edge to each user.

Gradient norms (``show_grads=True``) are the norms of the gradient that went along each edge in the
last backward, summed back to the input's shape. They are recorded only when asked for:
  * run the backward inside ``with xbp.viz.record():`` (any graph, any time later), or
  * call ``to_dot(..., show_grads=True)`` while the graph is still intact (before ``backward()`` or
    after ``backward(retain_graph=True)``): to_dot then runs a backward of its own (seeded with ones,
    ``.grad`` and hooks untouched) to measure them.
Nothing is recorded, and nothing costs, outside these two cases.

``group_by_module=True`` draws one node per module call instead of its ops: per call of each of
the model's children (``group_by_module=2``: of their children, where they have some; the ops a
module runs itself, outside its children, form a node of their own). Which module call made each
op is known when the forward ran inside ``xbp.viz.record()``: the recording finds the frames of
``xbp.nn.Module.__call__`` on the stack (other callables can mark themselves with
``with xbp.viz.module_scope(self):``). Without that it groups from the parameter names in
``params``: an op joins module ``m`` when it consumes one of ``m``'s parameters, or when all its
inputs come from ``m``'s ops and all its consumers are ``m``'s ops.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np

from . import _debug
from ._debug import _leaf_names, _shape, module_scope, recording
from ._primitive import Accumulate, edge
from ._tensor import Tensor

__all__ = ["to_dot", "render", "record", "module_scope"]


def record(grads: bool = True, modules: bool = True):
    """``with xbp.viz.record():`` around a forward and/or backward: keeps, for `to_dot`, the norm of
    the gradient along every edge the backward walks (``grads``) and which module call created each
    op (``modules``, for ``group_by_module``). Off outside the block."""
    return recording(grads=grads, modules=modules)


# ----------------------------------------------------------------------------------------------
# collecting the graph
# ----------------------------------------------------------------------------------------------
def _flatten(outputs):
    out = []
    for o in outputs:
        if isinstance(o, (list, tuple)):
            out.extend(_flatten(o))
        elif isinstance(o, Tensor):
            out.append(o)
        else:
            raise TypeError(f"xbp.viz: expected Tensors (the outputs whose graph to draw), got {type(o).__name__}")
    return out


class _Graph:
    """The nodes reachable from some outputs, inputs first, with each node's consumers."""

    def __init__(self, outputs):
        self.roots = {}            # graph node -> output tensor
        for t in outputs:
            if not t.requires_grad:
                raise ValueError(f"xbp.viz: an output (shape {_shape(t.shape)}) has no graph: it does not "
                                 "require grad (no input had requires_grad=True, or it ran under no_grad)")
            self.roots.setdefault(edge(t), t)
        self.order = []            # post-order: every node after all of its inputs
        self.consumers = {}        # node -> [(consumer, input index)]
        seen = set()
        for r in self.roots:
            if r in seen:
                continue
            seen.add(r)
            stack = [(r, iter(r.parents))]
            while stack:
                n, it = stack[-1]
                for p in it:
                    if p is None:
                        continue
                    if p not in seen:
                        seen.add(p)
                        stack.append((p, iter(p.parents)))
                        break
                else:
                    stack.pop()
                    self.order.append(n)
        for n in self.order:
            for i, p in enumerate(n.parents):
                if p is not None:
                    self.consumers.setdefault(p, []).append((n, i))
        self.ops = [n for n in self.order if type(n) is not Accumulate]
        self.leaves = [n for n in self.order if type(n) is Accumulate]
        self._infer_meta()

    def _infer_meta(self):
        """Output shape, dtype and device of every node, from what the graph keeps."""
        self.shape, self.dtype, self.device = {}, {}, {}
        for n in self.order:
            t = self.roots.get(n)
            if type(n) is Accumulate:
                t = n.tensor
                if t is not None:
                    self.shape[n], self.dtype[n], self.device[n] = t.shape, t.dtype, t.device
                    continue
            elif t is not None:
                self.shape[n], self.dtype[n], self.device[n] = t.shape, t.dtype, t.device
                continue
            cons = self.consumers.get(n)
            self.shape[n] = tuple(cons[0][0].shapes[cons[0][1]]) if cons else None
            if type(n) is Accumulate:
                self.dtype[n] = self.device[n] = None
                continue
            self.dtype[n] = self._dtype(n)
            dst = n.p.get("dst") if n.prim.name == "to_device" else None
            self.device[n] = (dst or n.xp).device

    def _dtype(self, n):
        xp = n.xp
        if n.out is not None and hasattr(n.out, "dtype"):
            return xp.canonical(n.out.dtype)
        if n.prim.name == "astype":
            return xp.canonical(n.p["dtype"])
        dts = [self.dtype.get(p) for p in n.parents if p is not None]
        if n.ins is not None:
            dts += [xp.canonical(a.dtype) for a in n.ins if hasattr(a, "dtype")]
        dts = [d for d in dts if d is not None and d.kind in "fc"]
        return np.result_type(*dts) if dts else None


# ----------------------------------------------------------------------------------------------
# gradient norms
# ----------------------------------------------------------------------------------------------
def _edge_norms(g: _Graph):
    """{(consumer, input index): norm} and {node: norm of its incoming gradient}."""
    recs = {n: _debug.EDGE_NORMS.get(n) for n in g.ops}
    if not any(r is not None for r in recs.values()):
        if any(n.freed for n in g.ops):
            # after a plain backward() the graph is gone: only the leaves' .grad can still be shown
            return None, {}
        _rerun(g)
        recs = {n: _debug.EDGE_NORMS.get(n) for n in g.ops}
    edges, incoming = {}, {}
    for n, r in recs.items():
        if r is None:
            continue
        incoming[n] = _debug._host_float(r[0])
        for i, v in enumerate(r[1]):
            if v is not None:
                edges[(n, i)] = _debug._host_float(v)
    return edges, incoming


def _rerun(g: _Graph):
    """A backward of our own through the intact graph, seeded with ones, recording edge norms;
    leaves' .grad and all hooks untouched, the graph kept."""
    from ._engine import run_backward
    seeds = []
    for n, t in g.roots.items():
        if type(n) is not Accumulate:
            seeds.append((n, t.xp.ones(t.array.shape, dtype=t.array.dtype)))
    if not seeds:
        return
    hooked = [(n, n.hooks) for n in g.ops if n.hooks]
    for n, _ in hooked:
        n.hooks = None
    try:
        with recording(grads=True, modules=False):
            run_backward(seeds, retain_graph=True, capture={})
    finally:
        for n, h in hooked:
            n.hooks = h


# ----------------------------------------------------------------------------------------------
# module groups
# ----------------------------------------------------------------------------------------------
def _module_names(params):
    if params is not None and hasattr(params, "named_modules"):
        return {id(m): name for name, m in params.named_modules()}
    return {}


def _groups_from_scopes(g: _Graph, depth, params):
    scoped = {n: n.where.scope for n in g.ops if n.where is not None and n.where.scope}
    if not scoped:
        return None
    # A single module at the bottom of every stack is the model itself: depth counts below it.
    bottoms = {s[0][1] for s in scoped.values()}
    r = 1 if len(bottoms) == 1 else 0
    pos = depth - 1 + r
    names = _module_names(params)
    key_of, info, calls = {}, {}, {}
    for n, s in scoped.items():
        if len(s) <= r:               # made by the model's own forward, in no submodule
            continue
        k = min(len(s), pos + 1)      # the deepest module call at most `depth` levels down
        key = tuple(c for _, c in s[:k])
        key_of[n] = key
        if key not in info:
            m = s[k - 1][0]
            calls[id(m)] = calls.get(id(m), 0) + 1
            name = names.get(id(m))
            cls = type(m).__name__
            label = f"{name}: {cls}" if name else cls
            if calls[id(m)] > 1:
                label += f" (call {calls[id(m)]})"
            info[key] = label
    return key_of, info


def _groups_from_params(g: _Graph, depth, names):
    def prefix(leaf):
        t = leaf.tensor
        nm = names.get(id(t)) if t is not None else None
        if nm is None:
            return None
        parts = nm.split(".")[:-1]
        return ".".join(parts[:depth]) if parts else None

    key_of = {}
    for n in g.ops:
        mods = {prefix(p) for p in n.parents if type(p) is Accumulate} - {None}
        if len(mods) == 1:
            key_of[n] = mods.pop()
    changed = True
    while changed:
        changed = False
        for n in g.ops:
            if n in key_of:
                continue
            ins = {key_of.get(p) for p in n.parents if p is not None and type(p) is not Accumulate}
            outs = {key_of.get(c) for c, _ in g.consumers.get(n, ())}
            if len(ins) == 1 and ins == outs and None not in ins:
                key_of[n] = ins.pop()
                changed = True
    return key_of, {k: k for k in set(key_of.values())}


# ----------------------------------------------------------------------------------------------
# DOT text
# ----------------------------------------------------------------------------------------------
def _q(s) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**kw) -> str:
    """DOT attributes; ``cls`` is written as ``class`` (kept in SVG output, and by the tests)."""
    return "[" + " ".join(f"{'class' if k == 'cls' else k}={_q(v)}" for k, v in kw.items() if v is not None) + "]"


def _meta(g, n) -> str:
    sh = g.shape.get(n)
    dt = g.dtype.get(n)
    dev = g.device.get(n)
    return " ".join(x for x in (_shape(sh) if sh is not None else "?", str(dt) if dt is not None else None,
                                str(dev) if dev is not None else None) if x)


def _fmt_norm(v) -> str:
    return f"{v:.3g}"


_LEGEND_EDGES = ("edges: data flow of the forward pass (input -> the op that used it);\n"
                 "gradients flow back against the arrows during backward()\n")
_LEGEND_NORMS = "edge numbers: norm of the gradient that flowed back along the edge\n"
_LEGEND_LEAVES = ("edge norms were not recorded (the graph was freed by backward());\n"
                  "|.grad| on a leaf is the norm of its accumulated gradient.\n"
                  "For edge norms, run the backward inside `with xbp.viz.record():`\n")


def to_dot(*outputs, params=None, show_grads: bool = False, group_by_module=False, constants: bool = False,
           rankdir: str = "TB", name: str = "xbp", legend=None) -> str:
    """Graphviz DOT text of the graph that produced `outputs` (Tensors, or lists of them).

    params: a Module (its ``named_parameters()``), a dict name -> tensor, or (name, tensor) pairs:
        names the leaves; other leaves are labelled ``input``.
    show_grads: label each edge with the norm of the gradient that flowed along it (see the module
        docstring for how the norms are obtained).
    group_by_module: True (or a depth 1, 2, ...) draws a node per module call instead of its ops.
    constants: also draw the array inputs that need no gradient (data, masks, indices).
    legend: draw a note saying what the arrows and numbers mean (default: when show_grads).

    After a plain ``backward()`` (graph freed, nothing recorded) ``show_grads=True`` labels the
    leaves with the norms of their ``.grad`` instead, and the legend says how to get edge norms.
    """
    outs = _flatten(outputs)
    if not outs:
        raise ValueError("xbp.viz.to_dot: pass at least one output tensor")
    g = _Graph(outs)
    names = _leaf_names(params)
    norms, incoming = _edge_norms(g) if show_grads else ({}, {})
    leaf_grads_only = norms is None
    if leaf_grads_only:
        norms = {}

    ids = {}
    for k, n in enumerate(g.ops):
        ids[n] = f"op{k}"
    for k, n in enumerate(g.leaves):
        ids[n] = f"leaf{k}"

    def leaf_name(n):
        t = n.tensor
        return names.get(id(t)) if t is not None else None

    # grouping
    rep = dict(ids)                      # graph node -> DOT node id it is drawn as
    groups = {}                          # DOT id -> dict(label, ops, params)
    if group_by_module:
        depth = 1 if group_by_module is True else int(group_by_module)
        if depth < 1:
            raise ValueError("group_by_module: pass True or a depth >= 1")
        res = _groups_from_scopes(g, depth, params)
        if res is None:
            if not names:
                raise ValueError(
                    "xbp.viz.to_dot(group_by_module=True) needs to know which module made each op: run the "
                    "forward inside `with xbp.viz.record():`, or pass params=model to group by parameter names")
            res = _groups_from_params(g, depth, names)
        key_of, labels = res
        gid = {}
        for n in g.ops:
            key = key_of.get(n)
            if key is None:
                continue
            if key not in gid:
                gid[key] = f"mod{len(gid)}"
                groups[gid[key]] = {"label": labels[key], "ops": [], "params": []}
            rep[n] = gid[key]
            groups[gid[key]]["ops"].append(n)
        for n in g.leaves:               # a named parameter used only inside one group goes inside it
            cons = {rep[c] for c, _ in g.consumers.get(n, ())}
            nm = leaf_name(n)
            if nm is not None and len(cons) == 1:
                (r,) = cons
                if r in groups:
                    rep[n] = r
                    groups[r]["params"].append((nm, g.shape.get(n)))

    lines = [f"digraph {_q(name)} {{",
             f"  rankdir={rankdir};",
             '  node [fontname="Helvetica" fontsize=10];',
             '  edge [fontname="Helvetica" fontsize=9];']
    root_ids = {rep[n] for n in g.roots}

    # nodes
    for n in g.leaves:
        if rep[n] != ids[n]:
            continue
        nm = leaf_name(n)
        cls = "param" if nm is not None else "input"
        label = f"{nm if nm is not None else 'input'}\n{_meta(g, n)}"
        t = n.tensor
        if show_grads and t is not None and t.grad is not None:
            label += f"\n|.grad| {_fmt_norm(_debug._host_float(t.xp.sqrt(t.xp.sum(t.grad.array * t.grad.array))))}"
        a = _attrs(label=label, shape="box", style="filled", fillcolor="lightblue" if nm else "lightyellow",
                   cls=cls, peripheries="2" if ids[n] in root_ids else None)
        lines.append(f"  {ids[n]} {a};")
    for n in g.ops:
        if rep[n] != ids[n]:
            continue
        label = f"{n.prim.name}\n{_meta(g, n)}"
        if n in incoming and n in g.roots:
            label += f"\n|grad out| {_fmt_norm(incoming[n])}"
        tip = str(n.where) if n.where is not None and n.where.file else None
        root = ids[n] in root_ids
        a = _attrs(label=label, shape="box", style="rounded,filled", tooltip=tip, cls="op",
                   fillcolor="lightpink" if root else "white", peripheries="2" if root else None)
        lines.append(f"  {ids[n]} {a};")
    for gid_, info in groups.items():
        outs_meta = []
        for n in info["ops"]:
            leaving = any(rep[c] != gid_ for c, _ in g.consumers.get(n, ())) or n in g.roots
            if leaving:
                m = _meta(g, n)
                if m not in outs_meta:
                    outs_meta.append(m)
        label = f"{info['label']}\n{len(info['ops'])} op{'s' if len(info['ops']) != 1 else ''}"
        ps = [f"{pn} {_shape(sh) if sh is not None else ''}" for pn, sh in info["params"]]
        if len(ps) > 6:
            ps = ps[:5] + [f"... {len(ps) - 5} more parameters"]
        if ps:
            label += "\n" + "\n".join(ps)
        if outs_meta:
            label += "\n-> " + ", ".join(outs_meta)
        ops_txt = ", ".join(dict.fromkeys(n.prim.name for n in info["ops"]))
        a = _attrs(label=label, shape="box3d", style="filled", fillcolor="lavender", tooltip=ops_txt, cls="module",
                   peripheries="2" if gid_ in root_ids else None)
        lines.append(f"  {gid_} {a};")

    # constants (array inputs that need no gradient)
    if constants:
        k = 0
        for n in g.ops:
            for i, (p, s) in enumerate(zip(n.parents, n.shapes)):
                if p is None and s is not None and not (group_by_module and rep[n] != ids[n]):
                    cid = f"const{k}"
                    k += 1
                    a = _attrs(label=f"const {_shape(s)}", shape="note", fontsize="8", cls="const")
                    lines.append(f"  {cid} {a};")
                    lines.append(f"  {cid} -> {ids[n]} {_attrs(style='dashed', tooltip=f'input {i}')};")

    # edges, in data-flow direction; merged across groups
    merged = {}
    for n in g.order:
        if type(n) is Accumulate:
            continue
        for i, p in enumerate(n.parents):
            if p is None:
                continue
            a, b = rep[p], rep[n]
            if a == b:
                continue
            v = norms.get((n, i))
            if a in groups or b in groups:
                sq, cnt, known = merged.get((a, b), (0.0, 0, True))
                merged[(a, b)] = (sq + (v * v if v is not None else 0.0), cnt + 1, known and v is not None)
                continue
            lab = _fmt_norm(v) if v is not None else None
            tip = f"input {i} of {n.prim.name}" + (f": |grad| {v:.6g}" if v is not None else "")
            lines.append(f"  {a} -> {b} {_attrs(label=lab, tooltip=tip)};")
    for (a, b), (sq, cnt, known) in merged.items():
        lab = _fmt_norm(float(np.sqrt(sq))) if (show_grads and known) else None
        tip = f"{cnt} edge{'s' if cnt != 1 else ''}"
        lines.append(f"  {a} -> {b} {_attrs(label=lab, tooltip=tip)};")
    if legend or (legend is None and show_grads):
        text = _LEGEND_EDGES + (_LEGEND_LEAVES if leaf_grads_only else _LEGEND_NORMS if show_grads else "")
        if constants:
            text += "dashed notes: inputs that need no gradient (data, masks, indices)\n"
        lines.append(f"  legend {_attrs(label=text, shape='note', fontsize='9', cls='legend')};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------
def render(dot_or_outputs, path, **to_dot_kwargs) -> str:
    """Write a graph to `path` (.svg, .png, .pdf, ... through Graphviz's ``dot`` program; .dot/.gv
    as text). `dot_or_outputs` is DOT text from `to_dot` or the output tensor(s) (then
    `to_dot_kwargs` go to `to_dot`). Without Graphviz installed, writes the .dot file next to `path`
    and prints how to render it. Returns the path written."""
    if isinstance(dot_or_outputs, str):
        text = dot_or_outputs
        if to_dot_kwargs:
            raise TypeError("render: to_dot keyword arguments need output tensors, not DOT text")
    else:
        outs = dot_or_outputs if isinstance(dot_or_outputs, (list, tuple)) else [dot_or_outputs]
        text = to_dot(*outs, **to_dot_kwargs)
    path = os.fspath(path)
    base, ext = os.path.splitext(path)
    fmt = ext[1:].lower()
    if fmt in ("dot", "gv", ""):
        path = path if fmt else path + ".dot"
        with open(path, "w") as f:
            f.write(text)
        return path
    exe = shutil.which("dot")
    if exe is None:
        dot_path = base + ".dot"
        with open(dot_path, "w") as f:
            f.write(text)
        print(f"xbp.viz.render: Graphviz's `dot` program is not installed, so the graph was written to "
              f"{dot_path}.\n  Render it with:  dot -T{fmt} {dot_path} -o {path}\n  (install Graphviz: "
              "apt-get install graphviz / brew install graphviz / conda install graphviz, or paste the "
              "file into an online Graphviz viewer)", file=sys.stderr)
        return dot_path
    proc = subprocess.run([exe, f"-T{fmt}", "-o", path], input=text.encode(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"xbp.viz.render: `dot -T{fmt}` failed: {proc.stderr.decode(errors='replace').strip()}")
    return path

