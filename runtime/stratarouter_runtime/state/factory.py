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
    """The store `config.state.backend` asks for (not started yet).

    Example:
        >>> from stratarouter_runtime.config import RuntimeConfig
        >>> type(open_state_store(RuntimeConfig())).__name__
        'MemoryStateStore'
    """
    if config.state.backend == "memory":
        return MemoryStateStore()
    # StateConfig already refuses a backend without its location; the checks keep mypy informed
    if config.state.backend == "sqlite":
        if config.state.sqlite_path is None:
            raise ConfigError("RuntimeConfig.state.sqlite_path is required when backend='sqlite'")
        return SQLiteStateStore(config.state.sqlite_path)
    if config.state.database_url is None:
        raise ConfigError("RuntimeConfig.state.database_url is required when backend='postgresql'")
    return PostgresStateStore(config.state.database_url, schema=config.state.schema)
