"""``Embedding``: a learned table of vectors, looked up by integer index (word vectors, token embeddings)."""
from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from . import init
from ._checks import check_tensor, size_arg
from .module import Module
from .parameter import Parameter, _empty_parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """y = weight[input]: each integer index picks one row of a (num_embeddings, embedding_dim) table.

    Equivalent to a bias-free Linear layer applied to one-hot vectors, without forming them. Initialised, as
    in PyTorch, from N(0, 1), with the ``padding_idx`` row (if any) set to zeros.

    >>> import minidl as mdl, minidl.nn as nn
    >>> emb = nn.Embedding(10, 3)
    >>> emb(mdl.tensor([[1, 2, 4], [4, 3, 9]])).shape
    (2, 3, 3)

    Args:
        num_embeddings: V, the size of the table (indices run over [0, V)).
        embedding_dim: D, the size of each vector.
        padding_idx: a row that is all zeros at first and never trained (e.g. the padding token).
        max_norm: rescale each looked-up row whose norm exceeds it, in place, to norm ``max_norm``.
        norm_type: p of the p-norm used with ``max_norm``.
        scale_grad_by_freq: divide each row's gradient by its frequency in the batch.
        sparse: sparse gradients; not supported (only False).
        _weight: an initial table (V, D) to use instead of a random one.
        _freeze: with ``_weight``, do not train the table.
        device: where to create the table.
        dtype: its dtype (float32 by default).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.num_embeddings = size_arg(name, "num_embeddings", num_embeddings)
        self.embedding_dim = size_arg(name, "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"{name}: padding_idx must be within num_embeddings ({num_embeddings}), got "
                                 f"{padding_idx}")
            padding_idx %= num_embeddings
        if sparse:
            raise NotImplementedError(f"{name}: sparse=True (sparse gradients) is not supported; use sparse=False")
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = _empty_parameter((num_embeddings, embedding_dim), device, dtype)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"{name}: _weight must have shape ({num_embeddings}, {embedding_dim}), got "
                                 f"{tuple(_weight.shape)}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """weight ~ N(0, 1), the padding row zero (PyTorch's default)."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            self.weight.array[self.padding_idx] = 0
            self.weight._bump_version()

    def forward(self, input):
        check_tensor(self, input)
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding holding the given (V, D) table (a Tensor or an array), e.g. pretrained word vectors.

        Args:
            embeddings: the table; it is shared, not copied (as in PyTorch).
            freeze: do not train it (``weight.requires_grad = False``).
            padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse: as for the constructor.
        """
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-dimensional, got shape "
                             f"{tuple(embeddings.shape)}")
        array = embeddings.array if isinstance(embeddings, Tensor) else embeddings
        V, D = array.shape
        return cls(V, D, _weight=array, _freeze=freeze, padding_idx=padding_idx, max_norm=max_norm,
                   norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)
