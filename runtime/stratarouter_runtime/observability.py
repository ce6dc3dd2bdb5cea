"""Observability of the runtime: Prometheus metrics, OpenTelemetry spans, JSON logs.

Everything is optional. With metrics and tracing disabled (the default), `Observability` hands
out no-op objects and neither ``prometheus_client`` nor ``opentelemetry`` is imported.

- Metrics live in a *private* ``CollectorRegistry`` per bridge (several bridges in one process
  never collide); `PrometheusMetrics.render` gives the text exposition format and
  `Observability.start` serves it over HTTP when ``prometheus_port`` is set. Names::

      stratarouter_requests_total{route,provider,model,status}      executions by outcome
      stratarouter_stage_latency_seconds{stage}                     route / cache / provider / total
      stratarouter_cache_lookups_total{result}                      hit | miss (ratio = hit / all)
      stratarouter_errors_total{type}                               error class name
      stratarouter_retries_total{provider,model}                    attempts after the first
      stratarouter_breaker_state{provider,model}                    0 closed, 1 half-open, 2 open
      stratarouter_tokens_total{provider,model,kind}                input | output
      stratarouter_cost_usd_total{provider,model}
      stratarouter_usage_unknown_total{provider,model}              responses that reported no usage
      stratarouter_deduplicated_requests_total                      served by another's call
      stratarouter_recovered_executions_total{outcome}              finished | resumed | failed

- Spans (tracer ``stratarouter_runtime``): ``stratarouter.execute`` with the children
  ``stratarouter.route`` -> ``stratarouter.cache`` -> ``stratarouter.provider``.
- Logs: logger ``stratarouter_runtime``; `JsonFormatter` writes one JSON object per line
  with the fields passed as ``extra`` (execution_id, route, latency_ms, ...). Opt-in
  (``ObservabilityConfig(json_logs=True)``): by default the runtime installs no handler, so
  its per-execution info lines stay silent unless the application's logging shows them.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from stratarouter_runtime._deps import require

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import Tracer, TracerProvider

    from .config import RuntimeConfig

__all__ = [
    "BREAKER_STATES",
    "STAGES",
    "JsonFormatter",
    "Metrics",
    "NoopMetrics",
    "Observability",
    "PrometheusMetrics",
    "SpanLike",
    "configure_logging",
]

LOGGER_NAME = "stratarouter_runtime"
STAGES = ("route", "cache", "batch", "provider", "total")
BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class Metrics(Protocol):
    """What the bridge reports; `NoopMetrics` and `PrometheusMetrics` implement it."""

    enabled: bool

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record how long one stage took."""

    def request(self, *, route: str, provider: str, model: str, status: str) -> None:
        """Count one finished execution (`status`: succeeded, failed, cached)."""

    def cache_lookup(self, *, hit: bool) -> None:
        """Count one cache lookup."""

    def error(self, kind: str) -> None:
        """Count one error of class `kind`."""

    def retry(self, *, provider: str, model: str) -> None:
        """Count one attempt after the first."""

    def breaker_state(self, *, provider: str, model: str, state: str) -> None:
        """Publish a breaker's state (``closed``, ``half_open`` or ``open``)."""

    def usage(
        self, *, provider: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """Add the tokens and cost of one provider response."""

    def usage_unknown(self, *, provider: str, model: str) -> None:
        """Count one provider response that reported no token usage."""

    def deduplicated(self) -> None:
        """Count one request served by another request's provider call."""

    def recovered(self, outcome: str) -> None:
        """Count one execution taken over by recovery."""

    def model_choice(self, *, route: str, model: str, rule: str, fallback: bool) -> None:
        """Count one model-pool choice: the model that runs and the rule that decided."""

    def grade(self, *, model: str, score: float) -> None:
        """Count one grade of a model's answer given through this process, and its score."""


class NoopMetrics:
    """Metrics that record nothing (metrics disabled)."""

    enabled = False

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Do nothing."""

    def request(self, *, route: str, provider: str, model: str, status: str) -> None:
        """Do nothing."""

    def cache_lookup(self, *, hit: bool) -> None:
        """Do nothing."""

    def error(self, kind: str) -> None:
        """Do nothing."""

    def retry(self, *, provider: str, model: str) -> None:
        """Do nothing."""

    def breaker_state(self, *, provider: str, model: str, state: str) -> None:
        """Do nothing."""

    def usage(
        self, *, provider: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """Do nothing."""

    def usage_unknown(self, *, provider: str, model: str) -> None:
        """Do nothing."""

    def deduplicated(self) -> None:
        """Do nothing."""

    def recovered(self, outcome: str) -> None:
        """Do nothing."""

    def model_choice(self, *, route: str, model: str, rule: str, fallback: bool) -> None:
        """Do nothing."""

    def grade(self, *, model: str, score: float) -> None:
        """Do nothing."""


class PrometheusMetrics:
    """Prometheus metrics in a private registry (needs ``prometheus-client``).

    Args:
        namespace: Prefix of every metric name.

    Example:
        >>> metrics = PrometheusMetrics()
        >>> metrics.cache_lookup(hit=True); metrics.cache_lookup(hit=False)
        >>> metrics.sample("stratarouter_cache_lookups_total", result="hit")
        1.0
        >>> metrics.cache_hit_ratio
        0.5
    """

    enabled = True

    def __init__(self, namespace: str = "stratarouter") -> None:
        """Create the registry and every metric (all start at zero)."""
        require("prometheus_client", extra="observability")
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        ns, reg = namespace, self.registry
        target = ["provider", "model"]
        self._requests = Counter(
            "requests",
            "Executions by route, target and outcome.",
            ["route", *target, "status"],
            namespace=ns,
            registry=reg,
        )
        self._latency = Histogram(
            "stage_latency_seconds",
            "Time spent per stage.",
            ["stage"],
            namespace=ns,
            registry=reg,
            buckets=_LATENCY_BUCKETS,
        )
        self._cache = Counter(
            "cache_lookups",
            "Semantic cache lookups by result.",
            ["result"],
            namespace=ns,
            registry=reg,
        )
        self._errors = Counter("errors", "Errors by class.", ["type"], namespace=ns, registry=reg)
        self._retries = Counter(
            "retries", "Provider attempts after the first.", target, namespace=ns, registry=reg
        )
        self._breaker = Gauge(
            "breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            target,
            namespace=ns,
            registry=reg,
        )
        self._tokens = Counter(
            "tokens", "Tokens by direction.", [*target, "kind"], namespace=ns, registry=reg
        )
        self._cost = Counter(
            "cost_usd", "Provider cost in US dollars.", target, namespace=ns, registry=reg
        )
        self._usage_unknown = Counter(
            "usage_unknown",
            "Provider responses that reported no token usage (absent from tokens and cost).",
            target,
            namespace=ns,
            registry=reg,
        )
        self._dedup = Counter(
            "deduplicated_requests",
            "Requests served by another request's provider call.",
            namespace=ns,
            registry=reg,
        )
        self._recovered = Counter(
            "recovered_executions",
            "Executions taken over by recovery.",
            ["outcome"],
            namespace=ns,
            registry=reg,
        )
        self._model_choices = Counter(
            "model_choices",
            "Model-pool choices by route, the model that runs, the deciding rule and fallback "
            "(rule min_graded_similarity: the query was unlike the graded data).",
            ["route", "model", "rule", "fallback"],
            namespace=ns,
            registry=reg,
        )
        self._grades = Counter(
            "model_grades",
            "Grades of models' answers given through this process (every process learns all).",
            ["model"],
            namespace=ns,
            registry=reg,
        )
        self._grade_scores = Counter(
            "model_grade_score",
            "Sum of those grades' scores: divided by model_grades_total, the mean graded "
            "quality of each model's answers.",
            ["model"],
            namespace=ns,
            registry=reg,
        )
        self._stage_children = {stage: self._latency.labels(stage) for stage in STAGES}
        self._hits = self._cache.labels("hit")
        self._misses = self._cache.labels("miss")

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record how long one stage took."""
        child = self._stage_children.get(stage)
        (child if child is not None else self._latency.labels(stage)).observe(seconds)

    def request(self, *, route: str, provider: str, model: str, status: str) -> None:
        """Count one finished execution."""
        self._requests.labels(route, provider, model, status).inc()

    def cache_lookup(self, *, hit: bool) -> None:
        """Count one cache lookup."""
        (self._hits if hit else self._misses).inc()

    def error(self, kind: str) -> None:
        """Count one error of class `kind`."""
        self._errors.labels(kind).inc()

    def retry(self, *, provider: str, model: str) -> None:
        """Count one attempt after the first."""
        self._retries.labels(provider, model).inc()

    def breaker_state(self, *, provider: str, model: str, state: str) -> None:
        """Publish a breaker's state."""
        self._breaker.labels(provider, model).set(BREAKER_STATES.get(state.lower(), -1.0))

    def usage(
        self, *, provider: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """Add the tokens and cost of one provider response."""
        if input_tokens:
            self._tokens.labels(provider, model, "input").inc(input_tokens)
        if output_tokens:
            self._tokens.labels(provider, model, "output").inc(output_tokens)
        if cost_usd:
            self._cost.labels(provider, model).inc(cost_usd)

    def usage_unknown(self, *, provider: str, model: str) -> None:
        """Count one provider response that reported no token usage."""
        self._usage_unknown.labels(provider, model).inc()

    def deduplicated(self) -> None:
        """Count one request served by another request's provider call."""
        self._dedup.inc()

    def recovered(self, outcome: str) -> None:
        """Count one execution taken over by recovery."""
        self._recovered.labels(outcome).inc()

    def model_choice(self, *, route: str, model: str, rule: str, fallback: bool) -> None:
        """Count one model-pool choice."""
        self._model_choices.labels(route, model, rule, "true" if fallback else "false").inc()

    def grade(self, *, model: str, score: float) -> None:
        """Count one grade and add its score."""
        self._grades.labels(model).inc()
        self._grade_scores.labels(model).inc(score)

    def sample(self, name: str, **labels: str) -> float:
        """Current value of one sample (0.0 when it was never set)."""
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    @property
    def cache_hit_ratio(self) -> float:
        """Hits over lookups so far (0.0 before the first lookup)."""
        hits = self.sample("stratarouter_cache_lookups_total", result="hit")
        total = hits + self.sample("stratarouter_cache_lookups_total", result="miss")
        return hits / total if total else 0.0

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class SpanLike(Protocol):
    """The part of an OpenTelemetry span the runtime uses."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute."""

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        """Add a timestamped event."""


class _NoopSpan:
    """A span that records nothing, and its own context manager."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        pass

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_NOOP_SPAN = _NoopSpan()


class _Tracing:
    """Starts OpenTelemetry spans on a tracer from the given or the global tracer provider."""

    def __init__(self, tracer_provider: TracerProvider | None, otlp_endpoint: str | None) -> None:
        require("opentelemetry.trace", extra="observability")
        from opentelemetry import trace

        self.owned: SdkTracerProvider | None = None
        if tracer_provider is None and otlp_endpoint:
            self.owned = _otlp_tracer_provider(otlp_endpoint)
            tracer_provider = self.owned
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer: Tracer = provider.get_tracer(LOGGER_NAME)

    def span(self, name: str, attributes: Mapping[str, Any] | None, start_ns: int | None) -> Any:
        return self.tracer.start_as_current_span(
            name,
            attributes=dict(attributes or {}),
            start_time=start_ns,
            record_exception=True,
            set_status_on_exception=True,
        )


def _otlp_tracer_provider(endpoint: str) -> SdkTracerProvider:
    """An SDK tracer provider exporting to `endpoint` over OTLP/HTTP in batches."""
    install = (
        "pip install 'stratarouter-runtime[observability]' opentelemetry-exporter-otlp-proto-http"
    )
    require("opentelemetry.sdk.trace", install=install)
    exporter_module = require(
        "opentelemetry.exporter.otlp.proto.http.trace_exporter", install=install
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider = SdkProvider(resource=Resource.create({"service.name": "stratarouter"}))
    provider.add_span_processor(BatchSpanProcessor(exporter_module.OTLPSpanExporter(endpoint=url)))
    return provider


# --- logs -------------------------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and every ``extra`` field.

    Example:
        >>> record = logging.LogRecord("x", logging.INFO, "f", 1, "done", None, None)
        >>> record.execution_id = "abc"
        >>> data = json.loads(JsonFormatter().format(record))
        >>> data["level"], data["message"], data["execution_id"]
        ('info', 'done', 'abc')
    """

    def format(self, record: logging.LogRecord) -> str:
        """Serialise `record` as one line of JSON."""
        stamp = _dt.datetime.fromtimestamp(record.created, tz=_dt.timezone.utc)
        data: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (recognised so it is installed once)."""


def configure_logging(level: str = "info", *, stream: TextIO | None = None) -> logging.Logger:
    """Set the runtime logger's level and give it a JSON handler if it has no handler yet.

    With an explicit `stream`, the JSON handler writes there (replacing one installed earlier).
    Otherwise an application that attached its own handler to ``stratarouter_runtime``
    keeps full control; with no handler at all, JSON lines go to stderr. Records that reach
    the JSON handler do not propagate to the root logger.

    Args:
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        stream: Where the JSON lines go.

    Returns:
        The runtime logger.
    """
    runtime_logger = logging.getLogger(LOGGER_NAME)
    runtime_logger.setLevel(level.upper())
    if stream is not None:
        for old in [h for h in runtime_logger.handlers if isinstance(h, _JsonHandler)]:
            runtime_logger.removeHandler(old)
    # the package's NullHandler does not count: it is there only to keep the library quiet
    own = [h for h in runtime_logger.handlers if not isinstance(h, logging.NullHandler)]
    if stream is not None or not own:
        handler = _JsonHandler(stream if stream is not None else sys.stderr)
        handler.setFormatter(JsonFormatter())
        runtime_logger.addHandler(handler)
        runtime_logger.propagate = False
    return runtime_logger


# --- the facade -------------------------------------------------------------------------------


class _Stage:
    """Times one stage: a histogram observation plus (when tracing) a span."""

    __slots__ = ("_context", "_metrics", "_stage", "_start", "seconds", "span")

    def __init__(self, metrics: Metrics, stage: str, context: Any) -> None:
        self._metrics = metrics
        self._stage = stage
        self._context = context
        self._start = 0.0
        self.seconds = 0.0
        self.span: SpanLike = _NOOP_SPAN

    def __enter__(self) -> _Stage:
        self._start = time.perf_counter()
        if self._context is not None:
            self.span = self._context.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.seconds = time.perf_counter() - self._start
        self._metrics.observe_stage(self._stage, self.seconds)
        if self._context is not None:
            self._context.__exit__(kind, exc, tb)


class Observability:
    """Metrics, tracing and logging for one bridge, each switched on by the config.

    Args:
        config: Its `ObservabilityConfig` (``config.observability``) is read.
        tracer_provider: Tracer provider for the spans (default: the global one, or an OTLP
            exporter when ``otlp_endpoint`` is set). Tests pass an SDK provider with an
            in-memory exporter.
        log_stream: Stream for the JSON log lines; giving one turns them on even without
            ``json_logs`` (default: stderr when ``json_logs`` is on, else no handler).

    Example:
        >>> from stratarouter_runtime.config import RuntimeConfig
        >>> obs = Observability(RuntimeConfig())
        >>> obs.metrics.enabled, obs.tracing_enabled
        (False, False)
    """

    def __init__(
        self,
        config: RuntimeConfig,
        *,
        tracer_provider: TracerProvider | None = None,
        log_stream: TextIO | None = None,
    ) -> None:
        """Build the enabled parts; nothing heavy is imported for the disabled ones."""
        self.config = config
        settings = config.observability
        self.metrics: Metrics = PrometheusMetrics() if settings.metrics else NoopMetrics()
        self._tracing = (
            _Tracing(tracer_provider, settings.otlp_endpoint) if settings.tracing else None
        )
        # a library stays quiet unless asked: without json_logs (or a stream to write to) the
        # logger gets no handler and no level, and the application's logging setup decides
        if settings.json_logs or log_stream is not None:
            self.logger = configure_logging(settings.log_level, stream=log_stream)
        else:
            self.logger = logging.getLogger(LOGGER_NAME)
        self._server: Any = None
        self._server_thread: Any = None

    @property
    def tracing_enabled(self) -> bool:
        """True when spans are emitted."""
        return self._tracing is not None

    def span(
        self, name: str, attributes: Mapping[str, Any] | None = None, *, start_ns: int | None = None
    ) -> Any:
        """A context manager around an OpenTelemetry span (a no-op one when tracing is off).

        Args:
            name: Span name, e.g. ``stratarouter.execute``.
            attributes: Initial attributes.
            start_ns: Start time in ns since the epoch (default: now), for a span that
                started before this call (the routing that produced a decision).
        """
        if self._tracing is None:
            return _NOOP_SPAN
        return self._tracing.span(name, attributes, start_ns)

    def stage(self, stage: str, attributes: Mapping[str, Any] | None = None) -> _Stage:
        """Time a stage into the latency histogram, inside a ``stratarouter.<stage>`` span."""
        context = (
            None
            if self._tracing is None
            else self._tracing.span(f"stratarouter.{stage}", attributes, None)
        )
        return _Stage(self.metrics, stage, context)

    def start(self) -> None:
        """Serve the metrics on ``prometheus_port`` (when metrics are on and a port is set)."""
        port = self.config.observability.prometheus_port
        if port is None or not isinstance(self.metrics, PrometheusMetrics) or self._server:
            return
        from prometheus_client import start_http_server

        self._server, self._server_thread = start_http_server(port, registry=self.metrics.registry)

    @property
    def metrics_port(self) -> int | None:
        """The port the metrics are served on (useful with ``prometheus_port=0``)."""
        return None if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        """Stop the metrics server and flush spans of a tracer provider this object owns."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._tracing is not None and self._tracing.owned is not None:
            self._tracing.owned.shutdown()
