from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import stratarouter_crewai

EXPECTED_ALL = [
    "NoRouteError",
    "RoutingDecision",
    "SemanticDelegator",
    "SemanticFlowRouter",
    "SemanticManagerAgent",
]
FRAMEWORKS = {"crewai", "autogen", "autogen_agentchat", "autogen_core", "autogen_ext",
              "langchain_core", "langgraph"}


def test_all_is_pinned():
    assert sorted(stratarouter_crewai.__all__) == EXPECTED_ALL
    assert all(hasattr(stratarouter_crewai, name) for name in EXPECTED_ALL)


def test_importing_core_imports_no_framework():
    code = ("import sys, stratarouter_core, stratarouter_core.testing; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {FRAMEWORKS!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_adapter_uses_only_the_public_core_api():
    package = Path(stratarouter_crewai.__file__).parent
    offenders = [f"{path.name}: {line.strip()}" for path in package.glob("*.py")
                 for line in path.read_text().splitlines()
                 if re.match(r"\s*(from|import) stratarouter_core\.", line)]
    assert offenders == []
