"""App definitions: declarative descriptions of the science programs quern may run.

The registry itself is the ``apps`` collection in Mongo, holding every version of every app
(``RegisteredApp``). Definitions come from ``$APPS_DIR/<name>/app.json`` beside the program,
registered by the gateway at start, or from admins through the API. The gateway validates
submissions against the latest enabled version; the runner builds argv from the exact version
a job recorded. A definition on disk that is wrong in any way stops the process at start,
naming the file, rather than failing a user's job later.

The ``command`` is an argv template. Each element is literal text with placeholders:
``{params.NAME}``, ``{inputs.SLOT}`` (the staged file's path), ``{app_dir}`` (the runner's
``$APPS_DIR/<name>``) and ``{python}`` (the interpreter the runner itself uses, for apps
written in Python).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from shared.errors import Invalid, Violation
from shared.globs import check_glob, compile_glob
from shared.models import OutputFile, Record

PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")
BUILTINS = frozenset({"app_dir", "python"})
SCALARS = frozenset({"string", "integer", "number", "boolean"})
MAX_TIMEOUT = 7 * 24 * 3600
MAX_RETENTION = 100 * 365 * 24 * 3600
_NAME = r"^[a-z][a-z0-9-]{0,62}$"
_SLOT = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
# A container image reference: [registry[:port]/]path[:tag][@digest], never an option ("-...").
_IMAGE = r"^[a-z0-9][A-Za-z0-9._/:@+-]{0,254}$"


class InputSlot(BaseModel):
    """A named input file the app reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    description: str
    required: bool = True


class Timeouts(BaseModel):
    """Wall-clock limits in seconds: what a job gets unless it asks, and the most it may ask for."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    default: int = Field(ge=1, le=MAX_TIMEOUT)
    max: int = Field(ge=1, le=MAX_TIMEOUT)

    @model_validator(mode="after")
    def _ordered(self) -> Timeouts:
        if self.default > self.max:
            raise ValueError("timeout.default exceeds timeout.max")
        return self


class Limits(BaseModel):
    """Resource limits applied to the app's process (None: no limit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    memory_mb: int | None = Field(default=2048, ge=16)
    cpu_seconds: int | None = Field(default=None, ge=1)
    file_size_mb: int | None = Field(default=4096, ge=1)
    open_files: int | None = Field(default=1024, ge=16)
    processes: int | None = Field(default=None, ge=1)


class Example(BaseModel):
    """A ready-to-run submission shipped with the app; input paths are relative to its directory."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}


class AppSpec(BaseModel):
    """One registered app."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=_NAME)
    version: str = Field(min_length=1, max_length=64)
    description: str
    command: list[str] = Field(min_length=1)
    parameters: dict[str, Any]
    inputs: dict[str, InputSlot] = {}
    outputs: list[str] = Field(min_length=1)
    timeout: Timeouts
    limits: Limits = Limits()
    env: dict[str, str] = {}
    example: Example | None = None
    driver: Literal["local", "docker"] = "local"
    image: str | None = Field(default=None, pattern=_IMAGE)
    network: bool = Field(default=False, description="whether the app may reach the network (off: no interface)")
    retention_seconds: int | None = Field(
        default=None, ge=1, le=MAX_RETENTION, description="keep a job's results this long after it ends"
    )

    @field_validator("parameters")
    @classmethod
    def _schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from None
        if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
            raise ValueError('parameters must be {"type": "object", "additionalProperties": false, ...}')
        return schema

    @field_validator("inputs")
    @classmethod
    def _slots(cls, inputs: dict[str, InputSlot]) -> dict[str, InputSlot]:
        for slot in inputs:
            if not re.match(_SLOT, slot):
                raise ValueError(f"input slot {slot!r} must match {_SLOT}")
        return inputs

    @field_validator("outputs")
    @classmethod
    def _globs(cls, globs: list[str], info: ValidationInfo) -> list[str]:
        for glob in globs:
            if glob.startswith("/") or ".." in Path(glob).parts:
                raise ValueError(f"output glob {glob!r} must stay inside the run directory")
            # A version registered before globs were capped stays readable: the matcher is linear anyway.
            if not (info.context or {}).get("stored"):
                check_glob(glob)
        return globs

    @model_validator(mode="after")
    def _placeholders(self) -> AppSpec:
        properties = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        for element in self.command:
            for kind, name in PLACEHOLDER.findall(element):
                if kind in BUILTINS and not name:
                    continue
                if kind == "inputs" and name in self.inputs:
                    if not self.inputs[name].required:
                        raise ValueError(f"command uses optional input {name!r}; make it required")
                    continue
                if kind == "params" and name in properties:
                    prop = properties[name]
                    if prop.get("type") not in SCALARS:
                        raise ValueError(f"command parameter {name!r} must be a string, integer, number or boolean")
                    if name not in required and "default" not in prop:
                        raise ValueError(f"command parameter {name!r} needs a default or must be required")
                    continue
                raise ValueError(f"command placeholder {{{kind}{'.' + name if name else ''}}} names nothing")
        return self

    @model_validator(mode="after")
    def _driver(self) -> AppSpec:
        if self.driver == "local" and self.image is not None:
            raise ValueError('image is for container drivers; set "driver": "docker" or drop it')
        if self.driver != "local":
            if self.image is None:
                raise ValueError(f"driver {self.driver} needs an image")
            # The runner's interpreter and app directory are paths on the runner, not in the image.
            for element in self.command:
                for kind, _ in PLACEHOLDER.findall(element):
                    if kind in BUILTINS:
                        raise ValueError(f"{{{kind}}} names a path on the runner; a {self.driver} app cannot use it")
        return self

    @model_validator(mode="after")
    def _example(self, info: ValidationInfo) -> AppSpec:
        # Read from disk (context: its directory), example files must be there; a definition
        # registered through the API or read back from the registry has no directory to look in.
        directory = (info.context or {}).get("directory")
        if self.example is not None:
            for slot, relative in self.example.inputs.items():
                if Path(relative).is_absolute() or ".." in Path(relative).parts:
                    raise ValueError(f"example input {slot!r}: {relative} must be a path inside the app's directory")
                if directory is not None and not (Path(directory) / relative).is_file():
                    raise ValueError(f"example input {slot!r}: {relative} is not a file beside app.json")
            try:
                validate_request(self, self.example.params, dict.fromkeys(self.example.inputs, "example"))
            except Invalid as exc:
                broken = "; ".join(f"{v.pointer}: {v.detail}" for v in exc.violations)
                raise ValueError(f"example does not fit the app: {broken}") from None
        return self

    def defaults(self) -> dict[str, Any]:
        """The default of every top-level parameter that has one."""
        return {k: p["default"] for k, p in self.parameters.get("properties", {}).items() if "default" in p}

    @cached_property
    def validator(self) -> Draft202012Validator:
        """The parameters' JSON Schema validator, built once per definition (a registered version is one)."""
        return Draft202012Validator(self.parameters, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _pointer(*parts: object) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


MAX_ARGUMENT_BYTES = 100_000  # Linux refuses a single argument of 128 KiB or more (MAX_ARG_STRLEN)


def _unplaceable(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The parameters that cannot become one command-line argument each, and why."""
    found = []
    for name, value in sorted(params.items()):
        if isinstance(value, str):
            if "\x00" in value:
                found.append((name, "must not contain NUL characters: a command line cannot carry them"))
            elif len(value.encode()) > MAX_ARGUMENT_BYTES:
                found.append((name, f"is longer than the {MAX_ARGUMENT_BYTES} bytes one argument may hold"))
        elif not isinstance(value, bool | int | float):
            found.append((name, "must be a string, number or boolean: it becomes one command-line argument"))
    return found


def validate_request(spec: AppSpec, params: dict[str, Any], inputs: Mapping[str, object]) -> dict[str, Any]:
    """Check parameters and input slots; return the parameters with defaults filled in.

    Raises Invalid listing every violation, each with a JSON pointer into the request body.
    """
    complete = {**spec.defaults(), **params}
    violations = [
        Violation(_pointer("params", *error.absolute_path), error.message)
        for error in sorted(spec.validator.iter_errors(complete), key=lambda e: [str(p) for p in e.absolute_path])
    ]
    if not violations:
        violations += [Violation(_pointer("params", name), why) for name, why in _unplaceable(complete)]
    for slot in sorted(set(inputs) - set(spec.inputs)):
        violations.append(Violation(_pointer("inputs", slot), f"{spec.name} has no input slot {slot!r}"))
    for slot, declared in spec.inputs.items():
        if declared.required and slot not in inputs:
            violations.append(Violation(_pointer("inputs", slot), f"input {slot!r} is required"))
    if violations:
        raise Invalid(f"the request does not fit app {spec.name} {spec.version}", violations)
    # JSON Schema counts 300.0 as an integer; the app's command line must see 300.
    properties = spec.parameters.get("properties", {})
    for name, value in complete.items():
        if isinstance(value, float) and value.is_integer() and properties.get(name, {}).get("type") == "integer":
            complete[name] = int(value)
    return complete


class AppConfigError(SystemExit):
    """An app definition on disk is unusable."""


def load_apps(directory: Path) -> dict[str, AppSpec]:
    """Read every ``*/app.json`` under ``directory``; exit naming the first bad file.

    Each folder must be named after its app, because ``{app_dir}`` is ``$APPS_DIR/<name>``
    on whichever runner runs it.
    """
    apps: dict[str, AppSpec] = {}
    for path in sorted(directory.glob("*/app.json")):
        try:
            spec = AppSpec.model_validate(json.loads(path.read_text()), context={"directory": path.parent.resolve()})
        except (OSError, json.JSONDecodeError, ValidationError) as exc:
            raise AppConfigError(f"app definition {path}: {exc}") from None
        if spec.name != path.parent.name:
            raise AppConfigError(f"app definition {path}: app {spec.name!r} must live in a folder named {spec.name}")
        apps[spec.name] = spec
    return apps


AppSource = Literal["directory", "api"]


def canonical(spec: AppSpec) -> str:
    """The definition as JSON text with sorted keys: two equal definitions give equal text."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class RegisteredApp(Record):
    """One version of an app in the registry. A version never changes; only ``disabled`` does.

    The definition is stored as JSON text: its JSON Schema may hold keys (``$defs``, dotted
    names) that cannot be Mongo field names.
    """

    id: str  # "name@version"
    name: str
    version: str
    spec: AppSpec
    source: AppSource
    registered: datetime
    registered_by: str
    disabled: datetime | None = None
    disabled_by: str | None = None

    @field_validator("spec", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        return _parsed(value) if isinstance(value, str) else value

    @field_serializer("spec")
    def _text(self, spec: AppSpec) -> str:
        return canonical(spec)


@lru_cache(maxsize=256)
def _parsed(text: str) -> AppSpec:
    # Checking a definition (its JSON Schema above all) takes milliseconds; a stored one is read on every submission.
    return AppSpec.model_validate(json.loads(text), context={"stored": True})


def version_id(name: str, version: str) -> str:
    """The registry id of one version of an app."""
    return f"{name}@{version}"


def matching_outputs(outputs: list[OutputFile], globs: list[str]) -> list[OutputFile]:
    """The outputs whose path matches any of ``globs``, in the same glob syntax as an app's ``outputs``."""
    patterns = [compile_glob(glob) for glob in globs]
    return [output for output in outputs if any(pattern.matches(output.path) for pattern in patterns)]
