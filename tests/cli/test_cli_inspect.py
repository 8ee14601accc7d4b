"""``orgloop test``, ``orgloop routes``, ``orgloop inspect`` and ``orgloop init``."""
import json
import os
import sys
from pathlib import Path

from support.plan_helpers import edit

BROKEN = Path(__file__).parents[1] / "config" / "projects" / "broken"
EVENT = {"source": "heartbeat", "type": "resource.changed", "provenance": {"platform": "test"},
         "payload": {"n": 7, "severity": "high"}}


def _add_script_route(demo: Path) -> Path:
    """A second route through a script transform that tags the event, with a templated actor config."""
    script = demo / "transforms" / "tag.py"
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\nev = json.load(sys.stdin)\n"
                      "if ev['payload'].get('severity') == 'low':\n    sys.exit(1)\n"
                      "ev['payload']['tagged_by'] = os.environ['ORGLOOP_ROUTE']\nprint(json.dumps(ev))\n")
    script.chmod(0o755)
    edit(demo / "transforms" / "transforms.yaml", "transforms:\n", "transforms:\n  - name: tag\n    type: script\n"
         "    script: tag.py\n")
    (demo / "routes" / "tagged.yaml").write_text(
        "apiVersion: orgloop/v1alpha1\nkind: RouteGroup\nroutes:\n  - name: tagged\n    when:\n"
        "      source: heartbeat\n      filter:\n        payload.severity: high\n    transforms:\n"
        "      - ref: tag\n    then:\n      actor: inbox\n      config:\n"
        "        title: \"n={{payload.n}} by {{payload.tagged_by}}\"\n        api_key: \"${API_TOKEN}-{{payload.n}}\"\n")
    (demo / ".env").write_text("API_TOKEN=s3cr3t-value\n")    # a secret-looking variable: its value is masked
    return script


def _event_file(tmp_path, **changes) -> Path:
    path = tmp_path / "event.json"
    ev = json.loads(json.dumps(EVENT))
    ev["payload"].update(changes)
    path.write_text(json.dumps(ev))
    return path


def test_test_runs_filters_and_script_transforms_and_renders_what_the_actor_gets(demo, cli, tmp_path, home):
    _add_script_route(demo)
    r = cli("test", "-p", demo, _event_file(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    by_route = {x["route"]: x for x in out["routes"]}
    assert sorted(by_route) == ["heartbeat-to-inbox", "tagged"]
    tagged = by_route["tagged"]
    assert tagged["transforms"] == [{"transform": "tag", "phase": "transform.pass", "error": None}]
    [delivery] = tagged["deliveries"]
    assert delivery["event"]["payload"]["tagged_by"] == "tagged"          # the script really ran
    assert delivery["config"] == {"title": "n=7 by tagged", "api_key": "***"}
    assert by_route["heartbeat-to-inbox"]["deliveries"][0]["prompt"].startswith("A resource changed.")
    assert not (home / "data").exists()                                   # no WAL, no data directory


def test_test_exit_2_when_nothing_would_be_delivered(demo, cli, tmp_path):
    _add_script_route(demo)
    edit(demo / "routes" / "heartbeat.yaml", "events: [resource.changed]", "events: [actor.stopped]")
    r = cli("test", "-p", demo, _event_file(tmp_path, severity="low"))
    assert r.exit_code == 2, r.output
    assert "No route matches this event." in r.stdout                   # the filter wants severity=high
    edit(demo / "routes" / "tagged.yaml", "payload.severity: high", "payload.severity: low")
    r = cli("test", "-p", demo, _event_file(tmp_path, severity="low"))
    assert r.exit_code == 2
    assert "route tagged -> actor inbox" in r.stdout and "transform tag: drop" in r.stdout
    assert "dropped: nothing would be delivered" in r.stdout


def test_test_human_output_shows_event_prompt_and_config(demo, cli, tmp_path):
    r = cli("test", "-p", demo, "-", input=json.dumps(EVENT))
    assert r.exit_code == 0, r.output
    assert "route heartbeat-to-inbox -> actor inbox" in r.stdout
    assert "transform only-changes: pass" in r.stdout and "transform once: pass" in r.stdout
    assert "    prompt:\n      A resource changed." in r.stdout
    assert "1 route(s) matched, 1 would deliver." in r.stdout


def test_test_rejects_an_invalid_event_or_project(demo, cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "x", "type": "no.such.type"}')
    r = cli("test", "-p", demo, bad)
    assert r.exit_code == 1 and "not a valid event" in r.stderr
    bad.write_text("not json")
    assert cli("test", "-p", demo, bad).exit_code == 1
    r = cli("test", "-p", BROKEN, _event_file(tmp_path))
    assert r.exit_code == 1 and "error:" in r.stderr


def test_routes_lists_every_route(demo, cli):
    _add_script_route(demo)
    r = cli("routes", "-p", demo)
    assert r.exit_code == 0
    assert r.stdout.splitlines() == ["name\tsource\tevents\tactor\ttransforms",
                                     "heartbeat-to-inbox\theartbeat\tresource.changed\tinbox\tonly-changes,once",
                                     "tagged\theartbeat\t*\tinbox\ttag"]
    assert [x["name"] for x in json.loads(cli("routes", "-p", demo, "--json").stdout)] == ["heartbeat-to-inbox",
                                                                                          "tagged"]
    assert cli("routes", "-p", BROKEN).exit_code == 1


def test_inspect_shows_the_resolved_definition_with_workspace_overrides_and_masked_secrets(demo, cli, monkeypatch):
    monkeypatch.setenv("INBOX_SECRET", "very-secret-value")
    edit(demo / "connectors" / "connectors.yaml", "      include_prompt: true\n",
         "      include_prompt: true\n  - id: notify\n    connector: command\n    config:\n"
         "      command: [notify, \"Bearer ${INBOX_SECRET}\"]\n      env: {TOKEN: literal-token-123}\n")
    r = cli("inspect", "-p", demo, "actor", "notify")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("# actor notify, defined at connectors/connectors.yaml:20:5 (workspace default)\n")
    assert "- '***'" in r.stdout and "very-secret-value" not in r.stdout     # a secret variable's value
    assert "TOKEN: '***'" in r.stdout and "literal-token-123" not in r.stdout  # a SecretStr field of the model
    assert "concurrency: 1" in r.stdout                                  # defaults are filled in
    r = cli("inspect", "-p", demo, "-w", "staging", "source", "heartbeat", "--json")
    out = json.loads(r.stdout)
    assert out["definition"]["config"]["rate"] == 1 and out["definition"]["id"] == "heartbeat"
    r = cli("inspect", "-p", demo, "route", "heartbeat-to-inbx")
    assert r.exit_code == 1 and "did you mean 'heartbeat-to-inbox'" in r.stderr
    assert cli("inspect", "-p", demo, "widget", "x").exit_code == 64     # usage error


def test_init_refuses_a_non_empty_directory_unless_forced(tmp_path, cli):
    target = tmp_path / "My Project"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    r = cli("init", target)
    assert r.exit_code == 1 and "not empty" in r.stderr
    assert not (target / "orgloop.yaml").exists()
    r = cli("init", target, "--force")
    assert r.exit_code == 0, r.output
    assert (target / "notes.txt").read_text() == "keep me"
    assert "name: My-Project" in (target / "orgloop.yaml").read_text()
    assert (target / ".env.example").is_file() and (target / "sops" / "triage.md").is_file()
    r = cli("plan", "-p", target)
    assert r.exit_code == 2, r.output


def test_init_defaults_to_the_current_directory(tmp_path, cli, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert cli("init").exit_code == 0
    assert sorted(os.listdir(".")) == [".env.example", "connectors", "loggers", "orgloop.yaml", "routes", "sops",
                                       "transforms", "workspaces"]
