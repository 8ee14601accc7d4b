"""The ``>>>`` examples in the delivery docstrings run and stay true."""
from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from orgloop.delivery import breaker, ratelimit, restart, retry


@pytest.mark.parametrize("module", [ratelimit, retry, breaker, restart], ids=lambda m: m.__name__)
def test_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
