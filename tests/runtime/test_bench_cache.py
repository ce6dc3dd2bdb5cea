"""`stratarouter bench cache` on a hand-made pairs file with a fake encoder whose cosines we set."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from stratarouter_core.cli import bench_cache
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError

# (cached query q1, incoming query q2, is duplicate, cosine the fake encoder gives the pair)
PAIRS = [
    ("how do I reset my password", "how can I reset my password", 1, 0.99),  # hit, correct
    ("cancel my order", "don't cancel my order", 0, 0.99),  # plain false hit; guard vetoes
    ("what is the capital of France", "what's the capital of France", 1, 0.96),  # hit, correct
    ("best pizza in town", "where to get good pizza in town", 1, 0.90),  # missed (below 0.945)
    ("how tall is the tower", "how tall is the bridge", 0, 0.97),  # false hit for both
    ("what is 2+3", "what is 2+5", 0, 0.96),  # plain false hit; guard vetoes
]


class PairEncoder(BaseEncoder):
    """Puts q1 on one axis of its own plane and q2 at the pair's cosine from it."""

    dimension = 2 * len(PAIRS)

    def __init__(self) -> None:
        self.encoded = 0
        self.vectors: dict[str, np.ndarray] = {}
        for i, (q1, q2, _, cosine) in enumerate(PAIRS):
            a = np.zeros(self.dimension, dtype=np.float32)
            b = np.zeros(self.dimension, dtype=np.float32)
            a[2 * i] = 1.0
            b[2 * i], b[2 * i + 1] = cosine, np.sqrt(1 - cosine**2)
            self.vectors[q1], self.vectors[q2] = a, b

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += len(texts)
        return np.stack([self.vectors[t] for t in texts])


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({
        "name": "hand-made", "source": "tests", "license": "CC0", "note": "cosines are set",
        "pairs": [[q1, q2, label] for q1, q2, label, _ in PAIRS],
    }))
    return path


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
    assert report["default_threshold"] == 0.945
    # cache: hits = pairs 1, 3, 5 -> 2 correct of 3 hits; 2 of the 3 duplicates found
    assert report["cache"]["hits"] == 3
    assert report["cache"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["cache"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    # plain cosine: hits = pairs 1, 2, 3, 5, 6 -> 2 correct of 5 hits
    assert report["plain_cosine"]["precision"] == pytest.approx(0.4)
    assert report["plain_cosine"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["vetoes"] == {
        "negation": {"vetoed": 1, "false_hits_avoided": 1},
        "numbers": {"vetoed": 1, "false_hits_avoided": 1},
    }
    assert "fit" not in report and list(report["table"]) == ["all"]


def test_table_rows_follow_the_thresholds(pairs_file: Path, capsys) -> None:
    report = run_json(["--pairs", str(pairs_file), "--split", "all", "--no-cache",
                       "--thresholds", "0.85,0.98"], PairEncoder(), capsys)
    low, high = report["table"]["all"]
    assert (low["threshold"], high["threshold"]) == (0.85, 0.98)
    assert low["plain"]["hits"] == 6 and low["plain"]["recall"] == 1.0
    assert low["cache"]["hits"] == 4  # the guard vetoes the negation and the number change
    assert high["plain"]["hits"] == 2 and high["plain"]["precision"] == 0.5
    assert high["cache"] == {"threshold": 0.98, "hits": 1, "correct": 1, "precision": 1.0,
                             "recall": round(1 / 3, 4)}


def test_half_split_fits_on_even_pairs_and_reports_odd_ones(pairs_file: Path, capsys) -> None:
    report = run_json(["--pairs", str(pairs_file), "--no-cache", "--target-precision", "0.99"],
                      PairEncoder(), capsys)
    assert list(report["table"]) == ["held_out", "all"]
    # even pairs: 0 (dup, 0.99), 2 (dup, 0.96), 4 (non-dup, 0.97, accepted by the guard)
    assert report["fit"]["threshold"] == 0.975  # lowest grid step keeping pair 4 out
    assert report["fit"]["fit_half"]["precision"] == 1.0
    # odd pairs: 1 (vetoed), 3 (dup, 0.90), 5 (vetoed): no hit at 0.975
    assert report["fit"]["held_out"]["hits"] == 0
    assert report["fit"]["held_out"]["precision"] is None


def test_embeddings_are_cached_by_file_content(pairs_file: Path, capsys, tmp_path: Path) -> None:
    encoder = PairEncoder()
    argv = ["--pairs", str(pairs_file), "--cache-dir", str(tmp_path / "emb")]
    first = run_json(argv, encoder, capsys)
    assert encoder.encoded == 12 and len(list((tmp_path / "emb").glob("*.npz"))) == 1
    second = run_json(argv, encoder, capsys)
    assert encoder.encoded == 12 and first == second
    pairs_file.write_text(pairs_file.read_text().replace("hand-made", "edited"))
    run_json(argv, encoder, capsys)
    assert encoder.encoded == 24  # new content, new cache file


def test_text_table(pairs_file: Path, capsys) -> None:
    args = parse(["--pairs", str(pairs_file), "--no-cache"], PairEncoder())
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "plain cosine P / R" in out and "held out" in out
    assert "default configuration (threshold 0.945, all pairs): cache P/R 0.667 / 0.667" in out


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
