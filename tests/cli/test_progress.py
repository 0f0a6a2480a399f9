"""bulk-transferrable's progress and summary: the rate over the last minute and the ETA it
gives, and a run paused by an outage, which the progress says and the summary counts."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import pytest

from capillary_points_async import InvalidRequestError, Outage, Outcome, TransportError
from capillary_points_async.cli.arguments import build_parser
from capillary_points_async.cli.bulk import bulk_transferrable
from capillary_points_async.cli.display import Batch, duration, pace_text
from capillary_points_async.testing import FakeCapillary, Faults

from .._clock import virtual_time
from .conftest import PASSWORD, USERNAME

DOWN = Outage(
    endpoint="v2/points/isTransferrable",
    error=TransportError("connection refused\nby 127.0.0.1:8787", connect_failed=True),
    down_for=300.0,
    failed_probes=7,
    next_probe_in=12.0,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def finish(batch: Batch, clock: FakeClock, seconds: int, per_second: int) -> None:
    """``per_second`` rows finish at the end of each of ``seconds`` seconds."""
    outcome: Outcome[None, None] = Outcome(request=None, error=InvalidRequestError("malformed"))
    for _ in range(seconds):
        clock.now += 1
        for _ in range(per_second):
            batch.record(outcome, outcome.error)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (59.6, "1m 00s"), (125, "2m 05s"), (3600 * 17 + 150, "17h 02m"),
     (86_400 * 3 + 3600 * 4 + 59, "3d 04h")],
)  # fmt: skip
def test_a_duration_shows_two_units_at_most(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_eta_is_the_rows_left_over_the_rate_of_the_last_minute() -> None:
    clock = FakeClock()
    batch = Batch("checks", 10_000, None, clock)
    assert batch.rate_and_eta() == "-/s, ETA -"  # no rate yet

    finish(batch, clock, 600, 1)
    assert batch.pace.rate() == pytest.approx(1.0)
    assert batch.rate_and_eta() == "1.0/s, ETA 2h 36m"  # 9,400 rows left

    finish(batch, clock, 120, 10)  # faster: the slow start no longer counts
    assert batch.pace.rate() == pytest.approx(10.0, rel=0.02)  # since the start: 2.5/s
    assert pace_text(8_200, 10.0, None) == "10.0/s, ETA 13m 40s"
    assert pace_text(None, 10.0, None) == "10.0/s, rows left unknown"  # stdin: no total
    assert pace_text(8_200, 0.0, None) == "0.0/s, ETA -"


def test_an_outage_shows_the_run_paused_and_does_not_dilute_the_rate_after_it() -> None:
    clock = FakeClock()
    batch = Batch("checks", 10_000, None, clock)
    finish(batch, clock, 120, 10)

    batch.watch(DOWN)  # watched every tick while down
    clock.now += 300
    batch.watch(DOWN)
    assert batch.rate_and_eta() == (
        "paused 5m 00s, the API is down (TransportError: connection refused by 127.0.0.1:8787)"
    )

    batch.watch(None)
    finish(batch, clock, 10, 5)
    assert batch.pace.rate() == pytest.approx(5.0)  # not 50 rows over the pause's 310 s
    assert batch.rate_and_eta() == "5.0/s, ETA 29m 10s"  # 8,750 rows left
    batch.finish()
    assert batch.rate_and_eta() == "2.9/s on average"  # once finished: 1,250 rows in 430 s


@virtual_time
async def test_a_run_through_an_outage_says_it_is_paused_and_the_summary_counts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command on the virtual clock, the sandbox down from 3 s to 13 s: 30 rows
    are done at 10/s before it, the rest after. stderr is no terminal here: the progress is
    plain lines, every 2 s, even with rich installed."""
    loop = asyncio.get_running_loop()
    path, output = tmp_path / "checks.csv", tmp_path / "results.csv"
    rows = (f"mobile:918{i % 40:09d},mobile:918{(i + 1) % 40:09d},1" for i in range(100))
    path.write_text("from,to,points\n" + "\n".join(rows) + "\n")
    async with FakeCapillary(
        customers=40, seed=3, faults=Faults(outage_during=(3.0, 13.0))
    ) as fake:
        args = build_parser().parse_args([
            "bulk-transferrable", str(path), "--output", str(output), "--output-format", "csv",
            "--base-url", fake.url, "--username", USERNAME, "--password", PASSWORD,
            "--rate", "10/1s",
        ])  # fmt: skip
        status = await bulk_transferrable(args)
        ended = loop.time()

    err = capsys.readouterr().err
    assert status == 0, err
    assert Counter(line.split(",")[0] for line in output.read_text().splitlines()[1:]) == (
        Counter(str(n) for n in range(2, 102))
    )
    progress = re.findall(r"^transfer checks: (\d+)/100 done, 0 errors, (.*)$", err, re.M)
    assert len(progress) >= 8, err  # 2 s apart, through a run of 20 s
    paces = [pace for _, pace in progress]
    first_paused = next(n for n, pace in enumerate(paces) if pace.startswith("paused"))
    assert first_paused >= 1, err
    assert all(re.fullmatch(r"\d+\.\d/s, ETA \d+s", pace) for pace in paces[:first_paused])
    paused = [pace for pace in paces if pace.startswith("paused")]
    assert len(paused) >= 3, err
    port = fake.url.rsplit(":", 1)[1]
    for pace in paused:
        assert re.fullmatch(
            r"paused \d+s, the API is down \(TransportError: .*Cannot connect to host "
            rf"127\.0\.0\.1:{port}\b.*\)",
            pace,
        ), pace
    # the summary
    assert re.search(r"^\W*outages\W+1\W*$", err, re.M), err
    held = re.search(r"rows paused by an outage\W+(\d+)", err)
    assert held is not None, err
    assert 0 < int(held[1]) <= 70  # rows not done when it began, each counted once
    down = re.search(r"time paused \(API down\)\W+([\d.]+) s", err)
    assert down is not None, err
    assert 13.0 - 6.0 <= float(down[1]) <= ended - 3.0  # went down after 3 s, up after 13 s
