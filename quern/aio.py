"""The asyncio SDK: ``AsyncClient(url, token=...)``, the twin of ``quern.client.Client``.

    async with AsyncClient("https://quern.example.org", token=os.environ["QUERN_TOKEN"]) as quern:
        grid = await quern.files.upload("valley.csv")
        job = await quern.jobs.submit("flood", params={"rain_mm": 80}, inputs={"elevation": grid.id})
        job = await quern.jobs.wait(job.id)
        await quern.jobs.download_archive(job.id, "results/")

Every method is the sync client's, awaited; lists are async iterators (``async for``). Requests
to the gateway are sent on the event loop. Reading files, hashing them and the presigned
transfers to and from S3 run in worker threads; progress callbacks are called on the event loop
all the same, so they may touch loop-bound state.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from quern import transfers
from quern.errors import ApiError, Unreachable
from quern.models import (
    ApiKey,
    App,
    Batch,
    Cluster,
    Dataset,
    Delivery,
    Event,
    File,
    Job,
    Link,
    LogSlice,
    Output,
    OutputLink,
    Queue,
    Token,
    User,
    Webhook,
)
from quern.transfers import CHUNK, TRANSFER_TIMEOUT, Meter, PathLike, ProgressCallback
from quern.transport import DEFAULT_URL, STREAM_TIMEOUT, M, Retries, checked, items, parsed, query


class AsyncClient:
    """A connection to one quern gateway for asyncio, authenticated by a token or an API key (``qk_...``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "quern-sdk/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers, transport=transport)
        self.retries = retries or Retries()
        self.files = Files(self)
        self.datasets = Datasets(self)
        self.apps = Apps(self)
        self.jobs = Jobs(self)
        self.queues = Queues(self)
        self.users = Users(self)
        self.keys = Keys(self)
        self.webhooks = Webhooks(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    close = aclose  # the sync client's name for it

    async def request(
        self, method: str, path: str, *, body: Callable[[], Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request, retrying as ``retries`` says; an error answer raises ApiError.

        ``body`` makes the request content afresh for each attempt (an async file stream, say).
        """
        headers = kwargs.pop("headers", {})
        try:
            async for attempt in self.retries.attempts_at(method, headers):
                with attempt:
                    content = None if body is None else body()
                    return checked(await self.http.request(method, path, headers=headers, content=content, **kwargs))
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {self.http.base_url.join(path)}: {exc or type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover  # stamina returns or raises

    async def get(self, model: type[M], path: str, **params: Any) -> M:
        """GET ``path`` as ``model``."""
        return parsed(model, await self.request("GET", path, params=query(**params)))

    async def post(self, model: type[M], path: str, json: Any = None, **kwargs: Any) -> M:
        """POST ``json`` to ``path``, the answer as ``model``."""
        return parsed(model, await self.request("POST", path, json=json, **kwargs))

    async def delete(self, path: str, **params: Any) -> None:
        """DELETE ``path``."""
        await self.request("DELETE", path, params=query(**params))

    async def pages(self, model: type[M], path: str, **params: Any) -> AsyncIterator[M]:
        """Every item of a paginated list, fetching the next page as the iteration reaches it."""
        cursor: str | None = None
        while True:
            body = (await self.request("GET", path, params=query(**params, cursor=cursor))).json()
            found, cursor = items(model, body)
            for item in found:
                yield item
            if cursor is None:
                return

    async def login(self, username: str, password: str) -> Token:
        """Exchange a username and password for a token that every later call sends."""
        token = await self.post(Token, "/v1/auth/login", {"username": username, "password": password})
        self.http.headers["Authorization"] = f"Bearer {token.access_token}"
        return token

    async def me(self) -> User:
        """The caller."""
        return await self.get(User, "/v1/me")

    async def cluster(self) -> Cluster:
        """Workers, queue depths and job counts."""
        return await self.get(Cluster, "/v1/cluster")


def _on_loop(progress: ProgressCallback | None) -> ProgressCallback | None:
    """``progress`` as a callback a worker thread may call: the call itself happens on this event loop."""
    if progress is None:
        return None
    loop = asyncio.get_running_loop()

    def report(done: int, total: int | None) -> None:
        # Scheduled before the thread's result is, so every report has run once the await returns.
        loop.call_soon_threadsafe(progress, done, total)

    return report


async def _read_range(path: Path, start: int, size: int, meter: Meter) -> AsyncIterator[bytes]:
    """``transfers.read_range`` as an async request body: each chunk is read in a worker thread."""
    meter.rewind(start)
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        handle.seek(start)
        left = size
        while left > 0 and (block := await asyncio.to_thread(handle.read, min(CHUNK, left))):
            left -= len(block)
            meter.add(len(block))
            yield block
    finally:
        handle.close()


class Files:
    """Uploaded files: ``client.files``."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def upload(
        self,
        path: PathLike,
        *,
        name: str | None = None,
        progress: ProgressCallback | None = None,
        direct_above: int = transfers.DIRECT_ABOVE,
    ) -> File:
        """Upload a local file: streamed through the gateway, or straight to S3 (presigned) above ``direct_above``."""
        source = Path(path)
        size = (await asyncio.to_thread(source.stat)).st_size
        name = name or source.name
        if size <= direct_above:
            meter = Meter(size, progress)
            answer = await self._c.request(
                "POST",
                "/v1/files",
                params={"name": name},
                body=lambda: _read_range(source, 0, size, meter),
                headers={"Content-Type": "application/octet-stream"},
                timeout=TRANSFER_TIMEOUT,
            )
            return File.model_validate(answer.json())
        sha256 = await asyncio.to_thread(transfers.sha256_of, source)
        announced = await self._c.request("POST", "/v1/uploads", json={"name": name, "size": size, "sha256": sha256})
        pending = announced.json()
        completion = await asyncio.to_thread(
            transfers.put_presigned, pending, source, size, Meter(size, _on_loop(progress))
        )
        try:
            done = await self._c.request(
                "POST", f"/v1/uploads/{pending['id']}/complete", json=completion, timeout=TRANSFER_TIMEOUT
            )
        except (Unreachable, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status != 409:
                raise
            return await self._wait_for_file(pending["id"], exc)  # the answer may just have been lost
        return File.model_validate(done.json())

    async def _wait_for_file(self, file_id: str, cause: Exception) -> File:
        deadline = time.monotonic() + transfers.completion_pending(cause)
        while True:
            try:
                return await self.get(file_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            except Unreachable:
                pass
            if time.monotonic() >= deadline:
                raise cause
            await asyncio.sleep(2)

    def list(self, **filters: Any) -> AsyncIterator[File]:
        """The caller's files, newest first (``name_prefix``, ``content_type``, ``created_after``...)."""
        return self._c.pages(File, "/v1/files", **filters)

    async def get(self, file_id: str) -> File:
        return await self._c.get(File, f"/v1/files/{file_id}")

    async def link(self, file_id: str) -> Link:
        """A presigned download URL."""
        return await self._c.get(Link, f"/v1/files/{file_id}/download")

    async def download(self, file_id: str, dest: PathLike, *, progress: ProgressCallback | None = None) -> Path:
        """Save the file at ``dest`` (a directory: under its name), checking its sha256."""
        described, link = await self.get(file_id), await self.link(file_id)
        return await asyncio.to_thread(transfers.download, link, dest, name=described.name, progress=_on_loop(progress))

    async def delete(self, file_id: str) -> None:
        await self._c.delete(f"/v1/files/{file_id}")


class Datasets:
    """Datasets made from uploaded bundles: ``client.datasets``."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self, file_id: str, name: str, *, description: str | None = None, tags: builtins.list[str] | None = None
    ) -> Dataset:
        body = query(file_id=file_id, name=name, description=description, tags=tags)
        return await self._c.post(Dataset, "/v1/datasets", body)

    def list(self, **filters: Any) -> AsyncIterator[Dataset]:
        return self._c.pages(Dataset, "/v1/datasets", **filters)

    async def get(self, dataset_id: str) -> Dataset:
        return await self._c.get(Dataset, f"/v1/datasets/{dataset_id}")

    async def delete(self, dataset_id: str) -> None:
        await self._c.delete(f"/v1/datasets/{dataset_id}")


class Apps:
    """The app registry: ``client.apps``."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self) -> builtins.list[App]:
        return [App.model_validate(item) for item in (await self._c.request("GET", "/v1/apps")).json()["items"]]

    async def get(self, name: str, *, version: str | None = None) -> App:
        return await self._c.get(App, f"/v1/apps/{name}", version=version)

    async def register(self, definition: dict[str, Any]) -> App:
        """Admins: a new app, or (when one of that name exists) a new version of it."""
        try:
            await self.get(str(definition.get("name", "")))
        except ApiError as exc:
            if exc.status != 404:
                raise
            return await self._c.post(App, "/v1/apps", definition)
        return await self._c.post(App, f"/v1/apps/{definition['name']}/versions", definition)

    async def disable(self, name: str, *, version: str | None = None) -> App:
        return await self._c.post(App, f"/v1/apps/{name}/disable", query(version=version) or None)

    async def enable(self, name: str, *, version: str | None = None) -> App:
        return await self._c.post(App, f"/v1/apps/{name}/enable", query(version=version) or None)


class Jobs:
    """Jobs: submit, follow, fetch results: ``client.jobs``."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def submit(
        self,
        app: str,
        *,
        params: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Job:
        """Submit a job (``queue``, ``priority``, ``tags``, ``name``, ``timeout_seconds``, ``webhook``...).

        Every submission carries an ``Idempotency-Key`` (a new one unless given), so a retry after a
        lost answer never makes a second job.
        """
        body = {"app": app, "params": params or {}, "inputs": inputs or {}, **query(**options)}
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return await self._c.post(Job, "/v1/jobs", body, headers=headers)

    async def submit_batch(self, jobs: builtins.list[dict[str, Any]], *, idempotency_key: str | None = None) -> Batch:
        """Submit up to 10,000 job requests at once (each as ``POST /v1/jobs`` takes it)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return await self._c.post(Batch, "/v1/jobs/batch", {"jobs": jobs}, headers=headers)

    def list(self, **filters: Any) -> AsyncIterator[Job]:
        """The caller's jobs, newest first (``state``, ``app``, ``queue``, ``tag``, ``batch``, ``name_prefix``...)."""
        return self._c.pages(Job, "/v1/jobs", **filters)

    async def get(self, job_id: str) -> Job:
        return await self._c.get(Job, f"/v1/jobs/{job_id}")

    async def cancel(self, job_id: str) -> Job:
        return await self._c.post(Job, f"/v1/jobs/{job_id}/cancel")

    async def delete(self, job_id: str) -> None:
        """Delete the job and everything it stored (a running one is canceled first; 409 while it stops)."""
        await self._c.delete(f"/v1/jobs/{job_id}")

    async def rerun(self, job_id: str, **overrides: Any) -> Job:
        return await self._c.post(Job, f"/v1/jobs/{job_id}/rerun", query(**overrides) or None)

    async def force_state(self, job_id: str, state: str, reason: str) -> Job:
        """Admins: put the job in ``state``, recording ``reason``."""
        return await self._c.post(Job, f"/v1/jobs/{job_id}/state", {"state": state, "reason": reason})

    async def events(self, job_id: str, *, after: str | None = None) -> AsyncGenerator[Event, None]:
        """The job's events as they happen (Server-Sent Events), ending with its terminal state."""
        headers = {} if after is None else {"Last-Event-ID": after}
        async with aconnect_sse(
            self._c.http, "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=STREAM_TIMEOUT
        ) as source:
            if source.response.is_error:
                await source.response.aread()  # a streamed answer's problem document is not read yet
            checked(source.response)
            async for message in source.aiter_sse():
                if message.data:
                    yield Event.model_validate_json(message.data)

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
        poll_interval: float = 2.0,
    ) -> Job:
        """Wait until the job ends, following its event stream; polling when the stream fails.

        ``on_event`` sees every event (progress, log lines, state changes) while following.
        TimeoutError after ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(job_id, on_event, poll_interval)
        except TimeoutError as exc:
            raise TimeoutError(f"job {job_id} has not ended after {timeout} s") from exc

    async def _follow(self, job_id: str, on_event: Callable[[Event], None] | None, poll_interval: float) -> Job:
        last: str | None = None
        while True:
            job = await self.get(job_id)
            if job.done:
                return job
            try:
                async with contextlib.aclosing(self.events(job_id, after=last)) as events:
                    async for event in events:
                        last = event.id
                        if on_event is not None:
                            on_event(event)
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status == 404:
                    raise
                # The stream broke (a proxy cut it, the gateway restarted): poll for a while instead.
                await asyncio.sleep(poll_interval)

    async def logs(self, job_id: str, name: str = "stdout", *, offset: int = 0, length: int | None = None) -> LogSlice:
        """A byte range of a finished job's log (a negative offset counts from the end)."""
        return await self._c.get(LogSlice, f"/v1/jobs/{job_id}/logs/{name}", offset=offset, length=length)

    async def outputs(self, job_id: str) -> builtins.list[Output]:
        body = (await self._c.request("GET", f"/v1/jobs/{job_id}/outputs")).json()
        return [Output.model_validate(item) for item in body["items"]]

    async def output_link(self, job_id: str, path: str) -> OutputLink:
        return await self._c.get(OutputLink, f"/v1/jobs/{job_id}/outputs/{path}")

    async def archive_link(
        self, job_id: str, *, include: builtins.list[str] | None = None, timeout: float = 600
    ) -> Link:
        """The archive's presigned link, waiting while it is packaged (as ``Retry-After`` says)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self._c.get(Link, f"/v1/jobs/{job_id}/archive", include=include)
            except ApiError as exc:
                if exc.status != 409 or exc.type != "urn:quern:problem:not-yet" or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(min(exc.retry_after or 1.0, 5.0))

    async def download_archive(
        self,
        job_id: str,
        dest: PathLike,
        *,
        include: builtins.list[str] | None = None,
        extract: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Save the job's tar.gz in ``dest`` (checking its sha256), or with ``extract`` unpack it there."""
        link = await self.archive_link(job_id, include=include)
        return await asyncio.to_thread(
            transfers.fetch_archive, link, dest, name=f"{job_id}.tar.gz", extract=extract, progress=_on_loop(progress)
        )

    async def deliveries(self, job_id: str) -> builtins.list[Delivery]:
        body = (await self._c.request("GET", f"/v1/jobs/{job_id}/deliveries")).json()
        return [Delivery.model_validate(item) for item in body["items"]]


class Queues:
    """The caller's queues: ``client.queues``; a queue is named by its id or its name."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(self, name: str, *, description: str | None = None) -> Queue:
        return await self._c.post(Queue, "/v1/queues", query(name=name, description=description))

    def list(self) -> AsyncIterator[Queue]:
        return self._c.pages(Queue, "/v1/queues")

    async def get(self, queue: str) -> Queue:
        return await self._c.get(Queue, f"/v1/queues/{queue}")

    async def pause(self, queue: str) -> Queue:
        return await self._c.post(Queue, f"/v1/queues/{queue}/pause")

    async def resume(self, queue: str) -> Queue:
        return await self._c.post(Queue, f"/v1/queues/{queue}/resume")

    async def retry(
        self, queue: str, *, states: builtins.list[str] | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Put the queue's failed (or ``states``) jobs back to QUEUED: ``{retried, skipped, more}``."""
        body = query(states=states, limit=limit) or None
        return dict((await self._c.request("POST", f"/v1/queues/{queue}/retry", json=body)).json())

    async def recover(self, queue: str) -> dict[str, Any]:
        """Requeue the queue's RUNNING jobs whose worker is gone: ``{recovered}``."""
        return dict((await self._c.request("POST", f"/v1/queues/{queue}/recover")).json())

    async def delete(self, queue: str, *, force: bool = False) -> None:
        await self._c.delete(f"/v1/queues/{queue}", force="true" if force else None)


class Users:
    """Admins: ``client.users``."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(self, username: str, password: str, *, role: str = "user") -> User:
        return await self._c.post(User, "/v1/users", {"username": username, "password": password, "role": role})

    def list(self) -> AsyncIterator[User]:
        return self._c.pages(User, "/v1/users")

    async def get(self, user_id: str) -> User:
        return await self._c.get(User, f"/v1/users/{user_id}")

    async def set_max_running(self, user_id: str, max_running: int | None) -> User:
        answer = await self._c.request("PATCH", f"/v1/users/{user_id}", json={"max_running": max_running})
        return User.model_validate(answer.json())

    async def disable(self, user_id: str) -> None:
        await self._c.delete(f"/v1/users/{user_id}")


class Keys:
    """API keys: ``client.keys``; the secret is in the answer of ``create`` only."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(self, name: str) -> ApiKey:
        return await self._c.post(ApiKey, "/v1/keys", {"name": name})

    def list(self) -> AsyncIterator[ApiKey]:
        return self._c.pages(ApiKey, "/v1/keys")

    async def revoke(self, key_id: str) -> None:
        await self._c.delete(f"/v1/keys/{key_id}")


class Webhooks:
    """Registered webhooks and the signing secret: ``client.webhooks``."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def new_secret(self) -> str:
        """A new signing secret (replacing the old one), shown only now."""
        return str((await self._c.request("POST", "/v1/webhook-secret")).json()["secret"])

    async def create(self, url: str, *, progress: bool = False) -> Webhook:
        return await self._c.post(Webhook, "/v1/webhooks", {"url": url, "progress": progress})

    def list(self) -> AsyncIterator[Webhook]:
        return self._c.pages(Webhook, "/v1/webhooks")

    async def delete(self, webhook_id: str) -> None:
        await self._c.delete(f"/v1/webhooks/{webhook_id}")
