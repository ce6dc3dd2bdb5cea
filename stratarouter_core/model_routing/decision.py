"""Decision rules over p_success and expected cost, vectorised over a batch of queries.

Rules (at most one of `min_quality` / `cost_weight`; `max_cost` combines with either):

- ``min_quality=q``: the cheapest model with p_success >= q (ties: the higher p_success).
- ``cost_weight=w``: the model maximising p_success - w * cost / (the query's dearest model's
  cost). Costs are relative to the dearest model so that w reads the same for any prices: w
  is the success probability one would give up to go from the dearest model to a free one.
- ``max_cost=c``: only models whose expected cost is <= c USD; alone, the highest p_success.

When nothing qualifies (no model reaches `min_quality`, or none fits `max_cost`) the fallback
is `fallback` if given; otherwise the rule's best effort: for `min_quality`, the highest
p_success among the models within `max_cost` (all models when none fits); for `max_cost`
alone, the cheapest model. Fallback decisions are flagged.

A query unlike every graded one (see `ModelRouterConfig.min_graded_similarity`) is not decided
by the rule, whose p_success there is the predictor's extrapolation: `unfamiliar` picks
`fallback` if given, else the model with the best mean graded quality within `max_cost`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError

__all__ = ["Rule", "decide", "decide_one", "unfamiliar"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Rule:
    """A validated decision rule (see the module docstring)."""

    min_quality: float | None = None
    cost_weight: float | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        """Reject rules that mean nothing."""
        if self.min_quality is not None and self.cost_weight is not None:
            raise ConfigError("give min_quality or cost_weight, not both")
        if self.min_quality is not None and not 0.0 <= self.min_quality <= 1.0:
            raise ConfigError(f"min_quality must be in [0, 1], got {self.min_quality}")
        for label in ("cost_weight", "max_cost"):
            value = getattr(self, label)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"{label} must be a finite number >= 0, got {value}")

    @property
    def name(self) -> str:
        """The rule that decides: min_quality, cost_weight or max_cost."""
        if self.min_quality is not None:
            return "min_quality"
        if self.cost_weight is None and self.max_cost is not None:
            return "max_cost"
        return "cost_weight"


def _allowed(costs: F64, rule: Rule) -> NDArray[np.bool_]:
    if rule.max_cost is None:
        return np.ones(costs.shape, dtype=bool)
    out: NDArray[np.bool_] = costs <= rule.max_cost
    return out


def _utility(p: F64, costs: F64, rule: Rule) -> F64:
    """p - w * relative cost, -inf where `max_cost` excludes the model (cost_weight rules)."""
    weight = rule.cost_weight or 0.0
    dearest = np.maximum(costs.max(axis=1, keepdims=True), 1e-300)
    return np.where(_allowed(costs, rule), p - weight * costs / dearest, -np.inf)


def decide(
    p: F64, costs: F64, rule: Rule, fallback: int | None = None
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Chosen model index per query and whether the fallback was used."""
    if rule.min_quality is not None:
        ok = _allowed(costs, rule) & (p >= rule.min_quality)
        cheapest = np.where(ok, costs, np.inf).min(axis=1, keepdims=True)
        chosen = np.argmax(np.where(ok & (costs <= cheapest), p, -np.inf), axis=1)
        failed = ~ok.any(axis=1)
    else:
        utility = _utility(p, costs, rule)
        chosen = np.argmax(utility, axis=1)
        failed = np.isneginf(utility.max(axis=1))
    failed_rows: NDArray[np.bool_] = np.asarray(failed, dtype=bool)
    out: NDArray[np.int64] = np.asarray(chosen, dtype=np.int64)
    if failed_rows.any():
        out[failed_rows] = _fallback(p[failed_rows], costs[failed_rows], rule, fallback)
    return out, failed_rows


def _fallback(p: F64, costs: F64, rule: Rule, fallback: int | None) -> NDArray[np.int64]:
    if fallback is not None:
        return np.full(len(p), fallback, dtype=np.int64)
    if rule.min_quality is not None:
        within = _allowed(costs, rule).copy()
        within[~within.any(axis=1)] = True  # nothing within budget: consider every model
        best: NDArray[np.int64] = np.argmax(np.where(within, p, -np.inf), axis=1)
        return best
    cheapest: NDArray[np.int64] = np.argmin(costs, axis=1)
    return cheapest


def decide_one(
    p: list[float], costs: list[float], rule: Rule, fallback: int | None = None
) -> tuple[int, bool, list[int]]:
    """`decide` for one query in plain Python (a few models: cheaper than array calls).

    Returns the chosen index, whether the fallback was used, and every index from most to
    least preferred (models the rule accepts first, in its order; then the others by p).
    """
    n = len(p)
    allowed = [True] * n if rule.max_cost is None else [c <= rule.max_cost for c in costs]
    if rule.min_quality is not None:
        accepted = [a and q >= rule.min_quality for a, q in zip(allowed, p)]
        order = sorted(range(n), key=lambda i: (not accepted[i], costs[i], -p[i]))
    else:
        weight = rule.cost_weight or 0.0
        dearest = max(max(costs), 1e-300)
        utility = [q - weight * c / dearest for q, c in zip(p, costs)]
        accepted = allowed
        order = sorted(range(n), key=lambda i: (not accepted[i], -utility[i], -p[i]))
    if accepted[order[0]]:
        return order[0], False, order
    return _fallback_one(p, costs, allowed, rule, fallback), True, order


def _fallback_one(
    p: list[float], costs: list[float], allowed: list[bool], rule: Rule, fallback: int | None
) -> int:
    if fallback is not None:
        return fallback
    if rule.min_quality is not None:
        pool = [i for i, a in enumerate(allowed) if a] or list(range(len(p)))
        return max(pool, key=lambda i: (p[i], -i))
    return min(range(len(costs)), key=lambda i: (costs[i], i))


def unfamiliar(
    mean_quality: list[float], costs: list[float], rule: Rule, fallback: int | None = None
) -> int:
    """The model for a query unlike the graded data: `fallback`, else the best `mean_quality`
    among the models within `max_cost` (every model when none fits), the cheaper on ties."""
    if fallback is not None:
        return fallback
    n = len(costs)
    pool = [i for i in range(n) if rule.max_cost is None or costs[i] <= rule.max_cost]
    return max(pool or range(n), key=lambda i: (mean_quality[i], -costs[i], -i))
