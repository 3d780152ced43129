from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.apps import (
    AppConfigError,
    AppSpec,
    RegisteredApp,
    canonical,
    load_apps,
    matching_outputs,
    validate_request,
    version_id,
)
from shared.errors import Invalid
from shared.models import OutputFile, utcnow
from tests.helpers.records import make_spec


def test_defaults_are_filled_in() -> None:
    params = validate_request(make_spec(), {"mode": "fast"}, {"table": "f1"})
    assert params == {"n": 3, "mode": "fast"}


def test_every_violation_is_reported_with_a_json_pointer() -> None:
    with pytest.raises(Invalid) as caught:
        validate_request(make_spec(), {"n": 11, "tags": ["a", 2], "bogus": True}, {"nope": "f1"})
    found = {(v.pointer, v.detail.split(" ")[0]) for v in caught.value.violations}
    pointers = {v.pointer for v in caught.value.violations}
    assert pointers == {"/params", "/params/n", "/params/tags/1", "/inputs/nope", "/inputs/table"}
    assert len(found) == 6  # /params twice: missing 'mode' and unexpected 'bogus'


def test_a_boolean_is_not_an_integer() -> None:
    with pytest.raises(Invalid) as caught:
        validate_request(make_spec(), {"mode": "fast", "n": True}, {"table": "f1"})
    assert [v.pointer for v in caught.value.violations] == ["/params/n"]


def test_optional_input_may_be_left_out() -> None:
    assert validate_request(make_spec(), {"mode": "exact"}, {"table": "f1"})["mode"] == "exact"


def test_placeholder_naming_nothing_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"params\.missing"):
        make_spec(command=["run", "{params.missing}"])


def test_command_parameter_without_default_must_be_required() -> None:
    with pytest.raises(ValidationError, match="needs a default or must be required"):
        make_spec(
            command=["run", "{params.k}"],
            parameters={"type": "object", "additionalProperties": False, "properties": {"k": {"type": "string"}}},
        )


def test_array_parameter_cannot_be_placed_in_the_command() -> None:
    with pytest.raises(ValidationError, match="must be a string, integer, number or boolean"):
        make_spec(command=["run", "{params.tags}"])


def test_open_parameter_schema_is_refused() -> None:
    with pytest.raises(ValidationError, match="additionalProperties"):
        make_spec(parameters={"type": "object", "properties": {}})


def test_invalid_json_schema_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        make_spec(parameters={"type": "object", "additionalProperties": False, "properties": {"n": {"type": 5}}})


def test_output_glob_may_not_leave_the_run_directory() -> None:
    with pytest.raises(ValidationError, match="inside the run directory"):
        make_spec(outputs=["../secrets/*"])


def test_an_output_glob_with_too_many_wildcards_is_refused() -> None:
    with pytest.raises(ValidationError, match="at most 20 wildcards"):
        make_spec(outputs=["**/" * 40 + "Z"])


def test_default_timeout_above_max_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"exceeds timeout\.max"):
        make_spec(timeout={"default": 200, "max": 100})


def test_shipped_apps_load_and_their_examples_fit_their_schemas(project: Path) -> None:
    apps = load_apps(project / "apps")
    assert set(apps) >= {"flood", "linfit", "tabulate"}
    assert apps["flood"].example is not None and apps["linfit"].example is not None
    for spec in apps.values():
        # tabulate reads a dataset (a control file beside its tables), which a one-file example cannot hold
        if spec.example is not None:
            validate_request(spec, spec.example.params, dict.fromkeys(spec.example.inputs, "file"))


def test_broken_definition_stops_loading_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "app.json").write_text(json.dumps({"name": "bad"}))
    with pytest.raises(AppConfigError, match=r"bad/app\.json"):
        load_apps(tmp_path)


def test_an_app_in_a_folder_not_named_after_it_is_refused(tmp_path: Path, project: Path) -> None:
    (tmp_path / "fit" / "example").mkdir(parents=True)
    (tmp_path / "fit" / "app.json").write_text((project / "apps" / "linfit" / "app.json").read_text())
    (tmp_path / "fit" / "example" / "river_samples.csv").write_text("a,b\n1,2\n")
    with pytest.raises(AppConfigError, match="must live in a folder named linfit"):
        load_apps(tmp_path)


def test_example_input_must_exist_beside_a_definition_on_disk(tmp_path: Path) -> None:
    example = {"params": {"mode": "fast"}, "inputs": {"table": "example/t.csv"}}
    with pytest.raises(ValidationError, match=r"not a file beside app\.json"):
        AppSpec.model_validate(make_spec(example=example).model_dump(), context={"directory": tmp_path})
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "t.csv").write_text("a\n1\n")
    AppSpec.model_validate(make_spec(example=example).model_dump(), context={"directory": tmp_path})


def test_example_input_may_not_leave_the_app_directory() -> None:
    with pytest.raises(ValidationError, match="must be a path inside"):
        make_spec(example={"params": {"mode": "fast"}, "inputs": {"table": "../../etc/passwd"}})


def test_a_registered_version_round_trips_through_its_stored_text() -> None:
    spec = make_spec(parameters=make_spec().parameters | {"$defs": {"x": {"type": "string"}}})
    app = RegisteredApp(
        id=version_id(spec.name, spec.version),
        name=spec.name,
        version=spec.version,
        spec=spec,
        source="api",
        registered=utcnow(),
        registered_by="admin",
    )
    stored = app.model_dump()
    assert stored["spec"] == canonical(spec) and stored["id"] == "grid@2.1"
    assert RegisteredApp.model_validate(stored) == app


def test_equal_definitions_have_equal_canonical_text() -> None:
    shuffled = dict(reversed(list(make_spec().model_dump().items())))
    assert canonical(AppSpec.model_validate(shuffled)) == canonical(make_spec())
    assert canonical(make_spec(description="other")) != canonical(make_spec())


def output(path: str) -> OutputFile:
    return OutputFile(path=path, size=1, sha256="0" * 64, content_type="text/plain", key=f"jobs/j/outputs/{path}")


def test_output_globs_keep_stars_within_a_name_and_double_stars_across_directories() -> None:
    outputs = [output(p) for p in ("a.csv", "maps/b.csv", "maps/x/c.csv", "d.json")]
    assert [o.path for o in matching_outputs(outputs, ["*.csv"])] == ["a.csv"]
    assert [o.path for o in matching_outputs(outputs, ["**/*.csv"])] == ["a.csv", "maps/b.csv", "maps/x/c.csv"]
    assert [o.path for o in matching_outputs(outputs, ["maps/?.csv", "d.*"])] == ["maps/b.csv", "d.json"]


def test_a_stored_version_with_a_glob_over_the_caps_stays_readable() -> None:
    wild = make_spec().model_dump(mode="json") | {"outputs": ["**/" * 40 + "Z"]}
    with pytest.raises(ValidationError, match="wildcards"):
        AppSpec.model_validate(wild)
    stored = RegisteredApp.model_validate(
        {
            "id": "x@1",
            "name": "x",
            "version": "1",
            "spec": json.dumps(wild),
            "source": "api",
            "registered": utcnow(),
            "registered_by": "admin",
        }
    )
    assert stored.spec.outputs == wild["outputs"]
