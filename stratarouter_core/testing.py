"""Test helpers shipped with the library: a dependency-free deterministic encoder.

`HashingEncoder` lets tests, examples and adapter packages build real routers with no model:
it hashes word unigrams/bigrams and character trigrams into a fixed number of buckets.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .encoders.base import BaseEncoder

__all__ = ["HashingEncoder"]

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEncoder(BaseEncoder):
    """Deterministic bag-of-features encoder: similar wording gives similar vectors.

    Example:
        >>> encoder = HashingEncoder(dimension=64)
        >>> vectors = encoder.encode(["refund my invoice", "refund the invoice", "weather today"])
        >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
        True
    """

    def __init__(self, dimension: int = 256) -> None:
        """Hash into `dimension` buckets."""
        self.dimension = dimension

    @property
    def fingerprint(self) -> str:
        """Same hashing scheme and dimension, same vectors."""
        return f"stratarouter-hashing-v1:{self.dimension}"

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        features = list(words)
        features += [f"{a} {b}" for a, b in itertools.pairwise(words)]
        for word in words:
            padded = f"#{word}#"
            features += [padded[i : i + 3] for i in range(len(padded) - 2)]
        return features

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode `texts` into L2-normalised hashed feature vectors."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = zlib.crc32(feature.encode("utf-8"))
                sign = 1.0 if digest & 1 else -1.0
                out[row, (digest >> 1) % self.dimension] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        normalised: NDArray[np.float32] = out / norms
        return normalised


# --- Shared adapter contract -------------------------------------------------------------------
# Every framework adapter (LangChain, LangGraph, CrewAI, AutoGen, ...) must return exactly the
# decision the router itself makes. Adapter test suites build the same router, send the same
# queries through their adapter, and let `AdapterContract.check` compare.

from collections.abc import Callable  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from .router import Router

__all__ += ["AdapterContract"]

_CONTRACT_ROUTES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice on my invoice",
        "refund my last payment",
        "update the credit card on my account",
        "why is my bill higher this month",
        "cancel my subscription and refund me",
    ),
    "tech_support": (
        "the app crashes when I open it",
        "I cannot log in, password reset email never arrives",
        "error 500 when uploading a file",
        "the sync feature is broken on my phone",
        "how do I fix a connection timeout error",
    ),
    "sales": (
        "I want a quote for 50 enterprise seats",
        "what does the premium plan cost",
        "can I book a product demo with sales",
        "do you offer volume discounts for teams",
        "talk to someone about buying a license",
    ),
}

_CONTRACT_CASES: tuple[tuple[str, str | None], ...] = (
    ("I was charged twice, please refund my payment", "billing"),
    ("my invoice shows the wrong bill amount", "billing"),
    ("update my credit card for the subscription", "billing"),
    ("the app crashes with error 500 when I upload", "tech_support"),
    ("password reset email never arrives, cannot log in", "tech_support"),
    ("connection timeout error on my phone sync", "tech_support"),
    ("how much does the premium plan cost for 50 seats", "sales"),
    ("book a demo and get a quote for an enterprise license", "sales"),
    ("volume discounts for buying licenses for my team", "sales"),
    ("what is the capital of mongolia", None),
    ("recommend a good lasagna recipe", None),
    ("zxqv plorb wemby", None),
)


class AdapterContract:
    """Shared conformance check: an adapter must route as the router does, and rightly.

    The router is deterministic (it uses `HashingEncoder`), so an adapter test can build it,
    wrap it in the adapter, and let `check` compare the adapter's decisions with the router's
    and with the expected label of every contract case. Out-of-scope queries are included so
    that abstain/fallback goes through the adapter too.

    The checks do not depend on exact confidence values (those belong to the router's
    calibration): in-scope queries must be decided as their label says, and out-of-scope
    queries must not be routed with high confidence, that is with a confidence of 0.5 or more
    (more likely right than not) or at least as high as an in-scope query's.

    Example:
        >>> router = AdapterContract.build_router()
        >>> AdapterContract.check(lambda q: router.route(q).route_id, router)
        >>> sorted(set(AdapterContract.expected(router).values()), key=str)
        [None, 'billing', 'sales', 'tech_support']
        >>> AdapterContract.check(lambda q: "billing", router)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: adapter does not keep the routing contract:
        ...
    """

    routes: dict[str, tuple[str, ...]] = _CONTRACT_ROUTES
    cases: tuple[tuple[str, str | None], ...] = _CONTRACT_CASES
    high_confidence: float = 0.5
    """A confidence this high says "more likely right than not": out of scope must stay below."""

    @classmethod
    def route_names(cls) -> list[str]:
        """Names of the contract router's routes, in insertion order."""
        return list(cls.routes)

    @classmethod
    def build_router(cls, *, threshold: float = 0.2, fallback_route: str | None = None) -> Router:
        """Build, index and return the contract router (HashingEncoder, three routes).

        The default threshold sits between the in-scope and the out-of-scope contract queries
        (HashingEncoder confidences are low in absolute terms), so both paths are exercised.
        """
        from .config import RouterConfig
        from .router import Router
        from .types import Route

        config = RouterConfig(threshold=threshold, fallback_route=fallback_route)
        router = Router(encoder=HashingEncoder(), config=config)
        router.add_routes([Route(name=name, examples=list(ex)) for name, ex in cls.routes.items()])
        router.build_index()
        return router

    @classmethod
    def queries(cls) -> list[str]:
        """The contract queries: in-scope ones for every route, then out-of-scope ones."""
        return [query for query, _ in cls.cases]

    @classmethod
    def labels(cls) -> dict[str, str | None]:
        """The expected route of every contract query (None: out of scope)."""
        return dict(cls.cases)

    @classmethod
    def expected(cls, router: Router | None = None) -> dict[str, str | None]:
        """The router's own decision (`route(q).route_id`) for every contract query."""
        router = router if router is not None else cls.build_router()
        return {query: router.route(query).route_id for query in cls.queries()}

    @classmethod
    def check(cls, route_fn: Callable[[str], str | None], router: Router | None = None) -> None:
        """Assert that the adapter routes every contract query as the contract says.

        For every query, the adapter's route must be the router's (`router.route(q).route_id`).
        For in-scope queries it must also be the case's label. Out-of-scope queries must not
        be routed with high confidence: below `high_confidence` and below the lowest
        confidence of the in-scope queries, whatever the router then decided.

        Args:
            route_fn: Sends one query through the adapter and returns the route it chose
                (None when the adapter abstained / went to its fallback without a route).
            router: The router the adapter wraps; defaults to a fresh `build_router()`.

        Raises:
            AssertionError: Listing every query on which the contract is broken.
        """
        router = router if router is not None else cls.build_router()
        results = {query: router.route(query) for query in cls.queries()}
        problems = []
        for query, label in cls.cases:
            got, want = route_fn(query), results[query].route_id
            if got != want:
                problems.append(f"{query!r}: adapter={got!r} router={want!r}")
            if label is not None and got != label:
                problems.append(f"{query!r}: routed to {got!r}, expected {label!r}")
        lowest_in_scope = min(results[q].confidence for q, label in cls.cases if label)
        bar = min(cls.high_confidence, lowest_in_scope)
        for query, label in cls.cases:
            result = results[query]
            if label is None and result.confidence >= bar:
                best = result.top.route_id if result.top is not None else None
                problems.append(
                    f"{query!r} is out of scope but the router is confident: "
                    f"{best!r} at "
                    f"{result.confidence:.3f} (in-scope queries go as low as "
                    f"{lowest_in_scope:.3f})"
                )
        if problems:
            raise AssertionError(
                "adapter does not keep the routing contract:\n  " + "\n  ".join(problems)
            )
