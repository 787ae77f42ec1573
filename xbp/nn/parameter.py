"""Parameter: a Tensor that a Module registers as a learnable weight."""
from __future__ import annotations

import numpy as np

from .._backend import get_backend
from .._tensor import Tensor, _wrap


class Parameter(Tensor):
    """A leaf Tensor with ``requires_grad=True`` by default. Assigning one to a Module attribute
    registers it (it then appears in ``parameters()`` and ``state_dict()``).

    ``Parameter(t)`` shares `t`'s data (no copy), as in PyTorch. Ops on a Parameter return plain
    Tensors; the Parameter object itself is only ever changed in place (optimizers, ``init``,
    ``Module.to``), so references to it stay valid.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = get_backend(None).zeros((0,), dtype=get_backend(None).dtype(np.dtype("float32")))
        if isinstance(data, Tensor):
            version = data._version
            super().__init__(data.array, requires_grad=requires_grad)
            self._version = version    # a view of the same data: share the in-place counter
        else:
            super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    # Tensor's fields include the Backend (a namespace of modules), which cannot be copied or
    # pickled: copy the array and keep the device's Backend.
    def __deepcopy__(self, memo):
        r = memo.get(id(self))
        if r is None:
            r = Parameter(_wrap(self.xp.asarray(self.array, copy=True), self.xp), self.requires_grad)
            if self.grad is not None:
                r.grad = _wrap(self.xp.asarray(self.grad.array, copy=True), self.xp)
            memo[id(self)] = r
        return r

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (str(self.device), self.xp.to_numpy(self.array), self.requires_grad))


def _rebuild_parameter(device, array, requires_grad):
    b = get_backend(device)
    return Parameter(_wrap(b.from_numpy(np.asarray(array)), b), requires_grad)
