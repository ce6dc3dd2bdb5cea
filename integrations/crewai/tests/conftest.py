"""CrewAI test environment: set while crewai is first imported, and around each test here.

crewai writes under HOME when imported (credentials/secret.key) and under CREWAI_STORAGE_DIR
when a crew runs; both point to one absolute temporary directory, removed at session end.
Tracing and telemetry are off (a first kickoff on a fresh HOME otherwise stalls ~5 s). The
variables are restored in between, so the rest of the test session sees the real ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import Field

_TMP = tempfile.mkdtemp(prefix="stratarouter-crewai-")
CREWAI_ENV = {
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_STORAGE_DIR": os.path.join(_TMP, "storage"),
    "HOME": _TMP,
}


@contextlib.contextmanager
def _crewai_env() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in CREWAI_ENV}
    os.environ.update(CREWAI_ENV)
    try:
        yield
    finally:  # other packages' tests (e.g. core's OpenTelemetry tests) see the real env
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


with _crewai_env(), warnings.catch_warnings():
    # crewai's import raises ImportWarning (crewai.rag forbids setattr of its submodule), which
    # the project's filterwarnings=error would turn into a collection error.
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401
    from crewai import BaseLLM
    from crewai.flow.flow import Flow  # noqa: F401

from stratarouter_core.testing import AdapterContract  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
# crewai 1.15 reads its own deprecated fields (function_calling_llm, allow_code_execution,
# multimodal, reasoning...) on every Agent build and task run: ignore DeprecationWarnings
# raised from crewai's modules only.
_CREWAI_NOISE = "ignore::DeprecationWarning:crewai"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(_HERE):
            item.add_marker(pytest.mark.filterwarnings(_CREWAI_NOISE))


@pytest.fixture(autouse=True)
def crewai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CrewAI environment, for the tests of this directory only."""
    for key, value in CREWAI_ENV.items():
        monkeypatch.setenv(key, value)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_TMP, ignore_errors=True)


class CannedLLM(BaseLLM):
    """An offline BaseLLM: replies in order, then a default; counts its calls."""

    replies: list[str] = Field(default_factory=list)
    default: str = "Final Answer: (canned)"
    calls: int = 0

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        return self.replies.pop(0) if self.replies else self.default


@pytest.fixture
def canned():
    """Factory: canned("Final Answer: hi") -> a fresh CannedLLM."""

    def make(*replies: str, default: str = "Final Answer: (canned)") -> CannedLLM:
        return CannedLLM(model="canned", replies=list(replies), default=default)

    return make


@pytest.fixture(scope="session")
def router():
    return AdapterContract.build_router()


@pytest.fixture
def make_agents(canned):
    """Factory: one Agent per role, each with its own CannedLLM answering '<role> did it'."""
    from crewai import Agent

    def make(roles):
        return [
            Agent(role=role, goal=f"handle {role}", backstory=f"{role} expert",
                  llm=canned(default=f"Final Answer: {role} did it"))
            for role in roles
        ]

    return make
