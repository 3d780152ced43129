"""Summary statistics of the CSV tables a control file lists.

The control file is read line by line: text after '!' or '#' is a comment, and each
``Read CSV == PATH`` line names a table, relative to the control file's directory (as TUFLOW
control files refer to their boundary and database files). Other commands are ignored. Given
a directory instead (a whole dataset), every ``*.csv`` under it is a table. For
every column of every table, the numeric cells are counted and summarised; empty and
non-numeric cells are counted apart. Writes summary.json and summary.csv into the working
directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

COMMAND = re.compile(r"^\s*read\s+csv\s*==\s*(.+?)\s*$", re.IGNORECASE)
MAX_TABLES = 1000


def fail(message: str) -> None:
    print(f"tabulate: {message}", file=sys.stderr)
    raise SystemExit(2)


def tables_of(control: Path) -> list[tuple[str, Path]]:
    """The (as written, resolved) paths of the tables the control file lists."""
    found = []
    for number, line in enumerate(control.read_text(encoding="utf-8").splitlines(), start=1):
        match = COMMAND.match(re.split(r"[!#]", line, maxsplit=1)[0])
        if match is None:
            continue
        written = match.group(1).strip("\"'")
        if Path(written).is_absolute():
            fail(f"{control.name} line {number}: {written} must be relative to the control file")
        path = control.parent / written
        if not path.is_file():
            fail(f"{control.name} line {number}: {written} does not exist beside the control file")
        found.append((written, path))
        if len(found) > MAX_TABLES:
            fail(f"more than {MAX_TABLES} tables")
    if not found:
        fail(f"{control.name} lists no tables (expected lines like 'Read CSV == data/flows.csv')")
    return found


def summarise(path: Path) -> dict[str, Any]:
    """Row count and, per column, numeric statistics (Welford's running mean and variance)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            fail(f"{path.name} has no header row")
        stats = [{"count": 0, "other": 0, "min": math.inf, "max": -math.inf, "mean": 0.0, "m2": 0.0} for _ in header]
        rows = 0
        for row in reader:
            rows += 1
            for column, cell in zip(stats, row, strict=False):
                try:
                    value = float(cell)
                except ValueError:
                    column["other"] += 1
                    continue
                if not math.isfinite(value):
                    column["other"] += 1
                    continue
                column["count"] += 1
                delta = value - column["mean"]
                column["mean"] += delta / column["count"]
                column["m2"] += delta * (value - column["mean"])
                column["min"] = min(column["min"], value)
                column["max"] = max(column["max"], value)
    columns = {}
    for name, column in zip(header, stats, strict=True):
        n = column["count"]
        columns[name] = {
            "count": n,
            "non_numeric": column["other"],
            "min": column["min"] if n else None,
            "max": column["max"] if n else None,
            "mean": column["mean"] if n else None,
            "std": math.sqrt(column["m2"] / (n - 1)) if n > 1 else None,
        }
    return {"rows": rows, "columns": columns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--digits", type=int, default=6)
    args = parser.parse_args()
    if args.control.is_dir():
        found = [(path.relative_to(args.control).as_posix(), path) for path in sorted(args.control.rglob("*.csv"))]
        if not found:
            fail("the directory holds no *.csv tables")
    elif args.control.is_file():
        found = tables_of(args.control)
    else:
        fail(f"{args.control} is neither a file nor a directory")
    found = found[:MAX_TABLES]
    tables = {}
    for number, (written, path) in enumerate(found, start=1):
        tables[written] = summarise(path)
        # The step is quoted, as the runner's progress marker requires; the marker cannot hold a newline.
        step = f"summarised {written} ({number}/{len(found)})".replace("\n", " ")
        print(f'##quern progress {100 * number // len(found)} "{step}"', flush=True)
    Path("summary.json").write_text(json.dumps({"control": args.control.name, "tables": tables}, indent=2) + "\n")
    with Path("summary.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["table", "column", "count", "min", "max", "mean", "std"])
        for written, table in tables.items():
            for name, column in table["columns"].items():
                numbers = [column[key] for key in ("min", "max", "mean", "std")]
                out.writerow(
                    [written, name, column["count"], *("" if v is None else f"{v:.{args.digits}g}" for v in numbers)]
                )


if __name__ == "__main__":
    main()
