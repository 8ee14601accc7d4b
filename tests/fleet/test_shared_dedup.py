"""The dedup transform with its state in a fleet's shared store (the real one: Redis and NATS)."""
from __future__ import annotations

import pytest

from orgloop.fleet.store import StoreError
from orgloop.transforms import TransformContext, TransformError
from orgloop.transforms.dedup import DedupTransform


def _ctx(seq: str, claims: list) -> TransformContext:
    return TransformContext(route="r", source="gen", target="sink", seq=seq, claims=claims)


def test_two_members_share_claims_and_marks(store):
    a, b = DedupTransform("once", {"key": ["id"]}), DedupTransform("once", {"key": ["id"]})
    a.share(store)
    b.share(store)
    event = {"id": "evt_1", "source": "gen"}
    claims_a: list = []
    assert a.apply(dict(event), _ctx("ref-1", claims_a)) == [event]
    assert b.apply(dict(event), _ctx("ref-2", [])) == []          # another copy, in another member
    assert b.apply(dict(event), _ctx("ref-1", [])) == [event]     # the same entry, taken over by b
    done: list = []
    claims_a[0](True, lambda: done.append(1))                     # a delivered it
    assert done == []                                             # durable only after the commit
    a.commit()
    assert done == [1]
    assert b.apply(dict(event), _ctx("ref-1", [])) == []          # marked: even that entry is dropped now
    assert b.dropped == 2


def test_an_unreachable_store_is_a_transform_error_so_on_error_decides():
    class Down:
        def dedup_claim(self, *args: object) -> bool:
            raise StoreError("cut off")

    t = DedupTransform("once", {"key": ["id"]})
    t.share(Down())
    with pytest.raises(TransformError, match="shared store"):
        t.apply({"id": "evt_1"}, _ctx("ref-1", []))
