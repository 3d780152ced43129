"""A small synchronous client for quern's HTTP API (the full SDK grows from here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"}


class ApiError(Exception):
    """The service answered with a problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")


def _chunks(path: Path, size: int = 2**20) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(size):
            yield block


class Client:
    """Upload files, submit jobs, follow them and fetch their archives."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self.http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def login(self, username: str, password: str) -> None:
        """Exchange a username and password for a bearer token used by every later call."""
        answer = self._json(self.http.post("/v1/auth/login", json={"username": username, "password": password}))
        self.http.headers["Authorization"] = f"Bearer {answer['access_token']}"

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise ApiError(response.status_code, problem)
        return response.json()

    def app(self, name: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/v1/apps/{name}"))  # type: ignore[no-any-return]

    def upload(self, path: Path) -> dict[str, Any]:
        """Stream a local file to POST /v1/files."""
        response = self.http.post("/v1/files", params={"name": path.name}, content=_chunks(path))
        return self._json(response)  # type: ignore[no-any-return]

    def submit(self, app: str, params: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
        return self._json(self.http.post("/v1/jobs", json={"app": app, "params": params, "inputs": inputs}))  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/v1/jobs/{job_id}"))  # type: ignore[no-any-return]

    def wait(self, job_id: str, *, timeout: float = 600, interval: float = 0.25) -> dict[str, Any]:
        """Poll until the job reaches a terminal state."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']} after {timeout:.0f} s")
            time.sleep(interval)
        return job

    def archive(self, job_id: str, *, timeout: float = 300) -> dict[str, Any]:
        """The archive link, waiting (as told by Retry-After) while it is being packaged."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.get(f"/v1/jobs/{job_id}/archive")
            if response.status_code != 409 or time.monotonic() > deadline:
                return self._json(response)  # type: ignore[no-any-return]
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))

    def download(self, url: str, dest: Path) -> Path:
        """Stream a presigned URL to a local file."""
        with httpx.stream("GET", url, timeout=60) as response:
            response.raise_for_status()
            with dest.open("wb") as handle:
                for block in response.iter_bytes():
                    handle.write(block)
        return dest
