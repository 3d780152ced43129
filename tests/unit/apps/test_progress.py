"""The shipped apps report progress in the form the runner reads; a malformed marker would only be a log line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.runner.follow import Progress, parse_progress


def markers(argv: list[str], cwd: Path) -> list[Progress | None]:
    """Run an app and parse each ``##quern`` line it prints (None for one the runner would not take)."""
    done = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=True)
    return [parse_progress(line) for line in done.stdout.splitlines() if line.startswith("##quern")]


def test_tabulate_reports_each_table_as_a_progress_step(project: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n2\n")
    (data / "b.csv").write_text("y\n3\n")
    reports = markers([str(project / "apps/tabulate/tabulate.py"), "--control", str(data)], tmp_path)
    assert reports == [Progress(50, "summarised a.csv (1/2)"), Progress(100, "summarised b.csv (2/2)")]


def test_flood_reports_routing_steps_up_to_100_percent(project: Path, tmp_path: Path) -> None:
    (tmp_path / "grid.csv").write_text("3,2,3\n2,1,2\n3,2,3\n")
    argv = [str(project / "apps/flood/flood.py"), "--elevation", str(tmp_path / "grid.csv"), "--rain-mm", "10"]
    argv += ["--steps", "20", "--cell-m", "1", "--boundary", "closed", "--threshold-m", "0.001"]
    reports = markers(argv, tmp_path)
    assert None not in reports and len(reports) == 10
    assert reports[-1] == Progress(100, "routing step 20/20")
