"""Output-selection globs, matched segment by segment in time linear in the path (no backtracking regex).

The syntax (an app's ``outputs``, ``?include=``, a TES output's wildcard path) is matched against
a whole POSIX path: ``*`` is any run of characters within one name, ``?`` one character of a
name, and a segment that is exactly ``**`` followed by ``/`` is any number of whole directories,
none included. Everything else is literal (``[`` too); ``**`` anywhere else is a ``*``.

It used to be a regex, ``**/`` becoming ``(?:.+/)?``: forty of them against a 7-deep path took
seconds of backtracking on the gateway's event loop. Here a pattern is cut at its ``**``
segments into groups of plain segments, and a segment at its ``*`` into chunks of fixed length
(literal characters and ``?``). Between two stars, taking the leftmost place where the next
piece fits is always right, so each piece is searched once, from where the last one ended: the
first piece must fit at the start, the last at the end, the ones between at their leftmost
place. A chunk is searched by a fixed-length regex (no quantifier, so no backtracking), a group
by trying its segments at each path position. A match costs at most about
``len(pattern) * len(path)`` character comparisons, mostly in C, whatever the pattern.

``check_glob`` still caps a glob's length and wildcards, so a definition or a request stays
readable and the worst case small; callers turn its ``ValueError`` into a 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MAX_GLOB_CHARS = 200
MAX_GLOB_WILDCARDS = 20  # runs of ``*`` and each ``?``: "??" is two, "**" one


@dataclass(frozen=True)
class _Chunk:
    """A run of literal characters and ``?`` between two stars: it matches exactly ``size`` characters."""

    size: int
    regex: re.Pattern[str]


@dataclass(frozen=True)
class _Segment:
    """One name of a pattern: literal text, or chunks with a ``*`` between each two."""

    literal: str | None  # the whole segment when it has no wildcard
    chunks: tuple[_Chunk, ...]

    def matches(self, name: str) -> bool:
        if self.literal is not None:
            return name == self.literal
        if len(self.chunks) == 1:  # no star: only ``?``
            return len(name) == self.chunks[0].size and self.chunks[0].regex.match(name) is not None
        first, *middle, last = self.chunks
        end = len(name) - last.size
        if end < first.size or not first.regex.match(name) or not last.regex.match(name, end):
            return False
        at = first.size
        for chunk in middle:
            found = chunk.regex.search(name, at, end)
            if found is None:
                return False
            at = found.end()
        return True


def _segment(text: str) -> _Segment:
    if "*" not in text and "?" not in text:
        return _Segment(text, ())
    pieces = re.sub(r"\*+", "*", text).split("*")
    chunks = tuple(
        _Chunk(len(piece), re.compile("".join("." if c == "?" else re.escape(c) for c in piece), re.DOTALL))
        for piece in pieces
    )
    return _Segment(None, chunks)


def _fits(group: tuple[_Segment, ...], names: list[str], at: int) -> bool:
    return all(segment.matches(names[at + i]) for i, segment in enumerate(group))


@dataclass(frozen=True)
class Glob:
    """A compiled glob; ``matches(path)`` tells whether it selects that relative (or absolute) path."""

    pattern: str
    groups: tuple[tuple[_Segment, ...], ...]  # plain segments, with any number of directories between two groups

    def matches(self, path: str) -> bool:
        """Whether the whole of ``path`` matches the glob."""
        names = path.split("/")
        if len(self.groups) == 1:
            return len(names) == len(self.groups[0]) and _fits(self.groups[0], names, 0)
        first, *middle, last = self.groups
        # Each ``**/`` stands for whole directories: the segment after the last one is the path's last.
        end = len(names) - len(last)
        if end < len(first) or not _fits(first, names, 0) or not _fits(last, names, end):
            return False
        at = len(first)
        for group in middle:
            found = next((i for i in range(at, end - len(group) + 1) if _fits(group, names, i)), None)
            if found is None:
                return False
            at = found + len(group)
        return True


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> Glob:
    """The glob of ``pattern``; any string compiles (``check_glob`` says whether a caller may send it)."""
    groups: list[tuple[_Segment, ...]] = []
    group: list[_Segment] = []
    *directories, name = pattern.split("/")
    for text in directories:
        if text == "**":
            groups.append(tuple(group))
            group = []
        else:
            group.append(_segment(text))
    group.append(_segment(name))  # a last ``**`` names no directory: it is a ``*``
    return Glob(pattern, (*groups, tuple(group)))


def check_glob(pattern: str) -> None:
    """ValueError unless ``pattern`` is 1 to ``MAX_GLOB_CHARS`` characters with at most ``MAX_GLOB_WILDCARDS``."""
    if not 1 <= len(pattern) <= MAX_GLOB_CHARS:
        raise ValueError(f"a glob must be 1 to {MAX_GLOB_CHARS} characters, not {len(pattern)}")
    wildcards = len(re.findall(r"\*+|\?", pattern))
    if wildcards > MAX_GLOB_WILDCARDS:
        raise ValueError(f"a glob may hold at most {MAX_GLOB_WILDCARDS} wildcards (* or ?), not {wildcards}")
