"""Forms from JSON Schema: fields from properties, posted text back to typed parameters, errors to their fields."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile

from services.gateway.surfaces.ui.schema_forms import errors_by_field, fields, read_params

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["steps"],
    "properties": {
        "rain_mm": {"type": "number", "exclusiveMinimum": 0, "maximum": 2000, "default": 50, "description": "Rain."},
        "steps": {"type": "integer", "minimum": 1},
        "boundary": {"type": "string", "enum": ["closed", "open"], "default": "open"},
        "fast": {"type": "boolean", "default": True},
        "label": {"type": "string"},
        "weights": {"type": "array", "items": {"type": "number"}},
    },
}


def test_fields_carry_kinds_defaults_bounds_and_choices() -> None:
    shown = {field.name: field for field in fields(SCHEMA)}
    assert (shown["rain_mm"].kind, shown["rain_mm"].value, shown["rain_mm"].low) == ("number", "50", "0")
    assert shown["rain_mm"].bounds == "More than 0, at most 2000."
    assert (shown["steps"].kind, shown["steps"].required, shown["steps"].value) == ("integer", True, "")
    assert (shown["boundary"].kind, shown["boundary"].options) == ("choice", ["closed", "open"])
    assert (shown["fast"].kind, shown["fast"].checked) == ("boolean", True)
    assert (shown["label"].kind, shown["weights"].kind) == ("text", "json")


def test_posted_text_becomes_typed_parameters_and_empty_fields_are_left_to_their_defaults() -> None:
    posted: list[tuple[str, str | UploadFile]] = [
        ("param.rain_mm", "12.5"),
        ("param.steps", "30"),
        ("param.weights", "[1, 2]"),
        ("param.label", ""),
    ]
    form = FormData(posted)
    assert read_params(SCHEMA, form) == {"rain_mm": 12.5, "steps": 30, "weights": [1, 2], "fast": False}


def test_text_that_is_not_of_its_fields_type_is_passed_on_for_the_schema_to_refuse() -> None:
    assert read_params(SCHEMA, FormData([("param.steps", "many")]))["steps"] == "many"


def test_violations_land_beside_their_fields() -> None:
    placed, others = errors_by_field(
        [("/params/steps", "too small"), ("/inputs/grid", "required"), ("/priority", "at most 9"), ("", "no queue")]
    )
    assert placed == {"params.steps": "too small", "inputs.grid": "required", "priority": "at most 9"}
    assert others == ["no queue"]
