"""Shared fixtures of every test folder (core, runtime, benchmarks, adapters).

Datasets beside the project, real services on 127.0.0.1. It sits at the repository root so
that `tests/`, `runtime/tests/`, `benchmarks/tests/` and `integrations/*/tests/` share one
copy of the fixtures and of the CI policy below, however pytest is pointed at them.

Outside CI a missing dataset, service or optional extra skips the tests that need it, with
the reason; in CI (CI=true) every skip fails the run, so a broken environment (a service down,
an extra not installed) can never pass silently.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DATASETS = Path(__file__).resolve().parent.parent / "shared" / "datasets"
REDIS_URL = os.environ.get("STRATAROUTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_DSN = os.environ.get(
    "STRATAROUTER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def missing(reason: str) -> None:
    """Skip with `reason` on a user's machine, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """`../shared/datasets`, or a skip (outside CI) when the project is used alone."""
    if not (DATASETS / "clinc150.json").exists():
        missing(f"datasets not found at {DATASETS} (they live beside the project in CI)")
    return DATASETS


@pytest.fixture(scope="session")
def local_encoder() -> object:
    """The offline all-MiniLM-L6-v2 encoder, or a skip (outside CI) when it is not installed."""
    from stratarouter_core.encoders.local import LocalEncoder
    from stratarouter_core.errors import MissingDependencyError

    try:
        encoder = LocalEncoder()
        encoder.encode(["warm up"])  # weights load lazily: a missing model shows up here
    except MissingDependencyError as exc:
        missing(f"all-MiniLM-L6-v2 not installed: {exc}")
    return encoder


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis on 127.0.0.1:6379 (database 15, flushed by the tests using it)."""
    if not _port_open("127.0.0.1", 6379):
        missing("Redis is not running on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the real PostgreSQL on 127.0.0.1:5432 (user postgres, database test)."""
    if not _port_open("127.0.0.1", 5432):
        missing("PostgreSQL is not running on 127.0.0.1:5432")
    return POSTGRES_DSN


@pytest.hookimpl(tryfirst=True)  # before the session and the terminal count the report
def pytest_collectreport(report: pytest.CollectReport) -> None:
    """In CI, a test module skipped at import (a missing extra) is a failure."""
    _fail_skips_in_ci(report)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """In CI, a skipped test is a failure."""
    _fail_skips_in_ci(report)


def _fail_skips_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if IN_CI and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true requires every test to run): {reason}"
        _SKIPPED_IN_CI.append(report.nodeid)


_SKIPPED_IN_CI: list[str] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The session counts failures before these hooks turn skips into failures: set the status."""
    if _SKIPPED_IN_CI:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
