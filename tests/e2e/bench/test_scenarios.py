"""``just load`` and ``just abuse`` at tiny sizes: each runs against a real stack and ends with its line of figures."""

from __future__ import annotations

import re
import subprocess
import sys


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300, check=False)


def test_the_load_run_reports_every_operation_and_no_error() -> None:
    done = run("bench.mixed_load", "--clients", "3", "--seconds", "4")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"load: ops=\d+ errors=0 seconds=\d+ ops_per_second=[\d.]+", lines[-1])
    assert sum(line.startswith("load: submit ") for line in lines) == 1


def test_the_abuse_run_ends_with_its_figures_and_refuses_each_quota_by_type() -> None:
    done = run("bench.abuse", "--flood-seconds", "2", "--heavy-jobs", "30", "--batch-jobs", "50")
    last = done.stdout.splitlines()[-1]
    assert last.startswith("abuse: ") and re.search(r" misses=\d+$", last), done.stdout[-3000:] + done.stderr[-3000:]
    # Timings on a busy test machine are the recipe's business; what must hold anywhere is checked here.
    assert "quota_types=5/5" in last and "glob_status=422" in last, last
    assert "owner_login_status=200" in last and " login_429=0 " not in last, last
    assert done.returncode == (0 if last.endswith(" misses=0") else 1)
