"""PUT /v1/routes under load: no request fails, none sees a mix, in-flight ones finish on the old set."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import httpx
import numpy as np
from numpy.typing import NDArray
from server_helpers import live_server, make_router
from stratarouter_core import Router, RouterConfig
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime.server import create_app


def _document(prefix: str) -> dict[str, object]:
    return {
        "config": {"threshold": 0.0},
        "routes": [
            {"name": f"{prefix}billing", "examples": ["I was charged twice", "refund my invoice"]},
            {"name": f"{prefix}weather", "examples": ["will it rain today", "is it sunny"]},
            {"name": f"{prefix}tech", "examples": ["the app crashes", "error 500 on login"]},
        ],
    }


def test_swaps_under_concurrent_requests_never_fail_nor_mix() -> None:
    app = create_app(make_router(prefix="a_"))
    failures: list[str] = []
    seen: list[tuple[int, set[str]]] = []
    stop = threading.Event()
    with live_server(app) as url:

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                while not stop.is_set():
                    response = client.post(
                        "/v1/route", json={"query": "refund my invoice", "top_k": 3}
                    )
                    if response.status_code != 200:
                        failures.append(response.text)
                        continue
                    body = response.json()
                    seen.append(
                        (body["route_set_version"], {c["route"][:2] for c in body["candidates"]})
                    )

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        with httpx.Client(base_url=url, timeout=30) as admin:
            for i in range(8):  # versions 2..9: even -> b_, odd -> a_
                prefix = "b_" if i % 2 == 0 else "a_"
                response = admin.put("/v1/routes", json=_document(prefix))
                assert response.status_code == 200, response.text
                time.sleep(0.05)
        stop.set()
        for worker in workers:
            worker.join(10)
    assert failures == []
    assert len(seen) > 50
    versions = {version for version, _ in seen}
    assert len(versions) >= 4  # requests really ran across several swaps
    for version, prefixes in seen:
        assert prefixes == {"a_" if version % 2 else "b_"}, (version, prefixes)


class GatedEncoder(HashingEncoder):
    """Blocks while encoding a text containing SLOW until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(64)
        self.entered, self.gate = threading.Event(), threading.Event()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if any("SLOW" in t for t in texts):
            self.entered.set()
            assert self.gate.wait(10)
        return super().encode(texts)


def test_an_in_flight_request_finishes_on_the_set_it_started_with() -> None:
    from server_helpers import make_routes

    encoder = GatedEncoder()
    router = Router(
        encoder=encoder,
        config=RouterConfig(threshold=0.0, encoder_cache_size=0),
        routes=make_routes("old_"),
    )
    router.build_index()
    with live_server(create_app(router)) as url:
        result: dict[str, object] = {}

        def slow() -> None:
            result.update(
                httpx.post(f"{url}/v1/route", json={"query": "SLOW refund"}, timeout=20).json()
            )

        thread = threading.Thread(target=slow)
        thread.start()
        assert encoder.entered.wait(10)
        put = httpx.put(f"{url}/v1/routes", json=_document("new_"), timeout=20)
        assert put.status_code == 200
        # the encoder is busy with the slow request: route the new set with an embedding
        vector = HashingEncoder(64).encode(["refund my invoice"])[0].tolist()
        body = {"query": "refund my invoice", "embedding": vector}
        after = httpx.post(f"{url}/v1/route", json=body).json()
        assert (after["route"], after["route_set_version"]) == ("new_billing", 2)
        encoder.gate.set()
        thread.join(20)
    assert result["route_set_version"] == 1
    assert result["route"] == "old_billing"
