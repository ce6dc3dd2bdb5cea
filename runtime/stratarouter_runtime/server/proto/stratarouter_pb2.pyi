from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteRequest(_message.Message):
    __slots__ = ("query", "embedding", "top_k")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    query: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    top_k: int
    def __init__(self, query: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ..., top_k: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("route", "confidence", "score", "dense", "sparse", "rule")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    route: str
    confidence: float
    score: float
    dense: float
    sparse: float
    rule: float
    def __init__(self, route: _Optional[str] = ..., confidence: _Optional[float] = ..., score: _Optional[float] = ..., dense: _Optional[float] = ..., sparse: _Optional[float] = ..., rule: _Optional[float] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("route", "confidence", "is_fallback", "candidates", "latency_ms", "route_set_version")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    IS_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    route: str
    confidence: float
    is_fallback: bool
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    latency_ms: float
    route_set_version: int
    def __init__(self, route: _Optional[str] = ..., confidence: _Optional[float] = ..., is_fallback: bool = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., latency_ms: _Optional[float] = ..., route_set_version: _Optional[int] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class RouteBatchRequest(_message.Message):
    __slots__ = ("queries", "embeddings", "top_k")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedScalarFieldContainer[str]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    top_k: int
    def __init__(self, queries: _Optional[_Iterable[str]] = ..., embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., top_k: _Optional[int] = ...) -> None: ...

class RouteBatchResponse(_message.Message):
    __slots__ = ("results", "latency_ms", "route_set_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RouteResponse]
    latency_ms: float
    route_set_version: int
    def __init__(self, results: _Optional[_Iterable[_Union[RouteResponse, _Mapping]]] = ..., latency_ms: _Optional[float] = ..., route_set_version: _Optional[int] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("query", "embedding")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    query: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, query: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class ExecuteResult(_message.Message):
    __slots__ = ("route", "response", "provider", "model", "cached", "deduplicated", "latency_ms", "cost_usd", "finish_reason", "execution_id", "confidence", "usage")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    route: str
    response: str
    provider: str
    model: str
    cached: bool
    deduplicated: bool
    latency_ms: float
    cost_usd: float
    finish_reason: str
    execution_id: str
    confidence: float
    usage: Usage
    def __init__(self, route: _Optional[str] = ..., response: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., cached: bool = ..., deduplicated: bool = ..., latency_ms: _Optional[float] = ..., cost_usd: _Optional[float] = ..., finish_reason: _Optional[str] = ..., execution_id: _Optional[str] = ..., confidence: _Optional[float] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class ExecuteEvent(_message.Message):
    __slots__ = ("chunk", "result")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    chunk: str
    result: ExecuteResult
    def __init__(self, chunk: _Optional[str] = ..., result: _Optional[_Union[ExecuteResult, _Mapping]] = ...) -> None: ...

class GradeExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "score")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    score: float
    def __init__(self, execution_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class GradeExecutionResponse(_message.Message):
    __slots__ = ("execution_id", "model", "score", "seq")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    model: str
    score: float
    seq: int
    def __init__(self, execution_id: _Optional[str] = ..., model: _Optional[str] = ..., score: _Optional[float] = ..., seq: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "router_built", "routes", "route_set_version", "backends")
    class BackendsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROUTER_BUILT_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    status: str
    router_built: bool
    routes: int
    route_set_version: int
    backends: _containers.ScalarMap[str, str]
    def __init__(self, status: _Optional[str] = ..., router_built: bool = ..., routes: _Optional[int] = ..., route_set_version: _Optional[int] = ..., backends: _Optional[_Mapping[str, str]] = ...) -> None: ...
