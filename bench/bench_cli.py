"""Time ``orgloop --help`` and a subcommand's ``--help`` as whole processes, against ``python -c pass``.

Each run is a fresh process (what a user and tab completion pay): the console script ``orgloop --help``,
``orgloop plan --help`` (a subcommand: its module, and only its module, is imported) and
``orgloop wal --help``, interleaved with the interpreter's own start-up (``python -c pass``) in the same
loop, so a machine that slows down during the run slows every contender alike. Reports the median of
``--repeat`` runs of each, the difference to the baseline (what orgloop's imports cost) and the target:
under 150 ms for the whole ``--help`` process.

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


def _time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


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
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeat):
        for name, argv in contenders.items():
            samples[name].append(_time(argv))
    medians = {name: statistics.median(s) for name, s in samples.items()}
    base = medians["python -c pass"]
    load = os.getloadavg()
    print(f"median of {args.repeat} runs each; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'command':<22} {'median ms':>10} {'- python ms':>12} {'target':>8}")
    for name, m in medians.items():
        target = "" if name == "python -c pass" else ("ok" if m < TARGET_S else "SLOW") + f" <{TARGET_S * 1000:.0f}"
        print(f"{name:<22} {m * 1000:>10.1f} {(m - base) * 1000:>12.1f} {target:>8}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeat": args.repeat, "loadavg": load, "target_s": TARGET_S,
                                    "median_s": medians, "samples_s": samples}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
