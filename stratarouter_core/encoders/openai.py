"""Embeddings from the OpenAI API, or from any server speaking its `/v1/embeddings` format."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from .._deps import require
from ..errors import ConfigError, EncoderError, InvalidQueryError
from .base import BaseEncoder, check_vectors
from .openai_policy import APIFailureError, Failure, FailureKind, RetryPolicy, classify_sdk_error

if TYPE_CHECKING:
    from openai import AsyncOpenAI, Omit, OpenAI
    from openai.types import CreateEmbeddingResponse

__all__ = ["OpenAIEncoder"]

_T = TypeVar("_T")

KNOWN_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_SHORTENABLE = ("text-embedding-3-",)  # models that accept `dimensions=` to shorten vectors
_MAX_INPUTS = 2048  # inputs per request accepted by the API
_CONCURRENT_REQUESTS = 4  # in flight at once in `aencode`


class OpenAIEncoder(BaseEncoder):
    """Encodes with an OpenAI embedding model through the official `openai` SDK.

    Requests are batched. Failures follow the one policy of `openai_policy`, shared with the
    runtime's provider clients: transient ones (429, 408, 5xx, timeouts, dropped connections)
    are retried `max_retries` times with full-jitter exponential backoff (honouring
    Retry-After), the SDK's own retries switched off; a final failure is an `APIFailureError`
    (an `EncoderError`) whose ``kind`` names it. Vectors come back as float32, L2-normalised,
    in input order. Needs `pip install 'stratarouter[openai]'`.

    Args:
        model: Embedding model name.
        api_key: API key; by default the SDK reads `OPENAI_API_KEY`.
        base_url: Another OpenAI-compatible endpoint, such as `http://localhost:8000/v1`.
        dimension: Vector size. Required for models not in `KNOWN_DIMENSIONS`; for
            `text-embedding-3-*` a smaller value asks the API for shortened vectors.
        batch_size: Texts per request (at most 2048).
        max_retries: Retries of a failed request (`RetryPolicy(max_retries=...)`).
        timeout: Seconds allowed per request.
        client: An `openai.OpenAI` (used by `encode`; `aencode` then runs it in a thread) or an
            `openai.AsyncOpenAI` (used by `aencode`; `encode`, which `Router.build_index` and
            `Router.route` call, then uses a sync `openai.OpenAI` with the same key, base URL,
            organization, project, headers and timeout). The client's own retries are switched
            off in the copy we call (``with_options(max_retries=0)``): retrying follows
            `retry_policy`. The other arguments but `model`, `dimension`, `batch_size` and
            `retry_policy` are then ignored, and the given client is not closed by us.
        retry_policy: How to retry (default `RetryPolicy(max_retries=max_retries)`).

    Raises:
        MissingDependencyError: The `openai` package is not installed.
        ConfigError: Invalid arguments, an unknown model without `dimension`, or no API key.

    Example:
        >>> encoder = OpenAIEncoder("text-embedding-3-small", api_key="sk-...")  # doctest: +SKIP
        >>> encoder.encode(["book a flight"]).shape  # doctest: +SKIP
        (1, 1536)
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimension: int | None = None,
        batch_size: int = 256,
        max_retries: int = 3,
        timeout: float = 30.0,
        client: OpenAI | AsyncOpenAI | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """Check the arguments and build the SDK client (no request is made)."""
        if not 1 <= batch_size <= _MAX_INPUTS:
            raise ConfigError(f"batch_size must be in [1, {_MAX_INPUTS}], got {batch_size}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}")
        self.model = model
        self.dimension = _resolve_dimension(model, dimension)
        self._shorten = model in KNOWN_DIMENSIONS and self.dimension != KNOWN_DIMENSIONS[model]
        self.batch_size = batch_size
        self.retry_policy = RetryPolicy(max_retries=max_retries) if retry_policy is None \
            else retry_policy
        self._openai: ModuleType = require("openai", extra="openai")
        self._client_args: dict[str, object] = {
            "api_key": api_key,
            "base_url": base_url,
            "max_retries": 0,  # retries follow `retry_policy`, never the SDK's on top
            "timeout": timeout,
        }
        self._timeout: float | None = timeout
        self._owns_clients = client is None
        self._async_client: AsyncOpenAI | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None  # the loop it was made in
        self._lock = threading.Lock()
        self._owns_sync_client = client is None
        self._client: OpenAI
        if client is None:
            self._client = self._build("OpenAI")
        elif inspect.iscoroutinefunction(client.embeddings.create):
            self._timeout = None  # the caller's client has its own
            self._async_client = client.with_options(max_retries=0)  # type: ignore[assignment]
            self._client = self._sync_twin(client)  # type: ignore[arg-type]
            self._owns_sync_client = True  # the twin is ours, the caller's client is not
        else:
            self._timeout = None  # the caller's client has its own
            self._client = client.with_options(max_retries=0)  # type: ignore[assignment]

    @property
    def fingerprint(self) -> str:
        """`openai:<model>:<dimension>`."""
        return f"openai:{self.model}:{self.dimension}"

    def _build(self, class_name: str) -> Any:
        """A new `openai.<class_name>` client from the constructor's arguments."""
        if self._client_args["api_key"] is None and not os.environ.get("OPENAI_API_KEY"):
            raise ConfigError("OpenAIEncoder needs an API key: pass api_key= or set OPENAI_API_KEY")
        try:
            return getattr(self._openai, class_name)(**self._client_args)
        except self._openai.OpenAIError as exc:
            raise ConfigError(f"cannot create the OpenAI client: {exc}") from exc

    def _sync_twin(self, client: AsyncOpenAI) -> OpenAI:
        """A sync client configured like the caller's async one, for the sync code paths."""
        # The SDK has no public accessor for the headers/query given at construction; they
        # are carried over when present so a gateway that needs them sees them on both paths.
        try:
            twin: OpenAI = self._openai.OpenAI(
                api_key=client.api_key,
                organization=client.organization,
                project=client.project,
                base_url=client.base_url,
                timeout=client.timeout,
                max_retries=0,  # retries follow `retry_policy`
                default_headers=dict(getattr(client, "_custom_headers", None) or {}) or None,
                default_query=dict(getattr(client, "_custom_query", None) or {}) or None,
            )
        except self._openai.OpenAIError as exc:
            raise ConfigError(f"cannot create a sync twin of the AsyncOpenAI client: {exc}") \
                from exc
        return twin

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode `texts` into unit-norm float32 vectors, one request per `batch_size` texts.

        Raises:
            APIFailureError: A request failed (after `retry_policy`'s retries).
            EncoderError: A response held bad vectors.
            InvalidQueryError: A text is empty or not a string (the API rejects those).
        """
        batch_list = self._batches(texts)
        if not batch_list:
            return np.empty((0, self.dimension), dtype=np.float32)
        parts = []
        for batch in batch_list:
            response = self._with_retries(functools.partial(
                self._client.embeddings.create,
                input=batch,
                model=self.model,
                encoding_format="float",
                dimensions=self._dimensions_arg(),
            ))
            parts.append(self._vectors(response, len(batch)))
        return np.concatenate(parts)

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Like `encode`, with `AsyncOpenAI` and up to 4 requests in flight.

        The async client is created on first use in each event loop.
        """
        batch_list = self._batches(texts)
        if not batch_list:
            return np.empty((0, self.dimension), dtype=np.float32)
        client = self._get_async_client()
        if client is None:  # only a sync client was given
            return await asyncio.to_thread(self.encode, texts)
        semaphore = asyncio.Semaphore(_CONCURRENT_REQUESTS)

        async def one(batch: list[str]) -> NDArray[np.float32]:
            async with semaphore:
                response = await self._awith_retries(
                    lambda: client.embeddings.create(
                        input=batch,
                        model=self.model,
                        encoding_format="float",
                        dimensions=self._dimensions_arg(),
                    )
                )
            return self._vectors(response, len(batch))

        return np.concatenate(await asyncio.gather(*(one(batch) for batch in batch_list)))

    def close(self) -> None:
        """Close the HTTP connections of the sync client this encoder created."""
        if self._owns_sync_client:
            self._client.close()

    async def aclose(self) -> None:
        """Close the connections of the clients this encoder created.

        Call it in the event loop that ran `aencode`: connections belong to their loop.
        """
        self.close()
        client, self._async_client = self._async_client, None
        if self._owns_clients and client is not None:
            await client.close()
        elif client is not None:
            self._async_client = client  # the caller's: left open and in use

    def _get_async_client(self) -> AsyncOpenAI | None:
        """Our AsyncOpenAI for the running loop: its pooled connections belong to one loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._owns_clients and (self._async_client is None or self._async_loop is not loop):
                self._async_client = self._build("AsyncOpenAI")
                self._async_loop = loop
            return self._async_client

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str) or not text:
                raise InvalidQueryError(f"OpenAIEncoder needs non-empty strings, got {text!r:.40}")
        return [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def _dimensions_arg(self) -> int | Omit:
        """`dimensions=` for shortened text-embedding-3 vectors; otherwise left out."""
        omit: Omit = self._openai.omit
        return self.dimension if self._shorten else omit

    def _vectors(self, response: CreateEmbeddingResponse, n_texts: int) -> NDArray[np.float32]:
        """The response's vectors in input order, checked and L2-normalised."""
        source = f"OpenAI model {self.model!r}"
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(n_texts)):
            raise EncoderError(
                f"{source} returned {len(data)} embeddings (indices "
                f"{[item.index for item in data][:10]}...) for {n_texts} texts"
            )
        vectors = check_vectors([item.embedding for item in data], n_texts, self.dimension, source)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not norms.all():
            raise EncoderError(f"{source} returned an all-zero embedding")
        vectors /= norms
        return vectors

    def _with_retries(self, send: Callable[[], _T]) -> _T:
        """`send()`, retried as `retry_policy` says; a final failure is an APIFailureError."""
        failures = 0
        while True:
            try:
                return send()
            except self._openai.OpenAIError as exc:
                failures += 1
                error = self._wrap(exc, failures)
                if not self.retry_policy.should_retry(error, failures):
                    raise error from exc
            time.sleep(self.retry_policy.delay_s(failures, error))

    async def _awith_retries(self, send: Callable[[], Awaitable[_T]]) -> _T:
        """`_with_retries` for coroutines: waits with `asyncio.sleep`."""
        failures = 0
        while True:
            try:
                return await send()
            except self._openai.OpenAIError as exc:
                failures += 1
                error = self._wrap(exc, failures)
                if not self.retry_policy.should_retry(error, failures):
                    raise error from exc
            await asyncio.sleep(self.retry_policy.delay_s(failures, error))

    def _wrap(self, exc: Exception, attempts: int) -> APIFailureError:
        """The APIFailureError that says what failed, for the caller to raise `from exc`."""
        where = f"OpenAI embeddings request (model {self.model!r})"
        failure = classify_sdk_error(exc, self._openai, self._openai.OpenAIError) or Failure(
            FailureKind.OTHER, str(exc)
        )
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if failure.status is not None:
            text = f"{where} failed with HTTP status {failure.status}: {failure.message}"
        elif failure.kind is FailureKind.TIMEOUT:
            limit = "" if self._timeout is None else f" after {self._timeout:g} s"
            text = f"{where} timed out{limit}"
        elif failure.kind is FailureKind.CONNECTION:
            text = f"{where} could not connect: {exc}"
        else:
            text = f"{where} failed: {exc}"
        return APIFailureError(text + tries, failure, attempts)


def _resolve_dimension(model: str, dimension: int | None) -> int:
    """The vector size: given, or known for the model; checked against what the model allows."""
    native = KNOWN_DIMENSIONS.get(model)
    if dimension is None:
        if native is None:
            raise ConfigError(
                f"unknown embedding size for model {model!r}: pass dimension= "
                f"(known models: {', '.join(sorted(KNOWN_DIMENSIONS))})"
            )
        return native
    if dimension < 1:
        raise ConfigError(f"dimension must be positive, got {dimension}")
    if native is not None and dimension != native:
        if not model.startswith(_SHORTENABLE):
            raise ConfigError(f"{model!r} always returns {native}-d vectors, not {dimension}")
        if dimension > native:
            raise ConfigError(f"{model!r} returns at most {native}-d vectors, not {dimension}")
    return dimension
