from __future__ import annotations

import doctest

import pytest

from stratarouter_langgraph import edge, node


@pytest.mark.parametrize("module", [edge, node], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
