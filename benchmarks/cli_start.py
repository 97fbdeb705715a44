"""How long ``updog --help`` takes from a cold process, and which modules it imports.

Usage: ``python benchmarks/cli_start.py [--repeat 5]``

Prints the best and median wall time of ``python -m updog --help`` over ``--repeat`` fresh
processes, and the heaviest modules ``python -X importtime`` reports for one of them (the CLI
loads a subcommand's module only when it runs, so numpy, scipy, matplotlib and Dask must not
appear).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    command = [sys.executable, "-m", "updog", "--help"]
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(f"updog --help: best {min(times):.3f} s, median {statistics.median(times):.3f} s")
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "updog", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    rows = []
    for line in trace.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    print("heaviest imports (cumulative µs):")
    for micros, name in sorted(rows, reverse=True)[:8]:
        print(f"  {micros:>9,} {name}")


if __name__ == "__main__":
    main()
