from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import stat
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Literal

import pytest

from services.gateway.domain.bundles import BundleLimits, Member, inspect_bundle, iter_members, open_member
from shared.errors import Invalid, TooLarge, Violation

FILES = {
    "readme.txt": b"hello\n",
    "data/grid.csv": b"x,y\n1,2\n",
    "data/deep/er/values.bin": bytes(range(256)) * 40,
}
DIRS = ["data", "data/deep", "data/deep/er"]


def tar_entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def write_tar(path: Path, *entries: tarfile.TarInfo | tuple[str, bytes]) -> Path:
    """A tar (gzip-compressed when the name says so) of (name, bytes) files and hand-made TarInfos."""
    mode: Literal["w", "w:gz"] = "w:gz" if path.name.lower().endswith((".gz", ".tgz")) else "w"
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                archive.addfile(tar_entry(*entry), io.BytesIO(entry[1]))
    return path


def write_zip(path: Path, *entries: tuple[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def write_bundle(path: Path, files: dict[str, bytes], dirs: list[str] = DIRS) -> Path:
    if path.name.endswith(".zip"):
        return write_zip(path, *[(f"{name}/", b"") for name in dirs], *files.items())
    return write_tar(path, *[tar_entry(name, kind=tarfile.DIRTYPE) for name in dirs], *files.items())


def patch(path: Path, old: bytes, new: bytes) -> Path:
    content = path.read_bytes()
    assert old in content
    path.write_bytes(content.replace(old, new))
    return path


def refused(path: Path, filename: str | None = None) -> list[Violation]:
    with pytest.raises(Invalid) as caught:
        inspect_bundle(path, filename or path.name)
    return caught.value.violations


def refused_member(path: Path) -> Violation:
    violations = refused(path)
    assert len(violations) == 1, violations
    return violations[0]


def file_problem(path: Path, filename: str | None = None) -> str:
    violations = refused(path, filename)
    assert [violation.pointer for violation in violations] == ["/file"]
    return violations[0].detail


@pytest.mark.parametrize(
    ("filename", "kind"),
    [("bundle.zip", "zip"), ("bundle.tar", "tar"), ("bundle.tar.gz", "tar.gz"), ("BUNDLE.TGZ", "tar.gz")],
)
def test_valid_bundle_lists_every_file_with_its_size_and_sha256(tmp_path: Path, filename: str, kind: str) -> None:
    bundle = inspect_bundle(write_bundle(tmp_path / filename, FILES), filename)
    assert bundle.kind == kind
    assert bundle.members == [
        Member(name, len(data), hashlib.sha256(data).hexdigest()) for name, data in sorted(FILES.items())
    ]
    assert bundle.metadata is None


@pytest.mark.parametrize("filename", ["bundle.zip", "bundle.tar", "bundle.tar.gz"])
def test_open_member_returns_the_exact_bytes(tmp_path: Path, filename: str) -> None:
    path = write_bundle(tmp_path / filename, FILES)
    bundle = inspect_bundle(path, filename)
    for member in bundle.members:
        with open_member(path, bundle, member) as reader:
            assert reader.read() == FILES[member.path]


@pytest.mark.parametrize("filename", ["bundle.zip", "bundle.tar", "bundle.tar.gz"])
def test_iter_members_yields_every_member_with_its_exact_bytes_in_one_pass(tmp_path: Path, filename: str) -> None:
    path = write_bundle(tmp_path / filename, FILES)
    bundle = inspect_bundle(path, filename)
    found = {member.path: data.read() for member, data in iter_members(path, bundle)}
    assert found == FILES


def test_iter_members_notices_a_member_that_is_gone(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "bundle.tar", FILES)
    bundle = inspect_bundle(path, "bundle.tar")
    write_bundle(path, {"readme.txt": FILES["readme.txt"]})
    with pytest.raises(ValueError, match="no longer in"):
        list(iter_members(path, bundle))


def test_utf8_zip_name_without_the_flag_can_be_read_back(tmp_path: Path) -> None:
    path = patch(write_zip(tmp_path / "b.zip", ("cafXY.txt", b"x")), b"cafXY.txt", "café.txt".encode())
    bundle = inspect_bundle(path, "b.zip")
    with open_member(path, bundle, bundle.members[0]) as reader:
        assert reader.read() == b"x"
    assert [(member.path, data.read()) for member, data in iter_members(path, bundle)] == [("café.txt", b"x")]


def test_symlink_with_a_utf8_name_without_the_flag_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("linkXY")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = patch(write_zip(tmp_path / "b.zip", (info, b"/etc/passwd")), b"linkXY", "linké".encode())
    assert refused_member(path) == Violation("/members/linké", "symbolic links are not accepted")


def test_open_member_refuses_a_member_of_another_bundle(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "bundle.tar", FILES)
    bundle = inspect_bundle(path, "bundle.tar")
    with pytest.raises(ValueError, match="not a member"), open_member(path, bundle, Member("other.txt", 1, "0" * 64)):
        pass


def test_dot_segments_and_doubled_slashes_are_normalised(tmp_path: Path) -> None:
    root, data = tar_entry(".", kind=tarfile.DIRTYPE), tar_entry("./data", kind=tarfile.DIRTYPE)
    path = write_tar(tmp_path / "b.tar", root, data, ("./data//grid.csv", b"1"), ("./readme.txt", b"2"))
    assert [member.path for member in inspect_bundle(path, "b.tar").members] == ["data/grid.csv", "readme.txt"]


@pytest.mark.parametrize("name", ["../evil", "data/../../evil", "data/.."])
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    violation = refused_member(write_tar(tmp_path / "b.tar", (name, b"x")))
    assert violation == Violation(f"/members/{name}", "'..' is not accepted in paths")


def test_file_with_an_empty_name_is_refused(tmp_path: Path) -> None:
    assert refused_member(write_tar(tmp_path / "b.tar", ("./", b"x"))) == Violation("/members/./", "the name is empty")


def test_absolute_path_is_refused(tmp_path: Path) -> None:
    violation = refused_member(write_tar(tmp_path / "b.tar", ("/etc/passwd", b"root")))
    assert violation == Violation("/members//etc/passwd", "absolute paths are not accepted")


@pytest.mark.parametrize("name", ["C:\\Windows\\evil.dll", "c:/evil.txt", "\\evil.txt", "\\\\server\\share\\x"])
def test_windows_absolute_path_is_refused(tmp_path: Path, name: str) -> None:
    violation = refused_member(write_zip(tmp_path / "b.zip", (name, b"x")))
    assert violation.detail == "absolute paths are not accepted"


def test_backslash_in_a_name_is_refused(tmp_path: Path) -> None:
    violation = refused_member(write_zip(tmp_path / "b.zip", ("data\\grid.csv", b"x")))
    assert violation == Violation("/members/data\\grid.csv", "backslashes are not accepted in names")


def test_control_character_in_a_name_is_refused_and_shown_escaped(tmp_path: Path) -> None:
    violation = refused_member(write_tar(tmp_path / "b.tar", ("line\nbreak.txt", b"x")))
    assert violation == Violation("/members/line\\nbreak.txt", "the name holds control characters")


def test_symlink_member_is_refused_in_a_tar(tmp_path: Path) -> None:
    path = write_tar(
        tmp_path / "b.tar", ("a.txt", b"x"), tar_entry("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")
    )
    assert refused_member(path) == Violation("/members/link", "symbolic links are not accepted")


def test_symlink_member_is_refused_in_a_zip(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = write_zip(tmp_path / "b.zip", ("a.txt", b"x"), (link, b"/etc/passwd"))
    assert refused_member(path) == Violation("/members/link", "symbolic links are not accepted")


def test_zip_member_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = zipfile.ZipInfo("pipe")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    path = write_zip(tmp_path / "b.zip", ("a.txt", b"x"), (fifo, b""))
    assert refused_member(path) == Violation("/members/pipe", "only regular files and directories are accepted")


def test_hardlink_member_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("a.txt", b"x"), tar_entry("b.txt", kind=tarfile.LNKTYPE, linkname="a.txt"))
    assert refused_member(path) == Violation("/members/b.txt", "hard links are not accepted")


def test_device_node_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("a.txt", b"x"), tar_entry("null", kind=tarfile.CHRTYPE))
    assert refused_member(path) == Violation("/members/null", "device nodes are not accepted")


def test_fifo_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("a.txt", b"x"), tar_entry("pipe", kind=tarfile.FIFOTYPE))
    assert refused_member(path) == Violation("/members/pipe", "FIFOs are not accepted")


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("a.txt", b"x"), ("a.txt", b"y"))
    assert refused_member(path) == Violation("/members/a.txt", "a.txt appears more than once")


def test_duplicate_after_normalisation_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("data/a.txt", b"x"), ("./data//a.txt", b"y"))
    assert refused_member(path) == Violation("/members/./data//a.txt", "data/a.txt appears more than once")


def test_file_and_directory_with_the_same_path_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("data/", b""), ("data", b"x"))
    assert refused_member(path) == Violation("/members/data", "data is both a file and a directory")


def test_file_used_as_a_parent_directory_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("data", b"x"), ("data/a.csv", b"y"), ("data/b.csv", b"z"))
    assert refused_member(path) == Violation("/members/data", "data is both a file and a directory")


def test_names_differing_only_in_case_are_accepted(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("A.txt", b"x"), ("a.txt", b"y"))
    assert [member.path for member in inspect_bundle(path, "b.tar").members] == ["A.txt", "a.txt"]


def test_zip_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("zeros.bin", bytes(10 * 2**20)))
    assert path.stat().st_size < 20_000
    with pytest.raises(TooLarge, match="compression ratio"):
        inspect_bundle(path, "b.zip", BundleLimits(ratio_after_bytes=2**20))


def test_small_repetitive_bundle_is_not_taken_for_a_bomb(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("zeros.csv", b"0,0,0\n" * 20_000))
    assert inspect_bundle(path, "b.zip").members[0].size == 120_000


def test_tar_gz_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar.gz", ("zeros.bin", bytes(4 * 2**20)))
    with pytest.raises(TooLarge, match="compression ratio"):
        inspect_bundle(path, "b.tar.gz", BundleLimits(max_ratio=50, ratio_after_bytes=2**20))


def test_member_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("small.bin", b"x" * 100), ("big.bin", b"x" * (2**20 + 1)))
    with pytest.raises(TooLarge, match=r"big\.bin is larger than 1048576 bytes"):
        inspect_bundle(path, "b.tar", BundleLimits(max_member_bytes=2**20))


def test_total_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", *[(f"part{i}.bin", b"x" * 400_000) for i in range(3)])
    with pytest.raises(TooLarge, match="unpacks to more than 1000000 bytes"):
        inspect_bundle(path, "b.tar", BundleLimits(max_total_bytes=1_000_000))


def test_too_many_members_are_refused_in_a_tar(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", *[(f"{i}.txt", b"x") for i in range(4)])
    with pytest.raises(TooLarge, match="more than 3 members"):
        inspect_bundle(path, "b.tar", BundleLimits(max_members=3))


def test_too_many_members_are_refused_in_a_zip(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", *[(f"{i}.txt", b"x") for i in range(4)])
    with pytest.raises(TooLarge, match="more than 3 members"):
        inspect_bundle(path, "b.zip", BundleLimits(max_members=3))


@pytest.mark.parametrize("content", ["zip", "gzip", "tar"])
def test_nested_archive_is_refused_by_its_content(tmp_path: Path, content: str) -> None:
    inner = {
        "zip": write_zip(tmp_path / "inner.zip", ("a.txt", b"x")).read_bytes(),
        "gzip": gzip.compress(b"x,y\n"),
        "tar": write_tar(tmp_path / "inner.tar", ("a.txt", b"x")).read_bytes(),
    }[content]
    path = write_tar(tmp_path / "b.tar", ("data/innocent.bin", inner))
    assert refused_member(path) == Violation(
        "/members/data/innocent.bin", "nested archives are not accepted; unpack it first"
    )


@pytest.mark.parametrize("name", ["inner.zip", "inner.tar", "inner.TAR.GZ", "inner.tgz", "x.csv.gz", "x.7z", "x.rar"])
def test_nested_archive_is_refused_by_its_name(tmp_path: Path, name: str) -> None:
    violation = refused_member(write_zip(tmp_path / "b.zip", (name, b"just text")))
    assert violation == Violation(f"/members/{name}", "nested archives are not accepted; unpack it first")


def test_non_utf8_name_is_refused_in_a_tar(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", ("caf\udce9.txt", b"x"))
    assert refused_member(path) == Violation("/members/caf\\xe9.txt", "the name is not valid UTF-8")


def test_non_utf8_zip_name_without_the_utf8_flag_is_refused(tmp_path: Path) -> None:
    path = patch(write_zip(tmp_path / "b.zip", ("cafX.txt", b"x")), b"cafX.txt", b"caf\xe9.txt")
    assert refused_member(path) == Violation("/members/caf\\xe9.txt", "the name is not valid UTF-8")


def test_utf8_zip_name_without_the_flag_is_accepted_as_info_zip_writes_it(tmp_path: Path) -> None:
    path = patch(write_zip(tmp_path / "b.zip", ("cafXY.txt", b"x")), b"cafXY.txt", "café.txt".encode())
    assert [member.path for member in inspect_bundle(path, "b.zip").members] == ["café.txt"]


def test_zip_name_flagged_utf8_that_is_not_is_refused(tmp_path: Path) -> None:
    path = patch(write_zip(tmp_path / "b.zip", ("café.txt", b"x")), "é".encode(), b"\xff\xfe")
    assert refused_member(path) == Violation("/members/caf\\xff\\xfe.txt", "the name is not valid UTF-8")


def test_utf8_names_are_accepted(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("données/café.csv", b"x"))
    assert [member.path for member in inspect_bundle(path, "b.zip").members] == ["données/café.csv"]


def test_member_violations_are_collected_in_one_pass(tmp_path: Path) -> None:
    path = write_tar(
        tmp_path / "b.tar",
        ("../evil", b"x"),
        ("good.txt", b"y"),
        tar_entry("link", kind=tarfile.SYMTYPE, linkname="good.txt"),
        tar_entry("pipe", kind=tarfile.FIFOTYPE),
    )
    with pytest.raises(Invalid) as caught:
        inspect_bundle(path, "b.tar")
    assert [v.pointer for v in caught.value.violations] == ["/members/../evil", "/members/link", "/members/pipe"]
    assert "/members/../evil" in caught.value.detail and "2 more" in caught.value.detail


def test_violations_stop_at_fifty(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar", *[(f"../{i}", b"x") for i in range(80)])
    assert len(refused(path)) == 50


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    path.write_bytes(b"")
    assert file_problem(path) == "the file is empty"


@pytest.mark.parametrize("filename", ["b.zip", "b.tar", "b.tar.gz"])
def test_archive_without_files_is_refused(tmp_path: Path, filename: str) -> None:
    path = write_bundle(tmp_path / filename, {}, dirs=["empty"] if filename != "b.zip" else [])
    assert file_problem(path) == "the bundle holds no files"


def test_truncated_tar_gz_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar.gz", ("noise.bin", random.Random(1).randbytes(200_000)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert file_problem(path).startswith("the archive is truncated or corrupt: ")


def test_truncated_zip_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("noise.bin", random.Random(1).randbytes(200_000)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert file_problem(path).startswith("the archive is truncated or corrupt: ")


@pytest.mark.parametrize("cut", [1024, 1024 + 300])
def test_tar_cut_at_or_inside_a_header_is_refused(tmp_path: Path, cut: int) -> None:
    path = write_tar(tmp_path / "b.tar", ("a.bin", b"a" * 512), ("b.bin", b"b" * 512))
    path.write_bytes(path.read_bytes()[:cut])
    assert file_problem(path).startswith("the archive is truncated or corrupt: ")


def test_tar_gz_with_a_bad_gzip_crc_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar.gz", ("a.txt", b"hello"))
    content = bytearray(path.read_bytes())
    content[-8] ^= 0xFF
    path.write_bytes(bytes(content))
    assert "CRC" in file_problem(path)


def test_zip_with_a_bad_crc_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("a.txt", b"hello world"), method=zipfile.ZIP_STORED)
    patch(path, b"hello world", b"jello world")
    assert "Bad CRC-32" in file_problem(path)


def test_zip_header_overstating_a_size_is_not_trusted(tmp_path: Path) -> None:
    data = b"x" * 1000
    path = write_zip(tmp_path / "b.zip", ("a.txt", data))
    content = bytearray(path.read_bytes())
    central = content.index(b"PK\x01\x02")
    struct.pack_into("<I", content, central + 24, 0xFFFFFF00)
    path.write_bytes(bytes(content))
    with zipfile.ZipFile(path) as lying:
        assert lying.getinfo("a.txt").file_size == 0xFFFFFF00
    bundle = inspect_bundle(path, "b.zip", BundleLimits(max_member_bytes=2000))
    assert bundle.members == [Member("a.txt", 1000, hashlib.sha256(data).hexdigest())]


def test_zip_header_understating_a_size_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("a.txt", b"x" * 1000))
    content = bytearray(path.read_bytes())
    struct.pack_into("<I", content, content.index(b"PK\x01\x02") + 24, 10)
    path.write_bytes(bytes(content))
    assert file_problem(path).startswith("the archive is truncated or corrupt: ")


def test_encrypted_zip_member_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("secret.txt", b"x"), method=zipfile.ZIP_STORED)
    content = bytearray(path.read_bytes())
    content[6] |= 0x1
    content[content.index(b"PK\x01\x02") + 8] |= 0x1
    path.write_bytes(bytes(content))
    assert refused_member(path) == Violation("/members/secret.txt", "encrypted members are not accepted")


def test_zip_member_with_an_unknown_compression_method_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("a.txt", b"x"), ("b.txt", b"y"), method=zipfile.ZIP_STORED)
    content = bytearray(path.read_bytes())
    struct.pack_into("<H", content, 8, 97)
    struct.pack_into("<H", content, content.index(b"PK\x01\x02") + 10, 97)
    path.write_bytes(bytes(content))
    assert refused_member(path) == Violation("/members/a.txt", "compression method 97 is not supported")


def test_zip_named_as_a_tar_gz_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", ("a.txt", b"x"))
    assert file_problem(path, "data.tar.gz") == "the file is a zip but is named data.tar.gz"


def test_tar_gz_named_as_a_zip_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "b.tar.gz", ("a.txt", b"x"))
    assert file_problem(path, "data.zip") == "the file is a tar.gz but is named data.zip"


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("data.zip", random.Random(2).randbytes(4096)),
        ("data.tar", b"x,y\n1,2\n" * 100),
        ("data.tar.gz", gzip.compress(b"x,y\n1,2\n" * 100)),
    ],
    ids=["random-bytes", "csv", "gzipped-csv"],
)
def test_file_that_is_not_an_archive_is_refused(tmp_path: Path, filename: str, content: bytes) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    assert file_problem(path) == "not a zip or tar archive"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [([{"key": "a"}], {"entries": [{"key": "a"}]}), ({"project": "p1"}, {"project": "p1"})],
    ids=["list", "object"],
)
def test_pacifica_bundle_yields_its_metadata(tmp_path: Path, metadata: object, expected: object) -> None:
    files = {"metadata.txt": json.dumps(metadata).encode(), "data/a.csv": b"1"}
    bundle = inspect_bundle(write_bundle(tmp_path / "b.tar", files, dirs=["data"]), "b.tar")
    assert bundle.metadata == expected
    assert [member.path for member in bundle.members] == ["data/a.csv", "metadata.txt"]


def test_pacifica_metadata_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "b.zip", {"metadata.txt": b"project: p1", "data/a.csv": b"1"}, dirs=["data"])
    violation = refused_member(path)
    assert violation.pointer == "/members/metadata.txt"
    assert violation.detail.startswith("metadata.txt is not JSON: ")


def test_pacifica_metadata_that_is_not_a_list_or_object_is_refused(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "b.tar", {"metadata.txt": b"42", "data/a.csv": b"1"}, dirs=["data"])
    assert refused_member(path) == Violation("/members/metadata.txt", "metadata.txt must hold a JSON list or object")


def test_pacifica_metadata_over_one_mib_is_refused(tmp_path: Path) -> None:
    metadata = json.dumps(["x" * 1000] * 1100).encode()
    path = write_bundle(tmp_path / "b.tar", {"metadata.txt": metadata, "data/a.csv": b"1"}, dirs=["data"])
    assert refused_member(path) == Violation("/members/metadata.txt", "metadata.txt is larger than 1048576 bytes")


def test_metadata_outside_the_pacifica_layout_is_not_parsed(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "b.tar", {"metadata.txt": b"not json", "other/a.csv": b"1"}, dirs=[])
    bundle = inspect_bundle(path, "b.tar")
    assert bundle.metadata is None
    assert len(bundle.members) == 2
