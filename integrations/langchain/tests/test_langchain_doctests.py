from __future__ import annotations

import doctest

import pytest

from stratarouter_langchain import dispatch, runnable


@pytest.mark.parametrize("module", [dispatch, runnable], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
