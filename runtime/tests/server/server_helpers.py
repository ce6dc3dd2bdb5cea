"""Helpers of the server tests: routers on the HashingEncoder, live uvicorn servers on 127.0.0.1.

A module of its own (not conftest.py): the root conftest is already imported as ``conftest``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs stratarouter-runtime[server]")
pytest.importorskip("uvicorn", reason="needs stratarouter-runtime[server]")

import uvicorn
from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.testing import HashingEncoder

TARGET = {"provider": "local", "model": "fake-small"}


def make_routes(prefix: str = "") -> list[Route]:
    """Three well-separated routes, names prefixed (so two sets are told apart)."""
    return [
        Route(
            name=f"{prefix}billing",
            examples=["I was charged twice", "refund my invoice", "my card was billed two times"],
            keywords=["invoice", "refund"],
            metadata={**TARGET, "system_prompt": "You are a billing assistant."},
        ),
        Route(
            name=f"{prefix}weather",
            examples=["will it rain today", "weather forecast for tomorrow", "is it sunny"],
            metadata=TARGET,
        ),
        Route(
            name=f"{prefix}tech",
            examples=["the app crashes on start", "error 500 when I log in", "cannot log in"],
            metadata=TARGET,
        ),
    ]


def make_router(prefix: str = "", dimension: int = 64) -> Router:
    router = Router(
        encoder=HashingEncoder(dimension),
        config=RouterConfig(threshold=0.0),
        routes=make_routes(prefix),
    )
    router.build_index()
    return router


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def live_server(app: Any, **options: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free loopback port; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",  # uvloop warns about transports still open at shutdown
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
