"""``bulk-transferrable``: rows in (CSV or JSON Lines, read lazily), one line per row out: a
JSON line, or with ``--output-format csv`` a flat CSV record.

A malformed row becomes an error line, never a crash or a silent skip; a blank line gets no
line and is counted. Errors are written through :func:`error_fields`, not raised.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import io
import itertools
import os
import re
import stat
import sys
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TextIO, cast

import orjson

from .. import (
    AuthenticationError,
    CapillaryClient,
    CapillaryError,
    Identifier,
    InvalidRequestError,
    Outcome,
    TransferCheck,
    TransferCheckRequest,
)
from .._endpoints import IS_TRANSFERRABLE
from .arguments import PROG, UsageError, make_client, parse_identifier
from .display import Batch, Display, client_rows, make_display, status_line, summary, verdict
from .results import EXIT_FAILURE, EXIT_OK, error_fields, to_json

__all__ = [
    "CSV_COLUMNS",
    "OUTPUT_FORMATS",
    "BulkRun",
    "LineSet",
    "OutputFormat",
    "Row",
    "Unreachable",
    "bulk_transferrable",
    "count_rows",
    "csv_line",
    "csv_rows",
    "jsonl_line",
    "jsonl_rows",
    "open_input",
    "open_output",
    "row_from",
    "scan_output",
]

# ----------------------------------------------------------------------------- bulk input


class Row:
    """One input row: its physical line number, what it said, and a request or the reason it
    is malformed; neither for a blank line, which is counted but gets no output line."""

    __slots__ = ("error", "input", "line", "request")

    def __init__(
        self,
        line: int,
        data: object,
        request: TransferCheckRequest | None = None,
        error: InvalidRequestError | None = None,
    ) -> None:
        self.line, self.input, self.request, self.error = line, data, request, error

    @property
    def blank(self) -> bool:
        return self.request is None and self.error is None


def row_from(line: int, data: Mapping[str, Any]) -> Row:
    """A Row for a CSV record or JSON object with the keys from, to, points[, program_id]."""
    try:
        request = TransferCheckRequest(
            from_customer=_identifier_field(data, "from"),
            to_customer=_identifier_field(data, "to"),
            points=_number_field(data, "points"),
            program_id=_number_field(data, "program_id", required=False),
        )
    except InvalidRequestError as exc:
        return Row(line, data, error=exc)
    return Row(line, data, request)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _identifier_field(data: Mapping[str, Any], key: str) -> Identifier:
    value = data.get(key)
    if _blank(value):
        raise InvalidRequestError(f"missing {key!r}")
    if not isinstance(value, str):
        raise InvalidRequestError(f"{key!r} must be a 'TYPE:VALUE' string, got {value!r}")
    return parse_identifier(value)


def _number_field(data: Mapping[str, Any], key: str, *, required: bool = True) -> Any:
    """A whole number from a JSON number or a string of digits; the request checks the range."""
    value = data.get(key)
    if _blank(value):
        if required:
            raise InvalidRequestError(f"missing {key!r}")
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidRequestError(f"{key!r} must be a whole number, got {value!r}")


# What ``surrogateescape`` turns a byte that is not UTF-8 into (see open_input).
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _not_utf8(texts: Iterable[str]) -> InvalidRequestError | None:
    for text in texts:
        match = _UNDECODABLE.search(text)
        if match:
            byte = ord(match[0]) - 0xDC00
            return InvalidRequestError(
                f"not valid UTF-8 (byte 0x{byte:02X}); the input must be UTF-8"
            )
    return None


def _shown(text: str) -> str:
    """``text`` with each byte that was not UTF-8 as ``\\xNN``: JSON cannot carry it as is."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _blank_record(fields: Sequence[str]) -> bool:
    return not fields or (len(fields) == 1 and not fields[0].strip())


def csv_rows(lines: Iterable[str], prog: str = PROG) -> Iterator[Row]:
    """Rows of a CSV whose header names from, to, points and optionally program_id (other
    columns are ignored). The header is read at once, so a bad one fails before anything runs;
    the records are read as they are needed."""
    reader = csv.reader(lines)
    records = _numbered(reader)
    blank_before: list[int] = []
    for first_line, header in records:
        if not _blank_record(header):
            break
        blank_before.append(first_line)
    else:
        return iter([Row(line, None) for line in blank_before])
    names = [name.strip().lower() for name in header]
    missing = [name for name in ("from", "to", "points") if name not in names]
    if missing or len(set(names)) != len(names):
        raise UsageError(
            f"the CSV header must name from, to, points and optionally program_id, each once; "
            f"got {','.join(header)!r}",
            prog,
        )

    def rows() -> Iterator[Row]:
        yield from (Row(line, None) for line in blank_before)
        for line, fields in records:
            if _blank_record(fields):
                yield Row(line, None)
                continue
            error = _not_utf8(fields)
            if error is not None:
                fields = [_shown(field) for field in fields]
            # A record with too few or too many fields is an error; show what it had.
            data: dict[str, Any] = dict(zip(names, fields, strict=False))
            if len(fields) > len(names):
                data["_extra"] = fields[len(names) :]
            if error is None and len(fields) != len(names):
                error = InvalidRequestError(
                    f"expected {len(names)} fields ({','.join(names)}), got {len(fields)}"
                )
            yield row_from(line, data) if error is None else Row(line, data, error=error)

    return rows()


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the physical line each begins on: a quoted field may hold line
    breaks, and ``reader.line_num`` is the line the record ends on."""
    while True:
        first = reader.line_num + 1
        fields = next(reader, None)
        if fields is None:
            return
        yield first, fields


def jsonl_rows(lines: Iterable[str]) -> Iterator[Row]:
    """Rows of JSON Lines: one per line, blank ones included."""
    for number, text in enumerate(lines, 1):
        if not text.strip():
            yield Row(number, None)
            continue
        error = _not_utf8([text])
        if error is not None:
            yield Row(number, _shown(text.rstrip("\r\n")), error=error)
            continue
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Row(number, text.rstrip("\r\n"), error=InvalidRequestError(f"not JSON: {exc}"))
            continue
        if isinstance(data, dict):
            yield row_from(number, data)
        else:
            error = InvalidRequestError("expected a JSON object with from, to and points")
            yield Row(number, data, error=error)


def _format_of(path: str, lines: Iterator[str]) -> tuple[str, Iterator[str]]:
    """csv or jsonl by extension; otherwise by whether the first non-blank line is an object."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".csv":
        return "csv", lines
    if extension in (".jsonl", ".ndjson", ".json"):
        return "jsonl", lines
    peeked: list[str] = []
    for line in lines:
        peeked.append(line)
        if line.strip():
            break
    first = peeked[-1].lstrip() if peeked else ""
    return ("jsonl" if first.startswith("{") else "csv"), itertools.chain(peeked, lines)


def count_rows(path: str) -> int | None:
    """Non-blank lines of a regular file (one fast binary pass), else None: a pipe must not be
    read twice. An estimate for CSV with quoted line breaks; the display settles at the end."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as file:
            return sum(1 for line in file if line.strip())
    except OSError:
        return None


@contextlib.contextmanager
def open_input(path: str, prog: str = PROG) -> Iterator[TextIO]:
    """The input as text: UTF-8 with or without a BOM. A byte that is not UTF-8 is kept as a
    lone surrogate (``surrogateescape``), so that the readers can make its row an error line
    rather than send a guess. An input that cannot be opened is bad usage."""
    if path == "-":
        stream = io.TextIOWrapper(
            sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        try:
            yield stream
        finally:
            stream.detach()  # leave sys.stdin open
        return
    try:
        stream = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read INPUT: {exc}", prog) from None
    with stream:
        yield stream


# ----------------------------------------------------------------------------- result lines


def jsonl_line(row: Row, value: TransferCheck | None, error: CapillaryError | None) -> str:
    """``{"line", "input", "ok", "result", "error"}``: the row as read, the whole result."""
    fields = {
        "line": row.line,
        "input": row.input,
        "ok": error is None,
        "result": value,
        "error": None if error is None else error_fields(error),
    }
    return to_json(fields) + "\n"


#: The columns of ``--output-format csv``, in their order.
CSV_COLUMNS = (
    "line", "from", "to", "points", "program_id", "ok", "transferrable",
    "error_type", "error_code", "error_message", "request_id",
)  # fmt: skip
_INPUT_COLUMNS = CSV_COLUMNS[1:5]
_LINE_BREAK = re.compile(r"\r\n?|\n")


def csv_line(row: Row, value: TransferCheck | None, error: CapillaryError | None) -> str:
    """One flat CSV record (:data:`CSV_COLUMNS`): the row's input cells as given (empty when
    it had none, as a line that is not JSON), ``true``/``false`` as in JSON, empty cells for
    what is absent. A line break inside a cell becomes a space: each record is then one
    physical line, which a resume reads back as it reads JSON lines, and which ``wc -l``,
    ``tail`` and ``split`` count right."""
    data = row.input if isinstance(row.input, Mapping) else {}
    if error is None:
        answer = [None, None, None, None if value is None else value.request_id]
    else:
        fields = error_fields(error)
        answer = [fields[key] for key in ("type", "code", "message", "request_id")]
    cells = [
        str(row.line),
        *(_cell(data.get(name)) for name in _INPUT_COLUMNS),
        _cell(error is None),
        _cell(None if value is None else value.transferrable),
        *map(_cell, answer),
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _cell(value: object) -> str:
    """A value as a CSV cell: text as it is, without line breaks; others as JSON writes them."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _LINE_BREAK.sub(" ", value)
    return orjson.dumps(value).decode()


class OutputFormat(NamedTuple):
    """How ``--output-format`` writes result lines and how a resume reads them back."""

    #: Written once, at the top of the output.
    header: str
    #: The output line of a row: its result or its error.
    line: Callable[[Row, TransferCheck | None, CapillaryError | None], str]
    #: The ``line`` number of an output line; raises ValueError, KeyError or TypeError for
    #: a line that is not a result line.
    line_of: Callable[[bytes], int]


_LINE_KEY = b'{"line":'


def _jsonl_line(text: bytes) -> int:
    # jsonl_line writes "line" first: reading its digits spares a parse of the whole result
    # (kilobytes a line; a million-line output scans in a few seconds, not twenty).
    if text.startswith(_LINE_KEY) and text.endswith(b"}\n"):
        end = text.find(b",", len(_LINE_KEY))
        digits = text[len(_LINE_KEY) : end]
        if end > 0 and digits.isdigit():
            return int(digits)
    line = orjson.loads(text)["line"]
    if not isinstance(line, int):
        raise TypeError(line)
    return line


def _csv_line(text: bytes) -> int:
    # Most records quote nothing: splitting them at commas is exact, and a csv.reader per
    # line would double the scan (a million lines, a third of them quoted: 2.5 s, not 5.6 s).
    if b'"' in text:
        try:
            fields: Sequence[str | bytes] = next(csv.reader((text.decode("utf-8"),)))
        except csv.Error as exc:
            raise ValueError(str(exc)) from None
    else:
        fields = text.split(b",")
    if len(fields) != len(CSV_COLUMNS):
        raise ValueError(f"{len(fields)} fields")
    return int(fields[0])


#: ``--output-format``'s choices.
OUTPUT_FORMATS: Mapping[str, OutputFormat] = {
    "jsonl": OutputFormat("", jsonl_line, _jsonl_line),
    "csv": OutputFormat(",".join(CSV_COLUMNS) + "\n", csv_line, _csv_line),
}

# ----------------------------------------------------------------------------- output, resume


class LineSet:
    """Line numbers, one bit each: what a resume keeps of an output of any length (a million
    rows take 125 kB)."""

    __slots__ = ("_bits", "count")

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, line: int) -> None:
        index, mask = line >> 3, 1 << (line & 7)
        if index >= len(self._bits):
            self._bits.extend(bytes(max(index + 1, 2 * len(self._bits)) - len(self._bits)))
        if not self._bits[index] & mask:
            self._bits[index] |= mask
            self.count += 1

    def __contains__(self, line: int) -> bool:
        index = line >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (line & 7)))


def fingerprint(path: str) -> dict[str, Any]:
    """What identifies an input across runs: its size and SHA-256 (one pass, in chunks)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _sidecar(output: str) -> str:
    """Where a run records its input, beside OUT: inside it, a header line would be a line
    that is no row's."""
    return output + ".input.json"


def scan_output(
    path: str, line_of: Callable[[bytes], int], header: bytes = b""
) -> tuple[LineSet, int]:
    """The line numbers OUT has rows for, and how many of its bytes to keep: a torn last line
    (no newline, or one that does not parse, from a process killed mid-write) is dropped and
    its row redone. Streams: memory is the LineSet. A bad line before the last is refused, and
    so is a first line other than ``header``, if there is one (a torn header is cut)."""
    done, keep = LineSet(), 0
    with open(path, "rb") as file:
        if header:
            first = file.readline()
            if first != header:
                if header.startswith(first):  # empty, or torn before its newline
                    return done, 0
                raise UsageError(
                    f"cannot resume: {path} does not begin with the header "
                    f"{header.decode().strip()!r}: {first[:80]!r}"
                )
            keep = len(first)
        previous: bytes | None = None
        for text in file:
            if previous is not None:
                done.add(_checked(line_of, previous, path))
                keep += len(previous)
            previous = text
    if previous is not None and previous.endswith(b"\n"):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            done.add(line_of(previous))
            keep += len(previous)
    return done, keep


def _checked(line_of: Callable[[bytes], int], text: bytes, path: str) -> int:
    try:
        return line_of(text)
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            f"cannot resume: {path} has a line that is not a result line: {text[:80]!r}"
        ) from None


@contextlib.contextmanager
def open_output(args: argparse.Namespace) -> Iterator[tuple[Callable[[str], object], LineSet]]:
    """Stdout, or OUT: a new file (an existing one is refused), or with ``--resume`` the
    existing one, cut after its last whole line and appended to; with the lines it has. The
    ``--output-format``'s header starts an output that has none."""
    path, done, output_format = args.output, LineSet(), OUTPUT_FORMATS[args.output_format]
    if path is None or path == "-":
        if args.resume:
            raise UsageError("--resume needs --output FILE", args.prog)
        try:
            sys.stdout.write(output_format.header)
            yield sys.stdout.write, done
        finally:
            sys.stdout.flush()
        return
    stamp = None
    if args.input != "-" and stat.S_ISREG(os.stat(args.input).st_mode):  # a pipe is read once
        stamp = {
            "input": os.path.abspath(args.input),
            **fingerprint(args.input),
            "output_format": args.output_format,
        }
    if args.resume and os.path.exists(path):
        _check_stamp(path, stamp, args.prog)
        header = output_format.header.encode()
        done, keep = scan_output(path, output_format.line_of, header)
        mode = "r+"
    else:
        keep, mode = 0, "x"
    try:
        file = open(path, mode, encoding="utf-8")  # noqa: SIM115
    except FileExistsError:
        raise UsageError(
            f"{path} exists: pass --resume to continue that run, or name another --output",
            args.prog,
        ) from None
    with file:
        file.truncate(keep)
        file.seek(0, os.SEEK_END)
        if mode == "x":
            _write_stamp(path, stamp)
        if not keep:
            file.write(output_format.header)
        yield file.write, done


def _write_stamp(output: str, stamp: dict[str, Any] | None) -> None:
    sidecar = _sidecar(output)
    if stamp is None:  # stdin or a pipe: no resume can check it
        with contextlib.suppress(FileNotFoundError):
            os.remove(sidecar)
        return
    with open(sidecar, "wb") as file:
        file.write(orjson.dumps(stamp, option=orjson.OPT_INDENT_2) + b"\n")


def _check_stamp(output: str, stamp: dict[str, Any] | None, prog: str) -> None:
    """Refuse to resume OUT from another input than the one it was begun with."""
    if stamp is None:
        raise UsageError("cannot resume from stdin or a pipe: name the INPUT file", prog)
    try:
        with open(_sidecar(output), "rb") as file:
            recorded = orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UsageError(
            f"cannot resume {output}: no record of its input ({_sidecar(output)}: {exc})", prog
        ) from None
    if any(recorded.get(key) != stamp[key] for key in ("bytes", "sha256")):
        raise UsageError(
            f"cannot resume {output}: it was begun from another input "
            f"({recorded.get('input')}, {recorded.get('bytes')} bytes), not this "
            f"{stamp['input']} ({stamp['bytes']} bytes)",
            prog,
        )
    begun_as = recorded.get("output_format", "jsonl")  # runs before --output-format: JSONL
    if begun_as != stamp["output_format"]:
        raise UsageError(
            f"cannot resume {output}: it holds {begun_as} lines, not "
            f"{stamp['output_format']}: pass --output-format {begun_as}",
            prog,
        )


# ----------------------------------------------------------------------------- bulk run

_WATCH_INTERVAL = 0.2  # seconds between looks at the endpoint's state


class Unreachable(CapillaryError):
    """The API never answered this run and its endpoint went down: a wrong host, a closed
    port, bad TLS. One line names the host and the last error."""

    def __init__(self, base_url: str, error: CapillaryError) -> None:
        super().__init__(f"no answer from the API at {base_url}: {error}")
        self.error = error


class BulkRun:
    """Rows in, one line per row out (``line``: :func:`jsonl_line` or :func:`csv_line`): in
    input order, or as finished when not ordered.

    Malformed rows travel through ``is_transferrable_many`` beside the valid ones: the library
    turns any input that is not a ``TransferCheckRequest`` into an ``InvalidRequestError``
    outcome without sending it. So order, back-pressure and flat memory are the library's one
    mechanism for both kinds, and the row's own parse error replaces the generic one. Each
    object handed over is mapped to its row until its outcome arrives, so the map holds only
    what is in flight.
    """

    def __init__(
        self,
        rows: Iterable[Row],
        write: Callable[[str], object],
        batch: Batch,
        display: Display,
        done: LineSet | None = None,
        line: Callable[[Row, TransferCheck | None, CapillaryError | None], str] = jsonl_line,
    ) -> None:
        self._rows, self._write, self._batch, self._display = rows, write, batch, display
        self._done = done or LineSet()  # rows a resumed run has lines for already
        self._line = line
        self._pending: dict[int, Row] = {}

    def _inputs(self) -> Iterator[TransferCheckRequest | Row]:
        for row in self._rows:
            if row.blank:
                self._batch.blank += 1
                continue
            if row.line in self._done:
                self._batch.resumed += 1
                continue
            item: TransferCheckRequest | Row = row.request if row.request is not None else row
            self._pending[id(item)] = row
            yield item

    async def run(
        self,
        client: CapillaryClient,
        *,
        concurrency: int,
        ordered: bool,
        max_outage: float | None = 600.0,
    ) -> None:
        """Raises AuthenticationError at the first one: no later row could do better; and
        :class:`Unreachable` when the endpoint goes down before anything was answered."""
        inputs = cast("Iterable[TransferCheckRequest]", self._inputs())
        # An async generator, as the method's documentation says (it suggests aclosing).
        outcomes = cast(
            "AsyncGenerator[Outcome[TransferCheckRequest, TransferCheck], None]",
            client.points.is_transferrable_many(
                inputs, concurrency=concurrency, ordered=ordered, max_outage=max_outage
            ),
        )
        writing = asyncio.ensure_future(self._write_outcomes(outcomes))
        watching = asyncio.ensure_future(self._watch(client))
        try:
            await asyncio.wait((writing, watching), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writing, watching):
                task.cancel()
            await asyncio.gather(writing, watching, return_exceptions=True)
        if not writing.cancelled():
            writing.result()  # raises what ended the rows early
            return
        raise Unreachable(client.base_url, watching.result())

    async def _write_outcomes(
        self, outcomes: AsyncGenerator[Outcome[TransferCheckRequest, TransferCheck], None]
    ) -> None:
        """Leaving early (a 401, a signal, an unreachable API) cancels the calls in flight at
        once, so that nothing more is sent."""
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                row = self._pending.pop(id(outcome.request))
                error = row.error or outcome.error
                self._write(self._line(row, outcome.value, error))
                value = outcome.value
                self._batch.record(outcome, error, None if value is None else verdict(value))
                self._display.update(self._batch)
                if isinstance(error, AuthenticationError):
                    raise error

    async def _watch(self, client: CapillaryClient) -> CapillaryError:
        """Tells the batch and the display whether the endpoint is down, every tick: while it
        is, no row finishes to update them, and the display says the run is paused. Returns
        the error that took the endpoint down if it goes down while no row has had an answer:
        a wrong host, a closed port or bad TLS would otherwise pause the run for
        ``max_outage`` and then fail row after row. Once a row is answered, an outage pauses
        the run."""
        while True:
            await asyncio.sleep(_WATCH_INTERVAL)
            outage = client.outage(IS_TRANSFERRABLE.key)
            self._batch.watch(outage)
            self._display.update(self._batch)
            if outage is not None and not self._batch.answered:
                return outage.error


async def bulk_transferrable(args: argparse.Namespace) -> int:
    """The ``bulk-transferrable`` command."""
    client = make_client(args, rate=args.rate)  # usage errors before any file is touched
    output_format = OUTPUT_FORMATS[args.output_format]
    with open_input(args.input, args.prog) as stream, open_output(args) as (write, done):
        fmt, lines = (args.format, iter(stream)) if args.format else _format_of(args.input, stream)
        rows = csv_rows(lines, args.prog) if fmt == "csv" else jsonl_rows(lines)
        total = None if args.input == "-" else count_rows(args.input)
        if total is not None and fmt == "csv":
            total = max(total - 1, 0)
        if total is not None:
            total = max(total - done.count, 0)
        clock = asyncio.get_running_loop().time
        batch = Batch("transfer checks", total, args.rate, clock)
        display = make_display(sys.stderr, sys.stderr, clock)
        async with client:
            display.start([batch], lambda: status_line(client, [batch]))
            try:
                await BulkRun(rows, write, batch, display, done, output_format.line).run(
                    client,
                    concurrency=args.concurrency,
                    ordered=not args.unordered,
                    max_outage=args.max_outage,
                )
            finally:
                batch.finish()
                display.stop()
                summary(display, "bulk-transferrable", [batch])
                display.table("client counters", ("", ""), client_rows(client, [batch]))
    if batch.sent and not batch.answered:
        print(
            f"{PROG}: no request got an answer from the API (see the error lines)", file=sys.stderr
        )
        return EXIT_FAILURE
    return EXIT_OK
