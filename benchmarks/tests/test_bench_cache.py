"""`stratarouter bench cache` on a hand-made pairs file with a fake encoder whose cosines we set."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError
from stratarouter_runtime.guard import QueryGuard

from stratarouter_bench import cache as bench_cache

# (cached query q1, incoming query q2, is duplicate, cosine the fake encoder gives the pair)
PAIRS = [
    ("how do I reset my password", "how can I reset my password", 1, 0.99),  # hit, correct
    ("cancel my order", "don't cancel my order", 0, 0.99),  # plain false hit; guard vetoes
    ("How do I lose weight fast?", "What is the fastest way to lose weight?", 1, 0.93),  # hit
    ("best pizza in town", "where to get good pizza in town", 1, 0.85),  # missed (below 0.9)
    ("how tall is the tower", "how tall is the bridge", 0, 0.97),  # false hit for both
    ("what is 2+3", "what is 2+5", 0, 0.96),  # plain false hit; guard vetoes
    ("best restaurants in Vancouver", "best restaurants in downtown Vancouver", 0, 0.93),  # model
]


class PairEncoder(BaseEncoder):
    """Puts q1 on one axis of its own plane and q2 at the pair's cosine from it."""

    def __init__(self, pairs=PAIRS) -> None:
        self.dimension = 2 * len(pairs)
        self.encoded = 0
        self.vectors: dict[str, np.ndarray] = {}
        for i, (q1, q2, _, cosine) in enumerate(pairs):
            a = np.zeros(self.dimension, dtype=np.float32)
            b = np.zeros(self.dimension, dtype=np.float32)
            a[2 * i] = 1.0
            b[2 * i], b[2 * i + 1] = cosine, np.sqrt(1 - cosine**2)
            self.vectors[q1], self.vectors[q2] = a, b

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += len(texts)
        return np.stack([self.vectors[t] for t in texts])


def write_pairs(path: Path, pairs) -> Path:
    path.write_text(json.dumps({
        "name": "hand-made", "source": "tests", "license": "CC0", "note": "cosines are set",
        "pairs": [[q1, q2, label] for q1, q2, label, _ in pairs],
    }))
    return path


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "pairs.json", PAIRS)


def parse(argv: list[str], encoder: BaseEncoder) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stratarouter bench")
    bench_cache.register(parser.add_subparsers(dest="bench", required=True))
    args = parser.parse_args(["cache", *argv])
    args.make_encoder = lambda: encoder
    return args


def run_json(argv: list[str], encoder: BaseEncoder, capsys) -> dict:
    args = parse([*argv, "--json"], encoder)
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "--json prints exactly one JSON object"
    return json.loads(out)


def test_json_report_on_all_pairs(pairs_file: Path, capsys, tmp_path: Path) -> None:
    report = run_json(["--pairs", str(pairs_file), "--split", "all", "--cache-dir",
                       str(tmp_path / "emb")], PairEncoder(), capsys)
    assert report["default_threshold"] == 0.9
    # cache: hits = pairs 1, 3, 5 -> 2 correct of 3 hits; 2 of the 3 duplicates found
    assert report["cache"]["hits"] == 3
    assert report["cache"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["cache"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    # plain cosine: hits = pairs 1, 2, 3, 5, 6, 7 -> 2 correct of 6 hits
    assert report["plain_cosine"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["plain_cosine"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["vetoes"] == {
        "model": {"vetoed": 1, "false_hits_avoided": 1},  # pair 7 (6 is the numbers check's)
        "negation": {"vetoed": 1, "false_hits_avoided": 1},
        "numbers": {"vetoed": 1, "false_hits_avoided": 1},
    }
    assert "default_by_half" not in report and list(report["table"]) == ["all"]


def test_table_rows_follow_the_thresholds(pairs_file: Path, capsys) -> None:
    report = run_json(["--pairs", str(pairs_file), "--split", "all", "--no-cache",
                       "--thresholds", "0.85,0.98"], PairEncoder(), capsys)
    low, high = report["table"]["all"]
    assert (low["threshold"], high["threshold"]) == (0.85, 0.98)
    assert low["plain"]["hits"] == 7 and low["plain"]["recall"] == 1.0
    assert low["cache"]["hits"] == 3  # negation, number change, qualifier, pair 4 at 0.85
    assert high["plain"]["hits"] == 2 and high["plain"]["precision"] == 0.5
    assert high["cache"] == {"threshold": 0.98, "hits": 1, "correct": 1, "precision": 1.0,
                             "recall": round(1 / 3, 4)}


def test_half_split_reports_the_default_on_each_half(pairs_file: Path, capsys) -> None:
    report = run_json(["--pairs", str(pairs_file), "--no-cache"], PairEncoder(), capsys)
    assert list(report["table"]) == ["held_out", "all"]
    by_half = report["default_by_half"]
    # even pairs 1, 3, 5, 7 (duplicates: 1, 3): all plain hits; the model vetoes pair 7
    assert by_half["fit_half"]["plain"]["precision"] == 0.5
    assert by_half["fit_half"]["lexical_checks"]["precision"] == 0.5
    assert by_half["fit_half"]["cache"] == {"threshold": 0.9, "hits": 3, "correct": 2,
                                            "precision": round(2 / 3, 4), "recall": 1.0}
    # odd pairs 2, 4, 6 (duplicate: 4, below the threshold): plain hits 2 and 6, both false
    assert by_half["held_out"]["plain"]["precision"] == 0.0
    assert by_half["held_out"]["cache"]["hits"] == 0
    assert by_half["all"]["cache"] == report["cache"]


def test_embeddings_are_cached_by_file_content(pairs_file: Path, capsys, tmp_path: Path) -> None:
    encoder = PairEncoder()
    argv = ["--pairs", str(pairs_file), "--cache-dir", str(tmp_path / "emb")]
    first = run_json(argv, encoder, capsys)
    assert encoder.encoded == 14 and len(list((tmp_path / "emb").glob("*.npz"))) == 1
    second = run_json(argv, encoder, capsys)
    assert encoder.encoded == 14 and first == second
    pairs_file.write_text(pairs_file.read_text().replace("hand-made", "edited"))
    run_json(argv, encoder, capsys)
    assert encoder.encoded == 28  # new content, new cache file


def test_text_table(pairs_file: Path, capsys) -> None:
    args = parse(["--pairs", str(pairs_file), "--no-cache"], PairEncoder())
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "plain cosine P / R" in out and "held out" in out
    assert "default configuration (threshold 0.9, all pairs): cache P/R 0.667 / 0.667" in out
    assert "lexical checks" in out


@pytest.mark.parametrize("pairs", [[["a", "b", 2]], [["a", 1, 0]], [], "nope"])
def test_malformed_files_are_config_errors(tmp_path: Path, pairs) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "pairs": pairs}))
    with pytest.raises(ConfigError):
        bench_cache.load_pairs(path)


def test_threshold_list_is_validated() -> None:
    with pytest.raises(SystemExit):
        parse(["--pairs", "x.json", "--thresholds", "0.9,abc"], PairEncoder())
    with pytest.raises(SystemExit):
        parse(["--pairs", "x.json", "--thresholds", "1.5"], PairEncoder())


def synthetic_pairs(n: int = 120):
    """Paraphrases reworded at a middling cosine are duplicates; a rare word added to the same
    words at the same cosine is not; both kinds also appear at a high cosine, as duplicates."""
    pairs = []
    for i in range(n):
        thing = f"widget{i}"
        if i % 3 == 0:
            pairs.append((f"how do I fix my {thing}", f"what is the way to repair a {thing}", 1,
                          0.92 + 0.0001 * i))
        elif i % 3 == 1:
            pairs.append((f"how do I fix my {thing}", f"how do I fix my {thing} underwater", 0,
                          0.92 + 0.0001 * i))
        else:
            pairs.append((f"how do I fix my {thing}", f"how can I fix my {thing}", 1, 0.99))
    return pairs


@pytest.fixture
def vocabulary(local_encoder):
    """--fit reads the vocabulary shipped with the local encoder's files."""


def test_fit_learns_the_model_on_the_even_half_only(vocabulary) -> None:
    pairs = synthetic_pairs()
    data = bench_cache.PairSet([p[:3] for p in pairs], np.array([p[3] for p in pairs]))
    fit = np.arange(len(pairs)) % 2 == 0
    found = bench_cache.fit_guard(data, fit, min_recall=0.5)
    _, overlap, _ = found.model.weights
    assert overlap < 0  # shared words at a middling cosine: the differing word matters
    assert found.fit_half["precision"] == 1.0 and found.held_out["precision"] == 1.0
    guard = QueryGuard(model=found.model)
    assert guard.accepts("how do I fix my gadget", "what is the way to repair a gadget", 0.92)
    assert not guard.accepts("how do I fix my gadget", "how do I fix my gadget underwater", 0.92)
    # flipping every held-out label changes nothing that was learned
    flipped = bench_cache.PairSet(
        [(a, b, label if i % 2 == 0 else not label) for i, (a, b, label) in enumerate(data.pairs)],
        data.similarity,
    )
    again = bench_cache.fit_guard(flipped, fit, min_recall=0.5)
    assert (again.model, again.threshold) == (found.model, found.threshold)


def test_fit_command_prints_a_configuration_to_pass(vocabulary, tmp_path: Path, capsys) -> None:
    pairs = synthetic_pairs()
    path = write_pairs(tmp_path / "synthetic.json", pairs)
    args = parse(["--pairs", str(path), "--no-cache", "--fit", "--min-recall", "0.5"],
                 PairEncoder(pairs))
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "guard = QueryGuard(model=SoftModel(" in out and "similarity_threshold = " in out
    assert "DEFAULT_MODEL" not in out  # a user's configuration, never a library default
    assert "held-out half 1.000 / " in out
    report = run_json(["--pairs", str(path), "--no-cache", "--fit", "--min-recall", "0.5"],
                      PairEncoder(pairs), capsys)
    assert report["features"] == ["cosine", "overlap", "differing"]
    assert set(report["calibration"]) == {"fit_half", "held_out"}
