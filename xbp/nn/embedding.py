"""Embedding: a lookup table of vectors, weight (num_embeddings, embedding_dim) ~ N(0, 1) with the
padding_idx row zeroed, as PyTorch."""
from __future__ import annotations

from .. import _creation
from ..autograd import no_grad
from . import functional as F
from . import init
from ..ops._util import check_size
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding", "EmbeddingBag"]


class Embedding(Module):
    """Integer ids (*) -> vectors (*, embedding_dim). The `padding_idx` row starts at zero and
    gets no gradient; ids outside [0, num_embeddings) raise IndexError on every device."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported")
        self.num_embeddings, self.embedding_dim = check_size("Embedding", num_embeddings, "num_embeddings"), check_size("Embedding", embedding_dim, "embedding_dim")
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({self.num_embeddings})")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(_creation.empty(self.num_embeddings, self.embedding_dim, device=device,
                                                    dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight shape {tuple(_weight.shape)} does not match "
                                 f"({self.num_embeddings}, {self.embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """Re-draws the weight from N(0, 1), as at construction, and zeroes the `padding_idx` row."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None):
        """An Embedding whose weight is (a copy of) the 2-D tensor `embeddings`."""
        n, d = embeddings.shape
        return cls(n, d, padding_idx=padding_idx, _weight=_creation.tensor(embeddings), _freeze=freeze)

    def forward(self, input):
        """Returns ``F.embedding(input, self.weight, self.padding_idx)``: see `xbp.nn.functional.embedding`."""
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class EmbeddingBag(Module):
    """Sums, means or maxima of bags of embeddings without building the per-id vectors' tensor:
    forward(input, offsets=None, per_sample_weights=None) -> (B, embedding_dim); see
    F.embedding_bag. weight (num_embeddings, embedding_dim) ~ N(0, 1), padding_idx row zeroed."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="mean", sparse=False, _weight=None, include_last_offset=False, padding_idx=None,
                 device=None, dtype=None):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("EmbeddingBag: max_norm, scale_grad_by_freq and sparse are not supported")
        self.num_embeddings = check_size("EmbeddingBag", num_embeddings, "num_embeddings")
        self.embedding_dim = check_size("EmbeddingBag", embedding_dim, "embedding_dim")
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"EmbeddingBag: padding_idx {padding_idx} must be within num_embeddings")
            padding_idx %= self.num_embeddings
        self.padding_idx, self.mode, self.include_last_offset = padding_idx, mode, include_last_offset
        if _weight is None:
            self.weight = Parameter(_creation.empty(self.num_embeddings, self.embedding_dim, device=device,
                                                    dtype=dtype))
            self.reset_parameters()
        else:
            self.weight = Parameter(_weight)

    def reset_parameters(self) -> None:
        """Re-draws the weight from N(0, 1), as at construction, and zeroes the `padding_idx` row."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, mode="mean", include_last_offset=False, padding_idx=None):
        """An EmbeddingBag whose weight is a copy of `embeddings` (num_embeddings, embedding_dim);
        ``freeze=True`` (the default) makes the weight not require grad."""
        n, d = embeddings.shape
        m = cls(n, d, mode=mode, _weight=_creation.tensor(embeddings), include_last_offset=include_last_offset,
                padding_idx=padding_idx)
        m.weight.requires_grad_(not freeze)
        return m

    def forward(self, input, offsets=None, per_sample_weights=None):
        """Returns `xbp.nn.functional.embedding_bag` of the inputs, with this module's settings as
        its arguments."""
        return F.embedding_bag(input, self.weight, offsets, mode=self.mode, per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)

    def extra_repr(self):
        """The module's settings, as shown inside ``repr(module)``."""
        s = f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
