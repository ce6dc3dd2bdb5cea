"""Runtime configuration: a frozen, validated `RuntimeConfig` made of one group per concern.

`RuntimeConfig` holds six groups, each a frozen keyword-only dataclass that validates itself
on construction and raises `ConfigError` naming the offending field
(``RuntimeConfig.cache.ttl_s must be ...``):

- `RetryConfig` (``retries``): attempt timeout, retries, backoff;
- `BreakerConfig` (``breaker``): when a target's circuit breaker opens and probes again;
- `CacheConfig` (``cache``): the semantic cache (memory or Redis);
- `BatchingConfig` (``batching``): de-duplication of concurrent equivalent requests;
- `StateConfig` (``state``): where execution records live and how crashes are recovered;
- `ObservabilityConfig` (``observability``): metrics, spans, JSON logs;

plus `ProviderConfig` (``providers``: API keys and endpoints), ``fallbacks`` and
``default_target``.

The defaults touch nothing outside the process: state in memory (no file is written unless
`StateConfig` names one), no JSON log handler (an application opts in with
``ObservabilityConfig(json_logs=True)``), metrics and tracing off. `RuntimeConfig.from_env` is
the only place in the library that reads environment variables, so ``DATABASE_URL`` or
``REDIS_URL`` in the environment change nothing unless the application calls it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from stratarouter_core.errors import ConfigError

__all__ = [
    "ENV_VARIABLES",
    "BatchingConfig",
    "BreakerConfig",
    "CacheConfig",
    "ObservabilityConfig",
    "ProviderConfig",
    "RetryConfig",
    "RuntimeConfig",
    "StateConfig",
    "parse_target_spec",
]

CacheBackend = Literal["memory", "redis"]
StateBackend = Literal["memory", "sqlite", "postgresql"]
RecoveryPolicy = Literal["resume", "fail"]

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

_Group = TypeVar("_Group")


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


# --- validators: `name` is the dotted path shown to the user, e.g. "cache.ttl_s" -------------


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


class _Replace:
    """`replace(**changes)`: a validated copy, for every group and the config itself."""

    __slots__ = ()

    def replace(self: _Group, **changes: Any) -> _Group:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


# --- the groups ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryConfig(_Replace):
    """How long one provider attempt may take and how failed attempts are retried.

    Args:
        attempt_timeout_s: Seconds allowed for one provider attempt.
        max_retries: Retries after the first attempt, on retryable errors only.
        delay_ms: Base delay of the exponential backoff between attempts.

    Example:
        >>> RetryConfig(max_retries=1).max_retries
        1
    """

    attempt_timeout_s: float = 60.0
    max_retries: int = 3
    delay_ms: float = 100.0

    def __post_init__(self) -> None:
        _positive("retries.attempt_timeout_s", self.attempt_timeout_s)
        _integer("retries.max_retries", self.max_retries, 0, 100)
        _number("retries.delay_ms", self.delay_ms, 0.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig(_Replace):
    """When a target's circuit breaker opens, and when it lets a probe through.

    Args:
        failure_threshold: Failures within `window_s` that open a breaker.
        window_s: Sliding window in which failures are counted.
        reset_timeout_s: Seconds an open breaker waits before a half-open probe.
    """

    failure_threshold: int = 5
    window_s: float = 60.0
    reset_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        _integer("breaker.failure_threshold", self.failure_threshold, 1)
        _positive("breaker.window_s", self.window_s)
        _positive("breaker.reset_timeout_s", self.reset_timeout_s)


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class CacheConfig(_Replace):
    """The semantic response cache.

    Args:
        enabled: Serve and store responses through the cache.
        backend: ``"memory"`` (in-process) or ``"redis"`` (shared; needs `redis_url`).
        redis_url: Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        namespace: Prefix isolating this deployment's cache entries.
        ttl_s: Seconds a cached response lives.
        similarity_threshold: Minimum query similarity for a semantic cache hit.
    """

    enabled: bool = True
    backend: CacheBackend = "memory"
    redis_url: str | None = None
    namespace: str = "default"
    ttl_s: int = 3600
    similarity_threshold: float = 0.9

    def __post_init__(self) -> None:
        _flag("cache.enabled", self.enabled)
        _choice("cache.backend", self.backend, ("memory", "redis"))
        _text("cache.redis_url", self.redis_url, optional=True)
        if self.enabled and self.backend == "redis" and self.redis_url is None:
            raise ConfigError("RuntimeConfig.cache.redis_url is required when backend='redis'")
        _text("cache.namespace", self.namespace)
        _integer("cache.ttl_s", self.ttl_s, 1)
        _number("cache.similarity_threshold", self.similarity_threshold, 0.0, 1.0)

    def __repr__(self) -> str:
        """Field values with the URL password masked."""
        return _repr(self, urls=("redis_url",))


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchingConfig(_Replace):
    """De-duplication: concurrent identical or near-identical requests share one provider call.

    Args:
        enabled: De-duplicate concurrent equivalent requests.
        window_ms: How long a batch stays open for followers.
        max_size: Most requests fanned out from one provider call.
        similarity_threshold: Minimum similarity to join another request's call.
    """

    enabled: bool = True
    window_ms: float = 50.0
    max_size: int = 32
    similarity_threshold: float = 0.98

    def __post_init__(self) -> None:
        _flag("batching.enabled", self.enabled)
        _number("batching.window_ms", self.window_ms, 0.0, 60_000.0)
        _integer("batching.max_size", self.max_size, 1)
        _number("batching.similarity_threshold", self.similarity_threshold, 0.0, 1.0)


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class StateConfig(_Replace):
    """Where execution records live, and what a restarted bridge does with unfinished ones.

    The default keeps records in memory: nothing is written to disk unless you choose
    ``backend="sqlite"`` with a `sqlite_path` (or ``"postgresql"`` with a `database_url`).
    In-memory records do not survive a restart, so crash recovery needs a durable backend.

    Args:
        backend: ``"memory"`` (default), ``"sqlite"`` (needs `sqlite_path`) or
            ``"postgresql"`` (needs `database_url`).
        sqlite_path: SQLite database file for the ``"sqlite"`` backend.
        database_url: PostgreSQL DSN for the ``"postgresql"`` backend.
        schema: PostgreSQL schema holding the runtime's tables.
        checkpoint_interval: Persist a streaming execution's progress every this many chunks.
        recovery_policy: What a restarted bridge does with an execution that was cut short
            before its provider result was persisted: ``"resume"`` runs it again, ``"fail"``
            marks it failed. Executions whose result was persisted are always finished.
        recover_on_start: Run recovery in `CoreRuntimeBridge.start`.
        lease_timeout_s: An execution whose owner has not renewed its lease for this long is
            considered abandoned and may be recovered by another bridge.
        worker_id: Stable identity of this bridge (e.g. a pod name). A bridge restarted with the
            same id recovers its own executions at once, without waiting for their lease.
        recovery_interval_s: Also run recovery every this many seconds while the bridge runs
            (0, the default: only at start). With several bridges over one PostgreSQL store,
            this is how a survivor takes over the executions of a bridge that died; each
            abandoned record is claimed by exactly one of them.
        grade_poll_s: How often a bridge with a ModelRouter reads the grades other bridges
            logged in the store (`CoreRuntimeBridge.add_grades`): the safety net of
            PostgreSQL's notifications, which bring them at once, and how SQLite is followed;
            0 reads them only at start, on notifications and when this bridge logs grades.

    Example:
        >>> StateConfig().backend
        'memory'
        >>> StateConfig(backend="sqlite", sqlite_path="/var/lib/app/state.db").sqlite_path
        '/var/lib/app/state.db'
        >>> try:
        ...     StateConfig(backend="sqlite")
        ... except ConfigError as exc:
        ...     print(exc)
        RuntimeConfig.state.sqlite_path is required when backend='sqlite'
    """

    backend: StateBackend = "memory"
    sqlite_path: str | None = None
    database_url: str | None = None
    schema: str = "stratarouter"
    checkpoint_interval: int = 10
    recovery_policy: RecoveryPolicy = "resume"
    recover_on_start: bool = True
    lease_timeout_s: float = 30.0
    worker_id: str | None = None
    recovery_interval_s: float = 0.0
    grade_poll_s: float = 5.0

    def __post_init__(self) -> None:
        _choice("state.backend", self.backend, ("memory", "sqlite", "postgresql"))
        _text("state.sqlite_path", self.sqlite_path, optional=True)
        _text("state.database_url", self.database_url, optional=True)
        for backend, needed in (("sqlite", "sqlite_path"), ("postgresql", "database_url")):
            if self.backend == backend and getattr(self, needed) is None:
                raise ConfigError(
                    f"RuntimeConfig.state.{needed} is required when backend={backend!r}"
                )
        _text("state.schema", self.schema)
        if not self.schema.replace("_", "").isalnum():
            raise _fail("state.schema", "letters, digits and underscores", self.schema)
        _integer("state.checkpoint_interval", self.checkpoint_interval, 1)
        _choice("state.recovery_policy", self.recovery_policy, ("resume", "fail"))
        _flag("state.recover_on_start", self.recover_on_start)
        _positive("state.lease_timeout_s", self.lease_timeout_s)
        _text("state.worker_id", self.worker_id, optional=True)
        _number("state.recovery_interval_s", self.recovery_interval_s, 0.0)
        _number("state.grade_poll_s", self.grade_poll_s, 0.0)

    def __repr__(self) -> str:
        """Field values with the DSN password masked."""
        return _repr(self, urls=("database_url",))


@dataclass(frozen=True, kw_only=True, slots=True)
class ObservabilityConfig(_Replace):
    """Metrics, spans and logs; all off or quiet unless asked for.

    Args:
        metrics: Collect Prometheus metrics (needs the ``observability`` extra).
        prometheus_port: Serve the metrics on this port (``None``: do not serve).
        tracing: Emit OpenTelemetry spans (needs the ``observability`` extra).
        otlp_endpoint: Export spans to this OTLP/HTTP endpoint (needs the OTLP exporter).
        json_logs: Give the ``stratarouter_runtime`` logger a JSON-lines handler on stderr at
            `log_level` (one line per execution at ``"info"``). Off by default: the library
            adds no handler and sets no level, so the application's logging setup decides
            (Python then shows only warnings and errors, on stderr).
        log_level: Level of the JSON handler when `json_logs` is on.
    """

    metrics: bool = False
    prometheus_port: int | None = None
    tracing: bool = False
    otlp_endpoint: str | None = None
    json_logs: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        _flag("observability.metrics", self.metrics)
        if self.prometheus_port is not None:
            _integer("observability.prometheus_port", self.prometheus_port, 0, 65535)
        _flag("observability.tracing", self.tracing)
        _text("observability.otlp_endpoint", self.otlp_endpoint, optional=True)
        _flag("observability.json_logs", self.json_logs)
        level = self.log_level.lower() if isinstance(self.log_level, str) else self.log_level
        _choice("observability.log_level", level, _LOG_LEVELS)
        object.__setattr__(self, "log_level", level)


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class ProviderConfig(_Replace):
    """API keys and endpoints for the providers the bridge builds itself.

    Used only when `CoreRuntimeBridge` gets no ``providers=``; `RuntimeConfig.from_env` fills
    them from ``OPENAI_API_KEY`` and friends. Keys never appear in a repr.

    Args:
        openai_api_key: OpenAI key.
        anthropic_api_key: Anthropic key.
        google_api_key: Google (Gemini) key.
        openai_base_url: Override of the OpenAI endpoint (e.g. a compatible local server).
        anthropic_base_url: Override of the Anthropic endpoint.
        google_base_url: Override of the Gemini endpoint.
    """

    openai_api_key: str | None = None
    anthropic_api_key: str | None = None
    google_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_base_url: str | None = None
    google_base_url: str | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _text(f"providers.{f.name}", getattr(self, f.name), optional=True)

    def __repr__(self) -> str:
        """Which keys are set, never their values."""
        return _repr(self, secrets=("openai_api_key", "anthropic_api_key", "google_api_key"))


def _repr(obj: Any, *, urls: Sequence[str] = (), secrets: Sequence[str] = ()) -> str:
    parts = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in secrets:
            value = None if value is None else "***"
        elif f.name in urls:
            value = _mask_url(value)
        elif isinstance(value, MappingProxyType):
            value = dict(value)
        parts.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


_GROUPS: dict[str, type[Any]] = {
    "retries": RetryConfig,
    "breaker": BreakerConfig,
    "cache": CacheConfig,
    "batching": BatchingConfig,
    "state": StateConfig,
    "observability": ObservabilityConfig,
    "providers": ProviderConfig,
}


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class RuntimeConfig(_Replace):
    """Everything the runtime bridge needs, one group per concern.

    ``RuntimeConfig()`` is safe anywhere: in-memory state (no file written), memory cache,
    batching on, metrics, tracing and JSON logs off, and nothing read from the environment.

    Args:
        retries: Attempt timeout, retries and backoff (`RetryConfig`).
        breaker: Circuit breakers (`BreakerConfig`).
        cache: Semantic cache (`CacheConfig`).
        batching: Request de-duplication (`BatchingConfig`).
        state: Execution records and crash recovery (`StateConfig`).
        observability: Metrics, spans, JSON logs (`ObservabilityConfig`).
        providers: API keys and endpoints (`ProviderConfig`).
        fallbacks: ``"provider:model"`` -> targets tried in order when it fails or is open.
        default_target: ``"provider:model"`` used for decisions without a routable target
            (no route, or the fallback route without metadata).

    Example:
        >>> config = RuntimeConfig(cache=CacheConfig(ttl_s=60), retries=RetryConfig(max_retries=1))
        >>> config.cache.ttl_s, config.retries.max_retries, config.state.backend
        (60, 1, 'memory')
        >>> config.replace(retries=config.retries.replace(max_retries=5)).retries.max_retries
        5
        >>> try:
        ...     RetryConfig(max_retries=-1)
        ... except ConfigError as exc:
        ...     print(exc)
        RuntimeConfig.retries.max_retries must be an integer >= 0, got -1
    """

    retries: RetryConfig = field(default_factory=RetryConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    state: StateConfig = field(default_factory=StateConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    providers: ProviderConfig = field(default_factory=ProviderConfig)
    fallbacks: Mapping[str, Sequence[str]] = field(default_factory=dict)
    default_target: str | None = None

    def __post_init__(self) -> None:
        for name, kind in _GROUPS.items():
            if not isinstance(getattr(self, name), kind):
                raise _fail(name, f"a {kind.__name__}", getattr(self, name))
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
        """Every group, with API keys left out and URL passwords masked."""
        return _repr(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> RuntimeConfig:
        """Build a config from environment variables; keyword overrides win.

        Only this method reads the environment: ``RuntimeConfig()`` never does.

        Reads ``DATABASE_URL``, ``REDIS_URL``, ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
        ``GOOGLE_API_KEY``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``PROMETHEUS_PORT`` (and the
        ``*_BASE_URL`` of each provider), and ``STRATAROUTER_<NAME>`` for every other setting
        (names in `ENV_VARIABLES`, e.g. ``STRATAROUTER_MAX_RETRIES=5``;
        ``STRATAROUTER_FALLBACKS`` is JSON). Setting ``DATABASE_URL`` selects the PostgreSQL
        state backend, ``REDIS_URL`` the Redis cache, ``OTEL_EXPORTER_OTLP_ENDPOINT`` tracing
        and ``PROMETHEUS_PORT`` metrics, unless the matching ``STRATAROUTER_*`` variable or an
        override says otherwise.

        Args:
            environ: Variables to read (default: ``os.environ``).
            **overrides: `RuntimeConfig` fields (whole groups, ``fallbacks``,
                ``default_target``) that replace what the environment gave.

        Raises:
            ConfigError: For an unknown override, an unparsable variable (named in the
                message) or an invalid resulting config.

        Example:
            >>> env = {"STRATAROUTER_MAX_RETRIES": "5", "OPENAI_API_KEY": "sk-test"}
            >>> config = RuntimeConfig.from_env(env)
            >>> config.retries.max_retries, config.providers.openai_api_key is not None
            (5, True)
            >>> "sk-test" in repr(config)
            False
        """
        env = os.environ if environ is None else environ
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown RuntimeConfig field(s): {', '.join(unknown)}")
        groups: dict[str, dict[str, Any]] = {name: {} for name in _GROUPS}
        top: dict[str, Any] = {}
        for variable, (group, name) in ENV_VARIABLES.items():
            raw = env.get(variable)
            if raw is None or not raw.strip():
                continue
            default = _default_of(group, name)
            value = _parse_env(variable, raw.strip(), default, f"{group}.{name}" if group else name)
            (groups[group] if group else top)[name] = value
        for source, (group, name, implied) in _IMPLIED.items():
            if source in env and env[source].strip() and _explicit(group, name) not in env:
                groups[group].setdefault(name, implied)
        values: dict[str, Any] = {
            name: kind(**groups[name]) for name, kind in _GROUPS.items() if groups[name]
        }
        values.update(top)
        values.update(overrides)
        return cls(**values)


# Environment variable -> (group, field); group "" is a top-level field. The STRATAROUTER_*
# names predate the groups and are kept, so deployments keep their variables.
ENV_VARIABLES: dict[str, tuple[str, str]] = {
    "STRATAROUTER_EXECUTION_TIMEOUT": ("retries", "attempt_timeout_s"),
    "STRATAROUTER_MAX_RETRIES": ("retries", "max_retries"),
    "STRATAROUTER_RETRY_DELAY_MS": ("retries", "delay_ms"),
    "STRATAROUTER_BREAKER_FAILURE_THRESHOLD": ("breaker", "failure_threshold"),
    "STRATAROUTER_BREAKER_WINDOW_S": ("breaker", "window_s"),
    "STRATAROUTER_BREAKER_RESET_TIMEOUT_S": ("breaker", "reset_timeout_s"),
    "STRATAROUTER_CACHE_ENABLED": ("cache", "enabled"),
    "STRATAROUTER_CACHE_BACKEND": ("cache", "backend"),
    "REDIS_URL": ("cache", "redis_url"),
    "STRATAROUTER_CACHE_NAMESPACE": ("cache", "namespace"),
    "STRATAROUTER_CACHE_TTL": ("cache", "ttl_s"),
    "STRATAROUTER_CACHE_SIMILARITY_THRESHOLD": ("cache", "similarity_threshold"),
    "STRATAROUTER_BATCH_ENABLED": ("batching", "enabled"),
    "STRATAROUTER_BATCH_WINDOW_MS": ("batching", "window_ms"),
    "STRATAROUTER_BATCH_MAX_SIZE": ("batching", "max_size"),
    "STRATAROUTER_BATCH_SIMILARITY_THRESHOLD": ("batching", "similarity_threshold"),
    "STRATAROUTER_STATE_BACKEND": ("state", "backend"),
    "STRATAROUTER_SQLITE_PATH": ("state", "sqlite_path"),
    "DATABASE_URL": ("state", "database_url"),
    "STRATAROUTER_DATABASE_SCHEMA": ("state", "schema"),
    "STRATAROUTER_CHECKPOINT_INTERVAL": ("state", "checkpoint_interval"),
    "STRATAROUTER_RECOVERY_POLICY": ("state", "recovery_policy"),
    "STRATAROUTER_RECOVER_ON_START": ("state", "recover_on_start"),
    "STRATAROUTER_LEASE_TIMEOUT_S": ("state", "lease_timeout_s"),
    "STRATAROUTER_WORKER_ID": ("state", "worker_id"),
    "STRATAROUTER_RECOVERY_INTERVAL_S": ("state", "recovery_interval_s"),
    "STRATAROUTER_GRADE_POLL_S": ("state", "grade_poll_s"),
    "STRATAROUTER_METRICS_ENABLED": ("observability", "metrics"),
    "PROMETHEUS_PORT": ("observability", "prometheus_port"),
    "STRATAROUTER_TRACING_ENABLED": ("observability", "tracing"),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("observability", "otlp_endpoint"),
    "STRATAROUTER_JSON_LOGS": ("observability", "json_logs"),
    "STRATAROUTER_LOG_LEVEL": ("observability", "log_level"),
    "OPENAI_API_KEY": ("providers", "openai_api_key"),
    "ANTHROPIC_API_KEY": ("providers", "anthropic_api_key"),
    "GOOGLE_API_KEY": ("providers", "google_api_key"),
    "OPENAI_BASE_URL": ("providers", "openai_base_url"),
    "ANTHROPIC_BASE_URL": ("providers", "anthropic_base_url"),
    "GOOGLE_BASE_URL": ("providers", "google_base_url"),
    "STRATAROUTER_FALLBACKS": ("", "fallbacks"),
    "STRATAROUTER_DEFAULT_TARGET": ("", "default_target"),
}
# A conventional variable also switches its feature on, unless the STRATAROUTER_* variable of
# that switch is set too. Only `from_env` applies this.
_IMPLIED: dict[str, tuple[str, str, object]] = {
    "DATABASE_URL": ("state", "backend", "postgresql"),
    "REDIS_URL": ("cache", "backend", "redis"),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("observability", "tracing", True),
    "PROMETHEUS_PORT": ("observability", "metrics", True),
}


def _explicit(group: str, name: str) -> str:
    """The environment variable that sets `group.name` itself."""
    return next(v for v, target in ENV_VARIABLES.items() if target == (group, name))


def _default_of(group: str, name: str) -> object:
    if not group:
        return {} if name == "fallbacks" else None
    return getattr(_GROUPS[group](), name)


def _parse_env(variable: str, raw: str, default: object, name: str) -> object:
    """Convert the text of `variable` to the type of setting `name` (judged by its default)."""
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
        if isinstance(default, int) or name == "observability.prometheus_port":
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}={raw!r} is not a valid RuntimeConfig.{name}: {exc}") from exc
    return raw
