"""Generate the blocking SDK (quern/_sync) from the asyncio one (quern/_async), as httpcore's scripts/unasync.py does.

    python scripts/unasync.py          # rewrite quern/_sync from quern/_async (`just fmt` runs it)
    python scripts/unasync.py --check  # exit 1, naming each stale file, when quern/_sync is not what it would write

Every module but ``__init__.py`` goes through ``SUBSTITUTIONS`` in order, then ruff drops the
imports the blocking code no longer uses, sorts the rest, turns a loop of yields into ``yield
from`` and formats it (the project's ruff settings), so the generated files pass lint as they
are. A substitution that matches nowhere fails the run: a rule the source no longer needs goes
too. What has no textual twin (timeouts, progress from worker threads) is written by hand in
both flavours outside these packages (``quern.deadlines``, ``quern.transfers``).
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE, TARGET = Path("quern/_async"), Path("quern/_sync")
HEADER = "# Generated from {source} by scripts/unasync.py: edit that file, then run `just fmt`.\n"

SUBSTITUTIONS: list[tuple[str, str]] = [
    # A worker thread keeps asyncio's loop free; blocking code calls the function itself.
    (r"\bawait asyncio\.to_thread\(\s*([\w.]+)\)", r"\1()"),
    (r"\bawait asyncio\.to_thread\(\s*([\w.]+),\s*", r"\1("),
    # Progress reported from a worker thread is handed back to the loop; blocking code has no loop.
    (r"\bon_loop\(([\w.]+)\)", r"\1"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"(?m)^.*# async only: .*\n", ""),
    (r"\bquern\._async\b", "quern._sync"),
    (r"\bAsync([A-Z]\w*)\b", r"\1"),
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclosing\b", "closing"),
    (r"\baclose\b", "close"),
    (r"\baconnect_sse\b", "connect_sse"),
    (r"\baread_range\b", "read_range"),
    (r"\baread\b", "read"),
]
COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in SUBSTITUTIONS]


def unasync(text: str, used: set[int]) -> str:
    """``text`` with every substitution applied, noting in ``used`` which ones matched."""
    for index, (pattern, replacement) in enumerate(COMPILED):
        text, count = pattern.subn(replacement, text)
        if count:
            used.add(index)
    return text


def ruff(args: list[str], text: str, filename: Path) -> str:
    """``text`` as ruff ``args`` leave it, read as ``filename`` under the project's settings."""
    command = [sys.executable, "-m", "ruff", *args, "--no-cache", "--stdin-filename", str(filename), "-"]
    done = subprocess.run(command, input=text, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ruff {' '.join(args)} failed on the generated {filename}:\n{done.stdout}{done.stderr}")
    return done.stdout


def generate(source: Path, used: set[int]) -> str:
    """The blocking twin of the module at ``source`` (relative to the project), ready to be written."""
    target = TARGET / source.name
    text = HEADER.format(source=source.as_posix()) + unasync((ROOT / source).read_text(), used)
    text = ruff(["check", "--fix", "--unsafe-fixes", "--select", "F401,I,UP028"], text, target)
    return ruff(["format"], text, target)


def main(argv: list[str]) -> int:
    """Write quern/_sync, or with ``--check`` only say which of its files are stale; the exit status."""
    check = "--check" in argv
    used: set[int] = set()
    expected = {
        TARGET / path.name: generate(path.relative_to(ROOT), used)
        for path in sorted((ROOT / SOURCE).glob("*.py"))
        if path.name != "__init__.py"
    }
    unused = [SUBSTITUTIONS[index] for index in range(len(SUBSTITUTIONS)) if index not in used]
    if unused:
        print(f"substitutions that matched nowhere (remove them): {unused}", file=sys.stderr)
        return 1
    present = {path.relative_to(ROOT) for path in (ROOT / TARGET).glob("*.py") if path.name != "__init__.py"}
    stale = 0
    for target in sorted(present - expected.keys()):
        stale += 1
        if check:
            print(f"{target} has no source in {SOURCE}", file=sys.stderr)
        else:
            (ROOT / target).unlink()
    for target, text in expected.items():
        current = (ROOT / target).read_text() if (ROOT / target).exists() else ""
        if current == text:
            continue
        stale += 1
        if check:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(target), "generated", lineterm="")
            print(f"{target} is stale:", *list(diff)[:40], sep="\n", file=sys.stderr)
        else:
            (ROOT / target).write_text(text)
            print(f"wrote {target}")
    if check and stale:
        print(f"{stale} stale file(s) in {TARGET}: run python scripts/unasync.py (or just fmt)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
