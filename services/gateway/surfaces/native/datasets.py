"""Datasets: created from an uploaded bundle, listed, described, renamed or retagged, deleted."""

from __future__ import annotations

from typing import Any, cast

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.bundle_formats import Kind
from services.gateway.domain.datasets import (
    DatasetChanges,
    DatasetRequest,
    create_dataset,
    delete_dataset,
    update_dataset,
)
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, PageOut, page_request, paged
from services.gateway.plumbing.params import timestamp
from shared.models import Dataset
from shared.store.datasets import DatasetFilter

resource = Resource("datasets")


class MemberOut(Out):
    path: str
    size: int
    sha256: str


class DatasetSummary(Out):
    id: str
    url: str
    owner: str
    name: str
    description: str
    tags: list[str]
    kind: Kind
    member_count: int
    size: int
    metadata: dict[str, Any] | None = Field(
        description="the bundle's top-level metadata.txt (beside a data/ directory), parsed as JSON; "
        'a list comes as {"entries": [...]}'
    )
    source_file: str
    created: str
    updated: str


class DatasetOut(DatasetSummary):
    members: list[MemberOut]


class DatasetPage(PageOut[DatasetSummary]):
    pass  # a docstring would become the schema's description in the OpenAPI document


def render_summary(request: Request, dataset: Dataset) -> DatasetSummary:
    """The public view of a dataset in a list: without its members."""
    return DatasetSummary(
        id=dataset.id,
        url=link(request, "dataset", dataset_id=dataset.id),
        owner=dataset.owner,
        name=dataset.name,
        description=dataset.description,
        tags=dataset.tags,
        kind=cast(Kind, dataset.kind),  # a str in the record; this model still refuses any other
        member_count=len(dataset.members),
        size=dataset.size,
        metadata=dataset.metadata,
        source_file=dataset.source_file,
        created=dataset.created.isoformat(),
        updated=dataset.updated.isoformat(),
    )


def render_dataset(request: Request, dataset: Dataset) -> DatasetOut:
    """The public view of a dataset, with every member's path, size and sha256."""
    members = [MemberOut(path=member.path, size=member.size, sha256=member.sha256) for member in dataset.members]
    return DatasetOut(**render_summary(request, dataset).model_dump(), members=members)


def dataset_filter(request: Request) -> DatasetFilter:
    """``?name_prefix=&tag=&created_after=&created_before=`` (ISO 8601), or 400."""
    return DatasetFilter(
        name_prefix=request.query_params.get("name_prefix"),
        tag=request.query_params.get("tag"),
        created_after=timestamp(request, "created_after"),
        created_before=timestamp(request, "created_before"),
    )


@resource.endpoint(
    "POST",
    "/datasets",
    summary="Create a dataset from an uploaded zip, tar or tar.gz; every member is checked first",
    answer=DatasetOut,
    status=201,
    body=DatasetRequest,
    errors=(409,),
)
async def create(request: Request) -> Reply[DatasetOut]:
    """POST /v1/datasets."""
    d = deps(request)
    dataset = await create_dataset(
        files=d.stores.files,
        usage=d.stores.usage,
        quotas=await d.quotas(principal(request).user_id),
        datasets=d.stores.datasets,
        storage=d.storage,
        settings=d.settings,
        request=await read_model(request, DatasetRequest),
        owner=principal(request).user_id,
    )
    created = render_dataset(request, dataset)
    return Reply(created, headers={"Location": created.url})


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
async def list_datasets(request: Request) -> DatasetPage:
    """GET /v1/datasets[?name_prefix=&tag=&created_after=&created_before=]: newest first."""
    wanted = page_request(request)
    page = await deps(request).stores.datasets.list_datasets(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after, where=dataset_filter(request)
    )
    return paged(request, page, lambda dataset: render_summary(request, dataset), DatasetPage)


@resource.endpoint(
    "GET", "/datasets/{dataset_id}", name="dataset", summary="A dataset with its members", answer=DatasetOut
)
async def describe(request: Request) -> DatasetOut:
    """GET /v1/datasets/{dataset_id}: with every member's path, size and sha256."""
    datasets = deps(request).stores.datasets
    dataset = await datasets.get_dataset(request.path_params["dataset_id"], owner=principal(request).owner_filter)
    return render_dataset(request, dataset)


@resource.endpoint(
    "PATCH",
    "/datasets/{dataset_id}",
    summary="Change a dataset's name, description or tags",
    answer=DatasetOut,
    body=DatasetChanges,
    errors=(409,),
)
async def change(request: Request) -> DatasetOut:
    """PATCH /v1/datasets/{dataset_id}: rename, describe or retag."""
    dataset = await update_dataset(
        datasets=deps(request).stores.datasets,
        dataset_id=request.path_params["dataset_id"],
        changes=await read_model(request, DatasetChanges),
        owner=principal(request).owner_filter,
    )
    return render_dataset(request, dataset)


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
