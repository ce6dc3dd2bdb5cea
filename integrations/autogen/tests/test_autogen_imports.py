from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import stratarouter_autogen

EXPECTED_ALL = ["Ag2SpeakerSelector", "RoutingDecision", "SpeakerSelector", "ag2_speaker_selection"]
FRAMEWORKS = {"crewai", "autogen", "autogen_agentchat", "autogen_core", "autogen_ext",
              "langchain_core", "langgraph"}


def imported_frameworks(statement):
    code = (f"import sys; {statement}; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {FRAMEWORKS!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_all_is_pinned():
    assert sorted(stratarouter_autogen.__all__) == EXPECTED_ALL
    assert all(hasattr(stratarouter_autogen, name) for name in EXPECTED_ALL)


def test_importing_core_imports_no_framework():
    assert imported_frameworks("import stratarouter_core, stratarouter_core.testing") == "[]"


def test_adapter_never_imports_ag2():
    assert "'autogen'" not in imported_frameworks("import stratarouter_autogen")


def test_adapter_uses_only_the_public_core_api():
    package = Path(stratarouter_autogen.__file__).parent
    offenders = [f"{path.name}: {line.strip()}" for path in package.glob("*.py")
                 for line in path.read_text().splitlines()
                 if re.match(r"\s*(from|import) stratarouter_core\.", line)]
    assert offenders == []
