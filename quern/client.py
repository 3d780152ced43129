"""The synchronous SDK: ``Client(url, token=...)`` and one namespace per kind of resource.

    with Client("https://quern.example.org", token=os.environ["QUERN_TOKEN"]) as quern:
        grid = quern.files.upload("valley.csv")
        job = quern.jobs.submit("flood", params={"rain_mm": 80}, inputs={"elevation": grid.id})
        job = quern.jobs.wait(job.id)
        quern.jobs.download_archive(job.id, "results/")

Lists are iterators that fetch the next page as they go. Every call retries on 429/503 and on
connection errors (see ``quern.transport``); errors are ``quern.errors.ApiError`` carrying the
problem document's fields. ``quern.aio.AsyncClient`` is the same API for asyncio.
"""

from __future__ import annotations

import builtins
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse
from pydantic import BaseModel

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
from quern.transfers import PathLike, ProgressCallback
from quern.transport import DEFAULT_URL, STREAM_TIMEOUT, Retries, checked, items, parsed, query

M = TypeVar("M", bound=BaseModel)


class Client:
    """A connection to one quern gateway, authenticated by a token or an API key (``qk_...``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: Retries | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "quern-sdk/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers, transport=transport)
        self.retries = retries or Retries()
        self.files = Files(self)
        self.datasets = Datasets(self)
        self.apps = Apps(self)
        self.jobs = Jobs(self)
        self.queues = Queues(self)
        self.users = Users(self)
        self.keys = Keys(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def request(
        self, method: str, path: str, *, body: Callable[[], Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request, retrying as ``retries`` says; an error answer raises ApiError.

        ``body`` makes the request content afresh for each attempt (a file stream, say).
        """
        headers = kwargs.pop("headers", {})
        try:
            for attempt in self.retries.attempts_at(method, headers):
                with attempt:
                    content = None if body is None else body()
                    return checked(self.http.request(method, path, headers=headers, content=content, **kwargs))
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {self.http.base_url.join(path)}: {exc or type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover  # stamina returns or raises

    def get(self, model: type[M], path: str, **params: Any) -> M:
        """GET ``path`` as ``model``."""
        return parsed(model, self.request("GET", path, params=query(**params)))

    def post(self, model: type[M], path: str, json: Any = None, **kwargs: Any) -> M:
        """POST ``json`` to ``path``, the answer as ``model``."""
        return parsed(model, self.request("POST", path, json=json, **kwargs))

    def delete(self, path: str, **params: Any) -> None:
        """DELETE ``path``."""
        self.request("DELETE", path, params=query(**params))

    def pages(self, model: type[M], path: str, **params: Any) -> Iterator[M]:
        """Every item of a paginated list, fetching the next page as the iteration reaches it."""
        cursor: str | None = None
        while True:
            body = self.request("GET", path, params=query(**params, cursor=cursor)).json()
            found, cursor = items(model, body)
            yield from found
            if cursor is None:
                return

    def login(self, username: str, password: str) -> Token:
        """Exchange a username and password for a token that every later call sends."""
        token = self.post(Token, "/v1/auth/login", {"username": username, "password": password})
        self.http.headers["Authorization"] = f"Bearer {token.access_token}"
        return token

    def me(self) -> User:
        """The caller."""
        return self.get(User, "/v1/me")

    def cluster(self) -> Cluster:
        """Workers, queue depths and job counts."""
        return self.get(Cluster, "/v1/cluster")


class Files:
    """Uploaded files: ``client.files``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def upload(
        self,
        path: PathLike,
        *,
        name: str | None = None,
        progress: ProgressCallback | None = None,
        direct_above: int = transfers.DIRECT_ABOVE,
    ) -> File:
        """Upload a local file: streamed through the gateway, or straight to S3 (presigned) above ``direct_above``."""
        return transfers.upload(self._c, path, name=name, progress=progress, direct_above=direct_above)

    def list(self, **filters: Any) -> Iterator[File]:
        """The caller's files, newest first (``name_prefix``, ``content_type``, ``created_after``...)."""
        return self._c.pages(File, "/v1/files", **filters)

    def get(self, file_id: str) -> File:
        return self._c.get(File, f"/v1/files/{file_id}")

    def link(self, file_id: str) -> Link:
        """A presigned download URL."""
        return self._c.get(Link, f"/v1/files/{file_id}/download")

    def download(self, file_id: str, dest: PathLike, *, progress: ProgressCallback | None = None) -> Path:
        """Save the file at ``dest`` (a directory: under its name), checking its sha256."""
        described, link = self.get(file_id), self.link(file_id)
        return transfers.download(link, dest, name=described.name, progress=progress)

    def delete(self, file_id: str) -> None:
        self._c.delete(f"/v1/files/{file_id}")


class Datasets:
    """Datasets made from uploaded bundles: ``client.datasets``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(
        self, file_id: str, name: str, *, description: str | None = None, tags: builtins.list[str] | None = None
    ) -> Dataset:
        body = query(file_id=file_id, name=name, description=description, tags=tags)
        return self._c.post(Dataset, "/v1/datasets", body)

    def list(self, **filters: Any) -> Iterator[Dataset]:
        return self._c.pages(Dataset, "/v1/datasets", **filters)

    def get(self, dataset_id: str) -> Dataset:
        return self._c.get(Dataset, f"/v1/datasets/{dataset_id}")

    def delete(self, dataset_id: str) -> None:
        self._c.delete(f"/v1/datasets/{dataset_id}")


class Apps:
    """The app registry: ``client.apps``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self) -> builtins.list[App]:
        return [App.model_validate(item) for item in self._c.request("GET", "/v1/apps").json()["items"]]

    def get(self, name: str, *, version: str | None = None) -> App:
        return self._c.get(App, f"/v1/apps/{name}", version=version)

    def register(self, definition: dict[str, Any]) -> App:
        """Admins: a new app, or (when one of that name exists) a new version of it."""
        try:
            self.get(str(definition.get("name", "")))
        except ApiError as exc:
            if exc.status != 404:
                raise
            return self._c.post(App, "/v1/apps", definition)
        return self._c.post(App, f"/v1/apps/{definition['name']}/versions", definition)

    def disable(self, name: str, *, version: str | None = None) -> App:
        return self._c.post(App, f"/v1/apps/{name}/disable", query(version=version) or None)

    def enable(self, name: str, *, version: str | None = None) -> App:
        return self._c.post(App, f"/v1/apps/{name}/enable", query(version=version) or None)


class Jobs:
    """Jobs: submit, follow, fetch results: ``client.jobs``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def submit(
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
        return self._c.post(Job, "/v1/jobs", body, headers=headers)

    def submit_batch(self, jobs: builtins.list[dict[str, Any]], *, idempotency_key: str | None = None) -> Batch:
        """Submit up to 10,000 job requests at once (each as ``POST /v1/jobs`` takes it)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return self._c.post(Batch, "/v1/jobs/batch", {"jobs": jobs}, headers=headers)

    def list(self, **filters: Any) -> Iterator[Job]:
        """The caller's jobs, newest first (``state``, ``app``, ``queue``, ``tag``, ``batch``, ``name_prefix``...)."""
        return self._c.pages(Job, "/v1/jobs", **filters)

    def get(self, job_id: str) -> Job:
        return self._c.get(Job, f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> Job:
        return self._c.post(Job, f"/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        """Delete the job and everything it stored (a running one is canceled first; 409 while it stops)."""
        self._c.delete(f"/v1/jobs/{job_id}")

    def rerun(self, job_id: str, **overrides: Any) -> Job:
        return self._c.post(Job, f"/v1/jobs/{job_id}/rerun", query(**overrides) or None)

    def force_state(self, job_id: str, state: str, reason: str) -> Job:
        """Admins: put the job in ``state``, recording ``reason``."""
        return self._c.post(Job, f"/v1/jobs/{job_id}/state", {"state": state, "reason": reason})

    def events(self, job_id: str, *, after: str | None = None, until: float | None = None) -> Iterator[Event]:
        """The job's events as they happen (Server-Sent Events), ending with its terminal state.

        ``until`` (a ``time.monotonic()`` instant) ends the stream then, even while no event comes.
        """
        headers = {} if after is None else {"Last-Event-ID": after}
        path = f"/v1/jobs/{job_id}/events"
        with connect_sse(self._c.http, "GET", path, headers=headers, timeout=STREAM_TIMEOUT) as source:
            if source.response.is_error:
                source.response.read()  # a streamed answer's problem document is not read yet
            checked(source.response)
            # Keep-alives are comments that never reach this loop: only closing the answer stops a quiet stream.
            watchdog = None
            if until is not None:
                watchdog = threading.Timer(max(until - time.monotonic(), 0.0), source.response.close)
                watchdog.daemon = True
                watchdog.start()
            try:
                for message in source.iter_sse():
                    if message.data:
                        yield Event.model_validate_json(message.data)
            except (httpx.StreamError, httpx.TransportError):
                if until is None or time.monotonic() < until:
                    raise  # the watchdog closed it only once ``until`` had come
            finally:
                if watchdog is not None:
                    watchdog.cancel()

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
        poll_interval: float = 2.0,
    ) -> Job:
        """Block until the job ends, following its event stream; polling when the stream fails.

        ``on_event`` sees every event (progress, log lines, state changes) while following.
        TimeoutError after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: str | None = None
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} has not ended after {timeout} s")
            try:
                for event in self.events(job_id, after=last, until=deadline):
                    last = event.id
                    if on_event is not None:
                        on_event(event)
            except (httpx.TransportError, httpx.StreamError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status == 404:
                    raise
                # The stream broke (a proxy cut it, the gateway restarted): poll for a while instead.
                time.sleep(poll_interval)

    def logs(self, job_id: str, name: str = "stdout", *, offset: int = 0, length: int | None = None) -> LogSlice:
        """A byte range of a finished job's log (a negative offset counts from the end)."""
        return self._c.get(LogSlice, f"/v1/jobs/{job_id}/logs/{name}", offset=offset, length=length)

    def outputs(self, job_id: str) -> builtins.list[Output]:
        body = self._c.request("GET", f"/v1/jobs/{job_id}/outputs").json()
        return [Output.model_validate(item) for item in body["items"]]

    def output_link(self, job_id: str, path: str) -> OutputLink:
        return self._c.get(OutputLink, f"/v1/jobs/{job_id}/outputs/{path}")

    def archive_link(self, job_id: str, *, include: builtins.list[str] | None = None, timeout: float = 600) -> Link:
        """The archive's presigned link, waiting while it is packaged (as ``Retry-After`` says)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._c.get(Link, f"/v1/jobs/{job_id}/archive", include=include)
            except ApiError as exc:
                if exc.status != 409 or exc.type != "urn:quern:problem:not-yet" or time.monotonic() > deadline:
                    raise
                time.sleep(min(exc.retry_after or 1.0, 5.0))

    def download_archive(
        self,
        job_id: str,
        dest: PathLike,
        *,
        include: builtins.list[str] | None = None,
        extract: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Save the job's tar.gz in ``dest`` (checking its sha256), or with ``extract`` unpack it there."""
        link = self.archive_link(job_id, include=include)
        return transfers.fetch_archive(link, dest, name=f"{job_id}.tar.gz", extract=extract, progress=progress)

    def deliveries(self, job_id: str) -> builtins.list[Delivery]:
        body = self._c.request("GET", f"/v1/jobs/{job_id}/deliveries").json()
        return [Delivery.model_validate(item) for item in body["items"]]


class Queues:
    """The caller's queues: ``client.queues``; a queue is named by its id or its name."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(self, name: str, *, description: str | None = None) -> Queue:
        return self._c.post(Queue, "/v1/queues", query(name=name, description=description))

    def list(self) -> Iterator[Queue]:
        return self._c.pages(Queue, "/v1/queues")

    def get(self, queue: str) -> Queue:
        return self._c.get(Queue, f"/v1/queues/{queue}")

    def pause(self, queue: str) -> Queue:
        return self._c.post(Queue, f"/v1/queues/{queue}/pause")

    def resume(self, queue: str) -> Queue:
        return self._c.post(Queue, f"/v1/queues/{queue}/resume")

    def retry(
        self, queue: str, *, states: builtins.list[str] | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Put the queue's failed (or ``states``) jobs back to QUEUED: ``{retried, skipped, more}``."""
        answer = self._c.request("POST", f"/v1/queues/{queue}/retry", json=query(states=states, limit=limit) or None)
        return dict(answer.json())

    def recover(self, queue: str) -> dict[str, Any]:
        """Requeue the queue's RUNNING jobs whose worker is gone: ``{recovered}``."""
        return dict(self._c.request("POST", f"/v1/queues/{queue}/recover").json())

    def delete(self, queue: str, *, force: bool = False) -> None:
        self._c.delete(f"/v1/queues/{queue}", force="true" if force else None)


class Users:
    """Admins: ``client.users``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(self, username: str, password: str, *, role: str = "user") -> User:
        return self._c.post(User, "/v1/users", {"username": username, "password": password, "role": role})

    def list(self) -> Iterator[User]:
        return self._c.pages(User, "/v1/users")

    def get(self, user_id: str) -> User:
        return self._c.get(User, f"/v1/users/{user_id}")

    def set_max_running(self, user_id: str, max_running: int | None) -> User:
        answer = self._c.request("PATCH", f"/v1/users/{user_id}", json={"max_running": max_running})
        return User.model_validate(answer.json())

    def disable(self, user_id: str) -> None:
        self._c.delete(f"/v1/users/{user_id}")


class Keys:
    """API keys: ``client.keys``; the secret is in the answer of ``create`` only."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(self, name: str) -> ApiKey:
        return self._c.post(ApiKey, "/v1/keys", {"name": name})

    def list(self) -> Iterator[ApiKey]:
        return self._c.pages(ApiKey, "/v1/keys")

    def revoke(self, key_id: str) -> None:
        self._c.delete(f"/v1/keys/{key_id}")


class Webhooks:
    """Registered webhooks and the signing secret: ``client.webhooks``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def new_secret(self) -> str:
        """A new signing secret (replacing the old one), shown only now."""
        return str(self._c.request("POST", "/v1/webhook-secret").json()["secret"])

    def create(self, url: str, *, progress: bool = False) -> Webhook:
        return self._c.post(Webhook, "/v1/webhooks", {"url": url, "progress": progress})

    def list(self) -> Iterator[Webhook]:
        return self._c.pages(Webhook, "/v1/webhooks")

    def delete(self, webhook_id: str) -> None:
        self._c.delete(f"/v1/webhooks/{webhook_id}")
