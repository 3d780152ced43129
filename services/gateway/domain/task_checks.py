"""What a TES task may ask for: its bounds, paths, URLs, images and backend parameters, checked before it is stored.

Every check raises ``Invalid`` pointing at the offending field (the TES surface answers 400),
except quern:// inputs that are not the caller's, which are ``NotFound`` like native inputs.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from services.gateway.domain.submission import check_inputs
from shared.errors import Invalid, Violation
from shared.globs import check_glob
from shared.models import DatasetInput, InputValue, TaskInput, TaskOutput, TaskPolicy, TaskSpec
from shared.models.webhooks import check_webhook_url
from shared.outbound import Network, Refused, resolve
from shared.store.datasets import DatasetStore
from shared.store.files import FileStore

MAX_EXECUTORS = 20
MAX_FILES = 1000  # inputs, and outputs
MAX_CONTENT_BYTES = 2**20
MAX_TAGS = 100
MAX_VOLUMES = 100
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
# The backend parameters quern reads (keys are case-insensitive); any other is dropped, or refused when strict.
BACKEND_PARAMETERS = ("queue", "priority", "timeout_seconds")
_ID = r"[0-9a-z]{26}"
_FILE_URL = re.compile(rf"^quern://files/({_ID})$")
_DATASET_URL = re.compile(rf"^quern://datasets/({_ID})(?:/(.+))?$")
_WILDCARD = re.compile(r"[*?\[]")


def _refuse(pointer: str, detail: str) -> Invalid:
    return Invalid(f"{pointer.lstrip('/')}: {detail}", [Violation(pointer, detail)])


def check_path(path: str | None, pointer: str) -> None:
    """``path`` must be absolute and normalized: no ``.``, ``..`` or empty segments (a trailing ``/`` is fine)."""
    if path is None:
        return
    segments = path.rstrip("/").split("/")[1:]
    if not path.startswith("/") or any(s in ("", ".", "..") for s in segments) or "\x00" in path:
        raise _refuse(pointer, f"{path!r} is not an absolute normalized path (an output path outside the job?)")


def relative_name(name: str) -> bool:
    """Whether ``name`` is a relative path that stays inside where it is put (no ``..``, not absolute)."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def check_bounds(task: TaskSpec) -> None:
    """At most 20 executors, 1000 inputs and outputs, 100 tags and volumes; inline content up to 1 MiB each."""
    counted = (
        ("/executors", len(task.executors), MAX_EXECUTORS),
        ("/inputs", len(task.inputs), MAX_FILES),
        ("/outputs", len(task.outputs), MAX_FILES),
        ("/tags", len(task.tags), MAX_TAGS),
        ("/volumes", len(task.volumes), MAX_VOLUMES),
    )
    for pointer, n, most in counted:
        if n > most:
            raise _refuse(pointer, f"at most {most} allowed, not {n}")
    for index, one in enumerate(task.inputs):
        if one.content is not None and len(one.content.encode()) > MAX_CONTENT_BYTES:
            raise _refuse(f"/inputs/{index}/content", f"inline content is limited to {MAX_CONTENT_BYTES} bytes")


def check_layout(task: TaskSpec) -> None:
    """Every path in the containers is absolute and normalized; each input has either a url or content."""
    for index, executor in enumerate(task.executors):
        for field in ("workdir", "stdin", "stdout", "stderr"):
            check_path(getattr(executor, field), f"/executors/{index}/{field}")
    for index, one in enumerate(task.inputs):
        check_path(one.path, f"/inputs/{index}/path")
        if (one.url is None) == (one.content is None):
            raise _refuse(f"/inputs/{index}", "give either url or content, not both nor neither")
    for index, out in enumerate(task.outputs):
        check_path(out.path, f"/outputs/{index}/path")
        if _WILDCARD.search(out.path):
            if out.path_prefix is None or not out.path.startswith(out.path_prefix):
                raise _refuse(
                    f"/outputs/{index}/path_prefix", "a path with wildcards needs the path_prefix it starts with"
                )
            check_path(out.path_prefix, f"/outputs/{index}/path_prefix")
            try:
                check_glob(out.path)
            except ValueError as exc:
                raise _refuse(f"/outputs/{index}/path", str(exc)) from None
    for index, volume in enumerate(task.volumes):
        check_path(volume, f"/volumes/{index}")


def check_images(task: TaskSpec, policy: TaskPolicy) -> None:
    """Every executor's image must be one the policy allows (TES_IMAGES)."""
    for index, executor in enumerate(task.executors):
        if not policy.allows_image(executor.image):
            detail = f"image {executor.image!r} is not allowed here (an admin allows images with TES_IMAGES)"
            raise _refuse(f"/executors/{index}/image", detail)


def _check_bucket(url: str, pointer: str, policy: TaskPolicy) -> None:
    parts = urlsplit(url)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key or parts.query or parts.fragment:
        raise _refuse(pointer, f"{url!r} is not s3://bucket/key")
    if not policy.allows_bucket(parts.netloc):
        raise _refuse(
            pointer, f"bucket {parts.netloc!r} is not allowed here (an admin allows buckets with TES_S3_BUCKETS)"
        )


def check_outputs(outputs: list[TaskOutput], policy: TaskPolicy) -> None:
    """Each output goes to an allowed ``s3://bucket/key``, or stays in quern as ``quern://outputs/RELATIVE``."""
    for index, out in enumerate(outputs):
        pointer = f"/outputs/{index}/url"
        if out.url.startswith("s3://"):
            _check_bucket(out.url, pointer, policy)
        elif out.url.startswith("quern://outputs/"):
            if not relative_name(out.url.removeprefix("quern://outputs/").rstrip("/") or ""):
                raise _refuse(pointer, f"{out.url!r}: name a relative path without '..' after quern://outputs/")
        else:
            raise _refuse(pointer, f"{out.url!r}: outputs go to s3:// or quern://outputs/")


async def check_input_urls(
    inputs: list[TaskInput],
    *,
    owner: str,
    policy: TaskPolicy,
    networks: tuple[Network, ...],
    files: FileStore,
    datasets: DatasetStore,
) -> None:
    """s3:// inputs from allowed buckets, http(s):// ones from public hosts, quern:// ones the owner's (404)."""
    owned: dict[str, InputValue] = {}
    resolved: set[tuple[str, int | None]] = set()  # each host is looked up once, however many inputs name it
    for index, one in enumerate(inputs):
        url, pointer = one.url, f"/inputs/{index}/url"
        if url is None:
            continue
        if url.startswith("s3://"):
            _check_bucket(url, pointer, policy)
        elif url.startswith(("http://", "https://")):
            await _check_public(url, pointer, networks, resolved)
        elif found := _FILE_URL.match(url):
            owned[f"/inputs/{index}"] = found.group(1)
        elif found := _DATASET_URL.match(url):
            owned[f"/inputs/{index}"] = DatasetInput(dataset=found.group(1), path=found.group(2))
        else:
            detail = f"{url!r}: inputs come from s3://, http(s)://, quern://files/ID or quern://datasets/ID[/member]"
            raise _refuse(pointer, detail)
    if owned:
        await check_inputs([owned], owner=owner, files=files, datasets=datasets)


async def _check_public(
    url: str, pointer: str, networks: tuple[Network, ...], resolved: set[tuple[str, int | None]]
) -> None:
    try:
        check_webhook_url(url)
    except ValueError as exc:
        raise _refuse(pointer, f"{url!r} {exc}") from None
    parts = urlsplit(url)
    if (parts.hostname or "", parts.port) in resolved:
        return
    resolved.add((parts.hostname or "", parts.port))
    try:  # resolved off the event loop (getaddrinfo in the loop's executor); the runner checks again when it fetches
        await resolve(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), networks)
    except Refused as exc:
        raise _refuse(pointer, f"{url!r} is refused: {exc.detail}") from None


def backend_parameters(task: TaskSpec) -> dict[str, str]:
    """The backend parameters quern reads, by lower-case key; unknown ones are refused when strict."""
    resources = task.resources
    if resources is None:
        return {}
    known = {
        key.lower(): value for key, value in resources.backend_parameters.items() if key.lower() in BACKEND_PARAMETERS
    }
    unknown = sorted(key for key in resources.backend_parameters if key.lower() not in BACKEND_PARAMETERS)
    if unknown and resources.backend_parameters_strict:
        supported = ", ".join(BACKEND_PARAMETERS)
        raise _refuse("/resources/backend_parameters", f"unsupported {', '.join(unknown)} (supported: {supported})")
    return known


def whole_number(params: dict[str, str], key: str, low: int, high: int) -> int | None:
    """The backend parameter ``key`` as a whole number from ``low`` to ``high``, or None if not given."""
    raw = params.get(key)
    if raw is None:
        return None
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise _refuse(f"/resources/backend_parameters/{key}", f"must be a whole number from {low} to {high}")
    return int(raw)
