"""The datasets pages: the list, a dataset made from an uploaded bundle, its members and metadata, delete."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.datasets import DatasetRequest, create_dataset, delete_dataset
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.problems import status_of
from services.gateway.surfaces.ui.file_pages import unless_in_use
from services.gateway.surfaces.ui.sessions import MAX_FORM_BYTES
from services.gateway.surfaces.ui.templates import page
from shared.errors import AppError, Invalid, TooLarge

PAGE_SIZE = 50
FILES_SHOWN = 100  # the newest files offered as bundles


async def datasets_page(
    request: Request, *, problems: list[str] | None = None, posted: dict[str, str] | None = None, status: int = 200
) -> Response:
    """The user's datasets and the form that makes one; ``problems`` say why the last attempt failed."""
    d, owner, after = deps(request), principal(request).user_id, request.query_params.get("after") or None
    found = await d.stores.datasets.list_datasets(owner=owner, limit=PAGE_SIZE, after=after)
    files = await d.stores.files.list_files(owner=owner, limit=FILES_SHOWN, after=None)
    return page(
        request,
        "datasets.html",
        status=status,
        datasets=found.items,
        next_after=found.next_after,
        first=after is not None,
        files=files.items,
        problems=problems or [],
        posted=posted or {},
    )


async def list_datasets(request: Request) -> Response:
    """GET /ui/datasets[?after=ID]."""
    return await datasets_page(request)


async def create(request: Request) -> Response:
    """POST /ui/datasets (file_id, name): the new dataset's page, or the list with why the bundle was refused."""
    d = deps(request)
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise TooLarge("the form is too large")
    form = await request.form()
    posted = {name: str(form.get(name, "")).strip() for name in ("file_id", "name")}
    try:
        wanted = DatasetRequest.model_validate(posted)
        dataset = await create_dataset(
            files=d.stores.files,
            usage=d.stores.usage,
            quotas=await d.quotas(principal(request).user_id),
            datasets=d.stores.datasets,
            storage=d.storage,
            settings=d.settings,
            request=wanted,
            owner=principal(request).user_id,
        )
    except ValidationError as exc:
        found = [f"{'/'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return await datasets_page(request, problems=found, posted=posted, status=422)
    except AppError as exc:  # a refused bundle, a name already taken, a file that is not the user's
        details = [f"{v.pointer}: {v.detail}" for v in exc.violations] if isinstance(exc, Invalid) else []
        return await datasets_page(request, problems=[exc.detail, *details], posted=posted, status=status_of(exc))
    return RedirectResponse(request.url_for("ui:dataset", dataset_id=dataset.id).path, status_code=303)


def metadata_entries(metadata: dict[str, Any] | None) -> tuple[list[str], list[dict[str, str]]]:
    """A Pacifica ``metadata.txt`` list as a table: its keys, and each entry's values as text."""
    entries = (metadata or {}).get("entries")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        return [], []
    keys = list(dict.fromkeys(key for entry in entries for key in entry))
    shown = [{key: cell(entry[key]) for key in entry} for entry in entries]
    return keys, shown


def cell(value: Any) -> str:
    """A metadata value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


async def show(request: Request, *, message: str | None = None, status: int = 200) -> Response:
    """GET /ui/datasets/{dataset_id}: its members (path, size) and metadata; another user's is 404."""
    dataset = await deps(request).stores.datasets.get_dataset(
        request.path_params["dataset_id"], owner=principal(request).user_id
    )
    keys, entries = metadata_entries(dataset.metadata)
    pretty = None if dataset.metadata is None else json.dumps(dataset.metadata, indent=2, ensure_ascii=False)
    return page(
        request,
        "dataset.html",
        status=status,
        dataset=dataset,
        keys=keys,
        entries=entries,
        pretty=pretty,
        message=message,
    )


async def show_dataset(request: Request) -> Response:
    """GET /ui/datasets/{dataset_id}."""
    return await show(request)


async def delete(request: Request) -> Response:
    """POST /ui/datasets/{dataset_id}/delete: the datasets page; while a job reads it, its page with why (409)."""
    d = deps(request)
    removal = delete_dataset(
        datasets=d.stores.datasets,
        jobs=d.stores.jobs,
        storage=d.storage,
        dataset_id=request.path_params["dataset_id"],
        owner=principal(request).user_id,
    )
    return await unless_in_use(
        request, removal, then="ui:datasets", otherwise=lambda why, status: show(request, message=why, status=status)
    )
