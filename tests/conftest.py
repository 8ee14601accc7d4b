"""Shared fixtures: every storage test runs against both twins (compiled and pure-Python)."""
from __future__ import annotations

import pytest

from orgloop._twins import require_compiled
from orgloop.wal import twins as wal_twins


@pytest.fixture(params=["compiled", "pure"], ids=["c", "py"])
def impl(request) -> str:
    """The WAL implementation under test."""
    if request.param == "compiled" and wal_twins.compiled is None:
        if require_compiled():
            pytest.fail(f"compiled WAL missing: {wal_twins.compiled_error}")
        pytest.skip("compiled WAL not built")
    return request.param


@pytest.fixture
def core(impl):
    """The twin module itself (``_wal`` or ``_wal_py``)."""
    return wal_twins.get(impl)
