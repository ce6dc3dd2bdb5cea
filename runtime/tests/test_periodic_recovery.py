"""Periodic recovery (`StateConfig.recovery_interval_s`): three live bridges over one PostgreSQL
store sweep for executions a dead bridge left; each record is taken over by exactly one."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from stratarouter_runtime.bridge import CoreRuntimeBridge
from stratarouter_runtime.config import RuntimeConfig, StateConfig
from stratarouter_runtime.state import ExecutionRecord, RecoveryReport

pytest.importorskip("psycopg", reason="needs stratarouter-runtime[postgres]")


def test_recovery_interval_is_validated_and_read_from_the_environment() -> None:
    from stratarouter_core.errors import ConfigError

    assert StateConfig().recovery_interval_s == 0.0
    with pytest.raises(ConfigError, match="recovery_interval_s"):
        StateConfig(recovery_interval_s=-1)
    config = RuntimeConfig.from_env({"STRATAROUTER_RECOVERY_INTERVAL_S": "2.5"})
    assert config.state.recovery_interval_s == 2.5


async def test_survivors_take_over_each_abandoned_record_exactly_once(postgres_dsn: str) -> None:
    schema = f"sr_sweep_{uuid.uuid4().hex[:10]}"
    state = StateConfig(
        backend="postgresql",
        database_url=postgres_dsn,
        schema=schema,
        recover_on_start=False,
        recovery_interval_s=0.1,
        lease_timeout_s=5.0,
    )
    bridges = [
        CoreRuntimeBridge(
            RuntimeConfig(state=state.replace(worker_id=f"survivor-{i}")), providers={}
        )
        for i in range(3)
    ]
    reports: dict[str, list[RecoveryReport]] = {b.worker_id: [] for b in bridges}
    for bridge in bridges:
        original = bridge.recover

        async def counted(original=original, sink=reports[bridge.worker_id]) -> RecoveryReport:
            report = await original()
            sink.append(report)
            return report

        bridge.recover = counted  # type: ignore[method-assign]
    try:
        await bridges[0].state.start()
        past = time.time() - 60
        dead = [  # a dead worker's records: the provider result persisted, never finished
            ExecutionRecord.new(
                query=f"q{i}",
                target_key="openai:m",
                target={"kind": "provider", "provider": "openai", "model": "m"},
                status="running",
                result={"response": f"r{i}"},
                worker_id="dead-worker",
                lease_expires_at=past,
            )
            for i in range(30)
        ]
        alive = ExecutionRecord.new(  # a live worker's record: its lease holds
            query="live",
            target_key="openai:m",
            target={},
            status="running",
            worker_id="live-worker",
            lease_expires_at=time.time() + 600,
        )
        for record in [*dead, alive]:
            await bridges[0].state.create(record)
        await asyncio.gather(*(b.start() for b in bridges))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stored = [await bridges[0].state.get(r.id) for r in dead]
            if all(s is not None and s.is_finished for s in stored):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a few more sweeps: nothing may be taken twice
        finished = [i for rs in reports.values() for r in rs for i in r.finished]
        assert sorted(finished) == sorted(r.id for r in dead)  # each exactly once
        assert all(len(rs) >= 2 for rs in reports.values())  # every survivor swept
        for record in dead:
            stored = await bridges[0].state.get(record.id)
            assert stored is not None and stored.status == "succeeded"
            assert stored.worker_id in reports
        still = await bridges[0].state.get(alive.id)
        assert still is not None and still.status == "running"
        assert still.worker_id == "live-worker"
    finally:
        for bridge in bridges:
            await bridge.aclose()
        import psycopg

        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
