"""Fixtures of the server tests (the helpers are in `server_helpers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="needs stratarouter-runtime[server]")

from stratarouter_runtime.testing import FakeProviderServer


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[FakeProviderServer]:
    """A fake OpenAI-compatible provider on 127.0.0.1, shared by a module's tests."""
    with FakeProviderServer() as server:
        yield server
