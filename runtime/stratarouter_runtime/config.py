"""Runtime configuration: one frozen, validated, keyword-only dataclass.

`RuntimeConfig` holds every knob of the runtime (execution, cache, batching, durable state,
observability, circuit breakers, fallbacks). It validates itself on construction and raises
`ConfigError` naming the offending field. `RuntimeConfig.from_env` is the only place in the
library that reads environment variables.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from stratarouter_core.errors import ConfigError

__all__ = ["RuntimeConfig", "parse_target_spec"]

CacheBackend = Literal["memory", "redis"]
StateBackend = Literal["sqlite", "postgresql", "memory"]
RecoveryPolicy = Literal["resume", "fail"]

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_SECRET_FIELDS = ("openai_api_key", "anthropic_api_key", "google_api_key")
_URL_FIELDS = ("redis_url", "database_url")

# Environment variables with a conventional name; every other field is STRATAROUTER_<FIELD>.
_CONVENTIONAL_ENV = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "google_api_key": "GOOGLE_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "anthropic_base_url": "ANTHROPIC_BASE_URL",
    "google_base_url": "GOOGLE_BASE_URL",
    "otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "prometheus_port": "PROMETHEUS_PORT",
}
# A conventional variable also switches its feature on, unless STRATAROUTER_<FLAG> says otherwise.
_IMPLIED = {
    "database_url": ("state_backend", "postgresql"),
    "redis_url": ("cache_backend", "redis"),
    "otlp_endpoint": ("tracing_enabled", True),
    "prometheus_port": ("metrics_enabled", True),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_target_spec(spec: str, *, field_name: str = "target") -> tuple[str, str]:
    """Split a ``"provider:model"`` spec, e.g. ``"openai:gpt-4o-mini"``.

    Args:
        spec: The target spec.
        field_name: Name used in the error message.

    Returns:
        The (provider, model) pair.

    Raises:
        ConfigError: When the spec is not two non-blank parts around a colon.

    Example:
        >>> parse_target_spec("openai:gpt-4o-mini")
        ('openai', 'gpt-4o-mini')
    """
    if isinstance(spec, str):
        provider, sep, model = spec.partition(":")
        if sep and provider.strip() and model.strip():
            return provider.strip(), model.strip()
    raise ConfigError(f"RuntimeConfig.{field_name} must look like 'provider:model', got {spec!r}")


def _fail(name: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"RuntimeConfig.{name} must be {expected}, got {value!r}")


def _number(name: str, value: object, low: float, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(name, "a finite number", value)
    if not low <= value <= high:
        raise _fail(name, f"in [{low}, {high}]", value)


def _positive(name: str, value: object) -> None:
    _number(name, value, 0.0)
    if value == 0:
        raise _fail(name, "> 0", value)


def _integer(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(name, f"an integer >= {low}", value)
    if high is not None and value > high:
        raise _fail(name, f"an integer <= {high}", value)


def _flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(name, "a bool", value)


def _choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise _fail(name, f"one of {', '.join(repr(c) for c in choices)}", value)


def _text(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, "a non-blank string" + (" or None" if optional else ""), value)


def _mask_url(url: str | None) -> str | None:
    """Hide the password of a URL (``postgresql://user:secret@host`` -> ``user:***@host``)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class RuntimeConfig:
    """Everything the runtime bridge needs: execution, cache, batching, state, observability.

    Args:
        execution_timeout: Seconds allowed for one provider attempt.
        max_retries: Retries after the first attempt, on retryable errors only.
        retry_delay_ms: Base delay of the exponential backoff between attempts.
        cache_enabled: Serve and store responses through the semantic cache.
        cache_backend: ``"memory"`` (in-process) or ``"redis"`` (shared; needs `redis_url`).
        redis_url: Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        cache_namespace: Prefix isolating this deployment's cache entries.
        cache_ttl: Seconds a cached response lives.
        cache_similarity_threshold: Minimum query similarity for a semantic cache hit.
        batch_enabled: De-duplicate concurrent identical or near-identical requests.
        batch_window_ms: How long a batch stays open for followers.
        batch_max_size: Most requests fanned out from one provider call.
        batch_similarity_threshold: Minimum similarity to join another request's call.
        state_backend: ``"sqlite"`` (default, a file), ``"postgresql"`` or ``"memory"``.
        sqlite_path: SQLite database file for the ``"sqlite"`` backend.
        database_url: PostgreSQL DSN for the ``"postgresql"`` backend.
        database_schema: PostgreSQL schema holding the runtime's tables.
        checkpoint_interval: Persist a streaming execution's progress every this many chunks.
        recovery_policy: What a restarted bridge does with an execution that was cut short
            before its provider result was persisted: ``"resume"`` runs it again, ``"fail"``
            marks it failed. Executions whose result was persisted are always finished.
        recover_on_start: Run recovery in `CoreRuntimeBridge.start`.
        lease_timeout_s: An execution whose owner has not renewed its lease for this long is
            considered abandoned and may be recovered by another bridge.
        worker_id: Stable identity of this bridge (e.g. a pod name). A bridge restarted with the
            same id recovers its own executions at once, without waiting for their lease.
        metrics_enabled: Collect Prometheus metrics (needs ``prometheus-client``).
        prometheus_port: Serve the metrics on this port (``None``: do not serve).
        tracing_enabled: Emit OpenTelemetry spans (needs ``opentelemetry-api``).
        otlp_endpoint: Export spans to this OTLP/HTTP endpoint (needs the OTLP exporter).
        log_level: Level of the runtime's JSON logs.
        breaker_failure_threshold: Failures within `breaker_window_s` that open a breaker.
        breaker_window_s: Sliding window in which failures are counted.
        breaker_reset_timeout_s: Seconds an open breaker waits before a half-open probe.
        fallbacks: ``"provider:model"`` -> targets tried in order when it fails or is open.
        default_target: ``"provider:model"`` used for decisions without a routable target
            (no route, or the fallback route without metadata).
        openai_api_key: OpenAI key for providers built from the environment.
        anthropic_api_key: Anthropic key for providers built from the environment.
        google_api_key: Google (Gemini) key for providers built from the environment.
        openai_base_url: Override of the OpenAI endpoint (e.g. a compatible local server).
        anthropic_base_url: Override of the Anthropic endpoint.
        google_base_url: Override of the Gemini endpoint.

    Example:
        >>> config = RuntimeConfig(state_backend="memory", cache_ttl=60)
        >>> config.cache_ttl, config.max_retries
        (60, 3)
        >>> try:
        ...     RuntimeConfig(max_retries=-1)
        ... except ConfigError as exc:
        ...     print(exc)
        RuntimeConfig.max_retries must be an integer >= 0, got -1
    """

    execution_timeout: float = 60.0
    max_retries: int = 3
    retry_delay_ms: float = 100.0
    cache_enabled: bool = True
    cache_backend: CacheBackend = "memory"
    redis_url: str | None = None
    cache_namespace: str = "default"
    cache_ttl: int = 3600
    cache_similarity_threshold: float = 0.9
    batch_enabled: bool = True
    batch_window_ms: float = 50.0
    batch_max_size: int = 32
    batch_similarity_threshold: float = 0.98
    state_backend: StateBackend = "sqlite"
    sqlite_path: str = "stratarouter_state.db"
    database_url: str | None = None
    database_schema: str = "stratarouter"
    checkpoint_interval: int = 10
    recovery_policy: RecoveryPolicy = "resume"
    recover_on_start: bool = True
    lease_timeout_s: float = 30.0
    worker_id: str | None = None
    metrics_enabled: bool = False
    prometheus_port: int | None = None
    tracing_enabled: bool = False
    otlp_endpoint: str | None = None
    log_level: str = "info"
    breaker_failure_threshold: int = 5
    breaker_window_s: float = 60.0
    breaker_reset_timeout_s: float = 30.0
    fallbacks: Mapping[str, Sequence[str]] = field(default_factory=dict)
    default_target: str | None = None
    openai_api_key: str | None = None
    anthropic_api_key: str | None = None
    google_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_base_url: str | None = None
    google_base_url: str | None = None

    def __post_init__(self) -> None:
        self._check_execution()
        self._check_cache_and_batch()
        self._check_state()
        self._check_observability()
        self._check_targets()
        for name in (*_SECRET_FIELDS, "openai_base_url", "anthropic_base_url", "google_base_url"):
            _text(name, getattr(self, name), optional=True)

    def _check_execution(self) -> None:
        _positive("execution_timeout", self.execution_timeout)
        _integer("max_retries", self.max_retries, 0, 100)
        _number("retry_delay_ms", self.retry_delay_ms, 0.0)
        _integer("breaker_failure_threshold", self.breaker_failure_threshold, 1)
        _positive("breaker_window_s", self.breaker_window_s)
        _positive("breaker_reset_timeout_s", self.breaker_reset_timeout_s)

    def _check_cache_and_batch(self) -> None:
        _flag("cache_enabled", self.cache_enabled)
        _choice("cache_backend", self.cache_backend, ("memory", "redis"))
        _text("redis_url", self.redis_url, optional=True)
        if self.cache_enabled and self.cache_backend == "redis" and self.redis_url is None:
            raise ConfigError("RuntimeConfig.redis_url is required when cache_backend='redis'")
        _text("cache_namespace", self.cache_namespace)
        _integer("cache_ttl", self.cache_ttl, 1)
        _number("cache_similarity_threshold", self.cache_similarity_threshold, 0.0, 1.0)
        _flag("batch_enabled", self.batch_enabled)
        _number("batch_window_ms", self.batch_window_ms, 0.0, 60_000.0)
        _integer("batch_max_size", self.batch_max_size, 1)
        _number("batch_similarity_threshold", self.batch_similarity_threshold, 0.0, 1.0)

    def _check_state(self) -> None:
        _choice("state_backend", self.state_backend, ("sqlite", "postgresql", "memory"))
        _text("sqlite_path", self.sqlite_path)
        _text("database_url", self.database_url, optional=True)
        if self.state_backend == "postgresql" and self.database_url is None:
            raise ConfigError(
                "RuntimeConfig.database_url is required when state_backend='postgresql'"
            )
        _text("database_schema", self.database_schema)
        if not self.database_schema.replace("_", "").isalnum():
            raise _fail("database_schema", "letters, digits and underscores", self.database_schema)
        _integer("checkpoint_interval", self.checkpoint_interval, 1)
        _choice("recovery_policy", self.recovery_policy, ("resume", "fail"))
        _flag("recover_on_start", self.recover_on_start)
        _positive("lease_timeout_s", self.lease_timeout_s)
        _text("worker_id", self.worker_id, optional=True)

    def _check_observability(self) -> None:
        _flag("metrics_enabled", self.metrics_enabled)
        if self.prometheus_port is not None:
            _integer("prometheus_port", self.prometheus_port, 0, 65535)
        _flag("tracing_enabled", self.tracing_enabled)
        _text("otlp_endpoint", self.otlp_endpoint, optional=True)
        level = self.log_level.lower() if isinstance(self.log_level, str) else self.log_level
        _choice("log_level", level, _LOG_LEVELS)
        object.__setattr__(self, "log_level", level)

    def _check_targets(self) -> None:
        if self.default_target is not None:
            parse_target_spec(self.default_target, field_name="default_target")
        if not isinstance(self.fallbacks, Mapping):
            raise _fail(
                "fallbacks", "a mapping 'provider:model' -> ['provider:model', ...]", self.fallbacks
            )
        chains: dict[str, tuple[str, ...]] = {}
        for source, chain in self.fallbacks.items():
            parse_target_spec(source, field_name="fallbacks")
            if isinstance(chain, str) or not isinstance(chain, Sequence):
                raise _fail("fallbacks", f"a list of 'provider:model' for {source!r}", chain)
            for spec in chain:
                parse_target_spec(spec, field_name="fallbacks")
            chains[source] = tuple(chain)
        object.__setattr__(self, "fallbacks", MappingProxyType(chains))

    def __repr__(self) -> str:
        """Field values with API keys left out and URL passwords masked."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                value = None if value is None else "***"
            elif f.name in _URL_FIELDS:
                value = _mask_url(value)
            elif f.name == "fallbacks":
                value = dict(value)
            parts.append(f"{f.name}={value!r}")
        return f"RuntimeConfig({', '.join(parts)})"

    def replace(self, **changes: Any) -> RuntimeConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> RuntimeConfig:
        """Build a config from environment variables; keyword overrides win.

        Reads ``DATABASE_URL``, ``REDIS_URL``, ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
        ``GOOGLE_API_KEY``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``PROMETHEUS_PORT`` (and the
        ``*_BASE_URL`` of each provider), and ``STRATAROUTER_<FIELD>`` for every other field
        (e.g. ``STRATAROUTER_MAX_RETRIES=5``; ``STRATAROUTER_FALLBACKS`` is JSON). Setting
        ``DATABASE_URL`` selects the PostgreSQL state backend, ``REDIS_URL`` the Redis cache,
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` tracing and ``PROMETHEUS_PORT`` metrics, unless the
        matching ``STRATAROUTER_*`` variable or an override says otherwise.

        Args:
            environ: Variables to read (default: ``os.environ``).
            **overrides: Field values that take precedence over the environment.

        Raises:
            ConfigError: For an unknown override, an unparsable variable (named in the
                message) or an invalid resulting config.

        Example:
            >>> env = {"STRATAROUTER_MAX_RETRIES": "5", "OPENAI_API_KEY": "sk-test"}
            >>> config = RuntimeConfig.from_env(env, state_backend="memory")
            >>> config.max_retries, config.openai_api_key is not None, "sk-test" in repr(config)
            (5, True, False)
        """
        env = os.environ if environ is None else environ
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ConfigError(f"unknown RuntimeConfig field(s): {', '.join(unknown)}")
        defaults = cls()
        values: dict[str, Any] = {}
        for name in names:
            variable = _CONVENTIONAL_ENV.get(name, f"STRATAROUTER_{name.upper()}")
            raw = env.get(variable)
            if raw is not None and raw.strip():
                values[name] = _parse_env(name, variable, raw.strip(), getattr(defaults, name))
        for source, (target, implied) in _IMPLIED.items():
            if source in values and f"STRATAROUTER_{target.upper()}" not in env:
                values.setdefault(target, implied)
        values.update(overrides)
        return cls(**values)


def _parse_env(name: str, variable: str, raw: str, default: object) -> object:
    """Convert the text of `variable` to the type of field `name` (judged by its default)."""
    try:
        if name == "fallbacks":
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("expected a JSON object")
            return parsed
        if isinstance(default, bool):
            if raw.lower() in _TRUE | _FALSE:
                return raw.lower() in _TRUE
            raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
        if isinstance(default, int) or name == "prometheus_port":
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}={raw!r} is not a valid RuntimeConfig.{name}: {exc}") from exc
    return raw
