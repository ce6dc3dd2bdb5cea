"""RuntimeConfig: grouped, validated, quiet and local by default, environment only on request."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys

import pytest
from stratarouter_core.errors import ConfigError, StrataRouterError

from stratarouter_runtime import CoreRuntimeBridge
from stratarouter_runtime.config import (
    BatchingConfig,
    BreakerConfig,
    CacheConfig,
    ObservabilityConfig,
    ProviderConfig,
    RetryConfig,
    RuntimeConfig,
    StateConfig,
)
from stratarouter_runtime.observability import LOGGER_NAME, Observability
from stratarouter_runtime.state import MemoryStateStore, SQLiteStateStore
from stratarouter_runtime.state.factory import open_state_store

GROUPS = {
    "retries": RetryConfig,
    "breaker": BreakerConfig,
    "cache": CacheConfig,
    "batching": BatchingConfig,
    "state": StateConfig,
    "observability": ObservabilityConfig,
    "providers": ProviderConfig,
}


def test_config_is_grouped_not_flat():
    names = {f.name for f in dataclasses.fields(RuntimeConfig)}
    assert names == set(GROUPS) | {"fallbacks", "default_target"}
    config = RuntimeConfig()
    for name, kind in GROUPS.items():
        assert isinstance(getattr(config, name), kind)


def test_flat_fields_of_the_old_config_are_refused():
    with pytest.raises(TypeError):
        RuntimeConfig(max_retries=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("group", "field", "value"),
    [
        (RetryConfig, "attempt_timeout_s", 0),
        (RetryConfig, "max_retries", -1),
        (RetryConfig, "max_retries", 1.5),
        (RetryConfig, "delay_ms", -1),
        (BreakerConfig, "failure_threshold", 0),
        (BreakerConfig, "window_s", 0),
        (BreakerConfig, "reset_timeout_s", float("inf")),
        (CacheConfig, "enabled", "yes"),
        (CacheConfig, "backend", "memcached"),
        (CacheConfig, "ttl_s", 0),
        (CacheConfig, "similarity_threshold", 1.5),
        (CacheConfig, "namespace", " "),
        (BatchingConfig, "window_ms", -5),
        (BatchingConfig, "max_size", 0),
        (BatchingConfig, "similarity_threshold", float("nan")),
        (StateConfig, "backend", "mysql"),
        (StateConfig, "sqlite_path", ""),
        (StateConfig, "checkpoint_interval", 0),
        (StateConfig, "recovery_policy", "retry"),
        (StateConfig, "schema", "x; drop"),
        (StateConfig, "lease_timeout_s", 0),
        (ObservabilityConfig, "prometheus_port", 70000),
        (ObservabilityConfig, "log_level", "verbose"),
        (ObservabilityConfig, "json_logs", "yes"),
        (ProviderConfig, "openai_api_key", ""),
    ],
)
def test_invalid_setting_is_a_config_error_naming_group_and_field(group, field, value):
    prefix = next(name for name, kind in GROUPS.items() if kind is group)
    with pytest.raises(ConfigError, match=rf"RuntimeConfig\.{prefix}\.{field} ") as caught:
        group(**{field: value})
    assert isinstance(caught.value, StrataRouterError)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_target", "gpt-4o"),
        ("fallbacks", {"openai:a": "anthropic:b"}),
        ("fallbacks", {"openai": ["anthropic:b"]}),
        ("cache", {"ttl_s": 5}),  # a dict is not a group
    ],
)
def test_invalid_top_level_field_names_it(field, value):
    with pytest.raises(ConfigError, match=rf"RuntimeConfig\.{field}"):
        RuntimeConfig(**{field: value})


def test_cross_field_rules():
    with pytest.raises(ConfigError, match=r"cache\.redis_url"):
        CacheConfig(backend="redis")
    with pytest.raises(ConfigError, match=r"state\.database_url"):
        StateConfig(backend="postgresql")
    with pytest.raises(ConfigError, match=r"state\.sqlite_path"):
        StateConfig(backend="sqlite")
    assert CacheConfig(backend="redis", enabled=False).backend == "redis"
    assert ObservabilityConfig(log_level="WARNING").log_level == "warning"


def test_groups_are_frozen_and_replace_validates():
    config = RuntimeConfig()
    with pytest.raises(AttributeError):
        config.retries = RetryConfig()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.retries.max_retries = 5  # type: ignore[misc]
    changed = config.replace(retries=config.retries.replace(max_retries=5))
    assert (changed.retries.max_retries, config.retries.max_retries) == (5, 3)
    with pytest.raises(ConfigError):
        config.retries.replace(max_retries=-5)


def test_repr_hides_keys_and_url_passwords():
    config = RuntimeConfig(
        providers=ProviderConfig(openai_api_key="sk-secret"),
        cache=CacheConfig(backend="redis", redis_url="redis://u:pw1@cache:6379/0"),
        state=StateConfig(backend="postgresql", database_url="postgresql://app:pw2@db/app"),
    )
    text = repr(config)
    for secret in ("sk-secret", "pw1", "pw2"):
        assert secret not in text
    assert "u:***@cache" in text and "app:***@db" in text and "openai_api_key='***'" in text


# --- promise: RuntimeConfig() writes nothing into the current directory ------------------------


def test_default_state_is_in_memory():
    assert RuntimeConfig().state.backend == "memory"
    assert isinstance(open_state_store(RuntimeConfig()), MemoryStateStore)


async def test_default_bridge_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bridge = CoreRuntimeBridge(RuntimeConfig(), handlers={"greet": lambda q, ctx: "hi"})
    from stratarouter_core.types import RouteResult

    decision = RouteResult(route_id="greet", confidence=0.9, candidates=(), latency_us=1)
    async with bridge:
        assert (await bridge.execute(decision, "hello")).response == "hi"
    assert list(tmp_path.iterdir()) == []


def test_sqlite_state_goes_where_the_user_says(tmp_path):
    path = tmp_path / "state.db"
    store = open_state_store(RuntimeConfig(state=StateConfig(backend="sqlite", sqlite_path=str(path))))
    assert isinstance(store, SQLiteStateStore)


# --- promise: quiet by default, JSON lines only when asked ------------------------------------


def _bridge_run_stderr(observability: str) -> str:
    code = (
        "import asyncio\n"
        "from stratarouter_core.types import RouteResult\n"
        "from stratarouter_runtime import CoreRuntimeBridge, ObservabilityConfig, RuntimeConfig\n"
        f"config = RuntimeConfig(observability={observability})\n"
        "bridge = CoreRuntimeBridge(config, handlers={'greet': lambda q, ctx: 'hi'})\n"
        "decision = RouteResult(route_id='greet', confidence=0.9, candidates=(), latency_us=1)\n"
        "async def main():\n"
        "    async with bridge:\n"
        "        for _ in range(3):\n"
        "            await bridge.execute(decision, 'hello')\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stderr


def test_default_bridge_logs_nothing_to_stderr():
    assert _bridge_run_stderr("ObservabilityConfig()") == ""


def test_json_logs_are_opt_in_one_line_per_execution():
    lines = _bridge_run_stderr("ObservabilityConfig(json_logs=True)").splitlines()
    executions = [line for line in lines if '"execution_id"' in line]
    assert len(executions) == 3 and all(line.startswith("{") for line in executions)


def _failing_run_stderr(setup: str = "") -> str:
    """stderr of a process whose handler raises, so the bridge logs "execution failed"."""
    code = (
        "import asyncio, logging\n"
        f"{setup}"
        "from stratarouter_core.types import RouteResult\n"
        "from stratarouter_runtime import CoreRuntimeBridge, HandlerError, RuntimeConfig\n"
        "def boom(q, ctx):\n"
        "    raise RuntimeError('handler broke')\n"
        "bridge = CoreRuntimeBridge(RuntimeConfig(), handlers={'greet': boom})\n"
        "decision = RouteResult(route_id='greet', confidence=0.9, candidates=(), latency_us=1)\n"
        "async def main():\n"
        "    async with bridge:\n"
        "        try:\n"
        "            await bridge.execute(decision, 'hello')\n"
        "        except HandlerError:\n"
        "            print('raised')\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "raised"  # the failure did happen, and was logged...
    return done.stderr


def test_failed_execution_prints_nothing_by_default():
    # ...and without a logging setup Python's last-resort handler must not print it
    assert _failing_run_stderr() == ""


def test_failed_execution_reaches_the_applications_logging():
    stderr = _failing_run_stderr("logging.basicConfig(level=logging.WARNING)\n")
    assert "execution failed" in stderr


def test_package_logger_has_a_null_handler():
    handlers = logging.getLogger(LOGGER_NAME).handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_default_observability_installs_no_handler_and_no_level():
    logger = logging.getLogger(LOGGER_NAME)
    before = (list(logger.handlers), logger.level)
    Observability(RuntimeConfig())
    assert (list(logger.handlers), logger.level) == before


# --- promise: the environment changes nothing unless from_env() is called ---------------------


def test_environment_does_not_switch_backends_without_from_env(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db/app")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("STRATAROUTER_MAX_RETRIES", "9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")
    config = RuntimeConfig()
    assert config.state.backend == "memory" and config.state.database_url is None
    assert config.cache.backend == "memory" and config.cache.redis_url is None
    assert config.providers.openai_api_key is None and config.retries.max_retries == 3
    assert not config.observability.tracing
    assert RuntimeConfig.from_env(os.environ).state.backend == "postgresql"


def test_from_env_reads_conventional_and_prefixed_variables():
    env = {
        "DATABASE_URL": "postgresql://app:s3cret@db:5432/app",
        "REDIS_URL": "redis://cache:6379/0",
        "OPENAI_API_KEY": "sk-openai",
        "ANTHROPIC_API_KEY": "sk-ant",
        "GOOGLE_API_KEY": "g-key",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
        "PROMETHEUS_PORT": "9464",
        "STRATAROUTER_MAX_RETRIES": "5",
        "STRATAROUTER_CACHE_SIMILARITY_THRESHOLD": "0.97",
        "STRATAROUTER_BATCH_ENABLED": "false",
        "STRATAROUTER_RECOVERY_POLICY": "fail",
        "STRATAROUTER_FALLBACKS": '{"openai:gpt-4o": ["anthropic:claude-haiku-4-5"]}',
        "STRATAROUTER_LOG_LEVEL": "DEBUG",
        "STRATAROUTER_JSON_LOGS": "yes",
    }
    config = RuntimeConfig.from_env(env)
    assert config.state.backend == "postgresql" and config.state.database_url.endswith("/app")
    assert config.cache.backend == "redis" and config.cache.redis_url == "redis://cache:6379/0"
    assert config.observability.tracing and config.observability.otlp_endpoint == "http://otel:4318"
    assert config.observability.metrics and config.observability.prometheus_port == 9464
    assert config.retries.max_retries == 5 and config.cache.similarity_threshold == 0.97
    assert config.batching.enabled is False and config.state.recovery_policy == "fail"
    assert dict(config.fallbacks) == {"openai:gpt-4o": ("anthropic:claude-haiku-4-5",)}
    assert config.observability.log_level == "debug" and config.observability.json_logs
    keys = config.providers
    assert (keys.openai_api_key, keys.anthropic_api_key, keys.google_api_key) == (
        "sk-openai",
        "sk-ant",
        "g-key",
    )
    text = repr(config)
    for secret in ("sk-openai", "sk-ant", "g-key", "s3cret"):
        assert secret not in text
    assert "app:***@db" in text


def test_from_env_explicit_settings_and_overrides_win():
    env = {
        "DATABASE_URL": "postgresql://db/app",
        "STRATAROUTER_STATE_BACKEND": "memory",
        "REDIS_URL": "redis://cache:6379/0",
        "STRATAROUTER_MAX_RETRIES": "7",
    }
    config = RuntimeConfig.from_env(env, cache=CacheConfig(), retries=RetryConfig(max_retries=1))
    assert config.state.backend == "memory" and config.cache.backend == "memory"
    assert config.retries.max_retries == 1
    assert RuntimeConfig.from_env({}) == RuntimeConfig()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"STRATAROUTER_MAX_RETRIES": "three"}, "STRATAROUTER_MAX_RETRIES"),
        ({"PROMETHEUS_PORT": "http"}, "PROMETHEUS_PORT"),
        ({"STRATAROUTER_CACHE_ENABLED": "maybe"}, "STRATAROUTER_CACHE_ENABLED"),
        ({"STRATAROUTER_FALLBACKS": "[1, 2]"}, "STRATAROUTER_FALLBACKS"),
    ],
)
def test_from_env_names_the_bad_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        RuntimeConfig.from_env(env)


def test_from_env_rejects_unknown_overrides():
    with pytest.raises(ConfigError, match="no_such_field"):
        RuntimeConfig.from_env({}, no_such_field=1)
