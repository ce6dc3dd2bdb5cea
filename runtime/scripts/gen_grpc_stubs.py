"""Regenerate the gRPC stubs of stratarouter.proto (run: ``make grpc-stubs``).

Writes ``stratarouter_pb2.py``, ``stratarouter_pb2.pyi`` and ``stratarouter_pb2_grpc.py`` next
to ``runtime/stratarouter_runtime/server/proto/stratarouter.proto``, or under another root
(``--out DIR``; the test that the committed stubs are current generates into a temporary
directory and compares bytes). Needs grpcio-tools, pinned in the runtime's ``test`` extra:
the output depends on the protoc it bundles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[1]
PROTO = Path("stratarouter_runtime/server/proto/stratarouter.proto")
STUBS = ("stratarouter_pb2.py", "stratarouter_pb2.pyi", "stratarouter_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Run protoc on the .proto; the stubs land in ``out_root / PROTO.parent``."""
    from grpc_tools import protoc

    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{RUNTIME}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(RUNTIME / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {RUNTIME / PROTO}")
    return [out_root / PROTO.parent / name for name in STUBS]


def main(argv: list[str] | None = None) -> int:
    """Command line: ``gen_grpc_stubs.py [--out DIR]`` (default: in place)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RUNTIME, help="root to write under")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
