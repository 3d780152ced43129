"""Running a job again with edited parameters: the submit form, filled in with the job's own, posting to its rerun.

A field left empty keeps the old job's value (a rerun's changes are merged over the old job);
a post without the form's ``edited`` marker (a bare "Run again") repeats the job as it was.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.reruns import RerunRequest, installed_spec, rerun_job
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import SubmissionStores
from services.gateway.plumbing.auth import principal
from services.gateway.surfaces.ui.sessions import MAX_FORM_BYTES
from services.gateway.surfaces.ui.submit import INPUT, form_page, input_choice, posted_job, violations_of
from shared.apps import AppSpec
from shared.errors import Conflict, Invalid, NotFound, TooLarge
from shared.models import Job


def prefilled(job: Job) -> FormData:
    """The form's job fields and inputs (files, datasets) as the old job had them."""
    shown: list[tuple[str, str | UploadFile]] = [
        ("name", job.name or ""),
        ("tags", ", ".join(job.tags)),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("timeout_seconds", str(job.timeout_seconds)),
    ]
    shown += [(INPUT + slot, input_choice(value)) for slot, value in job.inputs.items()]
    return FormData(shown)


async def show_form(request: Request) -> Response:
    """GET /ui/jobs/{job_id}/rerun: the job's app's form, filled in with the job's parameters and fields."""
    who, d = principal(request), deps(request)
    job = await d.stores.jobs.get_job(request.path_params["job_id"], owner=who.owner_filter)
    spec = await installed_spec(job, apps=d.stores.apps)
    return await form_page(request, spec, values=job.params, form=prefilled(job), rerun_of=job.id)


def changes_of(spec: AppSpec, form: FormData) -> tuple[RerunRequest | None, dict[str, Any], list[tuple[str, str]]]:
    """The changes a posted form asks for (None if malformed), its parameters, and what is wrong."""
    body = posted_job(spec, form)
    try:
        return RerunRequest.model_validate(body), body["params"], []
    except ValidationError as exc:
        return None, body["params"], violations_of(exc)


async def rerun(request: Request) -> Response:
    """POST /ui/jobs/{job_id}/rerun: the new job's page, or the form again with every violation beside its field."""
    who, d = principal(request), deps(request)
    job = await d.stores.jobs.get_job(request.path_params["job_id"], owner=who.owner_filter)
    spec = await installed_spec(job, apps=d.stores.apps)
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise TooLarge("the form is too large")
    form = await request.form()
    wanted, params, violations = changes_of(spec, form) if form.get("edited") else (RerunRequest(), {}, [])
    if wanted is None:
        return await form_page(
            request, spec, values=job.params | params, form=form, violations=violations, status=422, rerun_of=job.id
        )
    try:
        new = await rerun_job(
            stores=SubmissionStores.of(d.stores),
            wake=d.wake,
            quotas=d.quotas,
            job_id=job.id,
            owner=who.owner_filter,
            changes=lambda: wanted,
            retention=RetentionPolicy.of(d.settings),
            networks=d.settings.allowed_networks(),
        )
    except Invalid as exc:
        violations = [(v.pointer, v.detail) for v in exc.violations] or [("", exc.detail)]
    except (NotFound, Conflict) as exc:  # a queue or input file that is not the user's, a disabled app
        violations = [("", exc.detail)]
    else:
        return RedirectResponse(request.url_for("ui:job", job_id=new.id).path, status_code=303)
    return await form_page(
        request, spec, values=job.params | params, form=form, violations=violations, status=422, rerun_of=job.id
    )
