"""Per-route delivery state on a lane: equal route configs and prompts share one object, and the objects the
delivery loop reads per event keep the size that puts their hot fields on one cache line."""
import sys

import pytest

from orgloop.delivery.lane import ActorLane, RoutePolicy
from orgloop.router.acks import AckTracker
from orgloop.router.router import CompiledRoute
from orgloop.spec import DeliverySpec


def _lane() -> ActorLane:
    return ActorLane("agent", None, depth=10, policy="block", concurrency=1, tracker=AckTracker(lambda refs: None),
                     dead_letter=lambda entries: None)


def test_equal_configs_and_prompts_share_one_object_and_different_ones_do_not() -> None:
    lane = _lane()
    spec = DeliverySpec()
    a = lane.policy_for("a", spec, {"session": "x", "n": [1, 2]}, "hello")
    b = lane.policy_for("b", spec, {"n": [1, 2], "session": "x"}, "".join(["hel", "lo"]))
    c = lane.policy_for("c", spec, {"session": "y", "n": [1, 2]}, None)
    d = lane.policy_for("d", spec, {}, None)
    e = lane.policy_for("e", spec, {}, None)
    assert a.config is b.config and a.prompt is b.prompt
    assert c.config is not a.config and c.config == {"session": "y", "n": [1, 2]}
    assert d.config is e.config == {}
    assert lane.policies == {"a": a, "b": b, "c": c, "d": d, "e": e}


def test_a_config_that_is_not_plain_data_keeps_its_own_object() -> None:
    lane = _lane()
    marker = object()
    first = {"thing": marker}
    second = {"thing": marker}
    assert lane.policy_for("a", DeliverySpec(), first, None).config is first
    assert lane.policy_for("b", DeliverySpec(), second, None).config is second


def test_configs_that_only_json_confuses_keep_their_own_objects() -> None:
    lane = _lane()
    as_list, as_tuple = {"n": [1, 2]}, {"n": (1, 2)}
    str_key, int_key = {"1": "x"}, {1: "x"}
    assert lane.policy_for("a", DeliverySpec(), as_list, None).config is as_list
    assert lane.policy_for("b", DeliverySpec(), as_tuple, None).config is as_tuple
    assert lane.policy_for("c", DeliverySpec(), str_key, None).config is str_key
    assert lane.policy_for("d", DeliverySpec(), int_key, None).config is int_key


def test_a_different_lane_does_not_share() -> None:
    assert _lane().policy_for("a", DeliverySpec(), {}, None).config is not \
        _lane().policy_for("a", DeliverySpec(), {}, None).config


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's object layout")
@pytest.mark.parametrize("cls", [RoutePolicy, CompiledRoute])
def test_per_route_objects_stay_in_the_size_class_that_starts_on_a_cache_line(cls: type) -> None:
    """16 bytes of header and 12 slots, plus the 16-byte GC header: 128-byte blocks, which CPython's allocator
    places on 64-byte boundaries, so the hot fields (declared first, in a base class) share the header's line.
    A 13th slot would make objects straddle lines; move a cold field elsewhere instead."""
    assert cls.__basicsize__ == 112
    hot = cls.__mro__[1]
    assert 0 < len(hot.__slots__) <= 6          # the header's line has room for six 8-byte fields
