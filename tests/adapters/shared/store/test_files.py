"""The file store against the test Mongo: one request at a time completes a pending upload."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shared.models import (
    PendingUpload,
    StoredFile,
    new_id,
    utcnow,
)
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import in_store, make_dataset


def test_only_one_request_at_a_time_may_complete_an_upload(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[int, bool, bool]:
        now = utcnow()
        upload = PendingUpload(
            id=new_id(),
            owner="u1",
            name="a.bin",
            size=1,
            sha256="0" * 64,
            content_type="application/octet-stream",
            key="uploads/x",
            created=now,
            expires=now + timedelta(hours=1),
        )
        await stores.files.insert_upload(upload)
        claims = await asyncio.gather(
            *(
                stores.files.claim_upload(upload.id, owner="u1", stale_before=now - timedelta(minutes=5))
                for _ in range(6)
            )
        )
        stranger = await stores.files.claim_upload(upload.id, owner="u2", stale_before=now + timedelta(minutes=5))
        # a claim older than stale_before counts as abandoned and may be taken over
        taken_over = await stores.files.claim_upload(
            upload.id, owner="u1", stale_before=utcnow() + timedelta(seconds=1)
        )
        return sum(claim is not None for claim in claims), stranger is None, taken_over is not None

    assert in_store(settings, scenario) == (1, True, True)


def test_files_and_datasets_move_their_owners_stored_bytes_once_each(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[int]:
        owner = new_id()
        file = StoredFile(
            id=new_id(), owner=owner, name="f", size=7, sha256="0" * 64, content_type="x/y", key="k", created=utcnow()
        )
        dataset = make_dataset(owner=owner)  # one member of one byte
        seen = []
        for step in (
            stores.files.insert_file(file),
            stores.datasets.insert_dataset(dataset),
            stores.files.delete_file(file),
            stores.files.delete_file(file),  # deleted already: nothing more to count
            stores.datasets.delete_dataset(dataset),
        ):
            await step
            seen.append(await stores.usage.stored_bytes(owner))
        return seen

    assert in_store(settings, scenario) == [7, 8, 1, 1, 0]
