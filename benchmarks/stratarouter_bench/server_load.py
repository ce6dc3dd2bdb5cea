"""`stratarouter bench server-load`: requests/s and latency of `stratarouter serve` on loopback.

Starts the server in a subprocess on 127.0.0.1 (a free port), drives ``POST /v1/route`` with
1, 16 and 64 concurrent connections for a fixed time each, and stops by itself. Modes:

- ``embedding``: each request carries its embedding (no encoding on the server);
- ``encode``: the server encodes, with its micro-batcher (default settings);
- ``encode-unbatched``: the server encodes one query per encoder call
  (``encode_max_batch=1``), the baseline micro-batching is measured against.

Every query text is distinct, so the encoder's cache never answers. The load generator is
asyncio + httpx in this process and shares the machine's cores with the server: figures are
a lower bound of what the server does with its own cores.
"""

from __future__ import annotations

import argparse
import asyncio
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

__all__ = ["register", "run", "run_level"]

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


def _start_server(folder: Path, encoder: str, mode: str) -> tuple[subprocess.Popen[bytes], str]:
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


async def run_level(
    url: str, connections: int, duration_s: float, embeddings: list[list[float]] | None
) -> dict[str, float]:
    """Drive `url` with `connections` concurrent clients for `duration_s`; the figures."""
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                i = next(counter)
                body: dict[str, Any] = {"query": _query(i), "top_k": 1}
                if embeddings is not None:
                    body["embedding"] = embeddings[i % len(embeddings)]
                started = time.perf_counter()
                response = await client.post("/v1/route", json=body)
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += response.status_code != 200

        warm = time.perf_counter() + min(1.0, duration_s / 5)
        await asyncio.gather(*(worker(warm, False) for _ in range(connections)))
        started = time.perf_counter()
        until = started + duration_s
        await asyncio.gather(*(worker(until, True) for _ in range(connections)))
        elapsed = time.perf_counter() - started
        metrics = (await client.get("/metrics")).text
    latencies.sort()
    n = len(latencies)
    return {
        "connections": connections,
        "requests": n,
        "errors": errors,
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        "mean_encode_batch": _mean_batch(metrics),
    }


def _mean_batch(metrics: str) -> float:
    """Texts per encoder call so far, from the server's histogram (0 when it never encoded)."""
    values = {}
    for line in metrics.splitlines():
        for name in ("stratarouter_encode_batch_size_sum", "stratarouter_encode_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    count = values.get("stratarouter_encode_batch_size_count", 0.0)
    return values.get("stratarouter_encode_batch_size_sum", 0.0) / count if count else 0.0


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
    """Run every mode at every connection count; print a table (or JSON)."""
    duration = min(float(args.duration), MAX_DURATION_S)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"embedding", "encode", "encode-unbatched"}
    if unknown:
        raise SystemExit(f"unknown modes: {sorted(unknown)}")
    levels = [int(c) for c in args.connections.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="stratarouter-load-") as folder:
        for mode in modes:
            vectors = _embeddings(args.encoder) if mode == "embedding" else None
            process, url = _start_server(Path(folder), args.encoder, mode)
            try:
                for connections in levels:
                    figures = asyncio.run(run_level(url, connections, duration, vectors))
                    results.append({"mode": mode, "encoder": args.encoder, **figures})
                    if not args.json:
                        print(
                            f"{mode:17} c={connections:<3} {figures['rps']:8.0f} req/s  "
                            f"P50 {figures['p50_ms']:7.2f} ms  P99 {figures['p99_ms']:7.2f} ms  "
                            f"errors {figures['errors']:.0f}/{figures['requests']:.0f}  "
                            f"texts/encode {figures['mean_encode_batch']:.1f}",
                            flush=True,
                        )
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if all(r["errors"] == 0 for r in results) else 1
