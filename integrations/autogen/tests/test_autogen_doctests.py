from __future__ import annotations

import doctest

import pytest

from stratarouter_autogen import ag2, selector


@pytest.mark.parametrize("module", [ag2, selector], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
