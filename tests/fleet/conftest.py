"""Fleet tests run against the shared Redis (6379) and NATS (4222) of this machine kind, each under a
namespace of its own that is removed afterwards."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"


def cleanup_redis(namespace: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"orgloop:{namespace}:*", count=1000))
    for i in range(0, len(keys), 1000):
        r.delete(*keys[i:i + 1000])
    r.close()


def cleanup_nats(namespace: str) -> None:
    import nats

    from orgloop.bus.base import escape_token

    async def run() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        ns = namespace.replace(".", "_2e")
        for stream in (f"orgloop_{ns}", f"orgloop_deliveries_{ns}", f"KV_orgloop_fleet_{escape_token(namespace)}"):
            try:
                await js.delete_stream(stream)
            except Exception:  # never created
                pass
        await nc.close()

    asyncio.run(run())


@pytest.fixture
def namespace() -> Iterator[str]:
    ns = f"fleet-{uuid.uuid4().hex[:10]}.default"
    yield ns
    cleanup_redis(ns)
    cleanup_nats(ns)


@pytest.fixture(params=["redis", "nats"])
def store(request: pytest.FixtureRequest, namespace: str) -> Iterator[object]:
    from orgloop.fleet import open_store

    s = open_store(request.param, {}, namespace)
    yield s
    s.close()


@pytest.fixture
def fleet_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="olfleet-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
