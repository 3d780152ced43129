"""The follower on plain files: partial lines, progress markers, rate limits and truncation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

from services.runner.follow import Follower, Progress, parse_progress


def follower(tmp_path: Path, **limits: Any) -> tuple[Follower, Path, Path]:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    out.touch()
    err.touch()
    return Follower({"stdout": out, "stderr": err}, **limits), out, err


def append(path: Path, data: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(data)


def test_progress_markers_are_parsed_and_not_logged(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path)
    append(out, 'hello\n##quern progress 40 "routing step 4/10"\n##quern progress 100 "done"\n')
    tick = follow.tick()
    assert tick.progress == Progress(100, "done")
    assert tick.lines == {"stdout": ["hello"]}


def test_malformed_or_out_of_range_markers_are_plain_log_lines() -> None:
    assert parse_progress('##quern progress 101 "too far"') is None
    assert parse_progress("##quern progress 50 no quotes") is None
    assert parse_progress('##quern progress 12.5 ""') == Progress(12.5, "")


def test_a_line_split_across_ticks_is_reported_once_whole(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path)
    append(out, "first half")
    assert follow.tick().lines == {}
    append(out, " and second\n##quern progress 5")
    assert follow.tick().lines == {"stdout": ["first half and second"]}
    append(out, '0 "half way"\n')
    assert follow.tick().progress == Progress(50, "half way")


def test_the_final_tick_ends_an_unterminated_last_line(tmp_path: Path) -> None:
    follow, _, err = follower(tmp_path)
    append(err, "Traceback\nboom")
    assert follow.tick().lines == {"stderr": ["Traceback"]}
    assert follow.tick(final=True).lines == {"stderr": ["boom"]}


def test_lines_beyond_the_per_tick_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    follow, out, err = follower(tmp_path, max_lines=3)
    append(out, "".join(f"out {i}\n" for i in range(4)))
    append(err, "err 0\n")
    tick = follow.tick()
    assert tick.lines == {"stdout": ["out 0", "out 1", "out 2"]}
    assert tick.dropped == 2
    append(out, "later\n")
    assert follow.tick().lines == {"stdout": ["later"]}


def test_the_byte_budget_limits_a_tick_too(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path, max_bytes=10)
    append(out, "12345\n67890\nabc\n")
    tick = follow.tick()
    assert tick.lines == {"stdout": ["12345", "67890"]} and tick.dropped == 1


def test_progress_is_never_dropped_by_the_log_limit(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path, max_lines=1)
    append(out, 'a\nb\n##quern progress 100 "end"\n')
    tick = follow.tick()
    assert tick.progress == Progress(100, "end") and tick.lines == {"stdout": ["a"]}


def test_long_lines_are_cut_and_their_rest_skipped(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path, max_line_bytes=8)
    append(out, "x" * 20 + "\nshort\n")
    assert follow.tick().lines == {"stdout": ["xxxxxxxx…", "short"]}
    append(out, "y" * 12)
    assert follow.tick().lines == {"stdout": ["yyyyyyyy…"]}
    append(out, "yyyy tail\nnext\n")
    assert follow.tick().lines == {"stdout": ["next"]}


def test_reads_are_bounded_per_tick_and_catch_up_later(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path, read_bytes=6)
    append(out, "aaaaa\nbbbbb\n")
    assert follow.tick().lines == {"stdout": ["aaaaa"]}
    assert follow.tick().lines == {"stdout": ["bbbbb"]}


def test_the_final_tick_reads_to_the_end(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path, read_bytes=6)
    append(out, 'aaaaa\n##quern progress 100 "x"\n')
    tick = follow.tick(final=True)
    assert tick.lines == {"stdout": ["aaaaa"]} and tick.progress == Progress(100, "x")


def test_each_new_content_of_the_progress_file_is_one_report(tmp_path: Path) -> None:
    progress = tmp_path / "progress.json"
    follow = Follower({}, progress_file=progress)
    assert follow.tick().progress is None  # no file yet
    progress.write_text('{"percent": 12.5, "step": "meshing"}')
    assert follow.tick().progress == Progress(12.5, "meshing")
    assert follow.tick().progress is None  # unchanged: not reported again
    for broken in ('{"percent": 30', '{"percent": 130, "step": "x"}', '{"step": "x"}', "[]"):
        progress.write_text(broken)
        assert follow.tick().progress is None, broken
    progress.write_text('{"percent": 100, "step": "done"}')
    assert follow.tick().progress == Progress(100, "done")


def test_a_flood_of_markers_in_one_tick_is_one_report_the_last(tmp_path: Path) -> None:
    follow, out, err = follower(tmp_path)
    append(out, "".join(f'##quern progress {i / 100} "step {i}"\n' for i in range(10_000)))
    append(err, "warning\n")
    tick = follow.tick()
    assert tick.progress == Progress(99.99, "step 9999")
    assert tick.lines == {"stderr": ["warning"]} and tick.dropped == 0


def test_a_marker_after_the_progress_file_wins_within_a_tick(tmp_path: Path) -> None:
    out, progress = tmp_path / "stdout.txt", tmp_path / "progress.json"
    follow = Follower({"stdout": out}, progress_file=progress)
    progress.write_text('{"percent": 10, "step": "from the file"}')
    append(out, '##quern progress 20 "from a marker"\n')
    assert follow.tick().progress == Progress(20, "from a marker")
    progress.write_text('{"percent": 30, "step": "from the file"}')
    assert follow.tick().progress == Progress(30, "from the file")  # no marker since: the file's report stands


def test_the_final_tick_over_a_backlog_of_markers_and_lines_holds_little_memory(tmp_path: Path) -> None:
    follow, out, _ = follower(tmp_path, read_bytes=64 * 1024)
    with out.open("w", encoding="utf-8") as handle:  # about 5 MB: markers and one-character lines, interleaved
        for i in range(100_000):
            handle.write(f'##quern progress {i % 100} "s{i}"\nx\n')
        handle.write('##quern progress 100 "done"\n')
    tracemalloc.start()
    try:
        tick = follow.tick(final=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tick.progress == Progress(100, "done")
    assert len(tick.lines["stdout"]) == 50 and tick.dropped == 100_000 - 50
    assert peak < 2 * 2**20, f"the final tick held {peak} bytes at its peak"
