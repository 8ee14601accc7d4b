import pytest

from orgloop.event import EventError, adopt, follow_up, new_event, validate_event


def test_new_event_is_valid_and_follow_up_keeps_trace():
    e = new_event("gh", "resource.changed", {"n": 1})
    assert validate_event(dict(e)) == e
    f = follow_up(e, "agent", "actor.stopped")
    assert f["trace_id"] == e["trace_id"] and f["id"] != e["id"]


def test_validate_fills_missing_fields_and_keeps_unknown_ones():
    e = validate_event({"source": "s", "type": "message.received", "provenance": {"platform": "x"}, "extra": 1})
    assert e["id"].startswith("evt_") and e["payload"] == {} and e["extra"] == 1


@pytest.mark.parametrize("bad,msg", [
    ([], "JSON object"),
    ({"source": "s", "type": "nope", "provenance": {"platform": "x"}}, "not one of"),
    ({"source": "", "type": "actor.stopped", "provenance": {"platform": "x"}}, "'source'"),
    ({"source": "s", "type": "actor.stopped"}, "provenance"),
    ({"source": "s", "type": "actor.stopped", "provenance": {"platform": "x"}, "id": "e1"}, "16 hex"),
    ({"source": "s", "type": "actor.stopped", "provenance": {"platform": "x"}, "timestamp": "yesterday"}, "ISO"),
    ({"source": "s", "type": "actor.stopped", "provenance": {"platform": "x", "author_type": "alien"}}, "author_type"),
])
def test_invalid_events_name_the_field(bad, msg):
    with pytest.raises(EventError, match=msg):
        validate_event(bad)


def test_adopt_puts_a_follow_up_in_its_causes_trace_and_checks_it():
    cause = new_event("gh", "resource.changed", {"n": 1})
    out = adopt(cause, {"type": "actor.stopped", "trace_id": "trc_00000000000000ff", "payload": {"ok": 1}},
                source="agent")
    assert out["trace_id"] == cause["trace_id"] and out["source"] == "agent" and out["id"] != cause["id"]
    assert out["provenance"] == {"platform": "agent"} and out["payload"] == {"ok": 1}
    assert adopt(cause, {"type": "message.received", "source": "bot"}, source="agent")["source"] == "bot"
    with pytest.raises(EventError, match="not one of"):
        adopt(cause, {"type": "done"}, source="agent")
    with pytest.raises(EventError, match="JSON object"):
        adopt(cause, "text", source="agent")


def test_event_module_examples():
    import doctest

    import orgloop.event

    assert doctest.testmod(orgloop.event).failed == 0
