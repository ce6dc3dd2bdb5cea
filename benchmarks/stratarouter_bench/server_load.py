"""`stratarouter bench server-load`: requests/s and latency of `stratarouter serve` on loopback.

Starts the server in a subprocess on 127.0.0.1 (free ports), drives ``POST /v1/route`` (REST)
and ``stratarouter.v1.StrataRouter/Route`` (gRPC, ``--protocols``) with 1, 16 and 64 concurrent
connections for a fixed time each, and stops by itself. Modes:

- ``embedding``: each request carries its embedding (no encoding on the server);
- ``encode``: the server encodes, with its micro-batcher (default settings);
- ``encode-unbatched``: the server encodes one query per encoder call
  (``encode_max_batch=1``), the baseline micro-batching is measured against.

Every query text is distinct, so the encoder's cache never answers. The load generator is a
minimal asyncio HTTP/1.1 client in this process (keep-alive, one connection per concurrent
client); it shares the machine's cores with the server, so figures are a lower bound of what
the server does with cores of its own. The gRPC load uses grpc.aio with one channel (one
HTTP/2 connection) per concurrent client and sends pre-serialised requests (the embedding's
bytes are encoded once), so the client's protobuf work is not counted against the server.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "run", "run_grpc_level", "run_level"]

_ROUTES = """\
config: {threshold: 0.0}
routes:
  - name: billing
    examples: ["I was charged twice", "refund my invoice", "my card was billed two times"]
  - name: weather
    examples: ["will it rain today", "weather forecast for tomorrow", "is it sunny"]
  - name: tech
    examples: ["the app crashes on start", "error 500 when I log in", "I cannot log in"]
  - name: travel
    examples: ["book a flight to Paris", "cancel my hotel reservation", "train tickets"]
"""
_TOPICS = ["refund for order", "rain in city", "app crash on device", "flight to airport"]
MAX_DURATION_S = 30.0
# One sequence for the whole run: no text repeats across levels, protocols or modes, so the
# encoder's cache never answers (each level used to restart at 0 and hit the cache).
_SEQUENCE = itertools.count()


def register(benches: Any) -> None:
    """Add the `server-load` benchmark."""
    parser = benches.add_parser(
        "server-load", help="requests/s and P50/P99 of stratarouter serve on 127.0.0.1"
    )
    parser.add_argument("--encoder", choices=["local", "hashing"], default="local")
    parser.add_argument(
        "--modes", default="embedding,encode,encode-unbatched", help="comma list (see --help)"
    )
    parser.add_argument("--connections", default="1,16,64", help="comma list (default 1,16,64)")
    parser.add_argument(
        "--protocols", default="rest,grpc", help="comma list of rest, grpc (default both)"
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help=f"seconds per level (max {MAX_DURATION_S:g})"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(run=run)


def _query(i: int) -> str:
    return f"{_TOPICS[i % len(_TOPICS)]} number {i}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_server(
    folder: Path, encoder: str, mode: str, grpc_port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    routes = folder / "routes.yaml"
    routes.write_text(_ROUTES)
    port = _free_port()
    env = {**os.environ, "STRATAROUTER_SERVER_RATE_LIMIT_PER_S": "0"}
    env.pop("STRATAROUTER_API_KEYS", None)
    if mode == "encode-unbatched":
        env["STRATAROUTER_SERVER_ENCODE_MAX_BATCH"] = "1"
    command = [
        sys.executable,
        "-m",
        "stratarouter_core.cli.main",
        "serve",
        "--routes",
        str(routes),
        "--port",
        str(port),
        "--encoder",
        encoder,
        "--log-level",
        "warning",
    ]
    if grpc_port is not None:
        command += ["--grpc-port", str(grpc_port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start within 60 s")


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for this load.

    A client library costs more CPU per request than the server's routing does, and the
    load generator shares the cores with the server: this one costs a few microseconds.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers.split(b" ", 2)[1])
        length = 0
        for line in headers.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def run_level(
    url: str, connections: int, duration_s: float, embeddings: list[list[float]] | None
) -> dict[str, float]:
    """Drive `url` with `connections` concurrent clients for `duration_s`; the figures."""
    host, _, port = url.removeprefix("http://").partition(":")
    latencies: list[float] = []
    errors = 0
    pool = [await _Connection.open(host, int(port)) for _ in range(connections)]
    encoded = None if embeddings is None else [json.dumps(e).encode() for e in embeddings]

    async def worker(connection: _Connection, until: float, record: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            i = next(_SEQUENCE)
            query = json.dumps(_query(i)).encode()
            body = b'{"top_k": 1, "query": ' + query
            if encoded is not None:
                body += b', "embedding": ' + encoded[i % len(encoded)]
            body += b"}"
            started = time.perf_counter()
            status, _ = await connection.request("POST", "/v1/route", body)
            if record:
                latencies.append(time.perf_counter() - started)
                errors += status != 200

    try:
        warm = time.perf_counter() + min(1.0, duration_s / 5)
        await asyncio.gather(*(worker(c, warm, False) for c in pool))
        before = await _encode_totals(url)
        started = time.perf_counter()
        until = started + duration_s
        await asyncio.gather(*(worker(c, until, True) for c in pool))
        elapsed = time.perf_counter() - started
        batch = _mean_batch(before, await _encode_totals(url))
    finally:
        for connection in pool:
            connection.close()
    return _figures(connections, latencies, errors, elapsed, batch)


def _figures(
    connections: int, latencies: list[float], errors: int, elapsed: float, batch: float
) -> dict[str, float]:
    latencies.sort()
    n = len(latencies)
    return {
        "connections": connections,
        "requests": n,
        "errors": errors,
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        "mean_encode_batch": batch,
    }


async def run_grpc_level(
    url: str,
    target: str,
    connections: int,
    duration_s: float,
    embeddings: list[list[float]] | None,
) -> dict[str, float]:
    """Drive the gRPC `Route` at `target` like `run_level` drives REST; the same figures."""
    # imported as Any: the benchmarks' mypy run has no grpc/protobuf stubs to follow
    grpc: Any = importlib.import_module("grpc")
    pb: Any = importlib.import_module("stratarouter_runtime.server.proto.stratarouter_pb2")

    latencies: list[float] = []
    errors = 0
    # one HTTP/2 connection per client: channels do not share a subchannel
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(connections)
    ]
    calls = [
        c.unary_unary("/stratarouter.v1.StrataRouter/Route", None, None) for c in channels
    ]
    # protobuf fields concatenate: query + top_k per call, the embedding's bytes prebuilt
    vectors = [] if embeddings is None else [
        pb.RouteRequest(embedding=e).SerializeToString() for e in embeddings
    ]

    async def worker(call: Any, until: float, record: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            i = next(_SEQUENCE)
            body = pb.RouteRequest(query=_query(i), top_k=1).SerializeToString()
            if vectors:
                body += vectors[i % len(vectors)]
            started = time.perf_counter()
            try:
                await call(body, timeout=30)
                failed = False
            except grpc.RpcError:
                failed = True
            if record:
                latencies.append(time.perf_counter() - started)
                errors += failed

    try:
        await asyncio.gather(*(c.channel_ready() for c in channels))
        warm = time.perf_counter() + min(1.0, duration_s / 5)
        await asyncio.gather(*(worker(c, warm, False) for c in calls))
        before = await _encode_totals(url)
        started = time.perf_counter()
        await asyncio.gather(*(worker(c, started + duration_s, True) for c in calls))
        elapsed = time.perf_counter() - started
        batch = _mean_batch(before, await _encode_totals(url))
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    return _figures(connections, latencies, errors, elapsed, batch)


async def _encode_totals(url: str) -> tuple[float, float]:
    """(texts encoded, encoder calls) so far, from the server's batch-size histogram."""
    host, _, port = url.removeprefix("http://").partition(":")
    connection = await _Connection.open(host, int(port))
    try:
        _, metrics = await connection.request("GET", "/metrics")
    finally:
        connection.close()
    values = {}
    for line in metrics.decode().splitlines():
        for name in ("stratarouter_encode_batch_size_sum", "stratarouter_encode_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return (
        values.get("stratarouter_encode_batch_size_sum", 0.0),
        values.get("stratarouter_encode_batch_size_count", 0.0),
    )


def _mean_batch(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Texts per encoder call during one level (0 when the server never encoded)."""
    calls = after[1] - before[1]
    return (after[0] - before[0]) / calls if calls else 0.0


def _embeddings(encoder: str) -> list[list[float]]:
    from stratarouter_core.encoders.base import BaseEncoder

    model: BaseEncoder
    if encoder == "hashing":
        from stratarouter_core.testing import HashingEncoder

        model = HashingEncoder()
    else:
        from stratarouter_core.encoders.local import LocalEncoder

        model = LocalEncoder()
    vectors = model.encode([_query(i) for i in range(256)])
    return [list(map(float, row)) for row in vectors]


def run(args: argparse.Namespace) -> int:
    """Run every mode and protocol at every connection count; print a table (or JSON)."""
    duration = min(float(args.duration), MAX_DURATION_S)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"embedding", "encode", "encode-unbatched"}
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown |= set(protocols) - {"rest", "grpc"}
    if unknown:
        raise SystemExit(f"unknown modes or protocols: {sorted(unknown)}")
    levels = [int(c) for c in args.connections.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="stratarouter-load-") as folder:
        for mode in modes:
            vectors = _embeddings(args.encoder) if mode == "embedding" else None
            grpc_port = _free_port() if "grpc" in protocols else None
            process, url = _start_server(Path(folder), args.encoder, mode, grpc_port)
            try:
                for protocol in protocols:
                    for connections in levels:
                        if protocol == "rest":
                            level = run_level(url, connections, duration, vectors)
                        else:
                            target = f"127.0.0.1:{grpc_port}"
                            level = run_grpc_level(url, target, connections, duration, vectors)
                        figures = asyncio.run(level)
                        row = {"mode": mode, "protocol": protocol, "encoder": args.encoder}
                        results.append({**row, **figures})
                        if not args.json:
                            _print_row(results[-1])
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if all(r["errors"] == 0 for r in results) else 1


def _print_row(r: dict[str, Any]) -> None:
    print(
        f"{r['mode']:17} {r['protocol']:4} c={r['connections']:<3} {r['rps']:8.0f} req/s  "
        f"P50 {r['p50_ms']:7.2f} ms  P99 {r['p99_ms']:7.2f} ms  "
        f"errors {r['errors']:.0f}/{r['requests']:.0f}  "
        f"texts/encode {r['mean_encode_batch']:.1f}",
        flush=True,
    )
