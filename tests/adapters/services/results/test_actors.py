"""The results actors against real Mongo and S3."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from typing import Any

from services.results.actors import package_selection
from shared.models import Job, JobState, OutputFile, Selection, new_id, utcnow
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store import Stores


def stored_output(storage: ObjectStorage, job_id: str, path: str, data: bytes) -> OutputFile:
    key = f"jobs/{job_id}/outputs/{path}"
    sink = storage.sink(key, content_type="text/plain")
    sink.write(data)
    sink.finish()
    return OutputFile(
        path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type="text/plain", key=key
    )


def test_two_packagers_of_one_selection_leave_one_archive_of_only_its_outputs(settings: Settings) -> None:
    own = settings.model_copy(update={"mongo_database": f"results_{new_id()}"})
    storage = ObjectStorage(own)
    storage.ensure_bucket()
    job_id = new_id()
    outputs = [stored_output(storage, job_id, path, path.encode()) for path in ("a.csv", "b.json", "maps/c.csv")]

    async def scenario() -> tuple[Job, list[Any]]:
        stores = Stores.connect(own, appname="quern-tests")
        try:
            now = utcnow()
            job = Job(
                id=job_id,
                owner="u1",
                app="flood",
                app_version="1",
                params={},
                inputs={},
                timeout_seconds=60,
                created=now,
                started=now,
                finished=now,
                state=JobState.SUCCEEDED,
                outputs=outputs,
            )
            await stores.jobs.insert_job(job)
            await stores.archives.request_selection(
                job, "d1", Selection(include=["**/*.csv"], requested=now), resend_before=now
            )
            both = [
                package_selection(job_id, "d1", jobs=stores.jobs, archives=stores.archives, storage=storage)
                for _ in range(2)
            ]
            results = await asyncio.gather(*both, return_exceptions=True)
            return await stores.jobs.get_job(job_id), results
        finally:
            await stores.close()

    try:
        job, results = asyncio.run(scenario())
        assert results == [None, None]
        archive = job.selections["d1"].archive
        assert archive is not None and archive.key == f"jobs/{job_id}/archives/d1.tar.gz"
        body = storage.open(archive.key)
        data = body.read()
        body.close()
        assert hashlib.sha256(data).hexdigest() == archive.sha256
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            names = {member.name for member in tar.getmembers()}
        assert names == {f"{job_id}/outputs/a.csv", f"{job_id}/outputs/maps/c.csv", f"{job_id}/manifest.json"}
    finally:
        storage.delete_prefix(f"jobs/{job_id}/")
        storage.close()
