"""QueryGuard: no false hit on negation / number / entity / order / antonym pairs; paraphrases pass.

The adversarial pairs below span shopping, travel, finance, health, software, maths, sport and
everyday requests. Every one of them means something else on each side, so the guard must reject
all of them, whatever the embedding similarity (many sit above 0.95 with all-MiniLM-L6-v2).
"""

from __future__ import annotations

import pytest
from stratarouter_core.errors import ConfigError

from stratarouter_runtime import guard_model
from stratarouter_runtime.guard import (
    CHECKS,
    MODEL_CHECK,
    GuardVerdict,
    QueryGuard,
    analyse,
    stem,
)
from stratarouter_runtime.guard_model import (
    DEFAULT_MODEL,
    Lexicon,
    SoftModel,
    lexicon,
    pair_features,
)

ADVERSARIAL: list[tuple[str, str, str]] = [
    # negation
    ("cancel my order", "don't cancel my order", "negation"),
    ("How do I cancel my subscription?", "How do I not cancel my subscription?", "negation"),
    ("Is it safe to drink tap water in Mexico?", "Is it not safe to drink tap water in Mexico?",
     "negation"),
    ("Why does my laptop turn on?", "Why doesn't my laptop turn on?", "negation"),
    ("Can I take ibuprofen with alcohol?", "Can I take ibuprofen without alcohol?", "negation"),
    ("I want to renew my insurance policy", "I never want to renew my insurance policy",
     "negation"),
    ("my payment went through", "my payment did not go through", "negation"),
    ("Which foods contain gluten?", "Which foods contain no gluten?", "negation"),
    ("Should I refund the customer?", "Should I not refund the customer?", "negation"),
    ("the app can sync my contacts", "the app cannot sync my contacts", "negation"),
    # numbers and quantities
    ("what is 2+3", "what is 2+5", "numbers"),
    ("best laptop under $500", "best laptop under $1000", "numbers"),
    ("How many calories are in 2 eggs?", "How many calories are in 3 eggs?", "numbers"),
    ("What is 15% of 80?", "What is 20% of 80?", "numbers"),
    ("Convert 10 miles to kilometers", "Convert 100 miles to kilometers", "numbers"),
    ("Who won the World Cup in 2014?", "Who won the World Cup in 2018?", "numbers"),
    ("Is a 5 year mortgage better?", "Is a 30 year mortgage better?", "numbers"),
    ("Book a table for two people", "Book a table for six people", "numbers"),
    ("What happened in the first chapter of the book?",
     "What happened in the second chapter of the book?", "numbers"),
    ("What is 12 divided by 4?", "What is 12 divided by 3?", "numbers"),
    ("price of a 10k gold ring", "price of a 14k gold ring", "numbers"),
    ("Set an alarm for 7am", "Set an alarm for 8am", "numbers"),
    # entities
    ("What is the capital of Australia?", "What is the capital of Austria?", "entities"),
    ("How do I reset my Gmail password?", "How do I reset my Outlook password?", "entities"),
    ("Best restaurants in Paris", "Best restaurants in Rome", "entities"),
    ("Who is the CEO of Microsoft?", "Who is the CEO of Apple?", "entities"),
    ("How do I install Python on Windows?", "How do I install Python on Linux?", "entities"),
    ("Side effects of Lipitor", "Side effects of Zocor", "entities"),
    ("What does the iPhone 15 cost?", "What does the Pixel 8 cost?", "entities"),
    ("How do I reset my password?", "How do I reset my Netflix password?", "entities"),
    ("Is vitamin D good for sleep?", "Is vitamin B good for sleep?", "entities"),
    ("Track my FedEx package", "Track my UPS package", "entities"),
    # order swaps around directional words
    ("flights from Paris to Rome", "flights from Rome to Paris", "order"),
    ("convert USD to EUR", "convert EUR to USD", "order"),
    ("Is Java faster than Python?", "Is Python faster than Java?", "order"),
    ("transfer money from savings to checking", "transfer money from checking to savings",
     "order"),
    ("Does smoking cause cancer?", "Does cancer cause smoking?", "order"),
    ("train from Boston to New York", "train from New York to Boston", "order"),
    ("translate this sentence from English to Spanish",
     "translate this sentence from Spanish to English", "order"),
    # antonyms
    ("how to increase my credit score", "how to decrease my credit score", "antonyms"),
    ("Should I buy Tesla stock?", "Should I sell Tesla stock?", "antonyms"),
    ("How do I enable two-factor authentication?", "How do I disable two-factor authentication?",
     "antonyms"),
    ("How do I install the printer driver?", "How do I uninstall the printer driver?",
     "antonyms"),
    ("What foods raise blood pressure?", "What foods lower blood pressure?", "antonyms"),
    ("How do I log in to my account?", "How do I log out of my account?", "antonyms"),
    ("How to gain weight quickly", "How to lose weight quickly", "antonyms"),
    ("Is it legal to record a phone call?", "Is it illegal to record a phone call?", "antonyms"),
    ("What are the advantages of remote work?", "What are the disadvantages of remote work?",
     "antonyms"),
    ("How do I add a user to the group?", "How do I remove a user from the group?", "antonyms"),
    ("What is the fastest way to get to the airport?",
     "What is the slowest way to get to the airport?", "antonyms"),
    ("how to turn on dark mode", "how to turn off dark mode", "antonyms"),
    ("Is the pharmacy open on Sunday?", "Is the pharmacy closed on Sunday?", "antonyms"),
    # question type
    ("When was the Eiffel Tower built?", "Why was the Eiffel Tower built?", "question"),
    ("Where was Einstein born?", "When was Einstein born?", "question"),
]

PARAPHRASES: list[tuple[str, str]] = [
    ("How do I cancel my order?", "how can I cancel my order"),
    ("What is the capital of France?", "What's the capital of France?"),
    ("How can I reset my password?", "How do I reset my password?"),
    ("What is the best way to learn Python?", "How do I learn Python?"),
    ("flights from Paris to Rome", "flights to Rome from Paris"),
    ("I want to cancel my subscription", "please cancel my subscription"),
    ("How do I lose weight fast?", "What is the fastest way to lose weight?"),
    ("Why is the sky blue?", "Why is the sky blue"),
    ("How many calories are in an egg?", "How many calories does an egg have?"),
    ("Where can I buy cheap flights?", "Where can I find cheap flights?"),
    ("What are the symptoms of the flu?", "What are flu symptoms?"),
    ("How do I update my billing address?", "How can I change my billing address?"),
    ("Is it safe to drink tap water in Mexico?", "Can you safely drink tap water in Mexico?"),
    ("Why can't I sleep at night?", "Why am I unable to sleep at night?"),
    ("What is 2+3?", "what is 2 + 3"),
    ("best laptop under $500", "Best laptops under 500 dollars"),
    ("How do I make pancakes?", "How to make pancakes"),
    ("Should I learn Java or Python first?", "Should I learn Python or Java first?"),
    ("What's the difference between a virus and bacteria?",
     "What is the difference between bacteria and a virus?"),
    ("Should I eat before or after a workout?", "Should I eat after or before a workout?"),
    ("Who wrote Hamlet?", "who is the author of Hamlet"),
    ("Can dogs eat grapes?", "Is it okay for dogs to eat grapes?"),
    ("How do I export my contacts?", "How can I export my contacts?"),
    ("What time does the store open on Sunday?", "When does the store open on Sunday?"),
    ("Is Lightning faster than sound?", "Is lightning faster than sound? Why or why not?"),
]


def test_the_adversarial_set_is_large_and_diverse() -> None:
    assert len(ADVERSARIAL) >= 40
    assert {kind for _, _, kind in ADVERSARIAL} == set(CHECKS)


@pytest.mark.parametrize(("cached", "incoming", "kind"), ADVERSARIAL)
@pytest.mark.parametrize("similarity", [None, 0.9, 0.97, 1.0])
def test_no_false_hit_on_adversarial_pairs(
    cached: str, incoming: str, kind: str, similarity: float | None
) -> None:
    """Whatever the cosine, the soft model never re-admits what a lexical check vetoes."""
    guard = QueryGuard()
    assert not guard.accepts(cached, incoming, similarity)
    assert not guard.accepts(incoming, cached, similarity), "the guard must be symmetric"
    assert kind in guard.check(cached, incoming, similarity).reasons


def test_zero_false_hits_over_the_whole_set() -> None:
    guard = QueryGuard()
    false_hits = [(a, b) for a, b, _ in ADVERSARIAL if guard.accepts(a, b, 1.0)]
    assert false_hits == []


@pytest.mark.parametrize(("cached", "incoming"), PARAPHRASES)
@pytest.mark.parametrize("similarity", [None, 0.98])
def test_paraphrases_still_pass(cached: str, incoming: str, similarity: float | None) -> None:
    guard = QueryGuard()
    assert guard.check(cached, incoming, similarity) == GuardVerdict(accepted=True, reasons=())
    assert guard.accepts(incoming, cached, similarity)


def test_identical_queries_pass() -> None:
    for cached, incoming, _ in ADVERSARIAL:
        assert QueryGuard().accepts(cached, cached)
        assert QueryGuard().accepts(incoming, incoming)


def test_checks_can_be_chosen() -> None:
    only_numbers = QueryGuard(checks=["numbers"])
    assert only_numbers.accepts("cancel my order", "don't cancel my order")
    assert not only_numbers.accepts("what is 2+3", "what is 2+5")
    assert QueryGuard(checks=()).accepts("what is 2+3", "what is 2+5")


def test_unknown_check_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown guard checks"):
        QueryGuard(checks=["negation", "sentiment"])


def test_domain_antonyms_can_be_added() -> None:
    pair = ("open a long position on gold", "open a short position on gold")
    assert QueryGuard().accepts(*pair) is False  # long/short is in the general list already
    custom = QueryGuard(antonyms=[("bullish", "bearish")])
    assert not custom.accepts("is the desk bullish on oil", "is the desk bearish on oil")
    assert QueryGuard().accepts("is the desk bullish on oil", "is the desk bearish on oil")


def test_analysis_reads_numbers_entities_and_negation() -> None:
    analysis = analyse("Don't ship 2 parcels to Berlin for $1,500 or 10k")
    assert analysis.negations == 1
    assert analysis.numbers == (2.0, 1500.0, 10000.0)
    assert analysis.entities == frozenset({"berlin"})
    assert analyse("Why or why not?").negations == 0


def test_stemmer_collapses_inflections() -> None:
    assert stem("cancelled") == stem("cancel") == stem("cancelling")
    assert stem("increases") == stem("increased") == stem("increase")
    assert stem("bought") == "buy"


# --- the soft model ------------------------------------------------------------------------------

QUALIFIED = ("best restaurants in Vancouver", "best restaurants in downtown Vancouver")
REWORDED = ("How do I lose weight fast?", "What is the fastest way to lose weight?")


@pytest.fixture
def vocabulary(local_encoder) -> Lexicon:
    """The vocabulary ships with the local encoder's files (skip or CI failure without them)."""
    found = lexicon()
    assert found is not None
    return found


def test_the_model_asks_more_cosine_of_a_pair_whose_few_differing_words_matter(vocabulary) -> None:
    guard = QueryGuard()
    assert guard.check(*QUALIFIED, 0.93).reasons == (MODEL_CHECK,)
    assert guard.accepts(*QUALIFIED, 0.99)
    assert guard.accepts(*REWORDED, 0.93), "a rewording at the same cosine is a paraphrase"
    assert not guard.accepts(*REWORDED, 0.88)


def test_the_model_needs_the_cosine(vocabulary) -> None:
    assert QueryGuard().accepts(*QUALIFIED)  # no similarity: lexical checks only
    assert QueryGuard(model=None).accepts(*QUALIFIED, 0.93)


def test_without_the_vocabulary_the_model_falls_back_to_the_cosine(monkeypatch) -> None:
    monkeypatch.setattr(guard_model, "_LEXICON", [None])
    guard = QueryGuard()
    assert guard.check(*REWORDED, 0.93).reasons == (MODEL_CHECK,)
    assert guard.accepts(*REWORDED, DEFAULT_MODEL.fallback_cosine)


def test_rarity_follows_the_vocabulary_order(vocabulary) -> None:
    weights = [vocabulary.weight(w) for w in ("the", "restaurant", "vancouver", "zxqv")]
    assert weights == sorted(weights) and weights[0] < 0.1 and weights[-1] == 1.0


def test_pair_features_weigh_overlap_and_difference() -> None:
    lex = Lexicon({"[PAD]": 0, "the": 1, "in": 2, "best": 3, "restaurants": 4, "cheap": 5})
    same = pair_features(analyse(QUALIFIED[0]), analyse(QUALIFIED[0]), 0.97, lex)
    assert same == (0.97, pytest.approx(1.0), 0.0)
    common = pair_features(analyse("the restaurants"), analyse("the cheap restaurants"), 0.9, lex)
    rare = pair_features(analyse(QUALIFIED[0]), analyse(QUALIFIED[1]), 0.9, lex)
    assert 0 < common[2] < rare[2] == 1.0  # an unknown word weighs the most
    assert common[1] < 1.0


def test_soft_model_probability_and_cut() -> None:
    model = SoftModel(intercept=-9.0, weights=(10.0, -1.0, 0.5), min_probability=0.5,
                      fallback_cosine=0.95)
    assert model.probability((0.9, 0.0, 0.0)) == pytest.approx(0.5)
    assert model.accepts((0.9, 0.0, 0.1)) and not model.accepts((0.9, 0.1, 0.0))


def test_default_model_is_the_documented_rule() -> None:
    # cosine >= 0.90 + 0.05 * overlap (guard_model's docstring), decided at probability 0.5
    model = DEFAULT_MODEL
    assert model.min_probability == 0.5 and model.weights[2] == 0.0
    for overlap in (0.0, 0.5, 1.0):
        required = 0.90 + 0.05 * overlap
        assert model.accepts((required + 1e-6, overlap, 3.0))
        assert not model.accepts((required - 1e-3, overlap, 0.0))
    assert model.fallback_cosine == pytest.approx(0.95)  # the rule's strictest requirement


def test_no_stop_word_comes_from_a_data_set() -> None:
    from stratarouter_runtime.guard import _STOPWORDS

    assert "quora" not in _STOPWORDS
    # content words are never stop words, however frequent in some corpus
    assert not {"best", "good", "people", "way", "like", "use", "get", "new"} & _STOPWORDS
