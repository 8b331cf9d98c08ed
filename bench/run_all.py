"""Run every benchmark in turn (what `make bench` runs) and keep their tables in one report.

    python bench/run_all.py [--quick] [--only drain --only enqueue ...] [--report FILE]

--quick passes --quick to each script (smaller N: a few minutes in all instead of ~25).
Each script runs as its own process; the report (default bench/last-run.md, not committed)
collects their output in order. The scripts print issue 15's goals as `GOAL` lines
(bench/goals.py); at the end this prints them as one table, each goal with its figure and
MET or MISSED (a goal whose script did not run or failed: "not measured"), and writes them to
bench/last-goals.json (not committed). Exits 1 if a script failed, not for a missed goal.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import goals  # noqa: E402

SCRIPTS = ["drain", "enqueue", "latency", "memory", "scaleout", "redis_roundtrips"]


def goal_table(found: dict[str, dict[str, object]]) -> list[str]:
    """The summary: every goal of bench/goals.py with what this run measured."""
    lines = [
        "| goal | target | measured | | detail | script |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, goal in goals.GOALS.items():
        target = f"{goal.op} {goal.target:g}{(' ' + goal.unit) if goal.unit else ''}"
        got = found.get(name)
        if got is None:
            row = [goal.what, target, "-", "not measured", "", goal.script]
        else:
            value = goals.number(float(got["value"]))  # type: ignore[arg-type]
            verdict = "MET" if got["met"] else "MISSED"
            row = [goal.what, target, f"{value}{(' ' + goal.unit) if goal.unit else ''}",
                   verdict, str(got["detail"]), goal.script]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=SCRIPTS)
    parser.add_argument("--report", default=str(ROOT / "bench" / "last-run.md"))
    parser.add_argument("--goals", default=str(ROOT / "bench" / "last-goals.json"))
    args = parser.parse_args(argv)
    failed = []
    found: dict[str, dict[str, object]] = {}
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
                goal = goals.parse(line)
                if goal is not None:
                    found[str(goal["name"])] = {**goal, "script": name}
            code = proc.wait()
            took = f"({time.monotonic() - start:.0f} s, exit {code})"
            print(took, flush=True)
            report.write(f"```\n{took}\n")
            if code:
                failed.append(name)
        load = os.getloadavg()
        title = (
            f"## Issue 15 goals{' (--quick)' if args.quick else ''}: one run, "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, load average at the end "
            f"{load[0]:.1f} on {os.cpu_count()} cores (figures from a shared machine are "
            "indicative)"
        )
        table = goal_table(found)
        print(f"\n{title}\n")
        print("\n".join(table), flush=True)
        report.write(f"\n{title}\n\n" + "\n".join(table) + "\n")
    met = sum(1 for g in found.values() if g["met"])
    print(f"\ngoals: {met} met, {len(found) - met} missed, "
          f"{len(goals.GOALS) - len(found)} not measured")  # fmt: skip
    with open(args.goals, "w") as out:
        json.dump(
            {"quick": args.quick, "load": os.getloadavg(), "failed": failed, "goals": found},
            out,
            indent=2,
        )
    print(f"report: {args.report}; goals: {args.goals}" + (
        f"; failed: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
