"""Moving a job's files: inputs from S3 into its sandbox, outputs and logs from the sandbox to S3.

Each function may be called again after an outage (see ``backoff.py``): a re-staged input
overwrites its file, a re-uploaded output or log overwrites its key.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from pathlib import Path

from services.runner.metrics import TRANSFER_BYTES
from services.runner.sandbox import Sandbox
from shared.errors import Invalid, NotFound
from shared.models import Dataset, DatasetInput, Job, OutputFile, run_prefix
from shared.storage import ObjectStorage
from shared.store.datasets import DatasetStore
from shared.store.files import FileStore


def upload_outputs(
    storage: ObjectStorage, job: Job, sandbox: Sandbox, files: list[tuple[str, Path]], *, base: Path | None = None
) -> list[OutputFile]:
    """Upload each output under the run's ``outputs/`` and describe it; checksum and upload read the same open file.

    Each is (its name among the outputs, its path), read from the run directory, or from ``base``
    when the files lie elsewhere (a TES task's tree), never through a link.
    """
    outputs = []
    for relative, path in files:
        key = f"{run_prefix(job.id, job.run_token)}outputs/{relative}"
        content_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
        inside = relative if base is None else path.relative_to(base).as_posix()
        with sandbox.open_output(inside, base=base) as handle:
            digest, size = hashlib.sha256(), 0
            while block := handle.read(2**20):
                digest.update(block)
                size += len(block)
            handle.seek(0)
            storage.upload_fileobj(handle, key, content_type=content_type)
        TRANSFER_BYTES.labels("outputs").inc(size)
        outputs.append(
            OutputFile(path=relative, size=size, sha256=digest.hexdigest(), content_type=content_type, key=key)
        )
    return outputs


def upload_logs(storage: ObjectStorage, job: Job, sandbox: Sandbox) -> dict[str, str]:
    """Upload stdout and stderr; returns name -> key."""
    logs = {}
    for name, path in (("stdout", sandbox.stdout), ("stderr", sandbox.stderr)):
        key = f"{run_prefix(job.id, job.run_token)}logs/{name}.txt"
        storage.upload_file(path, key, content_type="text/plain; charset=utf-8")
        TRANSFER_BYTES.labels("logs").inc(path.stat().st_size)
        logs[name] = key
    return logs


async def stage_inputs(
    job: Job, sandbox: Sandbox, *, files: FileStore, datasets: DatasetStore, storage: ObjectStorage
) -> dict[str, Path]:
    """Download every input into the sandbox; returns slot -> the path its placeholder becomes.

    A file input is staged as ``inputs/<slot>/<name>``; a dataset input as ``inputs/<slot>/``
    holding every member at its path, so a member's relative references to its siblings work.
    """
    file_ids = sorted({value for value in job.inputs.values() if isinstance(value, str)})
    found = await files.get_files(file_ids) if file_ids else {}
    staged = {}
    for slot, value in job.inputs.items():
        if isinstance(value, DatasetInput):
            staged[slot] = await _stage_dataset(slot, value, sandbox, datasets=datasets, storage=storage)
            continue
        stored = found.get(value)
        if stored is None:
            raise NotFound(f"input {slot!r}: file {value} no longer exists")
        staged[slot] = sandbox.input_path(slot, stored.name)
        await asyncio.to_thread(storage.download_file, stored.key, staged[slot])
        TRANSFER_BYTES.labels("inputs").inc(stored.size)
    return staged


async def _stage_dataset(
    slot: str, value: DatasetInput, sandbox: Sandbox, *, datasets: DatasetStore, storage: ObjectStorage
) -> Path:
    dataset = (await datasets.get_datasets([value.dataset])).get(value.dataset)
    if dataset is None:
        raise NotFound(f"input {slot!r}: dataset {value.dataset} no longer exists")
    if value.path is not None and value.path not in {member.path for member in dataset.members}:
        raise NotFound(f"input {slot!r}: dataset {dataset.id} no longer holds {value.path}")
    directory = sandbox.input_dir(slot)
    await download_members(dataset, directory, storage=storage)
    return directory if value.path is None else sandbox.member_path(slot, value.path)


async def download_members(dataset: Dataset, directory: Path, *, storage: ObjectStorage) -> None:
    """Download every member of ``dataset`` into ``directory`` at its path; one that would escape it is refused."""
    inside = directory.resolve()
    for member in dataset.members:
        target = (directory / member.path).resolve()
        if not target.is_relative_to(inside) or target == inside:
            raise Invalid(f"dataset member {member.path!r} would be staged outside its input directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(storage.download_file, dataset.prefix + member.path, target)
        TRANSFER_BYTES.labels("inputs").inc(member.size)
