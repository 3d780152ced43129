"""``just load``: many concurrent clients doing mixed work on a stack of their own; one line per operation.

``python -m bench.mixed_load [--clients 50] [--seconds 300]`` starts a whole local stack, gives
each client a user of its own (logged in once), and lets every client loop until the time is up:
pick an operation (submit a job, read one, list, follow the job's events for a moment, upload a
small file, download a file or a finished job's archive through its presigned URL), do it, wait
a moment (a person's or a script's pause, on average ``THINK_SECONDS``), again. Every answer that
is not the one the API promises counts as an error, and so does a client exception or timeout.

It prints p50 and p99 per operation and a last line ``load: ops=N errors=E seconds=S``; the exit
status is 1 on any error. Kept out of the default test run: the smoke test runs it for seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.harness import admin_client, bench_stack, percentile
from bench.latency import TRUE_APP
from devstack.stack import Stack

THINK_SECONDS = 0.5
STREAM_SECONDS = 2.0  # how long a client follows a job's events before it hangs up
UPLOAD_BYTES = 256 * 1024
TIMEOUT = httpx.Timeout(60.0)
# Operation -> weight: mostly reads, as a job service's clients do; every kind often enough for a p99.
WEIGHTS = {"submit": 20, "get": 25, "list": 15, "events": 10, "upload": 10, "download": 10, "archive": 10}


@dataclass
class Tally:
    """Seconds per operation and the errors seen, shared by every client of the run."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def error(self, op: str, what: str) -> None:
        self.errors[op].append(what[:300])


@dataclass
class Client:
    """One simulated user: an HTTP client with its token, and what it has made so far."""

    http: httpx.AsyncClient
    jobs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


def _expect(answer: httpx.Response, *codes: int) -> None:
    if answer.status_code not in codes:
        raise AssertionError(
            f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}: {answer.text}"
        )


async def _submit(client: Client, s3: httpx.AsyncClient) -> None:
    answer = await client.http.post("/v1/jobs", json={"app": TRUE_APP["name"], "tags": ["load"]})
    _expect(answer, 201)
    client.jobs.append(answer.json()["id"])


async def _get(client: Client, s3: httpx.AsyncClient) -> None:
    if not client.jobs:
        return await _submit(client, s3)
    job_id = random.choice(client.jobs[-50:])
    answer = await client.http.get(f"/v1/jobs/{job_id}")
    _expect(answer, 200)
    if answer.json()["state"] == "SUCCEEDED" and job_id not in client.finished:
        client.finished.append(job_id)


async def _list(client: Client, s3: httpx.AsyncClient) -> None:
    params = random.choice([{}, {"state": "SUCCEEDED"}, {"tag": "load"}, {"state": "QUEUED,RUNNING"}])
    answer = await client.http.get("/v1/jobs", params=params | {"limit": "20"})
    _expect(answer, 200)


async def _events(client: Client, s3: httpx.AsyncClient) -> None:
    if not client.jobs:
        return await _submit(client, s3)
    job_id = random.choice(client.jobs[-20:])
    async with client.http.stream("GET", f"/v1/jobs/{job_id}/events") as answer:
        _expect(answer, 200)
        try:
            async with asyncio.timeout(STREAM_SECONDS):  # a watcher hangs up after a while: that is no error
                async for _ in answer.aiter_lines():
                    pass
        except TimeoutError:
            pass


async def _upload(client: Client, s3: httpx.AsyncClient) -> None:
    body = os.urandom(UPLOAD_BYTES)
    answer = await client.http.post("/v1/files", params={"name": "load.bin"}, content=body)
    _expect(answer, 201)
    client.files.append(answer.json()["id"])


async def _download(client: Client, s3: httpx.AsyncClient) -> None:
    if not client.files:
        return await _upload(client, s3)
    answer = await client.http.get(f"/v1/files/{random.choice(client.files[-20:])}/download")
    _expect(answer, 200)
    link = answer.json()
    body = await s3.get(link["url"])
    _expect(body, 200)
    if len(body.content) != link["size"]:
        raise AssertionError(f"downloaded {len(body.content)} bytes of {link['size']}")


async def _archive(client: Client, s3: httpx.AsyncClient) -> None:
    if not client.finished:
        return await _get(client, s3)
    answer = await client.http.get(f"/v1/jobs/{random.choice(client.finished[-20:])}/archive")
    _expect(answer, 200, 409)  # 409: not packaged yet, with Retry-After, as promised
    if answer.status_code == 200:
        _expect(await s3.get(answer.json()["url"]), 200)


OPERATIONS = {
    "submit": _submit,
    "get": _get,
    "list": _list,
    "events": _events,
    "upload": _upload,
    "download": _download,
    "archive": _archive,
}


async def _run_client(client: Client, s3: httpx.AsyncClient, tally: Tally, until: float) -> None:
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    while time.monotonic() < until:
        op = random.choices(names, weights)[0]
        started = time.perf_counter()
        try:
            await OPERATIONS[op](client, s3)
        except (AssertionError, httpx.HTTPError) as exc:
            tally.error(op, f"{type(exc).__name__}: {exc}")
        else:
            tally.seconds[op].append(time.perf_counter() - started)
        await asyncio.sleep(random.expovariate(1 / THINK_SECONDS))


def _users(stack: Stack, count: int) -> list[str]:
    """Tokens of ``count`` new users, and the trivial app registered."""
    tokens = []
    with admin_client(stack) as admin:
        answer = admin.post("/v1/apps", json=TRUE_APP)
        assert answer.status_code in (201, 409), answer.text
        run = secrets.token_hex(3)
        for n in range(count):
            name, password = f"load-{run}-{n}", secrets.token_urlsafe(18)
            created = admin.post("/v1/users", json={"username": name, "password": password, "role": "user"})
            assert created.status_code == 201, created.text
            login = httpx.post(f"{stack.gateway_url}/v1/auth/login", json={"username": name, "password": password})
            assert login.status_code == 200, login.text
            tokens.append(login.json()["access_token"])
    return tokens


async def _drive(stack: Stack, tokens: list[str], seconds: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(tokens) * 2)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as s3:
        clients = [
            Client(
                httpx.AsyncClient(base_url=stack.gateway_url, timeout=TIMEOUT, headers={"Authorization": f"Bearer {t}"})
            )
            for t in tokens
        ]
        try:
            await asyncio.gather(*(_run_client(client, s3, tally, until) for client in clients))
        finally:
            for client in clients:
                await client.http.aclose()
    return tally


def report(tally: Tally, seconds: float) -> tuple[list[str], int]:
    """Lines per operation and the last line; the number of errors."""
    lines = []
    for op in WEIGHTS:
        took = tally.seconds.get(op, [])
        errors = tally.errors.get(op, [])
        p50 = percentile(took, 50) * 1000 if took else 0.0
        p99 = percentile(took, 99) * 1000 if took else 0.0
        lines.append(f"load: {op:9} ok={len(took):6} errors={len(errors):4} p50_ms={p50:8.1f} p99_ms={p99:8.1f}")
        lines += [f"load:   {op} error: {what}" for what in errors[:3]]
    ops = sum(len(took) for took in tally.seconds.values())
    failed = sum(len(seen) for seen in tally.errors.values())
    lines.append(f"load: ops={ops + failed} errors={failed} seconds={seconds:.0f} ops_per_second={ops / seconds:.1f}")
    return lines, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mixed_load", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients, each a user of its own")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long the clients keep working")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quern-load-") as work, bench_stack(Path(work)) as stack:
        tokens = _users(stack, args.clients)
        print(f"load: {args.clients} clients for {args.seconds:g} s on {stack.gateway_url}", flush=True)
        started = time.monotonic()
        tally = asyncio.run(_drive(stack, tokens, args.seconds))
        lines, errors = report(tally, time.monotonic() - started)
    print("\n".join(lines))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
