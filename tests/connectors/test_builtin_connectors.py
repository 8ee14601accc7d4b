import json
import sys

import pytest

from orgloop import plugins
from orgloop.connectors import DeliveryError
from orgloop.connectors.command import CommandActor
from orgloop.connectors.file import FileActor, FileSource
from orgloop.connectors.generator import GeneratorSource
from orgloop.event import new_event, validate_event


def test_generator_counts_checkpoints_and_rate(tmp_path):
    g = GeneratorSource("gen", {"count": 25, "payload_size": 10, "sources": 3}, base_dir=tmp_path)
    events, cp = g.poll(None, 10)
    assert len(events) == 10 and cp == "10" and {e["source"] for e in events} == {"gen-0", "gen-1", "gen-2"}
    validate_event(dict(events[0]))
    events, cp = g.poll(cp, 100)
    assert len(events) == 15 and cp == "25" and g.poll(cp, 10) == ([], "25")
    now = [0.0]
    slept = []
    r = GeneratorSource("r", {"rate": 10}, base_dir=tmp_path, clock=lambda: now[0], sleep=slept.append)
    first, cp = r.poll(None, 100)
    assert len(first) == 1 and slept == [pytest.approx(0.1)]   # the first event is due at t=0.1
    now[0] = 1.0
    nxt, cp = r.poll(cp, 100)
    assert len(nxt) == 9 and len(slept) == 1                  # 10/s: by t=1 ten are due in total
    with pytest.raises(plugins.PluginConfigError, match=r"source 'x' \(generator\): invalid config: rat: Extra"):
        plugins.create("sources", "generator", "x", {"rat": 1}, base_dir=tmp_path)


def test_file_source_tails_with_offsets_partial_lines_and_bad_lines(tmp_path):
    log = tmp_path / "in.jsonl"
    full = new_event("files", "message.received", {"a": 1})
    log.write_text(json.dumps(full) + "\n" + '{"bare": 2}\n' + "not json\n" + '{"partial": ')
    src = FileSource("files", {"path": "in.jsonl"}, base_dir=tmp_path)
    events, cp = src.poll(None, 100)
    assert [e.get("payload") for e in events] == [{"a": 1}, {"bare": 2}] and src.invalid_lines == 1
    assert events[1]["source"] == "files"
    with open(log, "a") as f:
        f.write('3}\n')
    events, cp2 = src.poll(cp, 100)
    assert [e["payload"] for e in events] == [{"partial": 3}] and int(cp2.split(":")[2]) == log.stat().st_size
    log.write_text('{"after": "truncate"}\n')          # shrank: read from the start
    events, _ = src.poll(cp2, 100)
    assert [e["payload"] for e in events] == [{"after": "truncate"}] and src.restarts == 1
    src.close()


def test_file_actor_appends_jsonl(tmp_path):
    a = FileActor("sink", {"path": "out/events.jsonl", "include_prompt": True, "fsync": True}, base_dir=tmp_path)
    e = new_event("gh", "resource.changed", {"x": 1})
    a.deliver(e, "do it", {})
    a.close()
    line = json.loads((tmp_path / "out/events.jsonl").read_text())
    assert line == {"event": e, "prompt": "do it"}


def test_command_actor_exit_codes_prompt_and_timeout(tmp_path):
    code = ("import json,os,sys; e=json.load(sys.stdin); p=open(os.environ['ORGLOOP_PROMPT_FILE']).read();"
            "open(sys.argv[1],'a').write(e['id']+' '+p+'\\n'); sys.exit(e['payload'].get('exit',0))")
    out = tmp_path / "seen.txt"
    a = CommandActor("cmd", {"command": [sys.executable, "-c", code, str(out)], "timeout": "5s"}, base_dir=tmp_path)
    e = new_event("gh", "resource.changed", {})
    a.deliver(e, "PROMPT", {})
    assert out.read_text() == f"{e['id']} PROMPT\n"
    with pytest.raises(DeliveryError, match="exited with 4"):
        a.deliver(new_event("gh", "resource.changed", {"exit": 4}), "p", {})
    slow = CommandActor("slow", {"command": [sys.executable, "-c", "import time; time.sleep(30)"], "timeout": "200ms"},
                        base_dir=tmp_path)
    with pytest.raises(DeliveryError, match="did not finish"):
        slow.deliver(e, None, {})
    with pytest.raises(plugins.PluginConfigError, match="command: List should have at least 1 item"):
        plugins.create("actors", "command", "bad", {"command": []}, base_dir=tmp_path)


@pytest.mark.parametrize("stdout,types", [
    ('{"type": "actor.stopped"}', ["actor.stopped"]),
    ('[{"type": "actor.stopped"}, {"type": "message.received", "payload": {"b": 2}}]',
     ["actor.stopped", "message.received"]),
    ('{"type": "actor.stopped"}\n{"type": "resource.changed"}\n', ["actor.stopped", "resource.changed"]),
    ("done, nothing to report\n", []),
    ("", []),
    ("42\n", []),                                     # JSON, but not an event: ignored, still a success
    ('{"status": "ok"}', []),
    ('[{"a": 1}, {"type": "actor.stopped"}]', ["actor.stopped"]),
    ('{"type": "no.such.type"}', []),                 # an invalid event is logged and ignored
])
def test_command_actor_success_is_the_exit_code_and_only_events_are_follow_ups(tmp_path, stdout, types):
    code = f"import sys; sys.stdin.read(); sys.stdout.write({stdout!r})"
    a = CommandActor("cmd", {"command": [sys.executable, "-c", code]}, base_dir=tmp_path)
    cause = new_event("gh", "resource.changed", {})
    out = a.deliver(cause, None, {})
    assert [e["type"] for e in out] == types
    assert all(e["trace_id"] == cause["trace_id"] and e["source"] == "cmd" for e in out)
