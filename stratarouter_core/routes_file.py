"""Routes files: YAML or JSON with a `routes:` list and an optional `config:` mapping.

Schema::

    config:                 # optional, any RouterConfig field
      threshold: 0.5
      fallback_route: human
    routes:                 # required, non-empty list
      - name: billing       # required, unique
        examples: [...]     # list of strings; examples or description required
        description: ...
        keywords: [...]
        patterns: [...]     # regular expressions
        metadata: {...}     # free-form
        threshold: 0.6      # optional per-route threshold in [0, 1]

Errors name the file, the route (by position and name) and, for YAML syntax errors, the line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import RouterConfig
from .errors import ConfigError
from .types import Route

__all__ = ["load_routes_file"]

_ROUTE_FIELDS = {f.name for f in fields(Route)}


def load_routes_file(path: str | Path) -> tuple[list[Route], RouterConfig]:
    """Read and validate a routes file; returns the routes and the config it declares."""
    path = Path(path)
    data = _parse(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping with a 'routes:' list")
    unknown = sorted(set(data) - {"routes", "config"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)} "
            "(expected 'routes' and optional 'config')"
        )
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise ConfigError(f"{path}: 'routes' must be a non-empty list")
    routes = [_route(path, i, item) for i, item in enumerate(raw_routes)]
    try:
        config = RouterConfig.from_dict(data.get("config") or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: config: {exc}") from exc
    return routes, config


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read routes file {path}: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {exc}") from exc


def _route(path: Path, position: int, item: Any) -> Route:
    where = f"{path}: routes[{position}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with at least 'name'")
    if "name" in item:
        where += f" ({item['name']!r})"
    unknown = sorted(set(item) - _ROUTE_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_ROUTE_FIELDS))})"
        )
    if "name" not in item:
        raise ConfigError(f"{where}: missing 'name'")
    try:
        return Route(**item)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
