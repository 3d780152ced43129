"""Forcing a job's state from its page (admins only), with a reason kept in the job's history."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.forced_states import ForcedState, force_state
from services.gateway.plumbing.auth import principal
from shared.errors import Invalid, Violation


async def force(request: Request) -> Response:
    """POST /ui/jobs/{job_id}/state: another user's job is 404 and a non-admin 403, before the form is read."""
    who, d = principal(request), deps(request)

    async def wanted() -> ForcedState:
        form = await request.form()
        try:
            return ForcedState.model_validate({"state": form.get("state"), "reason": str(form.get("reason", ""))})
        except ValidationError as exc:
            found = [Violation(f"/{'/'.join(str(part) for part in e['loc'])}", e["msg"]) for e in exc.errors()]
            raise Invalid("; ".join(f"{v.pointer[1:]}: {v.detail}" for v in found), found) from None

    job = await force_state(
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        broker=d.broker,
        wake=d.wake,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        admin=who.is_admin,
        by=who.username,
        wanted=wanted,
    )
    return RedirectResponse(request.url_for("ui:job", job_id=job.id).path, status_code=303)
