"""Router configuration: frozen, validated, keyword-only dataclasses."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["FusionWeights", "IndexConfig", "RouterConfig"]


def _check_number(owner: str, name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{owner}.{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{owner}.{name} must be in [{low}, {high}], got {value!r}")


def _check_int(owner: str, name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{owner}.{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class FusionWeights:
    """The direction of the fusion of the three score parts.

    dense = cosine to the route prototype (in [-1, 1]), sparse = BM25 as a fraction of the
    query's attainable maximum (in [0, 1)), rule = 1 on a keyword or pattern match. Only the
    ratios matter for ranking: `build_index` learns their scale (a softmax temperature) from
    the route examples, and `fit` learns new weights only when none were configured.
    """

    dense: float = 0.64
    sparse: float = 0.29
    rule: float = 0.07

    def __post_init__(self) -> None:
        for name in ("dense", "sparse", "rule"):
            _check_number("FusionWeights", name, getattr(self, name), 0.0, 1e6)
        if self.dense + self.sparse + self.rule == 0:
            raise ConfigError("FusionWeights: at least one weight must be positive")


@dataclass(frozen=True, kw_only=True)
class IndexConfig:
    """Candidate selection: exact search up to `exact_max_routes` routes, HNSW above."""

    exact_max_routes: int = 2_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("IndexConfig", "exact_max_routes", self.exact_max_routes, 1)
        _check_int("IndexConfig", "hnsw_m", self.hnsw_m, 2)
        _check_int("IndexConfig", "hnsw_ef_construction", self.hnsw_ef_construction, 8)
        _check_int("IndexConfig", "hnsw_ef_search", self.hnsw_ef_search, 8)
        _check_int("IndexConfig", "seed", self.seed, 0)


@dataclass(frozen=True, kw_only=True)
class RouterConfig:
    """Everything that shapes a routing decision.

    Args:
        threshold: Minimum confidence (a calibrated probability) to accept the best route;
            below it the result is the fallback route (or None). None, the default: chosen from
            the route examples at `build_index` (reject as much as possible while losing at
            most 5% of the examples routed right), then by `fit`. A number always wins.
        fallback_route: Route returned when nothing is confident enough. It need not be one of
            the routes (e.g. "human").
        weights: Fusion direction. None, the default: dense 0.64, sparse 0.29, rule 0.07,
            which `fit` may replace by learned weights. Given weights are kept by `fit`
            (only their scale is learned) unless `fit(..., learn_weights=True)`.
        top_k: Number of candidates returned in each result.
        max_candidates: Routes HNSW preselects per query, once the routes outnumber both this
            and `index.exact_max_routes`. Below, every route is scored: an exact search would
            cost a pass over every route anyway.
        index: Exact / HNSW candidate-selection settings.
        bm25_k1: BM25 term-frequency saturation.
        bm25_b: BM25 length normalisation.
        encoder_cache_size: Texts kept in the encoding cache (0 disables it).
        calibrate_from_routes: Learn the confidence map and default threshold from the route
            examples at `build_index` (leave-one-out). False: confidence is the fused score
            clipped to [0, 1] until `fit`, and the default threshold is 0.5.
        expected_oos_rate: Share of out-of-scope traffic the calibration from the routes
            assumes (0.5: as much as in scope). P(right) depends on it; state yours if you
            know it (`fit` takes its own, or the labelled data's share).

    Example:
        >>> RouterConfig(threshold=0.6, fallback_route="human").threshold
        0.6
    """

    threshold: float | None = None
    fallback_route: str | None = None
    weights: FusionWeights | None = None
    top_k: int = 5
    max_candidates: int = 128
    index: IndexConfig = field(default_factory=IndexConfig)
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    encoder_cache_size: int = 10_000
    calibrate_from_routes: bool = True
    expected_oos_rate: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold is not None:
            _check_number("RouterConfig", "threshold", self.threshold, 0.0, 1.0)
        if self.fallback_route is not None and (
            not isinstance(self.fallback_route, str) or not self.fallback_route.strip()
        ):
            raise ConfigError(
                f"RouterConfig.fallback_route must be a non-blank string or None, "
                f"got {self.fallback_route!r}"
            )
        if isinstance(self.weights, Mapping):
            object.__setattr__(self, "weights", _build(FusionWeights, self.weights, "weights"))
        if isinstance(self.index, Mapping):
            object.__setattr__(self, "index", _build(IndexConfig, self.index, "index"))
        if self.weights is not None and not isinstance(self.weights, FusionWeights):
            raise ConfigError(f"RouterConfig.weights must be FusionWeights, got {self.weights!r}")
        if not isinstance(self.index, IndexConfig):
            raise ConfigError(f"RouterConfig.index must be IndexConfig, got {self.index!r}")
        _check_int("RouterConfig", "top_k", self.top_k, 1)
        _check_int("RouterConfig", "max_candidates", self.max_candidates, 1)
        _check_number("RouterConfig", "bm25_k1", self.bm25_k1, 0.0, 100.0)
        _check_number("RouterConfig", "bm25_b", self.bm25_b, 0.0, 1.0)
        _check_int("RouterConfig", "encoder_cache_size", self.encoder_cache_size, 0)
        _check_number("RouterConfig", "expected_oos_rate", self.expected_oos_rate, 0.0, 0.99)
        if not isinstance(self.calibrate_from_routes, bool):
            raise ConfigError(
                "RouterConfig.calibrate_from_routes must be a bool, "
                f"got {self.calibrate_from_routes!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; `RouterConfig.from_dict` is its inverse."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterConfig:
        """Build from a mapping, rejecting unknown keys with a `ConfigError` naming them."""
        config: RouterConfig = _build(cls, data, "config")
        return config

    def replace(self, **changes: Any) -> RouterConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _build(cls: Any, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown {where} field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"invalid {where}: {exc}") from exc
