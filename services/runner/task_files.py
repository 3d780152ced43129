"""A TES task's files: its inputs staged into its tree before the executors, its outputs delivered after them.

Inputs come inline (``content``), from the TES buckets (``s3://``, with the ``TES_S3_*``
credentials), from the web (``http(s)://``, behind the SSRF guard, at most
``TES_HTTP_INPUT_MAX_MB``), or from quern: ``quern://files/ID``, ``quern://datasets/ID`` (every
member, as a directory) and ``quern://datasets/ID/<member path>`` (that member), each the job's
owner's. Outputs go to the TES buckets or stay in quern as the job's outputs
(``quern://outputs/NAME``: under the run's prefix, downloadable and archived like any job's).
A directory, or a path with wildcards under its ``path_prefix``, delivers each file under it,
named by its path relative to that directory. Each step may be repeated after an outage.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.runner.sandbox import Sandbox
from services.runner.task_buckets import TaskBuckets
from services.runner.task_tree import files_under, has_wildcards, host_path, open_in, output_dir
from services.runner.transfers import download_members, upload_outputs
from shared.errors import Invalid, NotFound
from shared.globs import compile_glob
from shared.models import Job, OutputFile
from shared.models.tasks import OutputFileLog, TaskInput, TaskOutput
from shared.outbound import Network, download
from shared.storage import ObjectStorage
from shared.store.datasets import DatasetStore
from shared.store.files import FileStore

HTTP_TIMEOUT_SECONDS = 60.0
QUERN_OUTPUTS = "quern://outputs/"


@dataclass(frozen=True)
class Sources:
    """Where a task's inputs come from and its outputs go."""

    files: FileStore
    datasets: DatasetStore
    storage: ObjectStorage
    buckets: TaskBuckets
    networks: tuple[Network, ...]
    http_max_bytes: int


async def stage_task_inputs(job: Job, sandbox: Sandbox, *, sources: Sources) -> None:
    """Put every input of the job's task at its path's mirror under ``task/``."""
    assert job.task is not None
    for one in job.task.inputs:
        target = host_path(sandbox.task, one.path)
        if one.type == "FILE":
            target.parent.mkdir(parents=True, exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
        await _stage(job, one, target, sources=sources)


async def _stage(job: Job, one: TaskInput, target: Path, *, sources: Sources) -> None:
    url = one.url or ""
    if one.content is not None:
        await asyncio.to_thread(target.write_text, one.content)
    elif url.startswith("s3://"):
        if one.type == "DIRECTORY":
            await asyncio.to_thread(sources.buckets.download_tree, url, target)
        else:
            await asyncio.to_thread(sources.buckets.download, url, target)
    elif url.startswith(("http://", "https://")):
        with target.open("wb") as sink:
            await download(
                url, sink, max_bytes=sources.http_max_bytes, timeout=HTTP_TIMEOUT_SECONDS, networks=sources.networks
            )
    elif url.startswith("quern://files/"):
        file_id = url.removeprefix("quern://files/")
        stored = (await sources.files.get_files([file_id], owner=job.owner)).get(file_id)
        if stored is None:
            raise NotFound(f"input {one.path}: file {file_id} does not exist (or is not the task owner's)")
        await asyncio.to_thread(sources.storage.download_file, stored.key, target)
    elif url.startswith("quern://datasets/"):
        dataset_id, _, member = url.removeprefix("quern://datasets/").partition("/")
        dataset = (await sources.datasets.get_datasets([dataset_id], owner=job.owner)).get(dataset_id)
        if dataset is None:
            raise NotFound(f"input {one.path}: dataset {dataset_id} does not exist (or is not the task owner's)")
        if not member:
            await download_members(dataset, target, storage=sources.storage)
        elif member in {each.path for each in dataset.members}:
            await asyncio.to_thread(sources.storage.download_file, dataset.prefix + member, target)
        else:
            raise NotFound(f"input {one.path}: dataset {dataset_id} holds no {member}")
    else:
        raise Invalid(f"input {one.path}: {url or 'no url and no content'} cannot be staged")


@dataclass(frozen=True)
class Delivery:
    """One file an output delivers: its container path, and where it goes."""

    path: str
    url: str


def deliveries(task_dir: Path, outputs: list[TaskOutput]) -> list[Delivery]:
    """Every file the outputs deliver, found in the task's tree; a FILE output that is missing is ``Invalid``."""
    found = []
    for output in outputs:
        if output.type == "FILE" and not has_wildcards(output):
            try:
                open_in(task_dir, output.path).close()
            except Invalid as exc:
                raise Invalid(f"output {output.path}: the executors left no file there ({exc.detail})") from None
            found.append(Delivery(output.path, output.url))
            continue
        directory = output_dir(output)
        pattern = compile_glob(output.path) if has_wildcards(output) else None
        for path in files_under(task_dir, directory):
            if pattern is None or pattern.matches(path):
                relative = PurePosixPath(path).relative_to(directory).as_posix()
                found.append(Delivery(path, output.url.rstrip("/") + "/" + relative))
    return found


def deliver_outputs(
    job: Job, sandbox: Sandbox, *, sources: Sources, max_bytes: int, max_files: int
) -> tuple[list[OutputFile], list[OutputFileLog]]:
    """Upload every file the task's outputs name; the ones kept in quern become the job's outputs."""
    assert job.task is not None
    found = deliveries(sandbox.task, job.task.outputs)
    if len(found) > max_files:
        raise Invalid(f"the outputs name {len(found)} files; at most {max_files} are delivered (MAX_OUTPUT_FILES)")
    sizes = [_size(sandbox.task, one.path) for one in found]
    if sum(sizes) > max_bytes:
        raise Invalid(f"the outputs exceed the limit of {max_bytes} bytes (MAX_OUTPUT_BYTES)")
    kept: list[tuple[str, Path]] = []
    for one in found:
        if one.url.startswith(QUERN_OUTPUTS):
            kept.append((_output_name(one.url), host_path(sandbox.task, one.path)))
        else:
            with open_in(sandbox.task, one.path) as handle:
                sources.buckets.upload(handle, one.url)
    outputs = upload_outputs(sources.storage, job, sandbox, kept, base=sandbox.task)
    logs = [OutputFileLog(url=one.url, path=one.path, size_bytes=size) for one, size in zip(found, sizes, strict=True)]
    return outputs, logs


def _size(task_dir: Path, path: str) -> int:
    with open_in(task_dir, path) as handle:
        return os.fstat(handle.fileno()).st_size


def _output_name(url: str) -> str:
    """The name of an output kept in quern: a relative path that climbs nowhere."""
    name = url.removeprefix(QUERN_OUTPUTS)
    parts = name.split("/")
    if not name or any(part in ("", ".", "..") for part in parts):
        raise Invalid(f"{url}: not a quern://outputs/NAME URL")
    return name
