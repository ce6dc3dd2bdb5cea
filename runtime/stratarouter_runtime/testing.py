"""A fake LLM provider server for offline tests and examples (standard library only).

`FakeProviderServer` speaks the wire formats the official SDKs use, on 127.0.0.1, so the real
clients (`OpenAIClient`, `LocalClient`, `AnthropicClient`, `GoogleClient`, the OpenAI encoder) can
be driven end to end with no network and no API key:

- OpenAI chat completions: `POST /v1/chat/completions`, JSON or SSE (`data: {...}` ... `[DONE]`;
  with `stream_options.include_usage`, every chunk has `"usage": null` and a last chunk with no
  choices carries the usage);
- OpenAI embeddings: `POST /v1/embeddings`, `float` or `base64` encoding;
- Anthropic Messages: `POST /v1/messages`, JSON or SSE events (`message_start`, whose message
  holds the input usage, ... `message_delta`, with the stop reason and the cumulative output
  tokens, then `message_stop`);
- Gemini: `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`,
  every streamed chunk with `usageMetadata` running totals and the last with `finishReason`.

Replies are deterministic (`"echo: <last user message>"` unless told otherwise), token counts are
word counts, and failures are scripted with a queue of `Fault`s, each consumed by one request.

Example:
    >>> import json, urllib.request
    >>> with FakeProviderServer() as server:
    ...     server.add_faults(Fault.http_error(503))
    ...     body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    ...     url = server.openai_base_url + "/chat/completions"
    ...     def post():
    ...         request = urllib.request.Request(url, body.encode(), method="POST")
    ...         try:
    ...             with urllib.request.urlopen(request) as response:
    ...                 return json.load(response)["choices"][0]["message"]["content"]
    ...         except urllib.error.HTTPError as error:
    ...             return error.code
    ...     post(), post(), len(server.requests)
    (503, 'echo: hi', 2)
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

__all__ = ["Api", "FakeProviderServer", "Fault", "FaultKind", "RecordedRequest"]

logger = logging.getLogger(__name__)

Api = Literal["openai", "anthropic", "gemini", "embeddings"]
FaultKind = Literal[
    "http_error",
    "delay",
    "slow_stream",
    "break_stream",
    "truncate_stream",
    "hold_stream",
    "malformed",
    "prompt_blocked",
]
_STREAM_ONLY = frozenset({"slow_stream", "break_stream", "truncate_stream", "hold_stream"})
_GEMINI_PATH = re.compile(
    r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)"
)
_WORDS = re.compile(r"\S+\s*")


@dataclass(frozen=True, eq=False)
class Fault:
    """One scripted failure, consumed by the first matching request (FIFO).

    Build them with the class methods. `api` restricts a fault to one wire format; stream faults
    only match streaming requests.

    Example:
        >>> Fault.rate_limit(retry_after=0.5).status
        429
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0
    after_chunks: int = 1
    body: str | None = None
    api: Api | None = None
    message: str = "injected fault"
    _gate: threading.Event = field(default_factory=threading.Event, repr=False, init=False)
    _expired: threading.Event = field(default_factory=threading.Event, repr=False, init=False)

    @classmethod
    def http_error(
        cls,
        status: int = 500,
        *,
        retry_after: float | None = None,
        message: str = "injected fault",
        api: Api | None = None,
    ) -> Fault:
        """Answer with HTTP `status`, the provider's error body and a Retry-After if given."""
        return cls("http_error", status=status, retry_after=retry_after, message=message, api=api)

    @classmethod
    def server_error(cls, status: int = 500, *, api: Api | None = None) -> Fault:
        """A 5xx answer."""
        return cls.http_error(status, message="internal error (injected)", api=api)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1.0, *, api: Api | None = None) -> Fault:
        """A 429 with `Retry-After` (and `retry-after-ms`) headers."""
        return cls.http_error(429, retry_after=retry_after, message="rate limited", api=api)

    @classmethod
    def bad_request(
        cls, message: str = "invalid request (injected)", *, api: Api | None = None
    ) -> Fault:
        """A 400: a request no retry can fix."""
        return cls.http_error(400, message=message, api=api)

    @classmethod
    def delay(cls, seconds: float, *, api: Api | None = None) -> Fault:
        """Answer normally after `seconds`; longer than the client timeout, it is a timeout."""
        return cls("delay", delay_s=seconds, api=api)

    @classmethod
    def slow_stream(cls, delay_s: float, *, api: Api | None = None) -> Fault:
        """Stream with `delay_s` seconds between text chunks."""
        return cls("slow_stream", delay_s=delay_s, api=api)

    @classmethod
    def break_stream(cls, after_chunks: int = 1, *, api: Api | None = None) -> Fault:
        """Send `after_chunks` text chunks, then drop the connection mid-body."""
        return cls("break_stream", after_chunks=after_chunks, api=api)

    @classmethod
    def truncate_stream(cls, after_chunks: int = 1, *, api: Api | None = None) -> Fault:
        """Send `after_chunks` text chunks, then end the body cleanly without the end events."""
        return cls("truncate_stream", after_chunks=after_chunks, api=api)

    @classmethod
    def hold_stream(
        cls, after_chunks: int = 1, *, max_hold_s: float = 30.0, api: Api | None = None
    ) -> Fault:
        """Send `after_chunks` text chunks, then wait for `release()` (at most `max_hold_s`).

        A test that releases the hold on receiving the first chunks proves they arrived while
        the answer was still being produced; `expired` tells if the hold ran out instead.
        """
        return cls("hold_stream", after_chunks=after_chunks, delay_s=max_hold_s, api=api)

    @classmethod
    def malformed(cls, body: str | None = None, *, api: Api | None = None) -> Fault:
        """Answer 200 with a body that is not valid JSON (or a stream with a broken event)."""
        return cls("malformed", body=body, api=api)

    @classmethod
    def prompt_blocked(cls, reason: str = "SAFETY") -> Fault:
        """Gemini refuses the prompt itself: `promptFeedback.blockReason`, no candidates."""
        return cls("prompt_blocked", message=reason, api="gemini")

    def release(self) -> None:
        """Let a held stream go on."""
        self._gate.set()

    @property
    def released(self) -> bool:
        """Whether `release()` was called."""
        return self._gate.is_set()

    @property
    def expired(self) -> bool:
        """Whether a held stream went on because nobody released it in time."""
        return self._expired.is_set()

    def matches(self, api: Api, stream: bool) -> bool:
        """Whether this fault applies to a request of `api` (streaming or not)."""
        return (self.api is None or self.api == api) and (stream or self.kind not in _STREAM_ONLY)


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received, and the fault it was answered with (if any)."""

    api: Api
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    model: str | None
    stream: bool
    fault: FaultKind | None
    received_at: float


@dataclass(frozen=True)
class _Call:
    """A parsed request: what to answer and in which format."""

    api: Api
    model: str
    stream: bool
    prompt: str
    prompt_tokens: int
    max_tokens: int | None
    body: Mapping[str, Any]
    cached_tokens: int = 0  # of prompt_tokens, reported as read from the provider's prompt cache
    stream_usage: bool = True


class FakeProviderServer:
    """OpenAI / Anthropic / Gemini wire formats on 127.0.0.1, in a background thread.

    Args:
        reply: The answer text, or a function of the last user message; default `"echo: <it>"`.
        embedding_dimensions: Size of fake embeddings when the request sets no `dimensions`.
        cached_prompt_tokens: How many prompt tokens each provider reports as read from its
            prompt cache, in its own way (OpenAI and Gemini count them inside the prompt
            tokens, Anthropic apart from `input_tokens`); at most the prompt's size.
        stream_usage: False acts like an OpenAI-compatible server that ignores
            `stream_options.include_usage` and never sends usage in a stream.
        host: Interface to bind; keep the loopback.

    Use it as a context manager (or `start()` / `stop()`); `base_url` is the root for the
    Anthropic and Gemini clients, `openai_base_url` (root + `/v1`) for the OpenAI-compatible ones.

    Example:
        >>> with FakeProviderServer(reply=str.upper) as server:
        ...     server.add_faults(Fault.rate_limit(retry_after=2), Fault.delay(0.5, api="gemini"))
        ...     server.base_url.startswith("http://127.0.0.1:"), server.pending_faults
        (True, 2)
    """

    def __init__(
        self,
        *,
        reply: str | Callable[[str], str] | None = None,
        embedding_dimensions: int = 64,
        cached_prompt_tokens: int = 0,
        stream_usage: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure; nothing listens until `start()`."""
        self.reply = reply
        self.embedding_dimensions = embedding_dimensions
        self.cached_prompt_tokens = cached_prompt_tokens
        self.stream_usage = stream_usage
        self._host = host
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._holds: list[Fault] = []
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeProviderServer:
        """Bind a free port and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server((self._host, 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-provider-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release held streams and close every connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        with self._lock:
            for fault in self._holds:
                fault.release()
        httpd.shutdown()
        httpd.close_all()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("FakeProviderServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`: the root for Anthropic and Gemini clients."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """`<base_url>/v1`: the root for OpenAI-compatible clients."""
        return self.base_url + "/v1"

    # -- scripting and inspection ------------------------------------------------------------

    def add_faults(self, *faults: Fault) -> None:
        """Queue faults; each is used once by the first request it matches."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        """Faults not consumed yet."""
        with self._lock:
            return len(self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, api: Api | None = None) -> int:
        """Requests received (of `api`, if given)."""
        return sum(1 for r in self.requests if api is None or r.api == api)

    def reset(self) -> None:
        """Forget requests and pending faults."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()

    # -- used by the handler -----------------------------------------------------------------

    def _record(self, call: _Call, path: str, headers: Mapping[str, str]) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if f.matches(call.api, call.stream)), None)
            if fault is not None:
                self._faults.remove(fault)
                if fault.kind == "hold_stream":
                    self._holds.append(fault)
            self._requests.append(
                RecordedRequest(
                    api=call.api,
                    path=path,
                    headers=headers,
                    body=call.body,
                    model=call.model,
                    stream=call.stream,
                    fault=None if fault is None else fault.kind,
                    received_at=time.time(),
                )
            )
        return fault

    def _answer(self, prompt: str) -> str:
        reply = self.reply
        if reply is None:
            return f"echo: {prompt}"
        return reply if isinstance(reply, str) else reply(prompt)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True when it is stopping."""
        return self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], fake: FakeProviderServer):
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up mid-answer are expected here; anything else is a bug.
        logger.debug(
            "fake provider: connection from %s ended abruptly", client_address, exc_info=True
        )


def _words(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    """Text of an OpenAI/Anthropic content (a string or a list of parts) or Gemini parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _parse_call(path: str, body: Mapping[str, Any]) -> _Call | None:
    """Which API a request is for, and what it asks; None for an unknown path."""
    route = path.split("?", 1)[0]
    gemini = _GEMINI_PATH.search(route)
    if gemini:
        contents = body.get("contents") or []
        texts = [(c.get("role", "user"), _text_of(c.get("parts"))) for c in contents]
        system = _text_of((body.get("systemInstruction") or {}).get("parts"))
        config = body.get("generationConfig") or {}
        return _Call(
            "gemini",
            gemini["model"],
            gemini["method"] == "streamGenerateContent",
            next((t for role, t in reversed(texts) if role == "user"), ""),
            _words(system) + sum(_words(t) for _, t in texts),
            config.get("maxOutputTokens"),
            body,
        )
    api: Api
    if route.endswith("/chat/completions"):
        api = "openai"
    elif route.endswith("/messages"):
        api = "anthropic"
    elif route.endswith("/embeddings"):
        api = "embeddings"
    else:
        return None
    messages = body.get("messages") or []
    texts = [(m.get("role"), _text_of(m.get("content"))) for m in messages if isinstance(m, dict)]
    system = _text_of(body.get("system"))
    return _Call(
        api,
        str(body.get("model", "")),
        body.get("stream") is True,
        next((t for role, t in reversed(texts) if role == "user"), ""),
        _words(system) + sum(_words(t) for _, t in texts),
        body.get("max_completion_tokens") or body.get("max_tokens"),
        body,
    )


def _embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector from hashed words: texts sharing words point the same way."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()) or [text]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


_STATUS_WORDS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(api: Api, fault: Fault) -> dict[str, Any]:
    status, message = fault.status, fault.message
    if api == "anthropic":
        kind = _ANTHROPIC_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": kind, "message": message}}
    if api == "gemini":
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS_WORDS.get(
                status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
            ),
        }
        if fault.retry_after is not None:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{fault.retry_after:g}s",
                }
            ]
        return {"error": error}
    kind = (
        "rate_limit_exceeded"
        if status == 429
        else "server_error"
        if status >= 500
        else "invalid_request_error"
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake provider: " + format, *args)

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        call = _parse_call(self.path, body) if isinstance(body, dict) else None
        if call is None:
            self._json(
                404 if isinstance(body, dict) else 400, {"error": {"message": "unknown request"}}
            )
            return
        call = dataclasses.replace(
            call,
            cached_tokens=min(fake.cached_prompt_tokens, call.prompt_tokens),
            stream_usage=fake.stream_usage,
        )
        fault = fake._record(call, self.path, {k.lower(): v for k, v in self.headers.items()})
        if fault is not None and fault.kind == "delay" and fake._wait(fault.delay_s):
            self.close_connection = True
            return
        if fault is not None and fault.kind == "http_error":
            headers = {}
            if fault.retry_after is not None:
                headers = {
                    "Retry-After": str(math.ceil(fault.retry_after)),
                    "retry-after-ms": str(round(fault.retry_after * 1000)),
                }
            self._json(fault.status, _error_body(call.api, fault), headers)
        elif call.api == "embeddings":
            self._embeddings(call, fault)
        elif fault is not None and fault.kind == "prompt_blocked":
            blocked = json.dumps(_gemini_blocked(call, fault.message))
            if call.stream:
                self._send(200, _sse(blocked), "text/event-stream")
            else:
                self._send(200, blocked.encode(), "application/json")
        elif fault is not None and fault.kind == "malformed" and not call.stream:
            self._send(
                200, (fault.body or '{"id": "broken", "choices": [').encode(), "application/json"
            )
        elif call.stream:
            self._stream(call, fault)
        else:
            self._json(200, self._complete(call))

    def do_GET(self) -> None:
        self._json(404, {"error": {"message": "unknown request"}})

    # -- plumbing ------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # -- answers -------------------------------------------------------------------------------

    def _text(self, call: _Call) -> tuple[str, bool]:
        """The reply, cut to `max_tokens` words; True when it was cut."""
        text = self.server.fake._answer(call.prompt)
        words = _WORDS.findall(text)
        if call.max_tokens is not None and len(words) > call.max_tokens:
            return "".join(words[: call.max_tokens]).rstrip(), True
        return text, False

    def _complete(self, call: _Call) -> dict[str, Any]:
        text, cut = self._text(call)
        completion = _words(text)
        if call.api == "anthropic":
            return {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": call.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if cut else "end_turn",
                "stop_sequence": None,
                "usage": _anthropic_usage(call, completion),
            }
        if call.api == "gemini":
            return _gemini_chunk(call, text, "MAX_TOKENS" if cut else "STOP", completion)
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if cut else "stop",
                    "logprobs": None,
                }
            ],
            "usage": _openai_usage(call, completion),
        }

    def _embeddings(self, call: _Call, fault: Fault | None) -> None:
        if fault is not None and fault.kind == "malformed":
            self._send(200, (fault.body or '{"data": [').encode(), "application/json")
            return
        inputs = call.body.get("input")
        items = (
            [inputs]
            if isinstance(inputs, str)
            or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int))
            else list(inputs or [])
        )
        dimensions = int(call.body.get("dimensions") or self.server.fake.embedding_dimensions)
        data = []
        for index, item in enumerate(items):
            text = item if isinstance(item, str) else " ".join(str(t) for t in item)
            vector: Any = _embedding(text, dimensions)
            if call.body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(
            _words(item if isinstance(item, str) else " ".join(map(str, item))) for item in items
        )
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": call.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _stream(self, call: _Call, fault: Fault | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        text_sent = 0
        for is_text, event in _events(call, *self._text(call), fault):
            if is_text and fault is not None and fault.kind == "truncate_stream":
                if text_sent == fault.after_chunks:
                    break  # a well-formed body that stops before the end-of-answer events
            elif is_text and fault is not None and self._interrupt(fault, text_sent):
                self.close_connection = True  # no terminating chunk: the body is incomplete
                return
            self._chunk(event)
            text_sent += is_text
        self._chunk(b"")

    def _interrupt(self, fault: Fault, text_sent: int) -> bool:
        """Apply a stream fault before the next text chunk; True to drop the connection."""
        fake = self.server.fake
        if fault.kind == "slow_stream" and text_sent > 0:
            return fake._wait(fault.delay_s)
        if fault.kind == "break_stream" and text_sent == fault.after_chunks:
            return True
        if fault.kind == "hold_stream" and text_sent == fault.after_chunks:
            if not fault._gate.wait(fault.delay_s):
                fault._expired.set()
            return fake._stopping.is_set()
        return False


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


def _gemini_chunk(
    call: _Call, text: str, finish: str | None, completion: int | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    chunk: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": call.model,
        "responseId": "fake",
    }
    if finish is not None:
        candidate["finishReason"] = finish
    if completion is not None:
        chunk["usageMetadata"] = {
            "promptTokenCount": call.prompt_tokens,
            "candidatesTokenCount": completion,
            "totalTokenCount": call.prompt_tokens + completion,
        }
        if call.cached_tokens:
            chunk["usageMetadata"]["cachedContentTokenCount"] = call.cached_tokens
    return chunk


def _gemini_blocked(call: _Call, reason: str) -> dict[str, Any]:
    tokens = call.prompt_tokens
    return {
        "promptFeedback": {"blockReason": reason},
        "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens},
        "modelVersion": call.model,
    }


def _events(call: _Call, text: str, cut: bool, fault: Fault | None) -> Iterator[tuple[bool, bytes]]:
    """The SSE events of a streamed answer, as (is a text chunk, bytes)."""
    pieces = _WORDS.findall(text) or [""]
    bad = None
    if fault is not None and fault.kind == "malformed":
        bad = fault.body or '{"broken": '
    stream = {"anthropic": _anthropic_events, "gemini": _gemini_events}.get(
        call.api, _openai_events
    )
    return stream(call, pieces, cut, bad)


def _anthropic_events(
    call: _Call, pieces: list[str], cut: bool, bad: str | None
) -> Iterator[tuple[bool, bytes]]:
    usage = _anthropic_usage(call, 1)  # the API counts one output token at the start
    message: dict[str, Any] = {"id": "msg_fake", "type": "message", "role": "assistant"}
    message["model"] = call.model
    message |= {"content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    yield False, _sse({"type": "message_start", "message": message}, "message_start")
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    yield False, _sse(block, "content_block_start")
    yield False, _sse({"type": "ping"}, "ping")
    for piece in pieces:
        delta: dict[str, Any] = {"type": "content_block_delta", "index": 0}
        delta["delta"] = {"type": "text_delta", "text": piece}
        yield True, _sse(bad or delta, "content_block_delta")
    yield False, _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    stop = {"stop_reason": "max_tokens" if cut else "end_turn", "stop_sequence": None}
    usage = {"output_tokens": _words("".join(pieces))}
    yield False, _sse({"type": "message_delta", "delta": stop, "usage": usage}, "message_delta")
    yield False, _sse({"type": "message_stop"}, "message_stop")


def _gemini_events(
    call: _Call, pieces: list[str], cut: bool, bad: str | None
) -> Iterator[tuple[bool, bytes]]:
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        finish = ("MAX_TOKENS" if cut else "STOP") if last else None
        so_far = _words("".join(pieces[: index + 1]))  # usageMetadata holds running totals
        yield True, _sse(bad or _gemini_chunk(call, piece, finish, so_far))


def _openai_events(
    call: _Call, pieces: list[str], cut: bool, bad: str | None
) -> Iterator[tuple[bool, bytes]]:
    base: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk"}
    base["model"] = call.model
    base["created"] = int(time.time())

    include_usage = call.stream_usage and (call.body.get("stream_options") or {}).get(
        "include_usage"
    )
    if include_usage:
        base["usage"] = None  # on every chunk but the last, which has no choices

    def choice(delta: dict[str, Any], finish: str | None) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        return _sse({**base, "choices": choices})

    yield False, choice({"role": "assistant", "content": ""}, None)
    for piece in pieces:
        yield True, _sse(bad) if bad else choice({"content": piece}, None)
    yield False, choice({}, "length" if cut else "stop")
    if include_usage:
        usage = _openai_usage(call, _words("".join(pieces)))
        yield False, _sse({**base, "choices": [], "usage": usage})
    yield False, _sse("[DONE]")


def _openai_usage(call: _Call, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": call.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": call.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _anthropic_usage(call: _Call, output_tokens: int) -> dict[str, Any]:
    """Anthropic counts cache reads apart: `input_tokens` is only the uncached part."""
    return {
        "input_tokens": call.prompt_tokens - call.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": call.cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
