"""Idempotent submission: the same ``Idempotency-Key`` and body give the same job, never a second one.

The key is reserved in Mongo (unique per owner) with the id the job will get and a fingerprint
of the request before anything is submitted, so two concurrent requests cannot both create a
job: the second waits for the first's job and answers it. The same key with a different
request is a 409. A submission that fails releases the key, so the client may try again.
Keys are kept for a day.

A request that dies between reserving the key and storing its job (a crash, a lost database)
releases nothing; its reservation's lease lapses after a few minutes (``LEASE_SECONDS``) and the
next retry takes it over and submits under the same job id. Should the first request still be
alive and store its job after all, the job's id is taken and the retry answers that job: one job
either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from starlette.concurrency import run_in_threadpool

from shared.errors import AppError, BadRequest, Duplicate, NotFound, NotYet
from shared.models import new_id
from shared.store.idempotency import IdempotencyStore

T = TypeVar("T")
log = structlog.get_logger()

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
                done = await submit(job_id)
            except BaseException:
                await idempotency.release_idempotency_key(owner=owner, key=key)
                raise
            return await _settled(idempotency, owner, key, done), False
        if held.fingerprint != digest:
            raise Duplicate("this Idempotency-Key was already used with a different request")
        try:
            return await replay(held.job_id), True
        except NotFound:
            pass  # the first request is still submitting, or failed and released the key, or died
        if held.lapsed and await idempotency.take_over_idempotency_key(owner=owner, key=key, held=held):
            log.warning("idempotency_key_taken_over", job_id=held.job_id)
            # Twice: a batch the dead request left half-stored makes the first try a Duplicate, and is deleted by it.
            for _ in range(2):
                try:
                    return await _settled(idempotency, owner, key, await submit(held.job_id)), False
                except Duplicate:
                    try:
                        return await replay(held.job_id), True  # the first request stored it after all
                    except NotFound:
                        pass
                except BaseException:
                    await idempotency.release_idempotency_key(owner=owner, key=key)
                    raise
        if time.monotonic() > deadline:
            raise NotYet("a request with this Idempotency-Key is still being processed", retry_after=1)
        await asyncio.sleep(0.1)


async def _settled(idempotency: IdempotencyStore, owner: str, key: str, done: T) -> T:
    """``done``, once the key's lease is lifted; if that fails the job stands, and a replay finds it first."""
    try:
        await idempotency.settle_idempotency_key(owner=owner, key=key)
    except AppError as exc:
        log.warning("idempotency_key_unsettled", detail=exc.detail)
    return done
