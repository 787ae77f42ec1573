"""Named tuples returned by functions with several outputs, as `torch.return_types`:
``x.max(0)`` is ``xbp.return_types.max(values=..., indices=...)`` and prints like PyTorch's."""
from __future__ import annotations

from collections import namedtuple


def return_type(name: str, fields):
    """A named tuple class ``xbp.return_types.<name>`` with `fields`, printed as PyTorch prints
    its return types (one field per line)."""
    base = namedtuple(name, fields)  # type: ignore[misc]  # a class per PyTorch return type, made by name

    def __repr__(self):
        body = ",\n".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"xbp.return_types.{name}(\n{body})"

    cls = type(name, (base,), {"__slots__": (), "__repr__": __repr__, "__str__": __repr__,
                               "__module__": __name__})
    cls.__qualname__ = name
    return cls


max = return_type("max", ("values", "indices"))  # noqa: A001 - PyTorch's names
min = return_type("min", ("values", "indices"))  # noqa: A001
