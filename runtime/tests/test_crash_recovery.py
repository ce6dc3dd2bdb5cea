"""A worker process is SIGKILLed mid-execution; a restarted bridge recovers what it left.

The worker is a real subprocess running `CoreRuntimeBridge.execute` against the fake provider
server (which runs in this test process, so its request count survives the kill):

- killed while the provider call is in flight: ``resume`` calls the provider exactly once more,
  ``fail`` marks the execution failed without calling it;
- killed after the provider result was persisted (but before the record was finished): the
  restarted bridge finishes it from the persisted result, with no second provider call.

Both on SQLite (a file in tmp_path) and on the real PostgreSQL (a schema per test).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from stratarouter_runtime.bridge import CoreRuntimeBridge
from stratarouter_runtime.config import RetryConfig, RuntimeConfig, StateConfig
from stratarouter_runtime.state import open_state_store
from stratarouter_runtime.testing import FakeProviderServer, Fault

pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")

from stratarouter_runtime.providers import OpenAIClient

ROOT = Path(__file__).resolve().parents[2]
QUERY = "please refund my last invoice"
WORKER = r"""
import asyncio, json, sys
from stratarouter_runtime.bridge import CoreRuntimeBridge
from stratarouter_runtime.config import RetryConfig, RuntimeConfig, StateConfig
from stratarouter_runtime.providers import OpenAIClient
from stratarouter_runtime.state import open_state_store
from stratarouter_core.types import RouteResult

spec = json.loads(sys.argv[1])
config = RuntimeConfig(
    default_target=spec["config"]["default_target"],
    retries=RetryConfig(**spec["config"]["retries"]),
    state=StateConfig(**spec["config"]["state"]),
)
store = open_state_store(config)
if spec["hang_after_result"]:
    persist = store.save_result

    async def persist_then_hang(execution_id, result, attempts=()):
        await persist(execution_id, result, attempts)
        with open(spec["marker"], "w") as marker:
            marker.write(execution_id)
        await asyncio.sleep(3600)  # killed here: result persisted, record not finished

    store.save_result = persist_then_hang


async def main():
    client = OpenAIClient(api_key="test", base_url=spec["base_url"])
    bridge = CoreRuntimeBridge(config, providers={"openai": client}, state=store)
    decision = RouteResult(route_id="billing", confidence=0.9, candidates=(), latency_us=10.0)
    async with bridge:
        print("ready", flush=True)
        await bridge.execute(decision, spec["query"])
    print("finished", flush=True)

asyncio.run(main())
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def state_settings(request, tmp_path):
    if request.param == "sqlite":
        yield {"backend": "sqlite", "sqlite_path": str(tmp_path / "state.db")}
        return
    dsn = request.getfixturevalue("postgres_dsn")
    schema = f"sr_crash_{uuid.uuid4().hex[:12]}"
    yield {"backend": "postgresql", "database_url": dsn, "schema": schema}
    psycopg = pytest.importorskip("psycopg", reason="PostgreSQL state needs the [postgres] extra (make test installs it)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def server():
    with FakeProviderServer() as fake:
        yield fake


def _config(state_settings, **state_overrides):
    state = {"worker_id": "worker-1", "lease_timeout_s": 1.0, **state_settings, **state_overrides}
    return RuntimeConfig(
        default_target="openai:gpt-4o-mini",
        retries=RetryConfig(delay_ms=1.0),
        state=StateConfig(**state),
    )


def _wait_for(condition, what, worker, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker.poll() is not None:
            _, stderr = worker.communicate()
            raise AssertionError(
                f"the worker exited ({worker.returncode}) before {what}:\n{stderr}"
            )
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _run_and_kill(server, config_kwargs, tmp_path, *, hang_after_result):
    """Start the worker, SIGKILL it at the chosen point, return once it is dead."""
    marker = tmp_path / f"persisted-{uuid.uuid4().hex}"
    spec = {
        "config": config_kwargs,
        "base_url": server.openai_base_url,
        "query": QUERY,
        "hang_after_result": hang_after_result,
        "marker": str(marker),
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            if hang_after_result:
                _wait_for(marker.exists, "persisting the provider result", worker)
            else:
                _wait_for(lambda: server.count() == 1, "its provider call", worker)
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(timeout=10) == -signal.SIGKILL
            stdout, _ = worker.communicate()
            assert "finished" not in stdout
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()


async def _restart(server, config):
    client = OpenAIClient(api_key="test", base_url=server.openai_base_url)
    try:
        async with CoreRuntimeBridge(config, providers={"openai": client}) as bridge:
            assert await bridge.state.list_unfinished() == []
            return bridge.last_recovery
    finally:
        await client.aclose()


async def _record(config, execution_id):
    store = open_state_store(config)
    await store.start()
    try:
        return await store.get(execution_id)
    finally:
        await store.close()


def _settings(config):
    """What the worker process needs to rebuild `config` (JSON)."""
    return {
        "default_target": config.default_target,
        "retries": dataclasses.asdict(config.retries),
        "state": dataclasses.asdict(config.state),
    }


async def test_killed_mid_call_then_resumed_exactly_once(server, state_settings, tmp_path):
    config = _config(state_settings, recovery_policy="resume")
    server.add_faults(Fault.delay(30))  # the worker's call hangs until it is killed
    _run_and_kill(server, _settings(config), tmp_path, hang_after_result=False)
    assert server.count() == 1

    report = await _restart(server, config)
    assert len(report.resumed) == 1 and report.finished == report.failed == ()
    assert server.count() == 2  # exactly one more provider call
    record = await _record(config, report.resumed[0])
    assert record.status == "succeeded" and record.result["response"] == f"echo: {QUERY}"
    assert record.query == QUERY and [a["outcome"] for a in record.attempts] == ["ok"]

    again = await _restart(server, config)
    assert again.total == 0 and server.count() == 2


async def test_killed_mid_call_with_fail_policy(server, state_settings, tmp_path):
    config = _config(state_settings, recovery_policy="fail")
    server.add_faults(Fault.delay(30))
    _run_and_kill(server, _settings(config), tmp_path, hang_after_result=False)

    report = await _restart(server, config)
    assert len(report.failed) == 1 and report.resumed == report.finished == ()
    assert server.count() == 1  # never called again
    record = await _record(config, report.failed[0])
    assert record.status == "failed" and "recovery_policy='fail'" in record.error


@pytest.mark.parametrize("policy", ["resume", "fail"])
async def test_persisted_result_is_finished_without_a_second_call(
    server, state_settings, tmp_path, policy
):
    config = _config(state_settings, recovery_policy=policy)
    _run_and_kill(server, _settings(config), tmp_path, hang_after_result=True)
    assert server.count() == 1

    report = await _restart(server, config)
    assert len(report.finished) == 1 and report.resumed == report.failed == ()
    assert server.count() == 1  # the provider is not called again
    record = await _record(config, report.finished[0])
    assert record.status == "succeeded" and record.result["response"] == f"echo: {QUERY}"


async def test_another_worker_waits_for_the_lease_to_expire(server, state_settings, tmp_path):
    config = _config(state_settings, lease_timeout_s=1.5)
    server.add_faults(Fault.delay(30))
    _run_and_kill(server, _settings(config), tmp_path, hang_after_result=False)

    other = config.replace(state=config.state.replace(worker_id="worker-2", recover_on_start=False))
    client = OpenAIClient(api_key="test", base_url=server.openai_base_url)
    try:
        async with CoreRuntimeBridge(other, providers={"openai": client}) as bridge:
            early = await bridge.recover()
            assert early.total == 0 and len(early.skipped) == 1  # the dead worker's lease holds
            (pending,) = await bridge.state.list_unfinished()
            wait = max(0.0, pending.lease_expires_at - time.time()) + 0.1
            time.sleep(wait)
            late = await bridge.recover()
            assert late.resumed == early.skipped
            assert (await bridge.state.get(late.resumed[0])).worker_id == "worker-2"
    finally:
        await client.aclose()
    assert server.count() == 2
