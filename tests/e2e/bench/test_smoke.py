"""The bench harness at tiny sizes: every measurement runs against a real stack and reports a row."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def test_the_quick_bench_runs_every_measurement_and_ends_with_the_goals_line(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.fullmatch(r"bench: goals met \d+/\d+", done.stdout.splitlines()[-1])
    rows = json.loads(results.read_text())["rows"]
    figures = {entry["figure"] for entry in rows}
    assert {"submit -> RUNNING p50 (ms)", "gateway peak RSS during upload (MB)"} <= figures
    assert any(figure.startswith("package ") for figure in figures)
    assert any(figure.startswith("trivial jobs per second") for figure in figures)
    # issue 19: the durable baseline's two rows and the per-job call counts, broken down by name and process
    assert "submit -> RUNNING p50 vs durable insert -> start (ms)" in figures
    assert any(figure.startswith("trivial jobs per second vs durable") for figure in figures)
    counted = {entry["figure"].split(" per ")[0]: entry for entry in rows if "per trivial job" in entry["figure"]}
    assert set(counted) == {"Mongo commands", "S3 requests"}
    assert counted["Mongo commands"]["detail"]["by_name"].get("insert", 0) >= 1  # the job itself, at least
    assert counted["S3 requests"]["detail"]["by_process"]["runner"]  # the runner stores the job's logs
    assert all({"quern", "baseline", "ratio", "goal", "met"} <= set(entry) for entry in rows)
