"""`xbp.array_api` with every floating-point array it creates marked ``requires_grad=True``, so the
standard's test suite drives xbp's differentiable ops (the path a user's gradients take) instead of
the backend's own functions. Used as ARRAY_API_TESTS_MODULE (see conformance/README.md)."""
import functools
import types

import xbp.array_api as _ns

xp = types.ModuleType("xbp_array_api_grad")
xp.__dict__.update({k: v for k, v in vars(_ns).items() if not k.startswith("__") or k in (
    "__array_api_version__", "__array_namespace_info__")})


def _leaf(t):
    if isinstance(t, xbp.Tensor) and t.dtype.kind == "f" and not t.requires_grad:
        t.requires_grad_(True)
    return t


def _creating(f):
    @functools.wraps(f)
    def g(*args, **kw):
        r = f(*args, **kw)
        if isinstance(r, (list, tuple)):
            return type(r)(_leaf(e) for e in r)
        return _leaf(r)
    return g


import xbp  # noqa: E402

for _name in ("asarray", "arange", "empty", "empty_like", "eye", "full", "full_like", "linspace", "ones",
              "ones_like", "zeros", "zeros_like"):
    setattr(xp, _name, _creating(getattr(_ns, _name)))
