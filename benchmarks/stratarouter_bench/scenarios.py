"""`stratarouter bench scenarios`: the out-of-the-box experience, no labelled data, no fit.

Protocol, per configuration (R routes, K examples per route) and per seed:

- sample R intents of the train split and K of each intent's train utterances, at random;
- build a router from them with every default (no threshold given, no `fit`);
- in-scope queries: the test queries of those intents;
- far out-of-scope: the dataset's out-of-scope test items, sampled to the in-scope count;
- near out-of-scope: test queries of the dataset's other intents, sampled likewise.

Reported per configuration, averaged over seeds: top-1 (best route, threshold ignored) and
decision accuracy (`route_id == label`) on in-scope queries, far and near rejection, ECE of the
top route's confidence against its correctness over in-scope + far out-of-scope (15 bins), and
milliseconds per query. semantic-router (defaults) and nearest-example (cosine top-1 over the
examples) run on the same vectors in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from stratarouter_core import Route, Router
from stratarouter_core.calibration import expected_calibration_error

from .datasets import IntentDataset, PrecomputedEncoder, Split, load_intent_dataset
from .semantic_router_baseline import add_compare_argument

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CONFIGURATIONS",
    "ScenarioScores",
    "plot_scenarios",
    "register",
    "run",
    "run_scenarios",
]

CONFIGURATIONS: tuple[tuple[int, int], ...] = ((2, 5), (5, 5), (10, 5), (25, 5), (10, 3), (10, 10))
METHODS = ("stratarouter", "semantic-router", "nearest-example")


def register(benches: Any) -> None:
    """Add the `scenarios` benchmark."""
    parser = benches.add_parser(
        "scenarios", help="small routers from a few examples, defaults, no fit"
    )
    parser.add_argument("--dataset", required=True, help="JSON dataset in the CLINC150 layout")
    parser.add_argument(
        "--embeddings", required=True, help=".npz with one embedding array per split"
    )
    parser.add_argument("--seeds", type=int, default=20, help="scenarios per configuration")
    add_compare_argument(parser)
    parser.add_argument(
        "--configurations",
        type=_configurations,
        default=CONFIGURATIONS,
        metavar="RxK,...",
        help="routes x examples per configuration (default: 2x5,5x5,10x5,25x5,10x3,10x10)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--plot", metavar="PATH", help="write the figures as bars per configuration to this image"
    )
    parser.set_defaults(run=run)


def _configurations(text: str) -> tuple[tuple[int, int], ...]:
    try:
        pairs = [item.lower().split("x") for item in text.split(",")]
        parsed = tuple((int(r), int(k)) for r, k in pairs)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RxK,RxK..., got {text!r}") from None
    if not parsed or any(r < 1 or k < 1 for r, k in parsed):
        raise argparse.ArgumentTypeError(f"routes and examples must be >= 1, got {text!r}")
    return parsed


@dataclass
class ScenarioScores:
    """One method's figures on one scenario (or their mean over scenarios)."""

    top1: float
    decision_accuracy: float | None
    far_rejection: float | None
    near_rejection: float | None
    ece: float | None
    ms_per_query: float


@dataclass(frozen=True)
class _Scenario:
    routes: dict[str, list[int]]  # intent -> rows of the train split
    in_scope: NDArray[np.int64]  # rows of the test split
    far: NDArray[np.int64]  # rows of the test split (out of scope)
    near: NDArray[np.int64]  # rows of the test split (other intents)


def run(args: argparse.Namespace) -> int:
    """Run every configuration and print the table (or JSON)."""
    dataset = load_intent_dataset(args.dataset, args.embeddings)
    methods = [m for m in METHODS if m != "semantic-router" or "semantic-router" in args.compare]
    results = run_scenarios(
        dataset, seeds=args.seeds, methods=methods, configurations=args.configurations
    )
    if args.json:
        print(json.dumps(_as_json(results), indent=2))
    else:
        print(_table(results, args.seeds))
    if args.plot:
        plot_scenarios(results, args.seeds, args.plot)
        print(f"plot written to {args.plot}")
    return 0


PLOTTED = (  # ScenarioScores field, panel title
    ("top1", "in-scope top-1 (threshold ignored)"),
    ("decision_accuracy", "in-scope decision accuracy"),
    ("far_rejection", "far out-of-scope rejected"),
    ("near_rejection", "near out-of-scope rejected"),
    ("ece", "ECE, in-scope + far (lower is better)"),
    ("ms_per_query", "ms per query (log scale)"),
)


def plot_scenarios(
    results: dict[tuple[int, int], dict[str, ScenarioScores]], seeds: int, path: str
) -> Figure:
    """One panel per figure, one group of bars per configuration, one bar per method."""
    from matplotlib.figure import Figure

    configurations = list(results)
    methods = list(next(iter(results.values()))) if results else []
    figure = Figure(figsize=(15.0, 7.5), layout="constrained")
    width = 0.8 / max(len(methods), 1)
    for axes, (name, title) in zip(figure.subplots(2, 3).flat, PLOTTED):
        for m, method in enumerate(methods):
            values = [getattr(results[c][method], name) for c in configurations]
            if all(v is None for v in values):
                continue  # e.g. nearest-example never abstains: no rejection to draw
            positions = [i + (m - (len(methods) - 1) / 2) * width for i in range(len(values))]
            bars = axes.bar(positions, [np.nan if v is None else v for v in values], width,
                            label=method, color=f"C{m}")
            # a bar of height 0 is invisible: say "0" (semantic-router never rejects)
            axes.bar_label(bars, ["0" if v == 0 else "" for v in values], fontsize=7)
        axes.set_xticks(range(len(configurations)), [f"{r}×{k}" for r, k in configurations])
        axes.set(title=title, xlabel="routes × examples per route")
        if name == "ms_per_query":
            axes.set_yscale("log")
        elif name != "ece":
            axes.set_ylim(0, 1)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(methods))
    figure.suptitle(f"Scenarios: defaults, no fit, mean over {seeds} seeds per configuration")
    figure.savefig(path, dpi=80)
    return figure


def run_scenarios(
    dataset: IntentDataset,
    *,
    seeds: int = 20,
    methods: Sequence[str] = METHODS,
    configurations: Sequence[tuple[int, int]] = CONFIGURATIONS,
) -> dict[tuple[int, int], dict[str, ScenarioScores]]:
    """Mean figures per configuration and method over `seeds` random scenarios."""
    train, test = dataset.split("train"), dataset.split("test")
    if train.vectors is None or test.vectors is None:
        raise SystemExit("scenarios need --embeddings (the same vectors for every method)")
    encoder = PrecomputedEncoder(
        train.texts + test.texts,
        np.vstack([train.vectors, test.vectors]),
        dataset.embedding_model,
    )
    results: dict[tuple[int, int], dict[str, ScenarioScores]] = {}
    for n_routes, n_examples in configurations:
        per_method: dict[str, list[ScenarioScores]] = {m: [] for m in methods}
        for seed in range(seeds):
            scenario = _sample(train, test, n_routes, n_examples, seed)
            for method in methods:
                per_method[method].append(_evaluate(method, scenario, train, test, encoder))
        results[(n_routes, n_examples)] = {m: _mean(s) for m, s in per_method.items()}
    return results


def _sample(train: Split, test: Split, n_routes: int, n_examples: int, seed: int) -> _Scenario:
    rng = np.random.default_rng(seed)
    rows_of: dict[str, list[int]] = {}
    for row, label in enumerate(train.labels):
        if label is not None:
            rows_of.setdefault(label, []).append(row)
    intents = sorted(rows_of)
    if n_routes > len(intents):
        raise SystemExit(f"the dataset has {len(intents)} intents, fewer than {n_routes}")
    chosen = [intents[i] for i in rng.choice(len(intents), n_routes, replace=False)]
    routes = {
        name: sorted(rng.choice(rows_of[name], min(n_examples, len(rows_of[name])), replace=False))
        for name in chosen
    }
    labels = np.array(["" if label is None else label for label in test.labels], dtype=object)
    in_scope = np.flatnonzero(np.isin(labels, chosen))
    far_pool = np.flatnonzero(labels == "")
    near_pool = np.flatnonzero((labels != "") & ~np.isin(labels, chosen))
    return _Scenario(
        routes={name: [int(r) for r in rows] for name, rows in routes.items()},
        in_scope=in_scope,
        far=_pick(rng, far_pool, len(in_scope)),
        near=_pick(rng, near_pool, len(in_scope)),
    )


def _pick(rng: np.random.Generator, pool: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    if len(pool) == 0:
        return pool
    return np.sort(rng.choice(pool, min(n, len(pool)), replace=False))


def _evaluate(
    method: str, scenario: _Scenario, train: Split, test: Split, encoder: PrecomputedEncoder
) -> ScenarioScores:
    assert test.vectors is not None and train.vectors is not None
    labels = [test.labels[i] for i in scenario.in_scope]
    if method == "nearest-example":
        return _nearest_example(scenario, train.vectors, test.vectors, labels)
    rows = np.concatenate([scenario.in_scope, scenario.far, scenario.near])
    texts = [test.texts[i] for i in rows]
    vectors = test.vectors[rows]
    if method == "stratarouter":
        decided, best, confidence, seconds = _stratarouter(scenario, train, encoder, texts, vectors)
    else:
        decided, best, confidence, seconds = _semantic_router(scenario, train, texts, vectors)
    n_in, n_far = len(scenario.in_scope), len(scenario.far)
    in_part, far_part = slice(0, n_in), slice(n_in, n_in + n_far)
    near_part = slice(n_in + n_far, None)
    correct = np.array([b == label for b, label in zip(best[in_part], labels)], dtype=float)
    confident = np.concatenate([confidence[in_part], confidence[far_part]])
    outcome = np.concatenate([correct, np.zeros(n_far)])
    return ScenarioScores(
        top1=float(correct.mean()),
        decision_accuracy=float(np.mean([d == y for d, y in zip(decided[in_part], labels)])),
        far_rejection=_rejected(decided[far_part]),
        near_rejection=_rejected(decided[near_part]),
        ece=expected_calibration_error(np.clip(confident, 0.0, 1.0), outcome, n_bins=15),
        ms_per_query=seconds * 1000.0 / len(rows),
    )


def _rejected(decisions: Sequence[str | None]) -> float | None:
    if not len(decisions):
        return None
    return float(np.mean([d is None for d in decisions]))


_Decisions = tuple[list[str | None], list[str | None], NDArray[np.float64], float]


def _stratarouter(
    scenario: _Scenario,
    train: Split,
    encoder: PrecomputedEncoder,
    texts: list[str],
    vectors: NDArray[np.float32],
) -> _Decisions:
    router = Router(encoder=encoder)
    router.add_routes(
        Route(name=name, examples=[train.texts[r] for r in rows])
        for name, rows in scenario.routes.items()
    )
    router.build_index()
    start = time.perf_counter()
    results = [router.route(text, embedding=vector) for text, vector in zip(texts, vectors)]
    seconds = time.perf_counter() - start
    return (
        [r.route_id for r in results],
        [r.top.route_id if r.top is not None else None for r in results],
        np.array([r.confidence for r in results]),
        seconds,
    )


def _semantic_router(
    scenario: _Scenario, train: Split, texts: list[str], vectors: NDArray[np.float32]
) -> _Decisions:
    from .semantic_router_baseline import SemanticRouterBaseline

    assert train.vectors is not None
    utterances = {name: [train.texts[r] for r in rows] for name, rows in scenario.routes.items()}
    all_rows = [r for rows in scenario.routes.values() for r in rows]
    baseline = SemanticRouterBaseline(
        utterances, ([train.texts[r] for r in all_rows], train.vectors[all_rows])
    )
    start = time.perf_counter()
    decisions = baseline.decide_many(texts, vectors)
    seconds = time.perf_counter() - start
    names = [name for name, _ in decisions]
    confidence = np.array([0.0 if c is None else float(c) for _, c in decisions])
    # Its default never abstains, so its best route is its decision.
    return names, names, confidence, seconds


def _nearest_example(
    scenario: _Scenario,
    train_vectors: NDArray[np.float32],
    test_vectors: NDArray[np.float32],
    labels: list[str | None],
) -> ScenarioScores:
    names = [name for name, rows in scenario.routes.items() for _ in rows]
    examples = train_vectors[[r for rows in scenario.routes.values() for r in rows]]
    start = time.perf_counter()
    best = (test_vectors[scenario.in_scope] @ examples.T).argmax(axis=1)
    seconds = time.perf_counter() - start
    top1 = float(np.mean([names[b] == label for b, label in zip(best.tolist(), labels)]))
    return ScenarioScores(top1, None, None, None, None, seconds * 1000.0 / len(labels))


def _mean(scores: list[ScenarioScores]) -> ScenarioScores:
    def average(name: str) -> float | None:
        values = [getattr(s, name) for s in scores if getattr(s, name) is not None]
        return float(np.mean(values)) if values else None

    return ScenarioScores(**{name: average(name) for name in asdict(scores[0])})  # type: ignore[arg-type]


def _as_json(results: dict[tuple[int, int], dict[str, ScenarioScores]]) -> dict[str, Any]:
    return {
        f"R={r} K={k}": {method: asdict(s) for method, s in by_method.items()}
        for (r, k), by_method in results.items()
    }


def _table(results: dict[tuple[int, int], dict[str, ScenarioScores]], seeds: int) -> str:
    def cell(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        f"scenarios: defaults, no fit, mean over {seeds} seeds per configuration",
        "| routes × examples | method | top-1 | decision acc (in-scope) | far rejected "
        "| near rejected | ECE | ms/query |",
        "|---|---|---|---|---|---|---|---|",
    ]
    means: dict[str, list[ScenarioScores]] = {}
    for (r, k), by_method in results.items():
        for method, s in by_method.items():
            means.setdefault(method, []).append(s)
            lines.append(
                f"| {r} × {k} | {method} | {cell(s.top1)} | {cell(s.decision_accuracy)} | "
                f"{cell(s.far_rejection)} | {cell(s.near_rejection)} | {cell(s.ece)} | "
                f"{cell(s.ms_per_query, 3)} |"
            )
    for method, scores in means.items():
        s = _mean(scores)
        lines.append(
            f"| **mean** | {method} | {cell(s.top1)} | {cell(s.decision_accuracy)} | "
            f"{cell(s.far_rejection)} | {cell(s.near_rejection)} | {cell(s.ece)} | "
            f"{cell(s.ms_per_query, 3)} |"
        )
    return "\n".join(lines)
