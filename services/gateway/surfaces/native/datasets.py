"""Datasets: created from an uploaded bundle, listed, described, renamed or retagged, deleted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.datasets import (
    DatasetChanges,
    DatasetRequest,
    create_dataset,
    delete_dataset,
    update_dataset,
)
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.surfaces.native.schemas import DatasetOut, DatasetPage
from shared.errors import BadRequest
from shared.models import Dataset
from shared.store.datasets import DatasetFilter

resource = Resource("datasets")


def render_dataset(request: Request, dataset: Dataset, *, members: bool = True) -> dict[str, Any]:
    """The public view of a dataset; lists leave the members out."""
    body: dict[str, Any] = {
        "id": dataset.id,
        "url": link(request, "dataset", dataset_id=dataset.id),
        "owner": dataset.owner,
        "name": dataset.name,
        "description": dataset.description,
        "tags": dataset.tags,
        "kind": dataset.kind,
        "member_count": len(dataset.members),
        "size": dataset.size,
        "metadata": dataset.metadata,
        "source_file": dataset.source_file,
        "created": dataset.created.isoformat(),
        "updated": dataset.updated.isoformat(),
    }
    if members:
        body["members"] = [member.model_dump() for member in dataset.members]
    return body


def _instant(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or time, such as 2026-01-31T12:00:00Z") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@resource.endpoint(
    "POST",
    "/datasets",
    summary="Create a dataset from an uploaded zip, tar or tar.gz; every member is checked first",
    answer=DatasetOut,
    status=201,
    body=DatasetRequest,
    errors=(409,),
)
async def create(request: Request) -> Response:
    """POST /v1/datasets."""
    d = deps(request)
    dataset = await create_dataset(
        files=d.stores.files,
        datasets=d.stores.datasets,
        storage=d.storage,
        settings=d.settings,
        request=await read_model(request, DatasetRequest),
        owner=principal(request).user_id,
    )
    body = render_dataset(request, dataset)
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


@resource.endpoint(
    "GET",
    "/datasets",
    summary="The caller's datasets, newest first",
    answer=DatasetPage,
    query=(
        *PAGED,
        Param("name_prefix", "Only names starting with this text"),
        Param("tag", "Only datasets with this tag"),
        Param("created_after", "ISO 8601 time"),
        Param("created_before", "ISO 8601 time"),
    ),
)
async def list_datasets(request: Request) -> Response:
    """GET /v1/datasets[?name_prefix=&tag=&created_after=&created_before=]: newest first."""
    wanted = page_request(request)
    page = await deps(request).stores.datasets.list_datasets(
        owner=principal(request).owner_filter,
        limit=wanted.limit,
        after=wanted.after,
        where=DatasetFilter(
            name_prefix=request.query_params.get("name_prefix"),
            tag=request.query_params.get("tag"),
            created_after=_instant(request, "created_after"),
            created_before=_instant(request, "created_before"),
        ),
    )
    return page_response(request, page, lambda dataset: render_dataset(request, dataset, members=False))


@resource.endpoint(
    "GET", "/datasets/{dataset_id}", name="dataset", summary="A dataset with its members", answer=DatasetOut
)
async def describe(request: Request) -> Response:
    """GET /v1/datasets/{dataset_id}: with every member's path, size and sha256."""
    datasets = deps(request).stores.datasets
    dataset = await datasets.get_dataset(request.path_params["dataset_id"], owner=principal(request).owner_filter)
    return JSONResponse(render_dataset(request, dataset))


@resource.endpoint(
    "PATCH",
    "/datasets/{dataset_id}",
    summary="Change a dataset's name, description or tags",
    answer=DatasetOut,
    body=DatasetChanges,
    errors=(409,),
)
async def change(request: Request) -> Response:
    """PATCH /v1/datasets/{dataset_id}: rename, describe or retag."""
    dataset = await update_dataset(
        datasets=deps(request).stores.datasets,
        dataset_id=request.path_params["dataset_id"],
        changes=await read_model(request, DatasetChanges),
        owner=principal(request).owner_filter,
    )
    return JSONResponse(render_dataset(request, dataset))


@resource.endpoint(
    "DELETE",
    "/datasets/{dataset_id}",
    summary="Delete a dataset (409 while a queued or running job reads it)",
    answer=None,
    status=204,
    errors=(409,),
)
async def remove(request: Request) -> Response:
    """DELETE /v1/datasets/{dataset_id}: 204, or 409 while a job reads it."""
    d = deps(request)
    await delete_dataset(
        datasets=d.stores.datasets,
        jobs=d.stores.jobs,
        storage=d.storage,
        dataset_id=request.path_params["dataset_id"],
        owner=principal(request).owner_filter,
    )
    return Response(status_code=204)
