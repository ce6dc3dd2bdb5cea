"""Graded data as a JSON file: the models with their prices, and graded queries per split.

Format (the one `stratarouter bench model-routing` reads)::

    {
      "models": {"gpt-4o": {"input_usd_per_mtok": 2.5, "output_usd_per_mtok": 10.0}, ...},
      "train": [["prove that sqrt(2) is irrational", {"gpt-4o": 1.0, "gpt-4o-mini": 0.0}], ...],
      "test": [...]
    }

A model entry may also set ``expected_output_tokens``. A score is a quality in [0, 1]; a model
absent from a query's mapping (or null) was not graded on it. Splits other than the one read
may be absent; an optional ``"name"`` names the data set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .errors import InvalidScoresError, ModelSpecError
from .types import ModelSpec

__all__ = ["GradedFile", "read_graded_file"]


@dataclass(frozen=True)
class GradedFile:
    """A graded data file: its name, its models (in file order) and each split's graded
    queries."""

    path: Path
    name: str  # the file's "name", else its stem
    models: tuple[ModelSpec, ...]
    splits: Mapping[str, tuple[tuple[str, Mapping[str, float | None]], ...]]

    def split(self, name: str) -> tuple[list[str], list[Mapping[str, float | None]]]:
        """The queries of split `name` and their scores, aligned."""
        if name not in self.splits:
            raise ConfigError(
                f"{self.path}: no split {name!r} (the file has {sorted(self.splits) or 'none'})"
            )
        rows = self.splits[name]
        if not rows:
            raise ConfigError(f"{self.path}: the {name} split is empty")
        return [query for query, _ in rows], [scores for _, scores in rows]


def read_graded_file(path: str | Path) -> GradedFile:
    """Read and check a graded data file (see the module docstring for the format).

    Raises:
        ConfigError: The file is missing, not JSON, or not shaped as documented.
        ModelSpecError: A model entry without valid prices.
        InvalidScoresError: A row that is not ``[query, {model: score}]``.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"graded file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read graded file {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict) or not raw["models"]:
        raise ConfigError(f"{path}: expected an object with a non-empty 'models' mapping")
    models = tuple(_model(path, name, entry) for name, entry in raw["models"].items())
    splits = {
        name: tuple(_row(path, name, i, row) for i, row in enumerate(rows))
        for name, rows in raw.items()
        if name != "models" and isinstance(rows, list)
    }
    return GradedFile(path, str(raw.get("name") or path.stem), models, splits)


def _model(path: Path, name: str, entry: Any) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ModelSpecError(f"{path}: model {name!r} must map to its prices")
    try:
        return ModelSpec(
            name,
            entry["input_usd_per_mtok"],
            entry["output_usd_per_mtok"],
            expected_output_tokens=entry.get("expected_output_tokens"),
        )
    except KeyError as exc:
        raise ModelSpecError(f"{path}: model {name!r} has no {exc.args[0]}") from exc
    except ModelSpecError as exc:
        raise ModelSpecError(f"{path}: {exc}") from exc


def _row(path: Path, split: str, i: int, row: Any) -> tuple[str, Mapping[str, float | None]]:
    if (
        not isinstance(row, list)
        or len(row) != 2
        or not isinstance(row[0], str)
        or not isinstance(row[1], dict)
    ):
        raise InvalidScoresError(
            f"{path}: {split}[{i}] must be [query, {{model: score}}], got {str(row)[:80]}"
        )
    return row[0], row[1]
