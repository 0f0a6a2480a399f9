"""The ``capillary-points`` command::

    capillary-points sandbox [--port 8787] [--customers N] [--rate-limit 1000/60s]
    capillary-points validation-code --mobile 919777785205 [--points 100]
    capillary-points is-transferrable --from mobile:9777785206 --to mobile:9777785207 --points 1
    capillary-points bulk-transferrable checks.csv [--output results.jsonl] [--rate 1000/60s]
    capillary-points demo

Connection settings come from flags or the environment (``CAPILLARY_BASE_URL`` or ``--region``,
``CAPILLARY_USERNAME``, ``CAPILLARY_PASSWORD`` or ``CAPILLARY_PASSWORD_MD5``). The password and
its digest are never printed, not even inside a usage error.

Exit status: 0 done; 1 the API or the network failed (for a bulk run: nothing could run);
2 bad usage, including arguments the library rejects before sending; 128 + the signal's number
when SIGINT (130) or SIGTERM (143) stopped the command, after it cleaned up (a bulk run writes
the lines of the rows that finished and its summary first). The sandbox ends on either signal
with 0.
All errors reach :func:`main`, the one place that turns them into messages and exit statuses;
a bulk run writes them as JSON lines through :func:`error_fields` instead.

Progress bars and tables use rich (the ``cli`` extra), imported only when a run needs them;
without it the command prints plain lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import itertools
import math
import os
import re
import signal
import stat
import sys
import time
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO, TypeAlias, cast

import cattrs
import orjson

from . import (
    APIError,
    AuthenticationError,
    BasicAuth,
    CapillaryClient,
    CapillaryError,
    Identifier,
    InvalidRequestError,
    Outcome,
    RateLimit,
    Region,
    TransferCheck,
    TransferCheckRequest,
    ValidationCodeRequest,
    __version__,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.progress import Progress, TaskID
    from rich.text import Text

    from .testing import FakeCapillary

__all__ = ["build_parser", "error_fields", "main"]

PROG = "capillary-points"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
INSTALL_HINT = "pip install 'capillary-points-async[cli]'"

ENV_BASE_URL = "CAPILLARY_BASE_URL"
ENV_USERNAME = "CAPILLARY_USERNAME"
ENV_PASSWORD = "CAPILLARY_PASSWORD"
ENV_PASSWORD_MD5 = "CAPILLARY_PASSWORD_MD5"

#: TYPE of ``TYPE:VALUE`` and the flags of ``validation-code``.
IDENTIFIER_TYPES: Mapping[str, Callable[[str], Identifier]] = {
    "mobile": Identifier.mobile,
    "email": Identifier.email,
    "external_id": Identifier.external_id,
    "card_number": Identifier.card_number,
    "card_external_id": Identifier.card_external_id,
    "user_id": Identifier.user_id,
}
REGIONS = {region.name.lower(): region for region in Region}

Rate = tuple[int, float]  # (requests, per seconds)

# ----------------------------------------------------------------------------- errors


class UsageError(Exception):
    """Bad usage: a one-line message and exit status 2. argparse's errors become one too."""

    def __init__(self, message: str, prog: str = PROG) -> None:
        super().__init__(message)
        self.prog = prog


def error_fields(exc: CapillaryError) -> dict[str, Any]:
    """``{"type", "code", "message", "request_id"}`` of an error, for JSON and for stderr."""
    if isinstance(exc, APIError):
        message = exc.message
    else:
        message = str(exc.args[0]) if exc.args else type(exc).__name__
    return {
        "type": type(exc).__name__,
        "code": getattr(exc, "code", None),
        "message": message,
        "request_id": getattr(exc, "request_id", None),
    }


def describe(exc: CapillaryError) -> str:
    """One line: ``CustomerNotFoundError: ... (code 8015, HTTP 400, request id ...)``."""
    fields = error_fields(exc)
    details = []
    if fields["code"] is not None:
        details.append(f"code {fields['code']}")
    status = getattr(exc, "status", None)
    if status is not None and status != fields["code"]:
        details.append(f"HTTP {status}")
    if fields["request_id"]:
        details.append(f"request id {fields['request_id']}")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"{fields['type']}: {fields['message']}{suffix}"


def exit_status(exc: BaseException) -> int:
    """2 for what the caller got wrong before anything was sent, 1 for everything else."""
    return EXIT_USAGE if isinstance(exc, (UsageError, InvalidRequestError)) else EXIT_FAILURE


_SECRET_OPTION = re.compile(r"pass|pasw|pwd|secret|md5", re.IGNORECASE)


class Redactor:
    """Blanks secrets out of what goes to stderr.

    The secrets are the values of any option whose name looks like a password's (so a
    mistyped ``--pasword x`` is covered too, which argparse would echo as an unrecognized
    argument) and the password variables of the environment.
    """

    def __init__(self, argv: Sequence[str], environ: Mapping[str, str]) -> None:
        secrets = {environ.get(ENV_PASSWORD, ""), environ.get(ENV_PASSWORD_MD5, "")}
        for index, token in enumerate(argv):
            name, equals, value = token.partition("=")
            if not (name.startswith("-") and _SECRET_OPTION.search(name)):
                continue
            if equals:
                secrets.add(value)
            elif index + 1 < len(argv):
                secrets.add(argv[index + 1])
        self._patterns = [
            re.compile(rf"(?<!\w){re.escape(secret)}(?!\w)") for secret in secrets if secret
        ]

    def __call__(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub("***", text)
        return text


# ----------------------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')", self.prog)


def parse_rate(text: str) -> Rate | None:
    """``1000/60s``, ``100/1s``, ``100/s``, ``1000/min``, ``5000/1h`` -> (limit, seconds);
    ``off`` -> None."""
    if text.strip().lower() in ("off", "none"):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d*)?|\.\d+)?\s*([a-z]*)\s*", text, re.I)
    unit = _TIME_UNITS.get(match[3].lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"invalid rate {text!r}: expected REQUESTS/PERIOD such as 1000/60s, 100/1s, "
            "1000/min, or 'off'"
        )
    limit, per = int(match[1]), float(match[2] or 1) * unit
    if limit < 1 or per <= 0:
        raise ValueError(f"invalid rate {text!r}: both numbers must be positive")
    return limit, per


_TIME_UNITS = {
    **dict.fromkeys(("", "s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600.0),
}


def format_rate(rate: Rate | None) -> str:
    if rate is None:
        return "off"
    limit, per = rate
    return f"{limit}/{per:g}s"


def parse_identifier(text: str) -> Identifier:
    """``TYPE:VALUE`` -> Identifier; TYPE as in :data:`IDENTIFIER_TYPES` (``-`` for ``_`` too)."""
    kind, colon, value = text.partition(":")
    make = IDENTIFIER_TYPES.get(kind.strip().lower().replace("-", "_"))
    if not colon or make is None:
        raise InvalidRequestError(
            f"expected TYPE:VALUE with TYPE one of {', '.join(IDENTIFIER_TYPES)}, got {text!r}"
        )
    return make(value.strip())


def _arg_type(convert: Callable[[str], Any], name: str | None = None) -> Callable[[str], Any]:
    """Wrap a converter so that argparse reports its message rather than 'invalid value'."""

    def converted(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:  # InvalidRequestError is a ValueError
            raise argparse.ArgumentTypeError(str(exc)) from None

    converted.__name__ = name or convert.__name__
    return converted


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _positive_whole_number(text: str) -> int:
    number = _whole_number(text)
    if number < 1:
        raise ValueError(f"expected a whole number >= 1, got {text!r}")
    return number


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return seconds


def _connection_options() -> _Parser:
    """The options every API command takes; a flag wins over its environment variable."""
    parent = _Parser(add_help=False, allow_abbrev=False)
    where = parent.add_mutually_exclusive_group()
    where.add_argument("--base-url", metavar="URL", help=f"API base URL (env {ENV_BASE_URL})")
    where.add_argument("--region", choices=sorted(REGIONS), help="or a Capillary cluster")
    parent.add_argument("--username", help=f"till code (env {ENV_USERNAME})")
    secret = parent.add_mutually_exclusive_group()
    secret.add_argument(
        "--password", help=f"till password (env {ENV_PASSWORD}: better, flags show in ps)"
    )
    secret.add_argument(
        "--password-md5",
        metavar="HEX",
        help=f"or the MD5 hex digest of the password (env {ENV_PASSWORD_MD5})",
    )
    parent.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_arg_type(_positive_seconds, "timeout"),
        default=30.0,
        help="per attempt (default 30)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The command line. Errors raise :class:`UsageError` instead of exiting."""
    parser = _Parser(
        prog=PROG,
        description="Capillary loyalty points from the command line: validation codes, "
        "transferability checks (one or a file of them), a local sandbox and a demo.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = _connection_options()
    _add_sandbox(commands)
    _add_validation_code(commands, connection)
    _add_is_transferrable(commands, connection)
    _add_bulk_transferrable(commands, connection)
    _add_demo(commands)
    return parser


Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _add_sandbox(commands: Commands) -> None:
    sub = commands.add_parser(
        "sandbox",
        help="run a local Capillary sandbox until Ctrl-C",
        description="Serve the two points endpoints on loopback with the documentation's "
        "customers and generated ones, checking credentials and rate limits like the real API.",
        allow_abbrev=False,
    )
    sub.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    sub.add_argument(
        "--port", type=_arg_type(_whole_number, "port"), default=8787, help="default 8787"
    )
    sub.add_argument("--username", default="sandbox", help="till code (default sandbox)")
    sub.add_argument("--password", default="sandbox", help="password (default sandbox)")
    sub.add_argument(
        "--customers",
        type=_arg_type(_whole_number, "customers"),
        default=1000,
        help="generated customers besides the documentation's three (default 1000)",
    )
    sub.add_argument(
        "--rate-limit",
        type=_arg_type(parse_rate, "rate"),
        default="1000/60s",
        help="per endpoint, e.g. 1000/60s (the documented quota, default), 100/1s, off",
    )
    sub.add_argument("--seed", type=_arg_type(_whole_number, "seed"), default=0)
    sub.set_defaults(run=_sandbox, prog=sub.prog)


def _add_validation_code(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "validation-code",
        parents=[connection],
        help="issue the validation code a customer needs to redeem points",
        description="GET v1.1/points/validationcode; prints the result as JSON.",
        allow_abbrev=False,
    )
    who = sub.add_mutually_exclusive_group(required=True)
    for kind, make in IDENTIFIER_TYPES.items():
        who.add_argument(
            f"--{kind.replace('_', '-')}",
            dest="identifier",
            metavar="VALUE",
            type=_arg_type(make, kind),
            help=f"the customer's {kind.replace('_', ' ')}",
        )
    sub.add_argument("--points", type=_arg_type(_whole_number, "points"), help="points to redeem")
    sub.set_defaults(run=_validation_code, prog=sub.prog)


def _add_is_transferrable(commands: Commands, connection: _Parser) -> None:
    identifier = _arg_type(parse_identifier, "identifier")
    sub = commands.add_parser(
        "is-transferrable",
        parents=[connection],
        help="check whether points can move from one customer to another",
        description="POST v2/points/isTransferrable; prints the result as JSON. "
        f"TYPE is one of {', '.join(IDENTIFIER_TYPES)}.",
        allow_abbrev=False,
    )
    sub.add_argument(
        "--from",
        dest="from_customer",
        metavar="TYPE:VALUE",
        required=True,
        type=identifier,
        help="the sender, e.g. mobile:9777785206",
    )
    sub.add_argument(
        "--to",
        dest="to_customer",
        metavar="TYPE:VALUE",
        required=True,
        type=identifier,
        help="the receiver",
    )
    sub.add_argument(
        "--points", type=_arg_type(_whole_number, "points"), required=True, help="to transfer"
    )
    sub.add_argument(
        "--program-id",
        metavar="ID",
        type=_arg_type(_whole_number, "program id"),
        help="the loyalty program (default: the org's)",
    )
    sub.add_argument("--group", action="store_true", help="a group-program transfer")
    sub.add_argument("--issue-otp", action="store_true", help="also send the sender an OTP")
    sub.set_defaults(run=_is_transferrable, prog=sub.prog)


def _add_bulk_transferrable(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "bulk-transferrable",
        parents=[connection],
        help="run a file of transferability checks under the rate limit",
        description="Read checks from CSV (header from,to,points[,program_id]; from/to as "
        "TYPE:VALUE) or JSON Lines (objects with the same keys) and write one JSON line per "
        'input row: {"line", "input", "ok", "result", "error"}. "line" is the row\'s line in '
        "the input (the CSV header is line 1). A malformed row (or one that is not UTF-8) "
        "becomes an error line; blank lines get none, the summary counts them. Exits 0 "
        "when the run happened, whatever its error lines; 1 when nothing could run (no answer "
        "from the API, or wrong credentials: the run stops at the first 401); 2 for bad usage, "
        "an INPUT that cannot be read included; 130 or 143 when SIGINT or SIGTERM stopped it "
        "(the lines of the rows that finished are written, and the summary).",
        allow_abbrev=False,
    )
    sub.add_argument("input", metavar="INPUT", help="a .csv or .jsonl file, or - for stdin")
    sub.add_argument(
        "--format", choices=("csv", "jsonl"), help="default: from the extension, else sniffed"
    )
    sub.add_argument("--output", metavar="FILE", help="write JSON lines here (default stdout)")
    sub.add_argument(
        "--concurrency",
        metavar="N",
        type=_arg_type(_positive_whole_number, "concurrency"),
        default=64,
        help="requests in flight at most (default 64)",
    )
    sub.add_argument(
        "--rate",
        type=_arg_type(parse_rate, "rate"),
        default="1000/60s",
        help="the account's quota per endpoint (default 1000/60s; also 100/1s, 1000/min, off)",
    )
    sub.add_argument(
        "--unordered", action="store_true", help="write lines as checks finish, not in order"
    )
    sub.set_defaults(run=_bulk_transferrable, prog=sub.prog)


def _add_demo(commands: Commands) -> None:
    sub = commands.add_parser(
        "demo",
        help="fan out checks and validation codes against an in-process sandbox",
        description="Start a sandbox with generated customers and a rate limit, run bulk "
        "transferability checks and validation codes through the real client at once, and "
        "show the progress and a summary. Needs no account and no flags.",
        allow_abbrev=False,
    )
    count = _arg_type(_whole_number, "count")
    sub.add_argument("--checks", type=count, default=2000, help="transfer checks (2000)")
    sub.add_argument("--codes", type=count, default=500, help="validation codes (500)")
    sub.add_argument("--customers", type=count, default=4000, help="sandbox customers (4000)")
    sub.add_argument(
        "--limit",
        type=_arg_type(_positive_whole_number, "limit"),
        default=250,
        help="the sandbox's requests per second per endpoint (250); the client uses 96%%",
    )
    sub.set_defaults(run=_demo, prog=sub.prog)


# ----------------------------------------------------------------------------- the client


def _credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, BasicAuth]:
    base_url = args.base_url or (REGIONS[args.region].value if args.region else None)
    base_url = base_url or environ.get(ENV_BASE_URL)
    if not base_url:
        raise UsageError(f"no API host: pass --base-url or --region, or set {ENV_BASE_URL}")
    username = args.username or environ.get(ENV_USERNAME)
    if not username:
        raise UsageError(f"no username: pass --username or set {ENV_USERNAME}")
    if args.password is not None:
        return base_url, BasicAuth(username, args.password)
    if args.password_md5 is not None:
        return base_url, BasicAuth.from_md5(username, args.password_md5)
    password, digest = environ.get(ENV_PASSWORD), environ.get(ENV_PASSWORD_MD5)
    if password and digest:
        raise UsageError(f"set only one of {ENV_PASSWORD} and {ENV_PASSWORD_MD5}")
    if password:
        return base_url, BasicAuth(username, password)
    if digest:
        return base_url, BasicAuth.from_md5(username, digest)
    raise UsageError(
        f"no password: pass --password or --password-md5, or set {ENV_PASSWORD} "
        f"or {ENV_PASSWORD_MD5}"
    )


def _client(args: argparse.Namespace, rate: Rate | None = (1000, 60.0)) -> CapillaryClient:
    base_url, auth = _credentials(args, os.environ)
    try:
        return CapillaryClient(base_url, auth, rate_limit=_rate_limit(rate), timeout=args.timeout)
    except InvalidRequestError as exc:
        raise UsageError(str(exc), args.prog) from None


def _rate_limit(rate: Rate | None) -> RateLimit | None:
    return None if rate is None else RateLimit(rate[0], per=rate[1])


# ----------------------------------------------------------------------------- JSON

_JSON = cattrs.Converter()
_JSON.register_unstructure_hook(datetime, datetime.isoformat)


def to_json(value: object, *, pretty: bool = False) -> str:
    """A result model or plain data as JSON; datetimes as ISO 8601 strings."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(_JSON.unstructure(value), option=option).decode()


# ----------------------------------------------------------------------------- single calls


async def _validation_code(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        result = await client.points.issue_validation_code(args.identifier, points=args.points)
    print(to_json(result, pretty=True))
    return EXIT_OK


async def _is_transferrable(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        result = await client.points.is_transferrable(
            from_customer=args.from_customer,
            to_customer=args.to_customer,
            points=args.points,
            program_id=args.program_id,
            group_program_transfer=args.group,
            issue_otp=args.issue_otp,
        )
    print(to_json(result, pretty=True))
    return EXIT_OK


# ----------------------------------------------------------------------------- counting


class Latencies:
    """Percentiles of any number of durations in constant memory: counts per bucket, the
    buckets 1 % wide on a log scale, so a percentile is off by at most 1 %."""

    __slots__ = ("_buckets", "count")
    _BASE = math.log(1.01)

    def __init__(self) -> None:
        self._buckets: Counter[int] = Counter()
        self.count = 0

    def add(self, seconds: float) -> None:
        self._buckets[math.floor(math.log(max(seconds, 1e-6)) / self._BASE)] += 1
        self.count += 1

    def percentile(self, share: float) -> float | None:
        if not self.count:
            return None
        rank, seen = max(1, math.ceil(share * self.count)), 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                return math.exp((bucket + 0.5) * self._BASE)
        raise AssertionError("unreachable: the ranks add up to count")  # pragma: no cover


class Batch:
    """The counters of one bulk run (one endpoint), fed one outcome at a time."""

    def __init__(self, name: str, total: int | None, rate: Rate | None) -> None:
        self.name, self.total, self.rate = name, total, rate
        self.done = self.ok = self.sent = self.attempts = self.answered = 0
        self.blank = 0  # blank input lines: nothing to check, no output line
        self.errors: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.latency = Latencies()
        self.started = time.perf_counter()
        self.finished: float | None = None

    def record(
        self, outcome: Outcome[Any, Any], error: CapillaryError | None, verdict: str | None = None
    ) -> None:
        self.done += 1
        if outcome.attempts:
            self.sent += 1
            self.attempts += outcome.attempts
            self.latency.add(outcome.elapsed)
        if error is None:
            self.ok += 1
            self.answered += 1
        else:
            self.errors[type(error).__name__] += 1
            # The API answered about this very row (no such customer...), as opposed to not
            # answering at all or refusing everyone.
            if isinstance(error, APIError) and not (
                error.retryable or isinstance(error, AuthenticationError)
            ):
                self.answered += 1
        if verdict is not None:
            self.verdicts[verdict] += 1

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return max(end - self.started, 1e-9)

    @property
    def throughput(self) -> float:
        """Rows per second."""
        return self.done / self.elapsed

    @property
    def request_rate(self) -> float:
        """Requests per second, retries included: what the rate limit is about."""
        return self.attempts / self.elapsed

    def finish(self) -> None:
        if self.finished is None:
            self.finished = time.perf_counter()

    def rows(self) -> list[tuple[str, str]]:
        """The summary of this batch, metric by metric."""
        p50, p99 = self.latency.percentile(0.5), self.latency.percentile(0.99)
        limit = "off" if self.rate is None else f"{self.rate[0] / self.rate[1]:,.1f} req/s"
        rows = [("rows", f"{self.done:,}"), ("ok", f"{self.ok:,}")]
        rows += [(f"  {what}", f"{n:,}") for what, n in sorted(self.verdicts.items(), reverse=True)]
        rows.append(("errors", f"{sum(self.errors.values()):,}"))
        rows += [(f"  {kind}", f"{n:,}") for kind, n in self.errors.most_common()]
        if self.blank:
            rows.append(("blank lines skipped", f"{self.blank:,}"))
        return [
            *rows,
            ("attempts (retries)", f"{self.attempts:,} ({self.attempts - self.sent:,})"),
            ("achieved rate", f"{self.request_rate:,.1f} req/s"),
            ("rate limit", limit if self.rate is None else f"{limit} ({format_rate(self.rate)})"),
            ("p50 / p99 (incl. queue)", f"{_ms(p50)} / {_ms(p99)}"),
            ("elapsed", f"{self.elapsed:.1f} s"),
        ]


def verdict(check: TransferCheck) -> str:
    return "transferrable" if check.transferrable else "not transferrable"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def client_counts(client: CapillaryClient, batches: Sequence[Batch]) -> dict[str, Any]:
    """requests, retries, rate_limited (429s met) and quota_wait (seconds per request).

    ``client.stats`` is read defensively, so that the command also works with a client that
    does not count: requests and retries then come from the finished outcomes, the rest is
    None (unknown)."""
    stats = getattr(client, "stats", None)
    attempts = sum(batch.attempts for batch in batches)
    requests = getattr(stats, "requests", attempts)
    waited = getattr(stats, "limiter_wait", None)
    return {
        "requests": requests,
        "retries": getattr(stats, "retries", attempts - sum(batch.sent for batch in batches)),
        "rate_limited": getattr(stats, "rate_limited", None),
        "quota_wait": None if waited is None else waited / max(requests, 1),
    }


def client_rows(client: CapillaryClient, batches: Sequence[Batch]) -> list[tuple[str, str]]:
    counts = client_counts(client, batches)
    return [
        ("requests sent", f"{counts['requests']:,}"),
        ("retries", f"{counts['retries']:,}"),
        ("HTTP 429 met", _count(counts["rate_limited"])),
        ("wait for quota", f"{_ms(counts['quota_wait'])} per request (average)"),
    ]


def status_line(client: CapillaryClient, batches: Sequence[Batch]) -> str:
    """The progress display's last line: what the client did so far."""
    counts = client_counts(client, batches)
    return (
        f"{counts['requests']:,} requests · {counts['retries']:,} retries · "
        f"{_count(counts['rate_limited'])} x 429 · quota wait {_ms(counts['quota_wait'])}/request"
    )


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


# ----------------------------------------------------------------------------- display


class Display(Protocol):
    """Progress while batches run (stderr), then tables and notes (the report stream)."""

    def start(self, batches: Sequence[Batch], status: Callable[[], str]) -> None: ...
    def update(self, batch: Batch) -> None: ...
    def stop(self) -> None: ...
    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...
    def note(self, text: str) -> None: ...


def make_display(progress: TextIO, report: TextIO) -> Display:
    """A rich display when rich is installed, else plain lines (and a hint, once)."""
    try:
        return RichDisplay(progress, report)
    except ImportError:
        progress.write(
            f"{PROG}: rich is not installed, so progress is plain text; "
            f"for bars and tables: {INSTALL_HINT}\n"
        )
        return PlainDisplay(progress, report)


class PlainDisplay:
    """Progress as a line per batch every few seconds; tables as aligned text."""

    INTERVAL = 2.0

    def __init__(self, progress: TextIO, report: TextIO) -> None:
        self._progress, self._report = progress, report
        self._batches: Sequence[Batch] = ()
        self._status: Callable[[], str] = str
        self._last = 0.0

    def start(self, batches: Sequence[Batch], status: Callable[[], str]) -> None:
        self._batches, self._status, self._last = batches, status, time.monotonic()

    def update(self, batch: Batch) -> None:
        now = time.monotonic()
        if now - self._last >= self.INTERVAL:
            self._last = now
            self._print()

    def stop(self) -> None:
        self._print()

    def _print(self) -> None:
        for batch in self._batches:
            total = "?" if batch.total is None else f"{batch.total:,}"
            self._progress.write(
                f"{batch.name}: {batch.done:,}/{total} done, {sum(batch.errors.values()):,} "
                f"errors, {batch.throughput:,.1f}/s\n"
            )
        self._progress.write(f"  {self._status()}\n")
        self._progress.flush()

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        lines = [header, *rows] if any(header) else list(rows)
        widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
        self._report.write(f"{title}:\n")
        for line in lines:
            cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            self._report.write("  " + "  ".join(cells).rstrip() + "\n")
        self._report.flush()

    def note(self, text: str) -> None:
        self._report.write(text + "\n")
        self._report.flush()


class _StatusLine:
    """A renderable that asks for its text at every refresh."""

    def __init__(self, status: Callable[[], str]) -> None:
        self._status = status

    def __rich__(self) -> Text:
        from rich.text import Text

        return Text(self._status(), style="dim")


class RichDisplay:
    """rich's progress bars (one per batch, plus a status line) and tables."""

    def __init__(self, progress: TextIO, report: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._err: Console = Console(file=progress, highlight=False)
        self._out: Console = Console(file=report, highlight=False)
        self._progress: Progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[errors]}"),
            TimeElapsedColumn(),
            console=self._err,
        )
        self._tasks: dict[int, TaskID] = {}
        self._live: Live | None = None

    def start(self, batches: Sequence[Batch], status: Callable[[], str]) -> None:
        from rich.console import Group
        from rich.live import Live

        for batch in batches:
            self._tasks[id(batch)] = self._progress.add_task(
                batch.name, total=batch.total, rate="", errors=""
            )
        # Not redirecting stdout: it may be carrying the JSON lines.
        self._live = Live(
            Group(self._progress, _StatusLine(status)),
            console=self._err,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def update(self, batch: Batch) -> None:
        errors = sum(batch.errors.values())
        self._progress.update(
            self._tasks[id(batch)],
            completed=batch.done,
            rate=f"{batch.throughput:,.1f}/s",
            errors=f"{errors:,} error{'' if errors == 1 else 's'}",
        )

    def stop(self) -> None:
        if self._live is None:
            return
        for task in self._progress.tasks:
            # A counted total is an estimate (multi-line CSV records); end on what was done.
            self._progress.update(task.id, total=task.completed)
        self._live.stop()
        self._live = None
        if not self._err.is_terminal:
            self._err.line()  # rich ends its last frame without one where it cannot redraw

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        from rich.table import Table

        table = Table(
            title=title, title_justify="left", header_style="bold", show_header=any(header)
        )
        for index, name in enumerate(header):
            table.add_column(name, style="bold" if index == 0 else None)
        for row in rows:
            table.add_row(*row)
        self._out.print(table)

    def note(self, text: str) -> None:
        self._out.print(text, markup=False, highlight=False)


def summary(display: Display, title: str, batches: Sequence[Batch]) -> None:
    """One table, a column per batch; a metric only some batches have (an error type) goes
    after the metric that precedes it in the first batch that has it."""
    values: dict[str, dict[int, str]] = {}
    order: list[str] = []
    for column, batch in enumerate(batches):
        previous = -1
        for metric, value in batch.rows():
            if metric not in values:
                values[metric] = {}
                order.insert(previous + 1, metric)
            values[metric][column] = value
            previous = order.index(metric)
    rows = [
        (metric, *(values[metric].get(column, "") for column in range(len(batches))))
        for metric in order
    ]
    display.table(title, ("", *(batch.name for batch in batches)), rows)


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
    blank_before: list[int] = []
    for header in reader:
        if not _blank_record(header):
            break
        blank_before.append(reader.line_num)
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

    def records() -> Iterator[Row]:
        yield from (Row(line, None) for line in blank_before)
        for fields in reader:
            if _blank_record(fields):
                yield Row(reader.line_num, None)
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
            yield (
                row_from(reader.line_num, data)
                if error is None
                else Row(reader.line_num, data, error=error)
            )

    return records()


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


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[Callable[[str], object]]:
    if path is None or path == "-":
        try:
            yield sys.stdout.write
        finally:
            sys.stdout.flush()
    else:
        with open(path, "w", encoding="utf-8") as file:
            yield file.write


# ----------------------------------------------------------------------------- bulk run


class BulkRun:
    """Rows in, one JSON line per row out: in input order, or as finished when not ordered.

    Malformed rows travel through ``is_transferrable_many`` beside the valid ones: the library
    turns any input that is not a ``TransferCheckRequest`` into an ``InvalidRequestError``
    outcome without sending it. So order, back-pressure and flat memory are the library's one
    mechanism for both kinds, and the row's own parse error replaces the generic one. Each
    object handed over is mapped to its row until its outcome arrives, so the map holds only
    what is in flight.
    """

    def __init__(
        self, rows: Iterable[Row], write: Callable[[str], object], batch: Batch, display: Display
    ) -> None:
        self._rows, self._write, self._batch, self._display = rows, write, batch, display
        self._pending: dict[int, Row] = {}

    def _inputs(self) -> Iterator[TransferCheckRequest | Row]:
        for row in self._rows:
            if row.blank:
                self._batch.blank += 1
                continue
            item: TransferCheckRequest | Row = row.request if row.request is not None else row
            self._pending[id(item)] = row
            yield item

    async def run(self, client: CapillaryClient, *, concurrency: int, ordered: bool) -> None:
        """Raises AuthenticationError at the first one: no later row could do better."""
        inputs = cast("Iterable[TransferCheckRequest]", self._inputs())
        outcomes = client.points.is_transferrable_many(
            inputs, concurrency=concurrency, ordered=ordered
        )
        async for outcome in outcomes:
            row = self._pending.pop(id(outcome.request))
            error = row.error or outcome.error
            self._write(self._line(row, outcome.value, error) + "\n")
            value = outcome.value
            self._batch.record(outcome, error, None if value is None else verdict(value))
            self._display.update(self._batch)
            if isinstance(error, AuthenticationError):
                raise error

    @staticmethod
    def _line(row: Row, value: TransferCheck | None, error: CapillaryError | None) -> str:
        return to_json(
            {
                "line": row.line,
                "input": row.input,
                "ok": error is None,
                "result": value,
                "error": None if error is None else error_fields(error),
            }
        )


async def _bulk_transferrable(args: argparse.Namespace) -> int:
    client = _client(args, rate=args.rate)  # usage errors before any file is touched
    with open_input(args.input, args.prog) as stream, open_output(args.output) as write:
        fmt, lines = (args.format, iter(stream)) if args.format else _format_of(args.input, stream)
        rows = csv_rows(lines, args.prog) if fmt == "csv" else jsonl_rows(lines)
        total = None if args.input == "-" else count_rows(args.input)
        if total is not None and fmt == "csv":
            total = max(total - 1, 0)
        batch = Batch("transfer checks", total, args.rate)
        display = make_display(sys.stderr, sys.stderr)
        async with client:
            display.start([batch], lambda: status_line(client, [batch]))
            try:
                await BulkRun(rows, write, batch, display).run(
                    client, concurrency=args.concurrency, ordered=not args.unordered
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


# ----------------------------------------------------------------------------- sandbox


def _sandbox_banner(fake: FakeCapillary, args: argparse.Namespace) -> str:
    last = max(args.customers - 1, 0)
    generated = (
        f" + {args.customers:,} generated (mobile 918000000000..918{last:09d}, "
        f"email customer0@example.com.., external_id ext-0..)"
        if args.customers
        else ""
    )
    return "\n".join(
        [
            f"Capillary sandbox listening on {fake.url} (Ctrl-C to stop)",
            f"  username: {args.username}   password: {args.password}",
            f"  customers: 919777785205, 919777785206, 919777785207 (the docs'){generated}",
            f"  programs: 973, 974 (group)   "
            f"rate limit per endpoint: {format_rate(args.rate_limit)}",
            "Try:",
            f"  export {ENV_BASE_URL}={fake.url} {ENV_USERNAME}={args.username} "
            f"{ENV_PASSWORD}={args.password}",
            f"  {PROG} is-transferrable --from mobile:9777785206 --to mobile:9777785207 --points 1",
        ]
    )


async def _sandbox(args: argparse.Namespace) -> int:
    from .testing import FakeCapillary

    try:
        fake = FakeCapillary(
            host=args.host,
            port=args.port,
            username=args.username,
            password=args.password,
            seed=args.seed,
            customers=args.customers,
            rate_limits=args.rate_limit,
        )
    except ValueError as exc:
        raise UsageError(str(exc), args.prog) from None
    async with fake:
        print(_sandbox_banner(fake, args), flush=True)
        try:
            await asyncio.get_running_loop().create_future()  # serve until cancelled
        except asyncio.CancelledError:
            # SIGINT or SIGTERM (see main): for a server the normal end, so it exits 0. The
            # cancellation is handled: Python 3.11+ counts them, and timeouts read the count.
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
        served = ", ".join(f"{n:,} x HTTP {s}" for s, n in sorted(fake.stats.by_status().items()))
        print(f"sandbox stopped; answered {served or 'nothing'}", flush=True)
    return EXIT_OK


# ----------------------------------------------------------------------------- demo


def demo_checks(count: int, customers: int) -> Iterator[TransferCheckRequest]:
    """Checks between generated customers: a mix of transferrable and not (customers with
    ``i % 4 == 3`` have no transferable points, amounts vary), and every 40th from an
    unknown customer."""
    for i in range(count):
        source, target = i % customers, (i + 1 + i % 7) % customers
        sender = f"917{i:09d}" if i % 40 == 39 else f"918{source:09d}"
        yield TransferCheckRequest(
            from_customer=Identifier.mobile(sender),
            to_customer=Identifier.mobile(f"918{target:09d}"),
            points=1 + (i * 97) % 800,
        )


def demo_codes(count: int, customers: int) -> Iterator[ValidationCodeRequest]:
    """Validation codes for generated customers, every 50th for an unknown one."""
    for i in range(count):
        mobile = f"917{i:09d}" if i % 50 == 49 else f"918{i % customers:09d}"
        yield ValidationCodeRequest(Identifier.mobile(mobile), points=100)


async def _drain(
    outcomes: AsyncIterator[Outcome[Any, Any]],
    batch: Batch,
    display: Display,
    verdict: Callable[[Any], str] | None = None,
) -> None:
    async for outcome in outcomes:
        value = outcome.value
        batch.record(
            outcome, outcome.error, None if value is None or verdict is None else verdict(value)
        )
        display.update(batch)
    batch.finish()


async def _demo(args: argparse.Namespace) -> int:
    from .testing import IS_TRANSFERRABLE, VALIDATION_CODE, FakeCapillary, Faults, max_in_window

    if args.customers < 2:
        raise UsageError("--customers must be at least 2", args.prog)
    server_rate: Rate = (args.limit, 1.0)
    client_rate: Rate = (max(1, args.limit * 96 // 100), 1.0)
    faults = Faults(latency=(0.002, 0.02), busy_rate=0.01, error_rate=0.005)
    display = make_display(sys.stderr, sys.stdout)
    async with FakeCapillary(
        customers=args.customers, seed=7, rate_limits=server_rate, faults=faults
    ) as fake:
        display.note(
            f"Sandbox: {fake.url}, {args.customers:,} customers, {format_rate(server_rate)} per "
            "endpoint,\n  2-20 ms latency, 1% busy (521) and 0.5% 502/503 pages.\n"
            f"Client: rate limit {format_rate(client_rate)} per endpoint, retries on.\n"
            f"Running {args.checks:,} transfer checks and {args.codes:,} validation codes at once."
        )
        auth = BasicAuth(fake.username, "sandbox")
        async with CapillaryClient(fake.url, auth, rate_limit=_rate_limit(client_rate)) as client:
            checks = Batch("transfer checks", args.checks, client_rate)
            codes = Batch("validation codes", args.codes, client_rate)
            batches = [checks, codes]
            display.start(batches, lambda: status_line(client, batches))
            try:
                await asyncio.gather(
                    _drain(
                        client.points.is_transferrable_many(
                            demo_checks(args.checks, args.customers), concurrency=32
                        ),
                        checks,
                        display,
                        verdict,
                    ),
                    _drain(
                        client.points.issue_validation_code_many(
                            demo_codes(args.codes, args.customers), concurrency=32
                        ),
                        codes,
                        display,
                    ),
                )
            finally:
                display.stop()
            summary(display, "demo: results", batches)
            peaks = [
                f"{max_in_window(fake.arrivals(key), server_rate[1]):,}"
                for key in (IS_TRANSFERRABLE, VALIDATION_CODE)
            ]
            display.table(
                "demo: client and sandbox",
                ("", ""),
                [
                    *client_rows(client, batches),
                    (
                        f"sandbox: most arrivals in {server_rate[1]:g} s",
                        f"{' / '.join(peaks)} (limit {server_rate[0]:,})",
                    ),
                ],
            )
    return EXIT_OK


# ----------------------------------------------------------------------------- main


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the command, after it had cleaned up (a bulk run has written
    the lines of the rows that finished and printed its summary)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def _until_signalled(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command``; SIGINT or SIGTERM cancels it, so its ``finally`` blocks run as on any
    other exit, and then raises :class:`Interrupted`. A command that ends normally although
    it was cancelled (the sandbox) returns its status. Where the loop cannot take signal
    handlers (Windows), Ctrl-C raises KeyboardInterrupt as usual and SIGTERM is not caught."""
    task = asyncio.ensure_future(command)
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    installed: list[signal.Signals] = []
    for caught in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(caught, stop, caught)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
            continue
        installed.append(caught)
    try:
        return await task
    except asyncio.CancelledError:
        if not received:
            raise
        raise Interrupted(received[0]) from None
    finally:
        for caught in installed:
            loop.remove_signal_handler(caught)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    redact = Redactor(arguments, os.environ)
    try:
        try:
            args = build_parser().parse_args(arguments)
        except SystemExit as exc:  # --help, --version
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        command = cast("Callable[[argparse.Namespace], Coroutine[Any, Any, int]]", args.run)
        return asyncio.run(_until_signalled(command(args)))
    except UsageError as exc:
        _complain(redact(f"{exc.prog}: error: {exc}"))
        return EXIT_USAGE
    except CapillaryError as exc:
        _complain(redact(f"{PROG}: {describe(exc)}"))
        return exit_status(exc)
    except BrokenPipeError:
        # The reader of stdout went away (| head); say nothing more to it.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:
        _complain(redact(f"{PROG}: error: {exc}"))
        return EXIT_FAILURE
    except Interrupted as exc:
        _complain(f"{PROG}: interrupted by {exc}")
        return 128 + exc.signum
    except KeyboardInterrupt:
        _complain(f"{PROG}: interrupted")
        return 128 + signal.SIGINT


def _complain(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
