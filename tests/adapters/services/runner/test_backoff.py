"""Runs ride out an S3 or Mongo outage while staging and uploading, give up clearly, and stop promptly meanwhile.

The servers are the test stack's own (moto_server, and Mongo in a database of each test's
own), reached through a TCP proxy that the tests take down and up. boto3 retries a refused
connection itself (3 attempts, up to about 3 s), so each outage lasts longer than that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from devstack.tcp_proxy import TcpProxy
from services.runner.backoff import Backoff
from services.runner.drivers import LocalDriver
from services.runner.runs import _run, _upload_logs
from services.runner.sandbox import Sandbox
from services.runner.specs import AppVersions
from shared.models import Job, JobError, JobState, OutputFile, StoredFile, new_id, utcnow
from shared.settings import RunnerSettings, load
from shared.storage import ObjectStorage
from shared.store import Stores
from tests.helpers.records import script_app

OUTAGE_SECONDS = 3.5  # longer than boto3's own retries of a refused connection
COPY = "import shutil, sys; print('started', flush=True); shutil.copy(sys.argv[1], 'out.txt')"
LATE = "import time; print('started', flush=True); time.sleep(1); open('out.txt', 'w').write('late')"


def test_pauses_double_from_the_first_up_to_the_cap() -> None:
    assert Backoff(retries=7, first=1).pauses() == [1, 2, 4, 8, 16, 30, 30]
    assert Backoff(retries=0, first=1).pauses() == []


@pytest.fixture
def proxy(env: dict[str, str]) -> Iterator[TcpProxy]:
    """S3, switchable."""
    port = int(env["S3_ENDPOINT_URL"].rsplit(":", 1)[1])
    with TcpProxy("127.0.0.1", port) as proxy:
        yield proxy


@pytest.fixture
def mongo_proxy(env: dict[str, str]) -> Iterator[TcpProxy]:
    """Mongo, switchable."""
    port = int(env["MONGO_URL"].rsplit(":", 1)[1])
    with TcpProxy("127.0.0.1", port) as proxy:
        yield proxy


@dataclass
class Harness:
    """A claimed job of a one-script app, and what ``_run`` needs to run it with S3 behind the proxy."""

    job: Job
    sandbox: Sandbox
    stores: Stores
    storage: ObjectStorage
    direct: ObjectStorage
    settings: RunnerSettings
    stop: asyncio.Event
    reasons: dict[str, str] = field(default_factory=dict)
    handed_back: str | None = None

    async def run(self) -> tuple[JobState, int | None, JobError | None, list[OutputFile]]:
        outcome = await _run(
            self.job,
            self.sandbox,
            self.stop,
            stores=self.stores,
            storage=self.storage,
            specs=AppVersions(),
            settings=self.settings,
            reason=lambda: self.reasons.get(self.job.id),
            drivers={"local": LocalDriver()},
        )
        self.handed_back = outcome.handed_back
        return outcome.state, outcome.exit_code, outcome.error, outcome.outputs

    def ask_to_stop(self, reason: str) -> None:
        """Stop the run as the runner's slots would: the reason first, then the event."""
        self.reasons.setdefault(self.job.id, reason)
        self.stop.set()

    async def started(self) -> None:
        """Wait until the app has printed that it started (its inputs are staged by then)."""
        while not self.sandbox.stdout.exists() or "started" not in self.sandbox.stdout.read_text():
            await asyncio.sleep(0.05)


Scenario = Callable[[Harness], Awaitable[Any]]


@pytest.fixture
def in_run(env: dict[str, str], proxy: TcpProxy, tmp_path: Path) -> Callable[..., Any]:
    """Run ``scenario(harness)`` for a job of an app running ``script`` on one input file holding b"payload"."""

    def run(
        scenario: Scenario, *, script: str, retries: int = 6, backoff: float = 0.5, mongo: TcpProxy | None = None
    ) -> Any:
        settings = load(RunnerSettings).model_copy(
            update={
                "mongo_database": f"backoff_{new_id()}",
                "work_dir": tmp_path / "work",
                "infra_retries": retries,
                "infra_backoff_seconds": backoff,
            }
        )
        proxied = settings.model_copy(update={"s3_endpoint_url": proxy.url})
        if mongo is not None:
            url = SecretStr(f"mongodb://127.0.0.1:{mongo.port}")
            proxied = proxied.model_copy(update={"mongo_url": url, "mongo_timeout_seconds": 1.0})

        async def main() -> Any:
            setup = Stores.connect(settings, appname="quern-tests")
            stores = Stores.connect(proxied, appname="quern-tests") if mongo is not None else setup
            direct, storage = ObjectStorage(settings), ObjectStorage(proxied)
            try:
                direct.ensure_bucket()
                job = await claimed_job(setup, direct, settings, script, tmp_path)
                sandbox = Sandbox(settings.work_dir, job.id)
                return await scenario(Harness(job, sandbox, stores, storage, direct, settings, asyncio.Event()))
            finally:
                direct.close()
                storage.close()
                await setup.close()
                if stores is not setup:
                    await stores.close()

        return asyncio.run(main())

    return run


async def claimed_job(
    stores: Stores, storage: ObjectStorage, settings: RunnerSettings, script: str, tmp_path: Path
) -> Job:
    registered = script_app(script, inputs={"data": {"description": "any file"}})
    await stores.apps.insert_app(registered)
    source = tmp_path / "payload.txt"
    source.write_bytes(b"payload")
    file_id = new_id()
    key = f"files/{file_id}"
    await asyncio.to_thread(storage.upload_file, source, key, content_type="text/plain")
    stored: dict[str, Any] = {"id": file_id, "owner": "u1", "name": "payload.txt", "size": 7, "key": key}
    await stores.files.insert_file(StoredFile(**stored, sha256="0" * 64, content_type="text/plain", created=utcnow()))
    job = Job(
        id=new_id(),
        owner="u1",
        app=registered.name,
        app_version="1",
        params={},
        inputs={"data": file_id},
        timeout_seconds=30,
        created=utcnow(),
        dispatched=utcnow(),
        dispatch_lease=utcnow(),
    )
    await stores.jobs.insert_job(job)
    claimed = await stores.jobs.claim_job(job, worker=settings.runner_id)
    assert claimed is not None
    return claimed


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def test_staging_rides_out_a_short_s3_outage(in_run: Callable[..., Any], proxy: TcpProxy) -> None:
    async def scenario(run: Harness) -> None:
        proxy.down()
        asyncio.get_running_loop().call_later(OUTAGE_SECONDS, proxy.up)
        with capture_logs() as logs:
            state, exit_code, error, outputs = await run.run()
        assert (state, exit_code, error) == (JobState.SUCCEEDED, 0, None)
        retrying = events(logs, "job_stage_retrying")
        assert retrying and retrying[0]["log_level"] == "warning"
        assert {"job_id", "detail", "attempt", "retry_in"} <= retrying[0].keys()
        assert retrying[0]["job_id"] == run.job.id and "object storage did not answer" in retrying[0]["detail"]
        assert (run.sandbox.inputs / "data" / "payload.txt").read_bytes() == b"payload"
        assert run.direct.open(outputs[0].key).read() == b"payload"

    in_run(scenario, script=COPY)


def test_staging_rides_out_a_short_mongo_outage(in_run: Callable[..., Any], mongo_proxy: TcpProxy) -> None:
    async def scenario(run: Harness) -> None:
        mongo_proxy.down()
        asyncio.get_running_loop().call_later(2.5, mongo_proxy.up)
        with capture_logs() as logs:
            state, _, error, outputs = await run.run()
        assert (state, error) == (JobState.SUCCEEDED, None)
        assert "MongoDB did not answer" in events(logs, "job_stage_retrying")[0]["detail"]
        assert run.direct.open(outputs[0].key).read() == b"payload"

    in_run(scenario, script=COPY, mongo=mongo_proxy)


def test_uploading_outputs_rides_out_a_short_s3_outage(in_run: Callable[..., Any], proxy: TcpProxy) -> None:
    async def scenario(run: Harness) -> None:
        with capture_logs() as logs:
            running = asyncio.ensure_future(run.run())
            await run.started()
            proxy.down()  # the app writes its output a second later, then the upload meets the outage
            asyncio.get_running_loop().call_later(OUTAGE_SECONDS, proxy.up)
            state, _, error, outputs = await running
        assert (state, error) == (JobState.SUCCEEDED, None)
        assert events(logs, "job_upload_retrying") and not events(logs, "job_stage_retrying")
        assert [output.path for output in outputs] == ["out.txt"]
        assert run.direct.open(outputs[0].key).read() == b"late"

    in_run(scenario, script=LATE)


def test_staging_gives_up_after_its_retries_with_a_clear_reason(in_run: Callable[..., Any], proxy: TcpProxy) -> None:
    async def scenario(run: Harness) -> None:
        proxy.down()
        with capture_logs() as logs:
            state, exit_code, error, outputs = await run.run()
        assert (state, exit_code, outputs) == (JobState.FAILED, None, [])
        assert error is not None
        assert error.reason.startswith("quern could not stage the inputs: object storage did not answer (download ")
        assert error.reason.endswith(" s") and "; retried 2 times over " in error.reason
        assert [entry["attempt"] for entry in events(logs, "job_stage_retrying")] == [1, 2]
        assert not run.stop.is_set()

    in_run(scenario, script=COPY, retries=2, backoff=0.1)


def test_logs_are_lost_with_a_warning_once_their_retries_run_out(in_run: Callable[..., Any], proxy: TcpProxy) -> None:
    async def scenario(run: Harness) -> None:
        await asyncio.to_thread(run.sandbox.create)
        proxy.down()
        with capture_logs() as logs:
            backoff = Backoff.of(run.settings)
            assert await _upload_logs(run.storage, run.job, run.sandbox, backoff=backoff, stop=run.stop) == {}
        assert len(events(logs, "job_upload_retrying")) == 1
        assert events(logs, "job_logs_lost")

    in_run(scenario, script=COPY, retries=1, backoff=0.1)


def test_a_cancel_during_the_staging_backoff_ends_the_job_canceled_at_once(
    in_run: Callable[..., Any], proxy: TcpProxy
) -> None:
    async def scenario(run: Harness) -> float:
        proxy.down()
        with capture_logs() as logs:
            running = asyncio.ensure_future(run.run())
            while not events(logs, "job_stage_retrying"):
                await asyncio.sleep(0.05)
            run.ask_to_stop("canceled")
            asked = time.monotonic()
            state, exit_code, error, outputs = await asyncio.wait_for(running, 5)
        assert (state, exit_code, outputs) == (JobState.CANCELED, None, [])
        assert error is not None and error.reason.startswith("canceled on request")
        return time.monotonic() - asked

    # The first pause is 30 s: only the stop can end it this soon.
    assert in_run(scenario, script=COPY, retries=3, backoff=30) < 1


def test_a_shutdown_during_the_staging_backoff_hands_the_run_back_at_once(
    in_run: Callable[..., Any], proxy: TcpProxy
) -> None:
    async def scenario(run: Harness) -> None:
        proxy.down()
        with capture_logs() as logs:
            running = asyncio.ensure_future(run.run())
            while not events(logs, "job_stage_retrying"):
                await asyncio.sleep(0.05)
            run.ask_to_stop("shutdown")
            await asyncio.wait_for(running, 1)
        assert run.handed_back == "shutdown"

    in_run(scenario, script=COPY, retries=3, backoff=30)
