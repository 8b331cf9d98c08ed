"""Run every benchmark in turn (what `make bench` runs) and keep their tables in one report.

    python bench/run_all.py [--quick] [--only drain --only enqueue ...] [--report FILE]

--quick passes --quick to each script (smaller N: a few minutes in all instead of ~25).
Each script runs as its own process; the report (default bench/last-run.md, not committed)
collects their output in order.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["drain", "enqueue", "latency", "memory", "scaleout"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=SCRIPTS)
    parser.add_argument("--report", default=str(ROOT / "bench" / "last-run.md"))
    args = parser.parse_args(argv)
    failed = []
    with open(args.report, "w") as report:
        for name in args.only or SCRIPTS:
            command = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if args.quick else [])
            banner = f"## bench/{name}.py{' --quick' if args.quick else ''}"
            print(f"\n{banner}", flush=True)
            report.write(f"\n{banner}\n\n```\n")
            start = time.monotonic()
            proc = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                report.write(line)
            code = proc.wait()
            took = f"({time.monotonic() - start:.0f} s, exit {code})"
            print(took, flush=True)
            report.write(f"```\n{took}\n")
            if code:
                failed.append(name)
    print(f"\nreport: {args.report}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
