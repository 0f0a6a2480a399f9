"""The ``capillary-points`` command::

    capillary-points sandbox [--port 8787] [--customers N] [--rate-limit 1000/60s]
    capillary-points validation-code --mobile 919777785205 [--points 100]
    capillary-points is-redeemable --mobile 919777785205 --points 100 [--issue-otp]
    capillary-points redeem --mobile 919777785205 --points 100 --validation-code CODE
    capillary-points is-transferrable --from mobile:9777785206 --to mobile:9777785207 --points 1
    capillary-points transfer --from mobile:9777785206 --to mobile:9777785207 --points 1
    capillary-points bulk-transferrable checks.csv [--output results.jsonl] [--resume]
                                        [--output-format jsonl|csv] [--rate 1000/60s]
    capillary-points demo

Connection settings come from flags or the environment (``CAPILLARY_BASE_URL`` or ``--region``,
``CAPILLARY_USERNAME``, ``CAPILLARY_PASSWORD`` or ``CAPILLARY_PASSWORD_MD5``; or, instead of
the till's, OAuth's ``CAPILLARY_OAUTH_KEY`` and ``CAPILLARY_OAUTH_SECRET``). The password, its
digest and the OAuth key and secret are never printed, not even inside a usage error.

Exit status: 0 done; 1 the API or the network failed (for a bulk run: nothing could run), or
redeem or transfer may have been applied without an answer saying so (OutcomeUnknownError);
2 bad usage, including arguments the library rejects before sending; 128 + the signal's number
when SIGINT (130) or SIGTERM (143) stopped the command, after it cleaned up (a bulk run writes
the lines of the rows that finished and its summary first). The sandbox ends on either signal
with 0.
All errors reach :func:`main`, the one place that turns them into messages and exit statuses;
a bulk run writes them as JSON lines through :func:`error_fields` instead.

Progress bars and tables use rich (the ``cli`` extra), imported only when a run needs them;
without it, or when stderr is no terminal (a log file), the progress is plain lines.

The package: ``arguments`` (the parser, option types, credentials), ``calls`` (the single
calls), ``bulk`` (rows in, JSON or CSV lines out, resume), ``display`` (counters, progress
and ETA, tables), ``sandbox``, ``demo``, ``results`` (JSON, error fields, exit statuses), and
here the dispatch and the one mapping of errors to exit statuses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from .. import CapillaryError, InvalidRequestError
from .arguments import PROG, Redactor, UsageError, build_parser
from .bulk import bulk_transferrable
from .calls import is_redeemable, is_transferrable, redeem, transfer, validation_code
from .demo import demo
from .results import EXIT_FAILURE, EXIT_USAGE, describe, error_fields
from .sandbox import sandbox

__all__ = ["build_parser", "error_fields", "main"]

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

#: What each command runs, by the name it has on the command line.
COMMANDS: Mapping[str, Command] = {
    "sandbox": sandbox,
    "validation-code": validation_code,
    "is-redeemable": is_redeemable,
    "redeem": redeem,
    "is-transferrable": is_transferrable,
    "transfer": transfer,
    "bulk-transferrable": bulk_transferrable,
    "demo": demo,
}


def exit_status(exc: BaseException) -> int:
    """2 for what the caller got wrong before anything was sent, 1 for everything else."""
    return EXIT_USAGE if isinstance(exc, (UsageError, InvalidRequestError)) else EXIT_FAILURE


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
        return asyncio.run(_until_signalled(COMMANDS[args.command](args)))
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
