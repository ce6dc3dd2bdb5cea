"""Saving and loading a router as a directory, without re-encoding anything on load.

Format (version 1), a directory holding two files:

``router.json``
    ``format_version`` (1), ``stratarouter_version``, ``encoder`` (``fingerprint``,
    ``dimension``, ``class``), ``config`` (`RouterConfig.to_dict()`), ``routes`` (list of
    `Route.to_dict()`), ``model`` (fusion ``weights`` by feature name, ``confidence_model``
    or null, ``metadata`` such as the fitted threshold, ``has_head``).
``arrays.npz``
    ``utterance_vectors`` (float32, one row per route utterance in route order: examples,
    then description), ``utterance_owner`` (route index per row), and when fitted
    ``head_weights`` (n_routes x dimension) and ``head_bias``.

Saving writes to a temporary sibling directory and swaps it in, so an existing save is never
left half-overwritten. Loading checks the format version and that the encoder given (or the
default `LocalEncoder`) has the fingerprint the vectors were made with.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from .config import RouterConfig
from .encoders.base import BaseEncoder, CachedEncoder
from .errors import ConfigError, PersistenceError
from .scoring.model import FEATURES, ConfidenceModel, LinearHead, ScoringModel
from .types import Route

if TYPE_CHECKING:
    from .pipeline import RoutingEngine

    EngineT = TypeVar("EngineT", bound=RoutingEngine)

__all__ = [
    "FORMAT_VERSION",
    "check_replaceable",
    "describe_encoder",
    "load_router",
    "resolve_encoder",
    "save_router",
    "write_directory",
]

FORMAT_VERSION = 2  # 2: confidence map over (log_p, fused score); self-calibration
_MANIFEST = "router.json"
_ARRAYS = "arrays.npz"


def _fingerprint(encoder: BaseEncoder) -> str:
    inner = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
    return inner.fingerprint


def save_router(router: RoutingEngine, path: Path) -> None:
    """Write `router` to the directory `path` (created or atomically replaced)."""
    from . import __version__

    built = router.state
    model = built.model
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "stratarouter_version": __version__,
        "encoder": describe_encoder(router.encoder),
        "config": router.config.to_dict(),
        "routes": [route.to_dict() for route in built.routes],
        "model": {
            "weights": {name: float(w) for name, w in zip(FEATURES, model.weights)},
            "confidence_model": model.confidence_model.to_dict()
            if model.confidence_model
            else None,
            "metadata": model.metadata,
            "has_head": model.head is not None,
        },
    }
    arrays: dict[str, NDArray[Any]] = {
        "utterance_vectors": built.utterance_vectors,
        "utterance_owner": built.utterance_owner,
    }
    if model.head is not None:
        arrays["head_weights"] = model.head.weights
        arrays["head_bias"] = model.head.bias
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True)
    write_directory(path, {_MANIFEST: manifest_text}, {_ARRAYS: arrays})


def describe_encoder(encoder: BaseEncoder) -> dict[str, Any]:
    """What a save records of its encoder: fingerprint, dimension and class."""
    inner = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
    return {
        "fingerprint": inner.fingerprint,
        "dimension": encoder.dimension,
        "class": f"{type(inner).__module__}.{type(inner).__qualname__}",
    }


def resolve_encoder(saved: dict[str, Any], encoder: BaseEncoder | None, loader: str) -> BaseEncoder:
    """The encoder to load a save with: the one given, or the local default it was made with.

    Raises PersistenceError when none is given for a save made with another encoder, or when
    the given one's fingerprint differs (vectors of different encoders are not comparable).
    `loader` names the call to pass an encoder to, for the message.
    """
    if encoder is None:
        if "LocalEncoder" not in saved["class"]:
            raise PersistenceError(
                f"this was saved with {saved['class']}: pass an equivalent encoder, "
                f"{loader}(path, encoder=...)"
            )
        from .encoders.local import LocalEncoder

        encoder = LocalEncoder()
    if _fingerprint(encoder) != saved["fingerprint"]:
        raise PersistenceError(
            f"encoder mismatch: the saved vectors come from {saved['fingerprint']!r}, the "
            f"encoder given is {_fingerprint(encoder)!r}; vectors of different encoders are "
            "not comparable"
        )
    return encoder


def check_replaceable(path: Path, names: set[str]) -> None:
    """Refuse a save to `path` unless it is absent, empty, or holds only the files `names`.

    Raises:
        PersistenceError: `path` is a file, or a directory holding other files.
    """
    if not path.exists():
        return
    if not path.is_dir():
        raise PersistenceError(f"{path} is a file, not a save directory: not replacing it")
    others = sorted(entry.name for entry in path.iterdir() if entry.name not in names)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise PersistenceError(
            f"{path} holds files a save did not write ({shown}): not replacing it; "
            "save to a new or empty directory"
        )


def write_directory(
    path: Path, texts: dict[str, str], arrays: dict[str, dict[str, NDArray[Any]]]
) -> None:
    """Write files into the directory `path`, created or atomically replaced.

    The files go to a temporary sibling first, which is then swapped in: an existing save is
    never left half-overwritten. `arrays` maps an .npz file name to its arrays. Only an empty
    directory or an earlier save of the same files is replaced: a directory holding anything
    else (``--out .`` by mistake) is refused, not deleted.

    Raises:
        PersistenceError: `path` is a file, or a directory holding other files.
    """
    path = path.resolve()
    check_replaceable(path, {*texts, *arrays})
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, text in texts.items():
            (staging / name).write_text(text)
        for name, named_arrays in arrays.items():
            np.savez(staging / name, **named_arrays)  # type: ignore[arg-type]
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, retired / path.name)
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_router(cls: type[EngineT], path: Path, encoder: BaseEncoder | None) -> EngineT:
    """Read a router written by `save_router`.

    Raises:
        PersistenceError: A file is missing or unreadable, a key or array is missing or of
            the wrong kind (an incomplete or hand-edited save), or the encoder differs.
    """
    manifest = _read_manifest(path)
    _check_manifest(manifest, path / _MANIFEST)
    arrays = _read_arrays(path / _ARRAYS, head=bool(manifest["model"]["has_head"]))
    try:
        config = RouterConfig.from_dict(manifest["config"])
        routes = tuple(Route(**data) for data in manifest["routes"])
    except (ConfigError, TypeError, KeyError) as exc:
        raise PersistenceError(f"{path / _MANIFEST} has invalid config or routes: {exc}") from exc
    encoder = resolve_encoder(manifest["encoder"], encoder, "Router.load")
    router = cls(encoder=encoder, config=config, routes=routes)
    vectors = np.ascontiguousarray(arrays["utterance_vectors"], dtype=np.float32)
    owner = np.asarray(arrays["utterance_owner"], dtype=np.int64)
    if vectors.ndim != 2 or vectors.shape[1] != encoder.dimension or len(owner) != len(vectors):
        raise PersistenceError(
            f"{path / _ARRAYS} does not match the routes or the encoder dimension"
        )
    router.restore(vectors, owner, _model(manifest["model"], arrays))
    return router


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((path / _MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise PersistenceError(f"no saved router at {path} ({_MANIFEST} missing)") from exc
    except (OSError, ValueError) as exc:
        raise PersistenceError(f"cannot read {path / _MANIFEST}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise PersistenceError(f"{path / _MANIFEST} must hold a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise PersistenceError(
            f"{path} has format version {version!r}; "
            f"this StrataRouter reads version {FORMAT_VERSION}"
        )
    return manifest


# What a loadable save holds: each manifest key with the type its value must have.
_MANIFEST_KEYS: dict[str, tuple[type, ...]] = {
    "encoder": (dict,),
    "config": (dict,),
    "routes": (list,),
    "model": (dict,),
}
_ENCODER_KEYS: dict[str, tuple[type, ...]] = {"fingerprint": (str,), "class": (str,)}
_MODEL_KEYS: dict[str, tuple[type, ...]] = {
    "weights": (dict,),
    "confidence_model": (dict, type(None)),
    "metadata": (dict,),
    "has_head": (bool,),
}


def _check_manifest(manifest: dict[str, Any], where: Path) -> None:
    """Every key loading reads is present with the right kind of value, else PersistenceError."""

    def check(data: dict[str, Any], keys: dict[str, tuple[type, ...]], prefix: str) -> None:
        for key, types in keys.items():
            if key not in data:
                raise PersistenceError(
                    f"{where} is incomplete: it has no '{prefix}{key}' (an interrupted or "
                    "hand-edited save); save the router again"
                )
            if not isinstance(data[key], types):
                raise PersistenceError(
                    f"{where}: '{prefix}{key}' must be a {' or '.join(t.__name__ for t in types)}"
                    f", got {type(data[key]).__name__}"
                )

    check(manifest, _MANIFEST_KEYS, "")
    check(manifest["encoder"], _ENCODER_KEYS, "encoder.")
    check(manifest["model"], _MODEL_KEYS, "model.")
    missing = [name for name in FEATURES if name not in manifest["model"]["weights"]]
    if missing:
        raise PersistenceError(f"{where} is incomplete: model.weights has no {missing}")


def _read_arrays(where: Path, *, head: bool) -> dict[str, Any]:
    """The arrays of `arrays.npz`, checked to hold every array loading reads."""
    try:
        with np.load(where) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise PersistenceError(f"cannot read {where}: {exc}") from exc
    needed = ["utterance_vectors", "utterance_owner", *(["head_weights", "head_bias"] * head)]
    missing = [name for name in needed if name not in arrays]
    if missing:
        raise PersistenceError(
            f"{where} is incomplete: it has no {missing} array(s); save the router again"
        )
    return arrays


def _model(data: dict[str, Any], arrays: Any) -> ScoringModel:
    head = None
    if data["has_head"]:
        head = LinearHead(
            weights=np.ascontiguousarray(arrays["head_weights"], dtype=np.float32),
            bias=np.asarray(arrays["head_bias"], dtype=np.float32),
        )
    confidence = data["confidence_model"]
    return ScoringModel(
        weights=np.array([data["weights"][name] for name in FEATURES], dtype=np.float64),
        head=head,
        confidence_model=ConfidenceModel.from_dict(confidence) if confidence else None,
        metadata=dict(data["metadata"]),
    )
