"""What a job leaves: its archive (whole or selected), its outputs one by one, its stored logs."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.archives import MAX_GLOBS, ArchiveDownload, archive_download
from services.gateway.domain.logs import LogExcerpt, log_slice
from services.gateway.domain.outputs import OutputDownload, finished_job, output_link
from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.params import REDIRECT, flag, integer, link_response
from shared.errors import Invalid, Violation
from shared.globs import check_glob
from shared.models import OutputFile

resource = Resource("jobs")


class ArchiveLink(Out):
    url: str
    expires_at: str
    size: int
    sha256: str
    created: str
    include: list[str] | None = Field(description="a selective archive's globs, sorted; null for the full archive")


class ListedOutput(Out):
    path: str = Field(description="relative to the app's working directory")
    size: int
    sha256: str
    content_type: str
    url: str = Field(description="the route that hands out this output's download link")


class OutputList(Out):
    job_id: str
    items: list[ListedOutput] = Field(description="every output of the job (not paginated)")


class OutputLink(Out):
    path: str
    url: str = Field(description="presigned GET; saves as the output's base name")
    head_url: str = Field(description="presigned HEAD (S3 signs the method, so the GET URL will not do)")
    expires_at: str
    size: int
    sha256: str
    content_type: str


class LogSlice(Out):
    name: str
    offset: int = Field(description="where this slice starts")
    size: int = Field(description="the whole log's size in bytes")
    next_offset: int = Field(description="where the next slice starts (size once at the end)")
    text: str = Field(description="the bytes as UTF-8 (invalid sequences replaced)")


def render_archive_link(download: ArchiveDownload) -> ArchiveLink:
    """A presigned download of an archive, with the globs of a selective one."""
    return ArchiveLink(
        url=download.url,
        expires_at=download.expires_at.isoformat(),
        size=download.archive.size,
        sha256=download.archive.sha256,
        created=download.archive.created.isoformat(),
        include=download.include,
    )


def render_output(request: Request, job_id: str, output: OutputFile) -> ListedOutput:
    """An output as listed, with the route that hands out its download link."""
    # Output paths are whatever the app wrote: quoted, so '?', '#' or '%' in a name stay part of the path.
    url = link(request, "job_outputs", job_id=job_id) + "/" + quote(output.path, safe="/")
    return ListedOutput(
        path=output.path, size=output.size, sha256=output.sha256, content_type=output.content_type, url=url
    )


def render_output_link(download: OutputDownload) -> OutputLink:
    """Presigned GET and HEAD links to one output."""
    output = download.output
    return OutputLink(
        path=output.path,
        url=download.url,
        head_url=download.head_url,
        expires_at=download.expires_at.isoformat(),
        size=output.size,
        sha256=output.sha256,
        content_type=output.content_type,
    )


def render_log_slice(excerpt: LogExcerpt) -> LogSlice:
    """A byte range of a stored log, as text."""
    return LogSlice(
        name=excerpt.name,
        offset=excerpt.offset,
        size=excerpt.size,
        next_offset=excerpt.next_offset,
        text=excerpt.text,
    )


@resource.endpoint(
    "GET",
    "/jobs/{job_id}/archive",
    name="job_archive",
    summary="A presigned link to the job's tar.gz; with `include`, to one of only the outputs the globs match, "
    "packaged on the first request (409 with Retry-After until it is ready) and kept for the same globs; "
    "410 once the job's retention ran out",
    answer=ArchiveLink,
    query=(
        *REDIRECT,
        Param(
            "include",
            "Only outputs matching these globs (repeat it; `*` and `?` within a name, `**/` across directories)",
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 200},
                "maxItems": 20,
            },
        ),
    ),
    errors=(302, 409, 410, 422),
)
async def archive(request: Request) -> ArchiveLink | Response:
    """GET /v1/jobs/{job_id}/archive[?include=GLOB...][&redirect=1]: the full archive, or one of only some outputs."""
    d = deps(request)
    redirect, include = flag(request, "redirect"), include_globs(request)
    download = await archive_download(
        jobs=d.stores.jobs,
        archives=d.stores.archives,
        storage=d.storage,
        broker=d.broker,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
        include=include,
        expires_in=d.settings.presign_expiry_seconds,
    )
    return link_response(render_archive_link(download), redirect=redirect)


@resource.endpoint(
    "GET",
    "/jobs/{job_id}/outputs",
    name="job_outputs",
    summary="The outputs of a finished job, with size, sha256 and content type (409 while it runs)",
    answer=OutputList,
    errors=(409, 410),
)
async def list_outputs(request: Request) -> OutputList:
    """GET /v1/jobs/{job_id}/outputs: every output of a finished job (409 before)."""
    job = await finished_job(
        request.path_params["job_id"], owner=principal(request).owner_filter, jobs=deps(request).stores.jobs
    )
    return OutputList(job_id=job.id, items=[render_output(request, job.id, output) for output in job.outputs])


@resource.endpoint(
    "GET",
    "/jobs/{job_id}/outputs/{path:path}",
    name="job_output",
    summary="Presigned GET and HEAD links to one output of a finished job (409 while it runs)",
    answer=OutputLink,
    query=REDIRECT,
    errors=(302, 409, 410),
)
async def download(request: Request) -> OutputLink | Response:
    """GET /v1/jobs/{job_id}/outputs/{path}[?redirect=1]."""
    d = deps(request)
    redirect = flag(request, "redirect")
    download = await output_link(
        jobs=d.stores.jobs,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
        path=request.path_params["path"],
        expires_in=d.settings.presign_expiry_seconds,
    )
    return link_response(render_output_link(download), redirect=redirect)


def include_globs(request: Request) -> list[str]:
    """The ``include`` globs (repeatable), sorted and without duplicates; none for the full archive."""
    globs = request.query_params.getlist("include")
    if len(globs) > MAX_GLOBS:
        detail = f"at most {MAX_GLOBS} globs"
        raise Invalid(f"include: {detail}, got {len(globs)}", [Violation("/include", detail)])
    for index, glob in enumerate(globs):
        try:
            check_glob(glob)
        except ValueError as exc:
            raise Invalid(f"include: {exc}", [Violation(f"/include/{index}", str(exc))]) from None
    return sorted(set(globs))


DEFAULT_LENGTH = 64 * 1024
MAX_LENGTH = 1 * 2**20


@resource.endpoint(
    "GET",
    "/jobs/{job_id}/logs/{name}",
    name="job_log",
    summary="A byte range of the job's stored stdout or stderr (409 until it ends: follow its events meanwhile; "
    "410 once its retention ran out)",
    answer=LogSlice,
    query=(
        Param("offset", "First byte (default 0); negative counts from the end", {"type": "integer"}),
        Param("length", "Bytes to read, 1 to 1 MiB (default 64 KiB)", {"type": "integer", "minimum": 1}),
    ),
    errors=(400, 409, 410),
)
async def read(request: Request) -> LogSlice:
    """GET /v1/jobs/{job_id}/logs/{name}?offset=&length=."""
    d = deps(request)
    start = integer(request, "offset", 0, low=-(2**40), high=2**40)
    length = integer(request, "length", DEFAULT_LENGTH, low=1, high=MAX_LENGTH)
    excerpt = await log_slice(
        jobs=d.stores.jobs,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
        name=request.path_params["name"],
        start=start,
        length=length,
    )
    return render_log_slice(excerpt)
