"""A replayed dead letter whose route is gone is dead-lettered again; when even that write fails, it stays
unacked and the rest of the batch goes on."""
from __future__ import annotations

import logging

import pytest

from orgloop.delivery.dlq import redelivery
from orgloop.event import new_event
from orgloop.router.router import Router
from orgloop.router.acks import AckTracker


def _record() -> dict:
    entry = {"route": "gone", "actor": "a", "event": new_event("s", "resource.changed", {"n": 1})}
    return redelivery(entry, 7)


@pytest.mark.parametrize("store_fails", [False, True], ids=["stored", "store-fails"])
def test_a_replay_to_a_missing_route_is_dead_lettered_again_or_stays_unacked(store_fails, caplog):
    acked: list[int] = []
    written: list[dict] = []

    def dead_letter(entries: list[dict]) -> None:
        if store_fails:
            raise OSError("No space left on device")
        written.extend(entries)

    router = Router([], AckTracker(acked.extend), dead_letter=dead_letter)
    caplog.set_level(logging.ERROR, "orgloop.router")
    router.handle([1, 2], [_record(), new_event("s", "resource.changed", {"n": 2})])   # 2 matches no route
    if store_fails:
        assert acked == [2] and written == [] and "stays unacked" in caplog.text
    else:
        assert sorted(acked) == [1, 2]
        assert [(e["route"], e["reason"], e["event"]["payload"]) for e in written] == [("gone", "gave_up", {"n": 1})]
