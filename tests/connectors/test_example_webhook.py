"""The ``examples/webhook-to-command`` project, run by ``orgloop start`` in a subprocess and driven over HTTP:
signed posts go through the filter and dedup to the command actor; unsigned posts are refused."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orgloop.connectors.ingress import sign
from support.fake_gateway import post
from support.pipeline import wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook-to-command"
SECRET = "example-secret-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_webhook_filter_dedup_command_example_over_http(tmp_path):
    project = shutil.copytree(EXAMPLE, tmp_path / "project")
    port = _free_port()
    env = {**os.environ, "ORGLOOP_HOME": str(tmp_path / "home"), "ORGLOOP_PORT": str(port),
           "DEPLOY_WEBHOOK_SECRET": SECRET}
    plan = subprocess.run([sys.executable, "-m", "orgloop", "plan", "-p", str(project)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert "deploys" in plan.stdout and SECRET not in plan.stdout + plan.stderr
    log = open(tmp_path / "start.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "orgloop", "start", "-p", str(project), "--for", "120s"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # up means: orgloop says it listens there (a bare port check could meet another program that took the port)
        up = f"webhooks at http://127.0.0.1:{port}/webhook/<source-id>"
        assert wait_until(lambda: up in (tmp_path / "start.log").read_text() or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, (tmp_path / "start.log").read_text()

        def signed(doc, path="/webhook/deploys"):
            raw = json.dumps(doc).encode()
            return post(port, path, raw, {"X-Hub-Signature-256": sign(SECRET, raw)})

        failed = {"type": "deployment", "service": "api", "version": "1.4.2", "status": "failed"}
        first = signed(failed)
        assert first[0] == 200 and first[1]["ok"] is True
        assert signed(failed, "/hooks/deploys")[0] == 200                  # the same failure again: deduped
        assert signed({**failed, "status": "succeeded"})[0] == 200         # filtered out
        assert signed({**failed, "version": "1.4.3"})[0] == 200            # another release: delivered
        assert post(port, "/webhook/deploys", failed)[0] == 401            # unsigned: refused
        out = project / "out" / "deliveries.jsonl"
        assert wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, timeout=30)
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert [(x["service"], x["version"]) for x in lines] == [("api", "1.4.2"), ("api", "1.4.3")]
        assert lines[0]["event_id"] == first[1]["event_id"]
        assert "Look at the CI log" in lines[0]["prompt"] and "title:" not in lines[0]["prompt"]
        status = subprocess.run([sys.executable, "-m", "orgloop", "status", "-p", str(project)], env=env,
                                capture_output=True, text=True, timeout=60)
        assert f"webhooks on http://127.0.0.1:{port} (1 sources); answers by status: 200: 4, 401: 1" in status.stdout
        assert SECRET not in status.stdout + status.stderr
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    assert proc.returncode == 0
    assert SECRET not in (tmp_path / "start.log").read_text()
