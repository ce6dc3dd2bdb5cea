"""Route sets per tenant, replaced atomically: a new set is built aside, then swapped in.

A `RouteSet` is never changed once published: `PUT` and `DELETE` build a new router beside
the live one (in a worker thread, so requests keep being served) and swap one reference.
A request takes its tenant's set once, at its start, and uses that router to the end, so it
finishes on the old set and can never see a mix of two. A failed build leaves the live set
exactly as it was.

With a `publisher` (`RouteSetSync`, when many servers share PostgreSQL) a new set is
published before it is swapped in, and its version is the shared store's; sets published by
other servers arrive through `RouteStore.install`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import RouteNotFoundError, RoutesFileError, StrataRouterError
from stratarouter_core.routes_file import load_routes_file

__all__ = ["Publisher", "RouteSet", "RouteSetConflictError", "RouteStore", "parse_routes_document"]

# (tenant, routes document, version replaced or None) -> the published version
Publisher = Callable[[str | None, Mapping[str, Any], int | None], Awaitable[int]]


class RouteSetConflictError(StrataRouterError):
    """The route set is no longer the version the change was made against (409)."""


@dataclass(frozen=True, slots=True)
class RouteSet:
    """One built router, its version (1, 2, ... per tenant) and the tenant that owns it."""

    router: Router
    version: int
    tenant: str | None

    def to_json(self) -> dict[str, Any]:
        """The set as a routes document (``config`` holds the non-default settings): what
        ``GET /v1/routes`` returns and ``PUT /v1/routes`` accepts back."""
        config = self.router.config
        defaults = RouterConfig()
        changed = {
            f.name: getattr(config, f.name)
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(defaults, f.name)
        }
        return {
            "config": json.loads(json.dumps(changed, default=str)),
            "routes": [route.to_dict() for route in self.router.routes],
        }


def parse_routes_document(body: bytes, *, json_format: bool) -> tuple[list[Route], RouterConfig]:
    """Validate a routes document exactly as a routes file is (`load_routes_file`).

    Raises:
        RoutesFileError: The document is invalid; the message names the line, route and field.
    """
    suffix = ".json" if json_format else ".yaml"
    with tempfile.TemporaryDirectory(prefix="stratarouter-put-") as folder:
        path = Path(folder) / f"routes{suffix}"
        path.write_bytes(body)
        try:
            return load_routes_file(path)
        except RoutesFileError as exc:
            # name the request body, not a temporary file the caller never saw
            message = str(exc).replace(str(path), "body")
            raise RoutesFileError(message, path="body", line=exc.line) from None


class RouteStore:
    """The live route set of every tenant.

    A tenant that never replaced its routes serves the initial set (tenant None), but its
    changes are its own: `replace` and `delete` on tenant ``"a"`` never touch the others.
    """

    def __init__(self, initial: Router, encoder: BaseEncoder) -> None:
        """Serve `initial` (already built) to every tenant; new sets are built with `encoder`."""
        self.encoder = encoder
        self.publisher: Publisher | None = None
        self._sets: dict[str | None, RouteSet] = {None: RouteSet(initial, 1, None)}
        self.lock = asyncio.Lock()  # one rebuild at a time: two PUTs never interleave

    def get(self, tenant: str | None) -> RouteSet:
        """The tenant's live set (one dictionary read: atomic under the event loop)."""
        return self._sets.get(tenant) or self._sets[None]

    @property
    def default(self) -> RouteSet:
        """The initial tenant-less set."""
        return self._sets[None]

    def version_of(self, tenant: str | None) -> int:
        """The version of the tenant's own set (1: it still serves the initial set)."""
        found = self._sets.get(tenant)
        return found.version if found is not None else 1

    async def replace(
        self,
        tenant: str | None,
        routes: Sequence[Route],
        config: RouterConfig,
        *,
        expected_version: int | None = None,
    ) -> RouteSet:
        """Build a router from `routes` aside, then make it the tenant's live set.

        Raises:
            RouteSetConflictError: `expected_version` is given and is not the current one.
        """
        async with self.lock:
            router = await asyncio.to_thread(self.build, list(routes), config)
            return await self._publish(tenant, router, expected_version)

    async def delete(self, tenant: str | None, name: str) -> RouteSet:
        """Publish the tenant's set without route `name` (RouteNotFoundError if it has none)."""
        async with self.lock:
            current = self.get(tenant).router
            current.get_route(name)  # raises RouteNotFoundError naming the known routes
            remaining = [r for r in current.routes if r.name != name]
            if not remaining:
                raise RouteNotFoundError(
                    f"route {name!r} is the last route: a route set cannot be empty "
                    "(PUT /v1/routes to replace it)"
                )
            router = await asyncio.to_thread(self.build, remaining, current.config)
            # compare-and-set: another server's change in between is a conflict, not lost
            return await self._publish(tenant, router, self.version_of(tenant))

    def build(self, routes: list[Route], config: RouterConfig) -> Router:
        """A new router on the store's encoder, built (blocking: call it in a thread)."""
        router = Router(encoder=self.encoder, config=config, routes=routes)
        router.build_index()
        return router

    def install(self, tenant: str | None, router: Router, version: int) -> bool:
        """Make `router` the tenant's live set at `version`, unless a newer one is live."""
        if version <= self.version_of(tenant):
            return False
        self._sets[tenant] = RouteSet(router, version, tenant)
        return True

    async def _publish(self, tenant: str | None, router: Router, expected: int | None) -> RouteSet:
        current = self.version_of(tenant)
        if self.publisher is None:
            if expected is not None and expected != current:
                raise RouteSetConflictError(
                    f"the route set is at version {current}, not {expected}; read it again "
                    "and retry"
                )
            version = current + 1
        else:
            document = RouteSet(router, 0, tenant).to_json()
            version = await self.publisher(tenant, document, expected)
        published = RouteSet(router, version, tenant)
        self.install(tenant, router, version)  # a newer set from elsewhere may already be live
        return published
