"""The files and datasets pages in headless Chromium: uploads with progress (big ones straight to S3), datasets.

One browser serves the module; each test opens fresh contexts. Every request that would leave
the machine is blocked and noted, and the tests check none was made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from devstack.stack import Stack
from tests.helpers.browser import log_in_page, new_page, screenshot
from tests.helpers.clients import add_user, client_for, open_multipart_uploads, upload
from tests.helpers.datasets import MODEL, bundle, new_dataset, unique
from tests.helpers.stacks import SINGLE_PUT_MAX_BYTES

SECONDS = 30_000  # ms: how long an expectation may take to come true
# Records every value a page's script gives a progress bar (the property, which no attribute shows).
RECORD_PROGRESS = """
const own = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
window.progressSeen = [];
Object.defineProperty(HTMLProgressElement.prototype, "value", {
  get() { return own.get.call(this); },
  set(v) { window.progressSeen.push(Number(v)); own.set.call(this, v); },
});
"""


@pytest.fixture
def person(stack: Stack, admin: httpx.Client, browser: Browser) -> Iterator[tuple[Page, httpx.Client]]:
    """A new user signed in to the UI in a fresh context (progress recorded, confirmations accepted), and their API."""
    username, password = add_user(admin)
    blocked: list[str] = []
    with ExitStack() as opened:
        api = client_for(stack.gateway_url, username, password)
        opened.callback(api.close)
        page = opened.enter_context(new_page(browser, stack.gateway_url, blocked=blocked))
        page.context.add_init_script(RECORD_PROGRESS)
        page.on("dialog", lambda dialog: dialog.accept())
        log_in_page(page, username, password)
        yield page, api
    assert blocked == [], f"pages reached off the machine: {blocked}"


def store_requests(page: Page, stack: Stack) -> list[str]:
    """The methods of the requests the page sends to the object store, as they are made."""
    sent: list[str] = []
    store = stack.s3_url.rstrip("/")
    page.on("request", lambda request: sent.append(request.method) if request.url.startswith(store) else None)
    return sent


def test_a_file_is_uploaded_with_progress_listed_and_deleted(person: tuple[Page, httpx.Client], tmp_path: Path) -> None:
    page, api = person
    data = b"x,y\n" + b"1,2\n" * 50_000
    path = tmp_path / "table.csv"
    path.write_bytes(data)
    page.get_by_role("link", name="Files").click()
    page.wait_for_url("**/ui/files")
    with page.expect_navigation():  # the page reloads once the file is stored
        page.get_by_label("A file").set_input_files(str(path))
    row = page.locator("#files tbody tr", has_text="table.csv")
    expect(row).to_contain_text(hashlib.sha256(data).hexdigest())
    (stored,) = api.get("/v1/files").json()["items"]
    assert stored["name"] == "table.csv" and stored["size"] == len(data)
    screenshot(page, "files")
    row.get_by_role("button", name="Delete table.csv").click()
    page.wait_for_url("**/ui/files")
    expect(page.locator(".empty")).to_have_text("No files yet.")
    assert api.get("/v1/files").json()["items"] == []


def test_a_big_file_goes_straight_to_the_object_store_with_progress(
    person: tuple[Page, httpx.Client], stack: Stack, tmp_path: Path
) -> None:
    page, api = person
    data = bytes(range(256)) * ((SINGLE_PUT_MAX_BYTES + 3 * 2**20) // 256)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    page.goto("/ui/files")
    sent = store_requests(page, stack)
    with page.expect_navigation(timeout=SECONDS):
        page.get_by_label("A file").set_input_files(str(path))
    expect(page.locator("#files tbody tr", has_text="big.bin")).to_contain_text(hashlib.sha256(data).hexdigest())
    assert sent.count("PUT") >= 2  # the parts went to the store, not through the gateway
    (stored,) = api.get("/v1/files").json()["items"]
    assert stored["size"] == len(data) and stored["sha256"] == hashlib.sha256(data).hexdigest()


def test_the_submit_forms_upload_sends_a_big_file_straight_to_the_store(
    person: tuple[Page, httpx.Client], stack: Stack, tmp_path: Path
) -> None:
    page, api = person
    data = b"a\n" * ((SINGLE_PUT_MAX_BYTES + 2**20) // 2)
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    page.goto("/ui/submit/tabulate")
    sent = store_requests(page, stack)
    page.get_by_label("or upload one").set_input_files(str(path))
    expect(page.locator(".upload [role=status]")).to_have_text("Uploaded big.csv.", timeout=SECONDS)
    seen = page.evaluate("window.progressSeen")
    assert seen[-1] == 100 and any(0 < value < 100 for value in seen), seen
    assert sent.count("PUT") >= 2
    (stored,) = api.get("/v1/files").json()["items"]
    assert page.locator("#i-control").input_value() == stored["id"]
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_dataset_made_from_a_bundle_shows_its_members_and_metadata(person: tuple[Page, httpx.Client]) -> None:
    page, api = person
    metadata = [{"destinationTable": "Transactions.submitter", "value": 10}, {"destinationTable": "Files"}]
    name, data = bundle("tar.gz", {"metadata.txt": json.dumps(metadata).encode(), "data/run1/out.csv": b"a\n1\n"})
    file = upload(api, name, data)
    title = unique("pacifica")
    page.get_by_role("link", name="Datasets").click()
    page.get_by_label("Bundle").select_option(value=file["id"])
    page.get_by_label("Name").fill(title)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/ui/datasets/*")
    expect(page.locator("h1")).to_have_text(title)
    expect(page.locator("#members")).to_contain_text("data/run1/out.csv")
    expect(page.locator("#members")).to_contain_text("metadata.txt")
    expect(page.locator("#metadata")).to_contain_text("Transactions.submitter")
    expect(page.locator("#metadata thead")).to_contain_text("destinationTable")
    screenshot(page, "dataset")
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/ui/datasets")
    assert api.get("/v1/datasets").json()["items"] == []


def test_tabulate_runs_with_a_dataset_member_chosen_in_the_submit_form(person: tuple[Page, httpx.Client]) -> None:
    page, api = person
    dataset = new_dataset(api, MODEL, name=unique("model"))
    page.goto("/ui/submit/tabulate")
    page.locator("#i-control").select_option(value=f"dataset:{dataset['id']}:model/run.tcf")
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url("**/ui/jobs/*")
    expect(page.locator("#state")).to_have_text("SUCCEEDED", timeout=SECONDS)
    (job,) = api.get("/v1/jobs").json()["items"]
    assert job["inputs"]["control"] == {"dataset": dataset["id"], "path": "model/run.tcf"}


def test_an_upload_the_store_refuses_is_canceled_and_leaves_nothing_open(
    person: tuple[Page, httpx.Client], stack: Stack, s3: Any, tmp_path: Path
) -> None:
    page, api = person
    path = tmp_path / "big.bin"
    path.write_bytes(b"z" * (SINGLE_PUT_MAX_BYTES + 2**20))
    before = open_multipart_uploads(s3, stack.bucket)
    page.goto("/ui/files")
    page.route(stack.s3_url.rstrip("/") + "/**", lambda route: route.abort("failed"))
    page.get_by_label("A file").set_input_files(str(path))
    expect(page.locator("#file-upload [role=status]")).to_have_text(
        "The upload failed: the connection broke.", timeout=SECONDS
    )
    expect(page.locator(".empty")).to_have_text("No files yet.")
    assert open_multipart_uploads(s3, stack.bucket) - before == set()
    assert api.get("/v1/files").json()["items"] == []
