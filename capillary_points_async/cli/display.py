"""What a bulk run shows: counters fed one outcome at a time, progress while it runs (rich
bars on a terminal; plain lines every few seconds without rich or when stderr is a file or a
pipe), then summary tables."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .. import (
    APIError,
    AuthenticationError,
    CapillaryClient,
    CapillaryError,
    Outage,
    Outcome,
    TransferCheck,
)
from .arguments import INSTALL_HINT, PROG, Rate, format_rate

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.progress import Progress, TaskID
    from rich.text import Text

__all__ = [
    "Batch",
    "Clock",
    "Display",
    "Latencies",
    "Pace",
    "PlainDisplay",
    "RichDisplay",
    "client_rows",
    "duration",
    "make_display",
    "pace_text",
    "status_line",
    "summary",
    "verdict",
]


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


#: Seconds on some monotonic clock. A bulk run gives its loop's: a test on a virtual clock then
#: sees the progress a user would see.
Clock = Callable[[], float]


class Pace:
    """Rows per second over about the last minute, from samples of the rows done (one a
    second at most, so its memory is bounded): what the ETA divides by. A rate since the start
    would stay low for hours after a long outage; :meth:`restart` forgets the samples, so that
    after an outage the rate is the run's again within seconds. Rows a resume skips are never
    counted: they are not done by this run."""

    WINDOW = 60.0  # seconds of samples the rate is taken over
    STEP = 1.0  # seconds between samples; also the least span a rate is taken over

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._done = 0
        self.restart()

    def add(self, done: int) -> None:
        """``done`` rows are done now."""
        now = self._clock()
        self._done = done
        if now - self._samples[-1][0] >= self.STEP:
            self._samples.append((now, done))
        self._forget(now)

    def restart(self) -> None:
        """Forget the samples: the rate is taken from now on."""
        self._samples.clear()
        self._samples.append((self._clock(), self._done))

    def rate(self) -> float | None:
        """Rows per second since the oldest sample of the window; None until the samples span
        a second."""
        now = self._clock()
        self._forget(now)
        since, done = self._samples[0]
        span = now - since
        return (self._done - done) / span if span >= self.STEP else None

    def _forget(self, now: float) -> None:
        """Drop the samples before the window, keeping the last one at or before its start."""
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.WINDOW:
            self._samples.popleft()


def duration(seconds: float) -> str:
    """``45s``, ``8m 05s``, ``17h 02m``, ``3d 04h``: two units at most, for a glance."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def pace_text(left: int | None, rate: float | None, outage: Outage | None) -> str:
    """What a running batch shows after its counts: ``16.5/s, ETA 8m 51s`` (rows ``left``
    over the recent ``rate``); ``rows left unknown`` without a total (stdin); while its
    endpoint is down, that the run is paused, since when and why, instead of an ETA."""
    if outage is not None:
        error = f"{type(outage.error).__name__}: {outage.error}"
        return f"paused {duration(outage.down_for)}, the API is down ({' '.join(error.split())})"
    speed = "-/s" if rate is None else f"{rate:,.1f}/s"
    if left is None:
        return f"{speed}, rows left unknown"
    if rate is None or not rate > 0 or not math.isfinite(left / rate):
        return f"{speed}, ETA -"
    return f"{speed}, ETA {duration(left / rate)}"


class Batch:
    """The counters of one bulk run (one endpoint), fed one outcome at a time."""

    def __init__(
        self, name: str, total: int | None, rate: Rate | None, clock: Clock = time.monotonic
    ) -> None:
        self.name, self.total, self.rate, self._clock = name, total, rate, clock
        self.done = self.ok = self.sent = self.attempts = self.answered = 0
        self.blank = 0  # blank input lines: nothing to check, no output line
        self.resumed = 0  # rows an earlier run has lines for: skipped by --resume
        self.errors: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.latency = Latencies()
        self.pace = Pace(clock)
        #: The endpoint's outage while it is down (see :meth:`watch`), else None.
        self.outage: Outage | None = None
        self.started = clock()
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
        self.pace.add(self.done)

    def watch(self, outage: Outage | None) -> None:
        """The endpoint's outage as it is now, None while it is up. While it is down the
        recent rate starts over, so that the ETA after it is not the pause's."""
        self.outage = outage
        if outage is not None:
            self.pace.restart()

    def progress(self) -> str:
        """``1,234/10,000 done, 5 errors, 16.5/s, ETA 8m 51s``; once finished, the average
        rate instead of the pace."""
        total = "?" if self.total is None else f"{self.total:,}"
        errors = sum(self.errors.values())
        return f"{self.done:,}/{total} done, {errors:,} errors, {self.rate_and_eta()}"

    def rate_and_eta(self) -> str:
        """:func:`pace_text` of this batch now; once finished, its average rate."""
        if self.finished is not None:
            return f"{self.throughput:,.1f}/s on average"
        left = None if self.total is None else max(self.total - self.done, 0)
        return pace_text(left, self.pace.rate(), self.outage)

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else self._clock()
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
            self.finished = self._clock()

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
        if self.resumed:
            rows.append(("rows done before (resume)", f"{self.resumed:,}"))
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
    """requests, retries, rate_limited (429s met), quota_wait (seconds per request), outages
    (begun), outage_paused (inputs an outage paused) and down_time (seconds endpoints were
    down: for a bulk run, the time it was paused).

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
        "outages": getattr(stats, "outages", None),
        "outage_paused": getattr(stats, "outage_paused", None),
        "down_time": getattr(stats, "down_time", None),
    }


def client_rows(client: CapillaryClient, batches: Sequence[Batch]) -> list[tuple[str, str]]:
    counts = client_counts(client, batches)
    return [
        ("requests sent", f"{counts['requests']:,}"),
        ("retries", f"{counts['retries']:,}"),
        ("HTTP 429 met", _count(counts["rate_limited"])),
        ("wait for quota", f"{_ms(counts['quota_wait'])} per request (average)"),
        ("outages", _count(counts["outages"])),
        ("rows paused by an outage", _count(counts["outage_paused"])),
        ("time paused (API down)", _seconds(counts["down_time"])),
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


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} s"


class Display(Protocol):
    """Progress while batches run (stderr), then tables and notes (the report stream)."""

    def start(self, batches: Sequence[Batch], status: Callable[[], str]) -> None: ...
    def update(self, batch: Batch) -> None: ...
    def stop(self) -> None: ...
    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...
    def note(self, text: str) -> None: ...


def make_display(progress: TextIO, report: TextIO, clock: Clock = time.monotonic) -> Display:
    """A rich display when rich is installed, else plain lines (and a hint, once)."""
    try:
        return RichDisplay(progress, report, clock)
    except ImportError:
        progress.write(
            f"{PROG}: rich is not installed, so progress is plain text; "
            f"for bars and tables: {INSTALL_HINT}\n"
        )
        return PlainDisplay(progress, report, clock)


class PlainDisplay:
    """Progress as a line per batch every few seconds (``transfer checks: 1,234/10,000 done,
    5 errors, 16.5/s, ETA 8m 51s``, then the status line); tables as aligned text."""

    INTERVAL = 2.0

    def __init__(self, progress: TextIO, report: TextIO, clock: Clock = time.monotonic) -> None:
        self._progress, self._report, self._clock = progress, report, clock
        self._batches: Sequence[Batch] = ()
        self._status: Callable[[], str] = str
        self._last = 0.0

    def start(self, batches: Sequence[Batch], status: Callable[[], str]) -> None:
        self._batches, self._status, self._last = batches, status, self._clock()

    def update(self, batch: Batch) -> None:
        now = self._clock()
        if now - self._last >= self.INTERVAL:
            self._last = now
            self._print()

    def stop(self) -> None:
        self._print()

    def _print(self) -> None:
        for batch in self._batches:
            self._progress.write(f"{batch.name}: {batch.progress()}\n")
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
    """rich's progress bars (one per batch, plus a status line) and tables. Where the progress
    stream is no terminal (a log file, a pipe) rich could draw only the last frame, at the
    end: a run lasting hours would show nothing until then. There the progress is
    :class:`PlainDisplay`'s lines, and only the tables are rich's."""

    def __init__(self, progress: TextIO, report: TextIO, clock: Clock = time.monotonic) -> None:
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
        self._lines = (
            None
            if self._err.is_terminal and not self._err.is_dumb_terminal
            else PlainDisplay(progress, report, clock)
        )
        self._progress: Progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[errors]}"),
            TextColumn("{task.fields[pace]}"),
            TimeElapsedColumn(),
            console=self._err,
        )
        self._batches: Sequence[Batch] = ()
        self._tasks: dict[int, TaskID] = {}
        self._live: Live | None = None

    def start(self, batches: Sequence[Batch], status: Callable[[], str]) -> None:
        if self._lines is not None:
            self._lines.start(batches, status)
            return
        from rich.console import Group
        from rich.live import Live

        self._batches = batches
        for batch in batches:
            self._tasks[id(batch)] = self._progress.add_task(
                batch.name, total=batch.total, pace="", errors=""
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
        if self._lines is not None:
            self._lines.update(batch)
            return
        errors = sum(batch.errors.values())
        self._progress.update(
            self._tasks[id(batch)],
            completed=batch.done,
            pace=batch.rate_and_eta(),
            errors=f"{errors:,} error{'' if errors == 1 else 's'}",
        )

    def stop(self) -> None:
        if self._lines is not None:
            self._lines.stop()
            return
        if self._live is None:
            return
        for batch in self._batches:
            self.update(batch)  # the average rate of a finished batch, not an ETA
            # A counted total is an estimate (multi-line CSV records); end on what was done.
            self._progress.update(self._tasks[id(batch)], total=batch.done)
        self._live.stop()
        self._live = None

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
