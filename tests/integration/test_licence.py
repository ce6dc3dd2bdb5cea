"""Every distribution of the repository declares the licence of the LICENSE file: Apache-2.0."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [ROOT, ROOT / "runtime", ROOT / "benchmarks", *sorted((ROOT / "integrations").glob("*"))]


def test_license_file_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_every_distribution_declares_apache_2() -> None:
    found = [d for d in DISTRIBUTIONS if (d / "pyproject.toml").is_file()]
    assert len(found) == 7, found  # core, runtime, benchmarks and the four adapters
    for folder in found:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
        # license = "Apache-2.0" (SPDX) or license = { text = "Apache-2.0" } (the older table)
        match = re.search(r'^license\s*=\s*(?:\{\s*text\s*=\s*)?"([^"]+)"', text, re.MULTILINE)
        assert match and match[1] == "Apache-2.0", f"{folder.name}: {match and match[0]}"
