"""How presigned uploads are cut into parts and how their parts are checked: pure logic, no servers."""

from __future__ import annotations

import pytest

from services.gateway.uploads import MAX_PARTS, PartRef, check_parts, plan_parts
from shared.errors import Invalid, TooLarge

MiB, GiB = 2**20, 2**30


def test_parts_have_the_minimum_size_while_that_keeps_them_under_ten_thousand() -> None:
    assert plan_parts(11 * MiB, min_part_size=5 * MiB) == (5 * MiB, 3)
    assert plan_parts(10 * MiB, min_part_size=5 * MiB) == (5 * MiB, 2)
    assert plan_parts(0, min_part_size=5 * MiB) == (5 * MiB, 1)


def test_huge_files_get_larger_whole_mib_parts_and_never_more_than_ten_thousand() -> None:
    for size in (100 * GiB, 1000 * GiB + 1, 4 * 2**40):
        part_size, count = plan_parts(size, min_part_size=8 * MiB)
        assert count <= MAX_PARTS and part_size % MiB == 0 and part_size * count >= size
        assert part_size * (count - 1) < size


def test_files_beyond_what_s3_can_assemble_are_too_large() -> None:
    with pytest.raises(TooLarge):
        plan_parts(MAX_PARTS * 5 * GiB + 1, min_part_size=8 * MiB)


def test_parts_must_be_all_of_them_in_order() -> None:
    def parts(*numbers: int) -> list[PartRef]:
        return [PartRef(number=n, etag=f'"e{n}"') for n in numbers]

    assert check_parts(parts(1, 2, 3), 3) == [(1, '"e1"'), (2, '"e2"'), (3, '"e3"')]
    for wrong in (None, [], parts(1, 2), parts(2, 1, 3), parts(1, 2, 2, 3), parts(1, 2, 3, 4)):
        with pytest.raises(Invalid) as caught:
            check_parts(wrong, 3)
        assert caught.value.violations[0].pointer == "/parts"
