"""The ``>>>`` examples in the queue docstrings run and stay true."""
from __future__ import annotations

import doctest

import orgloop.queues


def test_examples() -> None:
    result = doctest.testmod(orgloop.queues)
    assert result.attempted > 0 and result.failed == 0
