"""``just bench``: every measurement against its bare baseline, one table, ``bench/results.json``.

``python -m bench`` runs them at full size; ``--quick`` at tiny sizes (the smoke test's), where
the figures mean nothing but every path runs. The last line is ``bench: goals met K/N``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import call_counts, latency, package_rss, read_path, scale, throughput, ui_page, upload_rss
from bench.harness import RESULTS, bench_stack, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that every measurement runs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON results")
    args = parser.parse_args(argv)
    # Throughput runs 500 jobs, not issue 7's 2,000: at today's ~4-8 jobs/s, 2,000 alone would take the budget.
    jobs, many, upload_mb, package_mb = (5, 10, 8, 8) if args.quick else (100, 500, 1024, 1024)
    stored, batch, read_seconds = (300, 100, 0.5) if args.quick else (100_000, 10_000, 5.0)
    rounds, pages = (1, 3) if args.quick else (3, 30)  # --quick: one sample of each path is enough
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="quern-bench-") as work, bench_stack(Path(work)) as stack:
        # Latency first, while the stack is idle; then the bulk transfers.
        measurements: list[tuple[str, Callable[[Path], list[dict[str, Any]]]]] = [
            ("latency", lambda where: latency.measure(stack, jobs, where)),
            ("throughput", lambda where: throughput.measure(stack, many, where)),
            ("upload", lambda where: upload_rss.measure(stack, upload_mb, where)),
            ("package", lambda where: package_rss.measure(stack, package_mb, where)),
            ("read_path", lambda where: read_path.measure(stack, where, seconds=read_seconds, rounds=rounds)),
            ("ui_page", lambda where: ui_page.measure(stack, where, rounds=rounds, requests=3 if args.quick else 30)),
            # Last: it leaves 100,000 jobs in the store and a paused queue of 10,000.
            ("scale", lambda where: scale.measure(stack, where, count=stored, batch=batch, pages=pages)),
        ]
        for name, measure in measurements:
            where = Path(work) / name
            where.mkdir()
            print(f"bench: measuring {name}", flush=True)
            rows += measure(where)
    with tempfile.TemporaryDirectory(prefix="quern-bench-") as work:
        # A stack of its own, started with QUERN_COUNT_CALLS, so no other figure is taken with counting on.
        print("bench: measuring call_counts", flush=True)
        rows += call_counts.measure(Path(work), jobs, idle_seconds=2.0 if args.quick else 10.0)
    print(report(rows, args.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
