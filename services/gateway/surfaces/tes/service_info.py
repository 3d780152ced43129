"""GET /service-info: what this TES is, where tasks may read and write, and the backend keys it reads."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.task_checks import BACKEND_PARAMETERS
from services.gateway.plumbing.endpoints import Resource
from services.gateway.surfaces.tes.models import dumped, tesServiceInfo, tesServiceType
from services.gateway.surfaces.tes.tasks import answer

resource = Resource("TaskService")
QUERN_STORAGE = ["quern://files", "quern://datasets", "quern://outputs", "http://", "https://"]


@resource.endpoint("GET", "/service-info", summary="GetServiceInfo", answer=tesServiceInfo, public=True)
async def service_info(request: Request) -> Response:
    """GET /service-info, without credentials."""
    buckets = [f"s3://{pattern}" for pattern in deps(request).settings.task_policy().s3_buckets]
    info = tesServiceInfo(
        id="org.quern.tes",
        name="quern",
        type=tesServiceType(group="org.ga4gh", artifact="tes", version="1.1.0"),
        description="GA4GH TES 1.1 on quern: each task is a quern job; docs/tes.md says what is supported",
        organization={"name": "quern", "url": str(request.base_url)},
        version="1",
        storage=[*buckets, *QUERN_STORAGE],
        tesResources_backend_parameters=list(BACKEND_PARAMETERS),
    )
    return answer(dumped(info))
