"""Any sentence-transformers model as an encoder (needs PyTorch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .._deps import require
from ..errors import ConfigError, EncoderError, InvalidQueryError
from .base import BaseEncoder, check_vectors

__all__ = ["SentenceTransformerEncoder"]


@runtime_checkable
class _SentenceModel(Protocol):
    """What we use of a `sentence_transformers.SentenceTransformer`."""

    def encode(self, sentences: list[str], **kwargs: object) -> object:
        """Embed `sentences`."""

    def get_sentence_embedding_dimension(self) -> int | None:
        """The size of the vectors `encode` returns."""


class SentenceTransformerEncoder(BaseEncoder):
    """Wraps a sentence-transformers model, given by name, path or as a built model.

    Needs `pip install 'stratarouter[st]'` when given a name or path (the package, and
    PyTorch, are imported then); an already built model is used as is.

    Args:
        model: A model name (`"sentence-transformers/all-MiniLM-L6-v2"`), a local path, or a
            `SentenceTransformer` instance.
        batch_size: Texts per forward pass.
        normalize: L2-normalise the vectors (cosine similarity becomes a dot product).

    Raises:
        MissingDependencyError: `model` is a name and sentence-transformers is not installed.
        ConfigError: `model` is neither a string nor a model with an `encode` method.

    Example:
        >>> encoder = SentenceTransformerEncoder("all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> encoder.encode(["book a flight"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(
        self, model: str | object, *, batch_size: int = 64, normalize: bool = True
    ) -> None:
        """Load the model named `model`, or adopt the given model instance."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(model, str):
            st = require("sentence_transformers", extra="st")
            self.model_name = model
            self.model: _SentenceModel = st.SentenceTransformer(model)
        elif isinstance(model, _SentenceModel):
            self.model = model
            self.model_name = _name_of(model)
        else:
            raise ConfigError(
                "model must be a model name or path, or a SentenceTransformer instance; "
                f"got {type(model).__name__}"
            )
        dimension = self.model.get_sentence_embedding_dimension()
        if not isinstance(dimension, int) or dimension < 1:
            raise ConfigError(f"model {self.model_name!r} reports no embedding dimension")
        self.dimension = dimension
        self.batch_size = batch_size
        self.normalize = normalize

    @property
    def fingerprint(self) -> str:
        """`sentence-transformers:<model name>:<dimension>[:raw]` (raw = not normalised)."""
        suffix = "" if self.normalize else ":raw"
        return f"sentence-transformers:{self.model_name}:{self.dimension}{suffix}"

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode `texts` with the model, as float32 (n, dimension).

        Raises:
            EncoderError: The model failed or returned vectors of the wrong shape.
            InvalidQueryError: A text is not a string.
        """
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise InvalidQueryError(f"expected strings, got {type(text).__name__}")
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        try:
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except (RuntimeError, ValueError, TypeError, OSError) as exc:
            raise EncoderError(f"model {self.model_name!r} failed to encode: {exc}") from exc
        return check_vectors(vectors, len(texts), self.dimension, f"model {self.model_name!r}")


def _name_of(model: object) -> str:
    """The best name a built model tells: the Hub id, the path it was loaded from, or its class."""
    card = getattr(model, "model_card_data", None)
    for candidate in (
        getattr(card, "base_model", None),
        getattr(model, "name_or_path", None),
        getattr(getattr(model, "tokenizer", None), "name_or_path", None),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return type(model).__qualname__
