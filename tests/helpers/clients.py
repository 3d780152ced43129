"""What the test tiers share: logged-in clients, problem checks, uploads, apps, jobs and waits on the stack.

Test modules import helpers from tests/helpers/ only, never from one another or from a conftest
(which holds only fixtures); tests/unit/test_import_graph.py says so. A wait
polls a condition until a deadline; no test sleeps to let something happen.
Clients are the e2e stack's (``httpx`` over TCP) or the api tier's (``httpx2``, as starlette's
TestClient is built on it); the helpers take either.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import secrets
import tarfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import httpx2
from pymongo import MongoClient
from starlette.testclient import TestClient

from devstack.processes import processes_mentioning as processes_mentioning  # the tests look apps up by it
from devstack.stack import Stack
from shared.models import JobState
from tests.helpers.stacks import PROJECT

TINY = "tiny"  # copies its input after a pause and exits with the code asked for: plumbing without numpy
VALLEY = "apps/flood/example/valley.csv"
TERMINAL = frozenset(state.value for state in JobState if state.terminal)

Client = httpx.Client | httpx2.Client
Response = httpx.Response | httpx2.Response
UserFactory = Callable[..., httpx.Client]  # make_user of the e2e stack
ApiUserFactory = Callable[..., httpx2.Client]  # make_user of the api tier's in-process gateway
AnyClient = TypeVar("AnyClient", httpx.Client, httpx2.Client)
T = TypeVar("T")


# Clients


def log_in(client: AnyClient, username: str, password: str) -> AnyClient:
    """``client``, logged in as ``username``."""
    answer = client.post("/v1/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return client


def client_for(base_url: str, username: str, password: str) -> httpx.Client:
    """An HTTP client of a stack's gateway, logged in as ``username``."""
    return log_in(httpx.Client(base_url=base_url, timeout=60), username, password)


def add_user(admin: Client, role: str = "user") -> tuple[str, str]:
    """A new user, created through the admin API: (username, password)."""
    username, password = f"u{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    answer = admin.post("/v1/users", json={"username": username, "password": password, "role": role})
    assert answer.status_code == 201, answer.text
    return username, password


class _Gateway(httpx2.BaseTransport):
    """Hands each request to the entered TestClient, so it runs on the loop that owns the lifespan's clients."""

    def __init__(self, gateway: TestClient) -> None:
        self.gateway = gateway

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.gateway.send(request, stream=True, follow_redirects=False)


def gateway_client(gateway: TestClient) -> httpx2.Client:
    """A client of the in-process gateway without credentials (AsyncMongoClient is bound to one event loop)."""
    return httpx2.Client(base_url=str(gateway.base_url), transport=_Gateway(gateway))


# Answers


@functools.cache
def documented_problems() -> dict[str, int]:
    """Every problem type docs/problems.md documents, with its status."""
    text = (PROJECT / "docs/problems.md").read_text()
    rows = re.findall(r"^\| `(urn:quern:problem:[a-z-]+)` \| (\d{3}) \|", text, re.MULTILINE)
    assert len(rows) >= 10, "docs/problems.md no longer holds the table of problem types"
    return {uri: int(status) for uri, status in rows}


def problem(response: Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with ``status``, of a documented type (``urn:quern:problem:<kind>`` if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert documented_problems().get(body["type"]) == status, body["type"]
    if kind is not None:
        assert body["type"] == f"urn:quern:problem:{kind}"
    return body


def eventually(check: Callable[[], T | None], what: str, *, timeout: float = 30, every: float = 0.1) -> T:
    """The first truthy answer of ``check``, asked every ``every`` seconds; fails naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not (answer := check()):
        assert time.monotonic() < deadline, what
        time.sleep(every)
    return answer


# Files


def upload(api: Client, name: str, data: bytes, **params: str) -> dict[str, Any]:
    """Upload ``data`` as the raw body; returns the file."""
    response = api.post("/v1/files", params={"name": name, **params}, content=data)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def open_multipart_uploads(s3: Any, bucket: str) -> set[tuple[str, str]]:
    """(key, upload id) of every multipart upload not yet completed or aborted in ``bucket``.

    Pending presigned uploads legitimately hold one open until they finish or expire, so tests
    compare this set before and after what they do rather than expect it to be empty.
    """
    answer = s3.list_multipart_uploads(Bucket=bucket)
    return {(upload["Key"], upload["UploadId"]) for upload in answer.get("Uploads", [])}


def objects(s3: Any, stack: Stack, job_id: str) -> list[str]:
    """The keys of the job's objects in S3."""
    listing = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"jobs/{job_id}/")
    return [item["Key"] for item in listing.get("Contents", [])]


def run_key(s3: Any, stack: Stack, job_id: str, path: str) -> str:
    """The S3 key of ``path`` (``outputs/x``, ``archive.tar.gz``…) under the prefix of the job's current run."""
    found = [key for key in objects(s3, stack, job_id) if key.startswith(f"jobs/{job_id}/runs/") and key.endswith(path)]
    assert len(found) == 1, f"{path} of job {job_id}: {found}"
    return found[0]


def announce(api: Client, data: bytes, name: str = "big.bin", **extra: Any) -> dict[str, Any]:
    """Announce a presigned upload of ``data``; returns the upload."""
    body = {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}
    response = api.post("/v1/uploads", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == response.json()["url"]
    return response.json()  # type: ignore[no-any-return]


def put(upload: dict[str, Any], data: bytes) -> None:
    """PUT ``data`` to the upload's presigned URL, as a client does (no credentials)."""
    response = httpx.put(upload["put"]["url"], content=data, headers=upload["put"]["headers"])
    assert response.status_code == 200, response.text


# Apps and jobs


def script_app(admin: Client, script: str, *, args: list[str], text_param: bool, outputs: list[str]) -> str:
    """Register ``python -c script ARGS...`` as an app under a fresh name (optionally with a string ``text``)."""
    name = f"script-{uuid.uuid4().hex[:8]}"
    parameters: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    if text_param:
        parameters |= {"required": ["text"], "properties": {"text": {"type": "string"}}}
    definition = {
        "name": name,
        "version": "1.0.0",
        "description": "A test script.",
        "command": ["{python}", "-c", script, *args],
        "parameters": parameters,
        "inputs": {},
        "outputs": outputs,
        "timeout": {"default": 60, "max": 60},
        "limits": {"memory_mb": 1024, "cpu_seconds": 60, "file_size_mb": 16, "open_files": 64},
    }
    answer = admin.post("/v1/apps", json=definition)
    assert answer.status_code == 201, answer.text
    return name


def echo_app(admin: Client) -> str:
    """An app that writes the two arguments it got, ``TEXT`` and ``--flag=TEXT``, to argv.json (and its directory)."""
    script = "import json, os, sys; json.dump(dict(argv=sys.argv[1:], cwd=os.getcwd()), open('argv.json', 'w'))"
    args = ["{params.text}", "--flag={params.text}"]
    return script_app(admin, script, args=args, text_param=True, outputs=["argv.json"])


def flood_copy(
    project: Path, version: str = "1.0.0", *, deployed: Path | None = None, **overrides: Any
) -> dict[str, Any]:
    """The flood app's definition under a fresh name, its command naming flood.py by absolute path.

    ``deployed`` is the APPS_DIR flood is deployed in (the project's apps/ unless given): a runner's
    sandbox shows apps the programs under APPS_DIR, not the project tree.
    """
    definition: dict[str, Any] = json.loads((project / "apps/flood/app.json").read_text())
    definition["command"][1] = str((deployed or project / "apps") / "flood/flood.py")
    return definition | {"name": f"flood-{uuid.uuid4().hex[:8]}", "version": version} | overrides


def register(admin: Client, definition: dict[str, Any]) -> dict[str, Any]:
    answer = admin.post("/v1/apps", json=definition)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def job_body(user: Client, project: Path, app: str) -> dict[str, Any]:
    """A flood job for ``app`` (a copy of flood) on the example valley."""
    return {"app": app, "params": {"steps": 2}, "inputs": {"elevation": grid(user, project)}}


def signing_secret(user: Client) -> str:
    """A new webhook signing secret of ``user`` (shown once)."""
    answer = user.post("/v1/webhook-secret")
    assert answer.status_code == 201, answer.text
    secret: str = answer.json()["secret"]
    return secret


def new_queue(user: Client, name: str) -> dict[str, Any]:
    answer = user.post("/v1/queues", json={"name": name})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def grid(user: Client, project: Path) -> str:
    """The example valley, uploaded; its file id."""
    return str(upload(user, "valley.csv", (project / VALLEY).read_bytes())["id"])


def flood_job(user: Client, file_id: str, **fields: Any) -> dict[str, Any]:
    """Submit a two-step flood on the grid ``file_id``, with ``fields`` over the request's."""
    body = {"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": file_id}} | fields
    answer = user.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def run_flood(api: Client, project: Path, **params: Any) -> dict[str, Any]:
    """Submit the flood example on the example valley."""
    return flood_job(api, grid(api, project), params=params)


def listed(user: Client, **params: Any) -> list[str]:
    """The names of the jobs a list shows, following every page."""
    names, url = [], "/v1/jobs"
    while url:
        answer = user.get(url, params=params if url == "/v1/jobs" else None)
        assert answer.status_code == 200, answer.text
        names += [job["name"] for job in answer.json()["items"]]
        url = answer.json()["next"]
    return names


def tiny_job(user: Client, *, seconds: float = 0, exit_code: int = 0, **fields: Any) -> dict[str, Any]:
    """Submit the tiny app: it sleeps ``seconds``, copies its input to copy.txt and exits with ``exit_code``."""
    data = upload(user, "data.txt", b"tiny\n")
    params = {"seconds": seconds, "exit_code": exit_code}
    answer = user.post("/v1/jobs", json={"app": TINY, "params": params, "inputs": {"data": data["id"]}} | fields)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def long_job(user: Client) -> dict[str, Any]:
    """A job that runs until canceled (or for its two minutes)."""
    return tiny_job(user, seconds=600, timeout_seconds=120)


def wait_for(api: Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once it ended."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.1)


def wait_for_archive(api: Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job's archive link once the results service packaged it."""
    deadline = time.monotonic() + timeout
    while (response := api.get(f"/v1/jobs/{job_id}/archive")).status_code == 409:
        assert time.monotonic() < deadline, "archive never appeared"
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def archive_members(api: Client, job_id: str, *, redirect: bool = False) -> dict[str, bytes]:
    """The job's archive, fetched as a client would (presigned URL, or the 302 to it), by member path below its root."""
    link = wait_for_archive(api, job_id)
    if redirect:
        answer = api.get(f"/v1/jobs/{job_id}/archive", params={"redirect": "1"})
        assert answer.status_code == 302
        url = answer.headers["location"]
    else:
        url = link["url"]
    download = httpx.get(url)  # no credentials: the URL itself grants access
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == link["sha256"]
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as tar:
        return {
            m.name.removeprefix(f"{job_id}/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def dispatcher_passed(user: Client) -> None:
    """Return once a job ``user`` submits now was dispatched: that pass looked at every job that could start."""
    job = tiny_job(user)

    def sent() -> bool:
        now = user.get(job["url"]).json()
        return now["dispatched"] is not None or now["state"] != "QUEUED"

    eventually(sent, "the dispatcher never sent a job that could start")


def read_stream(user: Client, path: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every event of a stream that must end by itself: id, event type and data."""
    events: list[dict[str, Any]] = []
    with user.stream("GET", path, timeout=60, **kwargs) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in answer.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    events.append(current)
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    return events


def states(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["data"]["state"] for e in events if e["event"] == "state"]


# The runner's processes


def wait_for_app(job_id: str) -> None:
    """RUNNING is recorded at the claim, before inputs are staged: wait for the app's process itself."""
    eventually(lambda: processes_mentioning(job_id), "the app never started", every=0.05)


def queued_behind_busy_slots(
    user: httpx.Client, start: Callable[[httpx.Client], dict[str, Any]] = long_job
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two long jobs (from ``start``) filling the test runner's two slots, and a third that therefore stays QUEUED.

    The third is dispatched (its message waits in RabbitMQ), so tests see what the runner does with it.
    """
    busy = [start(user) for _ in range(2)]
    for job in busy:
        wait_for_app(job["id"])
    waiting = start(user)
    deadline = time.monotonic() + 10
    while (current := user.get(f"/v1/jobs/{waiting['id']}").json())["dispatched"] is None:
        assert time.monotonic() < deadline, "the waiting job was never dispatched"
        time.sleep(0.05)
    assert current["state"] == "QUEUED"
    return busy, waiting


def free_slots_then_expect(
    user: httpx.Client, stack: Stack, busy: list[dict[str, Any]], waiting: dict[str, Any], logged: str, what: str
) -> None:
    """Cancel the jobs holding the slots; the runner then logs ``logged`` for the waiting job and never starts it."""
    for job in busy:
        user.post(f"/v1/jobs/{job['id']}/cancel")
    for job in busy:
        assert wait_for(user, job["id"], timeout=30)["state"] == "CANCELED"
    runner_log = stack.services()[1].logfile
    eventually(lambda: logged in runner_log.read_text(), what, timeout=20, every=0.2)
    assert '"event": "job_started"' not in "".join(
        line for line in runner_log.read_text().splitlines() if waiting["id"] in line
    )


def orphan(stack: Stack, job_id: str, *, worker: str) -> None:
    """Make the job look RUNNING on a worker that died mid-run: claimed just now, its lease never renewed again."""
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as mongo:
        now = datetime.now(UTC)
        mongo[stack.database]["jobs"].update_one(
            {"_id": job_id},
            {"$set": {"state": "RUNNING", "worker": worker, "started": now, "lease": now, "run_token": "gone"}},
        )
