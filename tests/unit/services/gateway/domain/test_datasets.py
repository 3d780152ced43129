from __future__ import annotations

import pytest

from services.gateway.domain.bundles import Bundle, Member
from services.gateway.domain.datasets import check_storable
from shared.errors import Invalid, TooLarge

PREFIX = "datasets/01kmzzzzzzzzzzzzzzzzzzzzzz/"


def bundle_of(*paths: str) -> Bundle:
    return Bundle("zip", [Member(path, 1, "0" * 64) for path in paths], None)


def test_ordinary_paths_can_be_stored() -> None:
    check_storable(bundle_of("model/run.tcf", "model/data/flows.csv", "é" * 127), PREFIX)


def test_a_path_too_long_for_an_s3_key_is_refused_naming_it() -> None:
    path = "/".join(["d" * 200] * 5)
    with pytest.raises(Invalid) as caught:
        check_storable(bundle_of("ok.txt", path), PREFIX)
    assert [v.pointer for v in caught.value.violations] == [f"/members/{path}"]


def test_a_name_too_long_for_a_file_system_is_refused() -> None:
    with pytest.raises(Invalid, match="longer than 255 bytes"):
        check_storable(bundle_of("data/" + "é" * 128), PREFIX)


def test_a_member_list_too_long_for_one_record_is_refused() -> None:
    paths = [f"{n:06}/" + "/".join(["x" * 200] * 4) for n in range(14_000)]
    with pytest.raises(TooLarge, match="too long to record"):
        check_storable(bundle_of(*paths), PREFIX)
