"""The read path's baseline: a bare Starlette route doing the same Mongo ``find_one`` as ``GET /v1/jobs/{id}``.

Served by uvicorn like the gateway (one process, no access log):
``python -m bench.bare_read`` with ``BENCH_MONGO_URL``, ``BENCH_DATABASE`` and ``BENCH_PORT``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def create_app(mongo_url: str, database: str) -> Starlette:
    """A one-route app over ``database``'s jobs."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
        yield {"jobs": client[database]["jobs"]}
        await client.close()

    async def job(request: Request) -> Response:
        doc = await request.state.jobs.find_one({"_id": request.path_params["job_id"]})
        if doc is None:
            return JSONResponse({"detail": "no such job"}, status_code=404)
        return JSONResponse({key: str(value) if not isinstance(value, str) else value for key, value in doc.items()})

    return Starlette(routes=[Route("/jobs/{job_id}", job)], lifespan=lifespan)


if __name__ == "__main__":
    app = create_app(os.environ["BENCH_MONGO_URL"], os.environ["BENCH_DATABASE"])
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), log_config=None, access_log=False)
