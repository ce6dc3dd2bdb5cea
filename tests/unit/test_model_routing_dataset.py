"""ModelRouter on the real graded data set (9 models, LLMRouter's dcrouter split)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stratarouter_core import ModelRouter, ModelSpec
from stratarouter_core.model_routing import Rule, decide
from stratarouter_core.testing import HashingEncoder

pytestmark = pytest.mark.dataset


class _Vectors(HashingEncoder):
    """Stands in for MiniLM: every vector is passed explicitly, nothing is encoded."""

    def __init__(self) -> None:
        super().__init__(dimension=384)


def test_beats_the_best_single_model_at_equal_cost(datasets_dir) -> None:
    data = json.loads((datasets_dir / "model_routing.json").read_text())
    vectors = np.load(datasets_dir / "model_routing.minilm.npz")
    names = list(data["models"])
    models = [
        ModelSpec(n, p["input_usd_per_mtok"], p["output_usd_per_mtok"])
        for n, p in data["models"].items()
    ]
    train = data["train"][:2500]  # a subset keeps the test quick
    router = ModelRouter(models, encoder=_Vectors())
    report = router.fit([q for q, _ in train], [s for _, s in train], vectors["train"][:2500])
    assert report.duration_s < 30
    test_queries = [q for q, _ in data["test"]]
    truth = np.array([[s[n] for n in names] for _, s in data["test"]])
    p = router.predict_proba(test_queries, vectors["test"])
    price = np.array([(m.input_usd_per_mtok + m.output_usd_per_mtok) / 2 for m in models])
    train_means = np.array([[s[n] for n in names] for _, s in train]).mean(axis=0)
    best = int(np.argmax(train_means))
    rows = np.arange(len(truth))
    best_at_cost = 0.0
    for weight in np.concatenate([[0.0], np.logspace(-3, 1, 60)]):
        chosen, _ = decide(p, np.broadcast_to(price, p.shape), Rule(cost_weight=float(weight)))
        if price[chosen].mean() <= price[best]:
            best_at_cost = max(best_at_cost, float(truth[rows, chosen].mean()))
    assert best_at_cost > truth[:, best].mean() + 0.01
    assert max(report.cv_ece.values()) < 0.05
