"""The Example blocks in the core's docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "stratarouter_core",
    "stratarouter_core.calibration",
    "stratarouter_core.config",
    "stratarouter_core.encoders.base",
    "stratarouter_core.index.exact",
    "stratarouter_core.index.hnsw",
    "stratarouter_core.router",
    "stratarouter_core.scoring.model",
    "stratarouter_core.scoring.rules",
    "stratarouter_core.scoring.sparse",
    "stratarouter_core.testing",
    "stratarouter_core.text",
    "stratarouter_core.types",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
