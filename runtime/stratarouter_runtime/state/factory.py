"""The state store a `RuntimeConfig` asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratarouter_core.errors import ConfigError

from .memory import MemoryStateStore
from .postgres import PostgresStateStore
from .records import StateStore
from .sqlite import SQLiteStateStore

if TYPE_CHECKING:
    from ..config import RuntimeConfig

__all__ = ["open_state_store"]


def open_state_store(config: RuntimeConfig) -> StateStore:
    """The store `config.state_backend` asks for (not started yet).

    Example:
        >>> from stratarouter_runtime.config import RuntimeConfig
        >>> type(open_state_store(RuntimeConfig(state_backend="memory"))).__name__
        'MemoryStateStore'
    """
    if config.state_backend == "memory":
        return MemoryStateStore()
    if config.state_backend == "sqlite":
        return SQLiteStateStore(config.sqlite_path)
    if config.database_url is None:  # RuntimeConfig already refuses this; keep mypy informed
        raise ConfigError("RuntimeConfig.database_url is required when state_backend='postgresql'")
    return PostgresStateStore(config.database_url, schema=config.database_schema)
