"""API keys (constant-time comparison, optional tenant per key) and per-key rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from stratarouter_core.errors import ConfigError, StrataRouterError

__all__ = [
    "ApiKey",
    "AuthenticationError",
    "Authenticator",
    "Principal",
    "RateLimitedError",
    "RateLimiter",
    "load_keys_file",
    "parse_key_entries",
]


class AuthenticationError(StrataRouterError):
    """A request without an accepted `Authorization: Bearer` key (401)."""


class RateLimitedError(StrataRouterError):
    """A key that sent more requests than its rate allows (429, with ``retry_after_s``)."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        """`retry_after_s`: when the next request would be accepted."""
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One accepted key and the tenant it belongs to (None: the shared, default route set)."""

    secret: str
    tenant: str | None = None

    def __repr__(self) -> str:
        """Never the secret."""
        return f"ApiKey(id={key_id(self.secret)}, tenant={self.tenant!r})"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: a key id (a hash prefix, safe to log) and its tenant."""

    key_id: str
    tenant: str | None


def key_id(secret: str) -> str:
    """A short, stable, non-reversible name for a key (for buckets and logs)."""
    return "key-" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


def parse_key_entries(entries: Iterable[str], *, separator: str | None = ":") -> list[ApiKey]:
    """Keys from ``key`` or ``key<separator>tenant`` entries (None: any whitespace)."""
    keys = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        parts = entry.split(separator, 1) if separator else entry.split(None, 1)
        secret = parts[0].strip()
        tenant = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
        if len(secret) < 8:
            raise ConfigError(f"API key {key_id(secret)} is shorter than 8 characters")
        keys.append(ApiKey(secret, tenant))
    return keys


def load_keys_file(path: str | Path) -> list[ApiKey]:
    """Keys from a file: one ``key`` or ``key tenant`` per line; ``#`` starts a comment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read API keys file {path}: {exc}") from exc
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    return parse_key_entries(lines, separator=None)


class Authenticator:
    """Checks `Authorization: Bearer <key>` against the configured keys in constant time.

    With no keys, every request is accepted (anonymous, default tenant).

    Example:
        >>> auth = Authenticator([ApiKey("s3cret-key-1", "acme")])
        >>> auth.check("Bearer s3cret-key-1").tenant
        'acme'
    """

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        """Accept `keys`."""
        self._keys = [(k.secret.encode("utf-8"), k) for k in keys]

    @property
    def open(self) -> bool:
        """True when no key is configured: anyone may call."""
        return not self._keys

    def check(self, authorization: str | None, *, client: str = "anonymous") -> Principal:
        """The principal the header authenticates; raises AuthenticationError otherwise."""
        if self.open:
            return Principal(key_id=f"client-{client}", tenant=None)
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing 'Authorization: Bearer <API key>' header")
        given = token.strip().encode("utf-8")
        found: ApiKey | None = None
        for secret, key in self._keys:  # every key is compared: timing shows nothing
            if hmac.compare_digest(secret, given):
                found = key
        if found is None:
            raise AuthenticationError("the API key is not valid")
        return Principal(key_id=key_id(found.secret), tenant=found.tenant)


_MAX_BUCKETS = 100_000


class RateLimiter:
    """One token bucket per key: `rate` requests per second, bursts up to `burst`.

    Args:
        rate: Tokens added per second; 0 disables limiting.
        burst: Bucket size.
        clock: Monotonic seconds (injectable so tests need not sleep).
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """An empty set of buckets (each starts full)."""
        self.rate, self.burst, self._clock = float(rate), int(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> None:
        """Take one token for `key`, or raise RateLimitedError saying when to retry."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(
                    f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded; "
                    f"retry in {wait:.2f} s",
                    retry_after_s=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_BUCKETS:  # anonymous clients, one per address
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting a full bucket changes nothing."""
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
