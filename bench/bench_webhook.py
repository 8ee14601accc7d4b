"""Webhook ingest: 32 keep-alive clients post signed 1 KiB events to the ingress listener, each answer
coming only once its event is durable (FileWalBus, ``sync=always``), against a bare Python HTTP server
(the same ``http.server`` stack, HTTP/1.1 keep-alive) that reads the body and answers 200 without storing.

The server under test runs in this process; the 32 client threads run in a child process (so client work
does not share the server's interpreter lock). Runs alternate bare / orgloop, ``--runs`` times each, every
run ``--seconds`` long after a short warm-up; the table shows the median of each figure and the median of
the per-pair throughput ratios. Targets: orgloop ≥ 0.5 × bare requests/s, orgloop p99 ≤ 50 ms.

Run: ``python bench/bench_webhook.py [--quick] [--out bench/results/webhook.json]``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CLIENTS = 32
SECRET = "bench-secret"


# ------------------------------------------------------------------------------------------------ client side
def client_main(port: int, seconds: float, warmup: float) -> None:
    """Child process: CLIENTS threads post for warmup+seconds; prints JSON {count, latencies_ms} of the timed part."""
    from orgloop.connectors.ingress import sign

    bodies = []
    for i in range(64):
        doc = {"type": "bench", "n": i, "data": ""}
        doc["data"] = "x" * (1024 - len(json.dumps(doc)))
        raw = json.dumps(doc).encode()
        bodies.append((raw, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, raw)}))
    start = time.perf_counter() + warmup
    stop = start + seconds
    results: list[list[float]] = []
    errors = [0]

    def run(k: int) -> None:
        lat: list[float] = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = k
        while True:
            body, headers = bodies[i % 64]
            i += 1
            t0 = time.perf_counter()
            if t0 >= stop:
                break
            try:
                conn.request("POST", "/webhook/bench", body, headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            t1 = time.perf_counter()
            if not ok:
                errors[0] += 1
            elif t0 >= start:
                lat.append((t1 - t0) * 1000)
        conn.close()
        results.append(lat)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = [x for part in results for x in part]
    print(json.dumps({"count": len(lat), "seconds": seconds, "errors": errors[0], "latencies_ms": lat}))


def drive(port: int, seconds: float, warmup: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--client", str(port), str(seconds), str(warmup)],
                         check=True, capture_output=True, text=True, timeout=seconds + warmup + 120)
    data = json.loads(out.stdout)
    lat = sorted(data["latencies_ms"])
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    return {"rps": data["count"] / seconds, "p50_ms": q[49], "p99_ms": q[98], "errors": data["errors"],
            "requests": data["count"]}


# ------------------------------------------------------------------------------------------------ servers
class _Bare(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = b'{"ok":true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _BareServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128          # as the ingress listener: 32 clients connect at once


def run_bare(seconds: float, warmup: float) -> dict[str, Any]:
    server = _BareServer(("127.0.0.1", 0), _Bare)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return drive(server.server_address[1], seconds, warmup)
    finally:
        server.shutdown()
        server.server_close()


class _Noop:
    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        pass

    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _histogram_p99(counts: list[int]) -> float | None:
    """The upper bound (ms) of the WAL fdatasync-histogram bucket holding the 99th percentile (None: beyond 50 ms)."""
    from orgloop.wal._wal_py import SYNC_BUCKETS_US

    total, seen = sum(counts), 0
    for bound, n in zip(list(SYNC_BUCKETS_US) + [None], counts):
        seen += n
        if seen >= 0.99 * total:
            return None if bound is None else bound / 1000
    return None


def run_orgloop(seconds: float, warmup: float) -> dict[str, Any]:
    from orgloop.runtime import Runtime
    from orgloop.spec import ActorSpec, RouteSpec, RuntimeSpec, SourceSpec

    with tempfile.TemporaryDirectory(prefix="bench-webhook-", dir=os.environ.get("BENCH_DIR")) as tmp:
        spec = RuntimeSpec(sources=[SourceSpec("bench", "webhook", {"secret": SECRET})],
                           actors=[ActorSpec("noop", "bench-noop")], routes=[RouteSpec("r", "bench", "noop")],
                           data_dir=Path(tmp), base_dir=Path(tmp), bus="filewal",
                           bus_options={"sync": "always"}, ingress_port=0)
        rt = Runtime(spec).start()
        try:
            result = drive(rt.ingress_port, seconds, warmup)
            wal = rt.bus.stats()["wal"]
            result["fdatasyncs"] = wal["syncs"]
            result["fdatasync_ms"] = wal["sync_seconds"] * 1000 / max(wal["syncs"], 1)
            result["fdatasync_p99_ms"] = _histogram_p99(wal["sync_histogram"])
            result["events_published"] = rt.events_published
            return result
        finally:
            rt.stop(drain_timeout=5.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one short run of each")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", default="bench/results/webhook.json")
    args = ap.parse_args()
    from orgloop import plugins

    plugins.register("actors", "bench-noop", _Noop)
    runs, seconds, warmup = (1, 2.0, 0.5) if args.quick else (args.runs, args.seconds, 1.0)
    load_before = os.getloadavg()
    bare: list[dict[str, Any]] = []
    ours: list[dict[str, Any]] = []
    for _ in range(runs):
        bare.append(run_bare(seconds, warmup))
        ours.append(run_orgloop(seconds, warmup))
    load_after = os.getloadavg()

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    ratio = statistics.median(o["rps"] / b["rps"] for o, b in zip(ours, bare))
    p99 = med(ours, "p99_ms")
    rows = [("bare http.server (200, no storage)", med(bare, "rps"), med(bare, "p50_ms"), med(bare, "p99_ms"), ""),
            ("orgloop ingress (signed, sync=always)", med(ours, "rps"), med(ours, "p50_ms"), p99,
             f"{ratio:.2f}x bare (target >= 0.5); p99 target <= 50 ms")]
    print(f"{CLIENTS} keep-alive clients, 1 KiB signed JSON, {runs} x {seconds:g}s runs (median)")
    print(f"{'server':<40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  notes")
    for name, rps, p50, p99_, note in rows:
        print(f"{name:<40} {rps:>9,.0f} {p50:>8.2f} {p99_:>8.2f}  {note}")
    syncs = med(ours, "fdatasyncs")
    events = med(ours, "events_published")
    p99s = [r["fdatasync_p99_ms"] for r in ours]
    print(f"orgloop: {events / max(syncs, 1):.1f} events per fdatasync (group commit), fdatasync mean "
          f"{med(ours, 'fdatasync_ms'):.2f} ms, p99 <= " + ", ".join("> 50" if p is None else f"{p:g}" for p in p99s)
          + f" ms per run; errors: bare {sum(r['errors'] for r in bare)}, orgloop {sum(r['errors'] for r in ours)}")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bare": bare, "orgloop": ours, "ratio": ratio, "p99_ms": p99,
                               "targets_met": ratio >= 0.5 and p99 <= 50, "loadavg_before": load_before,
                               "loadavg_after": load_after}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
