"""One member of a three-member fleet is cut off from the server (its veth link goes down, inside network
namespaces with the test's own Redis or NATS server): the others finish its unacked work and take over its source
lease; it never polls at the same time as the new holder, and after the link comes back it cannot write
the source's checkpoint over the new holder's."""
from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from support.netcut import NetLab
from support.servers import Server, nats_server, redis_server

from orgloop.fleet import open_store

from .members import Fleet, current_lease, overlapping_polls, stale_polls, wait_for, write_project

COUNT = 450


OPTIONS = {"nats": '{url: "nats://${FLEET_SERVER}", ack_wait: 2, storage: memory, publish_timeout: 1}',
           "redis": '{url: "redis://${FLEET_SERVER}/0", claim_idle: 2, publish_timeout: 1}'}


def _server(bus: str, tmp: Path, srv: str, links: list) -> Server:
    """The test's own server inside namespace ``srv``, listening on the server end of every link."""
    if bus == "nats":
        return nats_server(tmp / "nats", host=links[0].a_addr, netns=srv)      # 0.0.0.0 in a namespace
    server = redis_server(tmp / "redis", host=links[0].a_addr, netns=srv)
    at = server.argv.index("--bind") + 1
    server.argv[at:at] = [link.a_addr for link in links[1:]]
    return server


@pytest.mark.parametrize("bus", ["redis", "nats"])
def test_a_member_cut_off_from_the_server_loses_its_work_and_lease_to_the_others(namespace, bus):
    tmp = Path(tempfile.mkdtemp(prefix="olfleetcut-", dir="/tmp"))
    project = write_project(tmp / "proj", namespace, bus, count=COUNT, rate=100, dedup=True, bus_options=OPTIONS[bus])
    (project / "out").mkdir()
    fleet = Fleet(project, tmp / "home")
    try:
        with NetLab() as lab:
            srv = lab.namespace("srv")
            members = [lab.namespace(f"m{i}") for i in range(3)]
            links = [lab.link(srv, ns) for ns in members]
            server = _server(bus, tmp, srv.name, links).start()
            probe = lab.proxy(srv, ("127.0.0.1", server.port))      # the test's own way to the server
            store = open_store(bus, {"url": probe.url(bus)}, namespace)
            try:
                for i, (ns, link) in enumerate(zip(members, links)):
                    fleet.start(f"m{i}", netns=ns, FLEET_SERVER=f"{link.a_addr}:{server.port}")
                wait_for(lambda: len(store.members()) == 3, 60, fleet)
                wait_for(lambda: sum(len(v) for v in fleet.all_delivered().values()) >= COUNT // 3, 120, fleet)
                holder = current_lease(store)
                cut = next(i for i, m in enumerate(fleet.members) if fleet.member_id(m) == holder["holder"])
                links[cut].down()
                wait_for(lambda: len({e["n"] for e in _numbers(fleet)}) >= COUNT, 180, fleet)
                new_holder = current_lease(store, holder)
                # Keep it cut off until it failed to renew its lease twice: a member that went on polling
                # without a lease would have polled by then (its source needs no network to poll).
                stderr = project / "out" / f"stderr-m{cut}.txt"
                wait_for(lambda: stderr.read_text(errors="replace").count("cannot renew its lease") >= 2, 120, fleet)
                cut_status = _status(fleet, cut)
                links[cut].up()                       # it comes back: its lease is gone, its checkpoint refused
                wait_for(lambda: len(store.members()) == 3, 60, fleet)
                checkpoint = store.checkpoint("gen")
            finally:
                fleet.stop_all()
                store.close()
                server.stop()
    finally:
        delivered = fleet.all_delivered()
        polls = fleet.polls()
        shutil.rmtree(tmp, ignore_errors=True)
    assert {n["n"] for n in _numbers(fleet, delivered)} == set(range(COUNT))      # none lost
    assert new_holder["holder"] != holder["holder"] and checkpoint == str(COUNT)
    ids = Counter(e["id"] for v in delivered.values() for e in v)
    dups = {i for i, k in ids.items() if k > 1}
    cut_tag = fleet.members[cut].tag
    assert dups <= {e["id"] for e in delivered[cut_tag]}     # only what the cut member delivered unacked
    assert cut_status["healthy"] is False                  # /healthz of the cut member says why
    assert any(p.startswith("fleet store: ") for p in cut_status["problems"]), cut_status["problems"]
    assert overlapping_polls(polls) == []
    assert stale_polls(polls) == []
    assert {p["member"] for p in polls if p["epoch"] == new_holder["epoch"]} == {new_holder["holder"]}


def _numbers(fleet: Fleet, delivered: dict | None = None) -> list[dict]:
    delivered = delivered if delivered is not None else fleet.all_delivered()
    return [{"n": e["payload"]["n"], "id": e["id"]} for v in delivered.values() for e in v]


def _status(fleet: Fleet, index: int) -> dict:
    """The status of member ``index`` from its own control socket (files under members/<member-id>/)."""
    from orgloop.instance import read_instance

    (record,) = fleet.home.rglob(f"members/{fleet.member_id(fleet.members[index])}/runtime.json")
    inst = read_instance(record.parent)
    assert inst is not None
    return inst.request("GET", "/status", timeout=30)
