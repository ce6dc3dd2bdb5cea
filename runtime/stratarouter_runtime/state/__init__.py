"""Durable execution state: every execution is a record that survives a crash of its process.

An execution moves ``pending -> running -> succeeded | failed``. The provider's result is
persisted with `StateStore.save_result` *before* anything else is done with it (cache store,
metrics, the reply to the caller), and only then is the record marked succeeded. A bridge
restarted after its process was killed calls `recover_executions`, which for each unfinished
record either finishes it (its result was persisted: the provider is never called again),
re-executes it (``recovery_policy="resume"``) or marks it failed (``"fail"``).

Ownership uses leases: the bridge that runs an execution writes its `worker_id` and a lease
expiry, and renews the leases of all its unfinished executions periodically. Recovery takes over
only records whose lease expired, or that carry the recovering bridge's own (stable) worker id.

Backends: `MemoryStateStore` (tests, ephemeral), `SQLiteStateStore` (default; stdlib sqlite3 in
WAL mode, driven from one dedicated thread) and `PostgresStateStore` (psycopg 3, async; schema
migrations applied on start, tracked in a ``schema_version`` table).
"""

from __future__ import annotations

from .checkpoint import StreamCheckpointer
from .factory import open_state_store
from .memory import MemoryStateStore
from .postgres import PostgresStateStore
from .records import UNFINISHED as UNFINISHED
from .records import (
    ExecutionNotFoundError,
    ExecutionRecord,
    ExecutionStatus,
    GradeConflictError,
    GradeNotifier,
    GradeRecord,
    StateError,
    StateStore,
    new_execution_id,
)
from .recovery import FinishFn as FinishFn
from .recovery import RecoveryReport, recover_executions
from .recovery import ResumeFn as ResumeFn
from .sqlite import SQLiteStateStore

# UNFINISHED, FinishFn and ResumeFn stay importable from here as before the split, without
# joining __all__ (hence their redundant aliases).
__all__ = [
    "ExecutionNotFoundError",
    "ExecutionRecord",
    "ExecutionStatus",
    "GradeConflictError",
    "GradeNotifier",
    "GradeRecord",
    "MemoryStateStore",
    "PostgresStateStore",
    "RecoveryReport",
    "SQLiteStateStore",
    "StateError",
    "StateStore",
    "StreamCheckpointer",
    "new_execution_id",
    "open_state_store",
    "recover_executions",
]
