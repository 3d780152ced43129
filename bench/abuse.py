"""``just abuse``: what one user or one client can do to everyone else, on a stack of its own; one line of figures.

``python -m bench.abuse [--flood-seconds 30] [--heavy-jobs 50000]`` runs, one after another:

- **login flood**: wrong passwords for one account at 200 requests a second from 127.0.0.1 for
  ``--flood-seconds``, while a prober asks ``/healthz`` every 20 ms and, half-way, the account's
  owner logs in correctly from another address (127.0.0.2). Misses: no 429 after the limit, a
  429 without ``Retry-After``, ``/healthz`` p99 at 100 ms or more, the owner refused;
- **glob**: a job's archive of ``**/`` x 40 + ``Z`` against a seven-deep output path: a miss
  unless refused (422) or answered within 50 ms;
- **batches**: two 10,000-job batches at once (into a paused queue), while a job is read again
  and again: a miss if that read's p99 reaches 200 ms or the gateway's RSS 300 MB;
- **fair share**: one user queues ``--heavy-jobs`` jobs at priority 9 on the runner's two slots,
  another then submits 10 at priority 0: a miss if more of the first user's jobs than one pass
  sends (the runner's two slots) go before the second user's first, or if not all ten are sent
  within ``LIGHT_DEADLINE_SECONDS``; the waits in seconds are reported;
- **quotas**: every per-user quota, set small by an admin, refused with a problem ``type`` of its own.

They run in the order glob, quotas, fair share, batches, login flood (its address may stay
refused at login for a while).

The last line is ``abuse: key=value ... misses=N``; the exit status is 1 on any miss.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from pymongo import MongoClient

from bench.harness import admin_client, bench_stack, percentile
from devstack.stack import Stack

FLOOD_PER_SECOND = 200
HEALTH_P99_MS = 100.0
GLOB_MS = 50.0
READ_P99_MS = 200.0
GATEWAY_RSS_MB = 300.0
BATCH = 10_000
HEAVY_RUN_SECONDS = 0.5  # how long each of the heavy user's jobs runs
RUNNER_SLOTS = 2  # the bench stack's runner: one pass sends at most this many jobs while both are busy
LIGHT_DEADLINE_SECONDS = 60.0  # all ten of the light user's jobs sent to runners by then
DEEP_APP = {
    "name": "abuse-deep",
    "version": "1.0.0",
    "description": "Leaves one empty file seven directories deep.",
    "command": ["/usr/bin/install", "-D", "/dev/null", "a/b/c/d/e/f/g"],
    "parameters": {"type": "object", "additionalProperties": False, "properties": {}},
    "inputs": {},
    "outputs": ["**/*"],
    "timeout": {"default": 60, "max": 60},
}
SLEEP_APP = DEEP_APP | {
    "name": "abuse-sleep",
    "description": "Sleeps half a second.",
    "command": ["/bin/sleep", str(HEAVY_RUN_SECONDS)],
    "outputs": ["*"],
}
Figures = dict[str, Any]


def _user(stack: Stack, admin: httpx.Client, role: str = "user") -> tuple[str, str, httpx.Client]:
    """A new user: name, password and a client logged in as them."""
    name, password = f"abuse-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    created = admin.post("/v1/users", json={"username": name, "password": password, "role": role})
    assert created.status_code == 201, created.text
    login = httpx.post(f"{stack.gateway_url}/v1/auth/login", json={"username": name, "password": password})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    return name, password, httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=300)


def _wait_for(client: httpx.Client, job_id: str, states: tuple[str, ...], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout} s"
        time.sleep(0.05)


async def _flood(stack: Stack, victim: str, password: str, seconds: float) -> Figures:
    url = f"{stack.gateway_url}/v1/auth/login"
    statuses: list[int] = []
    missing_retry_after = 0
    health: list[float] = []
    owner: dict[str, int] = {}

    async def attack(client: httpx.AsyncClient) -> None:
        nonlocal missing_retry_after
        answer = await client.post(url, json={"username": victim, "password": "wrong-" + secrets.token_hex(6)})
        statuses.append(answer.status_code)
        if answer.status_code == 429 and not answer.headers.get("retry-after", "").isdigit():
            missing_retry_after += 1

    async def probe(client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            started = time.perf_counter()
            answer = await client.get(f"{stack.gateway_url}/healthz")
            health.append((time.perf_counter() - started) * 1000 if answer.status_code == 200 else float("inf"))
            await asyncio.sleep(0.02)

    async def owner_logs_in(delay: float) -> None:
        await asyncio.sleep(delay)
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=transport, timeout=30) as other:
            answer = await other.post(url, json={"username": victim, "password": password})
            owner["status"] = answer.status_code

    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client, httpx.AsyncClient(timeout=30) as prober:
        until = time.monotonic() + seconds
        background = [asyncio.create_task(probe(prober, until)), asyncio.create_task(owner_logs_in(seconds / 2))]
        attacks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for n in range(int(seconds * FLOOD_PER_SECOND)):
            await asyncio.sleep(max(0.0, start + n / FLOOD_PER_SECOND - time.monotonic()))
            attacks.append(asyncio.create_task(attack(client)))
        await asyncio.gather(*attacks, *background, return_exceptions=False)
    refused = statuses.count(429)
    return {
        "login_flood_requests": len(statuses),
        "login_429": refused,
        "login_429_without_retry_after": missing_retry_after,
        "healthz_p99_ms": round(percentile(health, 99), 1),
        "owner_login_status": owner.get("status", 0),
        "_misses": [
            *(["no 429 in the flood"] if refused == 0 else []),
            *(["429 without Retry-After"] if missing_retry_after else []),
            *([f"/healthz p99 {percentile(health, 99):.0f} ms"] if percentile(health, 99) >= HEALTH_P99_MS else []),
            *([f"owner's login from 127.0.0.2: {owner.get('status')}"] if owner.get("status") != 200 else []),
        ],
    }


def login_flood(stack: Stack, admin: httpx.Client, seconds: float) -> Figures:
    """Wrong passwords for one account at 200/s; /healthz probed; the owner logs in from another address."""
    victim, password, _ = _user(stack, admin)
    return asyncio.run(_flood(stack, victim, password, seconds))


def pathological_glob(stack: Stack, admin: httpx.Client) -> Figures:
    """``**/`` x 40 + ``Z`` against a seven-deep output: refused, or answered fast."""
    answer = admin.post("/v1/apps", json=DEEP_APP)
    assert answer.status_code in (201, 409), answer.text
    job = admin.post("/v1/jobs", json={"app": DEEP_APP["name"]}).json()
    job = _wait_for(admin, job["id"], ("SUCCEEDED", "FAILED"))
    assert job["state"] == "SUCCEEDED", job
    started = time.perf_counter()
    answer = admin.get(f"/v1/jobs/{job['id']}/archive", params={"include": "**/" * 40 + "Z"})
    took = (time.perf_counter() - started) * 1000
    fine = answer.status_code == 422 or (answer.status_code in (200, 404, 409) and took < GLOB_MS)
    return {
        "glob_status": answer.status_code,
        "glob_ms": round(took, 1),
        "_misses": [] if fine else [f"glob answered {answer.status_code} in {took:.0f} ms"],
    }


def two_batches(stack: Stack, admin: httpx.Client, size: int = BATCH) -> Figures:
    """Two 10,000-job batches at once; a job read meanwhile, and the gateway's RSS."""
    sleep = admin.post("/v1/apps", json=SLEEP_APP)
    assert sleep.status_code in (201, 409), sleep.text
    queue = admin.post("/v1/queues", json={"name": f"abuse-{secrets.token_hex(3)}"}).json()
    assert admin.post(f"/v1/queues/{queue['id']}/pause").status_code == 200
    probe = admin.post("/v1/jobs", json={"app": SLEEP_APP["name"], "queue": queue["name"]}).json()
    gateway = psutil.Process(stack.services()[0].pid())
    reads: list[float] = []
    rss: list[float] = []

    def submit() -> int:
        jobs = [{"app": SLEEP_APP["name"], "queue": queue["name"]}] * size
        return admin.post("/v1/jobs/batch", json={"jobs": jobs}, timeout=900).status_code

    with ThreadPoolExecutor(2) as pool:
        submissions = [pool.submit(submit) for _ in range(2)]
        while not all(future.done() for future in submissions):
            started = time.perf_counter()
            assert admin.get(f"/v1/jobs/{probe['id']}").status_code == 200
            reads.append((time.perf_counter() - started) * 1000)
            rss.append(gateway.memory_info().rss / 1e6)
            time.sleep(0.05)
        statuses = [future.result() for future in submissions]
    read_p99, peak = percentile(reads, 99), max(rss)
    return {
        "batch_statuses": "+".join(map(str, statuses)),
        "batch_read_p99_ms": round(read_p99, 1),
        "batch_gateway_rss_mb": round(peak, 1),
        "_misses": [
            *([f"batches answered {statuses}"] if statuses != [201, 201] else []),
            *([f"GET /v1/jobs/{{id}} p99 {read_p99:.0f} ms"] if read_p99 >= READ_P99_MS else []),
            *([f"gateway RSS {peak:.0f} MB"] if peak >= GATEWAY_RSS_MB else []),
        ],
    }


def _dispatched(job: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(job["dispatched"]).astimezone(UTC)


def fair_share(stack: Stack, admin: httpx.Client, heavy_jobs: int) -> Figures:
    """A heavy user's queue of priority-9 jobs, then a light user's 10 at priority 0.

    Judged by passes, not seconds (a pass over a crowd is slow on the Mongo stand-in, not on
    MongoDB): between the light user's submission and their first job's dispatch, at most one
    pass's worth of the heavy user's jobs (``RUNNER_SLOTS``) may be sent. The waits are reported.
    """
    answer = admin.post("/v1/apps", json=SLEEP_APP)
    assert answer.status_code in (201, 409), answer.text
    _, _, heavy = _user(stack, admin)
    _, _, light = _user(stack, admin)
    heavy_id = heavy.get("/v1/me").json()["id"]
    queue = heavy.post("/v1/queues", json={"name": "heavy"}).json()
    for first in range(0, heavy_jobs, BATCH):
        jobs = [{"app": SLEEP_APP["name"], "priority": 9, "queue": "heavy"}] * min(BATCH, heavy_jobs - first)
        answer = heavy.post("/v1/jobs/batch", json={"jobs": jobs}, timeout=900)
        assert answer.status_code == 201, answer.text
    time.sleep(3 * HEAVY_RUN_SECONDS)  # the heavy user's jobs hold both slots
    submitted = datetime.now(UTC)
    mine = [light.post("/v1/jobs", json={"app": SLEEP_APP["name"], "priority": 0}).json()["id"] for _ in range(10)]
    deadline = time.monotonic() + LIGHT_DEADLINE_SECONDS
    while True:
        jobs = [light.get(f"/v1/jobs/{job_id}").json() for job_id in mine]
        if all(job["dispatched"] for job in jobs) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    heavy.post(f"/v1/queues/{queue['id']}/pause")  # what is left of it would only load the machine
    sent = sorted(_dispatched(job) for job in jobs if job["dispatched"])
    first_sent = sent[0] if sent else datetime.now(UTC)
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(stack.env()["MONGO_URL"]) as mongo:
        jumped = mongo[stack.database]["jobs"].count_documents(
            {"owner": heavy_id, "dispatched": {"$gt": submitted, "$lt": first_sent}}
        )
    waits = [(when - submitted).total_seconds() for when in sent] + [float("inf")] * (len(jobs) - len(sent))
    return {
        "fair_heavy_sent_first": jumped,
        "fair_first_wait_s": round(waits[0], 2),
        "fair_last_wait_s": round(waits[-1], 2),
        "_misses": [
            *(
                [f"{jumped} of the heavy user's jobs went before the light user's first"]
                if jumped > RUNNER_SLOTS
                else []
            ),
            *([f"light user's last job waited {waits[-1]:.1f} s"] if waits[-1] > LIGHT_DEADLINE_SECONDS else []),
        ],
    }


def _problem_type(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("type", f"no type ({answer.status_code})"))
    except ValueError:
        return f"not a problem ({answer.status_code})"


def quotas(stack: Stack, admin: httpx.Client) -> Figures:
    """Each per-user quota, set small by an admin, refused with a problem type of its own."""
    sleep = admin.post("/v1/apps", json=SLEEP_APP)
    assert sleep.status_code in (201, 409), sleep.text
    _, _, user = _user(stack, admin)
    user_id = user.get("/v1/me").json()["id"]
    small = {"queued_jobs": 2, "stored_bytes": 1000, "pending_uploads": 1, "event_streams": 1, "batch_jobs": 2}
    changed = admin.patch(f"/v1/users/{user_id}", json={"quotas": small})
    assert changed.status_code == 200, changed.text
    queue = user.post("/v1/queues", json={"name": "held"}).json()
    assert user.post(f"/v1/queues/{queue['id']}/pause").status_code == 200
    job = {"app": SLEEP_APP["name"], "queue": "held"}
    refused: dict[str, tuple[int, str]] = {}
    refused["batch_jobs"] = (413, _problem_type(user.post("/v1/jobs/batch", json={"jobs": [job] * 3})))
    for _ in range(2):
        assert user.post("/v1/jobs", json=job).status_code == 201
    refused["queued_jobs"] = (429, _problem_type(user.post("/v1/jobs", json=job)))
    refused["stored_bytes"] = (413, _problem_type(user.post("/v1/files", params={"name": "big"}, content=b"x" * 2000)))
    upload = {"name": "later.bin", "size": 10, "sha256": "0" * 64}
    assert user.post("/v1/uploads", json=upload).status_code == 201
    refused["pending_uploads"] = (429, _problem_type(user.post("/v1/uploads", json=upload)))
    with user.stream("GET", "/v1/events", params={"wait": "30"}) as first:
        assert first.status_code == 200
        refused["event_streams"] = (429, _problem_type(user.get("/v1/events", params={"wait": "1"})))
    expected = {quota: f"urn:quern:problem:quota-{quota.replace('_', '-')}" for quota in small}
    expected["batch_jobs"] = "urn:quern:problem:quota-batch-size"
    misses = [
        f"{quota}: {found} (wanted {expected[quota]})"
        for quota, (_, found) in refused.items()
        if found != expected[quota]
    ]
    return {"quota_types": f"{len(refused) - len(misses)}/{len(small)}", "_misses": misses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__.splitlines()[0])
    parser.add_argument("--flood-seconds", type=float, default=30.0)
    parser.add_argument("--heavy-jobs", type=int, default=50_000)
    parser.add_argument("--batch-jobs", type=int, default=BATCH, help="jobs in each of the two batches")
    args = parser.parse_args(argv)
    figures: Figures = {}
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="quern-abuse-") as work, bench_stack(Path(work)) as stack:
        with admin_client(stack) as admin:
            # The flood last: its address (127.0.0.1) may stay refused at login for a while afterwards.
            # Each leaves its jobs in a paused queue, out of the next one's way; the batches' 20,000 would
            # slow the stand-in's dispatch passes, so they come after the fair share.
            scenarios: list[tuple[str, Callable[[], Figures]]] = [
                ("glob", lambda: pathological_glob(stack, admin)),
                ("quotas", lambda: quotas(stack, admin)),
                ("fair share", lambda: fair_share(stack, admin, args.heavy_jobs)),
                ("batches", lambda: two_batches(stack, admin, args.batch_jobs)),
                ("login flood", lambda: login_flood(stack, admin, args.flood_seconds)),
            ]
            for name, scenario in scenarios:
                print(f"abuse: {name}", flush=True)
                found = scenario()
                misses += [f"{name}: {miss}" for miss in found.pop("_misses")]
                figures |= found
    for miss in misses:
        print(f"abuse: MISS {miss}")
    print("abuse: " + " ".join(f"{key}={value}" for key, value in figures.items()) + f" misses={len(misses)}")
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
