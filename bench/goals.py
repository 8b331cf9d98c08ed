"""Issue 15's goals, one place: each script that measures one prints a machine-readable line

    GOAL <name> <value> <op><target> MET|MISSED  # <detail>

and `run_all.py` collects them into the summary table (and bench/last-goals.json).
"""

from __future__ import annotations

import operator
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    what: str
    op: str  # ">=", "<=", "<"
    target: float
    unit: str
    script: str

    def met(self, value: float) -> bool:
        compare: Callable[[float, float], bool] = {
            ">=": operator.ge,
            "<=": operator.le,
            "<": operator.lt,
        }[self.op]
        return compare(value, self.target)


GOALS: dict[str, Goal] = {
    "single_vs_lean": Goal(
        "single sends / lean hand-written task, per worker process, 100 ms",
        ">=",
        1.5,
        "x",
        "drain",
    ),
    "single_cpu_ms": Goal("worker CPU per single send, 100 ms", "<=", 1.0, "ms", "drain"),
    "campaign_jobs_s": Goal(
        "campaign, 2 worker processes, in-flight 100, 100 ms", ">=", 800, "jobs/s", "drain"
    ),
    "enqueue_vs_trivial": Goal(
        "enqueue route / trivial FastAPI route, req/s, 64 connections", ">=", 50, "%", "enqueue"
    ),
    "enqueue_p99_ms": Goal("enqueue route p99, 64 connections", "<", 50, "ms", "enqueue"),
    "worker_group_peak_rss_mb": Goal(
        "`twilio-jobs worker` group (supervisor + celery) peak RSS, ~4,000 jobs",
        "<=",
        150,
        "MB",
        "memory",
    ),
    "roundtrips_per_send": Goal(
        "Redis round trips per single send, end to end", "<=", 6, "", "redis_roundtrips"
    ),
}

LINE = re.compile(r"^GOAL (\S+) (\S+) (>=|<=|<)(\S+) (MET|MISSED)(?:\s+#\s*(.*))?$")


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def emit(name: str, value: float, detail: str = "") -> bool:
    """Print the GOAL line for `name`; returns whether it is met."""
    goal = GOALS[name]
    met = goal.met(value)
    line = f"GOAL {name} {number(value)} {goal.op}{goal.target:g} {'MET' if met else 'MISSED'}"
    print(line + (f"  # {detail}" if detail else ""), flush=True)
    return met


def parse(line: str) -> dict[str, object] | None:
    """A GOAL line as a dict, or None for any other line."""
    match = LINE.match(line.strip())
    if not match:
        return None
    name, value, op, target, verdict, detail = match.groups()
    return {
        "name": name,
        "value": float(value),
        "op": op,
        "target": float(target),
        "met": verdict == "MET",
        "detail": detail or "",
    }


if __name__ == "__main__":  # echo the goals
    for key, goal in GOALS.items():
        print(f"{key}: {goal.what} {goal.op} {goal.target:g}{goal.unit} ({goal.script})")
    sys.exit(0)
