"""Network cuts for tests (decisions.md "Tests against real servers"): a loopback TCP proxy the test
controls, and network namespaces joined by veth links that the test takes down and up.

**TcpProxy** — a proxy on a free loopback port in front of a server address; one selector thread::

    with TcpProxy(("127.0.0.1", server.port)) as proxy:
        bus = RedisBus(url=proxy.url("redis"))     # the client talks to the proxy
        proxy.cut()          # reset every connection (RST both ways) and reset each new one at once
        proxy.blackhole()    # keep connections open but forward nothing either way; new connections are
                             # accepted and held silent: the partition where nothing errors
        proxy.delay(0.2)     # forward every chunk read from now on 0.2 s late (both directions)
        proxy.restore()      # forward normally again: blackholed bytes (kept in the socket buffers, as
                             # TCP retransmission would) flow on, held connections reach the server

The control calls return once the proxy thread applied them. ``proxy.accepted`` counts connections
taken, ``proxy.connections`` is how many are open. At most ``max_connections`` are open (more are
reset). ``TcpProxy(target, netns="name")`` connects to ``target`` *inside* that network namespace while
listening on 127.0.0.1 of the test's own namespace: this is how a test reaches a server it started in a
namespace (the shared servers bind 127.0.0.1 and cannot be reached from one).

**NetLab** — network namespaces with veth links, all removed on exit (processes left in them are
killed, then the namespaces deleted, even when the test failed; stale labs of dead test processes are
swept at the next start). Needs root (CI runs as root): without it :class:`NetnsError` is raised, never
a skip::

    with NetLab() as lab:
        srv, member = lab.namespace("srv"), lab.namespace("m1")
        link = lab.link(srv, member)            # link.a_addr (in srv) <-> link.b_addr (in member), a /24
        server = redis_server(tmp, host=link.a_addr, netns=srv.name).start()  # or nats_server(...)
        proc = member.popen([sys.executable, "consumer.py", f"redis://{link.a_addr}:{server.port}"])
        probe = lab.proxy(srv, ("127.0.0.1", server.port))   # the test's own way in (a TcpProxy)
        link.down()          # the member's end goes down: its packets go nowhere, nothing is reset
        link.up()
        member.run(["ip", "addr"])              # a short command in the namespace (checked)
        in_netns(srv.name, fn, *args)            # run fn on a thread that lives in the namespace

Every namespace has its loopback up. Addresses are 10.77.<link>.1/.2 and exist only inside the lab's
namespaces; nothing is added to the test's own namespace. Names are unique per lab
(``olnc-<pid>-<n>-<label>``; veth devices ``nc<pid hex><n><k>a|b``).
"""
from __future__ import annotations

import collections
import ctypes
import itertools
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import Any, Callable, TypeVar

__all__ = ["TcpProxy", "NetLab", "Netns", "Link", "NetnsError", "in_netns", "require_root"]

T = TypeVar("T")
_CHUNK = 65536
_BUFFER_LIMIT = 1 << 20          # bytes queued toward one side before the proxy stops reading the other


def _reset(sock: socket.socket | None) -> None:
    """Close ``sock`` with an RST (linger 0) rather than a FIN."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Conn:
    """One proxied connection: the client's socket, the server's (None while held), and per side the
    chunks waiting to be written to it as ``[due, bytes]``."""

    __slots__ = ("client", "upstream", "out", "eof")

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.out: dict[socket.socket, collections.deque[list[Any]]] = {client: collections.deque()}
        self.eof: set[socket.socket] = set()        # sides that closed their sending half

    def peer(self, sock: socket.socket) -> socket.socket | None:
        return self.upstream if sock is self.client else self.client

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None]

    def queued(self, sock: socket.socket) -> int:
        return sum(len(c[1]) for c in self.out.get(sock, ()))


class TcpProxy:
    """A loopback TCP proxy in front of ``target`` that the test can cut, blackhole, delay and restore."""

    def __init__(self, target: tuple[str, int], *, netns: str | None = None, host: str = "127.0.0.1",
                 max_connections: int = 64, connect_timeout: float = 2.0) -> None:
        self.target = target
        self.netns = netns
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._listener = socket.create_server((host, 0), backlog=max_connections)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._mode = "forward"            # forward | cut | blackhole
        self._delay = 0.0
        self._conns: list[_Conn] = []
        self._owner: dict[socket.socket, _Conn] = {}
        self._commands: collections.deque[tuple[Callable[[], None], threading.Event]] = collections.deque()
        self._stopping = False
        self._error: BaseException | None = None
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ control (any thread)
    def url(self, scheme: str) -> str:
        """``scheme://host:port`` of the proxy, for a client to connect to."""
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def connections(self) -> int:
        return len(self._conns)

    @property
    def mode(self) -> str:
        return "delay" if self._mode == "forward" and self._delay else self._mode

    def cut(self) -> None:
        """Reset every connection (RST to both ends) and reset new ones as soon as they are accepted."""
        def do() -> None:
            self._mode = "cut"
            for conn in list(self._conns):
                self._drop(conn)
        self._control(do)

    def blackhole(self) -> None:
        """Forward nothing in either direction, keep every connection open, hold new ones silent."""
        def do() -> None:
            self._mode = "blackhole"
        self._control(do)

    def delay(self, seconds: float) -> None:
        """Forward normally, but each chunk read from now on ``seconds`` late."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")

        def do() -> None:
            self._mode, self._delay = "forward", seconds
        self._control(do)

    def restore(self) -> None:
        """Forward normally and at once again; connections held during a blackhole reach the server."""
        def do() -> None:
            self._mode, self._delay = "forward", 0.0
            for conn in list(self._conns):
                if conn.upstream is None:
                    self._connect_upstream(conn)
        self._control(do)

    def close(self) -> None:
        """Stop the thread and close every socket."""
        if self._thread.is_alive():
            self._stopping = True
            self._wake()
            self._thread.join(10)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _control(self, fn: Callable[[], None]) -> None:
        done = threading.Event()
        self._commands.append((fn, done))
        self._wake()
        if not done.wait(10):
            raise RuntimeError(f"tcp proxy on port {self.port} did not answer: {self._error!r}")

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:      # the buffer is full of wake-ups already
            pass

    # ------------------------------------------------------------------ the proxy thread
    def _run(self) -> None:
        if self.netns is not None:
            _enter_netns(self.netns)      # only upstream sockets are made here: they live in the namespace
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        registered: dict[socket.socket, int] = {}
        try:
            while not self._stopping:
                timeout = self._sync(sel, registered)
                for key, mask in sel.select(timeout):
                    sock = key.fileobj
                    if sock is self._listener:
                        self._accept()
                    elif sock is self._wake_r:
                        try:
                            self._wake_r.recv(4096)
                        except BlockingIOError:
                            pass
                    else:
                        assert isinstance(sock, socket.socket)
                        conn = self._owner.get(sock)
                        if conn is None:
                            continue
                        if mask & selectors.EVENT_READ:
                            self._read(conn, sock)
                        if mask & selectors.EVENT_WRITE and conn in self._conns:
                            self._write(conn, sock)
                self._flush_due()
                while self._commands:
                    fn, done = self._commands.popleft()
                    fn()
                    done.set()
        except BaseException as exc:  # reported by the next control call
            self._error = exc
            raise
        finally:
            for conn in list(self._conns):
                for s in conn.sockets():
                    s.close()
            self._conns.clear()
            self._owner.clear()
            sel.close()

    def _sync(self, sel: selectors.BaseSelector, registered: dict[socket.socket, int]) -> float | None:
        """Register each socket for what it may do now; returns how long until a delayed chunk is due."""
        now = time.monotonic()
        wanted: dict[socket.socket, int] = {}
        next_due: float | None = None
        if self._mode == "forward":
            for conn in self._conns:
                for s in conn.sockets():
                    events = 0
                    peer = conn.peer(s)
                    if s not in conn.eof and peer is not None and conn.queued(peer) < _BUFFER_LIMIT:
                        events |= selectors.EVENT_READ
                    queue = conn.out.get(s)
                    if queue:
                        if queue[0][0] <= now:
                            events |= selectors.EVENT_WRITE
                        else:
                            next_due = queue[0][0] if next_due is None else min(next_due, queue[0][0])
                    if events:
                        wanted[s] = events
        for s in list(registered):
            if s not in wanted:
                sel.unregister(s)          # a closed socket too: the selector finds it by object
                del registered[s]
        for s, events in wanted.items():
            if s not in registered:
                sel.register(s, events)
            elif registered[s] != events:
                sel.modify(s, events)
            registered[s] = events
        if next_due is None:
            return None
        return max(0.0, next_due - now)

    def _accept(self) -> None:
        try:
            client, _addr = self._listener.accept()
        except BlockingIOError:
            return
        self.accepted += 1
        if self._mode == "cut" or len(self._conns) >= self.max_connections:
            _reset(client)
            return
        client.setblocking(False)
        conn = _Conn(client)
        self._conns.append(conn)
        self._owner[client] = conn
        if self._mode == "forward":
            self._connect_upstream(conn)

    def _connect_upstream(self, conn: _Conn) -> None:
        try:
            upstream = socket.create_connection(self.target, self.connect_timeout)
        except OSError:          # the server is down or unreachable: the client sees a reset
            self._drop(conn)
            return
        upstream.setblocking(False)
        conn.upstream = upstream
        conn.out[upstream] = collections.deque()
        self._owner[upstream] = conn

    def _read(self, conn: _Conn, sock: socket.socket) -> None:
        peer = conn.peer(sock)
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn)
            return
        if peer is None:
            return
        if not data:
            conn.eof.add(sock)
            conn.out[peer].append([time.monotonic() + self._delay, b""])    # b"": pass the FIN on when due
            return
        conn.out[peer].append([time.monotonic() + self._delay, data])

    def _write(self, conn: _Conn, sock: socket.socket) -> None:
        queue = conn.out[sock]
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            chunk = queue[0]
            if not chunk[1]:                   # the other side finished sending
                queue.popleft()
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if conn.eof.issuperset(conn.sockets()) and not any(conn.out.values()):
                    self._drop(conn, graceful=True)
                return
            try:
                sent = sock.send(chunk[1])
            except BlockingIOError:
                return
            except OSError:
                self._drop(conn)
                return
            if sent < len(chunk[1]):
                chunk[1] = chunk[1][sent:]
                return
            queue.popleft()

    def _flush_due(self) -> None:
        """Write what is due where the socket can take it (most writes never need a select round)."""
        if self._mode != "forward":
            return
        for conn in list(self._conns):
            for s in conn.sockets():
                if conn in self._conns and conn.out.get(s):
                    self._write(conn, s)

    def _drop(self, conn: _Conn, graceful: bool = False) -> None:
        if conn not in self._conns:
            return
        self._conns.remove(conn)
        for s in conn.sockets():
            self._owner.pop(s, None)
            if graceful:
                s.close()
            else:
                _reset(s)


# ---------------------------------------------------------------------- network namespaces
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_labs = itertools.count(1)
PREFIX = "olnc-"


class NetnsError(RuntimeError):
    """Network namespaces cannot be made here (not root, no iproute2) or a command in one failed."""


def require_root() -> None:
    """Raise :class:`NetnsError` unless namespaces can be made: root and iproute2 (CI has both)."""
    if os.geteuid() != 0:
        raise NetnsError("network-namespace tests need root (CI runs as root): run them with sudo or as root")
    if shutil.which("ip") is None:
        raise NetnsError("network-namespace tests need iproute2 ('ip'), which is not installed")


def _enter_netns(name: str) -> None:
    """Move the calling *thread* into namespace ``name`` for good (sockets it makes then live there)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name: str, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
    """Run ``fn(*args)`` on a fresh thread inside namespace ``name`` and return its result (or raise)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            _enter_netns(name)
            result.append(fn(*args))
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    th = threading.Thread(target=body, name=f"in-netns-{name}", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise TimeoutError(f"{fn!r} in namespace {name} did not finish within {timeout}s")
    if error:
        raise error[0]
    return result[0]


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _kill_all_in(name: str) -> None:
    """SIGKILL every process in namespace ``name`` (all of them were started by the lab that made it)."""
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Netns:
    """One network namespace of a :class:`NetLab` (``name`` is what ``ip netns`` knows it by)."""

    def __init__(self, lab: "NetLab", name: str) -> None:
        self.lab = lab
        self.name = name

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` replaces itself with the command, so the
        pid of the Popen is the command's)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in the namespace; the lab kills it on exit if it still runs."""
        proc = subprocess.Popen(self.argv(argv), **kwargs)
        self.lab.processes.append(proc)
        return proc

    def run(self, argv: list[str], timeout: float = 30.0) -> str:
        """Run a short command in the namespace and return its output; a failure raises."""
        proc = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise NetnsError(f"{' '.join(argv)} in {self.name}: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout


class Link:
    """A veth pair: ``a_dev`` with ``a_addr`` in namespace ``a``, ``b_dev`` with ``b_addr`` in ``b``."""

    def __init__(self, a: Netns, b: Netns, a_dev: str, b_dev: str, a_addr: str, b_addr: str) -> None:
        self.a, self.b = a, b
        self.a_dev, self.b_dev = a_dev, b_dev
        self.a_addr, self.b_addr = a_addr, b_addr

    def down(self, side: str = "b") -> None:
        """Take one end down (default: ``b``, the member's): packets across it are lost, no connection is
        reset, and new connections from ``b`` fail (no route)."""
        ns, dev = (self.a, self.a_dev) if side == "a" else (self.b, self.b_dev)
        _ip("-n", ns.name, "link", "set", "dev", dev, "down")

    def up(self, side: str = "b") -> None:
        ns, dev = (self.a, self.a_dev) if side == "a" else (self.b, self.b_dev)
        _ip("-n", ns.name, "link", "set", "dev", dev, "up")


class NetLab:
    """Network namespaces and veth links for one test, all removed on exit (see the module docstring)."""

    def __init__(self) -> None:
        require_root()
        self.id = next(_labs)
        self.tag = f"{PREFIX}{os.getpid()}-{self.id}"
        self.namespaces: list[Netns] = []
        self.links: list[Link] = []
        self.processes: list[subprocess.Popen[Any]] = []
        self.proxies: list[TcpProxy] = []

    def __enter__(self) -> "NetLab":
        sweep_stale()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespace(self, label: str) -> Netns:
        """A new namespace with its loopback up."""
        if not re.fullmatch(r"[a-z0-9]{1,12}", label):
            raise ValueError(f"a namespace label is 1-12 of [a-z0-9], not {label!r}")
        ns = Netns(self, f"{self.tag}-{label}")
        _ip("netns", "add", ns.name)
        self.namespaces.append(ns)
        _ip("-n", ns.name, "link", "set", "dev", "lo", "up")
        return ns

    def link(self, a: Netns, b: Netns) -> Link:
        """A veth pair between ``a`` and ``b`` with addresses 10.77.<k>.1 (a) and .2 (b), both up."""
        k = len(self.links) + 1
        if k > 9:
            raise ValueError("a lab has at most 9 links")
        stem = f"nc{os.getpid():x}{self.id % 256:x}{k}"
        a_dev, b_dev = f"{stem}a", f"{stem}b"
        a_addr, b_addr = f"10.77.{k}.1", f"10.77.{k}.2"
        _ip("link", "add", a_dev, "netns", a.name, "type", "veth", "peer", "name", b_dev, "netns", b.name)
        link = Link(a, b, a_dev, b_dev, a_addr, b_addr)
        self.links.append(link)
        for ns, dev, addr in ((a, a_dev, a_addr), (b, b_dev, b_addr)):
            _ip("-n", ns.name, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns.name, "link", "set", "dev", dev, "up")
        return link

    def proxy(self, ns: Netns, target: tuple[str, int]) -> TcpProxy:
        """A :class:`TcpProxy` on the test's 127.0.0.1 that reaches ``target`` inside ``ns``."""
        proxy = TcpProxy(target, netns=ns.name)
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        """Stop the proxies, kill what runs in the namespaces, delete them (their veths go with them)."""
        for proxy in self.proxies:
            proxy.close()
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
        for proc in self.processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        for ns in self.namespaces:
            _kill_all_in(ns.name)
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
        self.namespaces.clear()


def sweep_stale() -> None:
    """Delete lab namespaces left by test processes that died without cleaning up."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(rf"{PREFIX}(\d+)-\d+-\S+", line)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue                 # its test process still runs: not ours to touch
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        name = line.split()[0]
        _kill_all_in(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
