from __future__ import annotations

import doctest

import pytest

from stratarouter_crewai import delegator, flow, manager


@pytest.mark.parametrize("module", [delegator, flow, manager], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
