"""bulk-transferrable --output-format csv: a header, then one flat record per input row, each on
one physical line, so that a resume reads it back as it reads JSON lines."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from capillary_points_async.cli.arguments import UsageError
from capillary_points_async.cli.bulk import OUTPUT_FORMATS, scan_output
from capillary_points_async.testing import FakeCapillary

from .conftest import Result

Cli = Callable[..., Result]
FAST = ["--rate", "off"]
HEADER = (
    "line,from,to,points,program_id,ok,transferrable,error_type,error_code,error_message,"
    "request_id\n"
)
REQUEST_ID = re.compile(r"[0-9a-f-]{36}")


def records(text: str) -> list[dict[str, str]]:
    assert text.startswith(HEADER)
    return list(csv.DictReader(io.StringIO(text)))


def test_a_csv_output_has_a_flat_record_per_row(
    cli: Cli, connect: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "checks.csv"
    path.write_text(
        "from,to,points,program_id\n"
        "mobile:9777785206,mobile:9777785207,1,973\n"  # 2: transferrable
        "mobile:9777785207,mobile:9777785206,1,\n"  # 3: not transferrable
        "mobile:9000000001,mobile:9777785206,5,973\n"  # 4: the API's error
        'mobile:9777785206,mobile:9777785207,"1,""5",973\n'  # 5: malformed, quoted
        '"bogus\nvalue",mobile:9777785207,1,\n'  # 6 and 7: malformed, a line break
        "\n"  # 8: blank, no record
    )

    result = cli("bulk-transferrable", str(path), "--output-format", "csv", *connect, *FAST)

    assert result.status == 0, result.err
    assert result.out.count("\n") == 1 + 5  # the header, then a line per record
    ok, refused, unknown, malformed, broken = records(result.out)
    assert REQUEST_ID.fullmatch(ok.pop("request_id"))
    assert ok == {
        "line": "2", "from": "mobile:9777785206", "to": "mobile:9777785207", "points": "1",
        "program_id": "973", "ok": "true", "transferrable": "true",
        "error_type": "", "error_code": "", "error_message": "",
    }  # fmt: skip
    cells = ("line", "program_id", "ok", "transferrable", "error_type")
    assert [refused[name] for name in cells] == ["3", "", "true", "false", ""]
    assert REQUEST_ID.fullmatch(unknown.pop("request_id"))
    assert unknown == {
        "line": "4", "from": "mobile:9000000001", "to": "mobile:9777785206", "points": "5",
        "program_id": "973", "ok": "false", "transferrable": "",
        "error_type": "CustomerNotFoundError", "error_code": "8015",
        "error_message": "Customer not found for the given identifiers",
    }  # fmt: skip
    assert malformed == {
        "line": "5", "from": "mobile:9777785206", "to": "mobile:9777785207", "points": '1,"5',
        "program_id": "973", "ok": "false", "transferrable": "",
        "error_type": "InvalidRequestError", "error_code": "",
        "error_message": "'points' must be a whole number, got '1,\"5'", "request_id": "",
    }  # fmt: skip
    assert [broken[name] for name in ("line", "from", "error_type")] == [
        "6", "bogus value", "InvalidRequestError"
    ]  # fmt: skip
    assert "got 'bogus\\nvalue'" in broken["error_message"]


def test_a_csv_output_of_json_lines_shows_their_values_as_json_does(
    cli: Cli, connect: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "checks.jsonl"
    path.write_text(
        '{"from": "mobile:9777785206", "to": "mobile:9777785207", "points": 2.5, '
        '"program_id": null}\n'
        '["not", "an", "object"]\n'
    )

    result = cli("bulk-transferrable", str(path), "--output-format", "csv", *connect, *FAST)

    fraction, array = records(result.out)
    assert (fraction["points"], fraction["program_id"], fraction["ok"]) == ("2.5", "", "false")
    assert [array[name] for name in ("from", "to", "points", "error_type")] == [
        "", "", "", "InvalidRequestError"
    ]  # fmt: skip


@pytest.mark.parametrize(("begun", "resumed"), [("jsonl", "csv"), ("csv", "jsonl")])
def test_a_resume_in_the_other_output_format_is_refused(
    cli: Cli, connect: list[str], sandbox: FakeCapillary, tmp_path: Path, begun: str, resumed: str
) -> None:
    path, output = tmp_path / "checks.csv", tmp_path / "results.out"
    path.write_text("from,to,points\n" + "mobile:9777785206,mobile:9777785207,1\n" * 3)
    first = cli("bulk-transferrable", str(path), "--output", str(output), "--output-format",
                begun, *connect, *FAST)  # fmt: skip
    assert first.status == 0, first.err
    before, sent = output.read_bytes(), len(sandbox.arrivals())

    # jsonl without the flag: it is the default
    flag = ["--output-format", resumed] if resumed == "csv" else []
    result = cli("bulk-transferrable", str(path), "--output", str(output), "--resume", *flag,
                 *connect, *FAST)  # fmt: skip

    assert result.status == 2
    assert f"it holds {begun} lines, not {resumed}: pass --output-format {begun}" in result.err
    assert (output.read_bytes(), len(sandbox.arrivals())) == (before, sent)


def test_a_resume_scan_of_a_csv_output_skips_its_header_and_cuts_a_torn_record(
    tmp_path: Path,
) -> None:
    csv_format, path = OUTPUT_FORMATS["csv"], tmp_path / "results.csv"
    header = csv_format.header.encode()
    whole = header + b"7,a,b,1,,true,true,,,,r\n" + b'3,"a,b",c,1,,false,,E,,"x, ""y""",\n'
    path.write_bytes(whole + b"5,a,b,1,,tr")

    done, keep = scan_output(str(path), csv_format.line_of, header)

    assert keep == len(whole)
    assert (done.count, [n for n in range(10) if n in done]) == (2, [3, 7])
    path.write_bytes(header[:9])  # killed while writing the header
    assert scan_output(str(path), csv_format.line_of, header)[1] == 0
    path.write_text(json.dumps({"line": 2}) + "\n")
    with pytest.raises(UsageError, match="does not begin with the header"):
        scan_output(str(path), csv_format.line_of, header)
