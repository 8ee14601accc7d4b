"""Child process of ``test_memory_bounds.py``: a fast source of ~1 KB events, one slow actor with a queue of
50, and RssAnon (anonymous memory: the WAL's pages and LMDB's map are file-backed) sampled while the
backlog builds up. Prints one JSON line. Run with the tests directory on PYTHONPATH (for ``support``)."""
import json
import sys
import threading
import time
from pathlib import Path

from orgloop import plugins
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec
from support.actors import slow_actor


def rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


SlowActor = slow_actor(0.001)                # 1 ms per event


def main() -> None:
    data, policy, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    plugins.register("actors", "memory-slow", SlowActor)
    delivery = DeliverySpec(queue_depth=50) if policy == "default" else DeliverySpec(queue_depth=50,
                                                                                     queue_policy=policy)
    spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": count, "payload_size": 1000},
                                           poll_interval=0.01)],
                       actors=[ActorSpec("slow", "memory-slow")],
                       routes=[RouteSpec("r", "gen", "slow", delivery=delivery)],
                       data_dir=data, base_dir=data, bus_options={"segment_size": 4 << 20})
    rt = Runtime(spec).start()
    deadline = time.monotonic() + 120
    while rt.events_published < 2_000 and time.monotonic() < deadline:
        time.sleep(0.005)
    base = rss_anon_kib()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], rss_anon_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    while rt.events_published < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)                     # the router keeps fetching what the lane has room for
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], rss_anon_kib())
    print(json.dumps({"policy": rt.lanes["slow"].queue.policy, "base_kib": base, "peak_kib": peak[0],
                      "published": rt.events_published, "fetched": rt.bus.fetched,
                      "delivered": SlowActor.delivered, "dead_letters": rt.dlq.count(),
                      "reasons": sorted({e["reason"] for _i, e in rt.dlq.entries()})}), flush=True)
    rt.stop(drain_timeout=0.1)


if __name__ == "__main__":
    main()
