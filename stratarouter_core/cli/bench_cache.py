"""`stratarouter bench cache`: hit precision/recall of the semantic cache on labelled query pairs.

Input: a JSON file with keys ``name``, ``source``, ``license``, ``note`` and ``pairs``, each pair
``[q1, q2, is_duplicate]`` (the layout of ``qqp_pairs.json``). q1 plays the cached query and q2
the incoming one: a *hit* means the cache would serve q1's answer for q2. A hit is correct when
the pair is labelled a duplicate. For each threshold the table gives precision (correct hits /
hits) and recall (correct hits / duplicates) of plain cosine and of our cache (cosine and the
`QueryGuard`).

With ``--split half`` (the default) the pairs are split by position (even = fit half, odd =
held-out half). The *fitted* threshold is the lowest one, on a 0.005 grid, at which our cache
reaches ``--target-precision`` on the fit half; its figures are reported on the held-out half.
That is how the default `SemanticCache.similarity_threshold` was chosen; ``--json`` prints one
object whose ``cache`` key holds the default configuration's precision and recall over all pairs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..encoders.base import BaseEncoder
from ..errors import ConfigError
from ..runtime.cache import DEFAULT_GUARD, DEFAULT_SIMILARITY_THRESHOLD
from ..runtime.guard import QueryGuard

__all__ = ["PairSet", "evaluate", "fit_threshold", "load_pairs", "register", "run"]

DEFAULT_THRESHOLDS = (0.85, 0.9, 0.92, 0.94, 0.945, 0.95, 0.97)
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "stratarouter"
_GRID = tuple(round(0.8 + 0.005 * i, 3) for i in range(40))
_BATCH = 256


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
                        help="precision the fitted threshold must reach on the fit half")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="where embeddings are cached (default: %(default)s)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write embeddings")
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
    from ..encoders.local import LocalEncoder

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
        """The guard's verdict on each pair (independent of the threshold)."""
        return np.array([guard.accepts(q1, q2) for q1, q2, _ in self.pairs], dtype=bool)


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
    report = _report(document, PairSet(pairs, similarity), args)
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0


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
        fitted = fit_threshold(
            data.similarity[fit], data.labels[fit], accepted[fit], args.target_precision
        )
        report["fit"] = {
            "half": "even pairs", "target_precision": args.target_precision, "threshold": fitted,
            "fit_half": None if fitted is None else _pr(data, accepted, fit, fitted),
            "held_out": None if fitted is None else _pr(data, accepted, ~fit, fitted),
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
            for reason in guard.check(q1, q2).reasons:
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
    if "fit" in report:
        fit = report["fit"]
        print(f"\nfitted threshold (even half, precision >= {fit['target_precision']}): "
              f"{fit['threshold']}")
        if fit["threshold"] is not None:
            print(f"  fit half {_fmt(fit['fit_half'])}   held-out half {_fmt(fit['held_out'])}")
    cache, plain = report["cache"], report["plain_cosine"]
    print(f"\ndefault configuration (threshold {report['default_threshold']}, all pairs): "
          f"cache P/R {_fmt(cache)}   plain cosine P/R {_fmt(plain)}")
    for reason, counts in report["vetoes"].items():
        print(f"  guard check {reason:<9} vetoed {counts['vetoed']:>4} plain hits "
              f"({counts['false_hits_avoided']} of them false)")
    sys.stdout.flush()
