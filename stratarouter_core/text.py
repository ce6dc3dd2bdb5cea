"""Tokenisation shared by the sparse scorer and the keyword rules."""

from __future__ import annotations

import re

__all__ = ["ENGLISH_STOP_WORDS", "tokenize"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (Unicode letters, digits and underscore).

    Example:
        >>> tokenize("Refund invoice #42, please!")
        ['refund', 'invoice', '42', 'please']
    """
    return _TOKEN.findall(text.lower())


# English function words: pronouns, determiners, auxiliaries, prepositions, conjunctions and
# question words. They carry grammar, not topic, so BM25 leaves them out; the dense score still
# sees them. A fixed linguistic list, not one learned from any data set.
ENGLISH_STOP_WORDS = frozenset(
    [
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any",
        "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
        "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each",
        "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here",
        "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it",
        "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now",
        "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out",
        "over", "own", "s", "same", "she", "should", "so", "some", "such", "t", "than", "that",
        "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this",
        "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were",
        "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would",
        "you", "your", "yours", "yourself", "yourselves", "d", "ll", "m", "re", "ve", "y", "don",
        "doesn", "didn", "isn", "aren", "wasn", "weren", "won", "couldn", "shouldn", "wouldn",
        "haven", "hasn", "im", "ive", "id", "youre", "dont", "doesnt", "didnt", "cant", "wont",
        "isnt", "arent", "wasnt", "please",
    ]
)
