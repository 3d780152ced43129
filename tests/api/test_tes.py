"""The GA4GH TES 1.1 facade at /ga4gh/tes/v1: tasks created, checked, listed, viewed and canceled as quern jobs."""

from __future__ import annotations

import copy
from typing import Any

import httpx2
import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.surfaces.tes.document import SERVICE_SCHEMAS, vendored
from shared.settings import GatewaySettings, load
from tests.helpers.clients import ApiUserFactory, add_user, gateway_client, log_in, problem
from tests.helpers.datasets import make_dataset
from tests.helpers.ui_forms import ui_log_in

TES = "/ga4gh/tes/v1"
IMAGE = "localhost/quern-tes-tools:1"
PUBLIC_HOST = "93.184.215.14"  # a public address, given as a literal so no DNS is needed


def task(**changes: Any) -> dict[str, Any]:
    """A small valid task, with top-level fields replaced by ``changes``."""
    body: dict[str, Any] = {
        "name": "md5 of a note",
        "inputs": [{"path": "/data/note.txt", "content": "hello\n"}],
        "outputs": [{"path": "/data/sum.txt", "url": "quern://outputs/sum.txt"}],
        "executors": [{"image": IMAGE, "command": ["md5sum", "/data/note.txt"], "stdout": "/data/sum.txt"}],
    }
    return body | changes


def create(user: httpx2.Client, body: dict[str, Any]) -> str:
    answer = user.post(f"{TES}/tasks", json=body)
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["id"]
    return task_id


def jobs_of(user: httpx2.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = user.get("/v1/jobs").json()["items"]
    return items


def test_service_info_is_public_and_says_tes_1_1(anonymous: httpx2.Client) -> None:
    info = anonymous.get(f"{TES}/service-info").json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert "s3://quern-tes-*" in info["storage"] and "quern://files" in info["storage"]
    assert set(info["tesResources_backend_parameters"]) == {"queue", "priority", "timeout_seconds"}


def test_the_openapi_document_is_the_tes_spec_plus_errors_and_security(anonymous: httpx2.Client) -> None:
    published, spec = anonymous.get(f"{TES}/openapi.json").json(), vendored()
    assert published["info"] == spec["info"] and published["openapi"] == spec["openapi"]
    assert published["components"]["schemas"] == spec["components"]["schemas"] | {
        **SERVICE_SCHEMAS,
        "Problem": published["components"]["schemas"]["Problem"],
    }
    assert published["paths"].keys() == spec["paths"].keys()
    for path, item in spec["paths"].items():
        assert published["paths"][path].keys() == item.keys()
        for method, operation in item.items():
            ours = copy.deepcopy(published["paths"][path][method])
            added = {code for code in ours["responses"] if code not in operation["responses"]}
            assert all(ours["responses"][code]["content"]["application/problem+json"] for code in added)
            assert ("401" in added) is (path != "/service-info")
            for code in added:
                del ours["responses"][code]
            ours.pop("security", None)
            assert ours == operation, (method, path)
    assert published["paths"]["/service-info"]["get"]["security"] == []


def test_every_tes_route_is_in_its_document(env: dict[str, str], anonymous: httpx2.Client) -> None:
    app = create_app(load(GatewaySettings))
    mount = next(route for route in app.routes if isinstance(route, Mount) and route.path == TES)
    routes = [route for route in mount.routes if isinstance(route, Route)]
    served = {(method.lower(), route.path) for route in routes for method in route.methods or () if method != "HEAD"}
    document = anonymous.get(f"{TES}/openapi.json").json()
    listed = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == listed | {("get", "/openapi.json")}


def test_a_task_with_every_input_kind_is_a_queued_quern_job(make_user: ApiUserFactory) -> None:
    user = make_user()
    file_id = user.post("/v1/files", params={"name": "a.txt"}, content=b"a\n").json()["id"]
    dataset_id = make_dataset(user, "tes-inputs")
    inputs = [
        {"path": "/data/inline.txt", "content": "inline\n"},
        {"path": "/data/s3.txt", "url": "s3://quern-tes-in/some/key.txt"},
        {"path": "/data/web.txt", "url": f"https://{PUBLIC_HOST}/file.txt"},
        {"path": "/data/file.txt", "url": f"quern://files/{file_id}"},
        {"path": "/data/set", "url": f"quern://datasets/{dataset_id}", "type": "DIRECTORY"},
        {"path": "/data/member.csv", "url": f"quern://datasets/{dataset_id}/data/a.csv"},
    ]
    outputs = [
        {"path": "/data/out.txt", "url": "s3://quern-tes-out/results/out.txt"},
        {"path": "/data/out/*.csv", "path_prefix": "/data/out/", "url": "quern://outputs/tables/"},
    ]
    task_id = create(user, task(inputs=inputs, outputs=outputs, tags={"project": "alpha", "run.$id": "1"}))
    full = user.get(f"{TES}/tasks/{task_id}", params={"view": "FULL"}).json()
    assert full["state"] == "QUEUED"
    assert full["inputs"] == [{"type": "FILE"} | one for one in inputs]  # the server fills in the type
    assert full["outputs"] == [{"type": "FILE"} | one for one in outputs]
    assert full["tags"] == {"project": "alpha", "run.$id": "1"} and full["logs"] == []
    assert full["creation_time"].endswith("Z")
    job = user.get(f"/v1/jobs/{task_id}").json()
    assert (job["app"], job["state"], job["name"], job["params"]) == ("ga4gh-tes", "QUEUED", "md5 of a note", {})
    assert job["task"]["inputs"][0] == {"path": "/data/inline.txt", "content": "inline\n"}
    assert [one["id"] for one in jobs_of(user)] == [task_id]


def test_the_three_views_show_what_tes_says(make_user: ApiUserFactory) -> None:
    user = make_user()
    task_id = create(user, task())
    minimal = user.get(f"{TES}/tasks/{task_id}").json()
    assert minimal == {"id": task_id, "state": "QUEUED"}
    assert user.get(f"{TES}/tasks/{task_id}", params={"view": "MINIMAL"}).json() == minimal
    basic = user.get(f"{TES}/tasks/{task_id}", params={"view": "BASIC"}).json()
    assert basic["inputs"] == [{"path": "/data/note.txt", "type": "FILE"}]
    assert basic["executors"][0]["command"] == ["md5sum", "/data/note.txt"] and basic["name"] == "md5 of a note"
    full = user.get(f"{TES}/tasks/{task_id}", params={"view": "FULL"}).json()
    assert full["inputs"][0]["content"] == "hello\n"
    problem(user.get(f"{TES}/tasks/{task_id}", params={"view": "EVERYTHING"}), 400, "bad-request")


def test_tasks_are_listed_newest_first_a_page_at_a_time(make_user: ApiUserFactory) -> None:
    user = make_user()
    ids = [create(user, task(name=f"t{i}")) for i in range(5)]
    first = user.get(f"{TES}/tasks", params={"page_size": 2}).json()
    assert [one["id"] for one in first["tasks"]] == ids[::-1][:2] and first["tasks"][0] == {
        "id": ids[-1],
        "state": "QUEUED",
    }
    second = user.get(f"{TES}/tasks", params={"page_size": 2, "page_token": first["next_page_token"]}).json()
    third = user.get(f"{TES}/tasks", params={"page_size": 2, "page_token": second["next_page_token"]}).json()
    assert [one["id"] for one in second["tasks"] + third["tasks"]] == ids[::-1][2:]
    assert "next_page_token" not in third
    assert user.get(f"{TES}/tasks", params={"view": "BASIC"}).json()["tasks"][0]["name"] == "t4"
    for bad in ({"page_size": 0}, {"page_size": 2049}, {"page_token": "nope"}, {"state": "DONE"}):
        problem(user.get(f"{TES}/tasks", params=bad), 400, "bad-request")


def test_list_filters_by_name_prefix_state_and_tags(make_user: ApiUserFactory) -> None:
    user = make_user()
    both = create(user, task(name="a.b(1) first", tags={"foo": "bar", "baz": "bat"}))
    foo = create(user, task(name="a.b(1) second", tags={"foo": "bar"}))
    empty = create(user, task(name="axb(1) third", tags={"foo": ""}))
    canceled = create(user, task(name="other", tags={}))
    assert user.post(f"{TES}/tasks/{canceled}:cancel").json() == {}

    def listed(**params: Any) -> list[str]:
        return [one["id"] for one in user.get(f"{TES}/tasks", params=params).json()["tasks"]]

    assert listed(name_prefix="a.b(1)") == [foo, both]
    assert listed(name_prefix="a.b(1) s") == [foo]
    assert listed(tag_key="foo", tag_value="bar") == [foo, both]
    assert listed(tag_key=["foo", "baz"], tag_value=["bar", "bat"]) == [both]
    assert listed(tag_key="foo") == [empty, foo, both]
    assert listed(tag_key="foo", tag_value="bat") == []
    assert listed(state="CANCELED") == [canceled]
    assert listed(state="QUEUED") == [empty, foo, both]
    assert listed(state="COMPLETE") == listed(state="PREEMPTED") == listed(state="UNKNOWN") == []


def test_only_tes_tasks_are_tasks(make_user: ApiUserFactory, project: Any) -> None:
    user = make_user()
    file_id = user.post("/v1/files", params={"name": "grid.csv"}, content=b"1,2\n3,4\n").json()["id"]
    native = user.post("/v1/jobs", json={"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": file_id}})
    assert native.status_code == 201, native.text
    problem(user.get(f"{TES}/tasks/{native.json()['id']}"), 404, "not-found")
    problem(user.post(f"{TES}/tasks/{native.json()['id']}:cancel"), 404, "not-found")
    assert user.get(f"{TES}/tasks").json()["tasks"] == []
    assert user.get(f"/v1/jobs/{native.json()['id']}").json()["task"] is None


def test_cancel_ends_a_queued_task_and_is_idempotent(make_user: ApiUserFactory) -> None:
    user = make_user()
    task_id = create(user, task())
    assert user.post(f"{TES}/tasks/{task_id}:cancel").json() == {}
    assert user.get(f"{TES}/tasks/{task_id}").json()["state"] == "CANCELED"
    assert user.post(f"{TES}/tasks/{task_id}:cancel").json() == {}
    assert user.get(f"/v1/jobs/{task_id}").json()["state"] == "CANCELED"


def test_another_users_task_is_404(make_user: ApiUserFactory) -> None:
    alice, bob = make_user(), make_user()
    task_id = create(alice, task())
    problem(bob.get(f"{TES}/tasks/{task_id}"), 404, "not-found")
    problem(bob.post(f"{TES}/tasks/{task_id}:cancel"), 404, "not-found")
    assert bob.get(f"{TES}/tasks").json()["tasks"] == []
    assert alice.get(f"{TES}/tasks/{task_id}").json()["state"] == "QUEUED"


def test_quern_inputs_of_another_user_are_404_and_nothing_is_stored(make_user: ApiUserFactory) -> None:
    alice, bob = make_user(), make_user()
    file_id = alice.post("/v1/files", params={"name": "a.txt"}, content=b"a\n").json()["id"]
    dataset_id = make_dataset(alice, "alices-tes")
    for url in (f"quern://files/{file_id}", f"quern://datasets/{dataset_id}"):
        answer = bob.post(f"{TES}/tasks", json=task(inputs=[{"path": "/data/x", "url": url}]))
        problem(answer, 404, "not-found")
    assert jobs_of(bob) == []


def _executor(**changes: Any) -> list[dict[str, Any]]:
    return [{"image": IMAGE, "command": ["true"]} | changes]


BAD_TASKS: dict[str, tuple[dict[str, Any], str]] = {
    "image not allowed": (task(executors=[{"image": "docker.io/ubuntu", "command": ["true"]}]), "TES_IMAGES"),
    "bucket not allowed in": (task(inputs=[{"path": "/d/x", "url": "s3://elsewhere/x"}]), "TES_S3_BUCKETS"),
    "bucket not allowed out": (task(outputs=[{"path": "/d/x", "url": "s3://elsewhere/x"}]), "TES_S3_BUCKETS"),
    "s3 without key": (task(inputs=[{"path": "/d/x", "url": "s3://quern-tes-in"}]), "s3://bucket/key"),
    # The test stack allows 127.0.0.0/8 (WEBHOOK_ALLOWED_NETWORKS, for its webhook receivers): other loopbacks then.
    "loopback http": (task(inputs=[{"path": "/d/x", "url": "http://[::1]:8000/x"}]), "not a public address"),
    "metadata http": (task(inputs=[{"path": "/d/x", "url": "http://169.254.169.254/x"}]), "not a public address"),
    "private http": (task(inputs=[{"path": "/d/x", "url": "https://10.1.2.3/x"}]), "not a public address"),
    "credentials in http": (task(inputs=[{"path": "/d/x", "url": f"http://u:p@{PUBLIC_HOST}/x"}]), "credentials"),
    "strict backend": (
        task(resources={"backend_parameters": {"VmSize": "big"}, "backend_parameters_strict": True}),
        "VmSize",
    ),
    "timeout too long": (task(resources={"backend_parameters": {"timeout_seconds": "604801"}}), "timeout_seconds"),
    "priority out of range": (task(resources={"backend_parameters": {"priority": "10"}}), "priority"),
    "unknown queue": (task(resources={"backend_parameters": {"queue": "nope"}}), "queue"),
    "no command": (task(executors=[{"image": IMAGE}]), "command"),
    "empty command": (task(executors=_executor(command=[])), "command"),
    "no executors": (task(executors=[]), "executors"),
    "executors missing": ({"name": "x"}, "executors"),
    "url and content": (task(inputs=[{"path": "/d/x", "url": "s3://quern-tes-in/x", "content": "x"}]), "not both"),
    "neither url nor content": (task(inputs=[{"path": "/d/x"}]), "not both"),
    "relative input path": (task(inputs=[{"path": "d/x", "content": "x"}]), "absolute"),
    "dotdot output path": (task(outputs=[{"path": "/data/../etc/x", "url": "quern://outputs/x"}]), "absolute"),
    "relative workdir": (task(executors=_executor(workdir="work")), "absolute"),
    "dot stdout": (task(executors=_executor(stdout="/data/./out")), "absolute"),
    "relative stdin": (task(executors=_executor(stdin="in.txt")), "absolute"),
    "relative stderr": (task(executors=_executor(stderr="../err")), "absolute"),
    "relative volume": (task(volumes=["vol"]), "absolute"),
    "output escapes quern": (task(outputs=[{"path": "/d/x", "url": "quern://outputs/../x"}]), "'..'"),
    "absolute quern output": (task(outputs=[{"path": "/d/x", "url": "quern://outputs//x"}]), "'..'"),
    "wildcard without prefix": (task(outputs=[{"path": "/d/*.txt", "url": "quern://outputs/t/"}]), "path_prefix"),
    "gs input": (task(inputs=[{"path": "/d/x", "url": "gs://bucket/x"}]), "inputs come from"),
    "file input": (task(inputs=[{"path": "/d/x", "url": "file:///etc/passwd"}]), "inputs come from"),
    "ftp output": (task(outputs=[{"path": "/d/x", "url": "ftp://host/x"}]), "outputs go to"),
    "bad file id": (task(inputs=[{"path": "/d/x", "url": "quern://files/../../x"}]), "inputs come from"),
    "too many executors": (task(executors=_executor() * 21), "at most 20"),
    "too many inputs": (task(inputs=[{"path": f"/d/{i}", "content": ""} for i in range(1001)]), "at most 1000"),
    "too many tags": (task(tags={f"k{i}": "" for i in range(101)}), "at most 100"),
    "content too large": (task(inputs=[{"path": "/d/x", "content": "x" * (2**20 + 1)}]), "limited to"),
}


@pytest.mark.parametrize("case", sorted(BAD_TASKS))
def test_a_bad_task_is_400_and_nothing_is_stored(case: str, make_user: ApiUserFactory) -> None:
    user = make_user()
    body, detail = BAD_TASKS[case]
    answer = user.post(f"{TES}/tasks", json=body)
    expected = 404 if case == "unknown queue" else 400
    found = problem(answer, expected)
    assert detail in found["detail"], found
    assert jobs_of(user) == []


def test_a_body_that_is_not_json_is_400(make_user: ApiUserFactory) -> None:
    user = make_user()
    problem(user.post(f"{TES}/tasks", content=b"{not json"), 400, "bad-request")
    problem(user.post(f"{TES}/tasks", content=b'{"executors": [{"image": "\\ud800", "command": ["x"]}]}'), 400)
    assert jobs_of(user) == []


def test_backend_parameters_set_queue_priority_and_timeout_and_others_are_dropped(make_user: ApiUserFactory) -> None:
    user = make_user()
    assert user.post("/v1/queues", json={"name": "tes-queue"}).status_code == 201
    params = {"Queue": "tes-queue", "PRIORITY": "8", "timeout_seconds": "120", "VmSize": "big"}
    task_id = create(user, task(resources={"cpu_cores": 2, "ram_gb": 1.5, "backend_parameters": params}))
    job = user.get(f"/v1/jobs/{task_id}").json()
    assert (job["queue"], job["priority"], job["timeout_seconds"]) == ("tes-queue", 8, 120)
    resources = user.get(f"{TES}/tasks/{task_id}", params={"view": "BASIC"}).json()["resources"]
    assert resources["backend_parameters"] == {"Queue": "tes-queue", "PRIORITY": "8", "timeout_seconds": "120"}
    assert (resources["cpu_cores"], resources["ram_gb"]) == (2, 1.5)
    default = user.get(f"/v1/jobs/{create(user, task())}").json()
    assert (default["queue"], default["priority"], default["timeout_seconds"]) == ("default", 5, 24 * 3600)


def test_a_tes_job_is_not_rerun_natively_but_its_pages_render(
    make_user: ApiUserFactory, gateway: TestClient, admin: httpx2.Client
) -> None:
    username, password = add_user(admin, "user")
    with gateway_client(gateway) as api, gateway_client(gateway) as browser:
        log_in(api, username, password)
        task_id = create(api, task())
        assert "TES task" in problem(api.post(f"/v1/jobs/{task_id}/rerun"), 409, "conflict")["detail"]
        ui_log_in(browser, username, password)
        page = browser.get(f"/ui/jobs/{task_id}")
        assert page.status_code == 200 and "ga4gh-tes" in page.text and 'id="rerun"' not in page.text
        assert task_id in browser.get("/ui/jobs").text
        assert browser.get(f"/ui/jobs/{task_id}/rerun").status_code == 409
