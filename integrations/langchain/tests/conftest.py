from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from stratarouter_core.testing import AdapterContract


@pytest.fixture(scope="session")
def router():
    return AdapterContract.build_router()


class Recorder(BaseCallbackHandler):
    """Records chain starts/ends (name, tags, metadata) and custom events."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends: list[Any] = []
        self.events: list[tuple[str, Any]] = []
        self.llm_starts: list[dict[str, Any]] = []

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, tags=None,
                       metadata=None, **kwargs):
        self.starts.append({"name": kwargs.get("name"), "tags": tags or [],
                            "metadata": metadata or {}, "run_id": run_id})

    def on_chain_end(self, outputs, *, run_id, **kwargs):
        self.ends.append(outputs)

    def on_chat_model_start(self, serialized, messages, *, run_id, tags=None, metadata=None,
                            **kwargs):
        self.llm_starts.append({"tags": tags or [], "metadata": metadata or {}})

    def on_custom_event(self, name, data, *, run_id, **kwargs):
        self.events.append((name, data))

    def names(self) -> list[str | None]:
        return [s["name"] for s in self.starts]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
