"""``orgloop plan`` at scale: 2,000 sources, 500 actors and 1,000 vs 10,000 routes (targets: 10,000 routes
under 2 s, and no worse than about 10x the 1,000-route figure).

Projects come from ``bench/gen_project.py``. Each one's applied state is recorded with 1% of its routes
different, so the plan has changes to compute and print. Per size and repeat, in fresh processes:

* ``command s``: the wall-clock time of a whole ``orgloop plan`` process (interpreter start, imports,
  load, checks, state, diff, output);
* the phases in-process (imports not timed): ``load`` (load_project), ``checks`` (check_project),
  ``desired`` (desired_state), ``read`` (read_applied), ``diff`` (compute_plan), ``render`` (human output),
  and ``cpu`` (process CPU time of those phases, which other work on a shared machine disturbs less).

The median of ``--repeat`` runs is reported, with the load average (the machine may be shared).
Run: ``python bench/bench_plan.py [--repeat 3] [--out bench/results/plan.json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from gen_project import write_project  # noqa: E402

SIZES = (1_000, 10_000)
CHANGED_EVERY = 100          # 1% of the routes differ from the applied state

_PHASES = """
import contextlib, io, json, sys, time
from pathlib import Path
from orgloop.cli.plan import render_plan
from orgloop.config._gc import cyclic_gc_paused
from orgloop.config.checks import check_project
from orgloop.config.loader import load_project
from orgloop.plan import compute_plan, desired_state, read_applied

out = {}
c0 = time.process_time()
t = time.perf_counter()
def lap(name):
    global t
    now = time.perf_counter()
    out[name] = now - t
    t = now
project = load_project(Path(sys.argv[1])); lap("load")
check_project(project); lap("checks")
with cyclic_gc_paused():
    desired = desired_state(project); lap("desired")
    current = read_applied(project.data_dir)["state"]; lap("read")
    plan = compute_plan(current, desired, project.workspace); lap("diff")
    with contextlib.redirect_stdout(io.StringIO()):
        render_plan(plan, "the applied state", project)
    lap("render")
out["cpu"] = time.process_time() - c0
out["changes"] = len(plan.changes)
print(json.dumps(out))
"""


def prepare(tmp: Path, n_routes: int) -> Path:
    """Generate the project and record an applied state that differs in 1% of the routes."""
    from orgloop.config.loader import load_project
    from orgloop.plan import desired_state, write_applied

    project_dir = write_project(tmp / f"bench-{n_routes}", routes=n_routes).parent
    project = load_project(project_dir)
    state = desired_state(project)
    for i in range(0, n_routes, CHANGED_EVERY):
        state["routes"][f"route-{i}"]["then"]["delivery"]["max_rate"] = "1/s"
    write_applied(project.data_dir, state, project=project.name, workspace=project.workspace)
    return project_dir


def run_once(project_dir: Path, env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    cmd = subprocess.run([sys.executable, "-m", "orgloop", "plan", "-p", str(project_dir)], env=env,
                         capture_output=True, text=True, timeout=300)
    command = time.perf_counter() - t0
    if cmd.returncode != 2:
        raise SystemExit(f"orgloop plan exited {cmd.returncode}: {cmd.stderr[-2000:]}")
    phases = subprocess.run([sys.executable, "-c", _PHASES, str(project_dir)], env=env, capture_output=True,
                            text=True, timeout=300, check=True)
    return {"command": command, **json.loads(phases.stdout)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--routes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "plan.json")
    args = ap.parse_args()
    results: dict[str, Any] = {"sources": 2000, "actors": 500, "repeat": args.repeat, "sizes": {},
                               "loadavg_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="orgloop-bench-plan-") as tmp:
        env = {**os.environ, "ORGLOOP_HOME": str(Path(tmp) / "home")}
        os.environ["ORGLOOP_HOME"] = env["ORGLOOP_HOME"]
        for n in args.routes:
            project_dir = prepare(Path(tmp), n)
            runs = [run_once(project_dir, env) for _ in range(args.repeat)]
            median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results["sizes"][str(n)] = median
            print(f"{n:>6} routes: command {median['command']:.3f} s, in-process cpu {median['cpu']:.3f} s ("
                  + ", ".join(f"{k} {median[k]:.3f}" for k in ("load", "checks", "desired", "read", "diff",
                                                                 "render")) + f"), {int(median['changes'])} changes",
                  flush=True)
    results["loadavg_after"] = os.getloadavg()[0]
    sizes = sorted(results["sizes"], key=int)
    if len(sizes) >= 2:
        for key in ("command", "cpu"):
            lo, hi = results["sizes"][sizes[0]][key], results["sizes"][sizes[-1]][key]
            results[f"ratio_{key}"] = hi / lo
            print(f"ratio {sizes[-1]}/{sizes[0]} routes ({key}): {hi / lo:.2f}x")
    print(f"load average {results['loadavg_before']:.1f} before, {results['loadavg_after']:.1f} after")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
