"""Time ``orgloop --help`` and a subcommand's ``--help`` as whole processes, against ``python -c pass``.

Each run is a fresh process (what a user and tab completion pay): the console script ``orgloop --help``,
``orgloop plan --help`` (a subcommand: its module, and only its module, is imported) and
``orgloop wal --help``, interleaved with the interpreter's own start-up (``python -c pass``) in the same
loop, so a machine that slows down during the run slows every contender alike. Reports the median of
``--repeat`` runs of each, wall-clock and CPU time (user + system, from ``wait4``: on a busy machine the
wall clock includes waiting for a core, the CPU time much less so), the difference to the baseline (what
orgloop's imports cost) and the target: under 150 ms for the whole ``--help`` process.

    python bench/bench_cli.py [--repeat 21] [--out bench/results/cli.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.150
HERE = Path(__file__).resolve().parent


def _orgloop() -> list[str]:
    """The console script beside this interpreter (what `orgloop` runs), else `python -m orgloop`."""
    script = Path(sys.executable).parent / "orgloop"
    return [str(script)] if script.exists() else [sys.executable, "-m", "orgloop"]


def _time(argv: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one run of ``argv``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cli.json")
    args = parser.parse_args()
    orgloop = _orgloop()
    contenders = {"python -c pass": [sys.executable, "-c", "pass"],
                  "orgloop --help": [*orgloop, "--help"],
                  "orgloop plan --help": [*orgloop, "plan", "--help"],
                  "orgloop wal --help": [*orgloop, "wal", "--help"]}
    for argv in contenders.values():           # warm the page cache and .pyc files
        _time(argv)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(args.repeat):
        for name, argv in contenders.items():
            samples[name].append(_time(argv))
    wall = {name: statistics.median(w for w, _c in s) for name, s in samples.items()}
    cpu = {name: statistics.median(c for _w, c in s) for name, s in samples.items()}
    load = os.getloadavg()
    print(f"median of {args.repeat} runs each; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'command':<22} {'wall ms':>8} {'cpu ms':>8} {'wall-py':>8} {'cpu-py':>8} {'target (wall)':>14}")
    for name in contenders:
        target = "" if name == "python -c pass" else ("ok" if wall[name] < TARGET_S else "SLOW") + \
            f" <{TARGET_S * 1000:.0f}"
        print(f"{name:<22} {wall[name] * 1000:>8.1f} {cpu[name] * 1000:>8.1f} "
              f"{(wall[name] - wall['python -c pass']) * 1000:>8.1f} {(cpu[name] - cpu['python -c pass']) * 1000:>8.1f} "
              f"{target:>14}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeat": args.repeat, "loadavg": load, "target_s": TARGET_S,
                                    "median_wall_s": wall, "median_cpu_s": cpu, "samples_wall_cpu_s": samples},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
