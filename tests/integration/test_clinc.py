"""On real data (CLINC150 with all-MiniLM-L6-v2 vectors): fast paths, fit, calibration.

Uses a subset so the suite stays quick; the full figures come from `stratarouter bench`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stratarouter_bench.datasets import PrecomputedEncoder, Split, load_intent_dataset

from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.calibration import expected_calibration_error
from stratarouter_core.config import IndexConfig

pytestmark = pytest.mark.dataset


@pytest.fixture(scope="module")
def clinc(datasets_dir: Path) -> dict[str, Split]:
    data = load_intent_dataset(datasets_dir / "clinc150.json", datasets_dir / "clinc150.minilm.npz")
    return {name: data.split(name) for name in ("train", "val", "test")}


def make_router(clinc: dict[str, Split], k: int, **config: object) -> Router:
    every = clinc["train"] + clinc["val"] + clinc["test"]
    assert every.vectors is not None
    encoder = PrecomputedEncoder(every.texts, every.vectors, "all-MiniLM-L6-v2")
    train = clinc["train"].first_per_label(k)
    grouped: dict[str, list[str]] = {}
    for text, label in zip(train.texts, train.labels):
        grouped.setdefault(str(label), []).append(text)
    router = Router(
        encoder=encoder,
        config=RouterConfig(**config),  # type: ignore[arg-type]
        routes=[Route(name=n, examples=e) for n, e in grouped.items()],
    )
    router.build_index()
    return router


def sample(split: Split, n: int, seed: int = 0) -> Split:
    rows = np.random.default_rng(seed).permutation(len(split.texts))[:n]
    assert split.vectors is not None
    return Split(
        [split.texts[i] for i in rows], [split.labels[i] for i in rows], split.vectors[rows]
    )


def test_default_router_is_accurate(clinc: dict[str, Split]) -> None:
    router = make_router(clinc, k=30)
    test = sample(clinc["test"], 1500)
    results = router.route_batch(test.texts, test.vectors)
    in_scope = [(r, y) for r, y in zip(results, test.labels) if y is not None]
    accuracy = np.mean([r.top.route_id == y for r, y in in_scope if r.top])
    assert accuracy > 0.88  # nearest centroid alone is ~0.90 at 30 examples


def test_hnsw_and_pruning_agree_with_exact_scoring(clinc: dict[str, Split]) -> None:
    exact = make_router(clinc, k=20)
    fast = make_router(clinc, k=20, max_candidates=32, index=IndexConfig(exact_max_routes=10))
    # The same calibration on both (each calibrates from its own scored routes at build time),
    # so a differing decision can only come from the preselection.
    fast.install_model(exact.model)
    test = sample(clinc["test"], 2000, seed=1)
    a = [r.route_id for r in exact.route_batch(test.texts, test.vectors)]
    b = [r.route_id for r in fast.route_batch(test.texts, test.vectors)]
    tops = [r.top.route_id for r in exact.route_batch(test.texts, test.vectors)]
    fast_tops = [r.top.route_id for r in fast.route_batch(test.texts, test.vectors)]
    assert np.mean(np.array(tops) != np.array(fast_tops)) <= 0.002
    # Decisions near the threshold may flip: the softmax normaliser misses pruned routes.
    assert np.mean(np.array(a) != np.array(b)) <= 0.01


@pytest.fixture(scope="module")
def fitted(clinc: dict[str, Split]) -> tuple[Router, object]:
    router = make_router(clinc, k=10)
    val = sample(clinc["val"], 1200, seed=2) + Split(*_oos(clinc["val"]))
    report = router.fit(val.texts, val.labels, val.vectors, folds=2, max_iter=150)
    return router, report


def _oos(split: Split) -> tuple[list[str], list[str | None], np.ndarray]:
    rows = [i for i, y in enumerate(split.labels) if y is None]
    assert split.vectors is not None
    return [split.texts[i] for i in rows], [None] * len(rows), split.vectors[rows]


def test_fit_improves_accuracy_and_calibrates(
    clinc: dict[str, Split], fitted: tuple[Router, object]
) -> None:
    router, _ = fitted
    unfitted = make_router(clinc, k=10)
    test = sample(clinc["test"], 3000, seed=3)
    in_scope = np.array([y is not None for y in test.labels])

    def top1_and_ece(r: Router) -> tuple[float, float]:
        results = r.route_batch(test.texts, test.vectors)
        right = np.array(
            [x.top is not None and x.top.route_id == y for x, y in zip(results, test.labels)]
        )
        conf = np.array([x.confidence for x in results])
        return right[in_scope].mean(), expected_calibration_error(conf[in_scope], right[in_scope])

    before, after = top1_and_ece(unfitted), top1_and_ece(router)
    assert after[0] > before[0] + 0.01
    assert after[1] < before[1] and after[1] < 0.05


def test_threshold_objectives_are_honoured_on_held_out(fitted: tuple[Router, object]) -> None:
    _, report = fitted
    held = report.held_out  # type: ignore[attr-defined]
    for target in (0.5, 0.8):
        t = report.threshold_for("oos_recall", target)  # type: ignore[attr-defined]
        assert (held.confidence[held.out_of_scope] < t).mean() >= target
    t = report.threshold_for("precision", 0.97)  # type: ignore[attr-defined]
    accepted = held.confidence >= t
    assert held.correct[accepted].mean() >= 0.97
    t = report.threshold_for("in_scope_loss", 0.02)  # type: ignore[attr-defined]
    in_scope = ~held.out_of_scope
    lost = ((held.confidence < t) & (held.correct == 1) & in_scope).sum() / in_scope.sum()
    assert lost <= 0.02


def test_out_of_scope_rate_moves_the_threshold(fitted: tuple[Router, object]) -> None:
    _, report = fitted
    low = report.threshold_for("accuracy", expected_oos_rate=0.01)  # type: ignore[attr-defined]
    high = report.threshold_for("accuracy", expected_oos_rate=0.3)  # type: ignore[attr-defined]
    assert high > low


def test_fitted_router_rejects_out_of_scope(
    clinc: dict[str, Split], fitted: tuple[Router, object]
) -> None:
    router, report = fitted
    router.set_threshold(report.threshold_for("in_scope_loss", 0.02))  # type: ignore[attr-defined]
    oos = Split(*_oos(clinc["test"]))
    results = router.route_batch(
        oos.texts[:500], oos.vectors[:500] if oos.vectors is not None else None
    )
    assert np.mean([r.route_id is None for r in results]) > 0.5


def test_route_matches_route_batch_on_the_fitted_router(
    clinc: dict[str, Split], fitted: tuple[Router, object]
) -> None:
    """route() takes scalar shortcuts for a single query; they must not change any result."""
    router, _ = fitted
    test = sample(clinc["test"], 300, seed=4)
    assert test.vectors is not None
    batch = router.route_batch(test.texts, test.vectors)
    for text, vector, batched in zip(test.texts, test.vectors, batch):
        one = router.route(text, vector)
        assert one.route_id == batched.route_id
        assert [c.route_id for c in one.candidates] == [c.route_id for c in batched.candidates]
        np.testing.assert_allclose(
            [c.confidence for c in one.candidates],
            [c.confidence for c in batched.candidates],
            atol=1e-5,
        )
