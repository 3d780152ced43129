"""GA4GH TES tasks on the runner: inputs staged, executors run in real podman containers, outputs delivered.

Each test inserts a job holding a task, claims it and runs it through the runner's own ``_run``
with the docker driver on podman (the busybox image of ``tests.helpers.containers``, never
pulled), against the test stack's Mongo and S3; the TES buckets are buckets of that same S3.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET
from services.runner.containers import DockerDriver
from services.runner.outcomes import Outcome
from services.runner.runs import _run, finish
from services.runner.sandbox import Sandbox
from services.runner.specs import AppVersions
from services.runner.users import RunAs
from shared.models import Dataset, DatasetMember, Job, JobState, StoredFile, new_id, run_prefix, utcnow
from shared.models.tasks import TASK_APP, TASK_APP_VERSION, TaskSpec
from shared.settings import RunnerSettings, load
from shared.storage import ObjectStorage
from shared.store import Stores
from tests.helpers.containers import build_image, ensure_podman, podman_command

NOBODY = RunAs("nobody", 65534, 65534)


@dataclass
class Tes:
    """What a TES test runs tasks with: the stores, S3, a TES bucket, the image and the podman command."""

    stores: Stores
    storage: ObjectStorage
    settings: RunnerSettings
    bucket: str
    image: str
    podman: Path
    s3: Any
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reasons: dict[str, str] = field(default_factory=dict)

    async def submit(self, task: dict[str, Any], *, timeout: int = 60) -> Job:
        job = Job(
            id=new_id(),
            owner="u1",
            app=TASK_APP,
            app_version=TASK_APP_VERSION,
            params={},
            inputs={},
            timeout_seconds=timeout,
            created=utcnow(),
            dispatched=utcnow(),
            dispatch_lease=utcnow(),
            task=TaskSpec.model_validate(task),
        )
        await self.stores.jobs.insert_job(job)
        claimed = await self.stores.jobs.claim_job(job, worker=self.settings.runner_id)
        assert claimed is not None
        return claimed

    async def run(
        self, job: Job, settings: RunnerSettings | None = None, *, drivers: dict[str, Any] | None = None
    ) -> tuple[Outcome, Job]:
        """Run the claimed job to its end and record it as the runner would; the outcome and the stored job."""
        outcome = await _run(
            job,
            Sandbox(self.settings.work_dir, job.id),
            self.stop,
            stores=self.stores,
            storage=self.storage,
            specs=AppVersions(),
            settings=settings or self.settings,
            reason=lambda: self.reasons.get(job.id),
            drivers={"docker": DockerDriver(str(self.podman), run_as=NOBODY)} if drivers is None else drivers,
        )
        fields = {"exit_code": outcome.exit_code, "error": outcome.error, "outputs": outcome.outputs}
        end: dict[str, object] = {"state": outcome.state, "logs": {}, "output_logs": outcome.output_logs, **fields}
        await finish(job.model_copy(update=end), jobs=self.stores.jobs)
        return outcome, await self.stores.jobs.get_job(job.id)

    async def quern_file(self, content: bytes) -> str:
        file_id = new_id()
        key = f"files/{file_id}"
        path = self.settings.work_dir / f"upload-{file_id}"
        path.write_bytes(content)
        await asyncio.to_thread(self.storage.upload_file, path, key, content_type="text/plain")
        stored = StoredFile(
            id=file_id, owner="u1", name="q.txt", size=len(content), sha256="0" * 64, content_type="text/plain",
            key=key, created=utcnow(),
        )  # fmt: skip
        await self.stores.files.insert_file(stored)
        return file_id

    async def quern_dataset(self, members: dict[str, bytes], *, owner: str = "u1") -> str:
        dataset_id = new_id()
        for path, content in members.items():
            source = self.settings.work_dir / f"member-{new_id()}"
            source.write_bytes(content)
            key = f"datasets/{dataset_id}/{path}"
            await asyncio.to_thread(self.storage.upload_file, source, key, content_type="text/plain")
        dataset = Dataset(
            id=dataset_id, owner=owner, name="d", kind="tar", source_file="f", created=utcnow(), updated=utcnow(),
            members=[DatasetMember(path=path, size=len(content), sha256="0" * 64) for path, content in members.items()],
        )  # fmt: skip
        await self.stores.datasets.insert_dataset(dataset)
        return dataset_id

    def containers(self, job: Job) -> list[str]:
        listed = subprocess.run(
            [str(self.podman), "ps", "--all", "--quiet", "--filter", f"label=quern.job={job.id}"],
            capture_output=True,
            text=True,
            check=True,
        )
        return listed.stdout.split()


@pytest.fixture(scope="module")
def image_and_podman(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    ensure_podman()
    image = build_image({})
    return image, podman_command(tmp_path_factory.mktemp("podman"), image)


@pytest.fixture
def in_tes(
    env: dict[str, str], open_dir: Path, s3: Any, image_and_podman: tuple[str, Path]
) -> Callable[[Callable[[Tes], Awaitable[Any]]], Any]:
    """Run ``scenario(tes)`` with a fresh database, work directory and TES bucket."""
    image, podman = image_and_podman
    bucket = f"tes-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    settings = load(RunnerSettings).model_copy(
        update={
            "mongo_database": f"tes_{new_id()}",
            "work_dir": open_dir / "work",
            "tes_images": "localhost/quern-test-apps:*",
            "tes_s3_buckets": "tes-*",
            "tes_s3_endpoint_url": env["S3_ENDPOINT_URL"],
            "tes_s3_access_key_id": LOCAL_S3_KEY,
            "tes_s3_secret_access_key": SecretStr(LOCAL_S3_SECRET),
            "app_grace_seconds": 2.0,
            "tes_http_input_max_mb": 1,
        }
    )
    settings.work_dir.mkdir(mode=0o711)

    def run(scenario: Callable[[Tes], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            stores = Stores.connect(settings, appname="quern-tests")
            storage = ObjectStorage(settings)
            try:
                storage.ensure_bucket()
                return await scenario(Tes(stores, storage, settings, bucket, image, podman, s3))
            finally:
                storage.close()
                await stores.close()

        return asyncio.run(main())

    return run


def executor(image: str, *command: str, **fields: Any) -> dict[str, Any]:
    return {"image": image, "command": list(command), **fields}


def test_executors_share_a_volume_and_outputs_go_to_quern_and_to_s3(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        tes.s3.put_object(Bucket=tes.bucket, Key="in/s3.txt", Body=b"from s3\n")
        file_id = await tes.quern_file(b"from quern\n")
        job = await tes.submit(
            {
                "inputs": [
                    {"path": "/data/inline.txt", "content": "inline\n"},
                    {"path": "/data/s3.txt", "url": f"s3://{tes.bucket}/in/s3.txt"},
                    {"path": "/data/q.txt", "url": f"quern://files/{file_id}"},
                ],
                "volumes": ["/shared"],
                "executors": [
                    executor(tes.image, "sh", "-c", "cat /data/inline.txt /data/s3.txt /data/q.txt > /shared/joined"),
                    executor(tes.image, "sh", "-c", "wc -l < /shared/joined > /out/count; cp /shared/joined /out/"),
                ],
                "outputs": [
                    {"path": "/out/count", "url": "quern://outputs/count.txt"},
                    {"path": "/out/joined", "url": f"s3://{tes.bucket}/results/joined.txt"},
                ],
            }
        )
        outcome, stored = await tes.run(job)
        assert (stored.state, stored.exit_code, stored.error) == (JobState.SUCCEEDED, 0, None), outcome
        [count] = stored.outputs
        assert count.path == "count.txt" and count.key == f"{run_prefix(job.id, job.run_token)}outputs/count.txt"
        assert tes.storage.open(count.key).read().strip() == b"3"
        joined = tes.s3.get_object(Bucket=tes.bucket, Key="results/joined.txt")["Body"].read()
        assert joined == b"inline\nfrom s3\nfrom quern\n"
        assert [(log.url, log.path, log.size_bytes) for log in stored.output_logs] == [
            ("quern://outputs/count.txt", "/out/count", 2),
            (f"s3://{tes.bucket}/results/joined.txt", "/out/joined", len(joined)),
        ]
        assert [log.exit_code for log in stored.executor_logs] == [0, 0]
        assert all(log.end is not None and log.end >= log.start for log in stored.executor_logs)
        assert tes.containers(job) == []

    in_tes(scenario)


def test_what_an_executor_prints_is_in_its_log_its_stdout_path_and_the_jobs_log(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit(
            {
                "inputs": [{"path": "/in/words", "content": "fed on stdin\n"}],
                "executors": [
                    executor(tes.image, "echo", "hello", stdout="/out/stdout.txt"),
                    executor(tes.image, "cat", stdin="/in/words", stderr="/out/err.txt"),
                ],
                "outputs": [{"path": "/out/stdout.txt", "url": "quern://outputs/stdout.txt"}],
            }
        )
        sandbox = Sandbox(tes.settings.work_dir, job.id)
        outcome, stored = await tes.run(job)
        assert stored.state is JobState.SUCCEEDED, outcome
        assert [log.stdout for log in stored.executor_logs] == ["hello\n", "fed on stdin\n"]
        assert tes.storage.open(stored.outputs[0].key).read() == b"hello\n"
        assert sandbox.stdout.read_text() == "hello\nfed on stdin\n"  # the job's own log holds every executor's
        assert (sandbox.task / "out" / "err.txt").read_bytes() == b""

    in_tes(scenario)


def test_a_non_zero_exit_fails_the_task_with_its_code_and_runs_nothing_after(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit(
            {
                "executors": [
                    executor(tes.image, "sh", "-c", "echo broken >&2; exit 3"),
                    executor(tes.image, "touch", "/out/never"),
                ],
                "outputs": [{"path": "/out/never", "url": "quern://outputs/never"}],
            }
        )
        _, stored = await tes.run(job)
        assert (stored.state, stored.exit_code) == (JobState.FAILED, 3)
        assert stored.error is not None
        assert stored.error.reason == f"executor 1 of 2 ({tes.image}) exited with code 3"
        assert [log.exit_code for log in stored.executor_logs] == [3]
        assert stored.executor_logs[0].stderr == "broken\n"
        assert stored.outputs == [] and stored.output_logs == []

    in_tes(scenario)


def test_an_executor_that_ignores_its_error_lets_the_next_run(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit(
            {
                "executors": [
                    executor(tes.image, "sh", "-c", "exit 4", ignore_error=True),
                    executor(tes.image, "echo", "after"),
                ]
            }
        )
        _, stored = await tes.run(job)
        assert (stored.state, stored.exit_code) == (JobState.SUCCEEDED, 0)
        assert [(log.exit_code, log.stdout) for log in stored.executor_logs] == [(4, ""), (0, "after\n")]

    in_tes(scenario)


def test_a_cancel_mid_run_ends_the_task_canceled_with_its_container_gone(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit({"executors": [executor(tes.image, "sleep", "60")]})
        running = asyncio.ensure_future(tes.run(job))
        while not tes.containers(job):
            assert not running.done(), running.result()
            await asyncio.sleep(0.2)
        running_logs = (await tes.stores.jobs.get_job(job.id)).executor_logs
        assert len(running_logs) == 1 and running_logs[0].end is None  # recorded as it started
        tes.reasons[job.id] = "canceled"
        tes.stop.set()
        _, stored = await asyncio.wait_for(running, 30)
        assert stored.state is JobState.CANCELED and stored.exit_code is None
        assert len(stored.executor_logs) == 1 and stored.executor_logs[0].end is not None
        assert tes.containers(job) == []

    in_tes(scenario)


def test_a_task_over_its_time_limit_times_out(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit({"executors": [executor(tes.image, "sleep", "60")]}, timeout=2)
        outcome, stored = await tes.run(job)
        assert stored.state is JobState.TIMED_OUT, outcome
        assert tes.containers(job) == [], outcome

    in_tes(scenario)


def test_an_image_not_allowed_is_refused_before_any_container_starts(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit({"executors": [executor(tes.image, "true")]})
        strict = tes.settings.model_copy(update={"tes_images": "docker.io/library/*"})
        _, stored = await tes.run(job, strict)
        assert (stored.state, stored.exit_code) == (JobState.FAILED, None)
        assert stored.error is not None and "TES_IMAGES" in stored.error.reason
        assert stored.executor_logs == []

    in_tes(scenario)


def test_a_bucket_not_allowed_is_refused(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit(
            {"inputs": [{"path": "/in/x", "url": "s3://elsewhere/x"}], "executors": [executor(tes.image, "true")]}
        )
        _, stored = await tes.run(job)
        assert (stored.state, stored.exit_code) == (JobState.FAILED, None)
        assert stored.error is not None and "TES_S3_BUCKETS" in stored.error.reason

    in_tes(scenario)


def test_a_missing_output_file_fails_the_task_without_an_exit_code(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit(
            {
                "executors": [executor(tes.image, "true")],
                "outputs": [{"path": "/out/missing.txt", "url": "quern://outputs/missing.txt"}],
            }
        )
        _, stored = await tes.run(job)
        assert (stored.state, stored.exit_code) == (JobState.FAILED, None)
        assert stored.error is not None
        assert stored.error.reason.startswith("quern could not deliver the outputs: output /out/missing.txt: ")
        assert [log.exit_code for log in stored.executor_logs] == [0]

    in_tes(scenario)


def test_a_directory_and_a_wildcard_output_deliver_each_file_by_its_relative_path(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        script = "mkdir -p /res/sub && echo a > /res/a && echo b > /res/sub/b && touch /work/x.vcf /work/x.txt"
        job = await tes.submit(
            {
                "volumes": ["/work"],
                "executors": [executor(tes.image, "sh", "-c", script)],
                "outputs": [
                    {"path": "/res", "type": "DIRECTORY", "url": f"s3://{tes.bucket}/res/"},
                    {"path": "/work/*.vcf", "path_prefix": "/work", "url": "quern://outputs/vcf"},
                ],
            }
        )
        outcome, stored = await tes.run(job)
        assert stored.state is JobState.SUCCEEDED, outcome
        listed = tes.s3.list_objects_v2(Bucket=tes.bucket, Prefix="res/")["Contents"]
        assert sorted(item["Key"] for item in listed) == ["res/a", "res/sub/b"]
        assert [output.path for output in stored.outputs] == ["vcf/x.vcf"]

    in_tes(scenario)


def test_a_dataset_stages_as_a_directory_and_a_member_as_a_file(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        dataset_id = await tes.quern_dataset({"a.txt": b"A\n", "sub/b.txt": b"B\n"})
        job = await tes.submit(
            {
                "inputs": [
                    {"path": "/data/set", "type": "DIRECTORY", "url": f"quern://datasets/{dataset_id}"},
                    {"path": "/data/one.txt", "url": f"quern://datasets/{dataset_id}/sub/b.txt"},
                ],
                "executors": [executor(tes.image, "cat", "/data/set/a.txt", "/data/set/sub/b.txt", "/data/one.txt")],
            }
        )
        _, stored = await tes.run(job)
        assert stored.state is JobState.SUCCEEDED
        assert stored.executor_logs[0].stdout == "A\nB\nB\n"

    in_tes(scenario)


def test_a_file_of_another_owner_is_not_staged(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        dataset_id = await tes.quern_dataset({"a.txt": b"A\n"}, owner="someone-else")
        job = await tes.submit(
            {
                "inputs": [{"path": "/data/set", "type": "DIRECTORY", "url": f"quern://datasets/{dataset_id}"}],
                "executors": [executor(tes.image, "true")],
            }
        )
        _, stored = await tes.run(job)
        assert (stored.state, stored.exit_code) == (JobState.FAILED, None)
        assert stored.error is not None and "is not the task owner's" in stored.error.reason

    in_tes(scenario)


@pytest.fixture
def web() -> Iterator[str]:
    """A web server on loopback: /file.txt is 2 KiB of "x", /big 1.5 MiB, /moved redirects to /file.txt."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/file.txt")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"x" * (1536 * 1024 if self.path == "/big" else 2048)
            self.send_response(200 if self.path in ("/file.txt", "/big") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_input_follows_a_redirect_and_is_staged(in_tes: Callable[..., Any], web: str) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit(
            {
                "inputs": [{"path": "/in/web.txt", "url": f"{web}/moved"}],
                "executors": [executor(tes.image, "wc", "-c", "/in/web.txt")],
            }
        )
        _, stored = await tes.run(job)
        assert stored.state is JobState.SUCCEEDED
        assert stored.executor_logs[0].stdout.split()[0] == "2048"

    in_tes(scenario)


def test_an_http_input_over_its_size_limit_or_on_a_private_address_is_refused(
    in_tes: Callable[..., Any], web: str
) -> None:
    async def scenario(tes: Tes) -> None:
        task = {
            "inputs": [{"path": "/in/web.txt", "url": f"{web}/file.txt"}],
            "executors": [executor(tes.image, "true")],
        }
        guarded = tes.settings.model_copy(update={"webhook_allowed_networks": ""})
        _, stored = await tes.run(await tes.submit(task), guarded)
        assert stored.error is not None and "not a public address" in stored.error.reason
        assert stored.state is JobState.FAILED and stored.executor_logs == []
        big = {"inputs": [{"path": "/in/big", "url": f"{web}/big"}], "executors": [executor(tes.image, "true")]}
        _, stored = await tes.run(await tes.submit(big))  # TES_HTTP_INPUT_MAX_MB is 1
        assert stored.error is not None and stored.error.reason.endswith(f"{web}/big: larger than {2**20} bytes")

    in_tes(scenario)


def test_an_output_an_executor_swapped_for_a_link_is_not_followed(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit(
            {
                "executors": [executor(tes.image, "ln", "-s", "/etc/passwd", "/out/leak")],
                "outputs": [{"path": "/out/leak", "url": "quern://outputs/leak"}],
            }
        )
        _, stored = await tes.run(job)
        assert (stored.state, stored.exit_code, stored.outputs) == (JobState.FAILED, None, [])
        assert stored.error is not None and "output /out/leak: the executors left no file there" in stored.error.reason

    in_tes(scenario)


def test_a_runner_without_the_docker_driver_fails_the_task_saying_so(in_tes: Callable[..., Any]) -> None:
    async def scenario(tes: Tes) -> None:
        job = await tes.submit({"executors": [executor(tes.image, "true")]})
        _, stored = await tes.run(job, drivers={})
        assert (stored.state, stored.exit_code) == (JobState.FAILED, None)
        assert stored.error is not None and "does not offer the docker driver (RUNNER_DRIVERS=" in stored.error.reason

    in_tes(scenario)
