"""Observability: metric values, span names and parenting, JSON log lines, the disabled mode."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from stratarouter_runtime.config import ObservabilityConfig, RuntimeConfig
from stratarouter_runtime.observability import (
    LOGGER_NAME,
    JsonFormatter,
    NoopMetrics,
    Observability,
    PrometheusMetrics,
    configure_logging,
)

pytest.importorskip("prometheus_client", reason="metrics need the [observability] extra (make test installs it)")
pytest.importorskip("opentelemetry.sdk", reason="traces need the [observability] extra (make test installs it)")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)


@pytest.fixture
def exporter():
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture(autouse=True)
def _reset_runtime_logger():
    runtime_logger = logging.getLogger(LOGGER_NAME)
    saved = (list(runtime_logger.handlers), runtime_logger.level, runtime_logger.propagate)
    runtime_logger.handlers[:] = []  # start from an unconfigured logger
    yield
    runtime_logger.handlers[:] = saved[0]
    runtime_logger.setLevel(saved[1])
    runtime_logger.propagate = saved[2]


def _config(**observability):
    return RuntimeConfig(observability=ObservabilityConfig(**observability))


def test_prometheus_metrics_values():
    metrics = PrometheusMetrics()
    for hit in (True, True, False, True):
        metrics.cache_lookup(hit=hit)
    metrics.request(route="billing", provider="openai", model="m", status="succeeded")
    metrics.request(route="billing", provider="openai", model="m", status="succeeded")
    metrics.request(route="billing", provider="openai", model="m", status="failed")
    metrics.error("ProviderServerError")
    metrics.retry(provider="openai", model="m")
    metrics.breaker_state(provider="openai", model="m", state="open")
    metrics.usage(provider="openai", model="m", input_tokens=12, output_tokens=5, cost_usd=0.002)
    metrics.usage_unknown(provider="local", model="llama3.2")
    metrics.deduplicated()
    metrics.recovered("resumed")
    metrics.observe_stage("cache", 0.0003)
    metrics.observe_stage("provider", 0.2)

    sample = metrics.sample
    assert sample("stratarouter_cache_lookups_total", result="hit") == 3
    assert metrics.cache_hit_ratio == pytest.approx(0.75)
    assert (
        sample(
            "stratarouter_requests_total",
            route="billing",
            provider="openai",
            model="m",
            status="succeeded",
        )
        == 2
    )
    assert sample("stratarouter_errors_total", type="ProviderServerError") == 1
    assert sample("stratarouter_retries_total", provider="openai", model="m") == 1
    assert sample("stratarouter_breaker_state", provider="openai", model="m") == 2
    assert sample("stratarouter_tokens_total", provider="openai", model="m", kind="input") == 12
    assert sample("stratarouter_tokens_total", provider="openai", model="m", kind="output") == 5
    assert sample("stratarouter_cost_usd_total", provider="openai", model="m") == pytest.approx(
        0.002
    )
    assert sample("stratarouter_usage_unknown_total", provider="local", model="llama3.2") == 1
    assert sample("stratarouter_usage_unknown_total", provider="openai", model="m") == 0
    assert sample("stratarouter_deduplicated_requests_total") == 1
    assert sample("stratarouter_recovered_executions_total", outcome="resumed") == 1
    assert sample("stratarouter_stage_latency_seconds_count", stage="provider") == 1
    assert sample("stratarouter_stage_latency_seconds_sum", stage="cache") == pytest.approx(0.0003)
    text = metrics.render().decode()
    assert "stratarouter_cache_lookups_total" in text and 'stage="provider"' in text


def test_each_instance_has_a_private_registry():
    first, second = PrometheusMetrics(), PrometheusMetrics()
    first.deduplicated()
    assert first.sample("stratarouter_deduplicated_requests_total") == 1
    assert second.sample("stratarouter_deduplicated_requests_total") == 0


def test_stage_observes_latency_and_spans_nest(tracer_provider, exporter):
    obs = Observability(
        _config(metrics=True, tracing=True), tracer_provider=tracer_provider
    )
    with obs.span("stratarouter.execute", {"stratarouter.route": "billing"}):
        with obs.stage("route") as route:
            route.span.set_attribute("stratarouter.confidence", 0.9)
        with obs.stage("cache"):
            pass
        with obs.stage("provider", {"gen_ai.system": "openai"}):
            pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        "stratarouter.execute",
        "stratarouter.route",
        "stratarouter.cache",
        "stratarouter.provider",
    }
    root = spans["stratarouter.execute"]
    assert root.parent is None and root.attributes["stratarouter.route"] == "billing"
    for child in ("stratarouter.route", "stratarouter.cache", "stratarouter.provider"):
        assert spans[child].parent.span_id == root.context.span_id
        assert spans[child].context.trace_id == root.context.trace_id
    assert spans["stratarouter.route"].attributes["stratarouter.confidence"] == 0.9
    assert spans["stratarouter.provider"].attributes["gen_ai.system"] == "openai"
    assert obs.metrics.sample("stratarouter_stage_latency_seconds_count", stage="cache") == 1


def test_a_failing_stage_marks_its_span_as_error(tracer_provider, exporter):
    obs = Observability(_config(tracing=True), tracer_provider=tracer_provider)
    with pytest.raises(RuntimeError), obs.stage("provider"):
        raise RuntimeError("boom")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.events[0].name == "exception"


def test_span_can_start_in_the_past(tracer_provider, exporter):
    obs = Observability(_config(tracing=True), tracer_provider=tracer_provider)
    import time

    start = time.time_ns() - 5_000_000
    with obs.span("stratarouter.route", start_ns=start):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.start_time == start and span.end_time - span.start_time >= 5_000_000


def test_json_log_lines_carry_the_execution_fields():
    stream = io.StringIO()
    runtime_logger = configure_logging("info", stream=stream)
    runtime_logger.info(
        "execution finished",
        extra={
            "execution_id": "e1",
            "route": "billing",
            "latency_ms": 12.5,
            "cached": False,
        },
    )
    runtime_logger.debug("not shown at info")
    try:
        raise ValueError("bad")
    except ValueError:
        runtime_logger.exception("failed", extra={"execution_id": "e2"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["message"] == "execution finished" and first["level"] == "info"
    assert first["logger"] == LOGGER_NAME and first["ts"].endswith("+00:00")
    assert (first["execution_id"], first["route"], first["latency_ms"], first["cached"]) == (
        "e1",
        "billing",
        12.5,
        False,
    )
    assert lines[1]["execution_id"] == "e2" and "ValueError: bad" in lines[1]["exc_info"]


def test_configure_logging_keeps_an_application_handler():
    runtime_logger = logging.getLogger(LOGGER_NAME)
    mine = logging.StreamHandler(io.StringIO())
    runtime_logger.handlers[:] = [mine]
    configure_logging("warning")
    assert runtime_logger.handlers == [mine] and runtime_logger.level == logging.WARNING


def test_json_formatter_serialises_unusual_values():
    record = logging.LogRecord("x", logging.WARNING, "f", 1, "m %s", ("arg",), None)
    record.obj = object()
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "m arg" and data["obj"].startswith("<object")


def test_disabled_mode_is_noop():
    obs = Observability(_config())
    assert isinstance(obs.metrics, NoopMetrics) and not obs.tracing_enabled
    with obs.span("x") as span, obs.stage("cache") as stage:
        span.set_attribute("a", 1)
        stage.span.add_event("e")
    obs.start()
    assert obs.metrics_port is None
    obs.close()


def test_disabled_mode_imports_neither_prometheus_nor_opentelemetry():
    code = (
        "import sys\n"
        "from stratarouter_runtime.config import RuntimeConfig\n"
        "from stratarouter_runtime.observability import Observability\n"
        "obs = Observability(RuntimeConfig())\n"
        "with obs.span('x'), obs.stage('cache'):\n"
        "    obs.metrics.cache_lookup(hit=True)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'opentelemetry'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metrics_are_served_over_http():
    obs = Observability(_config(metrics=True, prometheus_port=0))
    obs.start()
    try:
        obs.metrics.cache_lookup(hit=True)
        url = f"http://127.0.0.1:{obs.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        assert 'stratarouter_cache_lookups_total{result="hit"} 1.0' in body
    finally:
        obs.close()


def test_otlp_endpoint_exports_spans_over_http():
    received = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        obs = Observability(_config(tracing=True, otlp_endpoint=endpoint))
        with obs.span("stratarouter.execute"):
            pass
        obs.close()  # flushes the batch processor
    finally:
        server.shutdown()
        server.server_close()
    assert received, "no OTLP export reached the collector"
    path, content_type, body = received[0]
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert b"stratarouter.execute" in body


# --- through the bridge -----------------------------------------------------------------------


@pytest.fixture
async def observed_bridge(tracer_provider):
    pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")
    from stratarouter_core import Route, Router, RouterConfig
    from stratarouter_core.testing import HashingEncoder

    from stratarouter_runtime.bridge import CoreRuntimeBridge
    from stratarouter_runtime.providers import OpenAIClient
    from stratarouter_runtime.testing import FakeProviderServer

    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.2))
    router.add_routes(
        [
            Route(
                name="billing",
                examples=["refund my invoice", "I was charged twice"],
                metadata={"provider": "openai", "model": "gpt-4o-mini"},
            ),
            Route(name="weather", examples=["will it rain today"]),
        ]
    )
    router.build_index()
    stream = io.StringIO()
    config = _config(metrics=True, tracing=True, json_logs=True, log_level="info")
    with FakeProviderServer() as server:
        client = OpenAIClient(api_key="test", base_url=server.openai_base_url)
        obs = Observability(config, tracer_provider=tracer_provider, log_stream=stream)
        bridge = CoreRuntimeBridge(config, router, {"openai": client}, observability=obs)
        async with bridge:
            yield bridge, router, stream
        await client.aclose()


async def test_bridge_metrics_after_executions(observed_bridge):
    bridge, router, _ = observed_bridge
    query = "refund my invoice"
    await bridge.execute(router.route(query), query)
    await bridge.execute(router.route(query), query)
    sample = bridge.observability.metrics.sample
    labels = {"route": "billing", "provider": "openai", "model": "gpt-4o-mini"}
    assert sample("stratarouter_requests_total", status="succeeded", **labels) == 1
    assert sample("stratarouter_requests_total", status="cached", **labels) == 1
    assert sample("stratarouter_cache_lookups_total", result="hit") == 1
    assert sample("stratarouter_cache_lookups_total", result="miss") == 1
    assert bridge.observability.metrics.cache_hit_ratio == 0.5
    for stage, count in (("route", 2), ("cache", 2), ("provider", 1), ("total", 2)):
        assert sample("stratarouter_stage_latency_seconds_count", stage=stage) == count
    tokens = {"provider": "openai", "model": "gpt-4o-mini"}
    assert sample("stratarouter_tokens_total", kind="input", **tokens) > 0
    assert sample("stratarouter_tokens_total", kind="output", **tokens) > 0
    assert sample("stratarouter_cost_usd_total", **tokens) > 0


async def test_bridge_spans_route_cache_provider(observed_bridge, exporter):
    bridge, router, _ = observed_bridge
    query = "refund my invoice"
    miss = await bridge.execute(router.route(query), query)
    await bridge.execute(router.route(query), query)
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name == "stratarouter.execute"]
    assert len(roots) == 2 and all(r.parent is None for r in roots)
    first = roots[0]
    assert first.attributes["stratarouter.execution_id"] == miss.execution_id
    children = sorted(
        (s for s in spans if s.parent and s.parent.span_id == first.context.span_id),
        key=lambda s: s.start_time,
    )
    assert [s.name for s in children] == [
        "stratarouter.route",
        "stratarouter.cache",
        "stratarouter.provider",
    ]
    route, cache, provider = children
    assert route.attributes["stratarouter.route_id"] == "billing"
    assert route.attributes["stratarouter.target"] == "openai:gpt-4o-mini"
    assert cache.attributes["stratarouter.cache_hit"] is False
    assert provider.attributes["gen_ai.system"] == "openai"
    second_children = [
        s.name for s in spans if s.parent and s.parent.span_id == roots[1].context.span_id
    ]
    assert "stratarouter.provider" not in second_children  # served by the cache


async def test_bridge_writes_one_json_line_per_execution(observed_bridge):
    bridge, router, stream = observed_bridge
    query = "refund my invoice"
    result = await bridge.execute(router.route(query), query)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (line,) = [entry for entry in lines if entry.get("execution_id") == result.execution_id]
    assert line["message"] == "execution succeeded" and line["route"] == "billing"
    assert line["latency_ms"] > 0 and line["cached"] is False and line["attempts"] == 1
    assert line["provider"] == "openai" and line["tokens"] > 0


def test_disabled_bridge_imports_neither_prometheus_nor_opentelemetry():
    code = (
        "import asyncio, sys\n"
        "from stratarouter_runtime.bridge import CoreRuntimeBridge\n"
        "from stratarouter_runtime.config import RuntimeConfig\n"
        "from stratarouter_core.types import RouteResult\n"
        "bridge = CoreRuntimeBridge(RuntimeConfig(),\n"
        "                           handlers={'tools': lambda q, c: 'ok'})\n"
        "decision = RouteResult(route_id='tools', confidence=1.0, candidates=(), latency_us=1)\n"
        "async def main():\n"
        "    async with bridge:\n"
        "        return (await bridge.execute(decision, 'hi')).response\n"
        "assert asyncio.run(main()) == 'ok'\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'opentelemetry'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_pool_route_span_says_why_its_model_runs(tracer_provider, exporter):
    pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")
    from stratarouter_core import ModelRouter, ModelSpec, Route, Router, RouterConfig
    from stratarouter_core.testing import HashingEncoder

    from stratarouter_runtime.bridge import CoreRuntimeBridge
    from stratarouter_runtime.providers import OpenAIClient
    from stratarouter_runtime.testing import FakeProviderServer

    hard = [f"prove theorem {i} about primes" for i in range(40)]
    easy = [f"say hello to friend {i}" for i in range(40)]
    mr = ModelRouter(
        [ModelSpec("gpt-4o", 2.5, 10.0), ModelSpec("gpt-4o-mini", 0.15, 0.6)],
        encoder=HashingEncoder(dimension=64),
    )
    mr.fit(hard + easy, [{"gpt-4o": 1.0, "gpt-4o-mini": 0.0}] * 40
           + [{"gpt-4o": 1.0, "gpt-4o-mini": 1.0}] * 40)
    pool = {"provider": "openai", "models": ["gpt-4o", "gpt-4o-mini"], "min_quality": 0.8}
    router = Router(encoder=HashingEncoder(dimension=64), config=RouterConfig(threshold=0.0))
    router.add_routes([Route(name="assistant", examples=["say hello"], metadata=pool)])
    router.build_index()
    config = _config(tracing=True, metrics=True)
    query = "say hello to friend 99"
    with FakeProviderServer() as server:
        client = OpenAIClient(api_key="test", base_url=server.openai_base_url)
        obs = Observability(config, tracer_provider=tracer_provider)
        bridge = CoreRuntimeBridge(
            config, router, {"openai": client}, observability=obs, model_router=mr
        )
        async with bridge:
            await bridge.execute(router.route(query), query)
        await client.aclose()
    route = next(s for s in exporter.get_finished_spans() if s.name == "stratarouter.route")
    expected = mr.route(query, min_quality=0.8)
    attributes = route.attributes
    assert attributes["stratarouter.target"] == "openai:gpt-4o-mini"
    assert attributes["stratarouter.model_choice.model"] == "gpt-4o-mini"
    assert attributes["stratarouter.model_choice.rule"] == "min_quality"
    assert attributes["stratarouter.model_choice.fallback"] is False
    assert attributes["stratarouter.model_choice.p_success"] == pytest.approx(
        expected.p_success["gpt-4o-mini"]
    )
    assert attributes["stratarouter.model_choice.expected_cost_usd"] == pytest.approx(
        expected.expected_costs_usd["gpt-4o-mini"]
    )
    assert attributes["stratarouter.model_choice.nearest_graded_similarity"] == pytest.approx(
        expected.nearest_graded_similarity
    )
    labels = {"route": "assistant", "model": "gpt-4o-mini", "rule": "min_quality"}
    assert obs.metrics.sample("stratarouter_model_choices_total", **labels, fallback="false") == 1
