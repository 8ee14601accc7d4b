"""Lag per consumer group, read from the bus's server without joining any group (for ``orgloop status``).

Each row: ``{stream, group, lag, pending, consumers}``: ``lag`` events not yet handed to the group,
``pending`` handed out and not acked. Redis: ``XINFO GROUPS`` (``lag``, ``pending``); NATS: the durable
consumer's ``num_pending`` and ``num_ack_pending``; Kafka: end offsets minus the group's committed offsets
(pending is not known to the broker, so it is None).
"""
from __future__ import annotations

import asyncio
from typing import Any

from orgloop.fleet import DELIVERIES

__all__ = ["group_lag"]

_STREAMS = ("events", DELIVERIES)


def group_lag(bus: str, bus_options: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The groups reading the fleet's streams on ``bus``, with their lag."""
    if bus == "redis":
        return _redis(bus_options.get("url", "redis://127.0.0.1:6379/0"), namespace)
    if bus == "nats":
        return asyncio.run(_nats(bus_options.get("url", "nats://127.0.0.1:4222"), namespace))
    if bus == "kafka":
        return _kafka(bus_options, namespace)
    return []


def _redis(url: str, namespace: str) -> list[dict[str, Any]]:
    import redis

    r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
    rows = []
    try:
        for stream in _STREAMS:
            key = f"orgloop:{namespace}:{stream}"
            if not r.exists(key):
                continue
            for g in r.xinfo_groups(key):
                rows.append({"stream": stream, "group": g["name"], "lag": g.get("lag"), "pending": g["pending"],
                             "consumers": g["consumers"]})
    finally:
        r.close()
    return rows


async def _nats(url: str, namespace: str) -> list[dict[str, Any]]:
    import nats

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    rows = []
    try:
        js = nc.jetstream(timeout=5)
        for stream in _STREAMS:
            root = "orgloop" if stream == "events" else f"orgloop_{stream}"
            name = root + "_" + namespace.replace(".", "_2e")
            try:
                consumers = await js.consumers_info(name)
            except Exception:  # no such stream (yet)
                continue
            for c in consumers:
                rows.append({"stream": stream, "group": c.name, "lag": c.num_pending, "pending": c.num_ack_pending,
                             "consumers": None})
    finally:
        await nc.close()
    return rows


def _kafka(options: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    import confluent_kafka as ck

    common = {"bootstrap.servers": options.get("bootstrap_servers", "127.0.0.1:9092"),
              **options.get("client_options", {})}
    rows = []
    for stream, group in (("events", options.get("group", "router")), (DELIVERIES, "delivery")):
        topic = f"orgloop.{namespace}.{stream}"
        consumer = ck.Consumer({**common, "group.id": group, "enable.auto.commit": False})
        try:
            meta = consumer.list_topics(topic, timeout=10)
            if topic not in meta.topics or meta.topics[topic].error is not None:
                continue
            parts = [ck.TopicPartition(topic, p) for p in meta.topics[topic].partitions]
            lag = 0
            for tp in consumer.committed(parts, timeout=10):
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag += high - (tp.offset if tp.offset >= 0 else low)
            rows.append({"stream": stream, "group": group, "lag": lag, "pending": None, "consumers": None})
        finally:
            consumer.close()
    return rows
