"""AutoGen / ag2 test fixtures: the contract router and offline agents."""

from __future__ import annotations

import warnings

import pytest
from stratarouter_core.testing import AdapterContract

with warnings.catch_warnings():
    # ag2 0.14 imports jsonschema.RefResolver, deprecated, which the project's
    # filterwarnings=error would turn into a collection error. Import it once, quietly.
    warnings.simplefilter("ignore", DeprecationWarning)
    import autogen  # noqa: F401


@pytest.fixture(scope="session")
def router():
    return AdapterContract.build_router()
