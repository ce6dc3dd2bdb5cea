"""The semantic cache's false-hit guard: lexical evidence that two queries ask different things.

Embedding similarity is blind to small edits that flip the answer: "cancel my order" and "don't
cancel my order" sit at a cosine above 0.9 in most sentence encoders, and so do "flights from Paris
to Rome" and "flights from Rome to Paris". `QueryGuard` looks at the words themselves and vetoes a
cache hit on general, domain-independent evidence:

- **negation**: a negation cue (not, n't, never, no, without, ...) on one side only;
- **numbers**: the quantities differ ("2+3" vs "2+5", "under $500" vs "under $1000");
- **entities**: a capitalised or alphanumeric name on each side that the other lacks (Paris → Rome);
- **order swap**: the same two words trade places around a shared word ("from A to B" vs
  "from B to A", "is A faster than B" vs "is B faster than A");
- **antonyms**: a curated list of general opposites (increase/decrease, buy/sell, ...) plus
  negating prefixes (install/uninstall, legal/illegal);

then, when the caller gives the embedding cosine, weighs the softer evidence (rarity-weighted
word overlap and difference, against the cosine) with a small logistic model,
`stratarouter_runtime.guard_model.SoftModel`.

Nothing here is learned from an evaluation set. The word lists are general English: the
function words of `_STOPWORDS` (articles, pronouns, prepositions, conjunctions, auxiliaries,
quantifiers), negation cues, question words and a curated list of opposites. The default soft
model's weights follow from a stated argument (`guard_model`). `stratarouter bench cache --fit`
(benchmarks/ of the repository) fits a soft model on labelled pairs of your own; its output is a
`SoftModel` you pass explicitly, never a library default.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial

from stratarouter_core.errors import ConfigError

from .guard_model import DEFAULT_MODEL, SoftModel, lexicon, near_stem, pair_features

__all__ = [
    "CHECKS", "MODEL_CHECK", "GuardVerdict", "QueryAnalysis", "QueryGuard", "analyse", "stem",
]

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEGATIONS = _words(
    "not no never none nobody nothing nowhere neither nor without cannot unable "
    "lack lacks lacking nope noone"
)
_NEGATED_AUXILIARIES = {"can": "can", "won": "will", "shan": "shall", "ain": "be"}

_STOPWORDS = _words(
    """
    a an the and or but if then else so as of at by for with about against between into through
    during before after above below to from up down in out on off over under again further once
    here there when where why how what which who whom whose this that these those am is are was
    were be been being have has had having do does did doing will would shall should can could
    may might must i me my mine myself we us our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves s t
    than too very just also only own same such both each few more most other some any all nor
    there's what's it's let's i'm i've i'd i'll you're you've we're they're isn aren wasn weren
    don doesn didn hasn haven hadn wouldn shouldn couldn mustn mightn needn
    one ones someone something anyone anything everyone everything much many every
    """
)
"""English function words: they never decide what a question is about.

Articles and determiners, personal and indefinite pronouns, prepositions, conjunctions,
auxiliary and modal verbs (and their clitics), quantifiers and a few degree adverbs: the closed
word classes of English grammar, close to NLTK's English stop-word list. No content word (noun,
verb, adjective) is listed, whatever corpus it is frequent in.
"""

_WH_WORDS = _words("what why how when where who which whom whose")

_DIRECTIONAL = _words(
    "from to into onto toward towards before after than vs versus over under above below "
    "against via"
)
"""Words whose two sides play different roles ("from A to B", "A before B", "A than B")."""

_SYMMETRIC = _words("and or nor & / , between both either plus")
"""Connectors whose two sides can trade places freely ("A or B" == "B or A")."""

_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10,
}
_HOW_NOUNS = _words("way ways method methods steps step")
_WHEN_NOUNS = _words("time times year years date dates day days month hour")
_WHERE_NOUNS = _words("place places location country city")
_WH_CANONICAL = {"which": "what", "whom": "who", "whose": "who"}
_IDIOMS = re.compile(r"\b(?:or|why)\s+not\b|\b(\w+)/\1n[o'’]?t\b", re.IGNORECASE)
"""Polar-question idioms that negate nothing: "X or not", "why or why not", "should/shouldn't"."""

_NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100, "thousand": 1_000, "million": 1_000_000,
    "billion": 1_000_000_000, "dozen": 12, "half": 0.5, "twice": 2, "double": 2, "triple": 3,
}
"""Spelled-out quantities ("one" is left out: it is mostly a pronoun, "how does one ...")."""

_MAGNITUDES = {"k": 1e3, "m": 1e6, "b": 1e9, "bn": 1e9}

_ANTONYMS = """
increase decrease|increase reduce|raise lower|grow shrink|gain lose|gain loss|win lose|profit loss
buy sell|buy rent|lend borrow|give take|send receive|import export|upload download|push pull
enable disable|add remove|add subtract|add delete|create delete|start stop|start end|begin end
open close|open shut|on off|up down|in out|inside outside|internal external|encrypt decrypt
encode decode|compress decompress|lock unlock|login logout|subscribe unsubscribe|accept reject
accept decline|accept refuse|approve reject|approve deny|allow deny|allow block|allow forbid
allow prevent|include exclude|include omit|attach detach|connect disconnect|mount unmount
hire fire|join leave|arrive depart|arrive leave|arrival departure|enter exit|come go|input output
inbound outbound|incoming outgoing|ascending descending|show hide|visible hidden|expand collapse
maximize minimize|maximum minimum|max min|plus minus|multiply divide|more less|more fewer
most least|many few|all none|always never|before after|above below|over under|upper lower
uppercase lowercase|high low|higher lower|highest lowest|top bottom|best worst|better worse
good bad|cheap expensive|cheapest expensive|hot cold|warm cold|heat cool|freeze melt|fast slow
faster slower|fastest slowest|big small|large small|bigger smaller|larger smaller|long short
longer shorter|early late|earlier later|first last|old new|old young|older younger
oldest youngest|rich poor|strong weak|strengthen weaken|tighten loosen|hard easy|difficult easy
heavy light|dark light|wet dry|full empty|odd even|safe dangerous|help hurt|improve worsen
love hate|like hate|remember forget|find lose|save spend|asleep awake|sleep wake|inhale exhale
agree disagree|true false|right wrong|correct incorrect|success failure|succeed fail|pass fail
positive negative|pro con|for against|advantage disadvantage|benefit risk|benefit drawback
cause cure|same different|similar different|similarity difference|similar differ|public private
permanent temporary|debit credit|deposit withdraw|income expense|asset liability|male female
man woman|boy girl|husband wife|father mother|son daughter|brother sister|north south|east west
left right|forward backward|front back|day night|morning evening|summer winter|spring autumn
sunrise sunset|birth death|alive dead|live die|war peace|friend enemy|ally enemy|rise fall
attack defend|offense defense|past future|yesterday tomorrow|ancient modern|introvert extrovert
optimist pessimist|upgrade downgrade|overestimate underestimate|overweight underweight
mandatory optional|required optional|sync async|synchronous asynchronous|client server
sender recipient|buyer seller|employer employee|teacher student|parent child|landlord tenant
"""
"""General opposites and converse roles; both words are stemmed before use."""

_PREFIXED = re.compile(r"(anti|dis|mis|non|un|in|im|il|ir|de)(.{4,})")
"""A word made of a negating prefix and a base of four letters or more (uninstall, illegal)."""

_IRREGULAR = {
    "bought": "buy", "sold": "sell", "won": "win", "lost": "lose", "gave": "give", "given": "give",
    "took": "take", "taken": "take", "began": "begin", "begun": "begin", "grew": "grow",
    "grown": "grow", "rose": "rise", "risen": "rise", "fell": "fall", "fallen": "fall",
    "went": "go", "gone": "go", "made": "make", "did": "do", "done": "do", "left": "left",
    "men": "man", "women": "woman", "children": "child", "people": "person", "better": "better",
    "best": "best", "worse": "worse", "worst": "worst", "lent": "lend", "shut": "shut",
    "hid": "hide", "hidden": "hide", "wrote": "write", "written": "write", "ran": "run",
    "ate": "eat", "eaten": "eat", "knew": "know", "known": "know", "thought": "think",
    "taught": "teach", "caught": "catch", "brought": "bring", "felt": "feel", "kept": "keep",
    "paid": "pay", "said": "say", "sent": "send", "spent": "spend", "built": "build",
    "met": "meet", "found": "find", "got": "get", "gotten": "get", "saw": "see", "seen": "see",
}

_TOKEN_RE = re.compile(
    r"""
    (?P<clock>\d{1,2}(?::\d{2})?\s?[ap]\.?m\b\.?)
    | (?P<number>[$€£¥]?\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th|bn|[kmb%])?(?![a-z]))
    | (?P<alnum>\d+[^\W\d_]\w*)
    | (?P<word>[^\W\d_](?:[\w'’]*\w)?)
    | (?P<op>[+*/^=×÷<>-])
    """,
    re.VERBOSE | re.IGNORECASE,
)
_MATH_RE = re.compile(r"\d(?:\.\d+)?\s*[-+*/^×÷x]\s*[-(]?\d")
_FIRST_PERSON = frozenset({"I", "I'm", "I've", "I'd", "I'll"})
_SENTENCE_ENDS = frozenset(".?!:;\"(")


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light, deterministic English stemmer (plurals, -ing, -ed, final -e, irregular verbs).

    Example:
        >>> [stem(w) for w in ["increases", "increasing", "bought", "cancelled", "policies"]]
        ['increas', 'increas', 'buy', 'cancel', 'policy']
    """
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3:
        return w
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif (w.endswith("ed") and len(w) > 4 and not w.endswith("eed")) or w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("e") and len(w) > 3 and not w.endswith("ee"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeious":
        w = w[:-1]  # stopping -> stopp -> stop; call -> cal, like called -> cal
    return w


def _parse_number(raw: str) -> float | None:
    text = raw.lower().lstrip("$€£¥").replace(",", "")
    clock = re.fullmatch(r"(\d+)(?::(\d+))?\s?([ap])\.?m\.?", text)
    if clock:  # "7am", "7:30 pm" -> minutes after midnight
        hours, minutes = int(clock.group(1)) % 12, int(clock.group(2) or 0)
        return float((hours + (12 if clock.group(3) == "p" else 0)) * 60 + minutes)
    for suffix in ("st", "nd", "rd", "th", "%"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    scale = 1.0
    for suffix, factor in _MAGNITUDES.items():
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            text, scale = text[: -len(suffix)], factor
            break
    try:
        return float(text) * scale
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class QueryAnalysis:
    """What the guard reads in one query.

    Attributes:
        stems: every word's stem, in order (negation cues removed).
        words: the lower-cased word each stem comes from, in the same order.
        content: stems of informative words (no stop/light words).
        negations: number of negation cues.
        numbers: quantities, sorted.
        math: arithmetic expressions with spacing removed, in order.
        entities: stems of capitalised, all-caps or alphanumeric words not at a sentence start.
        wh: the question word(s) present.
    """

    stems: tuple[str, ...]
    words: tuple[str, ...]
    content: frozenset[str]
    negations: int
    numbers: tuple[float, ...]
    math: tuple[str, ...]
    entities: frozenset[str]
    wh: frozenset[str]


@lru_cache(maxsize=65_536)
def analyse(text: str) -> QueryAnalysis:
    """Tokenise `text` and extract the evidence the guard compares (memoised).

    Example:
        >>> a = analyse("Don't cancel my 2 orders from Paris")
        >>> a.negations, a.numbers, sorted(a.entities)
        (1, (2.0,), ['paris'])
    """
    text = _IDIOMS.sub(lambda m: m.group(1) or "", text.replace("’", "'"))
    stems: list[str] = []
    words: list[str] = []
    numbers: list[float] = []
    entities: set[str] = set()
    negations = 0
    for match in _TOKEN_RE.finditer(text):
        if match.lastgroup in ("number", "clock"):
            value = _parse_number(match.group())
            if value is not None:
                numbers.append(value)
                stems.append(f"#{value:g}")
                words.append(match.group().lower())
            continue
        if match.lastgroup == "op":
            continue
        raw = match.group()  # a word, or an alphanumeric token such as "4G" or "1080p"
        lower = raw.lower()
        if lower.endswith("n't"):
            negations += 1
            base = lower[:-3]
            lower = _NEGATED_AUXILIARIES.get(base, base)
        elif lower in _NEGATIONS:
            negations += 1
            continue
        if lower in _NUMBER_WORDS or lower in _ORDINALS:
            numbers.append(float(_NUMBER_WORDS.get(lower, _ORDINALS.get(lower, 0))))
        word_stem = stem(lower)
        stems.append(word_stem)
        words.append(lower)
        if _is_entity(raw, text, match.start()):
            entities.add(word_stem)
    return QueryAnalysis(
        stems=tuple(stems),
        words=tuple(words),
        content=frozenset(s for s in stems if s not in _STOP_STEMS and not s.startswith("#")),
        negations=negations,
        numbers=tuple(sorted(numbers)),
        math=tuple(re.sub(r"\s+", "", m.group()) for m in _MATH_RE.finditer(text)),
        entities=frozenset(entities),
        wh=_question_words(stems),
    )


def _question_words(stems: list[str]) -> frozenset[str]:
    """Question words; "which" reads as "what", "what way" as "how", "what time" as "when"."""
    found = set()
    for i, word in enumerate(stems):
        meaning = _WH_STEMS.get(word)
        if meaning == "what":
            following = stems[i + 1 : i + 2]
            meaning = next((m for nouns, m in _WH_NOUNS if nouns.intersection(following)), meaning)
            if meaning == "what" and _HOW_STEMS.intersection(stems[i + 1 : i + 6]):
                meaning = "how"  # "what is the best way to ..."
        if meaning is not None:
            found.add(meaning)
    return frozenset(found)


def _is_entity(raw: str, text: str, start: int) -> bool:
    """A name: capitalised (not at a sentence start), an acronym, camel-case, or alphanumeric."""
    if raw.isalpha() and raw.islower():
        return False
    if raw in _FIRST_PERSON:
        return False
    if not raw.isalpha() and any(c.isdigit() for c in raw):
        return True
    if len(raw) > 1 and raw.isupper():
        return raw.lower() not in _STOPWORDS  # "iPhone", "NASA"; not an emphatic "ONLY"
    if any(c.isupper() for c in raw[1:]):
        return True
    before = text[:start].rstrip()
    return raw[0].isupper() and bool(before) and before[-1] not in _SENTENCE_ENDS


_STOP_STEMS = frozenset(stem(w) for w in _STOPWORDS) | _STOPWORDS
_DIRECTIONAL_STEMS = frozenset(stem(w) for w in _DIRECTIONAL)
_WH_STEMS = {stem(w): _WH_CANONICAL.get(w, w) for w in _WH_WORDS}
_HOW_STEMS = frozenset(stem(w) for w in _HOW_NOUNS)
_WH_NOUNS = (
    (frozenset(stem(w) for w in _WHEN_NOUNS), "when"),
    (frozenset(stem(w) for w in _WHERE_NOUNS), "where"),
)


def _antonym_table(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """Map each stem to the stems opposed to it (both directions)."""
    table: dict[str, set[str]] = {}
    for left, right in pairs:
        a, b = stem(left), stem(right)
        table.setdefault(a, set()).add(b)
        table.setdefault(b, set()).add(a)
    return {word: frozenset(opposites) for word, opposites in table.items()}


_ANTONYM_PAIRS = [
    (pair.split()[0], pair.split()[1])
    for pair in _ANTONYMS.replace("\n", "|").split("|")
    if pair.strip()
]
_EMPTY: frozenset[str] = frozenset()


CHECKS = ("negation", "numbers", "entities", "order", "antonyms", "question")
"""Names of the guard's lexical checks, in the order they are reported."""
MODEL_CHECK = "model"
"""The reason reported when the soft model vetoes a pair (after the lexical checks)."""


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The guard's answer for one (cached, incoming) pair.

    Attributes:
        accepted: True when nothing suggests the two queries want different answers.
        reasons: the checks that fired (see `CHECKS`, then `MODEL_CHECK`), empty when accepted.
    """

    accepted: bool
    reasons: tuple[str, ...] = ()


class QueryGuard:
    """Vetoes a semantic-cache hit when the two queries visibly ask different things.

    Each check is lexical, general and cheap (a few microseconds per pair; each query's analysis
    is memoised), so it runs on every candidate the embedding similarity lets through:

    - ``negation``: the sides carry a different number of negation cues (not, n't, never, no,
      without, cannot, ...); "X or not" and "why or why not" are not negations.
    - ``numbers``: the quantities differ (digits, "$1,000", "10k", "5%", spelled-out numbers and
      ordinals), or the arithmetic expressions do ("2+3" vs "2+5").
    - ``entities``: a name on one side (capitalised mid-sentence, an acronym, camel-case or
      alphanumeric: Paris, NASA, iPhone, 4G) has no counterpart on the other side.
    - ``order``: two words swap sides around a directional word (from/to, before/after, than,
      vs, over/under, ...), or around any shared word when both sides use the same words.
    - ``antonyms``: a word on one side is opposed to one on the other (a curated list of general
      opposites, e.g. increase/decrease, buy/sell, enable/disable), or is it with a negating
      prefix (install/uninstall, legal/illegal).
    - ``question``: the question words ask for different kinds of answer (when vs why, where
      vs how, who vs when); "what"/"which" are generic, except "what time" (when), "what
      place" (where) and "what is the way" (how).
    - ``model`` (only when `similarity` is given): the soft model finds the pair unlikely to
      be the same question given its cosine and its rarity-weighted word overlap and
      difference (see `guard_model`). It needs the
      all-MiniLM-L6-v2 vocabulary; without it, the pair is vetoed below
      `SoftModel.fallback_cosine`.

    Args:
        checks: the lexical checks to run (default: all of `CHECKS`).
        antonyms: extra (word, opposite) pairs, e.g. domain terms such as ("long", "short").
        model: the soft model; None runs the lexical checks only.

    Example:
        >>> guard = QueryGuard()
        >>> guard.accepts("How do I cancel my order?", "how can I cancel my order")
        True
        >>> guard.check("cancel my order", "don't cancel my order")
        GuardVerdict(accepted=False, reasons=('negation',))
        >>> guard.check("flights from Paris to Rome", "flights from Rome to Paris").reasons
        ('order',)
    """

    def __init__(
        self,
        *,
        checks: Iterable[str] = CHECKS,
        antonyms: Iterable[tuple[str, str]] = (),
        model: SoftModel | None = DEFAULT_MODEL,
    ) -> None:
        """Select the checks to run and add domain antonyms to the built-in list."""
        self.checks = tuple(checks)
        unknown = set(self.checks) - set(CHECKS)
        if unknown:
            raise ConfigError(f"unknown guard checks {sorted(unknown)}; choose from {CHECKS}")
        self._antonyms = _antonym_table([*_ANTONYM_PAIRS, *antonyms])
        self.model = model

    def __repr__(self) -> str:
        return f"QueryGuard(checks={self.checks!r}, model={self.model!r})"

    def accepts(self, cached: str, incoming: str, similarity: float | None = None) -> bool:
        """Return True when `incoming` may be served the answer cached for `cached`.

        Stops at the first check that fires (`check` runs them all, to name them).
        """
        tests = self._tests(analyse(cached), analyse(incoming), similarity)
        return not any(test() for test in tests.values())

    def check(self, cached: str, incoming: str, similarity: float | None = None) -> GuardVerdict:
        """Compare the queries (embeddings at cosine `similarity`); name every check that fires."""
        tests = self._tests(analyse(cached), analyse(incoming), similarity)
        reasons = tuple(name for name, test in tests.items() if test())
        return GuardVerdict(accepted=not reasons, reasons=reasons)

    def _tests(
        self, a: QueryAnalysis, b: QueryAnalysis, similarity: float | None
    ) -> dict[str, Callable[[], bool]]:
        """The selected checks, cheapest first, as lazy tests."""
        stems_a, stems_b = set(a.stems), set(b.stems)
        tests: dict[str, Callable[[], bool]] = {
            "negation": lambda: a.negations != b.negations,
            "numbers": lambda: Counter(a.numbers) != Counter(b.numbers) or a.math != b.math,
            "entities": lambda: bool(
                _unmatched(a.entities, stems_b) or _unmatched(b.entities, stems_a)
            ),
            "order": lambda: _order_swap(a, b),
            "antonyms": lambda: _opposed(stems_a, stems_b, self._antonyms)
            or _opposed(stems_b, stems_a, self._antonyms),
            "question": lambda: _question_conflict(a.wh, b.wh),
        }
        selected = {name: tests[name] for name in self.checks}
        if self.model is not None and similarity is not None:
            selected[MODEL_CHECK] = partial(_model_vetoes, self.model, a, b, similarity)
        return selected


def _model_vetoes(model: SoftModel, a: QueryAnalysis, b: QueryAnalysis, cosine: float) -> bool:
    lex = lexicon()
    if lex is None:  # no vocabulary: no weaker than the lexical checks at their own threshold
        return cosine < model.fallback_cosine
    return not model.accepts(pair_features(a, b, cosine, lex))


def _unmatched(entities: frozenset[str], other: set[str]) -> set[str]:
    """Entities with no counterpart on the other side (a near-equal stem counts: Australia(n))."""
    return {e for e in entities if e not in other and not any(near_stem(e, o) for o in other)}


def _opposed(stems_a: set[str], stems_b: set[str], table: Mapping[str, frozenset[str]]) -> bool:
    """A word only in `stems_a` opposes a word only in `stems_b` (or negates it by a prefix)."""
    only_a, only_b = stems_a - stems_b, stems_b - stems_a
    if any(table.get(x, _EMPTY) & only_b for x in only_a):
        return True
    for y in only_b:
        match = _PREFIXED.match(y)
        if match and match.group(2) in only_a and match.group(1) not in stems_a:
            return True  # ("in" on the unprefixed side: "in front" vs "infront" is spacing)
    return False


def _question_conflict(wh_a: frozenset[str], wh_b: frozenset[str]) -> bool:
    """The sides ask for different kinds of answer: a time, place, person, reason or manner.

    "what"/"which" are generic and conflict with nothing ("what is X" ~ "how does X work").
    """
    specific_a, specific_b = wh_a - {"what"}, wh_b - {"what"}
    return bool(specific_a and specific_b and not specific_a & specific_b)


def _positions(stems: tuple[str, ...]) -> dict[str, int]:
    counts = Counter(stems)
    return {s: i for i, s in enumerate(stems) if counts[s] == 1}


def _order_swap(a: QueryAnalysis, b: QueryAnalysis) -> bool:
    """Two shared informative words cross a pivot word in opposite directions.

    The pivot is a shared directional word ("from A to B" vs "from B to A"), or any shared word
    when both sides have the same informative words ("does A cause B" vs "does B cause A").
    """
    pos_a, pos_b = _positions(a.stems), _positions(b.stems)
    shared = pos_a.keys() & pos_b.keys()
    movers = [s for s in shared if s not in _STOP_STEMS]
    if len(movers) < 2:
        return False
    pivots = shared - _SYMMETRIC if a.content == b.content else shared & _DIRECTIONAL_STEMS
    for pivot in pivots:
        left_a = {m for m in movers if m != pivot and pos_a[m] < pos_a[pivot]}
        left_b = {m for m in movers if m != pivot and pos_b[m] < pos_b[pivot]}
        if left_a - left_b and left_b - left_a:
            return True
    return False
