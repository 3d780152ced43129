"""``quern run`` and ``quern jobs ...``: submit, follow, inspect and fetch jobs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from quern.cli.progress import JobWatch, transfer
from quern.cli.render import done, record, removed, table
from quern.cli.session import EXIT_JOB_FAILED, Session, pass_session
from quern.errors import Gone
from quern.models import App, Job

JOB_COLUMNS = ("id", "app", "state", "exit_code", "queue", "name", "created", "progress.percent")
JOB_FIELDS = (
    "id", "app", "app_version", "state", "exit_code", "name", "tags", "queue", "priority", "params", "inputs",
    "created", "started", "finished", "elapsed_seconds", "progress", "error", "attempt",
)  # fmt: skip


def parse_param(app: App, text: str) -> tuple[str, Any]:
    """``key=value``: the value as the app's schema types it (a string stays a string), else as JSON if it parses."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--param")
    schema = app.parameters.get("properties", {}).get(key, {})
    if schema.get("type") == "string":
        return key, raw
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def parse_input(session: Session, text: str) -> tuple[str, Any]:
    """``slot=@path`` (uploaded now), ``slot=dataset:ID[:member]``, or ``slot=FILE_ID``."""
    slot, sep, value = text.partition("=")
    if not sep or not slot or not value:
        raise click.BadParameter(
            f"{text!r} is not SLOT=@PATH, SLOT=FILE_ID or SLOT=dataset:ID[:PATH]", param_hint="--input"
        )
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise click.BadParameter(f"{path} is not a file", param_hint="--input")
        return slot, upload_file(session, path).id
    if value.startswith("dataset:"):
        dataset, _, member = value.removeprefix("dataset:").partition(":")
        return slot, {"dataset": dataset, **({"path": member} if member else {})}
    return slot, value


def upload_file(session: Session, path: Path, name: str | None = None) -> Any:
    """Upload with a progress bar; the File."""
    with transfer(session, f"upload {path.name}", path.stat().st_size) as moved:
        uploaded = session.client.files.upload(path, name=name, progress=moved)
    session.say(f"uploaded {path} as file {uploaded.id} (sha256 {uploaded.sha256})")
    return uploaded


def follow(session: Session, job: Job, *, logs: bool) -> Job:
    """Wait for the job's end, showing its progress and (with ``logs``) its log lines as they come."""
    with JobWatch(session, job.id, logs=logs) as watch:
        ended = session.client.jobs.wait(job.id, on_event=watch)
    verdict = f"job {ended.id} {ended.state}"
    if ended.elapsed_seconds is not None:
        verdict += f" in {ended.elapsed_seconds:.1f} s"
    if ended.exit_code is not None:
        verdict += f" (exit code {ended.exit_code})"
    session.say(verdict)
    if ended.error is not None:
        session.say(f"error: {ended.error.reason}")
    return ended


def download(session: Session, job: Job, directory: Path) -> Path:
    """Fetch the job's archive with a progress bar and unpack it under ``directory``."""
    with transfer(session, "download results", None) as moved:  # the size arrives with the first report
        session.client.jobs.download_archive(job.id, directory, extract=True, progress=moved)
    session.say(f"results in {directory / job.id}")
    return directory / job.id


@click.command(context_settings={"show_default": True})
@click.argument("app")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeat for more).")
@click.option(
    "--input", "-i", "inputs", multiple=True, metavar="SLOT=@PATH|SLOT=FILE_ID|SLOT=dataset:ID[:PATH]",
    help="An input: a local file to upload, an uploaded file's id, or a dataset (optionally one member).",
)  # fmt: skip
@click.option("--name", help="A name for the job.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for more).")
@click.option("--queue", "-q", help="One of your queues (default: default).")
@click.option("--priority", type=click.IntRange(0, 9), help="0-9; higher starts first (default 5).")
@click.option("--timeout", "timeout_seconds", type=click.IntRange(1), help="Seconds before the job is killed.")
@click.option("--wait", "-w", is_flag=True, help="Wait for the end, showing progress and the log tail.")
@click.option("--logs/--no-logs", default=True, help="With --wait: print the job's log lines as they come.")
@click.option(
    "--download", "-d", type=click.Path(file_okay=False, path_type=Path),
    help="With --wait: unpack the results archive into this directory (implies --wait).",
)  # fmt: skip
@pass_session
def run(
    session: Session,
    app: str,
    params: tuple[str, ...],
    inputs: tuple[str, ...],
    name: str | None,
    tags: tuple[str, ...],
    queue: str | None,
    priority: int | None,
    timeout_seconds: int | None,
    wait: bool,
    logs: bool,
    download: Path | None,
) -> int:
    """Run APP: upload local inputs, submit the job, and optionally wait for it and fetch its results.

    \b
    Examples:
      quern run flood -p rain_mm=80 -i elevation=@valley.csv --wait --download results/
      quern run tabulate -i control=dataset:DATASET_ID:model/run.tcf
    Exit status: 0 once submitted (with --wait: once it SUCCEEDED), 1 if the job did not succeed.
    """
    options = {
        "name": name,
        "tags": list(tags),
        "queue": queue,
        "priority": priority,
        "timeout_seconds": timeout_seconds,
    }
    return submit(session, app, params, inputs, options, wait=wait or download is not None, logs=logs, into=download)


def submit(
    session: Session,
    app: str,
    params: tuple[str, ...] | list[str],
    inputs: tuple[str, ...] | list[str],
    options: dict[str, Any],
    *,
    wait: bool,
    logs: bool,
    into: Path | None,
) -> int:
    """Upload the inputs, submit the job and, with ``wait``, follow it and unpack its results ``into`` a directory."""
    described = session.client.apps.get(app)  # new jobs run its latest enabled version
    values = dict(parse_param(described, text) for text in params)
    slots = dict(parse_input(session, text) for text in inputs)
    job = session.client.jobs.submit(app, params=values, inputs=slots, **options)
    session.say(f"job {job.id} submitted ({job.app} {job.app_version}, queue {job.queue})")
    if not wait:
        record(session, job, ("id", "state", "app", "app_version", "queue"))
        return 0
    ended = follow(session, job, logs=logs)
    if into is not None:
        fetch_results(session, ended, into)
    if session.as_json:
        record(session, ended)
    return 0 if ended.succeeded else EXIT_JOB_FAILED


def fetch_results(session: Session, job: Job, directory: Path) -> None:
    """Download a finished job's archive, or say why there is none (it never ran)."""
    if job.started is None:
        session.say(f"job {job.id} never ran: it has no results to download")
        return
    download(session, job, directory)


@click.group()
def jobs() -> None:
    """List, inspect, follow, cancel, delete and re-run jobs."""


@jobs.command("ls")
@click.option("--state", "states", multiple=True, help="QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELED.")
@click.option("--app", help="Only this app's jobs.")
@click.option("--queue", help="Only this queue's jobs.")
@click.option("--tag", help="Only jobs with this tag.")
@click.option("--name-prefix", help="Only jobs whose name starts so.")
@click.option("--limit", "-n", type=click.IntRange(1), default=20, show_default=True, help="At most this many.")
@pass_session
def list_jobs(
    session: Session,
    states: tuple[str, ...],
    app: str | None,
    queue: str | None,
    tag: str | None,
    name_prefix: str | None,
    limit: int,
) -> None:
    """Your jobs, newest first."""
    found = session.client.jobs.list(
        state=",".join(states) or None, app=app, queue=queue, tag=tag, name_prefix=name_prefix, limit=min(limit, 500)
    )
    table(session, (job for _, job in zip(range(limit), found, strict=False)), JOB_COLUMNS)


@jobs.command("show")
@click.argument("job_id")
@pass_session
def show(session: Session, job_id: str) -> None:
    """One job in full."""
    record(session, session.client.jobs.get(job_id), None if session.as_json else JOB_FIELDS)


@jobs.command("wait")
@click.argument("job_id")
@click.option("--logs/--no-logs", default=False, help="Print the job's log lines as they come.")
@click.option("--download", "-d", type=click.Path(file_okay=False, path_type=Path), help="Unpack the results here.")
@pass_session
def wait_for(session: Session, job_id: str, logs: bool, download: Path | None) -> int:
    """Wait for a job to end; exit 1 unless it SUCCEEDED."""
    ended = follow(session, session.client.jobs.get(job_id), logs=logs)
    if download is not None:
        fetch_results(session, ended, download)
    if session.as_json:
        record(session, ended)
    return 0 if ended.succeeded else EXIT_JOB_FAILED


@jobs.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", "following", is_flag=True, help="Stream the lines while the job runs.")
@click.option("--stderr", "stream", flag_value="stderr", help="The error stream instead of stdout.")
@click.option("--stdout", "stream", flag_value="stdout", default=True, hidden=True)
@pass_session
def logs(session: Session, job_id: str, following: bool, stream: str) -> None:
    """A job's log: the stored file once it has ended; with -f, the lines as they come until it ends."""
    job = session.client.jobs.get(job_id)
    if following and not job.done:
        for event in session.client.jobs.events(job_id):
            if event.type == "log" and event.data.get("stream") == stream:
                for line in event.data.get("lines", []):
                    click.echo(line)
                sys.stdout.flush()
        return
    if not job.done:
        raise click.UsageError(f"job {job_id} is {job.state}: its log is stored when it ends (use -f to follow it)")
    offset = 0
    while True:
        piece = session.client.jobs.logs(job_id, stream, offset=offset, length=1 << 20)
        sys.stdout.write(piece.text)
        if piece.next_offset >= piece.size:
            break
        offset = piece.next_offset
    sys.stdout.flush()


@jobs.command("cancel")
@click.argument("job_ids", nargs=-1, required=True)
@pass_session
def cancel(session: Session, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs: queued ones at once, running ones within seconds."""
    for job_id in job_ids:
        job = session.client.jobs.cancel(job_id)
        stopping = " (stopping)" if job.state == "RUNNING" else ""
        done(session, f"job {job.id} {job.state}{stopping}", id=job.id, state=job.state)


@jobs.command("rm")
@click.argument("job_ids", nargs=-1, required=True)
@pass_session
def remove(session: Session, job_ids: tuple[str, ...]) -> None:
    """Delete jobs and everything they stored (a running one is canceled first)."""
    removed(session, "job", job_ids, session.client.jobs.delete)


@jobs.command("rerun")
@click.argument("job_id")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="Override a parameter.")
@click.option("--queue", "-q", help="Run it in another queue.")
@click.option("--priority", type=click.IntRange(0, 9))
@pass_session
def rerun(session: Session, job_id: str, params: tuple[str, ...], queue: str | None, priority: int | None) -> None:
    """A new job like JOB_ID, with some parameters changed."""
    old = session.client.jobs.get(job_id)
    overrides = dict(parse_param(session.client.apps.get(old.app, version=old.app_version), text) for text in params)
    job = session.client.jobs.rerun(job_id, params={**old.params, **overrides} if overrides else None, queue=queue,
                                    priority=priority)  # fmt: skip
    done(session, f"job {job.id} submitted (a rerun of {job_id})", id=job.id, rerun_of=job_id, state=job.state)


@jobs.command("download")
@click.argument("job_id")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--include", multiple=True, help="Only outputs matching this glob (repeat for more).")
@click.option("--no-extract", is_flag=True, help="Keep the tar.gz instead of unpacking it.")
@pass_session
def download_cmd(session: Session, job_id: str, directory: Path, include: tuple[str, ...], no_extract: bool) -> None:
    """Fetch a finished job's results archive (checked against its sha256) and unpack it."""
    try:
        with transfer(session, "download results", None) as moved:  # the size arrives with the first report
            where = session.client.jobs.download_archive(
                job_id, directory, include=list(include) or None, extract=not no_extract, progress=moved
            )
    except Gone as exc:
        raise click.ClickException(f"job {job_id}'s results have expired") from exc
    done(session, f"saved in {where}", path=str(where))
