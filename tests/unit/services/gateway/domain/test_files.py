"""What is checked of a file before its bytes are received (pure logic): its name first, then its declared size."""

from __future__ import annotations

import pytest

from services.gateway.domain.files import check_name, check_upload
from shared.errors import BadRequest, TooLarge


@pytest.mark.parametrize("name", ["grid.csv", "höhe grid.csv", ".hidden", "x" * 255])
def test_ordinary_names_are_kept(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", [None, "", ".", "..", "a/b", "a\\b", "tab\there", "x" * 256, "é" * 128])
def test_names_that_are_missing_or_unsafe_are_bad_requests(name: str | None) -> None:
    with pytest.raises(BadRequest):
        check_name(name)


def test_a_declared_size_over_the_limit_is_too_large() -> None:
    with pytest.raises(TooLarge, match="limited to 10 bytes"):
        check_upload("a.bin", declared_size=11, max_bytes=10)


def test_a_declared_size_at_the_limit_or_none_declared_passes() -> None:
    assert check_upload("a.bin", declared_size=10, max_bytes=10) == "a.bin"
    assert check_upload("a.bin", declared_size=None, max_bytes=10) == "a.bin"


def test_the_name_is_checked_before_the_declared_size() -> None:
    with pytest.raises(BadRequest, match="say what the file is called"):
        check_upload(None, declared_size=11, max_bytes=10)
