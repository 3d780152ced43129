"""Forms from JSON Schema: an app's parameters as typed fields (bounds, defaults, choices, help), and back.

Only what a person types is read here: a value that is not of its field's type is passed on as
typed, so the app's own schema validation (the one every submission goes through) says what is
wrong with it, beside the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

PARAM = "param."  # the form's name of a parameter's field: param.<name>


@dataclass
class Field:
    """One parameter as a form field."""

    name: str
    kind: str  # integer, number, boolean, choice, text or json
    help: str
    required: bool
    value: str = ""
    checked: bool = False
    low: str | None = None
    high: str | None = None
    options: list[str] = field(default_factory=list)
    bounds: str = ""  # the bounds in words: "More than 0, at most 2000."
    error: str | None = None

    @property
    def input_name(self) -> str:
        return PARAM + self.name


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str) -> str | None:
    value = schema.get(inclusive, schema.get(exclusive))
    return None if not isinstance(value, int | float) or isinstance(value, bool) else str(value)


def _bounds(schema: dict[str, Any]) -> str:
    """A property's numeric bounds in words."""
    words = [
        f"{text} {schema[key]}"
        for key, text in (
            ("minimum", "at least"),
            ("exclusiveMinimum", "more than"),
            ("maximum", "at most"),
            ("exclusiveMaximum", "less than"),
        )
        if isinstance(schema.get(key), int | float)
    ]
    return (", ".join(words).capitalize() + ".") if words else ""


def _shown(value: Any) -> str:
    """A value as its field shows it."""
    return value if isinstance(value, str) else json.dumps(value)


def _kind(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "choice"
    kind = schema.get("type")
    return kind if kind in ("integer", "number", "boolean") else "text" if kind == "string" else "json"


def fields(schema: dict[str, Any], values: dict[str, Any] | None = None) -> list[Field]:
    """The fields of an object schema's properties, showing ``values`` (else the defaults)."""
    required = set(schema.get("required", []))
    shown = []
    for name, prop in schema.get("properties", {}).items():
        kind = _kind(prop)
        value = (values or {}).get(name, prop.get("default"))
        shown.append(
            Field(
                name=name,
                kind=kind,
                help=str(prop.get("description", "")),
                required=name in required,
                value="" if value is None or kind == "boolean" else _shown(value),
                checked=value is True,
                low=_bound(prop, "minimum", "exclusiveMinimum"),
                high=_bound(prop, "maximum", "exclusiveMaximum"),
                options=[_shown(option) for option in prop.get("enum", [])],
                bounds=_bounds(prop),
            )
        )
    return shown


def _read(raw: str, kind: str, options: list[Any]) -> Any:
    """What a field's text means for its kind; the text itself when it means nothing of that kind."""
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            number = float(raw)
            return int(number) if number.is_integer() and "." not in raw and "e" not in raw.lower() else number
        if kind == "json":
            return json.loads(raw)
    except ValueError:
        return raw
    if kind == "choice":
        return next((option for option in options if _shown(option) == raw), raw)
    return raw


def read_params(schema: dict[str, Any], form: FormData) -> dict[str, Any]:
    """The parameters a posted form gives: empty fields left out (their defaults apply), checkboxes as booleans."""
    params: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        kind = _kind(prop)
        if kind == "boolean":
            params[name] = form.get(PARAM + name) == "on"
            continue
        raw = str(form.get(PARAM + name, "")).strip()
        if raw:
            params[name] = _read(raw, kind, prop.get("enum", []))
    return params


def errors_by_field(violations: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Violations by the form field they point at (``params.x``, ``inputs.y``, ``name``...), and the others."""
    placed: dict[str, str] = {}
    others: list[str] = []
    for pointer, detail in violations:
        parts = [part for part in pointer.split("/") if part]
        if len(parts) >= 2 and parts[0] in ("params", "inputs"):
            key = f"{parts[0]}.{parts[1]}"
        elif len(parts) >= 1 and parts[0] not in ("params", "inputs"):
            key = parts[0]
        else:
            others.append(detail)
            continue
        placed[key] = f"{placed[key]}; {detail}" if key in placed else detail
    return placed, others
