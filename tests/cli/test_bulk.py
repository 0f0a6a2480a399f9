"""bulk-transferrable end to end: one JSON line per input row, in input order, malformed rows
as error lines; exit 0 when the run happened, 1 when nothing could run, 2 for bad usage."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from capillary_points_async import CapillaryClient
from capillary_points_async.cli.bulk import BulkRun, csv_rows, jsonl_rows
from capillary_points_async.cli.display import Batch, PlainDisplay
from capillary_points_async.testing import FakeCapillary, Faults

from .conftest import PASSWORD, USERNAME, Result, free_port

Cli = Callable[..., Result]
FAST = ["--rate", "off"]

CSV = """\
from,to,points,program_id
mobile:9777785206,mobile:9777785207,1,973
mobile:9777785207,mobile:9777785206,1,
phone:1,mobile:9777785206,1,

mobile:9000000001,mobile:9777785206,5,973
mobile:9777785206,mobile:9777785207
mobile:9777785206,mobile:9777785207,abc,973
email:customer1@example.com,external_id:ext-2,3,973
external_id:ext-1,card_number:CARD0000000002,3,973,extra
"""
# line -> (ok, error type)
CSV_EXPECTED = {
    2: (True, None),
    3: (True, None),
    4: (False, "InvalidRequestError"),  # bad TYPE
    6: (False, "CustomerNotFoundError"),
    7: (False, "InvalidRequestError"),  # missing columns
    8: (False, "InvalidRequestError"),  # points "abc"
    9: (True, None),
    10: (False, "InvalidRequestError"),  # one field too many
}

JSONL = """\
{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 1, "program_id": 973}
{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 1,
["not", "an", "object"]
{"from": "mobile:9777785206", "points": 1}

{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 2.5}
{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": "7"}
{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 1, "program_id": 12345}
{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 1, "program_id": null}
{"from": 9777785206, "to": "mobile:9777785207", "points": 1}
"""
JSONL_EXPECTED = {
    1: (True, None),
    2: (False, "InvalidRequestError"),  # not JSON
    3: (False, "InvalidRequestError"),  # not an object
    4: (False, "InvalidRequestError"),  # no "to"
    6: (False, "InvalidRequestError"),  # 2.5 points
    7: (True, None),  # "7" is a whole number
    8: (False, "InvalidProgramError"),
    9: (True, None),
    10: (False, "InvalidRequestError"),  # from is not TYPE:VALUE
}


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def check_lines(lines: list[dict[str, Any]], expected: dict[int, tuple[bool, str | None]]) -> None:
    assert [line["line"] for line in lines] == list(expected)  # every row, in input order
    for line in lines:
        ok, error = expected[line["line"]]
        assert set(line) == {"line", "input", "ok", "result", "error"}
        assert line["ok"] is ok, line
        if ok:
            assert line["error"] is None
            assert isinstance(line["result"]["transferrable"], bool)
        else:
            assert line["result"] is None
            assert line["error"]["type"] == error, line
            assert set(line["error"]) == {"type", "code", "message", "request_id"}


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "checks.csv"
    path.write_text(CSV)
    return path


def test_csv_to_an_output_file(
    cli: Cli, connect: list[str], csv_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"

    result = cli("bulk-transferrable", str(csv_file), "--output", str(output), *connect, *FAST)

    assert result.status == 0, result.err
    assert result.out == ""
    lines = lines_of(output.read_text())
    check_lines(lines, CSV_EXPECTED)
    first, missing = lines[0], lines[4]
    assert first["input"] == {
        "from": "mobile:9777785206",
        "to": "mobile:9777785207",
        "points": "1",
        "program_id": "973",
    }
    assert first["result"]["transferrable"] is True
    assert lines[1]["result"]["transferrable"] is False
    assert missing["error"]["message"] == "expected 4 fields (from,to,points,program_id), got 2"
    not_found = lines[3]["error"]
    assert (not_found["code"], bool(not_found["request_id"])) == (8015, True)
    assert "'points' must be a whole number, got 'abc'" in lines[5]["error"]["message"]
    # the summary goes to stderr
    assert "bulk-transferrable" in result.err
    assert "InvalidRequestError" in result.err


def test_jsonl_from_stdin_to_stdout(
    cli: Cli, connect: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(JSONL.encode())))

    result = cli("bulk-transferrable", "-", *connect, *FAST)

    assert result.status == 0, result.err
    lines = lines_of(result.out)
    check_lines(lines, JSONL_EXPECTED)
    assert lines[1]["input"].startswith('{"from"')  # a line that is not JSON is echoed as text
    assert lines[1]["error"]["message"].startswith("not JSON: ")
    assert lines[2]["input"] == ["not", "an", "object"]
    assert lines[3]["error"]["message"] == "missing 'to'"
    assert lines[6]["error"]["code"] == 885


@pytest.mark.cli_sandbox(faults=Faults(latency=(0.0, 0.03)))
def test_order_is_kept_when_calls_finish_out_of_order(
    cli: Cli, connect: list[str], tmp_path: Path
) -> None:
    rows = [f"mobile:918{i:09d},mobile:918{i + 1:09d},{1 + i * 37 % 300}," for i in range(39)]
    rows[10] = "mobile:1,bogus,1,"
    path = tmp_path / "many.csv"
    path.write_text("from,to,points,program_id\n" + "\n".join(rows) + "\n")

    ordered = cli("bulk-transferrable", str(path), "--concurrency", "16", *connect, *FAST)
    unordered = cli(
        "bulk-transferrable", str(path), "--concurrency", "16", "--unordered", *connect, *FAST
    )

    expected = list(range(2, 41))
    assert [line["line"] for line in lines_of(ordered.out)] == expected
    assert sorted(line["line"] for line in lines_of(unordered.out)) == expected
    assert lines_of(ordered.out)[10]["error"]["type"] == "InvalidRequestError"
    assert ordered.status == unordered.status == 0


def test_format_is_sniffed_without_an_extension(
    cli: Cli, connect: list[str], tmp_path: Path
) -> None:
    csv_path, jsonl_path = tmp_path / "checks.txt", tmp_path / "checks"
    csv_path.write_bytes(b"\xef\xbb\xbf" + CSV.replace("\n", "\r\n").encode())  # Excel's
    jsonl_path.write_text("\n" + JSONL)

    from_csv = cli("bulk-transferrable", str(csv_path), *connect, *FAST)
    from_jsonl = cli("bulk-transferrable", str(jsonl_path), *connect, *FAST)

    check_lines(lines_of(from_csv.out), CSV_EXPECTED)
    check_lines(lines_of(from_jsonl.out), {n + 1: v for n, v in JSONL_EXPECTED.items()})


def test_empty_input_is_a_run_with_no_lines(cli: Cli, connect: list[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")

    result = cli("bulk-transferrable", str(path), *connect)

    assert (result.status, result.out) == (0, "")


def test_wrong_password_stops_the_run_with_exit_1(
    cli: Cli, sandbox: FakeCapillary, csv_file: Path
) -> None:
    secret = "Wr0ng-Passw0rd"
    result = cli(
        "bulk-transferrable", str(csv_file), "--base-url", sandbox.url,
        "--username", USERNAME, "--password", secret, "--concurrency", "1", *FAST,
    )  # fmt: skip

    assert result.status == 1
    assert "AuthenticationError" in result.err
    assert secret not in result.out + result.err
    lines = lines_of(result.out)
    assert lines[-1]["error"]["type"] == "AuthenticationError"
    assert len(sandbox.arrivals()) == 1  # stopped at the first 401


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_a_closed_port_exits_1_naming_host_port_and_error(
    cli: Cli, tmp_path: Path, ordered: bool
) -> None:
    """A run that never had an answer does not pause for --max-outage: it stops once the
    endpoint is down, and its last line names where it could not connect and why."""
    path = tmp_path / "many.csv"
    path.write_text("from,to,points\n" + "mobile:9777785206,mobile:9777785207,1\n" * 200)
    port = free_port()  # nothing listens there

    result = cli(
        "bulk-transferrable", str(path), "--base-url", f"http://127.0.0.1:{port}",
        "--username", USERNAME, "--password", PASSWORD, *FAST,
        *([] if ordered else ["--unordered"]),
    )  # fmt: skip

    assert result.status == 1, result.err
    assert result.out == ""  # no row failed for it: a resume redoes them all
    last = result.err.rstrip().splitlines()[-1]
    cause = f"capillary-points: Unreachable: no answer from the API at http://127.0.0.1:{port}: "
    assert last.startswith(cause)
    assert f"Cannot connect to host 127.0.0.1:{port}" in last.removeprefix(cause)


def test_missing_input_is_bad_usage(cli: Cli, connect: list[str], tmp_path: Path) -> None:
    result = cli("bulk-transferrable", str(tmp_path / "nope.csv"), *connect)

    assert (result.status, result.out) == (2, "")
    assert len(result.err.splitlines()) == 1, result.err
    assert "bulk-transferrable: error: cannot read INPUT" in result.err
    assert "No such file or directory" in result.err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        pytest.param(
            "checks.csv",
            b"from,to,points\r\n"
            b"mobile:9777785206,mobile:9777785207,1\r\n"
            b"mobile:97777\xe95206,mobile:9777785207,1\r\n"  # Latin-1, not UTF-8
            b"mobile:9777785206,mobile:9777785207,2\r\n",
            {2: True, 3: False, 4: True},
            id="csv",
        ),
        pytest.param(
            "checks.jsonl",
            b'{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 1}\n'
            b'{"from": "mobile:97777\xe95206", "to": "mobile:9777785207", "points": 1}\n',
            {1: True, 2: False},
            id="jsonl",
        ),
    ],
)
def test_a_row_that_is_not_utf8_is_an_error_line_and_never_sent(
    cli: Cli,
    connect: list[str],
    sandbox: FakeCapillary,
    tmp_path: Path,
    name: str,
    content: bytes,
    expected: dict[int, bool],
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    result = cli("bulk-transferrable", str(path), *connect, *FAST)

    assert result.status == 0, result.err
    lines = lines_of(result.out)
    assert {line["line"]: line["ok"] for line in lines} == expected
    bad = next(line for line in lines if not line["ok"])
    assert bad["error"]["type"] == "InvalidRequestError"
    assert bad["error"]["message"] == "not valid UTF-8 (byte 0xE9); the input must be UTF-8"
    shown = bad["input"]["from"] if name.endswith(".csv") else bad["input"]
    assert "mobile:97777\\xe95206" in shown  # the byte, shown as \xe9
    assert len(sandbox.arrivals()) == sum(expected.values())  # the bad row was never sent


def test_blank_lines_are_skipped_and_counted(cli: Cli, connect: list[str], tmp_path: Path) -> None:
    path = tmp_path / "checks.csv"
    path.write_text(
        "\nfrom,to,points\n\nmobile:9777785206,mobile:9777785207,1\n   \n\n"
        "mobile:9777785207,mobile:9777785206,1\n\n"
    )
    jsonl = tmp_path / "checks.jsonl"
    jsonl.write_text('\n{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 1}\n\n')

    from_csv = cli("bulk-transferrable", str(path), *connect, *FAST)
    from_jsonl = cli("bulk-transferrable", str(jsonl), *connect, *FAST)

    assert from_csv.status == from_jsonl.status == 0
    # "line" stays the physical line number; a blank line gets no output line...
    assert [line["line"] for line in lines_of(from_csv.out)] == [4, 7]
    assert [line["line"] for line in lines_of(from_jsonl.out)] == [2]
    # ...but the summary says how many there were
    assert re.search(r"blank lines skipped\W+5\b", from_csv.err), from_csv.err
    assert re.search(r"blank lines skipped\W+2\b", from_jsonl.err), from_jsonl.err


def test_a_header_without_the_columns_exits_2(cli: Cli, connect: list[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sender,receiver,points\nmobile:1,mobile:2,3\n")

    result = cli("bulk-transferrable", str(path), *connect)

    assert result.status == 2
    assert "the CSV header must name from, to, points" in result.err
    assert len(result.err.splitlines()) == 1


def test_without_rich_progress_is_plain(
    cli: Cli, connect: list[str], csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in sys.modules if name == "rich" or name.startswith("rich.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rich", None)

    result = cli("bulk-transferrable", str(csv_file), *connect, *FAST)

    assert result.status == 0
    assert "pip install 'capillary-points-async[cli]'" in result.err
    assert "transfer checks: 8/8 done, 5 errors" in result.err
    assert "  CustomerNotFoundError  1" in result.err
    check_lines(lines_of(result.out), CSV_EXPECTED)


def test_readers_are_lazy() -> None:
    consumed = 0

    def source(header: str, line: str) -> Iterator[str]:
        nonlocal consumed
        yield header
        while True:
            consumed += 1
            yield line

    rows = csv_rows(source("from,to,points\n", "mobile:1,mobile:2,3\n"))
    assert [next(rows).line for _ in range(3)] == [2, 3, 4]
    assert consumed == 3
    consumed = 0
    rows = jsonl_rows(source("", '{"from": "mobile:1", "to": "mobile:2", "points": 3}\n'))
    assert next(rows).blank
    assert next(rows).request is not None
    assert consumed == 1


@pytest.mark.fake_capillary(customers=50)
async def test_bulk_run_reads_only_a_window_ahead_of_what_it_wrote(
    capillary_client: CapillaryClient,
) -> None:
    """Memory stays flat: with 2,000 rows to go, the run has read only a bounded window."""
    read = 0
    read_at_write: list[int] = []

    def lines() -> Iterator[str]:
        nonlocal read
        yield "from,to,points\n"
        for i in range(2000):
            read += 1
            # every third row is malformed: those travel the same bounded road
            target = f"user_id:{800_000_000 + (i + 1) % 50}"
            yield "phone:1,mobile:2,3\n" if i % 3 == 0 else f"mobile:918{i % 50:09d},{target},5\n"

    def write(line: str) -> None:
        read_at_write.append(read - len(read_at_write))

    batch = Batch("checks", None, None)
    run = BulkRun(csv_rows(lines()), write, batch, PlainDisplay(io.StringIO(), io.StringIO()))
    await run.run(capillary_client, concurrency=8, ordered=True)

    assert batch.done == len(read_at_write) == 2000
    assert (batch.ok, batch.errors["InvalidRequestError"]) == (1333, 667)
    assert max(read_at_write) <= 8 * 5 + 1  # in flight plus the reorder window, never the file
    assert run._pending == {}
