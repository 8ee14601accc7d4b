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
