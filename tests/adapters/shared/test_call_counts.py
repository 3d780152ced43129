"""Call counting (QUERN_COUNT_CALLS): real Mongo commands and S3 requests are counted by name, per process."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

from shared.call_counts import process_name, tally
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store.database import Database


def test_mongo_commands_are_counted_by_name_and_collection(settings: Settings, tmp_path: Path) -> None:
    counting = settings.model_copy(update={"quern_count_calls": tmp_path})

    async def scenario() -> None:
        database = Database.connect(counting, appname="quern-tests")
        try:
            things = database.collection("counted_things")
            await things.insert_one({"_id": "one"})
            assert await things.find_one({"_id": "one"}) == {"_id": "one"}
            await things.update_one({"_id": "one"}, {"$set": {"seen": True}})
        finally:
            await database.close()

    asyncio.run(scenario())
    mongo = tally(tmp_path).snapshot()["mongo"]
    assert (mongo["insert:counted_things"], mongo["find:counted_things"], mongo["update:counted_things"]) == (1, 1, 1)


def test_s3_requests_are_counted_by_operation(settings: Settings, tmp_path: Path) -> None:
    storage = ObjectStorage(settings.model_copy(update={"quern_count_calls": tmp_path}))
    try:
        storage.ensure_bucket()
        storage.upload_fileobj(io.BytesIO(b"hello"), "counted/hello.txt", content_type="text/plain")
        assert storage.open("counted/hello.txt").read() == b"hello"
    finally:
        storage.close()
    s3 = tally(tmp_path).snapshot()["s3"]
    assert (s3["PutObject"], s3["GetObject"]) == (1, 1)


def test_the_counts_are_written_to_a_file_of_the_process(settings: Settings, tmp_path: Path) -> None:
    storage = ObjectStorage(settings.model_copy(update={"quern_count_calls": tmp_path}))
    try:
        storage.ensure_bucket()
        storage.upload_fileobj(io.BytesIO(b"x"), "counted/x.txt", content_type="text/plain")
    finally:
        storage.close()
    tally(tmp_path).flush()
    written = json.loads((tmp_path / f"{process_name()}-{os.getpid()}.json").read_text())
    assert written["pid"] == os.getpid()
    assert written["s3"]["PutObject"] == 1


def test_no_listener_is_registered_when_the_setting_is_unset(settings: Settings) -> None:
    assert settings.quern_count_calls is None

    async def scenario() -> None:
        database = Database.connect(settings, appname="quern-tests")
        try:
            assert database._client.options.event_listeners == []
        finally:
            await database.close()

    asyncio.run(scenario())
