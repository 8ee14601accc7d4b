"""Network cuts: the harness itself (tests/support/netcut.py), then each server bus behind a cut, a
blackhole and a downed veth link (issue 12 "Connection loss": test it by cutting the network)."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from support.netcut import NetLab, TcpProxy
from support.pipeline import wait_until

from orgloop.bus import BusClosedError

from .conformance import events


class EchoServer:
    """A loopback echo server for the harness's own tests."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


# ---------------------------------------------------------------------- the harness
def test_the_proxy_forwards_cuts_blackholes_delays_and_restores(echo):
    with TcpProxy(("127.0.0.1", echo.port)) as proxy:
        a = socket.create_connection(proxy.address, 5)
        a.settimeout(5)
        assert roundtrip(a, b"x" * 200_000) == b"x" * 200_000 and proxy.connections == 1

        proxy.blackhole()                       # open, silent, no error
        a.settimeout(0.5)
        a.sendall(b"held")
        with pytest.raises(socket.timeout):
            a.recv(10)
        late = socket.create_connection(proxy.address, 5)     # accepted, then held silent
        late.settimeout(0.5)
        late.sendall(b"late")
        with pytest.raises(socket.timeout):
            late.recv(10)
        proxy.restore()                         # what was held flows on
        a.settimeout(5)
        late.settimeout(5)
        assert a.recv(10) == b"held" and late.recv(10) == b"late"

        proxy.delay(0.3)
        started = time.monotonic()
        assert roundtrip(a, b"slow") == b"slow"
        assert time.monotonic() - started >= 0.6  # 0.3 s each way (a lower bound: never flaky)
        proxy.restore()

        proxy.cut()                             # existing connections are reset ...
        with pytest.raises(OSError):
            roundtrip(a, b"gone")
            roundtrip(a, b"gone")
        with pytest.raises(OSError):            # ... and so are new ones
            with socket.create_connection(proxy.address, 5) as fresh:
                roundtrip(fresh, b"no")
        assert proxy.connections == 0
        proxy.restore()
        b = socket.create_connection(proxy.address, 5)
        b.settimeout(5)
        assert roundtrip(b, b"back") == b"back"
        for s in (a, late, b):
            s.close()
    assert proxy.connections == 0


def test_a_netlab_link_goes_down_and_up_and_everything_is_removed(tmp_path):
    with NetLab() as lab:
        srv, member = lab.namespace("srv"), lab.namespace("m1")
        link = lab.link(srv, member)
        script = tmp_path / "echo.py"
        script.write_text(
            "import socket, sys\n"
            "s = socket.create_server((sys.argv[1], 0)); print(s.getsockname()[1], flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.sendall(c.recv(100)); c.close()\n")
        server = srv.popen([sys.executable, str(script), "0.0.0.0"], stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
        probe = (f"import socket; c = socket.create_connection(('{link.a_addr}', {port}), 2); "
                 "c.sendall(b'hi'); print(c.recv(10).decode())")
        assert member.run([sys.executable, "-c", probe]).strip() == "hi"
        with lab.proxy(srv, ("127.0.0.1", port)) as proxy:     # the test's own way in
            with socket.create_connection(proxy.address, 5) as c:
                c.settimeout(5)
                assert roundtrip(c, b"yo") == b"yo"
        link.down()
        with pytest.raises(Exception, match="unreachable|timed out"):
            member.run([sys.executable, "-c", probe])
        link.up()
        assert member.run([sys.executable, "-c", probe]).strip() == "hi"
        names = [ns.name for ns in lab.namespaces]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names) and server.poll() is not None


# ---------------------------------------------------------------------- the buses behind a proxy
PUBLISH_TIMEOUT = 1.5      # seconds a publish waits for the server in these tests
SOCKET_TIMEOUT = 1.0       # seconds of silence before a connection counts as lost


class Rig:
    """One bus kind: the test's own server, a TcpProxy in front of it, and buses that talk to the proxy.

    A runtime's fleet state (leases, checkpoints) lives in a Redis of its own, outside the proxy: what is
    cut is the bus. With the lease on the cut server too, the source would stop polling when its lease can
    no longer be renewed, and whether one more publish is tried (and fails) before that would be a race.
    """

    def __init__(self, kind: str, tmp_path) -> None:
        from support.servers import free_port, kafka_broker, nats_server, redis_server

        self.kind = kind
        self.fleet_store = redis_server(tmp_path / "store").start()
        if kind == "kafka":          # clients use the advertised address: the broker advertises the proxy
            port = free_port()
            self.proxy = TcpProxy(("127.0.0.1", port))
            self.server = kafka_broker(tmp_path / "kafka", port=port, advertised=self.proxy.address).start()
        else:
            self.server = (redis_server if kind == "redis" else nats_server)(tmp_path / kind).start()
            self.proxy = TcpProxy(("127.0.0.1", self.server.port))

    def options(self, **extra) -> dict:
        """``bus_options`` reaching the server through the proxy, with short timeouts."""
        opts = {"publish_timeout": PUBLISH_TIMEOUT, "socket_timeout": SOCKET_TIMEOUT, **extra}
        if self.kind == "kafka":
            return {"bootstrap_servers": f"127.0.0.1:{self.proxy.port}", "partitions": 1, **opts}
        # What the server sent into a connection that was then lost comes back after ack_wait (NATS) or
        # claim_idle (Redis): short here, so the tests need not wait the default 30 s.
        again = {"ack_wait": 3.0} if self.kind == "nats" else {"claim_idle": 3.0}
        return {"url": self.proxy.url(self.kind), **again, **opts}

    def bus(self, **extra):
        from orgloop.bus import open_bus

        return open_bus(self.kind, **self.options(namespace=f"cut-{uuid.uuid4().hex[:8]}", **extra))

    def fleet(self):
        """The ``runtime.fleet`` of a runtime on this bus."""
        from orgloop.spec import FleetSpec

        return FleetSpec(store=f"redis://127.0.0.1:{self.fleet_store.port}/0")

    def close(self) -> None:
        self.proxy.close()
        self.server.stop()
        self.fleet_store.stop()


@pytest.fixture(params=["redis", "nats", "kafka"])
def rig(request, tmp_path):
    r = Rig(request.param, tmp_path)
    yield r
    r.close()


class Taken:
    """What a consumer fetched (without acking yet): refs and payload numbers, one ``round()`` at a time."""

    def __init__(self, bus) -> None:
        self.bus = bus
        self.refs: list = []
        self.seen: list[int] = []

    def round(self) -> None:
        r, evs = self.bus.fetch(100, timeout=0.2)
        self.refs += r
        self.seen += [e["payload"]["n"] for e in evs]

    def until(self, want: set[int], timeout: float = 60.0) -> bool:
        return wait_until(lambda: self.round() or want.issubset(self.seen), timeout)


def publish_until_stored(bus, batch: list[dict], timeout: float = 60.0):
    """What a source does after a failed publish: keep its checkpoint and publish the same events again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bus.publish_many([dict(e) for e in batch])
        except BusClosedError:
            raise
        except Exception:
            if time.monotonic() >= deadline:
                raise


@pytest.mark.parametrize("outage", ["cut", "blackhole"])
def test_an_outage_fails_publishes_cleanly_shows_in_health_and_loses_nothing(rig, outage):
    bus = rig.bus()
    try:
        bus.publish_many(events(20))
        before = Taken(bus)
        assert before.until(set(range(20))) and sorted(before.seen) == list(range(20))
        bus.ack_many(before.refs[:10])                   # ten finished, ten still held across the outage
        if rig.kind != "kafka":   # NATS sends acks without waiting for them: an ack cut off means a redelivery
            assert wait_until(lambda: len([r for rs, _ in bus.unacked() for r in rs]) == 10, timeout=10)
        assert bus.problems() == [] and bus.stats()["connected"] is True

        getattr(rig.proxy, outage)()
        batch = events(5, start=20)
        started = time.monotonic()
        with pytest.raises(Exception) as failed:         # the publish waits, then fails: the source retries
            bus.publish_many([dict(e) for e in batch])
        assert time.monotonic() - started >= PUBLISH_TIMEOUT
        assert not isinstance(failed.value, BusClosedError) and not bus.closed
        after = Taken(bus)                               # a consumer notices too (and keeps what it gets)
        assert wait_until(lambda: after.round() or bus.problems() != [], timeout=30)
        assert "unreachable" in bus.problems()[0] and bus.stats()["connected"] is False

        rig.proxy.restore()                              # reconnects by itself, without new traffic
        assert wait_until(lambda: after.round() or bus.problems() == [], timeout=30), bus.problems()
        st = bus.stats()
        assert st["connected"] is True and st["reconnects"] >= 1
        publish_until_stored(bus, batch)                # the source publishes the same events (ids) again
        bus.publish_many(events(5, start=25))
        bus.ack_many(before.refs[10:])                   # what was held across the outage is finished now
        assert after.until(set(range(20, 30)))            # every event delivered at least once
        assert set(after.seen) <= set(range(10, 30)), sorted(after.seen)   # nothing finished came back
        bus.ack_many(after.refs)
        if rig.kind != "kafka":      # Kafka keeps one position per partition: no unacked set to compare
            assert wait_until(lambda: not [r for rs, _ in bus.unacked() for r in rs], timeout=30)
    finally:
        bus.close()


@pytest.mark.parametrize("outage", ["cut", "blackhole"])
def test_a_consumer_alone_notices_the_outage_and_its_end(rig, outage):
    """No publish to fail: the consumer's own reads (and pings, probes) must show the outage and its end."""
    bus = rig.bus()
    try:
        bus.publish_many(events(3))
        taken = Taken(bus)
        assert taken.until({0, 1, 2})
        getattr(rig.proxy, outage)()
        assert wait_until(lambda: taken.round() or bus.problems() != [], timeout=30)
        assert bus.stats()["connected"] is False
        rig.proxy.restore()
        assert wait_until(lambda: taken.round() or bus.problems() == [], timeout=30), bus.problems()
        assert bus.stats()["reconnects"] >= 1
        bus.ack_many(taken.refs)
        assert set(taken.seen) == {0, 1, 2}
    finally:
        bus.close()


@pytest.mark.parametrize("rig", ["redis", "nats"], indirect=True)     # Kafka's group join would take long
def test_a_slow_network_is_no_outage(rig):
    """Every byte 0.3 s late (less than socket_timeout): no outage, nothing lost, order kept."""
    bus = rig.bus()
    try:
        bus.publish_many(events(1))                      # the consumer group and the stream exist
        rig.proxy.delay(0.3)
        bus.publish_many(events(20, start=1))
        taken = Taken(bus)
        assert taken.until(set(range(21)))
        bus.ack_many(taken.refs)
        assert taken.seen == list(range(21))
        assert bus.problems() == [] and bus.stats()["reconnects"] == 0
    finally:
        bus.close()


def test_nats_an_outage_shorter_than_the_pings_ends_by_itself(tmp_path):
    """A publish timed out, but the connection never went stale (socket_timeout is long): a probe, not a
    reconnect, must tell that the server answers again."""
    rig = Rig("nats", tmp_path)
    bus = rig.bus(socket_timeout=60)
    try:
        rig.proxy.blackhole()
        with pytest.raises(Exception):
            bus.publish_many(events(1))
        assert bus.problems() != []
        rig.proxy.restore()
        assert wait_until(lambda: bus.fetch(10, timeout=0.2) is None or bus.problems() == [], timeout=30)
        assert bus.stats()["reconnects"] == 1
    finally:
        bus.close()
        rig.close()


# ---------------------------------------------------------------------- a member cut off by its link
CONSUMER = """
import json, os, sys, time
from orgloop.bus import open_bus

kind, url, out, status = sys.argv[1:5]
bus = open_bus(kind, url=url, namespace="netns", socket_timeout=1.0, publish_timeout=5,
               **({"consumer": "m1"} if kind == "redis" else {}))

def handle(refs, evs):
    with open(out, "a") as f:
        f.write("".join(f"{e['payload']['n']}\\n" for e in evs))
    bus.ack_many(refs)

bus.subscribe(None, handle)
while True:
    st = bus.stats()
    with open(status + ".tmp", "w") as f:
        json.dump({"problems": bus.problems(), "connected": st["connected"], "reconnects": st["reconnects"]}, f)
    os.replace(status + ".tmp", status)
    time.sleep(0.05)
"""


@pytest.mark.parametrize("kind", ["redis", "nats"])
def test_a_consumer_process_whose_veth_link_goes_down_and_up_catches_up(tmp_path, kind):
    import json

    from support.servers import nats_server, redis_server

    from orgloop.bus import open_bus

    out, status, script = tmp_path / "out", tmp_path / "status.json", tmp_path / "consumer.py"
    script.write_text(CONSUMER)

    def received() -> set[int]:
        return {int(x) for x in out.read_text().split()} if out.exists() else set()

    def state() -> dict:
        return json.loads(status.read_text()) if status.exists() else {"connected": None}

    with NetLab() as lab, open(tmp_path / "consumer.log", "wb") as log:
        srv, member = lab.namespace("srv"), lab.namespace("m1")
        link = lab.link(srv, member)
        server = (redis_server if kind == "redis" else nats_server)(tmp_path / kind, host=link.a_addr,
                                                                    netns=srv.name).start()
        try:
            proc = member.popen([sys.executable, str(script), kind, f"{kind}://{link.a_addr}:{server.port}",
                                 str(out), str(status)], stdout=log, stderr=subprocess.STDOUT)
            proxy = lab.proxy(srv, ("127.0.0.1", server.port))       # the test publishes from outside
            with open_bus(kind, url=proxy.url(kind), namespace="netns", publish_timeout=30) as pub:
                pub.publish_many(events(20))
                assert wait_until(lambda: received() >= set(range(20)), timeout=60)
                assert state()["connected"] is True
                link.down()
                assert wait_until(lambda: state()["connected"] is False, timeout=30)
                assert "unreachable" in state()["problems"][0]
                pub.publish_many(events(20, start=20))            # the server is fine: only the member is cut off
                assert not wait_until(lambda: received() & set(range(20, 40)), timeout=1.0)
                link.up()
                assert wait_until(lambda: received() >= set(range(40)), timeout=60)
                assert wait_until(lambda: state()["connected"] is True and state()["problems"] == [], timeout=30)
                assert state()["reconnects"] >= 1 and proc.poll() is None
        finally:
            server.stop()


# ---------------------------------------------------------------------- what an operator sees
def test_healthz_and_metrics_show_an_outage_and_every_event_arrives(rig, tmp_path):
    import json
    import re
    import urllib.error

    from support.pipeline import fetch

    from orgloop.runtime import Runtime
    from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec

    spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": 300, "rate": 50}, poll_interval=0.05)],
                       actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
                       routes=[RouteSpec("r", "gen", "sink", delivery=DeliverySpec(queue_policy="block"))],
                       data_dir=tmp_path / "data", base_dir=tmp_path, bus=rig.kind, control_port=0,
                       name=f"cut-{uuid.uuid4().hex[:8]}", bus_options=rig.options(), fleet=rig.fleet())
    rt = Runtime(spec).start()
    base = f"http://127.0.0.1:{rt._control.port}"

    def health() -> tuple[int, dict]:
        try:
            return 200, json.loads(fetch(base + "/healthz"))
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())

    def metric(name: str) -> float:
        (value,) = re.findall(rf'^{name}{{bus="{rig.kind}"}} (\S+)$', fetch(base + "/metrics").decode(), re.M)
        return float(value)

    def delivered() -> set[int]:
        path = tmp_path / "out.jsonl"
        return {json.loads(x)["payload"]["n"] for x in path.read_text().splitlines()} if path.exists() else set()

    try:
        assert wait_until(lambda: rt.events_published >= 30, timeout=60)    # the source is still at work
        assert health()[0] == 200 and metric("orgloop_bus_connected") == 1
        rig.proxy.cut()
        assert wait_until(lambda: health()[0] == 503, timeout=30)
        assert any("unreachable" in p for p in health()[1]["problems"])
        assert metric("orgloop_bus_connected") == 0
        assert wait_until(lambda: rt.source_errors >= 1, timeout=30)    # a publish failed: checkpoint kept
        rig.proxy.restore()
        assert wait_until(lambda: health()[0] == 200, timeout=30), health()
        assert wait_until(lambda: delivered() == set(range(300)), timeout=60), sorted(set(range(300)) - delivered())
        assert metric("orgloop_bus_connected") == 1 and metric("orgloop_bus_reconnects_total") >= 1
    finally:
        rt.stop()
