"""Job request bodies (a job, a batch, a rerun's changes), parsed with every shape error pointed at the input."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from services.gateway.domain.submission import JobRequest
from services.gateway.plumbing.bodies import parse_model
from services.gateway.plumbing.endpoints import Param
from shared.errors import Invalid, Violation
from shared.models import DatasetInput

M = TypeVar("M", bound=BaseModel)

MAX_JOB_BYTES = 1 * 2**20
_BRANCHES = frozenset({"str", DatasetInput.__name__})
INPUT_SHAPE = 'must be a file id, {"dataset": ID} or {"dataset": ID, "path": MEMBER}'
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "1-255 visible ASCII characters; the same key with another request is 409; kept a day",
    location="header",
)


def _input_violation(violation: Violation) -> Violation:
    """Point at the input itself, not at the union branch pydantic tried (``[/jobs/N]/inputs/SLOT/str``)."""
    parts = violation.pointer.split("/")
    at = 3 if len(parts) > 3 and parts[1] == "jobs" else 1  # inside a batch, the request is at /jobs/N
    if len(parts) < at + 3 or parts[at] != "inputs" or parts[at + 2] not in _BRANCHES:
        return violation
    if len(parts) == at + 3:
        return Violation("/".join(parts[: at + 2]), INPUT_SHAPE)
    return Violation("/".join(parts[: at + 2] + parts[at + 3 :]), violation.detail)


def parse_job_request(raw: bytes, model: type[M] = JobRequest) -> M:  # type: ignore[assignment]
    """The job request (or another body holding inputs), with every shape error pointed at."""
    try:
        return parse_model(raw, model)
    except Invalid as exc:
        violations = list(dict.fromkeys(_input_violation(v) for v in exc.violations))
        raise Invalid("the job request is malformed", violations) from None
