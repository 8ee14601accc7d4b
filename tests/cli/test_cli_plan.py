"""``orgloop plan``: golden human output, JSON, exit codes 0 / 1 / 2."""
import json
from pathlib import Path

from support.plan_helpers import edit, record_applied

GOLDEN = Path(__file__).parent / "golden"
BROKEN = Path(__file__).parents[1] / "config" / "projects" / "broken"


def _change_everything(demo: Path) -> None:
    edit(demo / "routes" / "heartbeat.yaml", "max_rate: 100/s", "max_rate: 50/s")
    edit(demo / "routes" / "heartbeat.yaml", "      actor: inbox\n", "      actor: inbox\n      config:\n"
         "        ticket: \"{{payload.n}}\"\n")
    (demo / ".env").write_text("INBOX_TOKEN=hunter2hunter2\n")   # a secret-looking variable: its value is masked
    edit(demo / "connectors" / "connectors.yaml", "      include_prompt: true\n",
         "      include_prompt: true\n      fsync: true\n")
    edit(demo / "connectors" / "connectors.yaml", "${INBOX_PATH:-out/inbox.jsonl}", "out/${INBOX_TOKEN}.jsonl")
    edit(demo / "connectors" / "connectors.yaml", "actors:\n", "  - id: ticks\n    connector: generator\n"
         "    config: {rate: 1}\nactors:\n")
    edit(demo / "orgloop.yaml", "loggers:\n  - loggers/loggers.yaml\n", "")


def test_first_plan_adds_everything_and_exits_2(demo, cli):
    r = cli("plan", "-p", demo)
    assert r.exit_code == 2, r.output
    assert r.stdout.splitlines()[0] == ('Project "demo", workspace "default", compared with nothing '
                                        "(this workspace was never started).")
    assert r.stdout.splitlines()[-1] == ("Plan: 1 source added, 1 actor added, 1 route added, 2 transforms added, "
                                         "1 logger added.")


def test_plan_against_the_applied_state_matches_the_golden_output(demo, cli, home):
    record_applied(demo, home)
    r = cli("plan", "-p", demo)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == 'No changes. The workspace "default" matches the project.'
    _change_everything(demo)
    r = cli("plan", "-p", demo)
    assert r.exit_code == 2, r.output
    assert r.stdout == (GOLDEN / "plan_changes.txt").read_text()
    assert "hunter2" not in r.stdout
    r = cli("plan", "-p", demo, "--all")
    assert r.exit_code == 2
    assert r.stdout == (GOLDEN / "plan_changes_all.txt").read_text()


def test_plan_json(demo, cli, home):
    record_applied(demo, home)
    _change_everything(demo)
    r = cli("plan", "-p", demo, "--json")
    assert r.exit_code == 2
    out = json.loads(r.stdout)
    assert out == json.loads((GOLDEN / "plan_changes.json").read_text())
    assert "hunter2" not in r.stdout


def test_workspace_overrides_are_planned_per_workspace(demo, cli, home):
    record_applied(demo, home)
    r = cli("plan", "-p", demo, "-w", "staging", "--json")
    assert r.exit_code == 2                              # staging never ran: everything is added there
    assert json.loads(r.stdout)["counts"]["sources"]["added"] == 1
    record_applied(demo, home, "staging")
    assert cli("plan", "-p", demo, "-w", "staging").exit_code == 0
    edit(demo / "workspaces" / "staging.yaml", "rate: 1", "rate: 2")
    r = cli("plan", "-p", demo, "-w", "staging")
    assert r.exit_code == 2 and "    config.rate: 1 -> 2" in r.stdout
    assert cli("plan", "-p", demo).exit_code == 0         # the default workspace is not affected


def test_an_invalid_project_exits_1_with_its_diagnostics_on_stderr(cli):
    r = cli("plan", "-p", BROKEN)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "error:" in r.stderr and "Nothing was done" in r.stderr


def test_a_missing_project_or_a_damaged_state_file_exits_1(demo, cli, home, tmp_path):
    r = cli("plan", "-p", tmp_path / "nowhere")
    assert r.exit_code == 1 and "no orgloop.yaml" in r.stderr
    data_dir = record_applied(demo, home)
    (data_dir / "applied-state.json").write_text("{broken")
    r = cli("plan", "-p", demo)
    assert r.exit_code == 1 and "cannot read the applied state" in r.stderr
