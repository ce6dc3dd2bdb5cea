"""The deployment examples in deploy/ stay valid: routes files load, and every StrataRouter
variable they set is one the runtime or the server reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from stratarouter_core.routes_file import load_routes_file

from stratarouter_runtime.config import ENV_VARIABLES
from stratarouter_runtime.server.config import ENV_PREFIX, ServerConfig

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
KNOWN = {
    *ENV_VARIABLES,
    "STRATAROUTER_API_KEYS",
    "STRATAROUTER_API_KEYS_FILE",
    *(ENV_PREFIX + f.upper() for f in ServerConfig.__dataclass_fields__),
}


def test_the_routes_files_load(tmp_path: Path) -> None:
    routes, _ = load_routes_file(DEPLOY / "routes.yaml")
    assert [r.name for r in routes] == ["billing", "tech"]
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "stratarouter.yaml").read_text()))
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    (tmp_path / "routes.yaml").write_text(config_map["data"]["routes.yaml"])
    assert [r.name for r in load_routes_file(tmp_path / "routes.yaml")[0]] == ["billing", "tech"]


@pytest.mark.parametrize("name", ["compose.yaml", "kubernetes/stratarouter.yaml"])
def test_every_variable_set_is_read(name: str) -> None:
    text = (DEPLOY / name).read_text()
    used = set(re.findall(r"\b(STRATAROUTER_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)\b", text))
    assert used and used <= KNOWN, sorted(used - KNOWN)
