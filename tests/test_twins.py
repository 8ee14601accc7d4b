import importlib
import sys
import types

import pytest

from orgloop import _twins


def _fake(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    return mod


def test_pure_is_chosen_when_compiled_is_missing(monkeypatch):
    monkeypatch.delenv("ORGLOOP_REQUIRE_COMPILED", raising=False)
    monkeypatch.delenv("ORGLOOP_PUREPYTHON", raising=False)
    pure = _fake("orgloop_test_pure_a")
    twins = _twins.load_twins("orgloop_test_does_not_exist", "orgloop_test_pure_a")
    assert twins.active is pure and twins.name == "pure"
    with pytest.raises(ImportError, match="not available"):
        twins.get("compiled")


def test_require_compiled_turns_missing_module_into_error(monkeypatch):
    monkeypatch.setenv("ORGLOOP_REQUIRE_COMPILED", "1")
    _fake("orgloop_test_pure_b")
    with pytest.raises(ImportError, match="ORGLOOP_REQUIRE_COMPILED"):
        _twins.load_twins("orgloop_test_does_not_exist", "orgloop_test_pure_b")


def test_force_pure_switch(monkeypatch):
    compiled = _fake("orgloop_test_compiled_c")
    pure = _fake("orgloop_test_pure_c")
    monkeypatch.setenv("ORGLOOP_PUREPYTHON", "1")
    twins = _twins.load_twins("orgloop_test_compiled_c", "orgloop_test_pure_c")
    assert twins.active is pure and twins.compiled is compiled
    monkeypatch.setenv("ORGLOOP_PUREPYTHON", "0")
    assert _twins.load_twins("orgloop_test_compiled_c", "orgloop_test_pure_c").active is compiled
    with pytest.raises(ValueError):
        twins.get("fast")
