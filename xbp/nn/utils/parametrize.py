"""``torch.nn.utils.parametrize``: a tensor of a module computed from other tensors.

``register_parametrization(module, "weight", p)`` moves the parameter into
``module.parametrizations.weight.original`` (or original0, original1, ... when p's right_inverse
returns several tensors) and makes ``module.weight`` a property returning ``p(original)``, as
PyTorch does: the module's class is swapped for a subclass ``Parametrized<Class>`` holding the
property, so state-dict keys are PyTorch's (``parametrizations.weight.original``, and the
parametrization's own buffers under ``parametrizations.weight.0.``).
"""
from __future__ import annotations

import contextlib

from ..._tensor import Tensor
from ...autograd import no_grad
from ..layers import ModuleDict, ModuleList
from ..module import Module
from ..parameter import Parameter

__all__ = ["register_parametrization", "remove_parametrizations", "is_parametrized", "cached",
           "ParametrizationList", "type_before_parametrizations"]

_CACHE = {"enabled": 0, "values": {}}


@contextlib.contextmanager
def cached():
    """Within this context each parametrized tensor is computed once (on first access) and reused."""
    _CACHE["enabled"] += 1
    try:
        yield
    finally:
        _CACHE["enabled"] -= 1
        if not _CACHE["enabled"]:
            _CACHE["values"] = {}


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor (applied in order) and the original tensor(s)."""

    def __init__(self, modules, original, unsafe=False):
        super().__init__(modules)
        self.unsafe = unsafe
        new = original
        with no_grad():
            for m in reversed(list(self)):
                if hasattr(m, "right_inverse"):
                    new = m.right_inverse(new)
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        req = original.requires_grad
        if self.is_tensor:
            if new is original and isinstance(original, Parameter):
                self.original = original
            else:
                self.original = Parameter(new.detach(), requires_grad=req)
        else:
            for i, t in enumerate(new):
                setattr(self, f"original{i}", Parameter(t.detach(), requires_grad=req))

    def right_inverse(self, value) -> None:
        """Set the original tensor(s) so that the parametrized value becomes `value`."""
        with no_grad():
            for m in reversed(list(self)):
                if hasattr(m, "right_inverse"):
                    value = m.right_inverse(value)
            if self.is_tensor:
                self.original.copy_(value)
            else:
                for i, t in enumerate(value):
                    getattr(self, f"original{i}").copy_(t)

    def forward(self):
        mods = list(self)
        x = mods[0](self.original) if self.is_tensor else \
            mods[0](*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        for m in mods[1:]:
            x = m(x)
        return x


def _make_property(name):
    def get(self):
        plist = self.parametrizations[name]
        if _CACHE["enabled"]:
            key = (id(self), name)
            if key not in _CACHE["values"]:
                _CACHE["values"][key] = plist()
            return _CACHE["values"][key]
        return plist()

    def set_(self, value):
        self.parametrizations[name].right_inverse(value)

    return property(get, set_)


def is_parametrized(module, tensor_name=None) -> bool:
    """Whether `module` has parametrizations (for `tensor_name`, when given)."""
    p = module.__dict__.get("_modules", {}).get("parametrizations")
    if not isinstance(p, ModuleDict):
        return False
    return len(p) > 0 if tensor_name is None else tensor_name in p


def type_before_parametrizations(module) -> type:
    """The module's class before register_parametrization swapped it."""
    return type(module).__bases__[0] if is_parametrized(module) else type(module)


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *, unsafe: bool = False):
    """Make ``module.<tensor_name>`` be ``parametrization(original)``; a second call on the same
    name chains the parametrizations. Returns the module."""
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        module.parametrizations[tensor_name].append(parametrization)
        return module
    if tensor_name in module._parameters:
        original = module._parameters[tensor_name]
    elif tensor_name in module._buffers:
        original = module._buffers[tensor_name]
    else:
        raise ValueError(f"register_parametrization: module {type(module).__name__} has no parameter or buffer "
                         f"named {tensor_name!r}")
    if original is None:
        raise ValueError(f"register_parametrization: {tensor_name!r} of {type(module).__name__} is None")
    if not unsafe:
        with no_grad():
            y = parametrization(original)
        if not isinstance(y, Tensor) or y.shape != original.shape or y.dtype != original.dtype:
            raise ValueError(f"register_parametrization: the parametrization must return a tensor of the original's "
                             f"shape {original.shape} and dtype {original.dtype}; pass unsafe=True to skip this check")
    plist = ParametrizationList([parametrization], original, unsafe)
    if not is_parametrized(module):
        cls = type(module)
        module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), {"__module__": cls.__module__})
        module.parametrizations = ModuleDict()
    delattr(module, tensor_name)
    module.parametrizations[tensor_name] = plist
    setattr(type(module), tensor_name, _make_property(tensor_name))
    return module


def remove_parametrizations(module: Module, tensor_name: str, leave_parametrized: bool = True):
    """Undo register_parametrization for `tensor_name`: the tensor becomes a Parameter again,
    holding the parametrized value (or the original, with leave_parametrized=False)."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"remove_parametrizations: module {type(module).__name__} has no parametrization on "
                         f"{tensor_name!r}")
    plist = module.parametrizations[tensor_name]
    with no_grad():
        if leave_parametrized:
            value = plist().detach()
        elif plist.is_tensor:
            value = plist.original.detach()
        else:
            raise ValueError("remove_parametrizations: leave_parametrized=False needs a single original tensor")
    req = (plist.original if plist.is_tensor else plist.original0).requires_grad
    delattr(type(module), tensor_name)
    del module.parametrizations[tensor_name]
    module.register_parameter(tensor_name, Parameter(value.clone() if hasattr(value, "clone") else value,
                                                     requires_grad=req))
    if not is_parametrized(module):
        del module._modules["parametrizations"]
        module.__class__ = type(module).__bases__[0]
    return module
