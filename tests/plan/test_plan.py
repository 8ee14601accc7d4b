"""plan.py: item and field diffs, the summary line, secrets, apply(), the applied-state record."""
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from orgloop.plan import (ABSENT, KINDS, MASK, Masker, compute_plan, empty_state, looks_secret, read_applied,
                          write_applied)
from orgloop.plugins import PluginConfig, mask_secrets


def state(**kinds):
    out = empty_state()
    out.update(kinds)
    return out


def test_items_are_classified_and_field_changes_use_dot_paths():
    old = state(routes={"a": {"then": {"actor": "x", "delivery": {"max_rate": "1/s"}}}, "gone": {"when": {}}},
                sources={"s": {"connector": "generator"}})
    new = state(routes={"a": {"then": {"actor": "x", "delivery": {"max_rate": "2/s", "queue_depth": 5}}},
                        "fresh": {"when": {}}},
                sources={"s": {"connector": "generator"}})
    plan = compute_plan(old, new, "staging")
    actions = {(i.kind, i.name): i.action for i in plan.items}
    assert actions == {("routes", "a"): "changed", ("routes", "gone"): "removed", ("routes", "fresh"): "added",
                       ("sources", "s"): "unchanged"}
    changed = plan.of("routes", "changed")[0]
    assert [(f.dotted(), f.old, f.new) for f in changed.fields] == [
        ("then.delivery.max_rate", "1/s", "2/s"), ("then.delivery.queue_depth", ABSENT, 5)]
    assert plan.summary() == "Plan: 1 route added, 1 route changed, 1 route removed."


def test_summary_pluralises_omits_zero_counts_and_keeps_kind_order():
    new = state(sources={f"s{i}": {} for i in range(3)}, routes={"r": {"x": 2}})
    old = state(routes={"r": {"x": 1}}, transforms={"t1": {}, "t2": {}})
    assert compute_plan(old, new).summary() == "Plan: 3 sources added, 1 route changed, 2 transforms removed."


def test_no_changes_summary_names_the_workspace():
    s = state(actors={"a": {"connector": "file"}})
    plan = compute_plan(s, json.loads(json.dumps(s)), "production")
    assert not plan.has_changes and plan.changes == []
    assert plan.summary() == 'No changes. The workspace "production" matches the project.'


def test_a_value_of_another_type_is_a_change_even_when_python_says_equal():
    plan = compute_plan(state(routes={"r": {"v": 1}}), state(routes={"r": {"v": True}}))
    assert plan.of("routes", "changed")[0].fields[0].new is True


@pytest.mark.parametrize("name, secret", [("GITHUB_TOKEN", True), ("api_key", True), ("Password", True),
                                          ("client_secret", True), ("credentials", True), ("path", False),
                                          ("poll", False)])
def test_secret_looking_names(name, secret):
    assert looks_secret(name) is secret


class _Auth(PluginConfig):
    user: str
    password: SecretStr


class _SecretConfig(PluginConfig):
    token: SecretStr
    url: str
    path: str
    auth: _Auth
    n: int
    key: list[str]


def test_secret_fields_and_variable_values_are_hidden_but_still_change():
    masker = Masker.for_variables({"GH_TOKEN": "ghp_abcdef123", "PATH_X": "plain"})
    config = {"token": "t0k3n", "url": "https://x/?auth=ghp_abcdef123", "path": "plain",
              "auth": {"password": "pw", "user": "bob"}, "n": 3, "key": ["source", "id"]}
    hidden = masker.hide({"config": mask_secrets(_SecretConfig, config, Masker.marker)})
    text = json.dumps(hidden)
    assert "t0k3n" not in text and "ghp_abcdef123" not in text and '"pw"' not in text
    assert hidden["config"]["path"] == "plain" and hidden["config"]["auth"]["user"] == "bob"
    assert hidden["config"]["key"] == ["source", "id"]           # a name with "key" in it is not a secret
    assert masker.hide(hidden) == hidden                       # idempotent: markers stay markers
    assert mask_secrets(_SecretConfig, hidden["config"], Masker.marker) == hidden["config"]
    shown = Masker.display(hidden)
    assert shown["config"]["token"] == MASK and shown["config"]["url"] == MASK
    other = mask_secrets(_SecretConfig, {"token": "other"}, Masker.marker)
    plan = compute_plan(state(actors={"a": hidden}), state(actors={"a": {**hidden, "config": {
        **hidden["config"], "token": other["token"]}}}))
    change = plan.of("actors", "changed")[0]
    assert change.fields[0].dotted() == "config.token"
    assert change.to_json()["changes"] == [{"path": "config.token", "old": MASK, "new": MASK}]


names = st.text("abcxyz", min_size=1, max_size=3)
leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text("ab", max_size=2),
                 st.lists(st.integers(0, 2), max_size=2))
values = st.recursive(leaf, lambda inner: st.dictionaries(names, inner, max_size=3), max_leaves=8)
items = st.dictionaries(names, values, max_size=3)
states = st.fixed_dictionaries({k: st.dictionaries(names, items, max_size=3) for k in KINDS})


@settings(max_examples=300, deadline=None)
@given(states, states)
def test_applying_the_plan_from_a_to_b_to_a_yields_b(a, b):
    snapshot = json.dumps(a, sort_keys=True)
    plan = compute_plan(a, b)
    result = plan.apply(a)
    assert result == b and json.dumps(result, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert json.dumps(a, sort_keys=True) == snapshot                  # apply does not modify its input
    assert compute_plan(result, b).has_changes is False
    assert plan.has_changes is (json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True))


def test_applied_state_round_trips_and_is_written_atomically(tmp_path):
    s = state(routes={"r": {"then": {"actor": "a"}}})
    write_applied(tmp_path, s, project="p", workspace="w")
    record = read_applied(tmp_path)
    assert record["state"] == s and record["workspace"] == "w" and record["project"] == "p"
    assert sorted(os.listdir(tmp_path)) == ["applied-state.json"]       # no temp file left behind
    assert (tmp_path / "applied-state.json").stat().st_mode & 0o077 == 0
    assert read_applied(tmp_path / "nothing-here") is None


def test_a_damaged_applied_state_is_an_error_not_an_empty_state(tmp_path):
    (tmp_path / "applied-state.json").write_text('{"version": 1, "state"')
    with pytest.raises(ValueError, match="cannot read the applied state"):
        read_applied(tmp_path)
    (tmp_path / "applied-state.json").write_text('{"version": 99, "state": {}}')
    with pytest.raises(ValueError, match="not an orgloop applied-state file"):
        read_applied(tmp_path)


@pytest.mark.parametrize("secret", ['quo"te\\d', "ünïcode-secret", "abc"])
def test_secret_values_needing_json_escapes_or_short_ones_are_still_found(secret):
    masker = Masker.for_variables({"DB_PASSWORD": secret})
    hidden = masker.hide({"config": {"dsn": f"postgres://u:{secret}@db/x" if len(secret) > 3 else secret,
                                     "other": "plain"}})
    assert secret not in json.dumps(hidden, ensure_ascii=False)
    assert hidden["config"]["other"] == "plain"
    assert masker.hide({"config": {"path": "out/x"}}) == {"config": {"path": "out/x"}}
