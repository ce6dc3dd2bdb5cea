"""The benchmark figures of the docs and the README are ones benchmarks/RESULTS.md reports.

docs/benchmarks.md copies table rows from RESULTS.md word for word; the README's headline
table is reformatted, so each of its numbers must appear in RESULTS.md's scenarios section.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
NUMBER = re.compile(r"\d[\d,]*\.?\d*%?")


def _figure_rows(text: str) -> list[str]:
    """Table rows holding at least one digit, separator rows excluded."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.startswith("|") and re.search(r"\d", line) and not set(line) <= set("|-: ")
    ]


def test_every_figure_row_of_the_benchmarks_page_is_in_results() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    rows = _figure_rows(page)
    assert len(rows) >= 30
    results = {line.strip() for line in RESULTS.splitlines()}
    missing = [row for row in rows if row not in results]
    assert not missing, "rows not in benchmarks/RESULTS.md:\n" + "\n".join(missing)


def test_readme_headline_numbers_are_measured() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    scenarios = RESULTS.split("## Out of the box")[1].split("\n## ")[0]
    table = [row for row in _figure_rows(readme) if "StrataRouter" in row or "semantic" in row
             or "nearest" in row]
    assert len(table) == 3
    for row in table:
        label = row.split("|")[1]
        for number in NUMBER.findall(row.replace(label, "")):
            assert number in scenarios, f"README figure {number} is not in RESULTS' scenarios"
    for figure in ("96.07%", "85.84%", "90.73%", "0.0087", "88 us", "156x"):
        assert figure in RESULTS, figure
