"""Intent datasets in the CLINC150 JSON layout, with optional precomputed embeddings.

Layout: a JSON object whose split keys (``train``, ``val``, ``test`` and optional ``oos_train``,
``oos_val``, ``oos_test``) hold lists of ``[text, label]``; other keys (name, source, license)
are ignored. Out-of-scope items are those in an ``oos_*`` split or labelled ``oos``. The
embeddings file is an ``.npz`` with one array per split, rows in the split's order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError, EncoderError

__all__ = ["IntentDataset", "PrecomputedEncoder", "Split", "load_intent_dataset"]

OOS_LABEL = "oos"


@dataclass(frozen=True)
class Split:
    """Texts, labels (None = out of scope) and optional embeddings of one split."""

    texts: list[str]
    labels: list[str | None]
    vectors: NDArray[np.float32] | None

    def __add__(self, other: Split) -> Split:
        vectors = None
        if self.vectors is not None and other.vectors is not None:
            vectors = np.vstack([self.vectors, other.vectors])
        return Split(self.texts + other.texts, self.labels + other.labels, vectors)

    def first_per_label(self, k: int) -> Split:
        """The first `k` in-scope items of each label, in file order."""
        seen: dict[str, int] = {}
        keep = []
        for i, label in enumerate(self.labels):
            if label is not None and seen.get(label, 0) < k:
                seen[label] = seen.get(label, 0) + 1
                keep.append(i)
        vectors = None if self.vectors is None else self.vectors[keep]
        return Split([self.texts[i] for i in keep], [self.labels[i] for i in keep], vectors)


@dataclass(frozen=True)
class IntentDataset:
    """Splits by name, each an in-scope part merged with its out-of-scope part."""

    name: str
    splits: dict[str, Split]
    embedding_model: str | None

    def split(self, name: str) -> Split:
        """The split called `name` (train, val or test), out-of-scope items included."""
        if name not in self.splits:
            raise ConfigError(f"dataset {self.name!r} has no {name!r} split")
        return self.splits[name]


def load_intent_dataset(path: str | Path, embeddings: str | Path | None = None) -> IntentDataset:
    """Read a dataset (and its embeddings) in the CLINC150 layout."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read dataset {path}: {exc}") from exc
    arrays = np.load(embeddings) if embeddings is not None else None
    parts: dict[str, Split] = {}
    for key, items in raw.items():
        if not isinstance(items, list) or key in {"name", "source", "license"}:
            continue
        texts = [str(item[0]) for item in items]
        labels = [
            None if key.startswith("oos") or item[1] == OOS_LABEL else str(item[1])
            for item in items
        ]
        vectors = None
        if arrays is not None:
            if key not in arrays.files:
                raise ConfigError(f"{embeddings} has no array for split {key!r}")
            vectors = np.asarray(arrays[key], dtype=np.float32)
            if len(vectors) != len(texts):
                raise ConfigError(
                    f"{embeddings}[{key!r}] has {len(vectors)} rows for {len(texts)} items"
                )
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        parts[key] = Split(texts, labels, vectors)
    splits: dict[str, Split] = {}
    for name in ("train", "val", "test"):
        if name not in parts:
            raise ConfigError(f"dataset {path} has no {name!r} split")
        splits[name] = parts[name] + parts[f"oos_{name}"] if f"oos_{name}" in parts else parts[name]
    model = str(arrays["model"]) if arrays is not None and "model" in arrays.files else None
    return IntentDataset(name=str(raw.get("name", path.stem)), splits=splits, embedding_model=model)


class PrecomputedEncoder(BaseEncoder):
    """Serves embeddings computed beforehand, looked up by exact text (benchmarks only)."""

    def __init__(
        self, texts: Sequence[str], vectors: NDArray[np.float32], model: str | None
    ) -> None:
        """Map each text to its row of `vectors`."""
        self.dimension = int(vectors.shape[1])
        self._rows = {text: i for i, text in enumerate(texts)}
        self._vectors = vectors
        self._model = model or "precomputed"

    @property
    def fingerprint(self) -> str:
        """The embedding model named in the embeddings file."""
        return f"precomputed:{self._model}:{self.dimension}"

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Look the texts up; an unknown text is an EncoderError."""
        try:
            return self._vectors[[self._rows[t] for t in texts]]
        except KeyError as exc:
            raise EncoderError(f"no precomputed embedding for {exc.args[0]!r}") from None
