"""Time ``orgloop validate`` (load_project + check_project) on generated projects of 1,000 and 10,000 routes.

Both projects have 2,000 sources and 500 actors (``bench/gen_project.py``); routes are spread over 100
route files. Each size is loaded ``--repeat`` times, each time in a fresh process (imports not timed),
and the median is reported, split into loading (parse, substitute, schema) and the cross-file checks,
with the CPU time of both (a better figure than wall time on a busy machine);
``command s`` is the wall-clock time of a whole ``orgloop validate`` process (interpreter start, imports
and output included). Targets: 10,000 routes under 2 s, and no worse than about 10x the 1,000-route
figure (linear scaling).

Run: ``python bench/bench_config.py [--repeat 3] [--out bench/results/config.json]``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gen_project import write_project  # noqa: E402

SIZES = (1_000, 10_000)


_ONE_RUN = """
import json, sys, time
from orgloop.config._gc import cyclic_gc_paused
from orgloop.config.checks import check_project
from orgloop.config.loader import load_project
c0, t0 = time.process_time(), time.perf_counter()
with cyclic_gc_paused(freeze=True):          # as cli/_project.load_for_command does
    project = load_project(sys.argv[1], workspace="default", env={})
    t1 = time.perf_counter()
    check_project(project)
c2, t2 = time.process_time(), time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, c2 - c0, len(project.errors)]))
"""


def measure(root: Path) -> tuple[float, float, float, int]:
    """Seconds to load and to check the project once in a fresh process (as ``orgloop validate`` does,
    imports excluded), the CPU seconds of both (less sensitive to a busy machine), and the errors found."""
    out = subprocess.run([sys.executable, "-c", _ONE_RUN, str(root)], check=True, capture_output=True, text=True)
    load, check, cpu, errors = json.loads(out.stdout)
    return load, check, cpu, errors


def measure_command(root: Path) -> float:
    """Wall-clock seconds of a whole ``orgloop validate`` process (interpreter start and imports included)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orgloop", "validate", "-p", str(root), "--format", "json"],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "config.json")
    args = parser.parse_args()
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for routes in SIZES:
            root = Path(tmp) / f"p{routes}"
            write_project(root, sources=2000, actors=500, routes=routes)
            runs = [measure(root) for _ in range(args.repeat)]
            if any(run[3] for run in runs):
                raise SystemExit(f"the generated project of {routes} routes has errors")
            load = statistics.median(r[0] for r in runs)
            check = statistics.median(r[1] for r in runs)
            results[routes] = {"load_s": load, "check_s": check,
                               "validate_s": statistics.median(r[0] + r[1] for r in runs),
                               "validate_cpu_s": statistics.median(r[2] for r in runs),
                               "command_s": statistics.median(measure_command(root) for _ in range(args.repeat)),
                               "files": len(list(root.rglob("*.yaml")))}
    print(f"{'routes':>7} {'files':>6} {'load s':>8} {'checks s':>9} {'validate s':>11} {'(cpu s)':>8} "
          f"{'command s':>10}")
    for routes, row in results.items():
        print(f"{routes:>7} {row['files']:>6} {row['load_s']:>8.3f} {row['check_s']:>9.3f} "
              f"{row['validate_s']:>11.3f} {row['validate_cpu_s']:>8.3f} {row['command_s']:>10.3f}")
    ratio = results[SIZES[1]]["validate_s"] / results[SIZES[0]]["validate_s"]
    print(f"10k / 1k: {ratio:.1f}x (target <= ~10x); 10k validate {results[SIZES[1]]['validate_s']:.2f} s "
          f"(target < 2 s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeat": args.repeat, "sources": 2000, "actors": 500, "route_files": 100,
                                    "results": results, "ratio_10k_vs_1k": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
