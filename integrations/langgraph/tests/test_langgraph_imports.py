from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import stratarouter_langgraph

EXPECTED_ALL = ["DECISION_EVENT", "RouteEdge", "RouterNode", "RouterState", "TextFrom",
                "route_edge", "router_node"]


def test_all():
    assert sorted(stratarouter_langgraph.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert getattr(stratarouter_langgraph, name) is not None


def test_core_does_not_import_langgraph():
    code = ("import sys, stratarouter_core, stratarouter_core.testing; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'langchain_core', 'langgraph', 'stratarouter_langgraph'}); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_adapter_uses_only_the_public_core_api():
    package = pathlib.Path(stratarouter_langgraph.__file__).parent
    for path in package.glob("*.py"):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:from|import) (stratarouter_core\S*)", line)
            assert match is None or match.group(1) == "stratarouter_core", (path, line)
