"""`stratarouter bench model-routing` end to end on a small synthetic graded data set."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from stratarouter_core.cli.main import main
from stratarouter_core.errors import ConfigError

from stratarouter_bench import model_routing

DIM = 16


def _write(tmp_path, n_train: int = 600, n_test: int = 200):
    """big is right 85% of the time everywhere; small only where x0 > 0; mid where x1 > 0."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.normal(size=(n, DIM)).astype(np.float32)
        truth = np.stack(
            [np.full(n, 0.85), np.where(x[:, 1] > 0, 0.9, 0.2), np.where(x[:, 0] > 0, 0.9, 0.1)],
            axis=1,
        )
        grades = (rng.random(truth.shape) < truth).astype(float)
        rows = [
            [f"{split} query {i}", dict(zip(["big", "mid", "small"], g.tolist()))]
            for i, g in enumerate(grades)
        ]
        out[split] = (rows, x)
    models = {
        "big": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 10.0},
        "mid": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0},
        "small": {"input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.1},
    }
    dataset = tmp_path / "graded.json"
    dataset.write_text(
        json.dumps({"name": "synthetic", "models": models, **{s: r for s, (r, _) in out.items()}})
    )
    vectors = tmp_path / "graded.npz"
    np.savez(vectors, train=out["train"][1], test=out["test"][1], model=np.array("fake"))
    return dataset, vectors


def test_json_report_and_plot(tmp_path, capsys) -> None:
    dataset, vectors = _write(tmp_path)
    plot = tmp_path / "curve.png"
    args = ["bench", "model-routing", "--dataset", str(dataset), "--embeddings", str(vectors)]
    assert main([*args, "--json", "--plot", str(plot)]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = {r["method"].split(" (")[0]: r for r in payload["rows"]}
    assert set(rows) == {
        "best single",
        "random mix",
        "oracle",
        "kNN",
        "logistic regression per model",
        "ModelRouter, stacked predictor only",
        "ModelRouter without graded repeats",
        "StrataRouter ModelRouter",
    }
    assert payload["best_single"] == "big" and payload["pair"] == ["big", "mid"]
    ours, oracle, best = (
        rows["StrataRouter ModelRouter"],
        rows["oracle"],
        payload["best_single_quality"],
    )
    # sending x0 > 0 to small and x1 > 0 to mid keeps big's quality for much less
    assert ours["quality_at_best_cost"] > best
    assert ours["cost_saved_at_best_quality"] > 0.3
    assert oracle["avg_acc"] >= ours["avg_acc"] and oracle["gap_at_oracle"] == 0.0
    assert ours["gap_at_oracle"] == pytest.approx(
        (oracle["avg_acc"] - ours["avg_acc"]) / oracle["avg_acc"]
    )
    assert set(ours["ece"]) == {"big", "mid", "small"} and ours["max_ece"] < 0.2
    assert set(ours["ece_floor"]) == set(ours["ece"]) == set(ours["ece_p_value"])
    assert all(0.0 < v < 0.2 for v in ours["ece_floor"].values())
    assert payload["repeats_dropped"] is False and payload["n_test"] == 200
    assert ours["apgr"] > 0.5 and ours["cpt80"] is not None
    assert rows["random mix"]["cost_saved_at_best_quality"] == pytest.approx(0.0)
    assert payload["route_p50_us"] > 0 and plot.stat().st_size > 10_000
    assert payload["route_p50_local_tokenizer_us"] > 0  # the local extra is installed here
    bands = payload["by_nearest_graded_similarity"]
    assert [b["band"] for b in bands] == ["below p5", "p5 to p25", "p25 to p50", "above p50"]
    assert sum(b["n"] for b in bands) == 200
    # cut at the training percentiles: about 5%, 20%, 25% and 50% of queries like the training
    assert 0 < bands[0]["n"] < bands[1]["n"] < bands[3]["n"]
    # the predictor beats each model's mean grade where the graded data is near
    assert bands[3]["brier"] < bands[3]["base_rate_brier"]


def test_table_output(tmp_path, capsys) -> None:
    dataset, vectors = _write(tmp_path, n_train=300, n_test=80)
    args = ["bench", "model-routing", "--dataset", str(dataset), "--embeddings", str(vectors)]
    assert main([*args, "--pair", "mid,small"]) == 0
    out = capsys.readouterr().out
    assert "pair mid vs small" in out and "| StrataRouter ModelRouter |" in out
    assert "ECE of p_success per model" in out and "| floor |" in out and "| p-value |" in out
    assert "nearest graded cosine" in out and "| above p50 |" in out and "p25 0." in out


def test_drop_repeats_scores_only_new_test_queries(tmp_path, capsys) -> None:
    dataset, vectors = _write(tmp_path, n_train=300, n_test=80)
    raw = json.loads(dataset.read_text())
    for i in range(30):  # 30 test queries repeat a training query's text
        raw["test"][i][0] = raw["train"][i][0]
    dataset.write_text(json.dumps(raw))
    args = ["bench", "model-routing", "--dataset", str(dataset), "--embeddings", str(vectors)]
    assert main([*args, "--json", "--drop-repeats"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["repeats_dropped"] is True and payload["n_test"] == 50


def test_ece_floor_tells_calibrated_from_miscalibrated() -> None:
    rng = np.random.default_rng(5)
    p = rng.random((400, 1))
    honest = (rng.random((400, 1)) < p).astype(float)
    floor, p_value = model_routing._ece_floor(p, honest, ["m"])
    assert 0.02 < floor["m"] < 0.1 and p_value["m"] > 0.05
    _, p_value = model_routing._ece_floor(p, 1.0 - honest, ["m"])  # confidently wrong
    assert p_value["m"] == 0.0


def test_pair_helpers() -> None:
    strong, weak = np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0])
    # a perfect ranking recovers the whole gap after 2 of 4 strong calls
    apgr, cpt50, cpt80 = model_routing._apgr_cpt(strong - weak, strong, weak)
    assert cpt50 == pytest.approx(0.25) and cpt80 == pytest.approx(0.5)
    # PGR 0, .5, 1, 1, 1 at 0, 25, 50, 75, 100% strong calls: trapezoid area 0.75
    assert apgr == pytest.approx(0.75)
    hull = model_routing._hull([(0.1, 0.2), (0.5, 0.3), (1.0, 0.9)])
    assert hull == [(0.1, 0.2), (1.0, 0.9)]  # (0.5, 0.3) lies below the mix of the other two


def test_models_and_train_sample_restrict_every_method(tmp_path, capsys) -> None:
    dataset, vectors = _write(tmp_path, n_train=300, n_test=80)
    args = ["bench", "model-routing", "--dataset", str(dataset), "--embeddings", str(vectors)]
    assert main([*args, "--models", "big,small", "--train-sample", "120", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["models"] == ["big", "small"] and payload["n_train"] == 120
    assert payload["pair"] == ["big", "small"]
    ours = next(r for r in payload["rows"] if r["method"] == "StrataRouter ModelRouter")
    assert set(ours["ece"]) == {"big", "small"}


@pytest.mark.parametrize("spec", ["big", "big,big", "big,huge"])
def test_models_must_be_two_or_more_known_ones(tmp_path, spec) -> None:
    data = model_routing.load_graded(*_write(tmp_path, n_train=60, n_test=20))
    with pytest.raises(ConfigError, match="--models"):
        model_routing._only_models(data, spec)


@pytest.mark.parametrize("size", [5, 61])
def test_train_sample_must_fit_the_training_split(tmp_path, size) -> None:
    data = model_routing.load_graded(*_write(tmp_path, n_train=60, n_test=20))
    with pytest.raises(ConfigError, match="--train-sample"):
        model_routing._train_sample(data, size, seed=0)


def test_knn_baseline_falls_back_to_the_mean_where_no_neighbour_is_graded(tmp_path) -> None:
    data = model_routing.load_graded(*_write(tmp_path, n_train=60, n_test=40))
    scores = data.train_scores.copy()
    scores[:55, 2] = np.nan  # "small" graded on the last 5 training queries only
    sparse = dataclasses.replace(data, train_scores=scores)
    predicted = model_routing._knn(sparse)  # no "mean of empty slice" warning (an error here)
    sims = model_routing._unit(data.test_vectors) @ model_routing._unit(data.train_vectors).T
    nearest = np.argsort(-sims, axis=1)[:, :20]
    graded = nearest >= 55
    assert graded.any(axis=1).any() and not graded.any(axis=1).all()  # both cases occur
    for row, hits in zip(range(len(nearest)), graded):
        expected = scores[nearest[row][hits], 2].mean() if hits.any() else np.nanmean(scores[:, 2])
        assert predicted[row, 2] == pytest.approx(expected)


def test_knn_baseline_in_blocks_of_test_rows_gives_the_same_neighbours(
    tmp_path, monkeypatch
) -> None:
    data = model_routing.load_graded(*_write(tmp_path, n_train=60, n_test=40))
    whole = model_routing._knn(data)
    monkeypatch.setattr(model_routing, "_KNN_BLOCK", 7 * 60)  # blocks of 7 test rows
    np.testing.assert_array_equal(model_routing._knn(data), whole)


def test_pair_with_equal_prices_takes_the_best_other_model(tmp_path) -> None:
    data = model_routing.load_graded(*_write(tmp_path, n_train=60, n_test=20))
    same = tuple(
        dataclasses.replace(m, input_usd_per_mtok=1.0, output_usd_per_mtok=1.0) for m in data.models
    )
    strong, weak = model_routing._pair(dataclasses.replace(data, models=same), None)
    means = np.nanmean(data.train_scores, axis=0)
    assert strong == int(np.argmax(means))
    assert weak == max((m for m in range(3) if m != strong), key=lambda m: means[m])


def test_an_empty_split_is_a_config_error(tmp_path) -> None:
    dataset, vectors = _write(tmp_path, n_train=60, n_test=20)
    raw = json.loads(dataset.read_text())
    raw["test"] = []
    dataset.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="test split is empty"):
        model_routing.load_graded(dataset, vectors)


def test_add_graded_rows_beside_the_full_fit(tmp_path, capsys) -> None:
    dataset, vectors = _write(tmp_path, n_train=600)
    # the test split repeats every training query: held-back grades then show in its figures
    data = json.loads(dataset.read_text())
    dataset.write_text(json.dumps({**data, "test": data["train"]}))
    with np.load(vectors) as arrays:
        np.savez(vectors, train=arrays["train"], test=arrays["train"], model=arrays["model"])
    args = ["bench", "model-routing", "--dataset", str(dataset), "--embeddings", str(vectors)]
    assert main([*args, "--json", "--add-graded", "400", "--seed", "1"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in payload["rows"]}
    before, after = rows["ModelRouter fitted on 200"], rows["... then add_graded of the other 400"]
    # the held-back grades reach the router, as the repeats they are
    assert after["avg_acc"] > before["avg_acc"] + 0.05 and payload["add_graded_seconds"] > 0.0
    with pytest.raises(ConfigError, match="--add-graded 590"):
        model_routing._held_back(model_routing.load_graded(dataset, vectors), 590, seed=0)
