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
    assert all({"quern", "baseline", "ratio", "goal", "met"} <= set(entry) for entry in rows)
