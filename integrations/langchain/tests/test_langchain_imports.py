from __future__ import annotations

import subprocess
import sys

import stratarouter_langchain

EXPECTED_ALL = [
    "FALLBACK_TARGET",
    "ModelRouterRunnable",
    "NoBranchError",
    "RouterInput",
    "SemanticRouteDispatch",
    "StrataRouterRunnable",
]


def test_all():
    assert sorted(stratarouter_langchain.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert getattr(stratarouter_langchain, name) is not None


def test_core_does_not_import_langchain():
    code = ("import sys, stratarouter_core, stratarouter_core.testing; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'langchain_core', 'langchain', 'langgraph', 'stratarouter_langchain'}); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_adapter_uses_only_the_public_core_api():
    import pathlib
    import re

    package = pathlib.Path(stratarouter_langchain.__file__).parent
    for path in package.glob("*.py"):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:from|import) (stratarouter_core\S*)", line)
            assert match is None or match.group(1) == "stratarouter_core", (path, line)
