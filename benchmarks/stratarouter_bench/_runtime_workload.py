"""The workloads `stratarouter bench runtime` replays, and how a served answer is judged.

Kept apart from the command so the construction can be read (and tested) on its own: every
figure the benchmark prints depends on exactly what is built here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from stratarouter_core.errors import ConfigError

__all__ = ["REQUEST_KINDS", "Labels", "Verdict", "Workload", "build_workload", "bursts"]

Verdict = Literal["correct", "wrong", "unlabelled"]
RequestKind = Literal["repeat", "paraphrase", "near_miss", "new"]
REQUEST_KINDS: tuple[RequestKind, ...] = ("repeat", "paraphrase", "near_miss", "new")

# Same request, other surface: every variant normalises to the original text (exact tier).
_SURFACE: tuple[Callable[[str], str], ...] = (
    lambda q: q,
    lambda q: q.upper(),
    lambda q: q.capitalize() + "?",
    lambda q: f"  {q} !",
)
# Same request with filler words: a different text, so only similarity can join it.
_REWORDED: tuple[Callable[[str], str], ...] = (
    lambda q: q,
    lambda q: f"please {q}",
    lambda q: f"{q} please",
    lambda q: f"hey, {q}",
    lambda q: f"{q}, thanks",
)


class Labels:
    """What the data say about serving one text's answer for another.

    Texts joined by `same` share one answer (a text and its surface variants, a QQP pair
    labelled duplicate). A QQP pair labelled non-duplicate is a *near miss*: serving either's
    answer for the other is wrong. Two CLINC150 queries of different intents ask different
    things, so that is wrong too; two of the same intent may or may not (unlabelled).

    Example:
        >>> labels = Labels()
        >>> labels.same("how do I pray?", "how can I pray?")
        >>> labels.near_miss("how do I pray?", "how do I pray for someone?")
        >>> labels.judge("how can I pray?", "how do I pray?")
        'correct'
        >>> labels.judge("how do I pray for someone?", "how do I pray?")
        'wrong'
    """

    def __init__(self) -> None:
        """No labels yet."""
        self._parent: dict[str, str] = {}
        self._twins: dict[str, set[str]] = {}
        self.intent: dict[str, str] = {}

    def answer(self, text: str) -> str:
        """The representative of `text`'s answer class (union-find root)."""
        root = text
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        while text != root:  # path compression keeps later look-ups short
            self._parent[text], text = root, self._parent[text]
        return root

    def same(self, *texts: str) -> None:
        """Record that `texts` all deserve one answer."""
        roots = [self.answer(t) for t in texts]
        for root in roots[1:]:
            self._parent[root] = roots[0]

    def near_miss(self, first: str, second: str) -> None:
        """Record that `first` and `second` look alike but need different answers."""
        self._twins.setdefault(first, set()).add(second)
        self._twins.setdefault(second, set()).add(first)

    def judge(self, asked: str, served: str) -> Verdict:
        """Whether `served`'s answer is right for `asked`, as far as the labels tell."""
        if self.answer(asked) == self.answer(served):
            return "correct"
        if served in self.twins(asked):
            return "wrong"
        intents = self.intent.get(asked), self.intent.get(served)
        if None not in intents and intents[0] != intents[1]:
            return "wrong"
        return "unlabelled"

    def twins(self, text: str) -> set[str]:
        """The texts labelled near misses of `text`."""
        return self._twins.get(text, set())


@dataclass(frozen=True)
class Workload:
    """A replayable request stream.

    Attributes:
        stream: the request texts, in order.
        kinds: for each request, what came before it: ``repeat`` (this exact text was asked),
            ``paraphrase`` (not this text, but a labelled duplicate of it), ``near_miss`` (neither,
            but its labelled non-duplicate twin), ``new`` (none of those).
        labels: the judge of served answers.
        clinc_slots: the CLINC150 queries among the popularity slots.
        qqp_slots: the QQP pairs among the slots, as (q1, q2, is_duplicate).
        description: parameters and derived figures, for the report.
    """

    stream: list[str]
    kinds: list[RequestKind]
    labels: Labels
    clinc_slots: list[str]
    qqp_slots: list[tuple[str, str, bool]]
    description: dict[str, Any]


def build_workload(
    clinc: Sequence[tuple[str, str]],
    pairs: Sequence[tuple[str, str, bool]],
    *,
    requests: int,
    clinc_slots: int,
    qqp_slots: int,
    zipf: float,
    seed: int,
) -> Workload:
    """A Zipf stream over popularity slots holding CLINC150 queries and QQP pairs.

    Args:
        clinc: (query, intent) items to draw the CLINC slots from (distinct texts are used).
        pairs: labelled QQP pairs to draw the QQP slots from.
        requests: length of the stream.
        clinc_slots: slots holding one CLINC query each.
        qqp_slots: slots holding one QQP pair each (either question is asked, 50/50).
        zipf: exponent s: the slot of popularity rank r is drawn with probability ∝ 1 / r^s.
        seed: seeds every random choice.
    """
    rng = np.random.default_rng(seed)
    labels = Labels()
    chosen_clinc, chosen_pairs = _sample(clinc, pairs, clinc_slots, qqp_slots, rng, labels)
    slots: list[tuple[str, ...]] = [(q,) for q, _ in chosen_clinc]
    slots += [(q1, q2) for q1, q2, _ in chosen_pairs]
    order = rng.permutation(len(slots))  # popularity rank -> slot
    weights = 1.0 / np.arange(1, len(slots) + 1) ** zipf
    ranks = rng.choice(len(slots), size=requests, p=weights / weights.sum())
    sides = rng.integers(0, 2, size=requests)
    stream = [
        slots[order[r]][s % len(slots[order[r]])] for r, s in zip(ranks.tolist(), sides.tolist())
    ]
    kinds = _kinds(stream, labels)
    description = {
        "requests": requests,
        "clinc_slots": clinc_slots,
        "qqp_slots": qqp_slots,
        "qqp_duplicate_slots": sum(d for _, _, d in chosen_pairs),
        "zipf_exponent": zipf,
        "seed": seed,
        "distinct_texts": len(set(stream)),
        "distinct_answers": len({labels.answer(t) for t in stream}),
        "requests_by_kind": {k: kinds.count(k) for k in REQUEST_KINDS},
    }
    return Workload(stream, kinds, labels, [q for q, _ in chosen_clinc], chosen_pairs, description)


def _sample(
    clinc: Sequence[tuple[str, str]],
    pairs: Sequence[tuple[str, str, bool]],
    clinc_slots: int,
    qqp_slots: int,
    rng: np.random.Generator,
    labels: Labels,
) -> tuple[list[tuple[str, str]], list[tuple[str, str, bool]]]:
    """Draw the slots' queries and pairs, and record what their labels say in `labels`."""
    distinct = list(dict.fromkeys(clinc))
    if clinc_slots > len(distinct) or qqp_slots > len(pairs):
        raise ConfigError(
            f"the workload asks for {clinc_slots} CLINC queries and {qqp_slots} QQP pairs; the "
            f"data hold {len(distinct)} distinct queries and {len(pairs)} pairs"
        )
    if clinc_slots + qqp_slots == 0:
        raise ConfigError("the workload needs at least one slot (--clinc-slots/--qqp-slots)")
    chosen_clinc = [distinct[i] for i in sorted(rng.choice(len(distinct), clinc_slots, False))]
    labels.intent.update(chosen_clinc)
    chosen_pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), qqp_slots, False))]
    for q1, q2, duplicate in chosen_pairs:
        if duplicate:
            labels.same(q1, q2)
        elif q1 != q2:
            labels.near_miss(q1, q2)
    return chosen_clinc, chosen_pairs


def _kinds(stream: Sequence[str], labels: Labels) -> list[RequestKind]:
    seen: set[str] = set()
    answered: set[str] = set()
    kinds: list[RequestKind] = []
    for text in stream:
        if text in seen:
            kinds.append("repeat")
        elif labels.answer(text) in answered:
            kinds.append("paraphrase")
        elif labels.twins(text) & seen:
            kinds.append("near_miss")
        else:
            kinds.append("new")
        seen.add(text)
        answered.add(labels.answer(text))
    return kinds


def bursts(workload: Workload, *, count: int, size: int) -> dict[str, list[list[str]]]:
    """Bursts of `size` concurrent requests, `count` of each kind (fewer if data run out).

    ``identical``: one CLINC query `size` times. ``surface``: the query in case/punctuation/
    whitespace variants (one normalised text). ``reworded``: the query with filler words
    ("please ...", "hey, ..."). ``qqp_duplicate`` / ``qqp_near_miss``: the two questions of a
    QQP pair labelled duplicate / non-duplicate, alternating. Variants join their query's answer
    class in `workload.labels`, so a merged call's answer can be judged.
    """
    queries = workload.clinc_slots[:count]
    result: dict[str, list[list[str]]] = {"identical": [[q] * size for q in queries]}
    for kind, variants in (("surface", _SURFACE), ("reworded", _REWORDED)):
        result[kind] = [[variants[i % len(variants)](q) for i in range(size)] for q in queries]
        for burst in result[kind]:
            workload.labels.same(*burst)
            workload.labels.intent.update(dict.fromkeys(burst, workload.labels.intent[burst[0]]))
    for kind, duplicate in (("qqp_duplicate", True), ("qqp_near_miss", False)):
        chosen = [(a, b) for a, b, d in workload.qqp_slots if d == duplicate and a != b][:count]
        result[kind] = [[(a, b)[i % 2] for i in range(size)] for a, b in chosen]
    return result
