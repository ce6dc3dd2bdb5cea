"""`stratarouter serve`: run the REST / OpenAI-compatible server with uvicorn.

Hooked into the core's `stratarouter` command lazily (the core never imports the runtime
unless ``serve`` is the command). Settings come from flags > environment
(``STRATAROUTER_SERVER_*``, ``STRATAROUTER_API_KEYS``) > ``--config`` file > defaults; see
`stratarouter_runtime.server.config`. SIGTERM (and Ctrl-C) stop accepting connections and
let in-flight requests finish, up to ``graceful_timeout_s``. The runtime bridge is configured
by `RuntimeConfig.from_env` (``OPENAI_API_KEY``, ``REDIS_URL``, ``DATABASE_URL``...).
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from stratarouter_core.errors import ConfigError

from .._deps import require
from ..config import RuntimeConfig
from .config import ServerConfig, load_server_config

if TYPE_CHECKING:
    from stratarouter_core.router import Router

__all__ = ["build_router", "register", "run"]

# flag -> ServerConfig field; a flag left out is None and does not override env/file
_FLAGS = {
    "routes": "routes",
    "router_dir": "router_dir",
    "model_router_dir": "model_router_dir",
    "host": "host",
    "port": "port",
    "grpc_port": "grpc_port",
    "encoder": "encoder",
    "api_keys_file": "api_keys_file",
    "provider_url": "provider_url",
    "rate_limit": "rate_limit_per_s",
    "max_body_bytes": "max_body_bytes",
    "max_batch": "max_batch",
    "graceful_timeout": "graceful_timeout_s",
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the `serve` arguments to `parser` (the core CLI's ``serve`` subcommand)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--routes", help="routes file (YAML or JSON) to serve")
    source.add_argument("--router-dir", help="directory written by Router.save")
    parser.add_argument(
        "--model-router-dir",
        help="directory written by ModelRouter.save: picks the model of routes with a models pool",
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    parser.add_argument(
        "--grpc-port", type=int, help="also serve gRPC on this port (needs the [grpc] extra)"
    )
    parser.add_argument("--config", help="server settings file (YAML; ServerConfig fields)")
    parser.add_argument(
        "--encoder", choices=["local", "hashing"], help="query encoder (default local)"
    )
    parser.add_argument("--api-keys-file", help="API keys, one 'key [tenant]' per line")
    parser.add_argument("--provider-url", help="OpenAI-compatible server used as provider 'local'")
    parser.add_argument("--rate-limit", type=float, help="requests/s per key (0: off)")
    parser.add_argument("--max-body-bytes", type=int, help="largest request body")
    parser.add_argument("--max-batch", type=int, help="most queries per /v1/route/batch")
    parser.add_argument("--graceful-timeout", type=float, help="seconds to drain on SIGTERM")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    parser.set_defaults(run=run)


def build_router(config: ServerConfig) -> Router:
    """The router `config` names (a routes file or a saved router), built."""
    from stratarouter_core import Router
    from stratarouter_core.routes_file import load_routes_file

    encoder: Any = None
    if config.encoder == "hashing":
        from stratarouter_core.testing import HashingEncoder

        encoder = HashingEncoder()
    if config.router_dir:
        router = Router.load(config.router_dir, encoder=encoder)
        if not router.is_built:
            router.build_index()
        return router
    if not config.routes:
        raise ConfigError("stratarouter serve needs --routes FILE or --router-dir DIR")
    routes, router_config = load_routes_file(config.routes)
    router = Router(encoder=encoder, config=router_config, routes=routes)
    router.build_index()
    return router


def _pin_blas_threads() -> None:
    """Hold BLAS to one thread for the process's life, set from the main thread.

    The server encodes in a worker thread. The local encoder limits BLAS to one thread around
    each call and restores it afterwards; done from a worker thread, that costs 3-8x per
    encode on this 2-core machine (16 ms on the main thread, 65-130 ms on a worker). Set once
    here, every encode runs at main-thread speed, and the router's small matrix products
    do not need BLAS threads anyway.
    """
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:  # without threadpoolctl the encoder cannot limit BLAS either
        return
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")  # stays until restored


def _sweep_when_shared(runtime: RuntimeConfig) -> RuntimeConfig:
    """Over a shared PostgreSQL store, recover periodically (every lease timeout, unless
    ``STRATAROUTER_RECOVERY_INTERVAL_S`` says otherwise): a surviving server then takes over
    what a dead one left, not only a restarted one."""
    state = runtime.state
    if state.backend != "postgresql" or state.recovery_interval_s > 0:
        return runtime
    return runtime.replace(state=state.replace(recovery_interval_s=state.lease_timeout_s))


def run(args: argparse.Namespace) -> int:
    """Load the settings and the router, then serve until SIGTERM/SIGINT."""
    uvicorn = require("uvicorn", extra="server")
    from .app import create_app

    flags = {field: getattr(args, flag, None) for flag, field in _FLAGS.items()}
    config = load_server_config(flags, config_file=args.config)
    if config.grpc_port is not None:  # fail now, naming the extra, not in uvicorn's startup
        require("grpc", extra="grpc")
    # Provider keys, Redis/PostgreSQL URLs and the other runtime settings come from the
    # environment, as for any runtime user; /metrics needs the Prometheus registry on.
    runtime = RuntimeConfig.from_env()
    runtime = runtime.replace(observability=runtime.observability.replace(metrics=True))
    runtime = _sweep_when_shared(runtime)
    app = create_app(build_router(config), config=config, runtime_config=runtime)
    _pin_blas_threads()
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=config.graceful_timeout_s,
        access_log=False,  # paths only, but a per-request line is noise at this rate
    )
    return 0
