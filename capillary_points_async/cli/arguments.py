"""The command line: its parser, option types and credentials.

Every command is declared here; ``main`` (in ``__init__``) runs the one that was named. Errors
of usage raise :class:`UsageError` instead of exiting, so that ``main`` is the one place that
turns them into a message and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeAlias

from .. import (
    BasicAuth,
    CapillaryClient,
    Identifier,
    InvalidRequestError,
    OAuth,
    RateLimit,
    Region,
    __version__,
)

__all__ = [
    "ENV_BASE_URL",
    "ENV_OAUTH_KEY",
    "ENV_OAUTH_SECRET",
    "ENV_PASSWORD",
    "ENV_PASSWORD_MD5",
    "ENV_USERNAME",
    "IDENTIFIER_TYPES",
    "PROG",
    "Rate",
    "Redactor",
    "UsageError",
    "build_parser",
    "format_rate",
    "make_client",
    "parse_identifier",
    "parse_rate",
    "rate_limit",
]

PROG = "capillary-points"
INSTALL_HINT = "pip install 'capillary-points-async[cli]'"

ENV_BASE_URL = "CAPILLARY_BASE_URL"
ENV_USERNAME = "CAPILLARY_USERNAME"
ENV_PASSWORD = "CAPILLARY_PASSWORD"
ENV_PASSWORD_MD5 = "CAPILLARY_PASSWORD_MD5"
ENV_OAUTH_KEY = "CAPILLARY_OAUTH_KEY"
ENV_OAUTH_SECRET = "CAPILLARY_OAUTH_SECRET"
#: The environment variables whose values are never printed.
SECRET_VARIABLES = (ENV_PASSWORD, ENV_PASSWORD_MD5, ENV_OAUTH_KEY, ENV_OAUTH_SECRET)

#: TYPE of ``TYPE:VALUE``, and the customer flags of ``validation-code``, ``is-redeemable`` and
#: ``redeem``.
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


class UsageError(Exception):
    """Bad usage: a one-line message and exit status 2. argparse's errors become one too."""

    def __init__(self, message: str, prog: str = PROG) -> None:
        super().__init__(message)
        self.prog = prog


_SECRET_OPTION = re.compile(r"pass|pasw|pwd|secret|md5|key|oauth|token", re.IGNORECASE)


class Redactor:
    """Blanks secrets out of what goes to stderr.

    The secrets are the values of any option whose name looks like a password's or an OAuth
    credential's (so a mistyped ``--pasword x`` is covered too, which argparse would echo as
    an unrecognized argument) and the environment's :data:`SECRET_VARIABLES`.
    """

    def __init__(self, argv: Sequence[str], environ: Mapping[str, str]) -> None:
        secrets = {environ.get(name, "") for name in SECRET_VARIABLES}
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
        "--oauth-key",
        metavar="KEY",
        help=f"instead of a till: an OAuth client's key (env {ENV_OAUTH_KEY})",
    )
    parent.add_argument(
        "--oauth-secret",
        metavar="SECRET",
        help=f"and its secret (env {ENV_OAUTH_SECRET}: better, flags show in ps)",
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
        "redemptions, transfers and the checks before them (transferability also for a file "
        "of them), a local sandbox and a demo.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = _connection_options()
    _add_sandbox(commands)
    _add_validation_code(commands, connection)
    _add_is_redeemable(commands, connection)
    _add_redeem(commands, connection)
    _add_is_transferrable(commands, connection)
    _add_transfer(commands, connection)
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
    sub.set_defaults(prog=sub.prog)


# What redeem and transfer say about the one outcome a caller must handle with care.
_MAYBE_MOVED = (
    "It is never sent twice. When it may have been applied but no answer says so (a timeout or "
    "a reset after sending, a 5xx), the command exits 1 with OutcomeUnknownError and the "
    "request id, if any: the points may have moved, so check the customer's points before "
    "you run it again."
)


def _add_customer(sub: _Parser) -> None:
    """One required customer flag per identifier type: ``--mobile``, ``--email``..."""
    who = sub.add_mutually_exclusive_group(required=True)
    for kind, make in IDENTIFIER_TYPES.items():
        who.add_argument(
            f"--{kind.replace('_', '-')}",
            dest="identifier",
            metavar="VALUE",
            type=_arg_type(make, kind),
            help=f"the customer's {kind.replace('_', ' ')}",
        )


def _add_parties(sub: _Parser) -> None:
    """``--from``, ``--to`` (``TYPE:VALUE``) and ``--points`` of a transfer or its check."""
    identifier = _arg_type(parse_identifier, "identifier")
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
    _add_points(sub, "to transfer", required=True)


def _add_points(sub: _Parser, text: str, *, required: bool) -> None:
    sub.add_argument(
        "--points", type=_arg_type(_whole_number, "points"), required=required, help=text
    )


def _add_program_id(sub: _Parser) -> None:
    sub.add_argument(
        "--program-id",
        metavar="ID",
        type=_arg_type(_whole_number, "program id"),
        help="the loyalty program (default: the org's)",
    )


def _add_validation_code(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "validation-code",
        parents=[connection],
        help="issue the validation code a customer needs to redeem points",
        description="GET v1.1/points/validationcode; prints the result as JSON. The code goes "
        "to the customer (SMS or e-mail), never to the caller.",
        allow_abbrev=False,
    )
    _add_customer(sub)
    _add_points(sub, "points to redeem", required=False)
    sub.set_defaults(prog=sub.prog)


def _add_is_redeemable(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "is-redeemable",
        parents=[connection],
        help="check whether a customer can redeem points now",
        description="GET v1.1/points/isredeemable; prints the verdict (redeemable) and what "
        "the points are worth as JSON. A negative verdict is an answer: exit 0.",
        allow_abbrev=False,
    )
    _add_customer(sub)
    _add_points(sub, "points to redeem", required=True)
    _add_program_id(sub)
    sub.add_argument("--validation-code", metavar="CODE", help="check this code as well")
    sub.add_argument("--issue-otp", action="store_true", help="also issue the validation code")
    sub.set_defaults(prog=sub.prog)


def _add_redeem(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "redeem",
        parents=[connection],
        help="redeem a customer's points with the validation code they received",
        description="POST v1.1/points/redeem, quoting the validation code the customer "
        "received (issued by validation-code, or is-redeemable --issue-otp; a code is used up "
        f"by the redemption that quotes it); prints the redemption as JSON. {_MAYBE_MOVED}",
        allow_abbrev=False,
    )
    _add_customer(sub)
    _add_points(sub, "points to redeem", required=True)
    sub.add_argument(
        "--validation-code", metavar="CODE", required=True, help="the code the customer received"
    )
    sub.add_argument("--transaction-number", metavar="BILL", help="the bill they are redeemed on")
    _add_program_id(sub)
    sub.add_argument("--notes", help="recorded with the redemption")
    sub.set_defaults(prog=sub.prog)


def _add_is_transferrable(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "is-transferrable",
        parents=[connection],
        help="check whether points can move from one customer to another",
        description="POST v2/points/isTransferrable; prints the result as JSON. "
        f"TYPE is one of {', '.join(IDENTIFIER_TYPES)}.",
        allow_abbrev=False,
    )
    _add_parties(sub)
    _add_program_id(sub)
    sub.add_argument("--group", action="store_true", help="a group-program transfer")
    sub.add_argument("--issue-otp", action="store_true", help="also send the sender an OTP")
    sub.set_defaults(prog=sub.prog)


def _add_transfer(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "transfer",
        parents=[connection],
        help="move points from one customer to another",
        description="POST v2/points/transfer; prints the transfer as JSON. Check first with "
        f"is-transferrable (with --issue-otp when the org asks for a code). {_MAYBE_MOVED} "
        f"TYPE is one of {', '.join(IDENTIFIER_TYPES)}.",
        allow_abbrev=False,
    )
    _add_parties(sub)
    _add_program_id(sub)
    sub.add_argument("--code", metavar="OTP", help="the code the sender received, if asked for")
    sub.add_argument("--notes", help="recorded with the transfer")
    sub.set_defaults(prog=sub.prog)


def _add_bulk_transferrable(commands: Commands, connection: _Parser) -> None:
    sub = commands.add_parser(
        "bulk-transferrable",
        parents=[connection],
        help="run a file of transferability checks under the rate limit",
        description="Read checks from CSV (header from,to,points[,program_id]; from/to as "
        "TYPE:VALUE) or JSON Lines (objects with the same keys) and write one line per input "
        'row: a JSON line {"line", "input", "ok", "result", "error"}, or with --output-format '
        'csv a CSV record. "line" is the row\'s physical '
        "line in the input (the CSV header is line 1; a CSV record whose quoted field spans "
        "lines has the line it begins on). A malformed row (or one that is not UTF-8) "
        "becomes an error line; blank lines get none, the summary counts them. Progress on "
        "stderr shows rows done, the rate over the last minute and the ETA (rows left over "
        "that rate), or that the run is paused while the API is down; the summary counts "
        "rows skipped by --resume, rows paused by an outage and the time paused. Exits 0 "
        "when the run happened, whatever its error lines; 1 when nothing could run (the API "
        "down before it answered anything: one line names host, port and error; or wrong "
        "credentials: the run stops at the first 401); 2 for bad usage, "
        "an INPUT that cannot be read included; 130 or 143 when SIGINT or SIGTERM stopped it "
        "(the lines of the rows that finished are written, and the summary).",
        allow_abbrev=False,
    )
    sub.add_argument("input", metavar="INPUT", help="a .csv or .jsonl file, or - for stdin")
    sub.add_argument(
        "--format", choices=("csv", "jsonl"), help="default: from the extension, else sniffed"
    )
    sub.add_argument(
        "--output",
        metavar="FILE",
        help="write the lines here (default stdout); an existing FILE is refused without --resume",
    )
    sub.add_argument(
        "--output-format",
        choices=("jsonl", "csv"),
        default="jsonl",
        help="jsonl (default): the input and the whole result of each row; csv: a header, "
        "then one flat record per row with the columns line, from, to, points, program_id "
        "(the input's cells as given), ok, transferrable (true or false; empty for an "
        "error), error_type, error_code, error_message and request_id (empty when absent); "
        "a line break in a cell becomes a space, so that each record is one line",
    )
    sub.add_argument(
        "--resume",
        action="store_true",
        help="continue the run that wrote --output: send only the rows it has no line for "
        "and append theirs (a torn last line is cut and its row redone); refused if INPUT "
        "is not the file that run began with (its size and SHA-256 are kept in "
        "FILE.input.json) or --output-format is not the one it was begun with",
    )
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
    sub.add_argument(
        "--max-outage",
        metavar="SECONDS",
        type=_arg_type(_positive_seconds, "max outage"),
        default=600.0,
        help="how long an outage (refused connections, timeouts, 5xx) may pause the run before "
        "its rows fail (default 600); a run that never had an answer exits 1 at once instead",
    )
    sub.set_defaults(prog=sub.prog)


def _add_demo(commands: Commands) -> None:
    sub = commands.add_parser(
        "demo",
        help="fan out checks and validation codes against an in-process sandbox, then "
        "redeem and transfer",
        description="Start a sandbox with generated customers and a rate limit, run bulk "
        "transferability checks and validation codes through the real client at once, and "
        "show the progress and a summary; then redeem points with a validation code and "
        "transfer points after checking, call by call. Needs no account and no flags.",
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
    sub.set_defaults(prog=sub.prog)


# ----------------------------------------------------------------------------- the client


def _credentials(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[str, BasicAuth | OAuth]:
    """The host and the credentials. A flag wins over its environment variable, and flags of
    one kind of credentials (till or OAuth) over variables of the other kind."""
    base_url = args.base_url or (REGIONS[args.region].value if args.region else None)
    base_url = base_url or environ.get(ENV_BASE_URL)
    if not base_url:
        raise UsageError(f"no API host: pass --base-url or --region, or set {ENV_BASE_URL}")
    oauth_flags = args.oauth_key is not None or args.oauth_secret is not None
    till_flags = args.password is not None or args.password_md5 is not None
    if oauth_flags and till_flags:
        raise UsageError("pass a till password or OAuth credentials, not both")
    use_oauth = oauth_flags
    if not (oauth_flags or till_flags):
        use_oauth = bool(environ.get(ENV_OAUTH_KEY) or environ.get(ENV_OAUTH_SECRET))
        if use_oauth and (environ.get(ENV_PASSWORD) or environ.get(ENV_PASSWORD_MD5)):
            raise UsageError(
                f"set a till password ({ENV_PASSWORD} or {ENV_PASSWORD_MD5}) or OAuth "
                f"credentials ({ENV_OAUTH_KEY}, {ENV_OAUTH_SECRET}), not both"
            )
    if use_oauth:
        return base_url, _oauth(args, environ)
    return base_url, _till(args, environ)


def _oauth(args: argparse.Namespace, environ: Mapping[str, str]) -> OAuth:
    key = args.oauth_key if args.oauth_key is not None else environ.get(ENV_OAUTH_KEY)
    if not key:
        raise UsageError(f"no OAuth key: pass --oauth-key or set {ENV_OAUTH_KEY}")
    secret = args.oauth_secret if args.oauth_secret is not None else environ.get(ENV_OAUTH_SECRET)
    if not secret:
        raise UsageError(f"no OAuth secret: pass --oauth-secret or set {ENV_OAUTH_SECRET}")
    return OAuth(key, secret)


def _till(args: argparse.Namespace, environ: Mapping[str, str]) -> BasicAuth:
    username = args.username or environ.get(ENV_USERNAME)
    if not username:
        raise UsageError(f"no username: pass --username or set {ENV_USERNAME}")
    if args.password is not None:
        return BasicAuth(username, args.password)
    if args.password_md5 is not None:
        return BasicAuth.from_md5(username, args.password_md5)
    password, digest = environ.get(ENV_PASSWORD), environ.get(ENV_PASSWORD_MD5)
    if password and digest:
        raise UsageError(f"set only one of {ENV_PASSWORD} and {ENV_PASSWORD_MD5}")
    if password:
        return BasicAuth(username, password)
    if digest:
        return BasicAuth.from_md5(username, digest)
    raise UsageError(
        f"no password: pass --password or --password-md5, or set {ENV_PASSWORD} "
        f"or {ENV_PASSWORD_MD5} (or OAuth credentials: --oauth-key and --oauth-secret, or "
        f"{ENV_OAUTH_KEY} and {ENV_OAUTH_SECRET})"
    )


def make_client(args: argparse.Namespace, rate: Rate | None = (1000, 60.0)) -> CapillaryClient:
    """The client a command's connection options describe; bad ones are usage errors."""
    base_url, auth = _credentials(args, os.environ)
    try:
        return CapillaryClient(base_url, auth, rate_limit=rate_limit(rate), timeout=args.timeout)
    except InvalidRequestError as exc:
        raise UsageError(str(exc), args.prog) from None


def rate_limit(rate: Rate | None) -> RateLimit | None:
    """The client's :class:`RateLimit` for ``(requests, per seconds)``; None: no limit."""
    return None if rate is None else RateLimit(rate[0], per=rate[1])
