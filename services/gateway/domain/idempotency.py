"""Idempotent submission: the same ``Idempotency-Key`` and body give the same job, never a second one.

The key is reserved in Mongo (unique per owner) with the id the job will get and a fingerprint
of the request before anything is submitted, so two concurrent requests cannot both create a
job: the second waits for the first's job and answers it. The same key with a different
request is a 409. A submission that fails releases the key, so the client may try again.
Keys are kept for a day.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from shared.errors import BadRequest, Duplicate, NotFound, NotYet
from shared.models import new_id
from shared.store.idempotency import IdempotencyStore

T = TypeVar("T")

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
WAIT_SECONDS = 10.0


def check_key(value: str) -> str:
    """The header's value, if it is 1-255 visible ASCII characters."""
    if not _KEY.match(value):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters")
    return value


def fingerprint(body: object) -> str:
    """A digest of the request that does not depend on the order of its JSON keys."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def submit_once(
    *,
    idempotency: IdempotencyStore,
    owner: str,
    key: str,
    request: object,
    submit: Callable[[str], Awaitable[T]],
    replay: Callable[[str], Awaitable[T]],
) -> tuple[T, bool]:
    """What this key submitted: now (False) or in an earlier request with the same key (True).

    ``submit`` gets the id reserved for the key; ``replay`` finds what was submitted under that id
    (NotFound while the first request is still at it).
    """
    digest = await run_in_threadpool(fingerprint, request)  # a batch's is megabytes of JSON: not on the loop
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        job_id = new_id()
        held = await idempotency.reserve_idempotency_key(owner=owner, key=key, fingerprint=digest, job_id=job_id)
        if held is None:
            try:
                return await submit(job_id), False
            except BaseException:
                await idempotency.release_idempotency_key(owner=owner, key=key)
                raise
        if held.fingerprint != digest:
            raise Duplicate("this Idempotency-Key was already used with a different request")
        try:
            return await replay(held.job_id), True
        except NotFound:
            pass  # the first request is still submitting, or failed and released the key
        if time.monotonic() > deadline:
            raise NotYet("a request with this Idempotency-Key is still being processed", retry_after=1)
        await asyncio.sleep(0.1)
