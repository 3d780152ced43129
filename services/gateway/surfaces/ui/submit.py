"""Submitting a job from a form made from the app's JSON Schema; its input files uploaded right there.

The form posts like any other (urlencoded, with the session's CSRF token); a file chosen for an
input is first uploaded by the page's script (``POST /ui/files``, with the token as a header and
a progress bar), and the form then names it like a file uploaded before. Every violation the
submission meets is shown beside its field.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.files import receive_upload
from services.gateway.domain.quotas import stored_room
from services.gateway.domain.registry import find_app, listed_apps
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import JobRequest, SubmissionStores, submit_job
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.forms import sent_file
from services.gateway.surfaces.ui.schema_forms import errors_by_field, fields, read_params
from services.gateway.surfaces.ui.sessions import MAX_FORM_BYTES
from services.gateway.surfaces.ui.templates import page
from shared.apps import AppSpec, validate_request
from shared.errors import Conflict, Invalid, NotFound, TooLarge
from shared.models import Dataset, InputValue, StoredFile

FILES_SHOWN = 100  # the newest files offered for an input
INPUT = "input."  # the form's name of an input slot's field: input.<slot>
DATASET = "dataset:"  # an input's value naming a dataset: dataset:<id>, or one of its members: dataset:<id>:<path>
DATASETS_SHOWN = 100  # the newest datasets offered for an input
MEMBERS_OFFERED = 200  # members of each offered one by one
JOB_FIELDS = ("name", "tags", "queue", "priority", "timeout_seconds")


async def choose_app(request: Request) -> Response:
    """GET /ui/submit: the apps to submit a job of."""
    apps = await listed_apps(apps=deps(request).stores.apps, with_disabled=False)
    return page(request, "apps.html", apps=apps)


async def recent_files(request: Request) -> list[StoredFile]:
    """The user's newest files, to choose inputs from."""
    found = await deps(request).stores.files.list_files(owner=principal(request).user_id, limit=FILES_SHOWN, after=None)
    return found.items


async def recent_datasets(request: Request) -> list[Dataset]:
    """The user's newest datasets, to choose inputs (or one of their members) from."""
    found = await deps(request).stores.datasets.list_datasets(
        owner=principal(request).user_id, limit=DATASETS_SHOWN, after=None
    )
    return found.items


def input_choice(value: InputValue) -> str:
    """A job's input as the form's picker names it (``input_value`` reads it back)."""
    if isinstance(value, str):
        return value
    return DATASET + value.dataset + ("" if value.path is None else ":" + value.path)


def input_value(raw: str) -> str | dict[str, str]:
    """An input field's value as the job takes it: a file id, or ``{dataset, path?}``."""
    if not raw.startswith(DATASET):
        return raw
    dataset, _, path = raw.removeprefix(DATASET).partition(":")
    return {"dataset": dataset, "path": path} if path else {"dataset": dataset}


async def form_page(
    request: Request,
    spec: AppSpec,
    *,
    values: dict[str, Any] | None = None,
    form: FormData | None = None,
    violations: list[tuple[str, str]] | None = None,
    status: int = 200,
    rerun_of: str | None = None,
) -> Response:
    """The submit form of ``spec`` (or of a rerun of job ``rerun_of``), showing what was posted and what is wrong."""
    placed, others = errors_by_field(violations or [])
    params = fields(spec.parameters, values)
    for each in params:
        each.error = placed.get(f"params.{each.name}")
    posted = {key: str(value) for key, value in (form or {}).items()}
    return page(
        request,
        "submit.html",
        status=status,
        spec=spec,
        params=params,
        files=await recent_files(request),
        datasets=await recent_datasets(request),
        dataset_prefix=DATASET,
        members_offered=MEMBERS_OFFERED,
        single_put_max=deps(request).settings.upload_single_put_max_bytes,
        posted=posted,
        errors=placed,
        other_errors=others,
        input_prefix=INPUT,
        rerun_of=rerun_of,
    )


async def show_form(request: Request) -> Response:
    """GET /ui/submit/{app}: the app's form, its defaults filled in."""
    spec = await find_app(request.path_params["app"], apps=deps(request).stores.apps)
    return await form_page(request, spec)


def posted_job(spec: AppSpec, form: FormData) -> dict[str, Any]:
    """What a posted job form holds: ``params``, ``inputs`` (file ids, or datasets) and the job's own fields given."""
    params = read_params(spec.parameters, form)
    inputs = {slot: input_value(str(form[INPUT + slot])) for slot in spec.inputs if form.get(INPUT + slot)}
    body: dict[str, Any] = {"params": params, "inputs": inputs}
    for name in JOB_FIELDS:
        raw = str(form.get(name, "")).strip()
        if raw:
            body[name] = [tag.strip() for tag in raw.split(",") if tag.strip()] if name == "tags" else raw
    return body


def violations_of(exc: ValidationError) -> list[tuple[str, str]]:
    """A request model's validation errors as (JSON pointer, message), to show beside their fields."""
    return [("/" + "/".join(str(part) for part in e["loc"]), e["msg"]) for e in exc.errors()]


def job_request(spec: AppSpec, form: FormData) -> tuple[JobRequest | None, dict[str, Any], list[tuple[str, str]]]:
    """The job a posted form asks for (None if its own fields are malformed), its parameters, and what is wrong."""
    body = posted_job(spec, form)
    params, inputs = body["params"], body["inputs"]
    try:
        return JobRequest.model_validate({"app": spec.name, **body}), params, []
    except ValidationError as exc:
        found = violations_of(exc)
    try:  # the job's own fields are wrong: say what is wrong with the parameters and inputs too
        validate_request(spec, params, inputs)
    except Invalid as invalid:
        found += [(v.pointer, v.detail) for v in invalid.violations]
    return None, params, found


async def submit(request: Request) -> Response:
    """POST /ui/submit/{app}: the new job's page, or the form again with every violation beside its field."""
    d = deps(request)
    spec = await find_app(request.path_params["app"], apps=d.stores.apps)
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise TooLarge("the form is too large")
    form = await request.form()
    wanted, params, violations = job_request(spec, form)
    if wanted is None:
        return await form_page(request, spec, values=params, form=form, violations=violations, status=422)
    try:
        job = await submit_job(
            stores=SubmissionStores.of(d.stores),
            request=wanted,
            owner=principal(request).user_id,
            wake=d.wake,
            quotas=await d.quotas(principal(request).user_id),
            retention=RetentionPolicy.of(d.settings),
            networks=d.settings.allowed_networks(),
        )
    except Invalid as exc:
        found = [(v.pointer, v.detail) for v in exc.violations] or [("", exc.detail)]
        return await form_page(request, spec, values=params, form=form, violations=found, status=422)
    except (NotFound, Conflict) as exc:  # a queue or input file that is not the user's, a disabled app
        return await form_page(request, spec, values=params, form=form, violations=[("", exc.detail)], status=422)
    return RedirectResponse(request.url_for("ui:job", job_id=job.id).path, status_code=303)


async def upload(request: Request) -> Response:
    """POST /ui/files?name=NAME with the file as the raw body: the stored file's id, name and size (JSON)."""
    d = deps(request)
    sent = await sent_file(request, max_bytes=d.settings.max_upload_bytes)
    who = principal(request).user_id
    file = await receive_upload(
        files=d.stores.files,
        storage=d.storage,
        chunks=sent.chunks,
        owner=principal(request).user_id,
        name=sent.name,
        content_type=sent.content_type,
        declared_size=sent.size,
        max_bytes=d.settings.max_upload_bytes,
        room=await stored_room(owner=who, quotas=await d.quotas(who), usage=d.stores.usage),
    )
    return JSONResponse({"id": file.id, "name": file.name, "size": file.size}, status_code=201)
