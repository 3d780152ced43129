"""Datasets through the in-process gateway: bundles checked member by member, stored per member, named as job inputs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pymongo
import pytest

from devstack.stack import Stack
from tests.helpers.clients import ApiUserFactory, orphan, problem, upload
from tests.helpers.datasets import MODEL, bundle, entry, new_dataset, object_bytes, post_dataset, tar_of, unique, zip_of
from tests.helpers.stacks import DATASET_MAX_BYTES, DATASET_MAX_MEMBERS

FILES = {
    "readme.txt": b"hello\n",
    "data/grid.csv": b"x,y\n1,2\n",
    "data/deep/values.bin": bytes(range(256)) * 40,
}


@pytest.fixture(scope="module")
def api(make_user: ApiUserFactory) -> httpx2.Client:
    return make_user()


def dataset_keys(s3: Any, stack: Stack, prefix: str = "datasets/") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


# Creating and reading


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_bundle_becomes_a_dataset_with_each_member_stored_under_its_prefix(
    api: httpx2.Client, s3: Any, stack: Stack, kind: str
) -> None:
    response = post_dataset(api, *bundle(kind, FILES), description="three files", tags=["rain", "v1.0", "rain"])
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert response.headers["location"] == dataset["url"]
    assert dataset["kind"] == kind and dataset["tags"] == ["rain", "v1.0"] and dataset["metadata"] is None
    expected = [
        {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for path, data in sorted(FILES.items())
    ]
    assert dataset["members"] == expected
    assert dataset["size"] == sum(len(data) for data in FILES.values())
    prefix = f"datasets/{dataset['id']}/"
    assert set(dataset_keys(s3, stack, prefix)) == {prefix + path for path in FILES}
    for path, data in FILES.items():
        assert object_bytes(s3, stack, prefix + path) == data
    assert api.get(dataset["url"]).json() == dataset


def test_a_created_dataset_leaves_no_draft_for_the_sweep(api: httpx2.Client, stack: Stack) -> None:
    dataset = new_dataset(api, FILES)
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(stack.env()["MONGO_URL"]) as client:
        assert client[stack.database]["dataset_drafts"].find_one({"_id": dataset["id"]}) is None


def test_pacifica_bundle_keeps_its_metadata(api: httpx2.Client) -> None:
    metadata = [{"destinationTable": "Transactions.submitter", "value": 10}, {"destinationTable": "Files"}]
    files = {"metadata.txt": json.dumps(metadata).encode(), "data/run1/out.csv": b"a\n1\n"}
    dataset = new_dataset(api, files, kind="tar")
    assert dataset["metadata"] == {"entries": metadata}
    assert [m["path"] for m in dataset["members"]] == ["data/run1/out.csv", "metadata.txt"]


def test_zip_with_utf8_names_written_without_the_flag_becomes_a_dataset(
    api: httpx2.Client, s3: Any, stack: Stack
) -> None:
    # Info-ZIP (`zip -r`) writes UTF-8 names without setting the zip's UTF-8 flag.
    data = zip_of({"donnXXes/cafXY.csv": b"a\n1\n"}).replace(b"donnXXes/cafXY", "données/café".encode())
    response = post_dataset(api, "bundle.zip", data)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert [member["path"] for member in dataset["members"]] == ["données/café.csv"]
    assert object_bytes(s3, stack, f"datasets/{dataset['id']}/données/café.csv") == b"a\n1\n"


def test_unknown_or_foreign_source_file_is_404(api: httpx2.Client, make_user: ApiUserFactory) -> None:
    problem(api.post("/v1/datasets", json={"file_id": "01nosuchfile", "name": unique()}), 404)
    theirs = upload(make_user(), "bundle.zip", zip_of(FILES))
    problem(api.post("/v1/datasets", json={"file_id": theirs["id"], "name": unique()}), 404)


def test_duplicate_name_is_409_and_stores_nothing(api: httpx2.Client, s3: Any, stack: Stack) -> None:
    first = new_dataset(api, FILES)
    before = dataset_keys(s3, stack)
    problem(post_dataset(api, *bundle("zip", FILES), name=first["name"]), 409, "duplicate")
    assert dataset_keys(s3, stack) == before


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": ""}, "/name"),
        ({"name": "x" * 201}, "/name"),
        ({"name": "tab\there"}, "/name"),
        ({"tags": ["Upper"]}, "/tags/0"),
        ({"tags": ["x" * 51]}, "/tags/0"),
        ({"tags": [f"t{n}" for n in range(21)]}, "/tags"),
        ({"colour": "blue"}, "/colour"),
    ],
)
def test_bad_dataset_requests_are_422_pointing_at_the_field(
    api: httpx2.Client, body: dict[str, Any], pointer: str
) -> None:
    response = api.post("/v1/datasets", json={"file_id": "01nosuchfile", "name": unique(), **body})
    assert pointer in {error["pointer"] for error in problem(response, 422)["errors"]}


# Listing, changing, deleting


def test_datasets_are_listed_newest_first_and_filtered(api: httpx2.Client) -> None:
    prefix = unique("list")
    first = new_dataset(api, FILES, name=f"{prefix}-a", tags=["alpha"])
    second = new_dataset(api, FILES, name=f"{prefix}-b", tags=["alpha", "beta"])
    third = new_dataset(api, FILES, name=f"{prefix}-c", tags=["beta"])

    def names(**query: str) -> list[str]:
        response = api.get("/v1/datasets", params={"name_prefix": prefix, **query})
        assert response.status_code == 200, response.text
        assert all("members" not in item for item in response.json()["items"])
        return [item["name"] for item in response.json()["items"]]

    assert names() == [third["name"], second["name"], first["name"]]
    assert names(tag="alpha") == [second["name"], first["name"]]
    assert names(created_after=second["created"]) == [third["name"]]
    assert names(created_before=second["created"]) == [first["name"]]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert names(created_after=later) == []
    page = api.get("/v1/datasets", params={"name_prefix": prefix, "limit": 2}).json()
    assert [item["id"] for item in page["items"]] == [third["id"], second["id"]]
    assert [item["id"] for item in api.get(page["next"]).json()["items"]] == [first["id"]]


@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_a_time_filter_that_is_not_iso_8601_is_400(api: httpx2.Client, field: str) -> None:
    problem(api.get("/v1/datasets", params={field: "last tuesday"}), 400)


def test_name_description_and_tags_can_be_changed(api: httpx2.Client) -> None:
    dataset = new_dataset(api, FILES, tags=["old"])
    other = new_dataset(api, FILES)
    response = api.patch(dataset["url"], json={"name": unique("renamed"), "tags": ["new", "b"], "description": "d"})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["tags"] == ["b", "new"] and changed["description"] == "d"
    assert changed["updated"] > dataset["updated"] and changed["members"] == dataset["members"]
    assert api.get(dataset["url"]).json() == changed
    problem(api.patch(dataset["url"], json={"name": other["name"]}), 409, "duplicate")
    problem(api.patch(dataset["url"], json={"name": None}), 422)
    problem(api.patch(dataset["url"], json={"tags": ["NO"]}), 422)


def test_deleted_dataset_leaves_no_objects_and_is_404_after(api: httpx2.Client, s3: Any, stack: Stack) -> None:
    dataset = new_dataset(api, FILES)
    prefix = f"datasets/{dataset['id']}/"
    assert dataset_keys(s3, stack, prefix)
    assert api.delete(dataset["url"]).status_code == 204
    assert dataset_keys(s3, stack, prefix) == set()
    problem(api.get(dataset["url"]), 404)
    problem(api.delete(dataset["url"]), 404)


def test_dataset_read_by_an_unfinished_job_cannot_be_deleted(
    api: httpx2.Client, admin: httpx2.Client, s3: Any, stack: Stack
) -> None:
    dataset = new_dataset(api, FILES)
    job = api.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": {"dataset": dataset["id"]}}}).json()
    orphan(stack, job["id"], worker="ghost-1")  # as if a runner held it, without one picking it up
    assert problem(api.delete(dataset["url"]), 409, "not-yet")["detail"]
    assert dataset_keys(s3, stack, f"datasets/{dataset['id']}/")
    ended = admin.post(f"/v1/jobs/{job['id']}/state", json={"state": "FAILED", "reason": "its runner is gone"})
    assert ended.status_code == 200, ended.text
    assert api.delete(dataset["url"]).status_code == 204


def test_another_users_datasets_are_404_everywhere(api: httpx2.Client, make_user: ApiUserFactory) -> None:
    dataset = new_dataset(api, MODEL)
    stranger = make_user()
    problem(stranger.get(dataset["url"]), 404)
    problem(stranger.patch(dataset["url"], json={"name": unique()}), 404)
    problem(stranger.delete(dataset["url"]), 404)
    assert dataset["id"] not in {item["id"] for item in stranger.get("/v1/datasets").json()["items"]}
    for value in ({"dataset": dataset["id"]}, {"dataset": dataset["id"], "path": "model/run.tcf"}):
        problem(stranger.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": value}}), 404)
    assert api.get(dataset["url"]).status_code == 200


# Hostile bundles


def _zip_link() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
        archive.writestr("data/a.txt", b"a")
    return buffer.getvalue()


def _device() -> bytes:
    info, _ = entry("dev/null", kind=tarfile.CHRTYPE)
    info.devmajor, info.devminor = 1, 3
    return tar_of((info, b""), entry("a.txt", b"a"))


def _truncated() -> bytes:
    whole = tar_of(*(entry(name, data) for name, data in FILES.items()), gz=True)
    return whole[: len(whole) // 2]


def _many() -> bytes:
    return zip_of({f"f{n:03}.txt": b"x" for n in range(DATASET_MAX_MEMBERS + 5)})


def _tar_bomb() -> bytes:
    third = DATASET_MAX_BYTES // 3 + 1
    return tar_of(*(entry(f"part{n}.bin", bytes(third)) for n in range(3)))


HOSTILE: list[tuple[str, str, Callable[[], bytes], int]] = [
    ("traversal-tar", "b.tar", lambda: tar_of(entry("../evil.txt", b"x")), 422),
    ("traversal-zip", "b.zip", lambda: zip_of({"data/../../evil.txt": b"x"}), 422),
    ("absolute-path", "b.tar", lambda: tar_of(entry("/etc/cron.d/evil", b"x")), 422),
    ("backslash-path", "b.zip", lambda: zip_of({"..\\evil.txt": b"x"}), 422),
    ("symlink-tar", "b.tar", lambda: tar_of(entry("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")), 422),
    ("symlink-zip", "b.zip", _zip_link, 422),
    ("hardlink", "b.tar", lambda: tar_of(entry("a", b"a"), entry("b", kind=tarfile.LNKTYPE, linkname="a")), 422),
    ("device-node", "b.tar", _device, 422),
    ("fifo", "b.tar.gz", lambda: gzip.compress(tar_of(entry("pipe", kind=tarfile.FIFOTYPE))), 422),
    ("duplicate-member", "b.tar", lambda: tar_of(entry("a.txt", b"1"), entry("a.txt", b"2")), 422),
    ("file-and-directory", "b.tar", lambda: tar_of(entry("a", b"1"), entry("a/b", b"2")), 422),
    ("zip-bomb-by-ratio", "b.zip", lambda: zip_of({"zeros.bin": bytes(3 * 2**20)}), 413),
    ("tar-bomb-by-size", "b.tar", _tar_bomb, 413),
    ("too-many-members", "b.zip", _many, 413),
    (
        "bundle-file-too-large",
        "b.tar",
        lambda: tar_of(*(entry(f"p{n}", bytes(DATASET_MAX_BYTES // 3)) for n in range(4))),
        413,
    ),
    ("nested-archive", "b.zip", lambda: zip_of({"inner.zip": zip_of({"a.txt": b"a"})}), 422),
    ("non-utf8-name", "b.tar", lambda: tar_of(entry("caf\udce9.txt", b"x")), 422),
    ("empty-file", "b.zip", lambda: b"", 422),
    ("truncated", "b.tar.gz", _truncated, 422),
    ("wrong-extension", "b.tar", lambda: zip_of(FILES), 422),
    ("metadata-not-json", "b.zip", lambda: zip_of({"metadata.txt": b"{not json", "data/a.txt": b"a"}), 422),
    ("not-an-archive", "notes.zip", lambda: b"just some text\n" * 100, 422),
    ("no-files", "b.tar", lambda: tar_of(entry("empty-dir", kind=tarfile.DIRTYPE)), 422),
    ("name-too-long-for-a-file-system", "b.tar", lambda: tar_of(entry("a" * 256, b"x")), 422),
    ("path-too-long-for-s3", "b.zip", lambda: zip_of({"/".join(["d" * 200] * 5) + "/x": b"x"}), 422),
]


@pytest.mark.parametrize(("filename", "build", "status"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_bundle_is_refused_leaving_nothing_behind(
    api: httpx2.Client, s3: Any, stack: Stack, filename: str, build: Callable[[], bytes], status: int
) -> None:
    before = dataset_keys(s3, stack)
    problem(post_dataset(api, filename, build()), status, {413: "too-large", 422: "invalid"}[status])
    assert dataset_keys(s3, stack) == before
    assert list(Path(stack.env()["SCRATCH_DIR"]).iterdir()) == []
    assert all(item["source_file"] for item in api.get("/v1/datasets").json()["items"])


# Datasets as job inputs


def test_unknown_member_path_is_422_pointing_at_it(api: httpx2.Client) -> None:
    dataset = new_dataset(api, MODEL)
    value = {"dataset": dataset["id"], "path": "model/missing.tcf"}
    response = api.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": value}})
    assert [error["pointer"] for error in problem(response, 422)["errors"]] == ["/inputs/control/path"]


def test_unknown_dataset_input_is_404(api: httpx2.Client) -> None:
    response = api.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": {"dataset": "01nosuchdataset"}}})
    assert "01nosuchdataset" in problem(response, 404)["detail"]


def test_malformed_dataset_input_is_422_pointing_into_it(api: httpx2.Client) -> None:
    response = api.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": {"dataset": "x", "extra": 1}}})
    assert "/inputs/control/extra" in {error["pointer"] for error in problem(response, 422)["errors"]}
    response = api.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": ["x"]}})
    assert [error["pointer"] for error in problem(response, 422)["errors"]] == ["/inputs/control"]
