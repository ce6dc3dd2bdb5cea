"""Every `>>>` example in the runtime's docstrings runs and prints what it claims.

The modules are discovered, not listed, so a new module's examples are collected without
anyone remembering to add it here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import stratarouter_runtime

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(stratarouter_runtime.__path__, "stratarouter_runtime.")
)
WITH_EXAMPLES = [
    name
    for name in ["stratarouter_runtime", *MODULES]
    if any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(name)))
]


def test_the_examples_are_found() -> None:
    # a broken discovery (wrong package path, finder excluding everything) must not pass quietly
    assert {"stratarouter_runtime.config", "stratarouter_runtime.bridge"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
