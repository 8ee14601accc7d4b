"""Fixtures for the push-source and HTTP-actor tests: a running runtime with a webhook listener on a free
loopback port, and a fake gateway."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, BreakerSpec, DeliverySpec, RetrySpec, RouteSpec, RuntimeSpec, SourceSpec
from support.fake_gateway import FakeGateway
from support.fakeclock import FakeClock


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway()
    yield gw
    gw.close()


@pytest.fixture
def run_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Runtime]]:
    """``run_pipeline(source_spec, actor_spec=None, **route_kwargs)`` starts a runtime whose ingress listens on
    a free port (``runtime.ingress_port``); a ``file`` actor writing ``out.jsonl`` is the default actor."""
    monkeypatch.delenv("ORGLOOP_PORT", raising=False)
    started: list[Runtime] = []

    def start(source: SourceSpec, actor: ActorSpec | None = None, *, retry: RetrySpec | None = None,
              breaker: BreakerSpec | None = None, **route: Any) -> Runtime:
        actor = actor or ActorSpec("out", "file", {"path": str(tmp_path / "out.jsonl")})
        delivery = DeliverySpec(retry=retry or RetrySpec(max_attempts=1), circuit_breaker=breaker or BreakerSpec())
        spec = RuntimeSpec(sources=[source], actors=[actor],
                           routes=[RouteSpec("r", source.id, actor.id, delivery=delivery, **route)],
                           data_dir=tmp_path / "data", base_dir=tmp_path, ingress_port=0)
        rt = Runtime(spec).start()
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt.stop(drain_timeout=2.0)


@pytest.fixture
def clock() -> FakeClock:
    """The hand-moved clock a poller and its fake API share (no sleeps)."""
    return FakeClock(1_800_000_000.0)
