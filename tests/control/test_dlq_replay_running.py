"""``orgloop dlq list|show|replay`` against a running daemon: the replay goes over the owner's control socket
(``POST /dead-letters/replay``), reaches the dead letter's own route only, and removes the entry once handed
over; the read-only TCP port refuses it."""
from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from orgloop.control.client import ControlError, request
from support.daemon import Daemon, make_project, started
from support.fake_gateway import FakeGateway
from support.pipeline import wait_until

PROJECT = """\
apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: dlqreplay
sources:
  - id: gen
    connector: generator
    config: {count: 3}
    poll: {interval: 100ms}
actors:
  - id: hook
    connector: http
    config: {url: "URL"}
  - id: inbox
    connector: file
    config: {path: out/inbox.jsonl}
routes:
  - name: to-hook
    when: {source: gen}
    then:
      actor: hook
      delivery:
        retry: {max_attempts: 1}
        circuit_breaker: {failure_threshold: 1000}
  - name: to-inbox
    when: {source: gen}
    then: {actor: inbox}
runtime:
  control_port: PORT
"""


@pytest.fixture
def gateway():
    gw = FakeGateway()
    gw.default = (400, {})          # the hook refuses everything: dead letters at once
    yield gw
    gw.close()


def _cli_json(d: Daemon, *args: str) -> tuple[int, object]:
    r = d.orgloop("dlq", *args, "-p", str(d.project), "-o", "json")
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else r.stderr


def _letters(d: Daemon) -> list[dict]:
    code, rows = _cli_json(d, "list")
    assert code == 0, rows
    assert isinstance(rows, list)
    return rows


def test_replay_while_running_goes_to_that_route_only_and_the_tcp_port_refuses_it(gateway):
    def make(home: Path, port: int) -> Path:
        project = make_project(home, None)
        for sub in ("connectors", "routes", "transforms", "loggers", "workspaces", "sops"):
            for f in (project / sub).glob("*"):
                f.unlink()
        (project / "orgloop.yaml").write_text(PROJECT.replace("URL", gateway.url + "/in")
                                              .replace("PORT", str(port)))
        return project

    with started(make) as d:
        inbox = d.project / "out" / "inbox.jsonl"
        assert wait_until(lambda: inbox.exists() and len(inbox.read_text().splitlines()) == 3, timeout=60)
        assert wait_until(lambda: len(_letters(d)) == 3, timeout=60)      # list works while it runs
        letters = _letters(d)
        assert {x["route"] for x in letters} == {"to-hook"} and len(gateway.received) == 3
        first = letters[0]["id"]
        code, shown = _cli_json(d, "show", str(first))                   # and so does show
        assert code == 0 and isinstance(shown, dict) and shown["event"]["id"] == letters[0]["event_id"]

        # the read-only TCP port has no such endpoint, whatever the method or body
        for method in ("POST", "PUT"):
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
            conn.request(method, "/dead-letters/replay", body=json.dumps({"ids": None}),
                         headers={"Content-Type": "application/json"})
            assert conn.getresponse().status in (404, 405)
            conn.close()
        # the owner's socket refuses a malformed request with a reason
        for body in ({"ids": "all"}, {"ids": [True]}, {"ids": [0]}, ["1"], None):
            with pytest.raises(ControlError) as info:
                request(d.record["control_socket"], "POST", "/dead-letters/replay", body)
            assert info.value.status == 400 and "ids" in str(info.value)
        assert len(_letters(d)) == 3 and len(gateway.received) == 3

        gateway.default = (200, {})
        code, out = _cli_json(d, "replay", str(first), "999999")
        assert code == 1 and out == {"replayed": [first], "not_found": [999999], "via": "runtime"}
        code, out = _cli_json(d, "replay", "--all")
        assert code == 0 and isinstance(out, dict) and sorted(out["replayed"]) == [x["id"] for x in letters[1:]]
        assert out["via"] == "runtime"
        assert wait_until(lambda: len(gateway.received) == 6, timeout=60)
        delivered = [r.json()["event"]["id"] for r in gateway.received[3:]]
        assert sorted(delivered) == sorted(x["event_id"] for x in letters)   # each dead letter once
        assert _letters(d) == []
        status = json.loads(d.orgloop("status", "-p", str(d.project), "-o", "json").stdout)
        assert status["dead_letters"] == 0
        assert {r["name"]: r["delivered"] for r in status["routes"]} == {"to-hook": 3, "to-inbox": 3}
        assert len(inbox.read_text().splitlines()) == 3                   # the other route got nothing again
