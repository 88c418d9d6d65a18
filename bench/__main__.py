"""`make bench`: every figure of the gateway's job, measured in one run, in one table.

Runs each figure in turn (bench/fig_*.py), prints the table, writes docs/benchmarks.md and
.bench/results.json, and exits 1 when a target is missed, naming it.
"""

from __future__ import annotations

import json
import sys
import time

from bench import (
    fig_cancel,
    fig_concurrency,
    fig_cost,
    fig_idle,
    fig_limits,
    fig_workers,
    machine,
    report,
)
from bench.process import ROOT, pin_clients


def measure_all() -> dict:
    steps = {
        "cost": fig_cost.measure,
        "concurrency": fig_concurrency.measure,
        "idle": fig_idle.measure,
        "cancel": fig_cancel.measure,
        "limits": fig_limits.measure,
        "workers": fig_workers.measure,
    }
    results = {}
    for name, step in steps.items():
        print(f"measuring: {name}", flush=True)
        results[name] = step()
    return results


def main() -> int:
    pin_clients()
    started = time.perf_counter()
    results = measure_all()
    seconds = time.perf_counter() - started
    table = report.rows(results)
    described = machine.describe()
    print(report.console(table))
    (ROOT / "docs" / "benchmarks.md").write_text(report.markdown(table, described, seconds))
    failed = report.missed(table)
    out = ROOT / ".bench"
    out.mkdir(exist_ok=True)
    results |= {
        "machine": described,
        "seconds": seconds,
        "table": [row.__dict__ | {"status": row.status} for row in table],
        "missed": [row.figure for row in failed],
        "targets_met": not failed,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"written: docs/benchmarks.md, .bench/results.json ({seconds:.0f} s)")
    for row in failed:
        print(f"MISSED: {row.figure}: {row.measured} (target {row.target})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
