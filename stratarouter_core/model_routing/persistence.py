"""Saving and loading a `ModelRouter` as a directory.

Format (version 1), two files:

``model_router.json``
    ``format_version`` (1), ``kind`` ("model_router"), ``stratarouter_version``, ``encoder``
    (``fingerprint``, ``dimension``, ``class``), ``models`` (`ModelSpec.to_dict()` each),
    ``config`` (`ModelRouterConfig.to_dict()`), ``output_tokens`` (per model, in model
    order), ``predictor`` (temperatures, isotonic model indices, granularity count),
    ``report`` (the fit report, or null) and ``fit_id`` (`ModelRouter.fit_id`; absent from
    saves made before it).
``arrays.npz``
    The predictor's arrays (`SuccessModel.arrays()`), float64.

Written to a temporary sibling directory and swapped in, so an existing save is never left
half-overwritten. Loading checks the format version, the kind and the encoder's fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..encoders.base import BaseEncoder
from ..errors import ConfigError, PersistenceError
from ..persistence import check_replaceable, describe_encoder, resolve_encoder, write_directory
from .predictor import SuccessModel
from .types import ModelRouterConfig, ModelRoutingReport, ModelSpec

__all__ = [
    "FORMAT_VERSION",
    "SavedModelRouter",
    "check_save_target",
    "load_model_router",
    "save_model_router",
]


@dataclasses.dataclass(frozen=True)
class SavedModelRouter:
    """Everything a fitted `ModelRouter` is rebuilt from (what `ModelRouter.save` writes)."""

    models: list[ModelSpec]
    config: ModelRouterConfig
    predictor: SuccessModel
    output_tokens: NDArray[np.float64]
    report: ModelRoutingReport | None
    fit_id: str | None = None  # None: a save from before fit ids

FORMAT_VERSION = 1
_KIND = "model_router"
_MANIFEST = "model_router.json"
_ARRAYS = "arrays.npz"


def save_model_router(saved: SavedModelRouter, encoder: BaseEncoder, path: Path) -> None:
    """Write a fitted router's state to the directory `path` (created or atomically replaced)."""
    from .. import __version__

    predictor, report = saved.predictor, saved.report
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": _KIND,
        "stratarouter_version": __version__,
        "encoder": describe_encoder(encoder),
        "models": [spec.to_dict() for spec in saved.models],
        "config": saved.config.to_dict(),
        "output_tokens": saved.output_tokens.tolist(),
        "predictor": predictor.scalars(),
        "report": dataclasses.asdict(report) if report is not None else None,
        "fit_id": saved.fit_id,
    }
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True)
    write_directory(path, {_MANIFEST: manifest_text}, {_ARRAYS: predictor.arrays()})


def check_save_target(path: Path) -> None:
    """Raise PersistenceError now if `save_model_router` would refuse `path` (a file, or a
    directory holding other files): before a long fit, not after it."""
    check_replaceable(path.resolve(), {_MANIFEST, _ARRAYS})


def load_model_router(
    path: Path, encoder: BaseEncoder | None
) -> tuple[SavedModelRouter, BaseEncoder]:
    """Read a router's state written by `save_model_router`, and the encoder to use with it."""
    manifest = _read_manifest(path)
    encoder = resolve_encoder(manifest["encoder"], encoder, "ModelRouter.load")
    try:
        models = [ModelSpec(**spec) for spec in manifest["models"]]
        config = ModelRouterConfig.from_dict(manifest["config"])
        report_data = manifest["report"]
        report = ModelRoutingReport(**report_data) if report_data is not None else None
    except (ConfigError, TypeError, KeyError) as exc:
        raise PersistenceError(f"{path / _MANIFEST} has invalid models or config: {exc}") from exc
    try:
        with np.load(path / _ARRAYS) as arrays:
            predictor = SuccessModel.from_arrays(arrays, manifest["predictor"])
    except (OSError, ValueError, KeyError) as exc:
        raise PersistenceError(f"cannot read {path / _ARRAYS}: {exc}") from exc
    if predictor.ridge_weights.shape != (encoder.dimension, len(models)):
        raise PersistenceError(f"{path / _ARRAYS} does not match the models or the encoder")
    output_tokens = np.asarray(manifest["output_tokens"], dtype=np.float64)
    fit_id = manifest.get("fit_id")
    if fit_id is not None and not isinstance(fit_id, str):
        raise PersistenceError(f"{path / _MANIFEST}: fit_id must be a string, got {fit_id!r}")
    saved = SavedModelRouter(models, config, predictor, output_tokens, report, fit_id)
    return saved, encoder


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((path / _MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise PersistenceError(f"no saved ModelRouter at {path} ({_MANIFEST} missing)") from exc
    except (OSError, ValueError) as exc:
        raise PersistenceError(f"cannot read {path / _MANIFEST}: {exc}") from exc
    if manifest.get("kind") != _KIND or manifest.get("format_version") != FORMAT_VERSION:
        raise PersistenceError(
            f"{path} holds {manifest.get('kind')!r} format {manifest.get('format_version')!r}; "
            f"this StrataRouter reads {_KIND!r} format {FORMAT_VERSION}"
        )
    return manifest
