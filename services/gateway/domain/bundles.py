"""Uploaded dataset bundles (zip, tar, tar.gz): every member checked before anything is stored.

The bundle is a local, seekable file. Sizes are counted while the bytes are read, never taken
from headers, and reading stops as soon as a limit is crossed. A bundle with a top-level
``metadata.txt`` beside a ``data/`` directory also yields that file, parsed as JSON: its metadata.
How each archive format is told apart and read is in ``bundle_formats``.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import tarfile
import zipfile
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from services.gateway.domain.bundle_formats import (
    CORRUPT,
    EXTENSIONS,
    NOT_UTF8,
    Kind,
    corrupt,
    detect,
    open_tar,
    refuse_file,
    tar_data,
    tar_stream,
    zip_name,
)
from shared.errors import Invalid, TooLarge, Violation

if TYPE_CHECKING:
    from _typeshed import SupportsRead

BLOCK = 2**20
MAX_VIOLATIONS = 50
MAX_METADATA_BYTES = 2**20
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar")
ARCHIVE_MAGIC = re.compile(
    rb"PK\x03\x04|PK\x05\x06|\x1f\x8b|BZh[1-9]1AY&SY|\xfd7zXZ\x00|7z\xbc\xaf\x27\x1c|Rar!\x1a\x07"
)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
DRIVE = re.compile(r"[A-Za-z]:")
NESTED = "nested archives are not accepted; unpack it first"
TAR_REFUSALS = {
    tarfile.SYMTYPE: "symbolic links are not accepted",
    tarfile.LNKTYPE: "hard links are not accepted",
    tarfile.CHRTYPE: "device nodes are not accepted",
    tarfile.BLKTYPE: "device nodes are not accepted",
    tarfile.FIFOTYPE: "FIFOs are not accepted",
}


@dataclass(frozen=True)
class BundleLimits:
    """How much a bundle may hold."""

    max_members: int = 10_000
    max_member_bytes: int = 8 * 2**30
    max_total_bytes: int = 32 * 2**30
    max_ratio: float = 200.0  # total uncompressed bytes / bundle file size, checked while decompressing
    ratio_after_bytes: int = 64 * 2**20  # small bundles of repetitive data compress well and are harmless


@dataclass(frozen=True)
class Member:
    """One regular file of a checked bundle."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Bundle:
    """A checked bundle: its regular files sorted by path, and its metadata.txt parsed (when beside data/)."""

    kind: Kind
    members: list[Member]
    metadata: dict[str, Any] | None


def _refuse_members(violations: list[Violation]) -> Invalid:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return Invalid(f"{first.pointer}: {first.detail}{more}", violations)


def _display(name: str) -> str:
    """A member name safe to show: undecodable bytes and control characters escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def _normalise(name: str) -> str:
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _name_problem(name: str) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UTF8
    if CONTROL.search(name):
        return "the name holds control characters"
    if name.startswith(("/", "\\")) or DRIVE.match(name):
        return "absolute paths are not accepted"
    if "\\" in name:
        return "backslashes are not accepted in names"
    if ".." in name.split("/"):
        return "'..' is not accepted in paths"
    return None


class _Scan:
    """One pass over an archive's members: names, types, bytes and limits, with violations collected."""

    def __init__(self, limits: BundleLimits, file_size: int) -> None:
        self.limits = limits
        self.file_size = file_size
        self.count = 0
        self.total = 0
        self.kinds: dict[str, str] = {}
        self.members: list[Member] = []
        self.violations: list[Violation] = []
        self.metadata_text: bytes | None = None

    def refuse(self, name: str, detail: str) -> None:
        self.violations.append(Violation(f"/members/{_display(name)}", detail))
        if len(self.violations) >= MAX_VIOLATIONS:
            raise _refuse_members(self.violations)

    def admit(self, name: str, kind: str, problem: str | None) -> str | None:
        """Check one member's name and type; return its path when its bytes are to be read."""
        self.count += 1
        if self.count > self.limits.max_members:
            raise TooLarge(f"the bundle holds more than {self.limits.max_members} members")
        path = _normalise(name)
        problem = problem or _name_problem(name)
        if problem is None and kind == "dir" and not path:
            return None  # "./", the root that `tar -C dir .` writes
        problem = problem or self.path_problem(path, kind)
        if problem is not None:
            self.refuse(name, problem)
            return None
        self.kinds[path] = kind
        return path if kind == "file" else None

    def path_problem(self, path: str, kind: str) -> str | None:
        if not path:
            return "the name is empty"
        if path in self.kinds and kind != self.kinds[path]:
            return f"{path} is both a file and a directory"
        if path in self.kinds:
            return f"{path} appears more than once"
        if kind == "file" and path.lower().endswith(ARCHIVE_SUFFIXES):
            return NESTED
        return None

    def read(self, name: str, path: str, stream: SupportsRead[bytes]) -> None:
        """Hash and count a member's bytes in blocks, stopping as soon as a limit is crossed."""
        digest, size, kept = hashlib.sha256(), 0, bytearray()
        while block := stream.read(BLOCK):
            if size == 0 and (ARCHIVE_MAGIC.match(block) or block[257:262] == b"ustar"):
                self.refuse(name, NESTED)
                return
            size += len(block)
            if size > self.limits.max_member_bytes:
                raise TooLarge(f"{_display(name)} is larger than {self.limits.max_member_bytes} bytes")
            self.count_bytes(len(block))
            digest.update(block)
            if path == "metadata.txt" and len(kept) <= MAX_METADATA_BYTES:
                kept += block[: MAX_METADATA_BYTES + 1 - len(kept)]
        self.members.append(Member(path, size, digest.hexdigest()))
        if path == "metadata.txt":
            self.metadata_text = bytes(kept)

    def count_bytes(self, size: int) -> None:
        self.total += size
        if self.total > self.limits.max_total_bytes:
            raise TooLarge(f"the bundle unpacks to more than {self.limits.max_total_bytes} bytes")
        if self.total > self.limits.ratio_after_bytes and self.total > self.limits.max_ratio * self.file_size:
            raise TooLarge(f"the bundle's compression ratio is above {self.limits.max_ratio:g}")

    def finish(self) -> dict[str, Any] | None:
        """Raise the violations found, if any; otherwise return the parsed metadata.txt, if any."""
        parents = {path.rsplit("/", depth)[0] for path in self.kinds for depth in range(1, path.count("/") + 1)}
        for parent in sorted(parents):
            if self.kinds.get(parent) == "file":
                self.refuse(parent, f"{parent} is both a file and a directory")
        if not self.members and not self.violations:
            raise refuse_file("the bundle holds no files")
        metadata = None
        beside_data = self.kinds.get("metadata.txt") == "file" and any(m.path.startswith("data/") for m in self.members)
        if beside_data and self.metadata_text is not None:
            metadata = self.parse_metadata(self.metadata_text)
        if self.violations:
            raise _refuse_members(self.violations)
        return metadata

    def parse_metadata(self, text: bytes) -> dict[str, Any] | None:
        if len(text) > MAX_METADATA_BYTES:
            self.refuse("metadata.txt", f"metadata.txt is larger than {MAX_METADATA_BYTES} bytes")
            return None
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            self.refuse("metadata.txt", f"metadata.txt is not JSON: {exc}")
            return None
        if isinstance(parsed, list):
            return {"entries": parsed}
        if isinstance(parsed, dict):
            return parsed
        self.refuse("metadata.txt", "metadata.txt must hold a JSON list or object")
        return None


def _zip_type_problem(info: zipfile.ZipInfo, file_type: int) -> str | None:
    if info.flag_bits & 0x1:
        return "encrypted members are not accepted"
    if file_type == stat.S_IFLNK:
        return "symbolic links are not accepted"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "only regular files and directories are accepted"
    return None


def _scan_zip(path: Path, scan: _Scan) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except UnicodeDecodeError as exc:  # a name flagged as UTF-8 that is not; zipfile cannot list the rest
        name = exc.object.decode("utf-8", "surrogateescape")
        raise _refuse_members([Violation(f"/members/{_display(name)}", NOT_UTF8)]) from exc
    with archive:
        if len(archive.infolist()) > scan.limits.max_members:
            raise TooLarge(f"the bundle holds more than {scan.limits.max_members} members")
        for info in archive.infolist():
            name, problem = zip_name(info)
            file_type = stat.S_IFMT(info.external_attr >> 16)
            if problem is None:
                problem = _zip_type_problem(info, file_type)
            is_dir = info.is_dir() or file_type == stat.S_IFDIR
            member_path = scan.admit(name, "dir" if is_dir else "file", problem)
            if member_path is None:
                continue
            try:
                data = archive.open(info)
            except NotImplementedError:
                scan.refuse(name, f"compression method {info.compress_type} is not supported")
                continue
            with data:
                scan.read(name, member_path, data)


def _scan_tar(path: Path, kind: Kind, scan: _Scan) -> None:
    with tar_stream(path, kind) as stream:
        with open_tar(stream) as archive:
            for info in archive:
                problem = TAR_REFUSALS.get(info.type)
                if problem is None and not (info.isreg() or info.isdir()):
                    problem = f"tar member type {info.type!r} is not accepted"
                member_path = scan.admit(info.name, "dir" if info.isdir() else "file", problem)
                if member_path is not None:
                    with tar_data(archive, info) as data:
                        scan.read(info.name, member_path, data)
        # reading to the end makes gzip check its length and CRC; whatever is there still counts
        while block := stream.read(BLOCK):
            scan.count_bytes(len(block))


def inspect_bundle(path: Path, filename: str, limits: BundleLimits = BundleLimits()) -> Bundle:
    """Check every member of the bundle; raise Invalid or TooLarge describing the first problems."""
    kind = detect(path)
    if not filename.lower().endswith(EXTENSIONS[kind]):
        raise refuse_file(f"the file is a {kind} but is named {_display(filename)}")
    scan = _Scan(limits, path.stat().st_size)
    try:
        if kind == "zip":
            _scan_zip(path, scan)
        else:
            _scan_tar(path, kind, scan)
    except CORRUPT as exc:
        raise corrupt(exc) from exc
    metadata = scan.finish()
    return Bundle(kind, sorted(scan.members, key=lambda member: member.path), metadata)


@contextmanager
def open_member(path: Path, bundle: Bundle, member: Member) -> Iterator[BinaryIO]:
    """A reader over one checked member's bytes (for streaming it into object storage)."""
    if member not in bundle.members:
        raise ValueError(f"{member.path} is not a member of this bundle")
    with closing(iter_members(path, Bundle(bundle.kind, [member], None))) as found:
        _, data = next(found)  # iter_members raises ValueError when the member is not there
        yield data


def iter_members(path: Path, bundle: Bundle) -> Generator[tuple[Member, BinaryIO], None, None]:
    """Every checked member with a reader over its bytes, in one pass over the archive.

    Storing members one ``open_member`` at a time would decompress a tar.gz from its start for
    each; this reads it once. Each reader is valid until the next member is asked for.
    """
    wanted = {member.path: member for member in bundle.members}
    if bundle.kind == "zip":
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                member = None if info.is_dir() else wanted.pop(_normalise(zip_name(info)[0]), None)
                if member is not None:
                    with archive.open(info) as data:
                        yield member, cast(BinaryIO, data)
                if not wanted:
                    return
    else:
        with tar_stream(path, bundle.kind) as stream, open_tar(stream) as archive:
            for entry in archive:
                member = wanted.pop(_normalise(entry.name), None) if entry.isreg() else None
                if member is not None:
                    with tar_data(archive, entry) as data:
                        yield member, cast(BinaryIO, data)
                if not wanted:
                    return
    if wanted:
        raise ValueError(f"{min(wanted)} is no longer in {path}")
