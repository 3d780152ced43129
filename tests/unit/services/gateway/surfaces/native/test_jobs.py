"""A job and a batch as the API shows them, byte for byte what the typed renderers send: pure logic, no servers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request

from services.gateway.domain.batches import SubmittedBatch
from services.gateway.plumbing.answers import json_response
from services.gateway.surfaces.native.batches import render_batch
from services.gateway.surfaces.native.jobs import render_job
from services.gateway.surfaces.native.routes import routes
from shared.models import DatasetInput, Job, JobState, WebhookTarget
from shared.models.jobs import Archive, JobError, JobProgress, OutputFile, RetryPolicy, StateChange

BASE = "https://api.example/v1"
AT = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
JOB_ID = "01jq0000000000000000000000"


def request() -> Request:
    """A request to the native API as mounted, so links resolve as in the gateway."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/jobs",
        "headers": [(b"host", b"api.example")],
        "query_string": b"",
        "scheme": "https",
        "server": ("api.example", 443),
        "root_path": "",
        "app": Starlette(routes=routes()),
    }
    return Request(scope)


def sent(body: BaseModel) -> Any:
    """What the client receives for an answer model."""
    return json.loads(bytes(json_response(body).body))


def test_a_new_job_shows_every_field_with_nulls_and_its_links() -> None:
    job = Job(
        id=JOB_ID, owner="u1", app="grid", app_version="1.0", params={}, inputs={}, timeout_seconds=60, created=AT
    )
    assert sent(render_job(request(), job)) == {
        "id": JOB_ID,
        "url": f"{BASE}/jobs/{JOB_ID}",
        "owner": "u1",
        "app": "grid",
        "app_version": "1.0",
        "params": {},
        "inputs": {},
        "timeout_seconds": 60,
        "name": None,
        "tags": [],
        "priority": 5,
        "rerun_of": None,
        "state": "QUEUED",
        "exit_code": None,
        "created": "2026-03-01T12:00:00.250000+00:00",
        "started": None,
        "finished": None,
        "elapsed_seconds": None,
        "error": None,
        "cancel_requested": None,
        "outputs": [],
        "archive": None,
        "history": [],
        "progress": None,
        "queue": "default",
        "attempt": 1,
        "preemptions": 0,
        "retry": None,
        "batch": None,
        "depends_on": [],
        "waiting_on": [],
        "dispatched": None,
        "retention_seconds": None,
        "expires": None,
        "expired": None,
        "webhook": None,
        "task": None,
        "links": {
            "self": f"{BASE}/jobs/{JOB_ID}",
            "app": f"{BASE}/apps/grid",
            "archive": f"{BASE}/jobs/{JOB_ID}/archive",
            "outputs": f"{BASE}/jobs/{JOB_ID}/outputs",
            "events": f"{BASE}/jobs/{JOB_ID}/events",
            "logs": {},
            "deliveries": f"{BASE}/jobs/{JOB_ID}/deliveries",
        },
    }


def test_a_finished_job_keeps_its_own_times_as_isoformat_and_nested_times_in_utc_z() -> None:
    change = StateChange.model_validate({"at": AT, "from": "RUNNING", "to": "FAILED", "by": "root", "reason": "stuck"})
    job = Job(
        id=JOB_ID,
        owner="u1",
        app="grid",
        app_version="1.0",
        params={"size": 2.5, "label": "déjà vu"},
        inputs={"dem": "01jf0000000000000000000000", "set": DatasetInput(dataset="01jd0000000000000000000000")},
        timeout_seconds=60,
        state=JobState.FAILED,
        created=AT,
        started=AT,
        finished=AT + timedelta(seconds=1.5),
        exit_code=3,
        error=JobError(reason="exit 3", stderr_tail="boom"),
        outputs=[OutputFile(path="a.txt", size=1, sha256="ab", content_type="text/plain", key="jobs/x/a.txt")],
        logs={"stdout": "k1", "stderr": "k2"},
        archive=Archive(key="k", size=10, sha256="cd", created=AT),
        history=[change],
        progress=JobProgress(percent=50, step="half", at=AT),
        retry=RetryPolicy(exit_codes=[3], attempts=2),
        retention_seconds=3600,
        webhook=WebhookTarget(url="https://hooks.example/q", progress=True),
    )
    shown = sent(render_job(request(), job))
    assert (shown["created"], shown["finished"], shown["expires"]) == (
        "2026-03-01T12:00:00.250000+00:00",
        "2026-03-01T12:00:01.750000+00:00",
        "2026-03-01T13:00:01.750000+00:00",
    )
    assert shown["elapsed_seconds"] == 1.5
    assert shown["params"] == {"size": 2.5, "label": "déjà vu"}
    assert shown["inputs"] == {"dem": "01jf0000000000000000000000", "set": {"dataset": "01jd0000000000000000000000"}}
    assert shown["error"] == {"reason": "exit 3", "stderr_tail": "boom"}
    assert shown["outputs"] == [{"path": "a.txt", "size": 1, "sha256": "ab", "content_type": "text/plain"}]
    assert shown["archive"] == {"size": 10, "sha256": "cd", "created": "2026-03-01T12:00:00.250000Z"}
    assert shown["history"] == [
        {"at": "2026-03-01T12:00:00.250000Z", "from": "RUNNING", "to": "FAILED", "by": "root", "reason": "stuck"}
    ]
    assert shown["progress"] == {"percent": 50.0, "step": "half", "at": "2026-03-01T12:00:00.250000Z"}
    assert shown["retry"] == {"exit_codes": [3], "attempts": 2}
    assert shown["webhook"] == {"url": "https://hooks.example/q", "progress": True}
    assert shown["links"]["logs"] == {
        "stderr": f"{BASE}/jobs/{JOB_ID}/logs/stderr",
        "stdout": f"{BASE}/jobs/{JOB_ID}/logs/stdout",
    }


def test_a_batch_shows_a_line_per_job_and_the_filtered_list_of_its_jobs() -> None:
    job = Job(
        id=JOB_ID, owner="u1", app="grid", app_version="1.0", params={}, inputs={}, timeout_seconds=60, created=AT
    )
    batch_id = "01jb0000000000000000000000"
    assert sent(render_batch(request(), SubmittedBatch(batch_id, [job.model_copy(update={"name": "one"})]))) == {
        "batch": batch_id,
        "count": 1,
        "items": [{"id": JOB_ID, "url": f"{BASE}/jobs/{JOB_ID}", "state": "QUEUED", "name": "one", "queue": "default"}],
        "links": {"jobs": f"{BASE}/jobs?batch={batch_id}"},
    }
