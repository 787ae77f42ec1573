"""Optimizer: the bookkeeping every algorithm shares (param groups, state, state dicts) and the
one multi-tensor update path every algorithm steps through.

An algorithm subclass validates its hyperparameters, creates each parameter's state lazily in
``_param_state`` and, in ``_step_group``, calls ``self._multi_tensor_step(group, update_multi,
state_names, **hyper)``. That path gathers the group's parameters that have gradients, buckets
them by device and dtype, and calls the algorithm's multi-tensor function
``xxx_update_multi(xp, params, grads, states, **hyper)`` once per bucket, with lists of raw
arrays. The default multi-tensor bodies loop over the pure per-tensor functions (``sgd_update``,
``adam_update``, ...), written with the Backend ``xp`` only; a Backend may plug a fused kernel in
as ``Backend.fused_optimizer_step`` (None by default) without touching the algorithms. Updates
change the parameter's array (and its state arrays) in place, so the same Parameter objects,
views of them and any captured device addresses stay valid.

State layout follows PyTorch: ``opt.state[param]`` is a dict of Tensors and numbers, and
``state_dict()`` returns ``{"state": {param_index: {...}}, "param_groups": [{..., "params": [indices]}]}``.
"""
from __future__ import annotations

import math
from typing import Any

from collections import defaultdict

from .._tensor import Tensor, _wrap
from .._primitive import GRAD_STATE
from ..autograd import enable_grad

__all__ = ["Optimizer", "required", "implementation_flags"]

# PyTorch's implementation switches. xbp has one update path per algorithm (the multi-tensor
# path, which is what foreach=True asks for), so foreach and capturable choose nothing; fused=False
# keeps a Backend's fused kernel (Backend.fused_optimizer_step, when one exists) out of the step.
# They are kept in the param groups as PyTorch keeps them.
IMPL_KEYS = ("foreach", "fused", "capturable", "differentiable")

# Set by xbp/_cuda_graph.py while it captures a step as a CUDA graph, else None: called as
# ``hook(optimizer, group, param_states, hyper, states)`` before each bucket's update, it returns
# (hyper, states) with the learning rate and step counts as device scalars, so the captured
# kernels read them from memory that is updated between replays (PyTorch's ``capturable``).
CAPTURE_HOOK: list = [None]


def scalar_like(xp, s, like):
    """Scalar `s` made ready to meet array `like` in an update's arithmetic: a Python number as it
    is (a weak scalar: the operation keeps `like`'s dtype), a 0-d array (a captured graph's
    device scalar, float64: see CAPTURE_HOOK) cast to `like`'s dtype. A 0-d array is never weak
    (NumPy 2's NEP 50, CuPy 14 alike), so uncast it would run a float32 update in float64
    temporaries, twice the memory traffic, and off the eager step's values; cast, the result is
    the eager step's bit for bit (the weak scalar is rounded to float32 the same way). NumPy's
    float64 scalar (what arithmetic on 0-d arrays returns) is a `float` subclass yet strong: the
    test is on the exact type."""
    if type(s) is float or type(s) is int:
        return s
    return xp.astype(s, like.dtype)


def implementation_flags(name: str, foreach=None, fused=None, capturable=False, differentiable=False) -> dict:
    """Check PyTorch's ``foreach=``/``fused=``/``capturable=``/``differentiable=`` keywords for
    optimizer `name` and return them as defaults entries.

    foreach, fused and capturable select a kernel strategy in PyTorch and leave the maths as it is,
    so any bool (or None) is accepted. ``differentiable=True`` asks for autograd through the update
    itself, which xbp's in-place update does not record: refused rather than silently ignored."""
    for key, v in (("foreach", foreach), ("fused", fused), ("capturable", capturable),
                   ("differentiable", differentiable)):
        if v is not None and not isinstance(v, bool):
            raise TypeError(f"{name}: {key} must be True, False or None, got {type(v).__name__} ({v!r})")
    if differentiable:
        raise NotImplementedError(f"{name}(differentiable=True): xbp's optimizer steps update the parameters in "
                                  "place without recording a graph, so they cannot be differentiated; use "
                                  "differentiable=False (the default) or write the update with xbp ops")
    return {"foreach": foreach, "fused": fused, "capturable": bool(capturable), "differentiable": False}


class _Required:
    """Marks a hyperparameter without a default (``SGD(params)`` without ``lr`` is an error)."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``.

    `params` is an iterable of Tensors, or of dicts (param groups) each with a ``"params"`` entry
    and any per-group hyperparameters overriding `defaults`.
    """

    # hyperparameters coerced with float() (NumPy scalars would promote float32 params)
    _float_keys: tuple = ("lr", "weight_decay")

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError("optimizer params must be an iterable of Tensors or of dicts, got a single "
                            "Tensor; pass [tensor] or model.parameters()")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)

    # --- groups --------------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (e.g. unfrozen layers) with its own hyperparameters."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param group must be a dict, got {type(param_group).__name__}")
        params = param_group.get("params")
        if params is None:
            raise ValueError("param group has no 'params' entry")
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but param {i} of the group is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor (param {i}, shape {p.shape}); "
                                 "optimize the leaf it was computed from, or .detach().requires_grad_()")
            if not p.is_floating_point():
                raise TypeError(f"optimizer: param {i} has dtype {p.dtype}; only floating-point tensors "
                                "can be optimized")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer: a parameter appears twice in one group")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = dict(param_group)
        group["params"] = params
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {k}")
            group.setdefault(k, v)
        self._normalize_group(group)
        self.param_groups.append(group)
        self._init_group_state(group)

    def _normalize_group(self, group: dict) -> None:
        """Coerce hyperparameters to Python floats and validate them (subclasses extend `_validate`)."""
        for k in self._float_keys:
            if k in group and group[k] is not required:
                v = group[k]
                if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
                    raise TypeError(f"{type(self).__name__}: {k} must be a number, got {type(v).__name__} ({v!r})")
                group[k] = v = float(v)
                if not math.isfinite(v):
                    # PyTorch rejects NaN (its `0.0 <= v` checks fail) and accepts inf; an infinite
                    # step size or decay can only produce inf/NaN weights, so xbp refuses both
                    label = "learning rate" if k == "lr" else f"{k} value"
                    raise ValueError(f"Invalid {label}: {v} ({type(self).__name__} needs a finite number)")
        self._validate(group)

    def _validate(self, group: dict) -> None:
        """Raise ValueError for a bad hyperparameter in `group` (override per algorithm)."""

    def _init_group_state(self, group: dict) -> None:
        """State created when a group is added (Adagrad's accumulators); most create it lazily."""

    # --- gradients -----------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or, with ``set_to_none=False``, make it zeros).

        Zeros are a new array, never written into the old one: gradient arrays may be shared."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    g = p.grad.array
                    p.grad = _wrap(p.xp.zeros(g.shape, dtype=g.dtype), p.xp)

    # --- stepping ------------------------------------------------------------------------------------
    def step(self, closure=None):
        """One update of every parameter that has a gradient. `closure` (optional) re-evaluates the
        model and returns the loss; it runs with gradients enabled, and its loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        state = GRAD_STATE                  # no_grad() inlined: this runs once per training step
        prev, state.enabled = state.enabled, False
        try:
            for group in self.param_groups:
                self._step_group(group)
        finally:
            state.enabled = prev
        return loss

    def _step_group(self, group: dict) -> None:
        raise NotImplementedError

    def _param_state(self, p: Tensor, group: dict) -> dict:
        """`p`'s state dict for this step, with missing entries created and ``step`` advanced
        (override per algorithm; the default only looks it up)."""
        return self.state[p]

    def _multi_tensor_step(self, group: dict, update_multi, state_names: tuple, **hyper) -> None:
        """Step every parameter of `group` that has a gradient with one multi-tensor call per
        (device, dtype) bucket: ``update_multi(xp, params, grads, states, **hyper)``.

        ``params``/``grads`` are lists of arrays; ``states`` maps each name in `state_names` to the
        list of that state's values (arrays, numbers or None), parameter by parameter. The call
        updates arrays in place and returns None or ``{name: [new value per parameter]}`` for the
        entries it replaces (numbers such as NAdam's ``mu_product``, SGD's first momentum buffer).
        With ``Backend.fused_optimizer_step`` set (and the group's ``fused`` not False) the
        Backend's kernel is offered the bucket first; NotImplemented falls back to `update_multi`.
        Parameters update independently, so bucketing does not change any trajectory."""
        # one pass in group order gathers the lists (and creates state in PyTorch's order); the
        # common case, one device and dtype, makes one bucket
        buckets: dict = {}
        param_state = self._param_state if state_names else None
        last_xp = last_dtype = None
        b: Any = None                     # the current bucket: ([arrays], [grads], [states])
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            a = p.array
            xp, dtype = p.xp, a.dtype
            if xp is not last_xp or dtype is not last_dtype:    # NumPy dtypes are singletons
                b = buckets.get((xp, dtype))
                if b is None:
                    b = buckets[(xp, dtype)] = ([], [], [])
                last_xp, last_dtype = xp, dtype
            b[0].append(a)
            b[1].append(g.array)
            p._version[0] += 1              # its array changes in place below
            if param_state is not None:
                b[2].append(param_state(p, group))
        if not buckets:
            return
        use_fused = group.get("fused") is not False
        for (xp, _), (arrays, grads, sts) in buckets.items():
            states = {}
            for n in state_names:
                values = [st.get(n) for st in sts]
                states[n] = [getattr(v, "array", v) for v in values]     # Tensor -> array; numbers stay
            if CAPTURE_HOOK[0] is not None:
                hyper, states = CAPTURE_HOOK[0](self, group, sts, hyper, states)
            out = NotImplemented
            fused = xp.fused_optimizer_step if use_fused else None
            if fused is not None:
                out = fused(type(self).__name__, arrays, grads, states, hyper)
            if out is NotImplemented:
                out = update_multi(xp, arrays, grads, states, **hyper)
            if out:
                _store_state(sts, xp, out)

    def _counted_state(self, p: Tensor, *names: str) -> dict:
        """`p`'s state with a step count and zero tensors `names`, created on its first step; the
        count is advanced (the common `_param_state` of the Adam family)."""
        st = self.state[p]
        if not st:
            st["step"] = 0
            for n in names:
                st[n] = self._zeros_state(p)
        st["step"] += 1
        return st

    def _zeros_state(self, p: Tensor, fill: float = 0.0) -> Tensor:
        """A state tensor shaped, typed and placed like `p`."""
        d = p.array
        if fill == 0.0:
            return _wrap(p.xp.zeros(d.shape, dtype=d.dtype), p.xp)
        return _wrap(p.xp.full(d.shape, float(fill), dtype=d.dtype), p.xp)

    # --- state dicts ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: Tensor | number}}, "param_groups": [{..., "params": [index]}]}``.

        Parameters are numbered in group order, as PyTorch does. Tensors are the live state (not
        copies): save or copy the dict before stepping again if you need a snapshot."""
        index: dict = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                if id(p) not in index:
                    index[id(p)] = len(index)
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state saved by `state_dict` (or `xbp.load` of one) into
        this optimizer's parameters. State tensors are copied onto each parameter's device, and
        floating state takes the parameter's dtype."""
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError("load_state_dict: expected a dict with 'state' and 'param_groups' "
                             "(from Optimizer.state_dict()), got "
                             f"{sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        mine = set(self.defaults) - set(IMPL_KEYS)     # files from before these keys existed still load
        for gi, sg in enumerate(saved_groups):
            keys = set(sg) - {"params", "initial_lr"}
            if not mine <= keys:
                raise ValueError(
                    f"load_state_dict: parameter group {gi} of the state dict has hyperparameters "
                    f"{sorted(keys)} but {type(self).__name__} needs {sorted(mine)}: it was saved by another "
                    f"optimizer (load it into that optimizer, or build a fresh {type(self).__name__})")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter group(s), this optimizer "
                             f"has {len(self.param_groups)}")
        lookup = {}
        for gi, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"loaded state dict's parameter group {gi} has {len(sg['params'])} "
                                 f"parameter(s), this optimizer's has {len(g['params'])}")
            for i, p in zip(sg["params"], g["params"]):
                lookup[int(i)] = p
        new_state: defaultdict = defaultdict(dict)
        for k, s in state_dict["state"].items():
            p = lookup.get(int(k))
            if p is None:
                raise ValueError(f"loaded state dict has state for parameter {k}, which no group lists")
            new_state[p] = {name: self._cast_state(v, p, name, int(k)) for name, v in s.items()}
        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            ng = {**g, **{k: v for k, v in sg.items() if k != "params"}, "params": g["params"]}
            self._normalize_group(ng)
            new_groups.append(ng)
        self.state = new_state
        self.param_groups = new_groups

    # names of per-parameter state that PyTorch keeps as 0-d tensors and xbp as Python floats
    _scalar_state: tuple = ()
    # whether tensor state has the parameter's shape (LBFGS keeps flat vectors instead)
    _state_shaped = True

    def _cast_state(self, v, p: Tensor, name: str, index: int):
        """A copy of a saved state value for parameter `p`: tensors onto p's device (floats in p's
        dtype); PyTorch's 0-d step counts and scalar state become Python numbers."""
        if isinstance(v, (list, tuple)):
            return type(v)(self._cast_state(x, p, name, index) for x in v)
        if not isinstance(v, Tensor):
            return v
        if v.ndim == 0 and name == "step":      # a step count saved as a 0-d tensor (PyTorch does)
            return int(v.item())
        if v.ndim == 0 and name in self._scalar_state:
            return float(v.item())
        return _cast_state(v, p, name, index, shaped=self._state_shaped)


def _cast_state(v, p: Tensor, name: str, index: int, shaped: bool = True):
    """A copy of saved state tensor `v` for parameter `p`: onto p's device, floats in p's dtype."""
    if shaped and v.ndim and v.shape != p.shape:
        raise ValueError(f"load_state_dict: state '{name}' of parameter {index} has shape {v.shape}, "
                         f"but the parameter has shape {p.shape}; the state dict is from a different model")
    xp = p.xp
    a = v.array if v.xp is xp else xp.from_numpy(v.xp.to_numpy(v.array))
    a = xp.asarray(a, copy=True)        # never alias the caller's dict: updates are in place
    if v.is_floating_point() and v.dtype != p.dtype:
        a = xp.astype(a, p.array.dtype)
    return _wrap(a, xp)


def _store_state(sts: list, xp, out: dict) -> None:
    """Keep the state entries a multi-tensor update returned, one value per state dict in `sts`."""
    for n, new in out.items():
        for st, v in zip(sts, new):
            if v is None:
                continue
            old = st.get(n)
            if old is not None and getattr(old, "array", None) is v:
                continue                        # updated in place: keep the live state Tensor
            st[n] = v if isinstance(v, (int, float)) else _wrap(v, xp)
