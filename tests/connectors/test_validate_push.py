"""``orgloop validate`` on push sources: an unsigned webhook source is a warning on loopback and an error
when the listener binds beyond loopback; the agent-hook source (whose bridge cannot sign) is not warned."""
from __future__ import annotations

from orgloop.config.checks import check_project
from orgloop.config.loader import load_project
from support.projects import orgloop_env, write  # noqa: F401  (orgloop_env is a fixture)

PROJECT = """\
apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: hooks
connectors:
  - connectors.yaml
{runtime}"""

CONNECTORS = """\
apiVersion: orgloop/v1alpha1
kind: ConnectorGroup
sources:
  - id: open
    connector: "@orgloop/connector-webhook"
  - id: signed
    connector: github-webhook
    config:
      secret: abc
  - id: agent
    connector: claude-code
"""


def problems(root):
    project = check_project(load_project(root, env={}))
    return [d.format(project.root) for d in project.sorted_diagnostics()]


def test_unsigned_push_sources(tmp_path, orgloop_env):
    write(tmp_path, "orgloop.yaml", PROJECT.format(runtime=""))
    write(tmp_path, "connectors.yaml", CONNECTORS)
    assert problems(tmp_path) == ["connectors.yaml:5:16: warning: webhook source 'open' has no secret: it accepts "
                                  "unsigned posts from any local program; set config.secret"]
    write(tmp_path, "orgloop.yaml", PROJECT.format(runtime="runtime:\n  ingress_host: 0.0.0.0\n"))
    found = problems(tmp_path)
    assert len(found) == 2 and all(": error: " in p and "beyond loopback" in p for p in found)
    assert "'open'" in found[0] and "'agent'" in found[1]


SECRETS = ("whsec-111", "ghsec-222", "lnsec-333", "bearer-444", "basicpw-555", "sign-666", "ocl-777")
ALL_SECRET_FIELDS = f"""\
apiVersion: orgloop/v1alpha1
kind: ConnectorGroup
sources:
  - id: hooks
    connector: webhook
    config: {{secret: {SECRETS[0]}}}
  - id: gh
    connector: github-webhook
    config: {{secret: {SECRETS[1]}, events: [issue_comment]}}
  - id: lin
    connector: linear-webhook
    config: {{secret: {SECRETS[2]}, team: ENG}}
actors:
  - id: out
    connector: http
    config:
      url: http://127.0.0.1:9/x
      auth: {{type: bearer, token: {SECRETS[3]}}}
      sign_secret: {SECRETS[5]}
  - id: basic
    connector: webhook
    config:
      url: http://127.0.0.1:9/y
      auth: {{type: basic, username: u, password: {SECRETS[4]}}}
  - id: oc
    connector: openclaw
    config: {{auth_token_env: {SECRETS[6]}, agent_id: eng}}
"""


def test_every_secret_setting_is_masked_in_plan_and_inspect(tmp_path, orgloop_env):
    from click.testing import CliRunner

    from orgloop.cli import main

    write(tmp_path, "orgloop.yaml", PROJECT.format(runtime=""))
    write(tmp_path, "connectors.yaml", ALL_SECRET_FIELDS)
    assert problems(tmp_path) == []
    runner = CliRunner()
    outputs = [runner.invoke(main, ["plan", "-p", str(tmp_path), *fmt]) for fmt in ([], ["-o", "json"])]
    outputs += [runner.invoke(main, ["inspect", "-p", str(tmp_path), "actor", name]) for name in ("out", "basic", "oc")]
    for result in outputs:
        assert result.exit_code in (0, 2), result.output
        assert "eng" in result.output or "gh" in result.output or "u" in result.output
        for secret in SECRETS:
            assert secret not in result.output
