"""`stratarouter serve` in a subprocess: config precedence, graceful SIGTERM, missing extra."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_helpers import free_port
from stratarouter_core import Router, RouterConfig
from stratarouter_core.errors import ConfigError
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime.server import ServerConfig, load_server_config
from stratarouter_runtime.testing import FakeProviderServer, Fault

ROUTES_YAML = """\
config:
  threshold: 0.0
routes:
  - name: billing
    examples: ["I was charged twice", "refund my invoice"]
    metadata: {provider: local, model: fake-small}
  - name: weather
    examples: ["will it rain today", "is it sunny"]
    metadata: {provider: local, model: fake-small}
"""


# uvicorn re-raises the signal it caught once it has shut down, so a drained server's exit
# status is "killed by SIGTERM" (-15), the convention process managers expect.
DRAINED = (0, -signal.SIGTERM)


def _serve(log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "stratarouter_core.cli.main", "serve", *args]
    with log.open("w") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )


def _wait_ready(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start in 30 s")


def test_sigterm_drains_in_flight_requests_then_exits(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES_YAML)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeProviderServer() as fake:
        process = _serve(
            tmp_path / "log",
            "--routes",
            str(routes),
            "--encoder",
            "hashing",
            "--port",
            str(port),
            "--provider-url",
            fake.openai_base_url,
            "--log-level",
            "warning",
        )
        try:
            _wait_ready(process, url)
            fake.add_faults(Fault.delay(1.5))  # the provider answers the in-flight call slowly
            result: dict[str, object] = {}

            def in_flight() -> None:
                response = httpx.post(
                    f"{url}/v1/execute", json={"query": "refund my invoice"}, timeout=20
                )
                result.update(status=response.status_code, body=response.json())

            thread = threading.Thread(target=in_flight)
            thread.start()
            deadline = time.monotonic() + 10
            while fake.count("openai") == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert fake.count("openai") == 1  # the request is inside the provider call
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx.ConnectError):  # no new connections while draining
                httpx.post(f"{url}/v1/route", json={"query": "is it sunny"}, timeout=2)
            thread.join(20)
            assert process.wait(20) in DRAINED
        finally:
            if process.poll() is None:
                process.kill()
    assert result["status"] == 200, (tmp_path / "log").read_text()
    assert result["body"]["response"] == "echo: refund my invoice"  # type: ignore[index]


def test_serve_a_saved_router_with_keys_from_env_and_settings_from_file(tmp_path: Path) -> None:
    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.0))
    from server_helpers import make_routes

    router.add_routes(make_routes())
    router.build_index()
    router.save(tmp_path / "saved")
    settings = tmp_path / "server.yaml"
    settings.write_text("port: 1\nencoder: hashing\nmax_batch: 2\n")  # port: the flag wins
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _serve(
        tmp_path / "log",
        "--router-dir",
        str(tmp_path / "saved"),
        "--config",
        str(settings),
        "--port",
        str(port),
        env={"STRATAROUTER_API_KEYS": "env-key-12345"},
    )
    try:
        _wait_ready(process, url)
        auth = {"Authorization": "Bearer env-key-12345"}
        assert httpx.post(f"{url}/v1/route", json={"query": "refund"}).status_code == 401
        routed = httpx.post(f"{url}/v1/route", json={"query": "refund my invoice"}, headers=auth)
        assert routed.json()["route"] == "billing"
        batch = httpx.post(f"{url}/v1/route/batch", json={"queries": ["a", "b", "c"]}, headers=auth)
        assert batch.status_code == 413  # max_batch 2, from the file
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) in DRAINED


def test_settings_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    settings = tmp_path / "server.yaml"
    settings.write_text("port: 9001\nmax_batch: 10\nlog_queries: true\n")
    env = {"STRATAROUTER_SERVER_PORT": "9002", "STRATAROUTER_SERVER_MAX_BATCH": "20"}
    assert load_server_config({"port": 9003}, config_file=str(settings), environ=env).port == 9003
    from_env = load_server_config({"port": None}, config_file=str(settings), environ=env)
    assert (from_env.port, from_env.max_batch, from_env.log_queries) == (9002, 20, True)
    assert load_server_config(config_file=str(settings), environ={}).port == 9001
    assert load_server_config(environ={}) == ServerConfig()
    with pytest.raises(ConfigError, match="STRATAROUTER_SERVER_PORT"):
        load_server_config(environ={"STRATAROUTER_SERVER_PORT": "eighty"})
    settings.write_text("prot: 1\n")
    with pytest.raises(ConfigError, match="unknown server settings"):
        load_server_config(config_file=str(settings), environ={})
    with pytest.raises(ConfigError, match="max_batch"):
        ServerConfig(max_batch=0)


def test_serve_without_the_server_extra_names_it_and_exits_2(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"  # as if the extra were not installed
        "from stratarouter_core.cli.main import main\n"
        "sys.exit(main(['serve', '--routes', 'routes.yaml']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'stratarouter-runtime[server]'" in done.stderr


def test_the_core_cli_does_not_import_the_runtime() -> None:
    code = (
        "import sys, json\n"
        "from stratarouter_core.cli import main\n"
        "main._build_parser(with_benches=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('stratarouter_runtime'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
