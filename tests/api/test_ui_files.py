"""The UI's files and datasets pages over plain HTTP: list, delete, direct-to-S3 uploads, datasets, isolation."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import httpx2
import pytest
from starlette.testclient import TestClient

from devstack.stack import Stack
from tests.helpers.clients import ApiUserFactory, add_user, gateway_client, log_in, tiny_job, upload
from tests.helpers.datasets import MODEL, bundle, new_dataset, unique, zip_of
from tests.helpers.stacks import SINGLE_PUT_MAX_BYTES
from tests.helpers.ui_forms import csrf_of, ui_log_in

FAKE_ID = "01aaaaaaaaaaaaaaaaaaaaaaaa"


@dataclass
class Person:
    """One user seen two ways: signed in to the UI, and through the API."""

    ui: httpx2.Client
    api: httpx2.Client
    token: str


@pytest.fixture
def person(gateway: TestClient, admin: httpx2.Client) -> Iterator[Person]:
    username, password = add_user(admin)
    with gateway_client(gateway) as ui, gateway_client(gateway) as api:
        ui_log_in(ui, username, password)
        yield Person(ui, log_in(api, username, password), csrf_of(ui.get("/ui/files").text))


def test_the_files_page_lists_the_users_files_and_deletes_one(person: Person) -> None:
    file = upload(person.api, "notes.txt", b"hello\n")
    page = person.ui.get("/ui/files")
    assert page.status_code == 200
    assert "notes.txt" in page.text and hashlib.sha256(b"hello\n").hexdigest() in page.text
    answer = person.ui.post(f"/ui/files/{file['id']}/delete", data={"csrf": person.token})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/files"
    assert person.api.get(f"/v1/files/{file['id']}").status_code == 404
    assert file["id"] not in person.ui.get("/ui/files").text


def test_the_files_page_goes_page_by_page(person: Person) -> None:
    names = [f"f{n}.txt" for n in range(52)]
    for name in names:
        upload(person.api, name, b"x")
    first = person.ui.get("/ui/files").text
    older = re.search(r'href="(/ui/files\?after=[^"]+)" rel="next"', first)
    assert older, "no link to older files"
    second = person.ui.get(older.group(1).replace("&amp;", "&")).text
    assert ">f51.txt " in first and ">f0.txt " not in first
    assert ">f0.txt " in second and ">f51.txt " not in second and "First page" in second


def test_a_file_a_queued_job_uses_is_not_deleted_and_the_page_says_why(person: Person) -> None:
    job = tiny_job(person.api, seconds=60)
    file_id = job["inputs"]["data"]
    answer = person.ui.post(f"/ui/files/{file_id}/delete", data={"csrf": person.token})
    assert answer.status_code == 409
    assert "is an input of queued or running jobs" in answer.text and job["id"] in answer.text
    assert person.api.get(f"/v1/files/{file_id}").status_code == 200
    person.api.post(f"/v1/jobs/{job['id']}/cancel")


def test_a_big_file_goes_straight_to_the_store_in_parts(person: Person, stack: Stack) -> None:
    data = bytes(range(256)) * ((SINGLE_PUT_MAX_BYTES + 2**20) // 256)
    announced = {"name": "big.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    headers = {"X-CSRF-Token": person.token}
    started = person.ui.post("/ui/uploads", json=announced, headers=headers)
    assert started.status_code == 201, started.text
    opened = started.json()
    assert opened["put"] is None and len(opened["parts"]) >= 2
    done = 0
    for part in opened["parts"]:
        assert httpx.put(part["url"], content=data[done : done + part["size"]]).status_code == 200
        done += part["size"]
    completed = person.ui.post(f"/ui/uploads/{opened['id']}/complete", headers=headers)
    assert completed.status_code == 201, completed.text
    file = person.api.get(f"/v1/files/{completed.json()['id']}").json()
    assert file["size"] == len(data) and file["sha256"] == announced["sha256"]


def test_an_upload_whose_parts_did_not_all_arrive_is_refused(person: Person) -> None:
    size = SINGLE_PUT_MAX_BYTES + 2**20
    announced = {"name": "big.bin", "size": size, "sha256": "0" * 64}
    opened = person.ui.post("/ui/uploads", json=announced, headers={"X-CSRF-Token": person.token}).json()
    answer = person.ui.post(f"/ui/uploads/{opened['id']}/complete", headers={"X-CSRF-Token": person.token})
    assert answer.status_code == 422


def test_a_failed_upload_is_canceled(person: Person, make_user: ApiUserFactory) -> None:
    announced = {"name": "big.bin", "size": SINGLE_PUT_MAX_BYTES + 1, "sha256": "0" * 64}
    opened = person.ui.post("/ui/uploads", json=announced, headers={"X-CSRF-Token": person.token}).json()
    assert person.api.get(f"/v1/uploads/{opened['id']}").status_code == 200
    assert make_user().get(f"/v1/uploads/{opened['id']}").status_code == 404
    answer = person.ui.post(f"/ui/uploads/{opened['id']}/cancel", headers={"X-CSRF-Token": person.token})
    assert answer.status_code == 204
    assert person.api.get(f"/v1/uploads/{opened['id']}").status_code == 404


def test_a_dataset_is_made_from_a_bundle_and_shows_its_members_and_metadata(person: Person) -> None:
    metadata = [{"destinationTable": "Transactions.submitter", "value": 10}, {"destinationTable": "Files"}]
    name, data = bundle("tar", {"metadata.txt": json.dumps(metadata).encode(), "data/run1/out.csv": b"a\n1\n"})
    file = upload(person.api, name, data)
    title = unique()
    answer = person.ui.post("/ui/datasets", data={"csrf": person.token, "file_id": file["id"], "name": title})
    assert answer.status_code == 303, answer.text
    page = person.ui.get(answer.headers["location"]).text
    assert "data/run1/out.csv" in page and "Transactions.submitter" in page and '<th scope="col">value</th>' in page
    assert title in person.ui.get("/ui/datasets").text
    dataset_id = answer.headers["location"].rsplit("/", 1)[1]
    deleted = person.ui.post(f"/ui/datasets/{dataset_id}/delete", data={"csrf": person.token})
    assert deleted.status_code == 303 and person.api.get(f"/v1/datasets/{dataset_id}").status_code == 404


def test_a_refused_bundle_says_why_on_the_datasets_page(person: Person) -> None:
    file = upload(person.api, "b.zip", zip_of({"metadata.txt": b"{not json", "data/a.txt": b"a"}))
    answer = person.ui.post("/ui/datasets", data={"csrf": person.token, "file_id": file["id"], "name": unique()})
    assert answer.status_code == 422 and 'id="problems"' in answer.text and "metadata.txt" in answer.text


def test_tabulate_takes_a_dataset_member_from_the_submit_form(person: Person) -> None:
    dataset = new_dataset(person.api, MODEL)
    form = person.ui.get("/ui/submit/tabulate").text
    member = f"dataset:{dataset['id']}:model/run.tcf"
    assert f'value="{member}"' in form and f'value="dataset:{dataset["id"]}"' in form
    answer = person.ui.post("/ui/submit/tabulate", data={"csrf": person.token, "input.control": member})
    assert answer.status_code == 303, answer.text
    job = person.api.get(f"/v1/jobs/{answer.headers['location'].rsplit('/', 1)[1]}").json()
    assert job["inputs"]["control"] == {"dataset": dataset["id"], "path": "model/run.tcf"}
    wrong = person.ui.post(
        "/ui/submit/tabulate", data={"csrf": person.token, "input.control": f"dataset:{dataset['id']}:nope.tcf"}
    )
    assert wrong.status_code == 422
    assert re.search(r'id="i-control-error">[^<]*has no member', wrong.text)


def test_a_rerun_form_keeps_the_dataset_input_of_the_job_it_reruns(person: Person) -> None:
    dataset = new_dataset(person.api, MODEL)
    member = f"dataset:{dataset['id']}:model/run.tcf"
    submitted = person.ui.post("/ui/submit/tabulate", data={"csrf": person.token, "input.control": member})
    job_id = submitted.headers["location"].rsplit("/", 1)[1]
    form = person.ui.get(f"/ui/jobs/{job_id}/rerun").text
    assert re.search(rf'<option value="{re.escape(member)}" selected>', form)
    again = person.ui.post(
        f"/ui/jobs/{job_id}/rerun", data={"csrf": person.token, "edited": "1", "input.control": member}
    )
    assert again.status_code == 303, again.text
    rerun = person.api.get(f"/v1/jobs/{again.headers['location'].rsplit('/', 1)[1]}").json()
    assert rerun["rerun_of"] == job_id
    assert rerun["inputs"]["control"] == {"dataset": dataset["id"], "path": "model/run.tcf"}


def test_every_new_change_is_refused_without_the_csrf_token(person: Person) -> None:
    file = upload(person.api, "keep.txt", b"keep\n")
    dataset = new_dataset(person.api, {"data/a.csv": b"x\n1\n"})
    changes = [
        f"/ui/files/{file['id']}/delete",
        "/ui/uploads",
        f"/ui/uploads/{FAKE_ID}/complete",
        f"/ui/uploads/{FAKE_ID}/cancel",
        "/ui/datasets",
        f"/ui/datasets/{dataset['id']}/delete",
    ]
    for path in changes:
        assert person.ui.post(path, data={"csrf": "forged", "file_id": file["id"], "name": "x"}).status_code == 403
        assert person.ui.post(path, headers={"X-CSRF-Token": ""}).status_code == 403
    assert person.api.get(f"/v1/files/{file['id']}").status_code == 200
    assert person.api.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_another_users_file_and_dataset_urls_are_404(person: Person, make_user: ApiUserFactory) -> None:
    alice = make_user()
    file = upload(alice, "theirs.txt", b"theirs\n")
    dataset = new_dataset(alice, {"data/a.csv": b"x\n1\n"})
    assert person.ui.get(f"/ui/datasets/{dataset['id']}").status_code == 404
    assert person.ui.post(f"/ui/datasets/{dataset['id']}/delete", data={"csrf": person.token}).status_code == 404
    assert person.ui.post(f"/ui/files/{file['id']}/delete", data={"csrf": person.token}).status_code == 404
    theirs = alice.post("/v1/uploads", json={"name": "b.bin", "size": SINGLE_PUT_MAX_BYTES + 1, "sha256": "0" * 64})
    for action in ("complete", "cancel"):
        answer = person.ui.post(f"/ui/uploads/{theirs.json()['id']}/{action}", headers={"X-CSRF-Token": person.token})
        assert answer.status_code == 404
    made = person.ui.post("/ui/datasets", data={"csrf": person.token, "file_id": file["id"], "name": unique()})
    assert made.status_code == 404
    assert "theirs.txt" not in person.ui.get("/ui/files").text
    assert alice.get(f"/v1/files/{file['id']}").status_code == 200
    assert alice.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_a_dataset_a_queued_job_reads_is_not_deleted_and_its_page_says_why(person: Person) -> None:
    dataset = new_dataset(person.api, MODEL)
    queue = person.api.post("/v1/queues", json={"name": "held"}).json()
    assert person.api.post(f"/v1/queues/{queue['id']}/pause").status_code == 200
    job = person.api.post(
        "/v1/jobs", json={"app": "tabulate", "inputs": {"control": {"dataset": dataset["id"]}}, "queue": "held"}
    ).json()
    answer = person.ui.post(f"/ui/datasets/{dataset['id']}/delete", data={"csrf": person.token})
    assert answer.status_code == 409 and 'id="message"' in answer.text and "has not finished" in answer.text
    assert person.api.get(f"/v1/datasets/{dataset['id']}").status_code == 200
    person.api.post(f"/v1/jobs/{job['id']}/cancel")
