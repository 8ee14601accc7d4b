"""The local HTTP control endpoint (127.0.0.1 only, off by default).

``GET /healthz`` 200/503 (reflects WAL and breaker health: never green while the log is broken),
``GET /metrics`` Prometheus text, ``GET /status`` JSON, ``GET /state`` the plan state the runtime runs,
``POST /apply`` reconcile to a new plan without a restart (see :mod:`orgloop.reconcile`).
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orgloop.wal._wal_py import SYNC_BUCKETS_US

__all__ = ["ControlServer", "render_metrics"]


def _label(value: Any) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(lines: list[str], name: str, kind: str, help_: str, samples: list[tuple[dict[str, Any], float]]) -> None:
    lines.append(f"# HELP {name} {help_}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")


def render_metrics(runtime: Any) -> str:
    """Prometheus text exposition of the runtime's counters."""
    st = runtime.status()
    lines: list[str] = []
    _metric(lines, "orgloop_events_in_total", "counter", "Events published by sources.",
            [({}, st["events_published"])])
    _metric(lines, "orgloop_events_routed_total", "counter", "Events the router handled.", [({}, st["router_events"])])
    _metric(lines, "orgloop_events_acked_total", "counter", "Events fully handled and acked on the bus.",
            [({}, st["acked"])])
    per_route = st["routes"]
    for key, name, help_ in (("delivered", "orgloop_delivered_total", "Successful deliveries."),
                             ("retried", "orgloop_retried_total", "Delivery retries."),
                             ("failed", "orgloop_delivery_failures_total", "Failed delivery attempts."),
                             ("dead_lettered", "orgloop_dead_lettered_total", "Events sent to dead letters.")):
        _metric(lines, name, "counter", help_,
                [({"route": r["name"], "actor": r["actor"]}, r.get(key, 0)) for r in per_route])
    _metric(lines, "orgloop_log_entries_dropped_total", "counter",
            "Log entries dropped because the loggers could not keep up for too long.",
            [({}, st.get("log_entries_dropped", 0))])
    _metric(lines, "orgloop_dropped_total", "counter", "Events pushed out of full queues (backpressure).",
            [({"actor": a["actor"]}, a["dropped"]) for a in st["actors"]])
    _metric(lines, "orgloop_queue_depth", "gauge", "Events waiting in an actor's queue.",
            [({"actor": a["actor"]}, a["queue_depth"]) for a in st["actors"]])
    _metric(lines, "orgloop_breaker_open", "gauge", "1 while a route's circuit breaker is not closed.",
            [({"route": r["name"]}, 0 if r.get("breaker", "closed") == "closed" else 1) for r in per_route])
    _metric(lines, "orgloop_dead_letters", "gauge", "Entries in the dead-letter store.", [({}, st["dead_letters"])])
    _metric(lines, "orgloop_healthy", "gauge", "1 when healthy.", [({}, 1 if st["healthy"] else 0)])
    wal = getattr(runtime.bus, "wal", None)
    if wal is not None:
        ws = wal.stats()
        _metric(lines, "orgloop_wal_bytes", "gauge", "Bytes of WAL segments kept.", [({}, ws["bytes"])])
        _metric(lines, "orgloop_wal_lag", "gauge", "Records appended but not yet acked.", [({}, ws["unacked"])])
        _metric(lines, "orgloop_wal_lost_records_total", "counter", "Unacked records lost to damage.",
                [({}, ws["lost_records"])])
        lines.append("# HELP orgloop_wal_fsync_seconds fdatasync latency.")
        lines.append("# TYPE orgloop_wal_fsync_seconds histogram")
        cum = 0
        for bound, count in zip(list(SYNC_BUCKETS_US) + [None], ws["sync_histogram"]):
            cum += count
            le = "+Inf" if bound is None else f"{bound / 1e6:g}"
            lines.append(f'orgloop_wal_fsync_seconds_bucket{{le="{le}"}} {cum}')
        lines.append(f"orgloop_wal_fsync_seconds_sum {ws['sync_seconds']}")
        lines.append(f"orgloop_wal_fsync_seconds_count {ws['syncs']}")
    return "\n".join(lines) + "\n"


class ControlServer:
    """The HTTP endpoint on a loopback address; ``port=0`` picks a free port (then read ``.port``)."""

    def __init__(self, runtime: Any, port: int, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the control endpoint listens on loopback only")
        rt = runtime

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # keep the terminal quiet
                pass

            def _send(self, code: int, body: str, ctype: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, problems = rt.healthy()
                    self._send(200 if ok else 503, json.dumps({"ok": ok, "problems": problems}) + "\n",
                               "application/json")
                elif path == "/metrics":
                    self._send(200, render_metrics(rt), "text/plain; version=0.0.4")
                elif path == "/status":
                    self._send(200, json.dumps(rt.status(), default=str) + "\n", "application/json")
                elif path == "/state":
                    self._send(200, json.dumps({"state": rt.applied_state}) + "\n", "application/json")
                else:
                    self._send(404, json.dumps({"error": f"no such endpoint {path}"}) + "\n", "application/json")

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                from orgloop.reconcile import ReconcileError, apply_request

                path = self.path.split("?", 1)[0]
                if path != "/apply":
                    self._send(404, json.dumps({"error": f"no such endpoint {path}"}) + "\n", "application/json")
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                    code, result = 200, apply_request(rt, body)
                except ReconcileError as exc:
                    code, result = 409, {"error": str(exc)}
                except ValueError as exc:
                    code, result = 400, {"error": f"bad request: {exc}"}
                except Exception as exc:  # a plug-in failed while being started: report it, keep serving
                    code, result = 500, {"error": f"{type(exc).__name__}: {exc}"}
                self._send(code, json.dumps(result, default=str) + "\n", "application/json")

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="orgloop-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
