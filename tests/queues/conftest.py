"""Every queue test runs on both twins: ``py`` (pure) and ``c`` (compiled)."""
from __future__ import annotations

from types import ModuleType

import pytest

from orgloop.queues import twins


@pytest.fixture(params=["pure", "compiled"], ids=["py", "c"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The queue module under test; the ``c`` case skips when the extension was not built."""
    if request.param == "compiled" and twins.compiled is None:
        pytest.skip(f"compiled queue not built: {twins.compiled_error}")
    return twins.get(request.param)
