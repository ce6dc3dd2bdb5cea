"""Routes files: YAML or JSON with a `routes:` list and an optional `config:` mapping.

Schema::

    config:                 # optional, any RouterConfig field
      threshold: 0.5
      fallback_route: human
    routes:                 # required, non-empty list
      - name: billing       # required, unique
        examples: [...]     # list of strings; examples or description required
        description: ...
        keywords: [...]     # list of strings
        patterns: [...]     # list of regular expressions
        metadata: {...}     # free-form mapping
        threshold: 0.6      # optional per-route threshold in [0, 1]

Every error is a `RoutesFileError` whose message starts with ``<file>:<line>:`` and names
the route (by position and name) and the field, so the CLI prints it instead of a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import RouterConfig
from .errors import ConfigError, RoutesFileError
from .types import Route

__all__ = ["load_routes_file"]

_ROUTE_FIELDS = {f.name for f in fields(Route)}
_STRING_LISTS = ("examples", "keywords", "patterns")


class _Map(dict[Any, Any]):
    """A parsed mapping that remembers its own line and the line of each key (1-based)."""

    line: int | None = None
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int | None:
        return getattr(self, "key_lines", {}).get(key, self.line)


class _Seq(list[Any]):
    """A parsed list that remembers its own line and the line of each item (1-based)."""

    line: int | None = None
    item_lines: list[int]

    def line_of(self, index: int) -> int | None:
        lines = getattr(self, "item_lines", [])
        return lines[index] if index < len(lines) else self.line


def _line(value: object, default: int | None = None) -> int | None:
    line = getattr(value, "line", None)
    return line if isinstance(line, int) else default


def load_routes_file(path: str | Path) -> tuple[list[Route], RouterConfig]:
    """Read and validate a routes file; returns the routes and the config it declares.

    Raises:
        RoutesFileError: The file cannot be read or parsed, or a field has the wrong type or
            value; the message names the file, the line and the route.
    """
    path = Path(path)
    data = _parse(path)
    if not isinstance(data, Mapping):
        raise _error(path, _line(data, 1), "the top level must be a mapping with a 'routes:' list")
    unknown = sorted(set(data) - {"routes", "config"})
    if unknown:
        raise _error(
            path,
            _line_of(data, unknown[0]),
            f"unknown top-level key(s) {', '.join(map(str, unknown))} "
            "(expected 'routes' and optional 'config')",
        )
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise _error(path, _line_of(data, "routes"), "'routes' must be a non-empty list")
    routes = [_route(path, raw_routes, i) for i in range(len(raw_routes))]
    _check_unique(path, raw_routes, routes)
    return routes, _config(path, data)


def _line_of(container: object, key: Any) -> int | None:
    line_of = getattr(container, "line_of", None)
    result = line_of(key) if line_of is not None else None
    return result if isinstance(result, int) else None


def _error(path: Path, line: int | None, message: str) -> RoutesFileError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return RoutesFileError(f"{where}: {message}", path=str(path), line=line)


# ----------------------------------------------------------------- parsing, with line numbers
def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesFileError(f"cannot read routes file {path}: {exc}", path=str(path)) from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _error(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
        # JSON is (nearly) YAML: parse it again for the line numbers, and keep them only if
        # the YAML reading gives exactly the same data.
        try:
            lined = _parse_yaml(path, text)
        except RoutesFileError:
            return data
        return lined if lined == data else data
    return _parse_yaml(path, text)


def _parse_yaml(path: Path, text: str) -> Any:
    import yaml

    loader = yaml.SafeLoader(text)
    loader.name = str(path)  # marks name the file, not "<unicode string>"
    try:
        node = loader.get_single_node()
        return None if node is None else _build(loader, node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = f" (column {mark.column + 1})" if mark is not None else ""
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise _error(path, line, f"invalid YAML: {what}{column}") from exc
    except yaml.YAMLError as exc:
        raise _error(path, None, f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _build(loader: Any, node: Any) -> Any:
    """Python data for `node`, mappings and lists carrying the line numbers of their parts."""
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode) and node.tag == "tag:yaml.org,2002:map":
        loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        mapping = _Map()
        mapping.line, mapping.key_lines = line, {}
        for key_node, value_node in node.value:
            key = _build(loader, key_node)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain values", key_node.start_mark
                )
            mapping[key] = _build(loader, value_node)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping
    if isinstance(node, yaml.SequenceNode) and node.tag == "tag:yaml.org,2002:seq":
        sequence = _Seq(_build(loader, item) for item in node.value)
        sequence.line = line
        sequence.item_lines = [item.start_mark.line + 1 for item in node.value]
        return sequence
    return loader.construct_object(node, deep=True)


# ----------------------------------------------------------------- validation
def _route(path: Path, routes: list[Any], position: int) -> Route:
    item = routes[position]
    line = _line_of(routes, position)
    label = f"routes[{position}]"
    if not isinstance(item, Mapping):
        raise _error(path, line, f"{label} must be a mapping with at least 'name', "
                                 f"got {_shown(item)}")
    if "name" in item:
        label += f" ({item['name']!r})"
    unknown = sorted(set(map(str, item)) - _ROUTE_FIELDS)
    if unknown:
        raise _error(
            path,
            _line_of(item, unknown[0]),
            f"{label}: unknown field(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_ROUTE_FIELDS))})",
        )
    if "name" not in item:
        raise _error(path, line, f"{label}: missing 'name'")

    def fail(field: str, message: str, where: int | None = None) -> RoutesFileError:
        at = where if where is not None else _line_of(item, field)
        return _error(path, at, f"{label}: {field}: {message}")

    _check_fields(item, fail)
    try:
        return Route(**{str(key): _plain(value) for key, value in item.items()})
    except ConfigError as exc:  # what only the whole route can tell (no examples nor text)
        raise _error(path, line, f"{label}: {exc}") from exc


def _check_fields(item: Mapping[Any, Any], fail: Callable[..., RoutesFileError]) -> None:
    """Each field's type and value, so a mistake is reported at its own line."""
    if not isinstance(item["name"], str) or not item["name"].strip():
        raise fail("name", f"must be a non-blank string, got {_shown(item['name'])}")
    for field in _STRING_LISTS:
        if field in item:
            _check_strings(item[field], field, fail)
    for pattern_index, pattern in enumerate(item.get("patterns") or ()):
        try:
            re.compile(pattern)
        except re.error as exc:
            at = _line_of(item["patterns"], pattern_index)
            raise fail("patterns", f"invalid regex {pattern!r}: {exc}", at) from exc
    if "description" in item and not isinstance(item["description"], str):
        raise fail("description", f"must be a string, got {_shown(item['description'])}")
    if "metadata" in item and not isinstance(item["metadata"], Mapping):
        raise fail("metadata", f"must be a mapping, got {_shown(item['metadata'])}")
    threshold = item.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0.0 <= threshold <= 1.0
    ):
        raise fail("threshold", f"must be a number in [0, 1], got {_shown(threshold)}")


def _check_strings(value: Any, field: str, fail: Callable[..., RoutesFileError]) -> None:
    if value is None:
        raise fail(field, "is empty: give a list of strings, or leave the field out")
    if not isinstance(value, list):
        kind = "a string" if isinstance(value, str) else _shown(value)
        raise fail(field, f"must be a list of strings, got {kind}")
    for index, entry in enumerate(value):
        if not isinstance(entry, str):
            raise fail(field, f"item {index} must be a string, got {_shown(entry)}",
                       _line_of(value, index))


def _check_unique(path: Path, raw_routes: list[Any], routes: list[Route]) -> None:
    first: dict[str, int] = {}
    for position, route in enumerate(routes):
        if route.name in first:
            earlier = first[route.name]
            earlier_line = _line_of(raw_routes, earlier)
            raise _error(
                path,
                _line_of(raw_routes, position),
                f"routes[{position}]: duplicate route name {route.name!r} (first defined at "
                f"routes[{earlier}]" + (f", line {earlier_line})" if earlier_line else ")"),
            )
        first[route.name] = position


def _config(path: Path, data: Mapping[str, Any]) -> RouterConfig:
    raw = data.get("config")
    if raw is None:
        return RouterConfig()
    if not isinstance(raw, Mapping):
        raise _error(path, _line_of(data, "config"), f"config must be a mapping, got {_shown(raw)}")
    try:
        return RouterConfig.from_dict({str(k): _plain(v) for k, v in raw.items()})
    except (ConfigError, TypeError, ValueError) as exc:
        named = [key for key in raw if str(key) in str(exc)]
        line = _line_of(raw, named[0]) if named else _line_of(data, "config")
        raise _error(path, line, f"config: {exc}") from exc


def _plain(value: Any) -> Any:
    """`value` with the line-tracking containers turned back into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a mapping {dict(_plain(value))!r:.60}"
    if isinstance(value, list):
        return f"a list {_plain(value)!r:.60}"
    return f"{type(value).__name__} {value!r:.60}"
