"""The committed gRPC stubs are what `make grpc-stubs` generates from the .proto today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("grpc_tools", reason="needs grpcio-tools (the runtime's test extra)")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_grpc_stubs.py"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_grpc_stubs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    generator = _generator()
    fresh = generator.generate(tmp_path)
    committed = generator.RUNTIME / generator.PROTO.parent
    assert [p.name for p in fresh] == list(generator.STUBS)
    stale = [p.name for p in fresh if p.read_bytes() != (committed / p.name).read_bytes()]
    assert not stale, f"{stale} differ from the .proto: run `make grpc-stubs` and commit them"


def test_the_check_sees_a_changed_proto(tmp_path: Path) -> None:
    generator = _generator()
    proto = tmp_path / generator.PROTO
    proto.parent.mkdir(parents=True)
    original = (generator.RUNTIME / generator.PROTO).read_text()
    proto.write_text(original.replace("int64 route_set_version = 6;", "int64 version = 6;"))
    generator.RUNTIME = tmp_path  # generate from the edited copy
    out = generator.generate(tmp_path / "out")
    committed = Path(__file__).resolve().parents[2] / generator.PROTO.parent
    assert out[0].read_bytes() != (committed / out[0].name).read_bytes()
