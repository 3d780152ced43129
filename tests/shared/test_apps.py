from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.apps import AppConfigError, AppSpec, load_apps, validate_request
from shared.errors import Invalid


def make_spec(**overrides: Any) -> AppSpec:
    definition: dict[str, Any] = {
        "name": "grid",
        "version": "2.1",
        "description": "test app",
        "command": ["{python}", "{app_dir}/grid.py", "--n={params.n}", "{inputs.table}"],
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode"],
            "properties": {
                "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
                "mode": {"type": "string", "enum": ["fast", "exact"]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "inputs": {"table": {"description": "a table"}, "extra": {"description": "optional", "required": False}},
        "outputs": ["*.csv"],
        "timeout": {"default": 10, "max": 100},
    }
    definition.update(overrides)
    return AppSpec.model_validate(definition)


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


def test_two_apps_with_one_name_are_refused(tmp_path: Path, project: Path) -> None:
    definition = (project / "apps" / "linfit" / "app.json").read_text()
    for folder in ("one", "two"):
        (tmp_path / folder / "example").mkdir(parents=True)
        (tmp_path / folder / "app.json").write_text(definition)
        (tmp_path / folder / "example" / "river_samples.csv").write_text("a,b\n1,2\n")
    with pytest.raises(AppConfigError, match="defined twice"):
        load_apps(tmp_path)
