from __future__ import annotations

import pytest
from stratarouter_core.testing import AdapterContract


@pytest.fixture(scope="session")
def router():
    return AdapterContract.build_router()
