"""Following a running app's log files: progress markers and rate-limited log lines, read tick by tick.

The app writes stdout and stderr straight to files (no pipes), so the runner reads what each
file grew by since the last tick, at most ``read_bytes`` per file per tick. A line
``##quern progress PERCENT "STEP"`` is a progress report, never a log line; so is each new
content of the progress file (``$QUERN_PROGRESS_FILE``, JSON ``{"percent": P, "step": S}``),
for apps that would rather not print markers. Only a tick's last report is kept (a marker read
after the progress file's report), so a flood of markers costs what one report costs: one
``set_progress``, one progress event and at most one webhook announcement per tick. Other lines are
kept up to ``max_lines`` and ``max_bytes`` per tick across both files (the rest are counted as
dropped; the complete logs are uploaded when the job ends), each cut to ``max_line_bytes``. Lines
are taken one at a time from each read, so a tick holds at most one read (``read_bytes``) per file
and its kept lines in memory, whatever the app printed: the final tick too, which reads to the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog

from shared.errors import AppError
from shared.models import Job, JobProgress, job_event
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()
T = TypeVar("T")
TICK_SECONDS = 1.0
PROGRESS = re.compile(r'^##quern progress (\d{1,3}(?:\.\d+)?) "(.*)"\s*$')
MAX_LINES = 50
MAX_BYTES = 64 * 1024
MAX_LINE_BYTES = 4096
READ_BYTES = 1 * 2**20
TRUNCATED = "…"


@dataclass(frozen=True)
class Progress:
    """One progress report: a percentage (0-100) and what the app is doing."""

    percent: float
    step: str


def parse_progress(line: str) -> Progress | None:
    """The progress report on ``line``, if it is a well-formed marker with a percentage of at most 100."""
    match = PROGRESS.match(line)
    if match is None or float(match.group(1)) > 100:
        return None
    return Progress(percent=float(match.group(1)), step=match.group(2)[:MAX_LINE_BYTES])


@dataclass
class Tick:
    """What one tick found: its last progress report, kept log lines per stream, and lines dropped."""

    progress: Progress | None = None
    lines: dict[str, list[str]] = field(default_factory=dict)
    dropped: int = 0


@dataclass
class _Stream:
    path: Path
    offset: int = 0
    partial: bytes = b""
    overlong: bool = False  # the partial line was already cut; skip the rest of it


class Follower:
    """Reads the growth of a run's log files since the last tick."""

    def __init__(
        self,
        files: dict[str, Path],
        *,
        progress_file: Path | None = None,
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
        read_bytes: int = READ_BYTES,
    ) -> None:
        self._streams = {name: _Stream(path) for name, path in files.items()}
        self._progress_file = progress_file
        self._progress_seen = b""
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._max_line_bytes = max_line_bytes
        self._read_bytes = read_bytes

    def tick(self, *, final: bool = False) -> Tick:
        """Read what was appended; ``final`` reads to the end and ends an unterminated last line."""
        tick = Tick(progress=self._read_progress_file())
        budget = [self._max_lines, self._max_bytes]
        for name, stream in self._streams.items():
            while True:
                chunk = self._read(stream)
                for line in self._lines(stream, chunk, final=final and not chunk):
                    self._take(tick, name, line, budget)
                if not final or not chunk:
                    break
        return tick

    def _read_progress_file(self) -> Progress | None:
        """The progress file's report, if it changed since the last tick and is well formed."""
        if self._progress_file is None:
            return None
        # The app owns tmp/: never follow a link it planted, nor block on a FIFO it made.
        try:
            fd = os.open(self._progress_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            raw = handle.read(MAX_LINE_BYTES + 1)
        if raw == self._progress_seen:
            return None
        self._progress_seen = raw
        try:
            report = json.loads(raw)
            percent, step = float(report["percent"]), str(report["step"])
        except (ValueError, TypeError, KeyError):
            return None  # half written, or not ours to read: the next change may be whole
        if not 0 <= percent <= 100:
            return None
        return Progress(percent=percent, step=step[:MAX_LINE_BYTES])

    def _read(self, stream: _Stream) -> bytes:
        try:
            with stream.path.open("rb") as handle:
                handle.seek(stream.offset)
                chunk = handle.read(self._read_bytes)
        except FileNotFoundError:
            return b""
        stream.offset += len(chunk)
        return chunk

    def _lines(self, stream: _Stream, chunk: bytes, *, final: bool) -> Iterator[str]:
        """The lines ``chunk`` completes, one at a time (a read of tiny lines is never a list of them all)."""
        data, start = stream.partial + chunk, 0
        while (end := data.find(b"\n", start)) != -1:
            raw, start = data[start:end], end + 1
            if stream.overlong:
                stream.overlong = False  # the tail of a line already cut and kept
                continue
            yield self._text(raw)
        rest = data[start:]
        if final and rest and not stream.overlong:
            yield self._text(rest)
            rest = b""
        elif len(rest) > self._max_line_bytes and not stream.overlong:
            yield self._text(rest)
            stream.overlong, rest = True, b""
        elif stream.overlong:
            rest = b""
        stream.partial = rest

    def _text(self, raw: bytes) -> str:
        text = raw[: self._max_line_bytes].decode("utf-8", errors="replace").rstrip("\r")
        return text + TRUNCATED if len(raw) > self._max_line_bytes else text

    def _take(self, tick: Tick, name: str, line: str, budget: list[int]) -> None:
        progress = parse_progress(line)
        if progress is not None:
            tick.progress = progress  # a later report replaces it: only where the app got to matters
            return
        size = len(line.encode())
        if budget[0] <= 0 or budget[1] < size:
            tick.dropped += 1
            return
        budget[0] -= 1
        budget[1] -= size
        tick.lines.setdefault(name, []).append(line)


async def follow_app(
    app: Awaitable[T],
    *,
    job: Job,
    files: dict[str, Path],
    jobs: JobStore,
    events: EventStore,
    progress_file: Path | None = None,
    every: float = TICK_SECONDS,
    on_progress: Callable[[str | None], Awaitable[None]] | None = None,
    follower: Follower | None = None,
) -> T:
    """Await the app's end, recording its progress and log lines about every ``every`` seconds meanwhile.

    ``on_progress`` is called every tick with the id of the tick's latest progress event once it is
    stored, or None when there was none. A ``follower`` of earlier processes goes on where it stopped
    (a TES task's executors append to the same logs).
    """
    follower = follower or Follower(files, progress_file=progress_file)
    running = asyncio.ensure_future(app)
    try:
        final = False
        while not final:  # the last tick is always a final one, read after the app ended
            await asyncio.wait({running}, timeout=every)
            final = running.done()
            tick = await asyncio.to_thread(follower.tick, final=final)
            latest = await _report(tick, job=job, jobs=jobs, events=events)
            if on_progress is not None:
                await on_progress(latest)
    finally:
        running.cancel()  # no-op once it is done; otherwise the app must not outlive its follower
    return running.result()


async def _report(tick: Tick, *, job: Job, jobs: JobStore, events: EventStore) -> str | None:
    """Record a tick's progress (on the job, and as events) and log lines; a database hiccup loses only these.

    Returns the id of the latest progress event stored, if the tick had one.
    """
    latest = None
    if tick.progress is not None:
        latest = job_event(job, "progress", {"percent": tick.progress.percent, "step": tick.progress.step})
    happened = [] if latest is None else [latest]
    for name, lines in tick.lines.items():
        happened.append(job_event(job, "log", {"stream": name, "lines": lines}))
    if tick.dropped:
        log.info("job_log_lines_dropped", job_id=job.id, dropped=tick.dropped)
    try:
        if latest is not None:
            progress = JobProgress(percent=latest.data["percent"], step=latest.data["step"], at=latest.at)
            await jobs.set_progress(job.id, progress, run_token=job.run_token)
        await events.insert_events(happened)
    except AppError as exc:
        log.warning("job_events_lost", job_id=job.id, detail=exc.detail, events=len(happened))
        return None
    return None if latest is None else latest.id
