"""SentenceTransformerEncoder, with a duck-typed stand-in for a SentenceTransformer (no torch)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stratarouter_core.encoders import SentenceTransformerEncoder
from stratarouter_core.errors import (
    ConfigError,
    EncoderError,
    InvalidQueryError,
    MissingDependencyError,
)


class FakeModel:
    """Quacks like sentence_transformers.SentenceTransformer; records how it was called."""

    def __init__(self, dimension: int = 6, name: str | None = "acme/tiny-embedder") -> None:
        self.dimension = dimension
        self.calls: list[dict] = []
        if name is not None:
            self.model_card_data = type("Card", (), {"base_model": name})()

    def get_sentence_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, sentences, batch_size=32, normalize_embeddings=False, **kwargs):
        self.calls.append(
            {
                "sentences": list(sentences),
                "batch_size": batch_size,
                "normalize_embeddings": normalize_embeddings,
                **kwargs,
            }
        )
        vectors = np.array(
            [[len(s) + 1.0, s.count(" ") + 2.0] + [1.0] * (self.dimension - 2) for s in sentences],
            dtype=np.float64,
        )
        if normalize_embeddings:
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


def test_wraps_a_model_instance():
    model = FakeModel()
    encoder = SentenceTransformerEncoder(model, batch_size=16)
    vectors = encoder.encode(["hello world", "hi"])
    assert encoder.dimension == 6
    assert vectors.dtype == np.float32 and vectors.shape == (2, 6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    expected = np.array([[12, 3, 1, 1, 1, 1], [3, 2, 1, 1, 1, 1]], dtype=np.float64)
    np.testing.assert_allclose(
        vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6
    )
    (call,) = model.calls
    assert call["sentences"] == ["hello world", "hi"]
    assert call["batch_size"] == 16
    assert call["normalize_embeddings"] is True
    assert call["show_progress_bar"] is False


def test_normalize_false_passes_raw_vectors():
    vectors = SentenceTransformerEncoder(FakeModel(), normalize=False).encode(["a b"])
    np.testing.assert_allclose(vectors, [[4, 3, 1, 1, 1, 1]])


def test_instance_path_does_not_import_sentence_transformers():
    code = """
        import sys
        sys.modules["sentence_transformers"] = None  # importing it would now fail
        import numpy as np
        from stratarouter_core.encoders import SentenceTransformerEncoder

        class Model:
            def get_sentence_embedding_dimension(self):
                return 3
            def encode(self, sentences, **kwargs):
                return np.ones((len(sentences), 3))

        print(SentenceTransformerEncoder(Model()).encode(["x", "y"]).shape)
        assert "torch" not in sys.modules
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 3)"


def test_model_name_without_the_package(monkeypatch):
    if importlib.util.find_spec("sentence_transformers") is not None:
        monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'stratarouter\[st\]'"):
        SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2")


def test_fingerprint_names_the_model():
    encoder = SentenceTransformerEncoder(FakeModel(name="acme/tiny-embedder"))
    assert encoder.fingerprint == "sentence-transformers:acme/tiny-embedder:6"
    other = SentenceTransformerEncoder(FakeModel(name="acme/other-embedder"))
    assert other.fingerprint != encoder.fingerprint
    raw = SentenceTransformerEncoder(FakeModel(), normalize=False)
    assert raw.fingerprint != encoder.fingerprint
    assert "FakeModel" in SentenceTransformerEncoder(FakeModel(name=None)).fingerprint


def test_empty_and_invalid_inputs():
    model = FakeModel()
    encoder = SentenceTransformerEncoder(model)
    assert encoder.encode([]).shape == (0, 6)
    assert model.calls == []
    with pytest.raises(InvalidQueryError):
        encoder.encode(["ok", None])  # type: ignore[list-item]


def test_bad_model_output_raises_encoder_error():
    class Broken(FakeModel):
        def encode(self, sentences, **kwargs):
            return np.zeros((len(sentences), self.dimension + 1))

    with pytest.raises(EncoderError, match="shape"):
        SentenceTransformerEncoder(Broken()).encode(["x"])

    class Failing(FakeModel):
        def encode(self, sentences, **kwargs):
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(EncoderError, match="CUDA out of memory") as info:
        SentenceTransformerEncoder(Failing()).encode(["x"])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_rejects_non_models():
    with pytest.raises(ConfigError):
        SentenceTransformerEncoder(42)
    with pytest.raises(ConfigError):
        SentenceTransformerEncoder(FakeModel(), batch_size=0)
    with pytest.raises(ConfigError, match="dimension"):
        SentenceTransformerEncoder(FakeModel(dimension=0))
