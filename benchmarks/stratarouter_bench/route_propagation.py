"""`stratarouter bench route-propagation`: how long a ``PUT /v1/routes`` through one server
takes to be served by every server sharing one PostgreSQL.

Starts ``--servers`` `stratarouter serve` processes on 127.0.0.1 (free ports) with
``DATABASE_URL`` and a schema of their own (dropped at the end), then makes ``--updates``
route-set replacements, each through the next server in turn. For each one it records:

- ``ack``: the ``PUT`` round trip (build aside, publish with the next version, swap locally);
- ``all``: from the ``PUT`` being sent until every server's ``GET /v1/routes`` reports the
  new version (``X-Route-Set-Version``), i.e. every server routes with the new set;
- ``after_ack``: ``all`` minus ``ack``: notification, fetch, build aside and swap elsewhere.

Each server is polled over one keep-alive connection every ``--poll-ms`` (default 5 ms), so
the figures carry that much polling granularity; polling much faster loads the servers'
cores (which the load generator shares) and slows what it measures. Loopback only; bounded
(at most 200 updates, 10 s each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

MAX_UPDATES = 200
UPDATE_TIMEOUT_S = 10.0
_DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
_TOPICS = ["billing", "weather", "tech", "travel", "orders", "account", "returns", "jobs"]


def register(benches: Any) -> None:
    """Add the `route-propagation` benchmark."""
    parser = benches.add_parser(
        "route-propagation",
        help="time until a PUT /v1/routes through one server is served by all (PostgreSQL)",
    )
    parser.add_argument("--servers", type=int, default=3, help="server processes (default 3)")
    parser.add_argument("--updates", type=int, default=50, help=f"PUTs (max {MAX_UPDATES})")
    parser.add_argument("--routes", type=int, default=4, help="routes per set (default 4)")
    parser.add_argument("--encoder", choices=["local", "hashing"], default="hashing")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="poll interval (default 5)")
    parser.add_argument(
        "--database-url", help=f"PostgreSQL DSN (default $DATABASE_URL or {_DEFAULT_DSN})"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(run=run)


def _document(update: int, n_routes: int) -> bytes:
    routes = [
        {
            "name": f"{_TOPICS[r % len(_TOPICS)]}_{r}_v{update}",
            "examples": [
                f"{_TOPICS[r % len(_TOPICS)]} question {k} of set {update}" for k in range(3)
            ],
        }
        for r in range(n_routes)
    ]
    return json.dumps({"config": {"threshold": 0.0}, "routes": routes}).encode()


class _Client:
    """One keep-alive HTTP/1.1 connection that returns the status, headers and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> _Client:
        host, _, port = url.removeprefix("http://").partition(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def request(
        self, method: str, path: str, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split(" ", 2)[1]), headers, payload

    async def version(self) -> int:
        _, headers, _ = await self.request("GET", "/v1/routes")
        return int(headers["x-route-set-version"])

    def close(self) -> None:
        self.writer.close()


def _start(folder: Path, index: int, env: dict[str, str], encoder: str) -> subprocess.Popen[bytes]:
    from .server_load import _free_port

    port = _free_port()
    (folder / f"port{index}").write_text(str(port))
    command = [
        sys.executable, "-m", "stratarouter_core.cli.main", "serve",
        "--routes", str(folder / "routes.json"), "--port", str(port),
        "--encoder", encoder, "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


async def _wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a server exited with status {process.returncode}")
        try:
            client = await _Client.open(url)
            client.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("a server did not start within 60 s")


async def _measure(
    urls: list[str], updates: int, n_routes: int, poll_s: float
) -> list[dict[str, float]]:
    writers = [await _Client.open(u) for u in urls]
    pollers = [await _Client.open(u) for u in urls]
    rows = []
    try:
        for update in range(updates):
            writer = writers[update % len(writers)]
            started = time.perf_counter()
            status, _, body = await writer.request("PUT", "/v1/routes", _document(update, n_routes))
            ack = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"PUT {update} answered {status}: {body[:200]!r}")
            version = json.loads(body)["version"]

            every = max(
                await asyncio.gather(*(_seen(p, version, started, poll_s) for p in pollers))
            )
            rows.append({"ack_ms": ack * 1000, "all_ms": every * 1000})
    finally:
        for client in [*writers, *pollers]:
            client.close()
    return rows


async def _seen(poller: _Client, version: int, started: float, poll_s: float) -> float:
    """Seconds from `started` until `poller`'s server serves `version` (polled every `poll_s`)."""
    while await poller.version() < version:
        if time.perf_counter() - started > UPDATE_TIMEOUT_S:
            raise RuntimeError(f"version {version} not served in {UPDATE_TIMEOUT_S} s")
        await asyncio.sleep(poll_s)
    return time.perf_counter() - started


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"updates": len(rows)}
    for name in ("ack_ms", "all_ms", "after_ack_ms"):
        values = sorted(
            r["all_ms"] - r["ack_ms"] if name == "after_ack_ms" else r[name] for r in rows
        )
        out[f"{name.removesuffix('_ms')}_p50_ms"] = values[len(values) // 2]
        out[f"{name.removesuffix('_ms')}_max_ms"] = values[-1]
    return out


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run(args: argparse.Namespace) -> int:
    """Start the servers, make the updates, print P50/max (or JSON), stop the servers."""
    updates = max(1, min(int(args.updates), MAX_UPDATES))
    dsn = args.database_url or os.environ.get("DATABASE_URL") or _DEFAULT_DSN
    schema = f"bench_routes_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "DATABASE_URL": dsn, "STRATAROUTER_DATABASE_SCHEMA": schema}
    for variable in ("STRATAROUTER_API_KEYS", "STRATAROUTER_API_KEYS_FILE", "REDIS_URL"):
        env.pop(variable, None)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="stratarouter-propagation-") as name:
        folder = Path(name)
        (folder / "routes.json").write_bytes(_document(-1, args.routes))
        try:
            processes = [_start(folder, i, env, args.encoder) for i in range(args.servers)]
            urls = [
                f"http://127.0.0.1:{(folder / f'port{i}').read_text()}" for i in range(args.servers)
            ]

            async def main() -> list[dict[str, float]]:
                await asyncio.gather(*(_wait_up(u, p) for u, p in zip(urls, processes)))
                return await _measure(urls, updates, args.routes, max(0.0005, args.poll_ms / 1000))

            rows = asyncio.run(main())
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
            _drop_schema(dsn, schema)
    summary = {
        "servers": args.servers,
        "encoder": args.encoder,
        "routes_per_set": args.routes,
        "poll_ms": args.poll_ms,
        **_summary(rows),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['servers']} servers, {summary['updates']:.0f} updates, "
            f"{args.routes} routes per set, {args.encoder} encoder, polled every "
            f"{args.poll_ms:g} ms\n"
            f"  PUT acknowledged:       P50 {summary['ack_p50_ms']:.1f} ms, "
            f"max {summary['ack_max_ms']:.1f} ms\n"
            f"  served by every server: P50 {summary['all_p50_ms']:.1f} ms, "
            f"max {summary['all_max_ms']:.1f} ms (from the PUT being sent)\n"
            f"  after the acknowledgement: P50 {summary['after_ack_p50_ms']:.1f} ms, "
            f"max {summary['after_ack_max_ms']:.1f} ms"
        )
    return 0
