"""What the SDK raises.

QuernError
├── ApiError        the service answered with a problem document (RFC 9457)
└── Unreachable     the service could not be reached, even after the retries
"""

from __future__ import annotations

from typing import Any

import httpx


class QuernError(Exception):
    """Something went wrong talking to quern."""


class ApiError(QuernError):
    """The service refused or failed the request; the problem document's fields are attributes."""

    def __init__(self, status: int, problem: dict[str, Any], *, retry_after: float | None = None) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type", "about:blank"))
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        self.instance: str | None = problem.get("instance")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail}".strip())

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """The error a 4xx/5xx answer stands for (a body that is not JSON becomes the detail)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"title": response.reason_phrase, "detail": response.text[:500]}
        return cls(response.status_code, body, retry_after=_retry_after(response))

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines += [f"  {error.get('pointer') or '(body)'}: {error.get('detail', '')}" for error in self.errors]
        return "\n".join(lines)


class Unreachable(QuernError):
    """No answer from the service: refused, reset or timed out."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return None if value is None else max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: rare here; the default backoff applies
