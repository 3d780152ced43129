"""Progress shown while the CLI waits: transfer bars (bytes, rate, ETA) and a job's percent and log tail.

Everything goes to stderr, so ``--json`` output on stdout stays clean; on a terminal the bars
redraw in place, elsewhere only the final lines are printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from quern.cli.session import Session
from quern.models import Event
from quern.transfers import ProgressCallback


@contextmanager
def transfer(session: Session, label: str, total: int | None) -> Iterator[ProgressCallback]:
    """A bar for one upload or download; yields the callback the SDK calls with (done, total)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=session.errors, transient=False) as bar:
        task = bar.add_task(escape(label), total=total)

        def moved(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield moved


class JobWatch:
    """While a job runs: a bar of its reported percent and step, with its log lines printed above it."""

    def __init__(self, session: Session, job_id: str, *, logs: bool) -> None:
        self._session = session
        self._logs = logs
        self._bar = Progress(
            TextColumn("{task.fields[state]:<9}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=session.errors,
        )
        self._task = self._bar.add_task("", total=100, state="QUEUED")
        self.job_id = job_id

    def __enter__(self) -> JobWatch:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, event: Event) -> None:
        """Show one event: a state change, a progress report, or log lines."""
        if event.type == "state":
            self._bar.update(self._task, state=event.data.get("state", "?"))
        elif event.type == "progress":
            percent = float(event.data.get("percent", 0))
            self._bar.update(self._task, completed=percent, description=escape(str(event.data.get("step", ""))))
        elif event.type == "log" and self._logs:
            stream = event.data.get("stream", "stdout")
            for line in event.data.get("lines", []):
                style = "red" if stream == "stderr" else "dim"
                self._bar.console.print(f"[{style}]{escape(line)}[/{style}]")
