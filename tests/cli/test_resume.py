"""bulk-transferrable --resume: an output is never overwritten, and a resumed run sends only
the rows the output has no line for, so that it ends with exactly one line per data row."""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from capillary_points_async.cli import bulk
from capillary_points_async.cli.bulk import OUTPUT_FORMATS, LineSet, scan_output
from capillary_points_async.testing import FakeCapillary

from .conftest import Result

Cli = Callable[..., Result]
FAST = ["--rate", "off"]


def checks(path: Path, rows: int) -> Path:
    """A CSV of ``rows`` data rows (lines 2...), every fifth one malformed."""
    lines = [
        "phone:1,mobile:2,3"
        if i % 5 == 4
        else f"mobile:918{i % 40:09d},mobile:918{(i + 1) % 40:09d},1"
        for i in range(rows)
    ]
    path.write_text("from,to,points\n" + "\n".join(lines) + "\n")
    return path


def numbers(path: Path) -> Counter[int]:
    return Counter(json.loads(line)["line"] for line in path.read_text().splitlines())


def test_an_existing_output_is_refused_without_resume(
    cli: Cli, connect: list[str], sandbox: FakeCapillary, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    output.write_text("precious\n")

    result = cli("bulk-transferrable", str(checks(tmp_path / "c.csv", 3)), "--output",
                 str(output), *connect, *FAST)  # fmt: skip

    assert result.status == 2
    assert "results.jsonl exists: pass --resume" in result.err
    assert output.read_text() == "precious\n"
    assert sandbox.arrivals() == []


def test_resume_sends_only_the_rows_without_a_line_and_redoes_a_torn_one(
    cli: Cli, connect: list[str], sandbox: FakeCapillary, tmp_path: Path
) -> None:
    """Not a prefix (as --unordered writes): every other line kept, the last one torn."""
    path = checks(tmp_path / "c.csv", 40)
    output = tmp_path / "results.jsonl"
    first = cli("bulk-transferrable", str(path), "--output", str(output), *connect, *FAST)
    assert first.status == 0, first.err
    lines = output.read_text().splitlines(keepends=True)
    kept = lines[::2]
    torn = lines[3][:25]  # killed mid-write: no newline
    output.write_text("".join(kept) + torn)
    sent_before = len(sandbox.arrivals())

    resumed = cli("bulk-transferrable", str(path), "--output", str(output), "--resume",
                  "--unordered", *connect, *FAST)  # fmt: skip

    assert resumed.status == 0, resumed.err
    assert numbers(output) == Counter(range(2, 42))  # each data row exactly once
    assert output.read_text().startswith("".join(kept))  # appended, the torn line cut
    redone = [json.loads(line) for line in lines[1::2]]
    assert len(sandbox.arrivals()) - sent_before == sum(line["error"] is None or
        line["error"]["type"] != "InvalidRequestError" for line in redone)  # fmt: skip
    assert re.search(r"rows done before \(resume\)\W+20\b", resumed.err), resumed.err


def test_resume_of_a_finished_run_sends_nothing(
    cli: Cli, connect: list[str], sandbox: FakeCapillary, tmp_path: Path
) -> None:
    path, output = checks(tmp_path / "c.csv", 10), tmp_path / "results.jsonl"
    assert cli("bulk-transferrable", str(path), "--output", str(output), *connect).status == 0
    before, sent = output.read_text(), len(sandbox.arrivals())

    result = cli("bulk-transferrable", str(path), "--output", str(output), "--resume", *connect)

    assert result.status == 0, result.err
    assert (output.read_text(), len(sandbox.arrivals())) == (before, sent)


def test_resume_refuses_another_input(
    cli: Cli, connect: list[str], sandbox: FakeCapillary, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    first = checks(tmp_path / "a.csv", 4)
    assert cli("bulk-transferrable", str(first), "--output", str(output), *connect).status == 0
    before, sent = output.read_text(), len(sandbox.arrivals())
    other = checks(tmp_path / "b.csv", 4)
    other.write_text(other.read_text().replace(",1\n", ",2\n", 1))  # same size, other rows

    result = cli("bulk-transferrable", str(other), "--output", str(output), "--resume", *connect)

    assert result.status == 2
    assert "it was begun from another input" in result.err
    assert (output.read_text(), len(sandbox.arrivals())) == (before, sent)


def test_resume_needs_an_output_file(cli: Cli, connect: list[str], tmp_path: Path) -> None:
    result = cli("bulk-transferrable", str(checks(tmp_path / "c.csv", 1)), "--resume", *connect)

    assert result.status == 2
    assert "--resume needs --output FILE" in result.err


def test_a_csv_record_spanning_lines_has_the_line_it_begins_on(
    cli: Cli, connect: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        'from,to,points\nmobile:9777785206,"mobile:9777785207\n",1\n'
        "mobile:9777785207,mobile:9777785206,1\n"
    )

    result = cli("bulk-transferrable", str(path), *connect, *FAST)

    assert [json.loads(line)["line"] for line in result.out.splitlines()] == [2, 4]


def test_scan_output_keeps_a_set_of_numbers_and_stops_before_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    whole = b'{"line":7,"ok":true}\n{"line":3,"ok":true}\n'
    path.write_bytes(whole + b'{"line":5,"ok"\n')  # has a newline, does not parse

    done, keep = scan_output(str(path), lambda text: json.loads(text)["line"])

    assert keep == len(whole)
    assert (done.count, [n for n in range(10) if n in done]) == (2, [3, 7])


def test_the_jsonl_scan_reads_line_numbers_without_parsing_whole_lines(
    cli: Cli, connect: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Result lines are kilobytes: parsing each to read its number made a million-line scan
    take 12-23 s. Only a line whose start is not ``{"line":N,`` is parsed."""
    output = tmp_path / "results.jsonl"
    cli("bulk-transferrable", str(checks(tmp_path / "c.csv", 20)), "--output", str(output),
        *connect, *FAST)  # fmt: skip
    with output.open("ab") as file:
        file.write(b'{"ok": true, "line": 99}\n')  # another writer's key order: parsed
    parsed: list[bytes] = []

    def loads(text: bytes) -> object:
        parsed.append(text)
        return json.loads(text)

    monkeypatch.setattr(bulk.orjson, "loads", loads)
    done, keep = scan_output(str(output), OUTPUT_FORMATS["jsonl"].line_of)

    assert [n for n in range(101) if n in done] == [*range(2, 22), 99]
    assert keep == output.stat().st_size
    assert parsed == [b'{"ok": true, "line": 99}\n']


def test_line_set_counts_each_number_once() -> None:
    lines = LineSet()
    for n in (1_000_000, 0, 9, 1_000_000):
        lines.add(n)
    assert lines.count == 3
    assert [n in lines for n in (1_000_000, 9, 0, 8, 2_000_000)] == [True] * 3 + [False] * 2


def test_an_input_pipe_is_read_once(cli: Cli, connect: list[str], tmp_path: Path) -> None:
    """A pipe cannot be fingerprinted for a later resume without being used up."""
    pipe, output = tmp_path / "pipe", tmp_path / "results.jsonl"
    os.mkfifo(pipe)
    text = checks(tmp_path / "c.csv", 3).read_text()
    writer = threading.Thread(target=pipe.write_text, args=(text,), daemon=True)
    writer.start()

    try:
        result = cli("bulk-transferrable", str(pipe), "--format", "csv", "--output",
                     str(output), *connect, *FAST)  # fmt: skip
    finally:
        # A command that ends before it opens the pipe (any error) leaves the writer waiting
        # in open() for a reader, and a join would then hang the suite instead of failing
        # this test: a reader opened here lets it write into the pipe's buffer and end.
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(timeout=30)
        os.close(reader)

    assert result.status == 0, result.err
    assert not writer.is_alive()
    assert numbers(output) == Counter([2, 3, 4])
    assert not Path(f"{output}.input.json").exists()
