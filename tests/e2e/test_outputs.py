"""A job's outputs over the real stack: listed, downloaded one at a time, and packaged whole or by selection."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack.stack import Stack
from tests.helpers.clients import UserFactory, archive_members, objects, problem, run_flood, script_app, wait_for

FLOOD_OUTPUTS = {"depth.csv", "max_depth.csv", "summary.json", "flood_map.png"}
LOGS = {"logs/stdout.txt", "logs/stderr.txt"}


@pytest.fixture(scope="module")
def user(make_user: UserFactory) -> httpx.Client:
    return make_user()


@pytest.fixture(scope="module")
def flood(user: httpx.Client, project: Path) -> dict[str, Any]:
    """A finished flood job with its four outputs."""
    job = wait_for(user, run_flood(user, project, steps=5)["id"])
    assert job["state"] == "SUCCEEDED", job
    return job


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def output_link(api: httpx.Client, job_id: str, path: str) -> dict[str, Any]:
    answer = api.get(f"/v1/jobs/{job_id}/outputs/{path}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def wait_for_selection(api: httpx.Client, job_id: str, include: list[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (answer := api.get(f"/v1/jobs/{job_id}/archive", params={"include": include})).status_code == 409:
        assert time.monotonic() < deadline, "the selective archive never appeared"
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def members(url: str) -> dict[str, bytes]:
    download = httpx.get(url)
    assert download.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as tar:
        return {
            m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_outputs_are_listed_with_checksums_and_their_download_route(user: httpx.Client, flood: dict[str, Any]) -> None:
    answer = user.get(f"/v1/jobs/{flood['id']}/outputs")
    assert answer.status_code == 200
    listed = answer.json()
    assert listed["job_id"] == flood["id"]
    assert {item["path"] for item in listed["items"]} == FLOOD_OUTPUTS
    for item in listed["items"]:
        assert item["url"].endswith(f"/v1/jobs/{flood['id']}/outputs/{item['path']}")
        assert len(item["sha256"]) == 64 and item["size"] > 0 and item["content_type"]
    assert flood["links"]["outputs"] == str(answer.url)


def test_archive_members_equal_the_manifest_and_every_downloaded_output(
    user: httpx.Client, flood: dict[str, Any]
) -> None:
    inside = archive_members(user, flood["id"])
    manifest = json.loads(inside.pop("manifest.json"))
    assert {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
        path: (len(data), sha256(data)) for path, data in inside.items()
    }
    assert set(inside) == {f"outputs/{path}" for path in FLOOD_OUTPUTS} | LOGS
    for item in user.get(f"/v1/jobs/{flood['id']}/outputs").json()["items"]:
        downloaded = httpx.get(output_link(user, flood["id"], item["path"])["url"])
        assert downloaded.status_code == 200
        assert sha256(downloaded.content) == item["sha256"] == sha256(inside[f"outputs/{item['path']}"])
        assert len(downloaded.content) == item["size"]


def test_an_output_link_is_presigned_on_the_public_endpoint_and_saves_under_its_name(
    user: httpx.Client, flood: dict[str, Any], stack: Stack
) -> None:
    link = output_link(user, flood["id"], "summary.json")
    assert set(link) == {"path", "url", "head_url", "expires_at", "size", "sha256", "content_type"}
    query = parse_qs(urlsplit(link["url"]).query)
    assert urlsplit(link["url"]).netloc == urlsplit(stack.s3_url).netloc
    assert query["X-Amz-Expires"] == ["900"]  # PRESIGN_EXPIRY_SECONDS of the test stack
    disposition = "attachment; filename=\"summary.json\"; filename*=UTF-8''summary.json"
    assert query["response-content-disposition"] == [disposition]
    expires_at = datetime.fromisoformat(link["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(seconds=900))) < timedelta(seconds=30)
    downloaded = httpx.get(link["url"])
    assert downloaded.headers["content-disposition"] == disposition
    assert sha256(downloaded.content) == link["sha256"]


def test_an_output_head_url_answers_its_size(user: httpx.Client, flood: dict[str, Any]) -> None:
    link = output_link(user, flood["id"], "flood_map.png")
    head = httpx.head(link["head_url"])
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == link["size"]


def test_an_output_redirect_is_a_302_to_its_presigned_url(user: httpx.Client, flood: dict[str, Any]) -> None:
    answer = user.get(f"/v1/jobs/{flood['id']}/outputs/depth.csv", params={"redirect": "1"})
    assert answer.status_code == 302
    assert "response-content-disposition" in parse_qs(urlsplit(answer.headers["location"]).query)
    downloaded = httpx.get(answer.headers["location"])
    assert sha256(downloaded.content) == output_link(user, flood["id"], "depth.csv")["sha256"]


def test_an_output_in_a_subdirectory_is_reached_by_its_path_and_saved_by_its_base_name(
    admin: httpx.Client, user: httpx.Client
) -> None:
    script = "import os; os.makedirs('maps/x'); open('maps/x/a b#1?.txt', 'w').write('deep'); open('top.txt', 'w')"
    app = script_app(admin, script, args=[], text_param=False, outputs=["**/*.txt"])
    job = wait_for(user, user.post("/v1/jobs", json={"app": app}).json()["id"])
    listed = {item["path"]: item for item in user.get(f"/v1/jobs/{job['id']}/outputs").json()["items"]}
    assert set(listed) == {"maps/x/a b#1?.txt", "top.txt"}
    answer = user.get(listed["maps/x/a b#1?.txt"]["url"])
    assert answer.status_code == 200, answer.text
    downloaded = httpx.get(answer.json()["url"])
    assert downloaded.content == b"deep"
    assert 'filename="a b#1?.txt"' in downloaded.headers["content-disposition"]


def test_an_unknown_output_path_is_404_naming_it(user: httpx.Client, flood: dict[str, Any]) -> None:
    body = problem(user.get(f"/v1/jobs/{flood['id']}/outputs/no/such.csv"), 404, "not-found")
    assert "'no/such.csv'" in body["detail"]


def test_another_users_outputs_are_404(make_user: UserFactory, flood: dict[str, Any]) -> None:
    other = make_user()
    for path in ("outputs", "outputs/depth.csv", "archive?include=*.csv"):
        problem(other.get(f"/v1/jobs/{flood['id']}/{path}"), 404, "not-found")


def test_a_selective_archive_holds_only_the_matching_outputs_with_the_logs_and_its_manifest(
    user: httpx.Client, flood: dict[str, Any]
) -> None:
    first = user.get(f"/v1/jobs/{flood['id']}/archive", params={"include": "*.csv"})
    problem(first, 409, "not-yet")  # packaged on demand: the first request asks for it
    assert int(first.headers["retry-after"]) > 0
    link = wait_for_selection(user, flood["id"], ["*.csv"])
    assert link["include"] == ["*.csv"]
    inside = members(link["url"])
    manifest = json.loads(inside.pop("manifest.json"))
    assert set(inside) == {"outputs/depth.csv", "outputs/max_depth.csv"} | LOGS
    assert manifest["include"] == ["*.csv"]
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {p: sha256(d) for p, d in inside.items()}
    assert sha256(httpx.get(link["url"]).content) == link["sha256"]


def test_the_same_globs_in_another_order_find_the_same_cached_archive(
    user: httpx.Client, flood: dict[str, Any]
) -> None:
    first = wait_for_selection(user, flood["id"], ["summary.json", "*.png"])
    again = user.get(f"/v1/jobs/{flood['id']}/archive", params={"include": ["*.png", "summary.json", "*.png"]})
    assert again.status_code == 200, again.text
    second = again.json()
    assert (second["sha256"], second["created"], second["include"]) == (
        first["sha256"],
        first["created"],
        ["*.png", "summary.json"],
    )
    assert urlsplit(second["url"]).path == urlsplit(first["url"]).path
    assert set(members(second["url"])) == {"outputs/summary.json", "outputs/flood_map.png", "manifest.json"} | LOGS


def test_a_selection_matching_nothing_is_422(user: httpx.Client, flood: dict[str, Any]) -> None:
    body = problem(user.get(f"/v1/jobs/{flood['id']}/archive", params={"include": "*.tif"}), 422, "invalid")
    assert "matches none of the job's outputs" in body["detail"]


def test_too_many_or_too_long_globs_are_422(user: httpx.Client, flood: dict[str, Any]) -> None:
    many = [f"{n}.csv" for n in range(21)]
    problem(user.get(f"/v1/jobs/{flood['id']}/archive", params={"include": many}), 422, "invalid")
    long = "*" + "x" * 200
    problem(user.get(f"/v1/jobs/{flood['id']}/archive", params={"include": long}), 422, "invalid")


def test_deleting_a_job_removes_its_selective_archives(
    user: httpx.Client, project: Path, stack: Stack, s3: Any
) -> None:
    job = wait_for(user, run_flood(user, project, steps=2)["id"])
    wait_for_selection(user, job["id"], ["*.json"])
    assert [key for key in objects(s3, stack, job["id"]) if "/archives/" in key]  # the selection's own archive
    deadline = time.monotonic() + 60
    while (deleted := user.delete(f"/v1/jobs/{job['id']}")).status_code == 409:  # the full archive may be packaging
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert deleted.status_code == 204
    assert s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"jobs/{job['id']}/").get("KeyCount", 0) == 0
