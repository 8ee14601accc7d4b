"""``orgloop plan`` at scale: 2,000 sources, 500 actors and 1,000 vs 10,000 routes (targets: < 2 s at 10k
routes, and 10k routes <= ~10x the time of 1k).

The project is generated (a small generator of its own here: routes spread over 50 route files, each
route with a filter, a transform and a delivery block; a few transforms and a file logger). Its applied
state is recorded with 1% of the routes different, so the plan has changes to compute and print. Each
run is the whole ``orgloop plan`` command in-process (load, checks, desired state, read the applied state,
diff, render), timed per phase as well. Median of ``--repeat`` runs; ``cpu`` is the process CPU time of
the whole command, which other work on a shared machine disturbs less than the wall-clock ``total``; the
load average is recorded with the results.

Run: ``python bench/bench_plan.py [--repeat 3] [--out bench/results/plan.json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SOURCES, ACTORS, ROUTE_FILES = 2000, 500, 50


def generate(root: Path, n_routes: int, n_sources: int = SOURCES, n_actors: int = ACTORS) -> Path:
    """Write a valid project with that many sources, actors and routes; returns its directory."""
    (root / "connectors").mkdir(parents=True)
    (root / "routes").mkdir()
    (root / "transforms").mkdir()
    (root / "loggers").mkdir()
    (root / "orgloop.yaml").write_text(
        "apiVersion: orgloop/v1alpha1\nkind: Project\nmetadata:\n  name: bench\nconnectors:\n"
        "  - connectors/connectors.yaml\ntransforms:\n  - transforms/transforms.yaml\nloggers:\n"
        "  - loggers/loggers.yaml\n")
    lines = ["apiVersion: orgloop/v1alpha1", "kind: ConnectorGroup", "sources:"]
    for i in range(n_sources):
        lines += [f"  - id: src-{i}", "    connector: generator", f"    config: {{rate: {1 + i % 5}}}",
                  "    emits: [resource.changed, message.received]"]
    lines.append("actors:")
    for i in range(n_actors):
        lines += [f"  - id: actor-{i}", "    connector: file", f"    config: {{path: out/actor-{i}.jsonl}}"]
    (root / "connectors" / "connectors.yaml").write_text("\n".join(lines) + "\n")
    (root / "transforms" / "transforms.yaml").write_text(
        "apiVersion: orgloop/v1alpha1\nkind: TransformGroup\ntransforms:\n"
        "  - name: only-high\n    type: package\n    package: '@orgloop/transform-filter'\n"
        "    config: {match: {payload.severity: high}}\n"
        "  - name: once\n    type: package\n    package: '@orgloop/transform-dedup'\n")
    (root / "loggers" / "loggers.yaml").write_text(
        "apiVersion: orgloop/v1alpha1\nkind: LoggerGroup\nloggers:\n"
        "  - name: log\n    type: '@orgloop/logger-file'\n    config: {path: out/pipeline.jsonl}\n")
    per_file = -(-n_routes // ROUTE_FILES)
    for f in range(ROUTE_FILES):
        lines = ["apiVersion: orgloop/v1alpha1", "kind: RouteGroup", "routes:"]
        for i in range(f * per_file, min(n_routes, (f + 1) * per_file)):
            lines += [f"  - name: route-{i}", "    when:", f"      source: src-{i % n_sources}",
                      "      events: [resource.changed]", f"      filter: {{payload.team: team-{i % 37}}}",
                      "    transforms:", f"      - ref: {'only-high' if i % 2 else 'once'}", "    then:",
                      f"      actor: actor-{i % n_actors}", "      config: {title: '{{payload.title}}'}",
                      "      delivery:", f"        max_rate: {10 + i % 90}/s", "        retry: {max_attempts: 5}"]
        if len(lines) > 3:
            (root / "routes" / f"routes-{f:02d}.yaml").write_text("\n".join(lines) + "\n")
    return root


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def run_once(project_dir: Path) -> dict[str, float]:
    """One ``orgloop plan`` (timed whole through the CLI) plus the same phases timed one by one."""
    from click.testing import CliRunner

    from orgloop.cli import main
    from orgloop.cli._run_context import gc_paused
    from orgloop.config.checks import check_project
    from orgloop.config.loader import load_project
    from orgloop.plan import compute_plan, desired_state, read_applied

    t0, c0 = time.perf_counter(), time.process_time()
    result = CliRunner().invoke(main, ["plan", "-p", str(project_dir)])
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    if result.exit_code != 2:
        raise SystemExit(f"orgloop plan exited {result.exit_code}: {result.output[-2000:]}")
    with gc_paused():                       # as the command does
        project, load = _timed(load_project, project_dir)
        _, checks = _timed(check_project, project)
        desired, state = _timed(desired_state, project)
        current, read = _timed(read_applied, project.data_dir)
        _, diff = _timed(compute_plan, current["state"], desired)
    return {"total": total, "cpu": cpu, "load": load, "checks": checks, "desired_state": state, "read_applied": read,
            "diff": diff}


def prepare(tmp: Path, n_routes: int) -> Path:
    """Generate the project and record an applied state that differs in 1% of the routes."""
    from orgloop.config.loader import load_project
    from orgloop.plan import desired_state, write_applied

    project_dir = generate(tmp / f"bench-{n_routes}", n_routes)
    project = load_project(project_dir)
    state = desired_state(project)
    for i in range(0, n_routes, 100):
        state["routes"][f"route-{i}"]["then"]["delivery"]["max_rate"] = "1/s"
    write_applied(project.data_dir, state, project=project.name, workspace=project.workspace)
    return project_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--routes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "plan.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orgloop-bench-plan-") as tmp:
        os.environ["ORGLOOP_HOME"] = str(Path(tmp) / "home")
        results: dict[str, Any] = {"sources": SOURCES, "actors": ACTORS, "repeat": args.repeat, "sizes": {},
                                   "loadavg_before": os.getloadavg()[0]}
        for n in args.routes:
            project_dir = prepare(Path(tmp), n)
            runs = [run_once(project_dir) for _ in range(args.repeat)]
            median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results["sizes"][str(n)] = median
            print(f"{n:>6} routes: plan {median['total']:.3f} s, cpu {median['cpu']:.3f} s  (" + ", ".join(
                f"{k} {v:.3f}" for k, v in median.items() if k not in ("total", "cpu")) + ")", flush=True)
    sizes = sorted(results["sizes"], key=int)
    results["loadavg_after"] = os.getloadavg()[0]
    if len(sizes) >= 2:
        for key in ("total", "cpu"):
            lo, hi = results["sizes"][sizes[0]][key], results["sizes"][sizes[-1]][key]
            results[f"ratio_{key}"] = hi / lo
            print(f"ratio {sizes[-1]}/{sizes[0]} routes ({key}): {hi / lo:.2f}x "
                  f"(route count x{int(sizes[-1]) // int(sizes[0])})")
    print(f"load average {results['loadavg_before']:.1f} before, {results['loadavg_after']:.1f} after")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
