"""`stratarouter bench runtime` on small synthetic workloads (and on the shared data in CI).

The figures must add up: every request is a hit, a shared call or a provider call; the calls
the command reports are the calls the fake server counted; a workload built to have no wrong
answer shows none; near-miss pairs come out as misses or as counted wrong hits. Timings are
never asserted.
"""

from __future__ import annotations

import argparse
import doctest
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from stratarouter_core.cli.main import main
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError
from stratarouter_runtime import RuntimeConfig

from stratarouter_bench import _runtime_workload
from stratarouter_bench import runtime as bench_runtime
from stratarouter_bench._runtime_workload import Labels, build_workload

pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")

DIM = 64
INTENTS = [f"intent_{i}" for i in range(6)]
TOPICS = ["tea", "jazz", "maps", "bikes", "clouds", "chess", "rivers", "boats", "paint", "salt"]
DUPLICATES = [  # same question, other words: the fake encoder gives both one vector
    (f"how do i get better at {t}", f"what is the way to get better at {t}", 1) for t in TOPICS
]
NEAR_MISSES = [  # look alike, need other answers
    (f"who invented the first {t}", f"who sold the first {t}", 0) for t in TOPICS
] + [("where can i buy a cheap laptop", "where can i buy a cheap laptop?", 0)]


def _unit(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class PairEncoder(BaseEncoder):
    """Random unit vectors per text (near-orthogonal), except the pairs it is told about."""

    dimension = DIM

    def __init__(self, pairs: Sequence[tuple[str, str, int]], near_miss_cosine: float) -> None:
        self.encoded = 0
        self.vectors: dict[str, np.ndarray] = {}
        for q1, q2, duplicate in pairs:
            a, noise = _unit(q1), _unit(q2)
            cosine = 1.0 if duplicate else near_miss_cosine
            b = cosine * a + np.sqrt(1 - cosine**2) * (noise - (noise @ a) * a) / np.linalg.norm(
                noise - (noise @ a) * a
            )
            self.vectors[q1], self.vectors[q2] = a, b.astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += len(texts)
        return np.stack([self.vectors.get(t, _unit(t)) for t in texts])


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """A CLINC150-layout dataset with vectors, and a pairs file of duplicates and near misses."""
    splits = {
        "train": [[f"train question {i} on {INTENTS[i % 6]}", INTENTS[i % 6]] for i in range(80)],
        "val": [[f"val question {i} on {INTENTS[i % 6]}", INTENTS[i % 6]] for i in range(30)],
        "test": [[f"test question {i} on {INTENTS[i % 6]}", INTENTS[i % 6]] for i in range(40)],
    }
    dataset = tmp_path / "clinc.json"
    dataset.write_text(json.dumps({"name": "synthetic", **splits}))
    vectors = {name: np.stack([_unit(t) for t, _ in items]) for name, items in splits.items()}
    np.savez(tmp_path / "clinc.npz", model=np.array("synthetic"), **vectors)
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"name": "synthetic pairs", "pairs": DUPLICATES + NEAR_MISSES}))
    return {"dataset": dataset, "embeddings": tmp_path / "clinc.npz", "pairs": pairs}


SMALL = [
    "--requests", "300", "--clinc-slots", "20", "--qqp-slots", "21", "--bursts", "3",
    "--burst-size", "4", "--latency-entries", "30,60", "--lookups", "30",
    "--latency-backends", "memory", "--overhead-calls", "3",
]


def parse(argv: list[str], encoder: BaseEncoder) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stratarouter bench")
    bench_runtime.register(parser.add_subparsers(dest="bench", required=True))
    args = parser.parse_args(["runtime", *argv])
    args.make_encoder = lambda: encoder
    return args


def run_json(data: dict[str, Path], argv: list[str], encoder: BaseEncoder, capsys) -> dict:
    files = [f"--{name}={path}" for name, path in data.items()]
    args = parse([*files, *SMALL, "--no-cache", *argv, "--json"], encoder)
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "--json prints exactly one JSON object"
    return json.loads(out)


def check_replay_adds_up(replay: dict) -> None:
    hits = replay["exact_hits"] + replay["semantic_hits"]
    assert replay["hits"] == hits
    assert hits + replay["deduplicated"] + replay["calls"] == replay["requests"]
    assert replay["deduplicated"] == 0  # one request at a time: nothing to share
    assert replay["calls"] == replay["server_calls"] == replay["cache_stores"]
    assert replay["correct"] + replay["wrong"] + replay["unlabelled"] == hits
    for name in ("requests", "exact_hits", "semantic_hits", "correct", "wrong", "calls"):
        assert sum(kind[name] for kind in replay["by_kind"].values()) == replay[name]
    repeat = replay["by_kind"]["repeat"]  # a repeated text is always served from the cache
    assert repeat["exact_hits"] + repeat["semantic_hits"] == repeat["requests"]
    assert replay["by_kind"]["near_miss"]["correct"] == 0


def check_dedup_adds_up(dedup: dict, bursts: int, size: int) -> None:
    for mode, rows in dedup.items():
        for kind, row in rows.items():
            assert row["requests"] == row["bursts"] * size, (mode, kind)
            assert row["calls"] + row["deduplicated"] + row["cached"] == row["requests"]
            assert row["saved"] == row["requests"] - row["calls"]
    assert all(row["deduplicated"] == 0 for row in dedup["batching_off"].values())
    on = dedup["batching_on"]
    assert on["identical"]["bursts"] == bursts
    assert on["identical"]["calls"] <= bursts and on["surface"]["calls"] <= bursts


@pytest.fixture
def clean_encoder() -> PairEncoder:
    """Near misses far apart: the only semantic neighbours are labelled duplicates."""
    return PairEncoder(DUPLICATES + NEAR_MISSES[:-1], near_miss_cosine=0.0)


def test_a_workload_without_wrong_answers_shows_none(data, clean_encoder, capsys) -> None:
    report = run_json(data, [], clean_encoder, capsys)
    replay = report["replay"]
    check_replay_adds_up(replay)
    assert replay["wrong"] == 0 and replay["examples"]["wrong"] == []
    assert replay["requests"] == 300 and replay["hit_rate"] == round(replay["hits"] / 300, 4)
    new = replay["by_kind"]["new"]
    assert new["calls"] == new["requests"]  # nothing near a new question
    assert replay["cost_usd"] > 0 and replay["cost_saved_usd"] == pytest.approx(
        replay["hits"] * replay["cost_usd"] / replay["calls"], rel=1e-3
    )
    check_dedup_adds_up(report["dedup"], bursts=3, size=4)
    on, off = report["dedup"]["batching_on"], report["dedup"]["batching_off"]
    assert on["identical"]["calls"] == 3 and on["identical"]["saved"] == 9
    # Each question merges with its own copies, never with its twin.
    assert on["qqp_near_miss"]["calls"] == 6
    assert all(row["wrong"] == 0 for rows in (on, off) for row in rows.values())


def test_near_miss_pairs_are_misses_or_counted_wrong_hits(data, capsys) -> None:
    encoder = PairEncoder(DUPLICATES + NEAR_MISSES, near_miss_cosine=0.99)
    report = run_json(data, [], encoder, capsys)
    replay = report["replay"]
    check_replay_adds_up(replay)
    near = replay["by_kind"]["near_miss"]
    assert near["requests"] > 0
    # Each question's only neighbour is its twin: a near miss is a call or a wrong hit.
    assert near["calls"] + near["wrong"] == near["requests"]
    assert near["exact_hits"] + near["semantic_hits"] == near["wrong"]
    near_misses = {frozenset(pair[:2]) for pair in NEAR_MISSES}
    assert all(frozenset(example) in near_misses for example in replay["examples"]["wrong"])
    check_dedup_adds_up(report["dedup"], bursts=3, size=4)


def test_a_wrong_exact_tier_hit_is_counted(data, clean_encoder, capsys) -> None:
    # Two slots: one CLINC query and the laptop pair, which the exact tier cannot tell apart
    # (trailing punctuation) but the label calls different. Whichever question comes second is
    # served the first one's answer, every time: all its requests are wrong hits.
    data["pairs"].write_text(json.dumps({"pairs": [NEAR_MISSES[-1]]}))
    report = run_json(data, ["--clinc-slots", "1", "--qqp-slots", "1"], clean_encoder, capsys)
    replay = report["replay"]
    check_replay_adds_up(replay)
    assert replay["calls"] == 2  # the CLINC query and the first laptop question
    assert replay["wrong"] == replay["exact_hits"] - (replay["requests"] - replay["wrong"] - 2)
    assert replay["wrong"] > 0 and replay["by_kind"]["near_miss"]["wrong"] == 1
    assert replay["semantic_hits"] == 0


def test_json_shape(data, clean_encoder, capsys) -> None:
    report = run_json(data, [], clean_encoder, capsys)
    assert set(report) == {
        "workload", "runtime_config", "replay", "dedup", "lookup_latency", "overhead",
        "section_seconds", "seconds",
    }
    assert report["runtime_config"]["batching.window_ms"] == RuntimeConfig().batching.window_ms
    workload = report["workload"]
    assert workload["requests"] == 300 and workload["cache"] == "memory"
    assert sum(workload["requests_by_kind"].values()) == 300
    assert workload["distinct_answers"] <= workload["distinct_texts"] <= 300
    assert set(report["dedup"]) == {"batching_on", "batching_off"}
    assert set(report["dedup"]["batching_on"]) == {
        "identical", "surface", "reworded", "qqp_duplicate", "qqp_near_miss"
    }
    latency = report["lookup_latency"]
    assert list(latency) == ["memory"] and list(latency["memory"]) == ["30", "60"]
    for size in ("30", "60"):
        exact, semantic = latency["memory"][size]["exact"], latency["memory"][size]["semantic"]
        assert exact["lookups"] == semantic["lookups"] == 30
        assert exact["hits"] == 30  # every exact-tier probe was stored
        assert exact["p50_ms"] <= exact["p99_ms"]
    overhead = report["overhead"]
    assert set(overhead) == {
        "direct_sdk_p50_ms", "memory_miss", "sqlite_miss", "memory_hit", "sqlite_hit"
    }
    for name in ("memory_miss", "sqlite_miss", "memory_hit", "sqlite_hit"):
        assert overhead[name]["calls"] + overhead[name]["left_out"] == 3, name


def test_text_table(data, clean_encoder, capsys) -> None:
    files = [f"--{name}={path}" for name, path in data.items()]
    args = parse([*files, *SMALL, "--no-cache"], clean_encoder)
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "| section | figure | value |" in out
    for section in ("replay: near_miss", "dedup: qqp_near_miss", "cache lookup: memory, 60",
                    "overhead: sqlite state, cache hit"):
        assert f"| {section}" in out


def test_vectors_are_encoded_once_and_cached(data, clean_encoder, capsys, tmp_path) -> None:
    argv = ["--cache-dir", str(tmp_path / "vectors")]
    files = [f"--{name}={path}" for name, path in data.items()]
    for _ in range(2):
        args = parse([*files, *SMALL, *argv, "--json"], clean_encoder)
        assert args.run(args) == 0
    capsys.readouterr()
    assert len(list((tmp_path / "vectors").glob("runtime-*.npz"))) == 1
    first = clean_encoder.encoded
    assert first > 0
    args = parse([*files, *SMALL, *argv, "--json"], clean_encoder)
    args.run(args)
    assert clean_encoder.encoded == first


@pytest.mark.service
def test_redis_backend(data, clean_encoder, capsys, redis_url) -> None:
    report = run_json(
        data, ["--cache", "redis", "--latency-backends", "memory,redis", "--redis-url", redis_url],
        clean_encoder, capsys,
    )
    assert report["workload"]["cache"] == "redis"
    check_replay_adds_up(report["replay"])
    assert report["replay"]["wrong"] == 0 and report["replay"]["hits"] > 0
    assert list(report["lookup_latency"]) == ["memory", "redis"]
    assert report["lookup_latency"]["redis"]["60"]["exact"]["hits"] == 30


def test_an_unreachable_redis_is_a_config_error(data, clean_encoder) -> None:
    files = [f"--{name}={path}" for name, path in data.items()]
    args = parse([*files, *SMALL, "--no-cache", "--cache", "redis",
                  "--redis-url", "redis://127.0.0.1:1/0"], clean_encoder)
    with pytest.raises(ConfigError, match="Redis cache at redis://127.0.0.1:1/0"):
        args.run(args)


def test_bad_input_names_the_problem(data, clean_encoder, tmp_path, capsys) -> None:
    assert main(["bench", "runtime", "--dataset", str(tmp_path / "nope.json")]) == 2
    assert "--dataset" in capsys.readouterr().err
    files = [f"--{name}={path}" for name, path in data.items()]
    args = parse([*files, *SMALL, "--no-cache", "--clinc-slots", "999"], clean_encoder)
    with pytest.raises(ConfigError, match="999 CLINC queries"):
        args.run(args)
    args = parse([*files, *SMALL, "--no-cache", "--overhead-calls", "50"], clean_encoder)
    with pytest.raises(ConfigError, match="--overhead-calls needs 70 distinct val texts"):
        args.run(args)
    data["pairs"].write_text(json.dumps({"pairs": [["a", "b", 2]]}))
    args = parse([*files, *SMALL, "--no-cache"], clean_encoder)
    with pytest.raises(ConfigError, match="pair 0"):
        args.run(args)
    for bad in (["--requests", "0"], ["--zipf", "-1"], ["--latency-backends", "disk"]):
        with pytest.raises(SystemExit):
            parse([*files, *bad], clean_encoder)


def test_workload_kinds_follow_the_stream() -> None:
    clinc = [(f"q{i}", INTENTS[i % 6]) for i in range(30)]
    workload = build_workload(
        clinc, DUPLICATES + NEAR_MISSES, requests=500, clinc_slots=30, qqp_slots=21, zipf=1.1,
        seed=3,
    )
    again = build_workload(
        clinc, DUPLICATES + NEAR_MISSES, requests=500, clinc_slots=30, qqp_slots=21, zipf=1.1,
        seed=3,
    )
    assert workload.stream == again.stream  # seeded
    labels, seen = workload.labels, []
    for text, kind in zip(workload.stream, workload.kinds):
        answered = {labels.answer(t) for t in seen}
        if kind == "repeat":
            assert text in seen
        elif kind == "paraphrase":
            assert text not in seen and labels.answer(text) in answered
        elif kind == "near_miss":
            assert labels.twins(text) & set(seen) and labels.answer(text) not in answered
        seen.append(text)
    assert set(workload.kinds) == {"repeat", "paraphrase", "near_miss", "new"}
    counts = workload.description["requests_by_kind"]
    assert sum(counts.values()) == 500
    assert workload.description["distinct_texts"] == len(set(workload.stream))


def test_labels_judge_by_pairs_and_intents() -> None:
    labels = Labels()
    labels.same("how do i pray", "how can i pray")
    labels.near_miss("how do i pray", "how do i pray for someone")
    labels.intent.update({"what's my balance": "balance", "pay my bill": "pay_bill",
                          "what is my balance": "balance"})
    assert labels.judge("how can i pray", "how do i pray") == "correct"
    assert labels.judge("how do i pray for someone", "how do i pray") == "wrong"
    assert labels.judge("pay my bill", "what's my balance") == "wrong"
    assert labels.judge("what is my balance", "what's my balance") == "unlabelled"
    assert labels.judge("how can i pray", "pay my bill") == "unlabelled"
    assert doctest.testmod(_runtime_workload).failed == 0


@pytest.mark.dataset
def test_on_the_shared_data(datasets_dir: Path, local_encoder, capsys, tmp_path) -> None:
    args = parse([
        "--dataset", str(datasets_dir / "clinc150.json"),
        "--embeddings", str(datasets_dir / "clinc150.minilm.npz"),
        "--pairs", str(datasets_dir / "qqp_pairs.json"),
        "--requests", "400", "--clinc-slots", "100", "--qqp-slots", "60", "--bursts", "2",
        "--burst-size", "4", "--latency-entries", "100", "--lookups", "30",
        "--latency-backends", "memory", "--overhead-calls", "3",
        "--cache-dir", str(tmp_path), "--json",
    ], local_encoder)
    assert args.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    check_replay_adds_up(report["replay"])
    check_dedup_adds_up(report["dedup"], bursts=2, size=4)
    assert report["replay"]["hits"] > 0
    assert report["workload"]["qqp_duplicate_slots"] > 0
