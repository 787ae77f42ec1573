"""Module: the base class of layers and models, with PyTorch's registration and naming rules.

Attributes that are Parameters, Modules or registered buffers are kept in three ordered dicts
(``_parameters``, ``_modules``, ``_buffers``) and found by ``__getattr__``, so their order of
assignment is their order in ``parameters()`` and ``state_dict()`` and names nest with dots
("fc1.weight", "0.bias") exactly as in PyTorch.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .._backend import Backend, canonical_dtype, get_backend, is_device_array
from .._tensor import Tensor, _wrap
from .. import _debug
from ..autograd import no_grad
from .parameter import Parameter

__all__ = ["Module"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict(strict=False)`` returns."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _addindent(s: str, n: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


class Module:
    """Base class for layers and models: subclass it, assign Parameters and sub-Modules in
    ``__init__`` and define ``forward``. Calling the module calls ``forward``."""

    training: bool

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments; "
                            "Module.__init__ takes none (call super().__init__() first in your __init__)")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_hooks_with_kwargs"] = set()
        d["_backward_hooks"] = OrderedDict()
        d["_backward_pre_hooks"] = OrderedDict()
        d["_state_dict_hooks"] = OrderedDict()
        d["_state_dict_pre_hooks"] = OrderedDict()
        d["_load_state_dict_pre_hooks"] = OrderedDict()
        d["_load_state_dict_post_hooks"] = OrderedDict()

    def forward(self, *args, **kwargs):
        """The computation of the module: define it in every subclass. Call the module (``m(x)``), not
        ``m.forward(x)``, so that hooks run. The base class raises NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, ...) "
                                  "in your Module subclass")

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        if not (self._forward_pre_hooks or self._forward_hooks or d.get("_backward_hooks")
                or d.get("_backward_pre_hooks")):
            return self.forward(*args, **kwargs)
        kw_hooks = d.get("_hooks_with_kwargs", ())
        for hid, h in list(self._forward_pre_hooks.items()):
            if hid in kw_hooks:
                r = h(self, args, kwargs)
                if r is not None:
                    if not (isinstance(r, tuple) and len(r) == 2):
                        raise RuntimeError("forward pre-hook registered with_kwargs must return None or a tuple "
                                           f"(new_args, new_kwargs), got {type(r).__name__}")
                    args, kwargs = r
                    args = args if isinstance(args, tuple) else (args,)
            else:
                r = h(self, args)
                if r is not None:
                    args = r if isinstance(r, tuple) else (r,)
        bw = _BackwardHooks(self) if (d.get("_backward_hooks") or d.get("_backward_pre_hooks")) else None
        if bw is not None:
            args = bw.wrap_inputs(args)
        out = self.forward(*args, **kwargs)
        for hid, h in list(self._forward_hooks.items()):
            r = h(self, args, kwargs, out) if hid in kw_hooks else h(self, args, out)
            if r is not None:
                out = r
        if bw is not None:
            out = bw.wrap_outputs(out)
        return out

    # --- hooks ---------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """``hook(module, args) -> None | new args`` (with_kwargs: ``hook(module, args, kwargs) ->
        None | (new_args, new_kwargs)``), called before forward; prepend puts it first. Returns a
        handle with ``.remove()``."""
        return _Handle(self._forward_pre_hooks, hook, prepend, self._kw_set() if with_kwargs else None)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):
        """``hook(module, args, output) -> None | new output`` (with_kwargs: ``hook(module, args,
        kwargs, output)``), called after forward. `always_call` is accepted (hooks run only when
        forward returns)."""
        return _Handle(self._forward_hooks, hook, prepend, self._kw_set() if with_kwargs else None)

    def _kw_set(self):
        return self.__dict__.setdefault("_hooks_with_kwargs", set())

    def _registry(self, name):
        return self.__dict__.setdefault(name, OrderedDict())

    def register_full_backward_hook(self, hook, prepend: bool = False):
        """``hook(module, grad_input, grad_output) -> None | new grad_input``, called once the
        gradients with respect to the module's positional tensor inputs are computed (tuples: None
        for a non-tensor input, zeros for a floating-point one that needs no gradient, as PyTorch).
        A returned tuple replaces grad_input.
        Inputs and outputs pass through an identity (as in PyTorch), so forward returns new tensor
        objects; all hooked tensors of one call must share a dtype."""
        return _Handle(self._registry("_backward_hooks"), hook, prepend)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False):
        """``hook(module, grad_output) -> None | new grad_output``, called when the gradients with
        respect to the module's outputs are known, before they flow into the module."""
        return _Handle(self._registry("_backward_pre_hooks"), hook, prepend)

    def register_backward_hook(self, hook):
        """PyTorch's deprecated module backward hook; here the same as register_full_backward_hook."""
        return self.register_full_backward_hook(hook)

    def _register_state_dict_hook(self, hook):
        """``hook(module, state_dict, prefix, local_metadata) -> None | new state_dict``, called
        after this module's entries (and its children's) are in state_dict."""
        return _Handle(self._registry("_state_dict_hooks"), hook)

    register_state_dict_post_hook = _register_state_dict_hook

    def register_state_dict_pre_hook(self, hook):
        """``hook(module, prefix, keep_vars)``, called before this module's state_dict entries."""
        return _Handle(self._registry("_state_dict_pre_hooks"), hook)

    def register_load_state_dict_pre_hook(self, hook):
        """``hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)``, called before loading; it may edit state_dict (a copy of the
        caller's) in place, e.g. to rename keys, and append to the three lists."""
        return _Handle(self._registry("_load_state_dict_pre_hooks"), hook)

    def _register_load_state_dict_pre_hook(self, hook, with_module: bool = False):
        """PyTorch's private form: ``hook(state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)`` (module first when with_module)."""
        if with_module:
            return self.register_load_state_dict_pre_hook(hook)
        return self.register_load_state_dict_pre_hook(lambda m, *a: hook(*a))

    def register_load_state_dict_post_hook(self, hook):
        """``hook(module, incompatible_keys)``, called after loading; it may remove entries from
        incompatible_keys.missing_keys / unexpected_keys in place before strict checks them."""
        return _Handle(self._registry("_load_state_dict_post_hooks"), hook)

    # --- registration --------------------------------------------------------------------------
    def _check_init(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign to {type(self).__name__} before Module.__init__() is called; "
                                 "call super().__init__() first in your __init__")

    def __setattr__(self, name, value):
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_init()
            _remove_from(d, name, keep="_parameters")
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            self._check_init()
            _remove_from(d, name, keep="_modules")
            d["_modules"][name] = value
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} of "
                                f"{type(self).__name__} (xbp.nn.Parameter or None expected); "
                                "wrap it: nn.Parameter(tensor)")
            d["_parameters"][name] = None
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(Module or None expected)")
            d["_modules"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for reg in ("_parameters", "_buffers", "_modules"):
            r = d.get(reg)
            if r is not None and name in r:
                return r[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        d = self.__dict__
        for reg in ("_parameters", "_buffers", "_modules"):
            if name in d.get(reg, ()):
                del d[reg][name]
                d["_non_persistent"].discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def register_parameter(self, name: str, param) -> None:
        """Add a Parameter (or None, a placeholder such as a missing bias) under `name`."""
        self._check_init()
        _check_name(self, name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be an xbp.nn.Parameter or None, "
                            f"got {type(param).__name__}")
        _remove_from(self.__dict__, name, keep="_parameters")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Add a Tensor that is state but not a parameter (e.g. running statistics). Buffers move
        with ``.to()``; persistent ones appear in ``state_dict()``."""
        self._check_init()
        _check_name(self, name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        _remove_from(self.__dict__, name, keep="_buffers")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module) -> None:
        """Add a child module under `name` (which may be any string without a dot)."""
        self._check_init()
        _check_name(self, name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        _remove_from(self.__dict__, name, keep="_modules")
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        """The module at dotted path `target` ("" is self)."""
        m = self
        if target == "":
            return m
        for part in target.split("."):
            sub = m._modules.get(part)
            if sub is None:
                raise AttributeError(f"{type(m).__name__} has no submodule {part!r} (looking up {target!r})")
            m = sub
        return m

    def get_parameter(self, target: str) -> Parameter:
        """The parameter named by the dotted path `target` (``'layer1.0.weight'``); AttributeError if there
        is none."""
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._parameters or m._parameters[name] is None:
            raise AttributeError(f"{type(m).__name__} has no parameter {name!r} (looking up {target!r})")
        return m._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer named by the dotted path `target` (``'bn.running_mean'``); AttributeError if there
        is none."""
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._buffers or m._buffers[name] is None:
            raise AttributeError(f"{type(m).__name__} has no buffer {name!r} (looking up {target!r})")
        return m._buffers[name]

    # --- traversal -----------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(name, module) for this module ("") and every descendant, depth first, each once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        """Iterates over this module and all its submodules, each once (as `named_modules`, without names)."""
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """Iterates over (name, module) for the direct submodules, each module once."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        """Iterates over the direct submodules, each once."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for k, v in getattr(m, registry).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                if remove_duplicate:
                    seen.add(id(v))
                yield mod_prefix + ("." if mod_prefix else "") + k, v

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(name, Parameter) pairs with PyTorch's dotted names; a shared Parameter appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        """Iterates over the parameters of this module and, with ``recurse=True``, of its submodules; a
        parameter shared by several modules appears once. The usual argument of an optimizer."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Iterates over (dotted name, buffer) for the buffers (running statistics and other registered
        tensors that are not parameters) of this module and, with `recurse`, its submodules."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        """Iterates over the buffers of this module and, with `recurse`, of its submodules."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # --- state dict ----------------------------------------------------------------------------
    _version: int = 1

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """An ordered dict name -> Tensor of every parameter and persistent buffer (PyTorch's
        keys and order: each module's parameters, then its buffers, then its extra state
        ("_extra_state", when get_extra_state is overridden), then its children's). Values share
        data with the module (detached, unless `keep_vars`). As PyTorch, ``_metadata`` maps each
        module prefix to {"version": ...}; state-dict hooks run per module."""
        if args:     # PyTorch's deprecated positional (destination, prefix, keep_vars)
            destination, prefix, keep_vars = (tuple(args) + (destination, prefix, keep_vars)[len(args):])[:3]
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        d = self.__dict__
        for h in list(d.get("_state_dict_pre_hooks", {}).values()):
            h(self, prefix, keep_vars)
        local_metadata = dict(version=self._version)
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = local_metadata
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                destination[prefix + name] = b if keep_vars else b.detach()
        if type(self).get_extra_state is not Module.get_extra_state:
            destination[prefix + "_extra_state"] = self.get_extra_state()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        for h in list(d.get("_state_dict_hooks", {}).values()):
            r = h(self, destination, prefix, local_metadata)
            if r is not None:
                destination = r
        return destination

    def get_extra_state(self):
        """Override (with set_extra_state) to save non-tensor state under "_extra_state"."""
        raise RuntimeError("Reached a code path in Module.get_extra_state() that should never be called: "
                           "override get_extra_state together with set_extra_state")

    def set_extra_state(self, state) -> None:
        """Override (with `get_extra_state`) to restore the non-tensor state that `get_extra_state` saved;
        `load_state_dict` calls it. The base class raises RuntimeError."""
        raise RuntimeError("Reached a code path in Module.set_extra_state() that should never be called: "
                           "override set_extra_state together with get_extra_state")

    def _state_entries(self):
        """name -> (owning module, registry, attribute) for everything state_dict() holds."""
        out = OrderedDict()
        for mod_prefix, m in self.named_modules(remove_duplicate=False):
            pre = mod_prefix + "." if mod_prefix else ""
            for k, p in m._parameters.items():
                if p is not None:
                    out[pre + k] = p
            for k, b in m._buffers.items():
                if b is not None and k not in m._non_persistent:
                    out[pre + k] = b
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values from `state_dict` into this module's parameters and buffers, in place (the
        Parameter objects stay the same), cast to each one's device and dtype.

        Every problem is collected first and reported together in one RuntimeError: shape
        mismatches always, missing and unexpected keys when `strict`. Nothing is copied when an
        error is raised. Returns (missing_keys, unexpected_keys)."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        mods = list(self.named_modules(remove_duplicate=False))
        hook_missing, hook_unexpected, hook_errors = [], [], []
        if any(m.__dict__.get("_load_state_dict_pre_hooks") for _, m in mods):
            metadata = getattr(state_dict, "_metadata", None)
            state_dict = OrderedDict(state_dict)       # the hooks edit a copy, as PyTorch
            for mp, m in mods:
                pre = mp + "." if mp else ""
                local = {} if metadata is None else metadata.get(mp, {})
                for h in list(m.__dict__.get("_load_state_dict_pre_hooks", {}).values()):
                    h(m, state_dict, pre, local, strict, hook_missing, hook_unexpected, hook_errors)
        extra = OrderedDict()
        for mp, m in mods:
            if type(m).get_extra_state is not Module.get_extra_state:
                extra[(mp + "." if mp else "") + "_extra_state"] = m
        own = self._state_entries()
        missing = [k for k in own if k not in state_dict] + [k for k in extra if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own and k not in extra]
        missing += [k for k in hook_missing if k not in missing]
        unexpected += [k for k in hook_unexpected if k not in unexpected]
        post_hooks = [(m, h) for _, m in mods for h in m.__dict__.get("_load_state_dict_post_hooks", {}).values()]
        mismatched, pairs = [], []
        for k, dst in own.items():
            if k not in state_dict:
                continue
            src = state_dict[k]
            shape = tuple(src.shape) if hasattr(src, "shape") else np.shape(src)
            if shape != dst.shape:
                mismatched.append(f"size mismatch for {k}: copying a param with shape {shape} from checkpoint, "
                                  f"the shape in current model is {dst.shape}.")
            else:
                pairs.append((dst, src))
        errors = list(hook_errors) + mismatched

        def strict_errors():
            out = list(errors)
            if strict:
                if unexpected:
                    out.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
                if missing:
                    out.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
            return out

        def fail(errs):
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errs))

        # without post hooks nothing is copied when an error is raised; post hooks may clear missing or
        # unexpected keys, so with them the values are copied first and strictness judged after (PyTorch)
        if not post_hooks and strict_errors():
            fail(strict_errors())
        if post_hooks and errors:
            fail(strict_errors())
        with no_grad():
            for dst, src in pairs:
                dst.copy_(_as_source(src, dst))
        for k, m in extra.items():
            if k in state_dict:
                m.set_extra_state(state_dict[k])
        result = _IncompatibleKeys(missing, unexpected)
        for m, h in post_hooks:
            r = h(m, result)
            if r is not None:
                raise RuntimeError("load_state_dict post hooks must return None (edit incompatible_keys in place)")
        if post_hooks and strict_errors():
            fail(strict_errors())
        return result

    # --- modes and gradients -------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (Dropout drops, BatchNorm uses batch statistics) here and below."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {mode!r}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Turn gradient tracking of every parameter on or off (e.g. to freeze a layer)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None, or to zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            elif p.grad.grad_fn is None:
                p.grad.requires_grad = False
                p.grad.zero_()
            else:   # a gradient built under create_graph: its data may be saved by that graph
                p.grad = _wrap(p.xp.zeros(p.grad.array.shape, dtype=p.grad.array.dtype), p.xp)

    def apply(self, fn) -> "Module":
        """Call ``fn(module)`` on every child (recursively), then on self. E.g. custom init."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # --- devices and dtypes --------------------------------------------------------------------
    def to(self, *args, device=None, dtype=None) -> "Module":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)``: move and/or cast
        every parameter and buffer in place. Parameter objects stay the same objects, so an
        optimizer built before ``.to()`` keeps working. A dtype applies only to floating-point
        tensors (integer buffers such as counters keep theirs)."""
        for a in args:
            if isinstance(a, (str, Backend)):
                device = a
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            else:
                dtype = a
        dst = get_backend(device) if device is not None else None
        dt = canonical_dtype(dtype) if dtype is not None else None
        if dt is not None and dt.kind not in "fc":
            raise TypeError(f"Module.to only accepts floating point dtypes, got {dt}")
        with no_grad():
            for t in list(self.parameters()) + list(self.buffers()):
                _move_(t, dst, dt)
                if t.grad is not None:
                    t.grad = _moved(t.grad, dst, dt)
        return self

    def cpu(self) -> "Module":
        """Moves every parameter and buffer to the CPU in place (``self.to('cpu')``); returns the module."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Module":
        """Moves every parameter and buffer to ``cuda:<index>`` in place (``self.to(...)``); returns the module."""
        return self.to(f"cuda:{index}")

    def float(self) -> "Module":
        """Casts the floating-point parameters and buffers to float32 in place; returns the module."""
        return self.to(dtype=np.float32)

    def double(self) -> "Module":
        """Casts the floating-point parameters and buffers to float64 in place; returns the module."""
        return self.to(dtype=np.float64)

    def half(self) -> "Module":
        """Casts the floating-point parameters and buffers to float16 in place; returns the module."""
        return self.to(dtype=np.float16)

    def to_empty(self, *, device=None, recurse: bool = True) -> "Module":
        """Give every parameter and buffer fresh uninitialised storage of its shape and dtype on
        `device` (the current default device when None), in place; values are NOT kept (PyTorch's
        way to materialise a model before loading or initialising it)."""
        dst = get_backend(device)
        mods = self.modules() if recurse else [self]
        seen = set()
        with no_grad():
            for m in mods:
                for t in list(m._parameters.values()) + list(m._buffers.values()):
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    t.array = dst.empty(t.array.shape, dtype=dst.dtype(t.dtype))
                    t.xp = dst
                    t.grad = None
                    t._version[0] += 1
        return self

    def _apply(self, fn, recurse: bool = True) -> "Module":
        """Replace every parameter's and buffer's data by ``fn(tensor)`` (same objects kept), as
        PyTorch's Module._apply that .to(), .float() etc. are built on."""
        if recurse:
            for m in self.children():
                m._apply(fn)
        with no_grad():
            for reg in (self._parameters, self._buffers):
                for t in reg.values():
                    if t is None:
                        continue
                    new = fn(t)
                    if new is not t:
                        t.array = new.array
                        t.xp = new.xp
                        t._version[0] += 1
        return self

    def share_memory(self) -> "Module":
        """A no-op kept for PyTorch compatibility (there is no shared-memory process pool)."""
        return self

    # --- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in repr (override in layers)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, m in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(m), 2))
        if not lines:
            return self._get_name() + "()"
        if len(lines) == 1 and not self._modules:
            return f"{self._get_name()}({lines[0]})"
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


# --- helpers -----------------------------------------------------------------------------------
def _remove_from(d, name, keep):
    for reg in ("_parameters", "_buffers", "_modules"):
        if reg != keep and name in d.get(reg, ()):
            del d[reg][name]
    if keep != "_buffers" and "_non_persistent" in d:
        d["_non_persistent"].discard(name)
    if name in d and keep is not None:
        del d[name]


def _check_name(mod, name, what):
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{what} name {name!r} must be non-empty and contain no '.'")
    if hasattr(mod, name) and name not in mod._parameters and name not in mod._buffers and name not in mod._modules:
        raise KeyError(f"attribute {name!r} already exists on {type(mod).__name__}")


def _moved(t: Tensor, dst, dt) -> Tensor:
    out = t
    if dst is not None and dst is not t.xp:
        out = out.to(dst)
    if dt is not None and out.dtype.kind in "fc" and out.dtype != dt:
        out = out.to(dtype=dt)
    return out


def _move_(t: Tensor, dst, dt) -> None:
    """Point `t` (a Parameter or buffer) at its data on `dst` / in `dt`, keeping the object."""
    out = _moved(t, dst, dt)
    if out is not t:
        t.array = out.array
        t.xp = out.xp
        t._version[0] += 1    # graphs that saved the old data must not backprop into the moved one


def _as_source(src, dst: Tensor) -> Tensor:
    """A state_dict value (Tensor or array) on `dst`'s device and dtype."""
    if not isinstance(src, Tensor):
        from .._creation import tensor
        src = tensor(src if is_device_array(src) else np.asarray(src))
    if src.xp is not dst.xp:
        src = src.to(dst.device)
    if src.dtype != dst.dtype:
        src = src.to(dtype=dst.dtype)
    return src


class _Handle:
    """What register_*_hook returns: ``.remove()`` (also as a context manager, as PyTorch's
    RemovableHandle)."""
    _next = [0]

    def __init__(self, registry, hook, prepend=False, kw_set=None):
        self.registry = registry
        self.id = _Handle._next[0]
        _Handle._next[0] += 1
        registry[self.id] = hook
        if prepend:
            registry.move_to_end(self.id, last=False)
        self.kw_set = kw_set
        if kw_set is not None:
            kw_set.add(self.id)

    def remove(self):
        self.registry.pop(self.id, None)
        if self.kw_set is not None:
            self.kw_set.discard(self.id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _BackwardHooks:
    """One module call's full backward hooks. The tensor inputs that need gradients are
    concatenated (flattened) into one tensor and split back before forward, and likewise the
    outputs after it: a tensor hook on each concatenation sees every input's (or output's)
    gradient at once, so grad_input / grad_output are complete tuples and may be replaced."""

    def __init__(self, module):
        self.module = module
        self.grad_output = None
        self.n_in = 0
        self.in_mask = ()

    @staticmethod
    def _join(tensors):
        from .. import ops
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) > 1:
            raise TypeError(f"backward hooks: the hooked tensors of one call must share a dtype, got {sorted(map(str, dtypes))}")
        return ops.cat([ops.reshape(t, (-1,)) for t in tensors])

    @staticmethod
    def _split(flat, shapes):
        from .. import ops
        sizes = [int(np.prod(s)) for s in shapes]
        parts = ops.split(flat, sizes) if len(sizes) > 1 else [flat]
        return [ops.reshape(p, s) for p, s in zip(parts, shapes)]

    def wrap_inputs(self, args):
        from ..autograd import is_grad_enabled
        self.in_mask = tuple(isinstance(a, Tensor) and a.requires_grad and is_grad_enabled() for a in args)
        # as PyTorch: a floating-point tensor input that needs no gradient shows up in grad_input as zeros
        zeros_for = tuple(isinstance(a, Tensor) and not m and a.dtype.kind in "fc" for a, m in zip(args, self.in_mask))
        hooked = [a for a, m in zip(args, self.in_mask) if m]
        self.n_in = len(args)
        if not hooked or not self.module.__dict__.get("_backward_hooks"):
            return args
        shapes = [a.shape for a in hooked]
        flat = self._join(hooked)

        def on_grad(g):
            from .. import _creation
            gi = iter(self._split(g, shapes))
            grad_input = tuple(next(gi) if m else (_creation.zeros(*a.shape, dtype=a.dtype, device=a.device) if z
                                                   else None) for a, m, z in zip(args, self.in_mask, zeros_for))
            changed = False
            for h in list(self.module._backward_hooks.values()):
                r = h(self.module, grad_input, self.grad_output)
                if r is not None:
                    r = tuple(r) if isinstance(r, (tuple, list)) else (r,)
                    if len(r) != len(grad_input):
                        raise RuntimeError(f"backward hook returned {len(r)} gradients for {len(grad_input)} inputs")
                    grad_input, changed = r, True
            if changed:
                return self._join([gx for gx, m in zip(grad_input, self.in_mask) if m])
            return None

        flat.register_hook(on_grad)
        pieces = iter(self._split(flat, shapes))
        return tuple(next(pieces) if m else a for a, m in zip(args, self.in_mask))

    def wrap_outputs(self, out):
        single = isinstance(out, Tensor)
        outs = (out,) if single else tuple(out) if isinstance(out, (tuple, list)) else None
        if outs is None:
            return out
        mask = [isinstance(o, Tensor) and o.requires_grad for o in outs]
        hooked = [o for o, m in zip(outs, mask) if m]
        if not hooked:
            return out
        shapes = [o.shape for o in hooked]
        flat = self._join(hooked)
        module = self.module

        def on_grad(g):
            gi = iter(self._split(g, shapes))
            grad_output = tuple(next(gi) if m else None for m in mask)
            changed = False
            for h in list(module.__dict__.get("_backward_pre_hooks", {}).values()):
                r = h(module, grad_output)
                if r is not None:
                    r = tuple(r) if isinstance(r, (tuple, list)) else (r,)
                    if len(r) != len(grad_output):
                        raise RuntimeError(f"backward pre-hook returned {len(r)} gradients for {len(grad_output)} "
                                           "outputs")
                    grad_output, changed = r, True
            self.grad_output = grad_output
            if not any(self.in_mask) and module.__dict__.get("_backward_hooks"):
                for h in list(module._backward_hooks.values()):     # no input needs a gradient
                    h(module, (None,) * max(self.n_in, 1), grad_output)
            if changed:
                return self._join([go for go, m in zip(grad_output, mask) if m])
            return None

        flat.register_hook(on_grad)
        pieces = iter(self._split(flat, shapes))
        new = tuple(next(pieces) if m else o for o, m in zip(outs, mask))
        if single:
            return new[0]
        return type(out)(new) if isinstance(out, tuple) and type(out) is tuple else (list(new) if isinstance(out, list)
                                                                                    else type(out)(*new))


# module calls are what xbp.viz's group_by_module groups by; _debug (below nn) is told, not importing nn
_debug.register_module_call(Module.__call__)
