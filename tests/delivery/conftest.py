from __future__ import annotations

import pytest
from support.fakeclock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
