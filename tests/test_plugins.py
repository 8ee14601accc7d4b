import pytest

from orgloop import plugins


def test_package_names_map_to_plugin_names():
    assert plugins.plugin_name("@orgloop/connector-github") == "github"
    assert plugins.plugin_name("@orgloop/transform-dedup") == "dedup"
    assert plugins.plugin_name("@orgloop/logger-console") == "console"
    assert plugins.plugin_name("command") == "command"


def test_builtins_are_listed_through_entry_points():
    assert {"generator", "file"} <= set(plugins.available("sources"))
    assert {"filter", "dedup", "script"} <= set(plugins.available("transforms"))


def test_unknown_plugin_and_duplicate_registration():
    with pytest.raises(plugins.PluginError, match="no source plugin named '@orgloop/connector-nope'"):
        plugins.load("sources", "@orgloop/connector-nope")
    plugins.register("actors", "test-only-actor", object)
    with pytest.raises(plugins.PluginError, match="already registered"):
        plugins.register("actors", "test-only-actor", object)
    with pytest.raises(ValueError):
        plugins.available("widgets")
