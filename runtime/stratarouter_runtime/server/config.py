"""`ServerConfig`: what `stratarouter serve` listens on, which keys it accepts, its limits.

Precedence, highest first: command-line flags > environment variables > the ``--config``
YAML file > the defaults below. Environment variables are ``STRATAROUTER_SERVER_<FIELD>``
(``STRATAROUTER_SERVER_PORT=9000``), plus ``STRATAROUTER_API_KEYS`` (comma list; an entry
``key:tenant`` binds the key to a tenant) and ``STRATAROUTER_API_KEYS_FILE`` (one ``key`` or
``key tenant`` per line, ``#`` comments).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratarouter_core.errors import ConfigError

__all__ = ["ENV_PREFIX", "ServerConfig", "is_loopback", "load_server_config"]

ENV_PREFIX = "STRATAROUTER_SERVER_"
_KEYS_ENV = "STRATAROUTER_API_KEYS"
_KEYS_FILE_ENV = "STRATAROUTER_API_KEYS_FILE"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Settings of the REST server; validated on construction (a bad value is a ConfigError).

    Args:
        host: Interface to bind; anything but loopback with no API keys logs a loud warning.
        port: TCP port.
        grpc_port: TCP port of the gRPC service on the same host (None: no gRPC; 0: a free
            port); needs ``stratarouter-runtime[grpc]``.
        routes: Routes file (YAML or JSON) to serve; or
        router_dir: A directory written by `Router.save`.
        model_router_dir: A directory written by `ModelRouter.save`: a route whose metadata
            lists a ``models`` pool (and so ``model: "auto"`` in chat completions landing on
            it) runs on the model this ModelRouter picks for the query. It must have been
            fitted with the routes' encoder.
        accept_grades: Let callers grade answers (``POST /v1/executions/{id}/grade``,
            ``POST /v1/model-router/grades``) for the ModelRouter to learn. It is shared by
            every tenant, so every key's grades reach every tenant's model choices: turn
            this off when callers are not trusted to grade.
        encoder: ``"local"`` (offline all-MiniLM-L6-v2) or ``"hashing"`` (the dependency-free
            `HashingEncoder`, for demos and tests).
        api_keys: Accepted bearer tokens, each ``key`` or ``key:tenant``.
        api_keys_file: File of keys, one ``key`` or ``key tenant`` per line.
        rate_limit_per_s: Requests per second per key (per client address without keys);
            0 turns rate limiting off.
        rate_limit_burst: Token-bucket size: requests a key may send at once.
        max_body_bytes: Larger request bodies get 413.
        max_batch: Most queries in one `/v1/route/batch` request.
        max_query_chars: Longest query accepted.
        default_top_k: Candidates returned when a request gives no ``top_k``.
        cors_origins: Origins allowed by CORS; empty (the default) adds no CORS headers.
        log_queries: Log query texts (never on by default: queries are user data).
        encode_wait_ms: How long the encoding micro-batcher waits for more queries.
        encode_max_batch: Most queries per encoder call.
        provider_url: An OpenAI-compatible server used as provider ``local``.
        default_provider: Provider of a bare model name in `/v1/chat/completions`.
        graceful_timeout_s: On SIGTERM, how long in-flight requests may take to finish.
        route_sync: How route sets reach the other servers: ``"auto"`` (through PostgreSQL
            when the execution store is PostgreSQL, i.e. ``DATABASE_URL`` is set; else each
            server keeps its own), ``"postgresql"`` (required: an error without it) or
            ``"off"``. See `stratarouter_runtime.server.routesync`.
        route_sync_poll_s: Seconds between two version polls, the safety net of the
            notifications (a missed one is caught within this time).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int | None = None
    routes: str | None = None
    router_dir: str | None = None
    model_router_dir: str | None = None
    accept_grades: bool = True
    encoder: str = "local"
    api_keys: tuple[str, ...] = ()
    api_keys_file: str | None = None
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 20
    max_body_bytes: int = 1_048_576
    max_batch: int = 256
    max_query_chars: int = 8192
    default_top_k: int = 3
    cors_origins: tuple[str, ...] = ()
    log_queries: bool = False
    encode_wait_ms: float = 2.0
    encode_max_batch: int = 64
    provider_url: str | None = None
    default_provider: str = "openai"
    graceful_timeout_s: float = 30.0
    route_sync: str = "auto"
    route_sync_poll_s: float = 5.0

    def __post_init__(self) -> None:
        _check(
            _int(self.port) and 0 <= self.port < 65536,
            "port",
            "an integer in [0, 65535]",
            self.port,
        )
        _check(
            self.grpc_port is None or (_int(self.grpc_port) and 0 <= self.grpc_port < 65536),
            "grpc_port",
            "unset or an integer in [0, 65535]",
            self.grpc_port,
        )
        _check(
            self.encoder in ("local", "hashing"), "encoder", "'local' or 'hashing'", self.encoder
        )
        _check(
            _finite(self.rate_limit_per_s) and self.rate_limit_per_s >= 0,
            "rate_limit_per_s",
            "a number >= 0",
            self.rate_limit_per_s,
        )
        for name in ("rate_limit_burst", "max_body_bytes", "max_batch", "max_query_chars"):
            value = getattr(self, name)
            _check(_int(value) and value >= 1, name, "an integer >= 1", value)
        for name in ("default_top_k", "encode_max_batch"):
            value = getattr(self, name)
            _check(_int(value) and value >= 1, name, "an integer >= 1", value)
        _check(
            _finite(self.encode_wait_ms) and self.encode_wait_ms >= 0,
            "encode_wait_ms",
            "a number >= 0",
            self.encode_wait_ms,
        )
        _check(
            _finite(self.graceful_timeout_s) and self.graceful_timeout_s > 0,
            "graceful_timeout_s",
            "a number > 0",
            self.graceful_timeout_s,
        )
        _check(
            self.route_sync in ("auto", "postgresql", "off"),
            "route_sync",
            "'auto', 'postgresql' or 'off'",
            self.route_sync,
        )
        _check(
            _finite(self.route_sync_poll_s) and self.route_sync_poll_s > 0,
            "route_sync_poll_s",
            "a number > 0",
            self.route_sync_poll_s,
        )
        _check(
            not (self.routes and self.router_dir), "routes", "unset when router_dir is set", "both"
        )
        _check(isinstance(self.log_queries, bool), "log_queries", "true or false", self.log_queries)
        _check(
            isinstance(self.accept_grades, bool),
            "accept_grades",
            "true or false",
            self.accept_grades,
        )

    def __repr__(self) -> str:
        """Never the keys themselves: how many there are."""
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["api_keys"] = f"<{len(self.api_keys)} keys>"
        return "ServerConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, name: str, expected: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"ServerConfig.{name} must be {expected}, got {value!r}")


_FIELDS = {f.name: f for f in dataclasses.fields(ServerConfig)}
_TUPLES = {"api_keys", "cors_origins"}
_OPTIONAL_INTS = {"grpc_port"}  # default None: the default's type cannot say "int"


def _coerce(name: str, raw: Any, source: str) -> Any:
    """A value read from the environment (a string) or a file, as the field's type."""
    default = _FIELDS[name].default
    if name in _TUPLES:
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{source}: {name} must be a list of strings, got {raw!r}")
        return tuple(i.strip() for i in items if i.strip())
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes"}
        if isinstance(default, int) or name in _OPTIONAL_INTS:
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{source}: {name} cannot be {raw!r} ({exc})") from exc
    return raw


def _from_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read server config {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the server config must be a mapping of ServerConfig fields")
    unknown = sorted(set(map(str, data)) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown server settings {unknown}; known: {sorted(_FIELDS)}")
    return {str(k): _coerce(str(k), v, path) for k, v in data.items()}


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in _FIELDS:
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            values[name] = _coerce(name, environ[variable], variable)
    if _KEYS_ENV in environ:
        values["api_keys"] = _coerce("api_keys", environ[_KEYS_ENV], _KEYS_ENV)
    if _KEYS_FILE_ENV in environ:
        values["api_keys_file"] = environ[_KEYS_FILE_ENV]
    return values


def load_server_config(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerConfig:
    """Merge flags > environment > config file > defaults into a validated `ServerConfig`.

    `flags` maps field names to values; None values (flags not given) are ignored.
    """
    import os

    merged: dict[str, Any] = {}
    if config_file:
        merged.update(_from_file(config_file))
    merged.update(_from_env(os.environ if environ is None else environ))
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    unknown = sorted(set(merged) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown server settings {unknown}")
    try:
        return ServerConfig(**merged)
    except TypeError as exc:
        raise ConfigError(f"invalid server settings: {exc}") from exc
