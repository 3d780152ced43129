from __future__ import annotations

import itertools
import random
import re
import time

import pytest

from shared.globs import MAX_GLOB_CHARS, MAX_GLOB_WILDCARDS, check_glob, compile_glob


def regex_glob(pattern: str) -> re.Pattern[str]:
    """The matcher globs had before (a regex, ``**/`` as ``(?:.+/)?``): the reference for ordinary globs."""
    out = []
    for part in re.split(r"(\*\*/|\*|\?)", pattern):
        out.append({"**/": "(?:.+/)?", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part)))
    return re.compile("".join(out) + r"\Z")


def ordinary(pattern: str) -> bool:
    """A glob whose ``**`` followed by ``/`` is a whole segment: the only place ``**`` means directories."""
    segments = pattern.split("/")
    return all(s == "**" or not s.endswith("**") for s in segments[:-1])


def random_glob(rng: random.Random) -> str:
    segments = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.25:
            segments.append("**")
        else:
            segments.append("".join(rng.choice("ab.*?") for _ in range(rng.randint(0, 4))))
    if segments[-1] == "**":
        segments.append(rng.choice(["*", "a*", "b.?"]))
    return "/".join(segments)


def random_path(rng: random.Random) -> str:
    return "/".join("".join(rng.choice("ab.") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 5)))


def test_globs_match_as_the_regex_did_on_ordinary_globs() -> None:
    rng = random.Random(20)
    globs = [g for g in (random_glob(rng) for _ in range(1000)) if ordinary(g)]
    paths = [random_path(rng) for _ in range(120)]
    globs += ["*.csv", "**/*.csv", "maps/**/*.png", "a/**/b/**/c", "**/**/a", "?.*", "a/**", "**", "a/**/"]
    paths += ["a.csv", "maps/b.png", "maps/x/y/c.png", "a/b/c", "a/x/b/y/z/c", "a", "a/b", "a/", "a/x/"]
    matched = 0
    for glob, path in itertools.product(globs, paths):
        expected = regex_glob(glob).match(path) is not None
        assert compile_glob(glob).matches(path) == expected, (glob, path)
        matched += expected
    assert matched > 1000  # the comparison covers matches, not only misses


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("**/*.csv", "a.csv", True),
        ("**/*.csv", "x/y/a.csv", True),
        ("*.csv", "x/a.csv", False),
        ("maps/?.png", "maps/ab.png", False),
        ("a/**/b", "a/b", True),
        ("a/**", "a/x/y", False),  # a last ``**`` is a ``*``: within one name
        ("a[1].txt", "a[1].txt", True),  # brackets are literal
        ("/out/**/*.txt", "/out/x/y.txt", True),  # a TES output's absolute path
    ],
)
def test_glob_semantics(glob: str, path: str, expected: bool) -> None:
    assert compile_glob(glob).matches(path) is expected


def test_the_glob_that_froze_the_regex_is_refused() -> None:
    glob = "**/" * 40 + "Z"
    with pytest.raises(ValueError, match="at most 20 wildcards"):
        check_glob(glob)


def test_globs_over_the_caps_are_refused() -> None:
    check_glob("*" * 5 + "?" * (MAX_GLOB_WILDCARDS - 1))
    with pytest.raises(ValueError, match="characters"):
        check_glob("a" * (MAX_GLOB_CHARS + 1))
    with pytest.raises(ValueError, match="characters"):
        check_glob("")
    with pytest.raises(ValueError, match="wildcards"):
        check_glob("?" * (MAX_GLOB_WILDCARDS + 1))


def test_hostile_globs_within_the_caps_answer_at_once() -> None:
    deep = "/".join(["a" * 200] * 20) + "/b"
    hostile = [
        "**/" * 19 + "Z",
        "**/a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*Z",
        "*" + "a" * 180 + "?Z",
        "**/" * 10 + "a*a*a*a*a*a*a*a*a*Z",
    ]
    started = time.perf_counter()
    for glob in hostile:
        check_glob(glob)
        assert not compile_glob(glob).matches(deep)
        assert not compile_glob(glob).matches("/".join(["a"] * 2000))
    # Each regex above backtracks for minutes (or longer); a generous bound, far from what they take.
    assert time.perf_counter() - started < 2
