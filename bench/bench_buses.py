"""The same workload through every bus, against each server's raw client in the same run (issue 12).

Workload: N events of ~256 B are published in batches of B (and, for the per-event rows, one call per
event), then fetched in batches of B and acked batch by batch. A row reports events/s of the whole
publish + fetch + ack loop, p50/p99 of the publish call, and CPU seconds (this process) per million events.
For Redis, NATS and Kafka the raw client runs the same loop without orgloop (pipelined XADD / XREADGROUP /
XACK+XDEL; concurrent JetStream publishes / pull fetch / ack; produce + flush / consume / commit), right
before the bus, and the ratio bus / raw is orgloop's own overhead. Target: >= 0.5 for each.

Servers: Redis on 127.0.0.1:6379 and NATS on 127.0.0.1:4222 (as on this machine kind); a Tansu Kafka broker
is started here on a free port and stopped at the end.

Fleet run (``--fleet``, or alone with ``--fleet-only``): 1, 2 and 3 ``router`` processes (each a
``Runtime`` with ``role="router"``, one route, the delivery records going to the ``deliveries`` stream) on
the Redis bus; the bench publishes 10 N events to the fleet's events stream, starts the routers, and reports
routed events/s (routed: the record durable on the deliveries stream and the event acked) over the steady
part: from when every router has joined until a fifth of that backlog is left.

    python bench/bench_buses.py [--quick] [--fleet | --fleet-only] [--out bench/results/buses.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.servers import kafka_broker  # noqa: E402  (the tests' own broker launcher)

from orgloop.bus import open_bus  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"
PAD = "x" * 96


def make_events(n: int) -> list[dict[str, Any]]:
    return [{"id": f"evt_{i:016x}", "timestamp": "2026-01-01T00:00:00.000Z", "source": f"src-{i % 8}",
             "type": "resource.changed", "provenance": {"platform": "bench"}, "payload": {"n": i, "data": PAD},
             "trace_id": f"trc_{i:016x}"} for i in range(n)]


def measure(run: Callable[[list[dict[str, Any]], int], list[float]], n: int, batch: int) -> dict[str, float]:
    events = make_events(n)
    cpu0, t0 = time.process_time(), time.perf_counter()
    lat = run(events, batch)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lat.sort()
    return {"events_per_s": n / wall, "publish_p50_ms": statistics.median(lat) * 1e3,
            "publish_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
            "cpu_s_per_million": cpu / n * 1e6}


# --------------------------------------------------------------------------- orgloop buses
def bus_loop(factory: Callable[[], Any]) -> Callable[[list[dict[str, Any]], int], list[float]]:
    def run(events: list[dict[str, Any]], batch: int) -> list[float]:
        bus = factory()
        lat = []
        try:
            for i in range(0, len(events), batch):
                t = time.perf_counter()
                bus.publish_many(events[i:i + batch])
                lat.append(time.perf_counter() - t)
            got = 0
            while got < len(events):
                refs, evs = bus.fetch(batch, timeout=5)
                if not evs:
                    raise RuntimeError(f"{type(bus).__name__}: only {got} of {len(events)} events came back")
                bus.ack_many(refs)
                got += len(evs)
        finally:
            bus.close()
        return lat
    return run


# --------------------------------------------------------------------------- raw clients
def raw_redis(events: list[dict[str, Any]], batch: int) -> list[float]:
    import redis
    r = redis.Redis.from_url(REDIS)
    key, group = f"bench-raw:{uuid.uuid4().hex}", "g"
    r.xgroup_create(key, group, id="0", mkstream=True)
    lat = []
    try:
        for i in range(0, len(events), batch):
            t = time.perf_counter()
            pipe = r.pipeline(transaction=False)
            for ev in events[i:i + batch]:
                pipe.xadd(key, {b"e": msgpack.packb(ev)})
            pipe.execute()
            lat.append(time.perf_counter() - t)
        got = 0
        while got < len(events):
            reply = r.xreadgroup(group, "c", {key: ">"}, count=batch, block=5000)
            entries = reply[0][1]
            ids = [eid for eid, fields in entries]
            for _eid, fields in entries:
                msgpack.unpackb(fields[b"e"])
            pipe = r.pipeline(transaction=False)
            pipe.xack(key, group, *ids)
            pipe.xdel(key, *ids)
            pipe.execute()
            got += len(ids)
    finally:
        r.delete(key)
        r.close()
    return lat


def raw_nats(events: list[dict[str, Any]], batch: int) -> list[float]:
    import nats
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    async def go() -> list[float]:
        nc = await nats.connect(NATS)
        js = nc.jetstream()
        name = f"benchraw_{uuid.uuid4().hex[:10]}"
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], retention=RetentionPolicy.WORK_QUEUE,
                                         storage=StorageType.FILE))
        lat = []
        try:
            for i in range(0, len(events), batch):
                t = time.perf_counter()
                await asyncio.gather(*(js.publish(f"{name}.{ev['source']}", msgpack.packb(ev),
                                                  headers={"Nats-Msg-Id": ev["id"]})
                                       for ev in events[i:i + batch]))
                lat.append(time.perf_counter() - t)
            sub = await js.pull_subscribe(f"{name}.>", durable="c", stream=name)
            got = 0
            while got < len(events):
                msgs = await sub.fetch(batch, timeout=5)
                for m in msgs:
                    msgpack.unpackb(m.data)
                    await m.ack()
                got += len(msgs)
            await nc.flush()
        finally:
            await js.delete_stream(name)
            await nc.close()
        return lat

    return asyncio.run(go())


def raw_kafka(servers: str) -> Callable[[list[dict[str, Any]], int], list[float]]:
    def run(events: list[dict[str, Any]], batch: int) -> list[float]:
        import confluent_kafka as ck
        from confluent_kafka.admin import AdminClient, NewTopic
        topic = f"benchraw.{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": servers})     # kept alive until the topic exists
        admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
        p = ck.Producer({"bootstrap.servers": servers, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
        lat = []
        for i in range(0, len(events), batch):
            t = time.perf_counter()
            for ev in events[i:i + batch]:
                p.produce(topic, key=ev["source"].encode(), value=msgpack.packb(ev))
            p.flush(30)
            lat.append(time.perf_counter() - t)
        c = ck.Consumer({"bootstrap.servers": servers, "group.id": "raw", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "fetch.wait.max.ms": 10})
        c.subscribe([topic])
        got = 0
        try:
            while got < len(events):
                msgs = [m for m in c.consume(batch, 5) if not m.error()]
                for m in msgs:
                    msgpack.unpackb(m.value())
                if msgs:
                    c.commit(asynchronous=True)
                got += len(msgs)
        finally:
            c.close()
        return lat
    return run


# --------------------------------------------------------------------------- fleet run
def fleet_router(namespace: str) -> None:
    """One router member (a child process of the fleet run) until SIGTERM."""
    from orgloop.runtime import Runtime
    from orgloop.spec import ActorSpec, RouteSpec, RuntimeSpec

    data = Path(tempfile.mkdtemp(prefix="orgloop-bench-router-"))
    spec = RuntimeSpec(actors=[ActorSpec("sink", "file", {"path": str(data / "unused.jsonl")})],
                       routes=[RouteSpec("r", "src-*", "sink")], data_dir=data, bus="redis",
                       bus_options={"url": REDIS, "namespace": namespace}, role="router", member=f"bench-{os.getpid()}")
    Runtime(spec).start().run_until_signal()


def fleet_run(routers: int, n: int, batch: int) -> dict[str, Any]:
    """Routed events/s of ``routers`` router processes (see the module docstring): ``n`` events are
    published first; the rate is taken over the steady part, from when every router has joined the fleet
    until a fifth of the backlog it found is left."""
    import redis

    from orgloop.fleet import open_store

    namespace = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    stream = f"orgloop:{namespace}:events"
    r = redis.Redis.from_url(REDIS)
    store = open_store("redis", {"url": REDIS}, namespace)
    bus = open_bus("redis", url=REDIS, namespace=namespace)
    events = make_events(n)
    for i in range(0, n, batch):
        bus.publish_many(events[i:i + batch])
    bus.close()
    procs = [subprocess.Popen([sys.executable, __file__, "--fleet-router", namespace]) for _ in range(routers)]
    try:
        deadline = time.monotonic() + 120
        while len(store.members()) < routers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the router members did not come up")
            time.sleep(0.01)
        t0, backlog = time.perf_counter(), r.xlen(stream)
        cpu0 = [_cpu(p.pid) for p in procs]
        while r.xlen(stream) > backlog // 5:
            time.sleep(0.005)
        wall, left = time.perf_counter() - t0, r.xlen(stream)
        cpu = sum(_cpu(p.pid) - c for p, c in zip(procs, cpu0))
        while r.xlen(stream) > 0:
            time.sleep(0.01)
        records = r.xlen(f"orgloop:{namespace}:deliveries")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        store.close()
        keys = list(r.scan_iter(f"orgloop:{namespace}:*"))
        if keys:
            r.delete(*keys)
    routed = backlog - left
    return {"routers": routers, "events": n, "measured": routed, "records": records, "events_per_s": routed / wall,
            "router_cpu_s_per_million": cpu / max(1, routed) * 1e6}


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fleet_rows(n: int, batch: int) -> list[dict[str, Any]]:
    rows = []
    for routers in (1, 2, 3):
        row = fleet_run(routers, n, batch)
        rows.append(row)
        print(f"fleet    {routers} router{'s' if routers > 1 else ' '} {row['events_per_s']:>10,.0f} ev/s routed  "
              f"router cpu {row['router_cpu_s_per_million']:6.1f} s/M  (over {row['measured']} events; "
              f"{row['records']} delivery records)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    ap.add_argument("--fleet", action="store_true", help="also the fleet run (1, 2, 3 router processes)")
    ap.add_argument("--fleet-only", action="store_true", help="only the fleet run")
    ap.add_argument("--fleet-router", metavar="NAMESPACE", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="bench/results/buses.json")
    args = ap.parse_args()
    if args.fleet_router:
        fleet_router(args.fleet_router)
        return
    n, n_single, batch = (2_000, 200, 100) if args.quick else (20_000, 1_000, 100)
    if args.fleet_only:
        print(f"load average at start: {os.getloadavg()}")
        fleet = fleet_rows(n * 10, batch)
        print(f"load average at end: {os.getloadavg()}")
        _write(Path(args.out).with_name("fleet.json"), {"fleet": fleet, "loadavg_end": os.getloadavg()})
        return
    tmp = Path(tempfile.mkdtemp(prefix="orgloop-bench-buses-"))
    rows: list[dict[str, Any]] = []
    print(f"load average at start: {os.getloadavg()}")
    with kafka_broker(tmp / "kafka") as broker:
        kafka_servers = f"127.0.0.1:{broker.port}"

        def ns() -> str:
            return f"bench-{uuid.uuid4().hex[:10]}"

        buses: list[tuple[str, Callable[[], Any], Callable[[list[dict[str, Any]], int], list[float]] | None]] = [
            ("memory", lambda: open_bus("memory"), None),
            ("filewal", lambda: open_bus("filewal", path=tmp / f"wal-{uuid.uuid4().hex}"), None),
            ("redis", lambda: open_bus("redis", url=REDIS, namespace=ns()), raw_redis),
            ("nats", lambda: open_bus("nats", url=NATS, namespace=ns()), raw_nats),
            ("kafka", lambda: open_bus("kafka", bootstrap_servers=kafka_servers, namespace=ns()),
             raw_kafka(kafka_servers)),
        ]
        for name, factory, raw in buses:
            for mode, count, b in (("batched", n, batch), ("per event", n_single, 1)):
                row: dict[str, Any] = {"bus": name, "mode": mode, "events": count}
                if raw is not None:
                    row["raw"] = measure(raw, count, b)
                row["orgloop"] = measure(bus_loop(factory), count, b)
                if raw is not None:
                    row["ratio"] = row["orgloop"]["events_per_s"] / row["raw"]["events_per_s"]
                rows.append(row)
                o = row["orgloop"]
                line = (f"{name:8s} {mode:9s} {o['events_per_s']:>10,.0f} ev/s  p50 {o['publish_p50_ms']:7.2f} ms"
                        f"  p99 {o['publish_p99_ms']:7.2f} ms  cpu {o['cpu_s_per_million']:6.1f} s/M")
                if raw is not None:
                    line += f"  | raw {row['raw']['events_per_s']:>10,.0f} ev/s  ratio {row['ratio']:.2f}"
                print(line, flush=True)
    fleet = fleet_rows(n * 10, batch) if args.fleet else None
    print(f"load average at end: {os.getloadavg()}")
    _write(Path(args.out), {"rows": rows, **({"fleet": fleet} if fleet else {}), "loadavg_end": os.getloadavg()})


def _write(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
