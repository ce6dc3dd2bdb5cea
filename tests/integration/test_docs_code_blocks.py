"""Every ```python block of README.md and docs/**/*.md runs, and prints what the page says.

A page's blocks run in order in one namespace (a later block may use what an earlier one
built), in a temporary working directory, offline: a block that would need an API key or a
server uses the shipped fakes (`stratarouter_core.testing`, `stratarouter_runtime.testing`).
A block that cannot run here at all says why on the line before it:

    <!-- docs-test: skip: <reason> -->

and is only compiled. A block followed by a ```text title="Output" block must print exactly
that text, so a page can never show output the code does not produce.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<fence>`{3,})(?P<info>[^`]*)$")
SKIP = re.compile(r"^<!-- docs-test: skip: (?P<reason>.+?) -->$")
OUTPUT_INFO = 'text title="Output"'
CREWAI_ENV = {
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
}
FILE_TITLE = re.compile(r'^(?:yaml|json|text) title="(?P<name>[\w.-]+\.(?:ya?ml|json|txt))"$')


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str
    skip_reason: str | None
    output: str | None = None  # the text of the Output block that follows it

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    """Every top-level fenced block of `page`, each python block with its expected output."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info, start = match["fence"], match["info"].strip(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{page}:{start + 1}: unclosed code fence")
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.match(previous.strip())
        blocks.append(
            Block(page, start + 1, info, "\n".join(body) + "\n", skip["reason"] if skip else None)
        )
        i += 1
    paired: list[Block] = []
    for n, block in enumerate(blocks):
        following = blocks[n + 1] if n + 1 < len(blocks) else None
        if _is_python(block) and following is not None and following.info == OUTPUT_INFO:
            block = Block(**{**block.__dict__, "output": following.code})
        paired.append(block)
    return paired


def _is_python(block: Block) -> bool:
    return block.info.split(" ")[0] in ("python", "py")


def python_blocks(page: Path) -> list[Block]:
    """The python blocks of `page`."""
    return [b for b in parse_blocks(page) if _is_python(b)]


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]


def test_the_pages_have_code_to_check() -> None:
    names = {str(p.relative_to(ROOT)) for p in PAGES_WITH_CODE}
    assert "README.md" in names
    assert "docs/getting-started.md" in names
    assert len(names) >= 8, names


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_code_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # a snippet must not lean on a real key
    with warnings.catch_warnings():
        if page.name == "crewai.md":
            # What the adapter's own tests/conftest.py does: crewai writes under HOME on
            # import, sends telemetry unless told not to, and warns on its own import.
            for name, value in CREWAI_ENV.items():
                monkeypatch.setenv(name, value)
            monkeypatch.setenv("HOME", str(tmp_path))
            monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path / "crewai"))
            warnings.simplefilter("ignore", ImportWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="crewai")
        run_blocks(parse_blocks(page))


def run_blocks(blocks: list[Block]) -> None:
    """Run `blocks` in order in one namespace; AssertionError naming the first that breaks.

    A yaml/json/text block titled with a file name (```yaml title="routes.yaml") is written
    to the working directory when reached, so the code after it reads the file the page shows.
    """
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        title = FILE_TITLE.match(block.info)
        if title:
            Path(title["name"]).write_text(block.code, encoding="utf-8")
            continue
        if not _is_python(block):
            continue
        code = compile(block.code, block.where, "exec")
        if block.skip_reason is not None:
            continue  # compiled above; see test_skipped_blocks_say_why
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"{block.where}: the snippet failed: {exc!r}") from exc
        if block.output is not None:
            assert out.getvalue().rstrip() == block.output.rstrip(), (
                f"{block.where}: printed output differs from the page's Output block:\n"
                f"{out.getvalue()}"
            )


def test_skipped_blocks_say_why() -> None:
    skipped = [b for p in PAGES for b in python_blocks(p) if b.skip_reason is not None]
    for block in skipped:
        assert len(block.skip_reason or "") >= 10, f"{block.where}: give a reason"
    # Only what truly cannot run offline is skipped: keep this list short.
    assert len(skipped) <= 6, [b.where for b in skipped]


def test_output_blocks_follow_python_blocks() -> None:
    for page in PAGES:
        blocks = parse_blocks(page)
        for n, block in enumerate(blocks):
            if block.info == OUTPUT_INFO:
                assert n > 0 and _is_python(blocks[n - 1]), f"{block.where}: Output of what?"
                assert blocks[n - 1].skip_reason is None, f"{block.where}: output of a skip"


def test_parser_sees_a_broken_snippet(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nprint(1 + 1)\n```\n\n```text title=\"Output\"\n2\n```\n\n"
        "<!-- docs-test: skip: needs a live OpenAI key to run -->\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    first, second = python_blocks(page)
    assert first.output == "2\n" and first.skip_reason is None
    assert second.skip_reason == "needs a live OpenAI key to run"
    assert os.path.basename(str(first.page)) == "page.md"
    run_blocks([first, second])  # the skipped block is compiled, not run


def test_a_broken_snippet_or_a_wrong_output_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nraise ValueError('boom')\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="boom"):
        run_blocks(python_blocks(page))
    page.write_text(
        "```python\nprint('billing 0.95')\n```\n```text title=\"Output\"\nbilling 0.99\n```\n",
        encoding="utf-8",
    )
    with pytest.raises(AssertionError, match="differs"):
        run_blocks(python_blocks(page))
    page.write_text("<!-- docs-test: skip: needs a live server -->\n```python\nx = (\n```\n")
    with pytest.raises(SyntaxError):
        run_blocks(python_blocks(page))
