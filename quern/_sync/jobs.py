# Generated from quern/_async/jobs.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""Jobs: submit, follow, fetch results: ``client.jobs``."""

from __future__ import annotations

import builtins
import contextlib
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from quern import transfers
from quern._sync.connection import Connection
from quern.deadlines import Deadline
from quern.errors import ApiError, NotFound, NotYet
from quern.models import Batch, Delivery, Event, Job, Link, LogSlice, Output, OutputLink
from quern.transfers import PathLike, ProgressCallback
from quern.transport import STREAM_TIMEOUT, checked, query


class Jobs:
    """Jobs: submit, follow, fetch results: ``client.jobs``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def submit(
        self,
        app: str,
        *,
        params: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Job:
        """Submit a job (``queue``, ``priority``, ``tags``, ``name``, ``timeout_seconds``, ``webhook``...).

        Every submission carries an ``Idempotency-Key`` (a new one unless given), so a retry after a
        lost answer never makes a second job.
        """
        body = {"app": app, "params": params or {}, "inputs": inputs or {}, **query(**options)}
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return self._connection.post(Job, "/v1/jobs", body, headers=headers)

    def submit_batch(self, jobs: builtins.list[dict[str, Any]], *, idempotency_key: str | None = None) -> Batch:
        """Submit up to 10,000 job requests at once (each as ``POST /v1/jobs`` takes it)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return self._connection.post(Batch, "/v1/jobs/batch", {"jobs": jobs}, headers=headers)

    def list(self, **filters: Any) -> Iterator[Job]:
        """The caller's jobs, newest first (``state``, ``app``, ``queue``, ``tag``, ``batch``, ``name_prefix``...)."""
        return self._connection.pages(Job, "/v1/jobs", **filters)

    def get(self, job_id: str) -> Job:
        return self._connection.get(Job, f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> Job:
        return self._connection.post(Job, f"/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        """Delete the job and everything it stored (a running one is canceled first; 409 while it stops)."""
        self._connection.delete(f"/v1/jobs/{job_id}")

    def rerun(self, job_id: str, **overrides: Any) -> Job:
        return self._connection.post(Job, f"/v1/jobs/{job_id}/rerun", query(**overrides) or None)

    def force_state(self, job_id: str, state: str, reason: str) -> Job:
        """Admins: put the job in ``state``, recording ``reason``."""
        return self._connection.post(Job, f"/v1/jobs/{job_id}/state", {"state": state, "reason": reason})

    def events(self, job_id: str, *, after: str | None = None, until: float | None = None) -> Generator[Event, None]:
        """The job's events as they happen (Server-Sent Events), ending with its terminal state.

        ``until`` (a ``time.monotonic()`` instant) ends the stream then, even while no event comes.
        """
        headers = {} if after is None else {"Last-Event-ID": after}
        path = f"/v1/jobs/{job_id}/events"
        with connect_sse(self._connection.http, "GET", path, headers=headers, timeout=STREAM_TIMEOUT) as source:
            if source.response.is_error:
                source.response.read()  # a streamed answer's problem document is not read yet
            checked(source.response)
            for message in Deadline(until).cut(source):
                if message.data:
                    yield Event.model_validate_json(message.data)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
        poll_interval: float = 2.0,
    ) -> Job:
        """Wait until the job ends, following its event stream; polling when the stream fails.

        ``on_event`` sees every event (progress, log lines, state changes) while following.
        TimeoutError after ``timeout`` seconds.
        """
        last: str | None = None
        with Deadline.after(timeout, f"job {job_id} has not ended after {timeout} s") as deadline:
            while True:
                job = self.get(job_id)
                if job.done:
                    return job
                deadline.check()
                try:
                    with contextlib.closing(self.events(job_id, after=last, until=deadline.at)) as events:
                        for event in events:
                            last = event.id
                            if on_event is not None:
                                on_event(event)
                except NotFound:
                    raise
                except (httpx.TransportError, httpx.StreamError, ApiError):
                    # The stream broke (a proxy cut it, the gateway restarted): poll for a while instead.
                    time.sleep(poll_interval)

    def logs(self, job_id: str, name: str = "stdout", *, offset: int = 0, length: int | None = None) -> LogSlice:
        """A byte range of a finished job's log (a negative offset counts from the end)."""
        return self._connection.get(LogSlice, f"/v1/jobs/{job_id}/logs/{name}", offset=offset, length=length)

    def outputs(self, job_id: str) -> builtins.list[Output]:
        answer = self._connection.request("GET", f"/v1/jobs/{job_id}/outputs")
        return [Output.model_validate(item) for item in answer.json()["items"]]

    def output_link(self, job_id: str, path: str) -> OutputLink:
        return self._connection.get(OutputLink, f"/v1/jobs/{job_id}/outputs/{path}")

    def archive_link(self, job_id: str, *, include: builtins.list[str] | None = None, timeout: float = 600) -> Link:
        """The archive's presigned link, waiting while it is packaged (as ``Retry-After`` says)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._connection.get(Link, f"/v1/jobs/{job_id}/archive", include=include)
            except NotYet as exc:
                if time.monotonic() > deadline:
                    raise
                time.sleep(min(exc.retry_after or 1.0, 5.0))

    def download_archive(
        self,
        job_id: str,
        dest: PathLike,
        *,
        include: builtins.list[str] | None = None,
        extract: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Save the job's tar.gz in ``dest`` (checking its sha256), or with ``extract`` unpack it there."""
        link = self.archive_link(job_id, include=include)
        return transfers.fetch_archive(link, dest, name=f"{job_id}.tar.gz", extract=extract, progress=progress)

    def deliveries(self, job_id: str) -> builtins.list[Delivery]:
        answer = self._connection.request("GET", f"/v1/jobs/{job_id}/deliveries")
        return [Delivery.model_validate(item) for item in answer.json()["items"]]
