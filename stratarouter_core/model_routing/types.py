"""Value types of model routing: model specs, the router's config, choices and fit reports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, NamedTuple

from ..errors import ConfigError
from .errors import ModelSpecError

__all__ = ["ModelChoice", "ModelOption", "ModelRouterConfig", "ModelRoutingReport", "ModelSpec"]

Calibration = Literal["auto", "isotonic", "platt", "none"]


@dataclass(frozen=True)
class ModelSpec:
    """One LLM the router may pick, with its prices.

    Args:
        name: The model's name, as the scores and the caller spell it.
        input_usd_per_mtok: Price of one million prompt tokens, in USD.
        output_usd_per_mtok: Price of one million completion tokens, in USD.
        expected_output_tokens: Completion length used for the expected cost. None: learned by
            `ModelRouter.fit` when it is given output token counts, else
            `ModelRouterConfig.default_output_tokens`.
        metadata: Free-form data carried along (provider, endpoint...).

    Example:
        >>> spec = ModelSpec("gpt-4o-mini", input_usd_per_mtok=0.15, output_usd_per_mtok=0.6)
        >>> round(spec.cost_usd(input_tokens=1000, output_tokens=500), 6)
        0.00045
    """

    name: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    expected_output_tokens: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject names and prices that cannot be routed over."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelSpecError(f"model name must be a non-empty str, got {self.name!r}")
        for label in ("input_usd_per_mtok", "output_usd_per_mtok"):
            value = getattr(self, label)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ModelSpecError(f"{self.name}: {label} must be a finite number >= 0")
        tokens = self.expected_output_tokens
        if tokens is not None and (not math.isfinite(tokens) or tokens < 0):
            raise ModelSpecError(f"{self.name}: expected_output_tokens must be >= 0 or None")

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        """Price of one call with these token counts."""
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form."""
        data = asdict(self)
        data["metadata"] = dict(self.metadata)
        return data


@dataclass(frozen=True)
class ModelRouterConfig:
    """How a `ModelRouter` learns and decides. The defaults suit any graded data set.

    Every learned hyper-parameter (ridge strength, cluster temperature, stacker strength,
    calibration method) is chosen by cross-validation on the training data among the
    candidates below; none is fitted to a particular data set.

    Args:
        folds: Cross-fitting folds (fewer when a model has few graded queries).
        ridge_strengths: Ridge penalties tried, as fractions of the largest squared singular
            value of the centred embeddings (so the grid is scale-free).
        temperatures: Softmax temperatures over cosine similarity to cluster centres tried for
            the neighbourhood profiles.
        stacker_c: Inverse L2 strengths tried for the per-model logistic stacker.
        prior_strength: Pseudo-counts pulling a cluster's mean score toward the model's mean.
        calibration: "auto" picks, per model, the calibration (none, Platt, isotonic) with the
            lowest cross-validated Brier score; isotonic is only tried from 1,000 graded queries.
        min_quality, cost_weight, max_cost: The decision rule `route()` uses when it is given
            none (see `ModelRouter.route`); with all three None, the highest p_success wins.
        fallback_model: Model returned when the rule cannot be met; None means the rule's best
            effort (highest p_success for min_quality, cheapest model for max_cost).
        min_graded_similarity: A query whose cosine to its nearest graded query is below this
            is treated as unlike the graded data, where p_success is extrapolation: it goes to
            `fallback_model`, else to the model with the best mean graded quality (within
            `max_cost`), with `fallback=True`. None: every query is routed by the rule.
            `ModelRoutingReport.nearest_graded_similarity` gives the training data's scale.
        default_output_tokens: Completion length assumed for a model that has none.
        chars_per_token: Prompt-length estimate when the encoder has no tokenizer.
        prompt_overhead_tokens: Tokens added to every prompt (system prompt, template).
        seed: Seed of the fold split and of k-means.
        evidence_neighbours: Most similar graded queries whose grades update p_success
            (a repeat of a graded query counts as one graded answer); 0 turns the update off
            (the graded queries are still searched, for `nearest_graded_similarity`).
        evidence_probe: Clusters of graded queries (about sqrt(N) of them) searched for those
            neighbours; more finds the exact nearest more often and costs more per query.
        evidence_temperatures: Temperatures tried for the neighbours' weight
            exp((cosine - 1) / T).
        evidence_strengths: Strengths tried for the prior: how many graded answers the
            calibrated p_success counts as in the update.
        repeat_reliability: For a query whose exact text was graded, the share of p_success
            taken from those grades (see `repeats`), used when the graded data holds fewer
            than `repeat_min_queries` repeats across CV folds to estimate it from; None turns
            the stage off.
        repeat_reliabilities: Candidates tried when it is estimated.
        repeat_min_queries: Training queries with a copy in another fold needed to estimate it.
    """

    folds: int = 5
    ridge_strengths: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    temperatures: tuple[float, ...] = (0.02, 0.05, 0.1)
    stacker_c: tuple[float, ...] = (0.01, 0.1, 1.0)
    prior_strength: float = 2.0
    calibration: Calibration = "auto"
    min_quality: float | None = None
    cost_weight: float | None = None
    max_cost: float | None = None
    fallback_model: str | None = None
    min_graded_similarity: float | None = None
    default_output_tokens: float = 256.0
    chars_per_token: float = 4.0
    prompt_overhead_tokens: float = 0.0
    seed: int = 0
    evidence_neighbours: int = 20
    evidence_probe: int = 8
    evidence_temperatures: tuple[float, ...] = (0.03, 0.05, 0.1, 0.15, 0.2, 0.3)
    evidence_strengths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    repeat_reliability: float | None = 0.8
    repeat_reliabilities: tuple[float, ...] = (0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95)
    repeat_min_queries: int = 30

    def __post_init__(self) -> None:
        """Reject values that cannot work."""
        if self.folds < 2:
            raise ConfigError(f"folds must be >= 2, got {self.folds}")
        for label in (
            "ridge_strengths",
            "temperatures",
            "stacker_c",
            "evidence_temperatures",
            "evidence_strengths",
        ):
            grid = getattr(self, label)
            if not grid or any(not math.isfinite(v) or v <= 0 for v in grid):
                raise ConfigError(f"{label} must be a non-empty tuple of positive numbers")
        if min(self.temperatures) < 0.01:
            # exp((cos - 1) / T) stays above float64's smallest normal for T >= 0.01
            raise ConfigError("temperatures must be >= 0.01")
        self._check_graded_stages()
        if self.calibration not in ("auto", "isotonic", "platt", "none"):
            raise ConfigError(f"unknown calibration {self.calibration!r}")
        check_similarity_floor(self.min_graded_similarity)
        if self.prior_strength < 0 or self.chars_per_token <= 0:
            raise ConfigError("prior_strength must be >= 0 and chars_per_token > 0")
        if self.default_output_tokens < 0 or self.prompt_overhead_tokens < 0:
            raise ConfigError("token counts must be >= 0")

    def _check_graded_stages(self) -> None:
        """The graded-neighbour and graded-repeat settings (see `evidence`, `repeats`)."""
        if min(self.evidence_temperatures) < 0.01:
            raise ConfigError("evidence_temperatures must be >= 0.01")
        if self.evidence_neighbours < 0:
            raise ConfigError(f"evidence_neighbours must be >= 0, got {self.evidence_neighbours}")
        if self.evidence_probe < 1:
            raise ConfigError(f"evidence_probe must be >= 1, got {self.evidence_probe}")
        reliabilities = (*self.repeat_reliabilities, self.repeat_reliability or 0.0)
        if not self.repeat_reliabilities or any(not 0.0 <= r <= 1.0 for r in reliabilities):
            raise ConfigError("repeat_reliability and repeat_reliabilities must be in [0, 1]")
        if self.repeat_min_queries < 1:
            raise ConfigError(f"repeat_min_queries must be >= 1, got {self.repeat_min_queries}")

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form (tuples as lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRouterConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown ModelRouterConfig keys: {sorted(unknown)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


def check_similarity_floor(value: float | None) -> float | None:
    """`min_graded_similarity`, checked: None or a cosine in [-1, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
        # NaN fails the range too
        raise ConfigError(f"min_graded_similarity must be a cosine in [-1, 1], got {value}")
    return value


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class ModelOption(NamedTuple):
    """One model as a decision saw it."""

    model: str
    p_success: float
    expected_cost_usd: float


@dataclass(frozen=True)
class ModelChoice:
    """The model picked for one query, and why.

    Attributes:
        model: The chosen model's name.
        p_success: Calibrated probability of a good answer (expected graded quality), per model.
        expected_cost_usd: Expected cost of the chosen model on this query.
        expected_costs_usd: Expected cost of every model on this query.
        alternatives: The other models, in the rule's order of preference.
        rule: "min_quality", "cost_weight" or "max_cost" (the rule that decided), or
            "min_graded_similarity" when the query was too unlike the graded data to apply it.
        fallback: True when the rule could not be met (or not applied) and the documented
            fallback was used.
        input_tokens: Prompt tokens the cost was computed with.
        nearest_graded_similarity: Cosine between the query and the most similar graded query
            (searched in its nearest clusters of graded queries, as the neighbour update
            searches them); None for a router saved before it was kept.
    """

    model: str
    p_success: dict[str, float]
    expected_cost_usd: float
    expected_costs_usd: dict[str, float]
    alternatives: tuple[ModelOption, ...]
    rule: str
    fallback: bool
    input_tokens: float
    nearest_graded_similarity: float | None


@dataclass(frozen=True)
class ModelRoutingReport:
    """What `ModelRouter.fit` learned, with cross-validated figures on the training data.

    Attributes:
        n_queries: Queries with at least one graded model.
        n_graded: Graded queries per model.
        hyperparameters: The values cross-validation chose (per model where it applies).
        cv_brier: Cross-fitted Brier score of p_success, per model.
        cv_ece: Cross-fitted expected calibration error of p_success, per model.
        output_tokens: Expected completion tokens per model after fitting.
        duration_s: Wall time of the fit.
        nearest_graded_similarity: Percentiles ("p1", "p5", "p25", "p50") of each training
            query's cosine to its nearest graded query in the other CV folds: how near graded
            data a query usually is (None: fewer than two graded queries, or an older save).
    """

    n_queries: int
    n_graded: dict[str, int]
    hyperparameters: dict[str, Any]
    cv_brier: dict[str, float]
    cv_ece: dict[str, float]
    output_tokens: dict[str, float]
    duration_s: float
    nearest_graded_similarity: dict[str, float] | None = None
