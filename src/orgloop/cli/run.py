"""``orgloop start | stop | status | logs``: run a workspace's runtime and look at it.

``start`` validates, plans, prints the plan, then runs the runtime in the foreground (Ctrl-C or SIGTERM
stops it cleanly), or with ``--daemon`` in the background. When the workspace's runtime already runs,
``start`` reconciles it in place (``POST /apply`` on its control socket) instead of starting another.
Files in the workspace data directory: ``orgloop.pid``, ``runtime.json`` (pid, control socket, read-only
port), ``control.sock`` (the owner's control socket), ``orgloop.log`` (daemon output) and
``applied-state.json`` (what ``plan`` compares with).

``start --role all|source|router|delivery`` on a scale-out bus starts a new fleet member (see
:mod:`orgloop.fleet`): its files live under ``<data>/members/<member-id>/`` and it never reconciles another
member. ``status`` lists the fleet's members, leases and consumer-group lag from the shared store, even
when no member runs on this host.

Exit codes (``docs/operations.md``): ``start`` 0 started and stopped cleanly / started in the background /
reconciled / nothing to change, 1 error (invalid project, failed to start, a change that needs a restart).
``stop`` 0 stopped, 3 not running, 1 still running after ``--timeout``. ``status`` 0 running and healthy,
2 running but unhealthy, 3 not running, 1 error. ``logs`` 0, 1 no file logger configured. Every command:
64 for a bad flag or argument.
"""
from __future__ import annotations

import datetime as dt
from collections import deque
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import click

from orgloop.cli._exit import EXIT_ATTENTION, EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK
from orgloop.cli._output import echo_json, echo_table, output_option, style
from orgloop.cli._project import format_diagnostic, load_for_command, project_options
from orgloop.cli._run_context import load_checked, load_lenient
from orgloop.cli.plan import current_state, render_plan
from orgloop.units import parse_duration

if TYPE_CHECKING:   # imported when a command runs, not for --help
    from orgloop.instance import Instance
    from orgloop.config.loader import Project
    from orgloop.plan import State

__all__ = ["start", "stop", "status", "logs"]


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter(f"must be longer than zero, not {value!r}")
    return seconds


# --------------------------------------------------------------------------- start
@click.command()
@project_options
@click.option("-d", "--daemon", is_flag=True, help="Run in the background; return once it is up.")
@click.option("--for", "run_for", metavar="DURATION", callback=_duration, default=None,
              help="Stop by itself after DURATION (e.g. 5s): for demos and smoke tests.")
@click.option("--wait", "wait_up", metavar="DURATION", callback=_duration, default="60s", show_default=True,
              help="--daemon: how long to wait for the daemon to come up.")
@click.option("--role", type=click.Choice(["all", "source", "router", "delivery"]), default=None,
              help="On a scale-out bus (redis, nats, kafka): start a new fleet member running this part of the "
                   "pipeline (default: all of it, as the workspace's own runtime).")
@click.option("--daemon-child", is_flag=True, hidden=True)
@click.option("--member-id", hidden=True, default=None)
def start(project_dir: Path | None, workspace: str | None, daemon: bool, run_for: float | None, wait_up: float,
          role: str | None, daemon_child: bool, member_id: str | None) -> None:
    """Validate, plan and start the workspace's runtime, or reconcile the running one without a restart.
    With --role, start a new member of the workspace's fleet instead."""
    from orgloop.config._gc import cyclic_gc_paused
    from orgloop.config.resolve import to_runtime_spec
    from orgloop.plan import compute_plan, desired_state
    from orgloop.instance import clear_instance

    with cyclic_gc_paused():
        project = load_checked(project_dir, workspace)
        if role is not None and _fleet_bus(project, role):
            _start_member(project, role, daemon, daemon_child, member_id, run_for, wait_up)
            return
        desired = desired_state(project)
        if not daemon_child:
            current, base, inst = current_state(project)
            plan = compute_plan(current, desired, project.workspace)
    if daemon_child:
        _run(project, to_runtime_spec(project), desired, run_for)
        return
    render_plan(plan, base, project)
    if inst is not None:
        _reconcile(project, inst, plan, current, desired, daemon)
        return
    clear_instance(project.data_dir)          # files of a runtime that is gone
    if daemon:
        _spawn_daemon(project, run_for, wait_up)
    else:
        _run(project, to_runtime_spec(project), desired, run_for)


def _fleet_bus(project: Project, role: str) -> bool:
    """Whether ``--role`` starts a fleet member: yes on a scale-out bus; ``--role all`` on a single-host bus
    is the workspace's own runtime; any other role there is a usage error (exit 64)."""
    from orgloop.fleet import SCALE_OUT_BUSES

    assert project.settings is not None
    bus = project.settings.runtime.bus
    if bus in SCALE_OUT_BUSES:
        return True
    if role != "all":
        raise click.UsageError(f"--role {role} needs a scale-out bus (runtime.bus: {' | '.join(SCALE_OUT_BUSES)}); "
                               f"the {bus} bus runs the whole pipeline in one process: start it without --role")
    return False


def _start_member(project: Project, role: str, daemon: bool, daemon_child: bool, member_id: str | None,
                  run_for: float | None, wait_up: float) -> None:
    """``start --role``: a new fleet member with its own files under ``<data>/members/<member-id>/``."""
    from orgloop.config.resolve import to_runtime_spec
    from orgloop.fleet.membership import new_member_id

    spec = to_runtime_spec(project)
    member = member_id or new_member_id()
    data_dir = project.data_dir / "members" / member
    spec.role, spec.member, spec.data_dir = role, member, data_dir
    if daemon and not daemon_child:
        _claim(project)
        data_dir.mkdir(parents=True, exist_ok=True)
        _spawn_daemon(project, run_for, wait_up, data_dir, ["--role", role, "--member-id", member])
        return
    _run(project, spec, None, run_for, data_dir=data_dir)


def _run(project: Project, spec: Any, desired: State | None, run_for: float | None,
         data_dir: Path | None = None) -> None:
    """Run in this process until a signal (or ``run_for`` seconds); record the applied state once up (a fleet
    member, with ``desired`` None and its own ``data_dir``, records none and never reloads)."""
    from orgloop.control.paths import socket_path
    from orgloop.plan import write_applied
    from orgloop.runtime import Runtime
    from orgloop.instance import LOG_FILE, Instance, clear_instance, write_instance

    _claim(project)
    data_dir = data_dir or project.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    spec.control_socket = socket_path(data_dir)   # recorded in runtime.json, where the CLI finds it
    runtime = Runtime(spec)
    try:
        runtime.start()
    except Exception as exc:
        click.echo(f"Error: the runtime failed to start: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    runtime.applied_state = desired
    pid, port = os.getpid(), runtime.control_port
    try:
        if desired is not None:
            write_applied(project.data_dir, desired, project=project.name, workspace=project.workspace)
        write_instance(data_dir, Instance(pid, str(runtime.control_socket), time.time(), port,
                                          str(data_dir / LOG_FILE)))
        hooks = runtime.ingress_port
        member = f"fleet member {runtime.member} ({spec.role}), " if spec.member else ""
        click.echo(f"orgloop is running: {member}pid {pid}, {_listeners(runtime.control_socket, port)}, "
                   + (f"webhooks at http://{spec.ingress_host}:{hooks}/webhook/<source-id>, " if hooks else "")
                   + f"data in {data_dir}" + (f", stopping after {run_for:g}s" if run_for else " (Ctrl-C to stop)"))
        reload = (lambda: _reload(project, runtime)) if desired is not None else None
        runtime.run_until_signal(timeout=run_for, on_reload=reload)
    finally:
        runtime.stop()
        clear_instance(data_dir, pid)
    click.echo(f"orgloop stopped: {_summary(runtime)}")


def _summary(runtime: Any) -> str:
    """``25 received, 3 delivered, 5 dropped, 17 deduplicated, 0 dead-lettered`` for this run: events the
    sources published; deliveries the actors took; events the transforms dropped, of which the dedup
    transforms' drops are counted apart; dead letters written (and events no route matched, when any)."""
    from orgloop.transforms.dedup import DedupTransform

    per_route = [r for lane in runtime.lanes.values() for r in lane.stats()["routes"].values()]
    deduplicated = sum(t.dropped for t, _policy in runtime.transforms.values() if isinstance(t, DedupTransform))
    dropped = max(0, sum(r.dropped for r in runtime.router.routes.values()) - deduplicated)
    text = (f"{runtime.events_published} received, {sum(r['delivered'] for r in per_route)} delivered, "
            f"{dropped} dropped, {deduplicated} deduplicated, "
            f"{sum(r['dead_lettered'] for r in per_route)} dead-lettered")
    return text + (f", {runtime.router.unmatched} matched no route" if runtime.router.unmatched else "")


def _say(message: str) -> None:
    """A timestamped line on stderr (the daemon's log file)."""
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    click.echo(f"{stamp} orgloop: {message}", err=True)


def _reload(loaded: Project, runtime: Any) -> None:
    """SIGHUP: read the project again, validate, plan against what runs, and reconcile in this process, as
    ``orgloop start`` does against a running runtime. On any problem the running configuration stays and
    the reason is logged."""
    from orgloop.config.resolve import to_runtime_spec
    from orgloop.plan import compute_plan, desired_state, write_applied
    from orgloop.reconcile import ReconcileError, apply_request, build_request, restart_reasons

    _say("SIGHUP: reloading the project")
    try:
        project = load_for_command(loaded.root, loaded.workspace)
    except click.ClickException as exc:
        _say(f"reload failed, the previous configuration keeps running: {exc.message}")
        return
    if project.errors:
        for d in project.sorted_diagnostics():
            _say(format_diagnostic(d, project.root))
        _say(f"reload failed: the project has {len(project.errors)} error(s); the previous configuration "
             "keeps running")
        return
    current, desired = runtime.applied_state or {}, desired_state(project)
    plan = compute_plan(current, desired, project.workspace)
    if not plan.has_changes:
        _say("reload: nothing to change")
        return
    reasons = restart_reasons(plan, current, desired)
    if reasons:
        _say("reload failed, these changes need a restart (the previous configuration keeps running): "
             + "; ".join(reasons))
        return
    try:
        apply_request(runtime, build_request(plan, to_runtime_spec(project), desired))
    except (ReconcileError, ValueError) as exc:
        _say(f"reload failed, the previous configuration keeps running: {exc}")
        return
    write_applied(project.data_dir, desired, project=project.name, workspace=project.workspace)
    _say(f"reload applied: {plan.summary()}")


def _listeners(sock: Any, port: int | None) -> str:
    return f"control socket {sock}" + (f", read-only endpoint http://127.0.0.1:{port}" if port else "")


def _spawn_daemon(project: Project, run_for: float | None, wait_up: float, data_dir: Path | None = None,
                  extra: list[str] | None = None) -> None:
    """Start ``orgloop start --daemon-child`` in a new session, output to the log file; wait until it is up.
    A fleet member passes its own ``data_dir`` and its ``--role``/``--member-id`` in ``extra``."""
    from orgloop.instance import LOG_FILE, read_instance, running_instance

    data_dir = data_dir or project.data_dir
    _claim(project)
    log_path = data_dir / LOG_FILE
    offset = log_path.stat().st_size if log_path.exists() else 0
    argv = [sys.executable, "-m", "orgloop", "start", "-p", str(project.root), "-w", project.workspace,
            "--daemon-child"] + (["--for", f"{int(run_for * 1000)}ms"] if run_for else []) + (extra or [])
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
               (os.POSIX_SPAWN_DUP2, 1, 2)]
    pid = os.posix_spawn(sys.executable, argv, dict(os.environ), file_actions=actions, setsid=True)
    deadline = time.monotonic() + wait_up
    while time.monotonic() < deadline:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            click.echo(f"Error: the daemon exited with code {os.waitstatus_to_exitcode(code)}:", err=True)
            click.echo(_read_from(log_path, offset).rstrip(), err=True)
            sys.exit(1)
        inst = read_instance(data_dir)
        if inst is not None and inst.pid == pid and running_instance(data_dir) is not None:
            click.echo(f"orgloop is running in the background: pid {pid}, "
                       f"{_listeners(inst.control_socket, inst.control_port)}, log {log_path}")
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)
    click.echo(f"Error: the daemon (pid {pid}) did not come up within {wait_up:g}s; stopped it. See {log_path}.",
               err=True)
    sys.exit(1)


def _claim(project: Project) -> None:
    """Create the data directory and record this project as its owner (exit 1 if another project owns it)."""
    from orgloop.config.workspaces import DataDirError, claim_data_dir

    try:
        claim_data_dir(project.data_dir, project.name or project.root.name, project.root)
    except (DataDirError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def _reconcile(project: Project, inst: Instance, plan: Any, current: State, desired: State, daemon: bool) -> None:
    """Send the plan to the running runtime; refuse (exit 1) when part of it needs a restart."""
    from orgloop.config.resolve import to_runtime_spec
    from orgloop.plan import write_applied
    from orgloop.reconcile import build_request, restart_reasons
    from orgloop.instance import ControlError

    if not plan.has_changes:
        click.echo(f"orgloop is already running (pid {inst.pid}); nothing to change.")
        return
    reasons = restart_reasons(plan, current, desired)
    if reasons:
        click.echo("Error: these changes cannot be applied to the running runtime:", err=True)
        for r in reasons:
            click.echo(f"  - {r}", err=True)
        where = f"-p {project.root} -w {project.workspace}"
        again = " --daemon" if daemon or _is_daemon(inst.pid) else ""
        click.echo(f"Nothing was changed. Restart to apply them: orgloop stop {where} && "
                   f"orgloop start {where}{again}", err=True)
        sys.exit(EXIT_ERROR)
    try:
        inst.request("POST", "/apply", build_request(plan, to_runtime_spec(project), desired), timeout=60.0)
    except ControlError as exc:
        click.echo(f"Error: the running runtime (pid {inst.pid}) refused the changes: {exc}", err=True)
        sys.exit(1)
    write_applied(project.data_dir, desired, project=project.name, workspace=project.workspace)
    click.echo(f"Applied to the running runtime (pid {inst.pid}) without a restart.")


def _is_daemon(pid: int) -> bool:
    """Whether ``pid`` is a runtime started with ``--daemon`` (its command line says so)."""
    try:
        return b"--daemon-child" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# --------------------------------------------------------------------------- stop
@click.command()
@project_options
@click.option("--timeout", metavar="DURATION", callback=_duration, default="30s", show_default=True,
              help="How long to wait for a clean shutdown.")
def stop(project_dir: Path | None, workspace: str | None, timeout: float) -> None:
    """Stop the workspace's runtime and wait. It gets a stop request on its control socket (SIGTERM when
    that does not answer). Fleet members started on this host with --role are stopped too. Exit 0:
    stopped, 3: not running, 1: still running."""
    from orgloop.instance import clear_instance, pid_alive, read_instance

    project = load_lenient(project_dir, workspace)
    dirs = [project.data_dir] + sorted(d for d in (project.data_dir / "members").glob("*") if d.is_dir())
    running = []
    for data_dir in dirs:
        inst = read_instance(data_dir)
        if inst is None:
            continue
        if pid_alive(inst.pid) and _is_orgloop(inst):
            running.append((data_dir, inst))
        else:
            clear_instance(data_dir, inst.pid)
    if not running:
        click.echo(f'orgloop is not running for workspace "{project.workspace}".', err=True)
        sys.exit(EXIT_NOT_RUNNING)
    left = [inst.pid for data_dir, inst in running if not _stop_one(data_dir, inst, timeout)]
    if left:
        click.echo(f"Error: orgloop (pid {', '.join(map(str, left))}) is still running after {timeout:g}s.", err=True)
        sys.exit(EXIT_ERROR)


def _stop_one(data_dir: Path, inst: Instance, timeout: float) -> bool:
    """Ask one runtime to stop and wait up to ``timeout``; False when it still runs."""
    from orgloop.instance import ControlError, clear_instance, wait_for_exit

    try:
        inst.request("POST", "/stop", timeout=5.0)   # the owner's socket; a signal when it does not answer
    except ControlError:
        os.kill(inst.pid, signal.SIGTERM)
    if not wait_for_exit(inst.pid, timeout):
        return False
    clear_instance(data_dir, inst.pid)
    member = f"fleet member {data_dir.name}, " if data_dir.parent.name == "members" else ""
    click.echo(f"orgloop stopped ({member}pid {inst.pid}).")
    return True


def _is_orgloop(inst: Instance) -> bool:
    """The pid is the runtime (its control socket agrees), not another process that reused the number."""
    from orgloop.instance import ControlError

    try:
        return inst.request("GET", "/status", timeout=5.0).get("pid") == inst.pid
    except (ControlError, AttributeError):
        try:
            return b"orgloop" in Path(f"/proc/{inst.pid}/cmdline").read_bytes()
        except OSError:
            return False


# --------------------------------------------------------------------------- status
@click.command()
@project_options
@output_option()
def status(project_dir: Path | None, workspace: str | None, output: str) -> None:
    """Sources, routes, queues, breakers and the WAL of the running runtime. On a scale-out bus also the
    fleet's members, source leases and consumer-group lag. Exit 0 healthy, 2 unhealthy, 3 not running (no
    local runtime and no fleet member anywhere)."""
    from orgloop.instance import ControlError, running_instance

    project = load_lenient(project_dir, workspace)
    inst = running_instance(project.data_dir)
    st = None
    if inst is not None:
        try:
            st = inst.request("GET", "/status")
        except ControlError:
            st = None
    fleet = _fleet(project) if st is None or st.get("fleet") is None else st.pop("fleet")
    members = (fleet or {}).get("members") or []
    if st is None and not members:
        if output == "json":
            echo_json({"running": False, "workspace": project.workspace,
                       **({"fleet": fleet} if fleet is not None else {})})
        else:
            click.echo(f'orgloop is not running for workspace "{project.workspace}".')
            if fleet and fleet.get("error"):
                click.echo(f"fleet: cannot read the shared store: {fleet['error']}")
        sys.exit(EXIT_NOT_RUNNING)
    if output == "json":
        echo_json({"running": True, **(st or {"workspace": project.workspace}),
                   **({"fleet": fleet} if fleet is not None else {})})
    else:
        if st is not None:
            _render_status(st)
        if fleet is not None:
            _render_fleet(fleet, project.workspace)
    healthy = st.get("healthy") if st is not None else all(m.get("healthy", True) for m in members)
    sys.exit(EXIT_OK if healthy else EXIT_ATTENTION)


def _fleet(project: Project) -> dict[str, Any] | None:
    """The fleet view of a workspace on a scale-out bus, read from its shared store (None: single host)."""
    from orgloop.fleet import SCALE_OUT_BUSES
    from orgloop.fleet.view import open_fleet_view

    settings = project.settings
    if settings is None or settings.runtime.bus not in SCALE_OUT_BUSES:
        return None
    rt = settings.runtime
    return open_fleet_view(rt.bus, dict(rt.bus_options), project.name or project.root.name, project.workspace,
                           rt.fleet.store)


def _render_fleet(fleet: dict[str, Any], workspace: str) -> None:
    click.echo()
    if fleet.get("error"):
        click.echo(f"fleet: cannot read the shared store: {fleet['error']}")
        return
    members = fleet.get("members") or []
    now = time.time()
    click.echo(f'fleet of workspace "{workspace}": {len(members)} member{"s" if len(members) != 1 else ""}')
    echo_table([{**m, "up": _human_duration(now - m.get("started", now)),
                 "seen": f"{max(0.0, now - m.get('last_seen', now)):.1f}s ago",
                 "healthy": "yes" if m.get("healthy", True) else "NO"} for m in members],
               ["member", "role", "host", "pid", "up", "seen", "healthy"])
    if fleet.get("leases"):
        click.echo()
        echo_table(fleet["leases"], ["source", "holder", "epoch"])
    if fleet.get("groups"):
        click.echo()
        echo_table(fleet["groups"], ["stream", "group", "lag", "pending", "consumers"])


def _render_status(st: dict[str, Any]) -> None:
    up = max(0.0, time.time() - (st.get("started_at") or time.time()))
    health = style("healthy", fg="green") if st.get("healthy") else style("UNHEALTHY", fg="red", bold=True)
    click.echo(f'orgloop "{st.get("name")}" workspace "{st.get("workspace")}": running, pid {st.get("pid")}, '
               f"up {_human_duration(up)}, {health}")
    for problem in st.get("problems") or []:
        click.echo(f"  problem: {problem}")
    wal = st.get("wal")
    wal_text = (f"WAL {_human_bytes(wal.get('data_bytes', wal['bytes']))} of records in {wal['segments']} "
                f"segment{'s' if wal['segments'] != 1 else ''} ({_human_bytes(wal['bytes'])} allocated), "
                f"{wal['unacked']} unacked" if wal else "no WAL")
    click.echo(f"bus {st.get('bus')}: {wal_text}; events in {st.get('events_published')}, acked "
               f"{st.get('acked')}, unmatched {st.get('unmatched')}, dead letters {st.get('dead_letters')}")
    ingress = st.get("ingress")
    if ingress:
        answers = ", ".join(f"{code}: {n}" for code, n in sorted(ingress["answers"].items())) or "none yet"
        click.echo(f"webhooks on http://{ingress['host']}:{ingress['port']} "
                   f"({len(set(ingress['mounts'].values()))} sources); answers by status: {answers}")
    click.echo()
    echo_table(st.get("sources") or [], ["id", "checkpoint"])
    click.echo()
    rows = [{**r, "rate": f"{(r.get('delivered') or 0) / up:.1f}/s" if up > 0 else "-",
             "max_rate": f"{r['max_rate']:g}/s" if r.get("max_rate") else "-",
             "breaker": r.get("breaker", "closed")} for r in st.get("routes") or []]
    echo_table(rows, ["name", "actor", "queue_depth", "breaker", "delivered", "failed", "dead_lettered", "rate",
                      "max_rate"])


def _human_duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- logs
@click.command()
@project_options
@click.option("-f", "--follow", is_flag=True, help="Keep printing new entries (Ctrl-C to stop).")
@click.option("--route", help="Only entries of this route.")
@click.option("--type", "--event-type", "event_type", help="Only entries of this event type.")
@click.option("--source", help="Only entries of this source.")
@click.option("--since", metavar="DURATION", callback=_duration, default=None,
              help="Only entries of the last DURATION (e.g. 10m).")
@click.option("--logger", "logger_name", help="Which file logger to read (default: the first).")
@click.option("--tail", "tail", type=click.IntRange(min=0), default=None, metavar="N",
              help="Only the last N matching entries (then new ones, with -f).")
@output_option(format_alias=True)
def logs(project_dir: Path | None, workspace: str | None, follow: bool, route: str | None, event_type: str | None,
         source: str | None, since: float | None, logger_name: str | None, tail: int | None, output: str) -> None:
    """Print the pipeline log written by the workspace's file logger (JSON lines), rotated files included.
    Exit 1: no file logger."""
    path = _log_file(load_lenient(project_dir, workspace), logger_name)
    cutoff = None if since is None else dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=since)
    wanted = {k: v for k, v in (("route", route), ("event_type", event_type), ("source", source)) if v}
    if not path.exists() and not _rotated_files(path) and not follow:
        click.echo(f"no log entries yet ({path} does not exist)", err=True)
        return

    def show(entry: dict[str, Any]) -> None:
        click.echo(json.dumps(entry, sort_keys=True) if output == "json" else _human_entry(entry))

    held: deque[dict[str, Any]] | None = None if tail is None else deque(maxlen=tail)
    try:
        for entry in _entries(path, follow):
            if entry is None:                 # caught up with what was written: print the tail, then follow
                for e in held or ():
                    show(e)
                held = None
                continue
            if any(entry.get(k) != v for k, v in wanted.items()) or (cutoff and not _after(entry, cutoff)):
                continue
            if held is not None:
                held.append(entry)
            else:
                show(entry)
    except KeyboardInterrupt:
        pass


def _log_file(project: Project, name: str | None) -> Path:
    from orgloop.plugins import plugin_name

    files = [d for d in project.loggers.values() if plugin_name(d.model.type) == "file" and "path" in d.model.config]
    chosen = next((d for d in files if d.name == name), None) if name else (files[0] if files else None)
    if chosen is None:
        which = f"no file logger named {name!r}" if name else "no file logger (type @orgloop/logger-file)"
        click.echo(f"Error: the project has {which}; add one to its loggers to keep a log.", err=True)
        sys.exit(1)
    return (project.root / Path(chosen.model.config["path"]).expanduser()).resolve()   # as the logger resolves it


def _rotated_files(path: Path) -> list[Path]:
    """The logger's rotated files, oldest first: ``<path>.N[.gz]`` … ``<path>.1[.gz]``."""
    found: list[Path] = []
    i = 1
    while True:
        plain, packed = path.with_name(f"{path.name}.{i}"), path.with_name(f"{path.name}.{i}.gz")
        hit = plain if plain.exists() else packed if packed.exists() else None
        if hit is None:
            return found[::-1]
        found.append(hit)
        i += 1


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _entries(path: Path, follow: bool) -> Iterator[dict[str, Any] | None]:
    """Entries of the rotated files (oldest first), then of the log file; then None once, when everything
    written so far has been read; with ``follow``, then new entries as they are written (across rotations)."""
    import gzip

    for old in _rotated_files(path):
        try:
            with (gzip.open(old, "rb") if old.suffix == ".gz" else open(old, "rb")) as f:
                for raw in f:
                    entry = _parse(raw)
                    if entry is not None:
                        yield entry
        except (OSError, EOFError):           # rotated away meanwhile, or a gzip still being written
            continue
    handle = None
    inode = None
    partial = b""
    caught_up = False
    while True:
        if handle is None and path.exists():
            handle = open(path, "rb")
            inode = os.fstat(handle.fileno()).st_ino
        if handle is not None:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    partial += raw            # a line still being written
                    continue
                line, partial = partial + raw, b""
                entry = _parse(line)
                if entry is not None:
                    yield entry
        if not caught_up:
            caught_up = True
            yield None
        if not follow:
            break
        time.sleep(0.2)
        try:
            rotated = handle is not None and os.stat(path).st_ino != inode
        except FileNotFoundError:
            rotated = True
        if rotated and handle is not None:
            handle.close()
            handle = None
    if handle is not None:
        handle.close()


def _after(entry: dict[str, Any], cutoff: dt.datetime) -> bool:
    try:
        when = dt.datetime.fromisoformat(str(entry.get("timestamp")))
    except ValueError:
        return False
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)) >= cutoff


_COLOURS = {"deliver.success": "green", "deliver.failure": "red", "deliver.retry": "yellow", "dlq.add": "red",
            "breaker.open": "red", "transform.error": "yellow", "pipeline.backpressure": "yellow"}


def _human_entry(e: dict[str, Any]) -> str:
    phase = str(e.get("phase", "?"))
    fields = " ".join(f"{k}={e[k]}" for k in ("route", "source", "target", "event_type", "transform", "result",
                                               "event_id") if e.get(k) not in (None, ""))
    took = f" {e['duration_ms']:.1f}ms" if isinstance(e.get("duration_ms"), (int, float)) else ""
    error = f" error={e['error']}" if e.get("error") else ""
    shown = style(phase.ljust(18), fg=_COLOURS[phase]) if phase in _COLOURS else phase.ljust(18)
    return f"{e.get('timestamp', '')} {shown} {fields}{took}{error}".rstrip()
