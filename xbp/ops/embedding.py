"""Embedding lookup: a row gather with a scatter-add backward."""
from __future__ import annotations

from .._backend import check_range
from .._primitive import Primitive, apply
from .._tensor import Tensor


# A row gather whose scatter-add backward leaves the padding row's gradient at zero (PyTorch's
# padding_idx); xbp.ops.take_rows without padding.
def _embedding_fwd(xp, w, idx, *, padding_idx):
    rows = xp.take(w, xp.reshape(idx, (-1,)), axis=0)
    return xp.reshape(rows, tuple(idx.shape) + tuple(w.shape[1:]))


def _embedding_vjp(c, g):
    xp = c.xp
    idx = xp.reshape(c.ins[1], (-1,))
    g2 = xp.reshape(g, (idx.shape[0], g.shape[-1]))
    pad = c.p["padding_idx"]
    if pad is not None:
        g2 = xp.where(xp.expand_dims(idx != pad, axis=1), g2, 0.0)
    return (xp.index_add_rows(c.shapes[0][0], idx, g2), None)


embedding_p = Primitive("embedding", _embedding_fwd, _embedding_vjp, save="in")


def embedding(input, weight, padding_idx=None):  # noqa: A002
    """Rows of `weight` (num_embeddings, dim) for the integer ids in `input` (any shape) ->
    (*input.shape, dim). Ids outside [0, num_embeddings) raise IndexError on every device (CuPy
    would wrap them silently): at once on the CPU, at the next host read or synchronize() on CUDA
    (checked on the device, so a step does not wait for the GPU; see `Backend.defer_check`).
    The gradient is a scatter-add; the `padding_idx` row gets none."""
    if not isinstance(input, Tensor) or input.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be an integer tensor, got "
                        f"{input.dtype if isinstance(input, Tensor) else type(input).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {weight.shape}")
    if input.xp is not weight.xp:
        from .._primitive import _device_mismatch
        _device_mismatch(embedding_p, (weight, input))
    n = weight.shape[0]
    if padding_idx is not None:
        padding_idx = int(padding_idx) % n if -n <= int(padding_idx) < n else None
        if padding_idx is None:
            raise ValueError(f"embedding: padding_idx must be within num_embeddings ({n})")
    if input.numel():    # one host read for both bounds (or none: deferred, see check_range)
        check_range(input.xp, input.array, 0, n - 1,
                    f"embedding: ids span [{{lo}}, {{hi}}], outside [0, {n}) for a table of {n} rows")
    return apply(embedding_p, (weight, input), {"padding_idx": padding_idx})
