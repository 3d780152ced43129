"""Scale: with ``count`` jobs of one user in the store, the p99 of a list page under each filter, beside the
same Mongo query sent straight to the same database; then one batch of ``batch`` jobs in one call,
beside a bare ``insert_many`` of as many job documents into the same collection (same indexes).

The jobs are written straight into Mongo (submitting 100,000 through the API would take the
whole budget); they are shaped like the gateway's, spread over states, apps, tags and queues.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pymongo

from bench.harness import admin_client, percentile, row
from bench.latency import TRUE_APP
from devstack.stack import Stack
from shared.models import Job, JobState, new_id

GOAL_MS = 50.0
GOAL_PER_SECOND = 2000.0
PAGE = 50
SECONDS_PER_FILTER = 5.0
STATES = [JobState.SUCCEEDED] * 90 + [JobState.FAILED] * 6 + [JobState.QUEUED] * 2 + [JobState.CANCELED] * 2
# Each filter a user would page through, as the API's query string and as the store's Mongo filter.
FILTERS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("none", {}, {}),
    ("state", {"state": "FAILED"}, {"state": {"$in": ["FAILED"]}}),
    ("app", {"app": "app-3"}, {"app": "app-3"}),
    ("tag", {"tag": "tag-7"}, {"tags": "tag-7"}),
    ("queue", {"queue": "queue-2"}, {"queue": "queue-2"}),
    ("name_prefix", {"name_prefix": "run-12"}, {"name": {"$regex": "^run\\-12"}}),
]


def _doc(owner: str, n: int, created: datetime) -> dict[str, Any]:
    state = STATES[n % len(STATES)]
    job = Job(
        id=new_id(),
        owner=owner,
        app=f"app-{n % 10}",
        app_version="1.0.0",
        params={"step": n},
        inputs={},
        timeout_seconds=60,
        state=state,
        created=created,
        started=None if state is JobState.QUEUED else created,
        finished=None if state is JobState.QUEUED else created + timedelta(seconds=1),
        exit_code={JobState.SUCCEEDED: 0, JobState.FAILED: 1}.get(state),
        name=f"run-{n}",
        tags=[f"tag-{n % 50}"],
        queue=f"queue-{n % 5}",
        dispatched=created if state is JobState.QUEUED else None,  # sent already: the dispatcher leaves them
        dispatch_lease=created if state is JobState.QUEUED else None,
    )
    doc = job.model_dump(mode="python", by_alias=True)
    doc["_id"], doc["state"] = doc.pop("id"), state.value
    return doc


def seed(db: Any, owner: str, count: int) -> float:
    """Write ``count`` jobs of ``owner``; returns jobs per second."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    for first in range(0, count, 5000):
        docs = [_doc(owner, n, now - timedelta(seconds=count - n)) for n in range(first, min(count, first + 5000))]
        db["jobs"].insert_many(docs, ordered=False)
    return count / (time.perf_counter() - started)


def _user(stack: Stack) -> tuple[httpx.Client, str]:
    name, password = f"scale{uuid.uuid4().hex[:8]}", uuid.uuid4().hex * 2
    with admin_client(stack) as admin:
        registered = admin.post("/v1/apps", json=TRUE_APP)
        assert registered.status_code in (201, 409), registered.text
        answer = admin.post("/v1/users", json={"username": name, "password": password})
        assert answer.status_code == 201, answer.text
        user_id = answer.json()["id"]
    login = httpx.post(f"{stack.gateway_url}/v1/auth/login", json={"username": name, "password": password})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    return httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=600), user_id


def measure(
    stack: Stack, work: Path, *, count: int = 100_000, batch: int = 10_000, pages: int = 30
) -> list[dict[str, Any]]:
    """The list rows (one per filter) and the batch row."""
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(f"mongodb://127.0.0.1:{stack.ports.mongo}")
    db = mongo[stack.database]
    client, owner = _user(stack)
    rows = []
    try:
        seeded = seed(db, owner, count)
        print(f"bench: seeded {count} jobs at {seeded:.0f}/s", flush=True)
        for label, params, match in FILTERS:
            ours: list[float] = []
            bare: list[float] = []
            spent = time.monotonic() + SECONDS_PER_FILTER
            # Up to ``pages`` samples of each, fewer (never under two) where one page takes seconds.
            while len(ours) < pages and (len(ours) < 2 or time.monotonic() < spent):
                started = time.perf_counter()
                answer = client.get("/v1/jobs", params=params | {"limit": str(PAGE)})
                ours.append(time.perf_counter() - started)
                assert answer.status_code == 200 and answer.json()["items"], answer.text[:300]
                started = time.perf_counter()
                db["jobs"].find({"owner": owner, **match}).sort("_id", -1).limit(PAGE + 1).to_list(None)
                bare.append(time.perf_counter() - started)
            mine, base = percentile(ours, 99) * 1000, percentile(bare, 99) * 1000
            figure = f"list p99, filter {label}, {count} jobs (ms)"
            rows.append(row(figure, mine, base, base / mine, f"< {GOAL_MS:g} ms", mine < GOAL_MS, samples=len(ours)))
        rows.append(_batch(client, db, owner, batch))
    finally:
        client.close()
        mongo.close()
    return rows


def _batch(client: httpx.Client, db: Any, owner: str, size: int) -> dict[str, Any]:
    # TRUE_APP is registered by _user.
    """One POST /v1/jobs/batch of ``size`` jobs into a paused queue, beside ``insert_many`` of as many documents."""
    app = TRUE_APP["name"]
    queue = client.post("/v1/queues", json={"name": "scale-batch"}).json()
    client.post(f"{queue['url']}/pause").raise_for_status()  # stored, not run: this measures submission
    started = time.perf_counter()
    docs = [_doc(owner, n, datetime.now(UTC)) | {"queue": "scale-bare"} for n in range(size)]
    db["jobs"].insert_many(docs, ordered=True)
    bare = size / (time.perf_counter() - started)
    jobs = [{"app": app, "queue": "scale-batch"}] * size
    started = time.perf_counter()
    answer = client.post("/v1/jobs/batch", json={"jobs": jobs})
    ours = size / (time.perf_counter() - started)
    assert answer.status_code == 201, answer.text[:300]
    goal = f">= {GOAL_PER_SECOND:g}/s"
    return row(f"batch of {size} jobs in one call (jobs/s)", ours, bare, ours / bare, goal, ours >= GOAL_PER_SECOND)
