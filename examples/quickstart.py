"""Quickstart: a dozen support routes, twenty queries, decisions with confidence and timing.

Runs offline with the default encoder (all-MiniLM-L6-v2 in numpy, no torch):

    make demo            # or: python examples/quickstart.py
"""

from __future__ import annotations

import time

from stratarouter_core import Route, Router, RouterConfig

ROUTES = [
    Route(
        name="billing",
        description="Payments, invoices, charges and refunds",
        examples=[
            "I was charged twice this month",
            "refund my last invoice",
            "why is my bill higher than usual",
            "update my credit card details",
            "I want my money back for the duplicate payment",
        ],
        keywords=["invoice", "refund", "billing"],
        patterns=[r"\binvoice\s*#?\d+"],
        metadata={"provider": "openai", "model": "gpt-4o-mini"},
    ),
    Route(
        name="tech_support",
        description="Bugs, crashes, errors and connectivity problems",
        examples=[
            "the app crashes when I open it",
            "I get error 500 when I log in",
            "my internet keeps disconnecting",
            "the page will not load",
            "the update broke my installation",
        ],
        patterns=[r"\berror\s*\d{3}\b"],
    ),
    Route(
        name="account",
        description="Login, password, profile and account settings",
        examples=[
            "I forgot my password",
            "how do I change my email address",
            "lock my account, it was hacked",
            "enable two factor authentication",
            "delete my account",
        ],
    ),
    Route(
        name="shipping",
        description="Delivery status, tracking and shipping options",
        examples=[
            "where is my package",
            "my order has not arrived yet",
            "how long does express delivery take",
            "track my parcel",
            "can I change the delivery address",
        ],
        keywords=["tracking number"],
    ),
    Route(
        name="returns",
        description="Returning products and exchanges",
        examples=[
            "how do I return these shoes",
            "the item arrived broken, I want to send it back",
            "can I exchange this for a bigger size",
            "print a return label",
            "what is your return policy",
        ],
    ),
    Route(
        name="sales",
        description="Pricing, plans, quotes and upgrades",
        examples=[
            "how much does the pro plan cost",
            "I want a quote for 50 seats",
            "do you offer discounts for nonprofits",
            "upgrade me to the business plan",
            "compare your plans",
        ],
    ),
    Route(
        name="cancellation",
        description="Cancelling a subscription or an order",
        examples=[
            "cancel my subscription",
            "I want to stop my membership",
            "cancel the order I placed yesterday",
            "how do I end my plan",
            "stop renewing automatically",
        ],
    ),
    Route(
        name="privacy",
        description="Personal data, GDPR requests and privacy policy",
        examples=[
            "what data do you keep about me",
            "send me a copy of my personal data",
            "I want you to erase my data under GDPR",
            "who do you share my data with",
            "opt out of marketing tracking",
        ],
    ),
    Route(
        name="feedback",
        description="Compliments, complaints and suggestions",
        examples=[
            "your support team was amazing",
            "I want to file a complaint",
            "you should add a dark mode",
            "the service was terrible today",
            "here is a suggestion for your app",
        ],
    ),
    Route(
        name="store_hours",
        description="Opening hours and store locations",
        examples=[
            "what time do you open on sunday",
            "are you open on public holidays",
            "where is your nearest store",
            "store opening hours",
            "is the downtown shop open late",
        ],
    ),
    Route(
        name="product_info",
        description="Product features, specifications and availability",
        examples=[
            "is this laptop compatible with usb c",
            "what are the dimensions of the desk",
            "is the blue version back in stock",
            "does the watch work with android",
            "what material is the jacket made of",
        ],
    ),
    Route(
        name="small_talk",
        description="Greetings and chit-chat",
        examples=[
            "hello there",
            "how are you today",
            "good morning",
            "thanks a lot, bye",
            "who are you",
        ],
    ),
]

QUERIES = [
    "why was my card charged two times?",
    "please refund invoice #4471",
    "I keep getting error 503 on the dashboard",
    "I can't remember my login password",
    "my parcel is late, where is it",
    "I'd like to send back the headphones",
    "what's the price for the enterprise tier",
    "please stop my monthly subscription",
    "delete everything you store about me",
    "your agent was super helpful, thanks",
    "when does the mall shop close tonight",
    "does the phone case fit the newer model",
    "hi, how's it going",
    "the app freezes after the latest update",
    "can I swap this shirt for a medium",
    # out of scope: no route fits these
    "what is the capital of australia",
    "write me a poem about the sea",
    "how many calories are in an avocado",
    "who won the football world cup in 2010",
    "explain quantum entanglement simply",
]


def main() -> None:
    """Build the router, route the queries and print the decisions."""
    started = time.perf_counter()
    # Defaults: confidence is calibrated and the threshold chosen from the examples at
    # build_index, no labelled data or fit needed.
    router = Router(config=RouterConfig(fallback_route="human"))
    router.add_routes(ROUTES)
    router.build_index()
    print(
        f"built {len(ROUTES)} routes in {time.perf_counter() - started:.2f} s "
        f"(encoder: {type(router.encoder).__name__}); threshold {router.threshold:.2f}, "
        "calibrated from the route examples\n"
    )
    results = router.route_batch(QUERIES)  # encodes once, vectorised
    print(f"{'query':<48} {'route':<18} {'confidence':>10} {'route() us':>11}")
    print("-" * 90)
    for query, batched in zip(QUERIES, results):
        single = router.route(query)  # the query's vector is cached: this times routing alone
        assert single.route_id == batched.route_id
        route = single.route_id if not single.is_fallback else f"{single.route_id} (fallback)"
        print(f"{query[:47]:<48} {route:<18} {single.confidence:>10.3f} {single.latency_us:>11.0f}")
    print("\nHow the first decision was made:\n")
    print(router.explain(QUERIES[0]))


if __name__ == "__main__":
    main()
