"""is-redeemable, redeem and transfer against the sandbox, and OAuth credentials: JSON on
stdout and exit 0, or the error on stderr and exit 1. An OutcomeUnknownError of redeem or
transfer is reported as such, with its request id or the lack of one, after one request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from capillary_points_async.testing import FakeCapillary, Faults, OtpScope, SandboxCustomer

from .conftest import Result, SandboxThread

Cli = Callable[..., Result]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
REDEEMER = "919777785205"  # the docs' customer with 5,000 points
SENDER, RECEIVER = "919777785206", "919777785207"  # 500 transferable points, and none
OAUTH_KEY, OAUTH_SECRET = "key-7f3a", "secret-c9d1e2"
REDEEM, TRANSFER = "v1.1/points/redeem", "v2/points/transfer"
PARTIES = ["--from", f"mobile:{SENDER}", "--to", f"mobile:{RECEIVER}"]


def points_of(thread: SandboxThread, mobile: str) -> float:
    """What the customer can redeem, as the sandbox's state says."""
    return thread.read(lambda fake: _customer(fake, mobile).redeemable_points)


def transferable_of(thread: SandboxThread, mobile: str) -> float:
    return thread.read(lambda fake: _customer(fake, mobile).transaction_points)


def _customer(fake: FakeCapillary, mobile: str) -> SandboxCustomer:
    customer = fake.state.find("mobile", mobile)
    assert customer is not None
    return customer


def code_sent_to(thread: SandboxThread, mobile: str, scope: OtpScope = "redeem") -> str:
    """The code the customer received "by SMS"."""
    code = thread.read(lambda fake: fake.state.otp_for(mobile, scope=scope))
    assert code, f"no {scope} code was issued to {mobile}"
    return str(code)


# ----------------------------------------------------------------------------- redeeming


def test_is_redeemable_prints_the_verdict(cli: Cli, connect: list[str]) -> None:
    result = cli("is-redeemable", *connect, "--mobile", REDEEMER, "--points", "100")

    assert (result.status, result.err) == (0, "")
    verdict = json.loads(result.out)
    assert verdict["redeemable"] is True
    assert verdict["points"] == 100
    assert re.fullmatch(UUID, verdict["request_id"])


def test_redeem_with_the_code_issued_takes_the_points(
    cli: Cli, connect: list[str], sandbox_thread: SandboxThread
) -> None:
    before = points_of(sandbox_thread, REDEEMER)
    check = cli("is-redeemable", *connect, "--mobile", REDEEMER, "--points", "100", "--issue-otp")
    code = code_sent_to(sandbox_thread, REDEEMER)

    result = cli(
        "redeem", *connect, "--mobile", REDEEMER, "--points", "100", "--validation-code", code,
        "--transaction-number", "bill-1", "--notes", "a test",
    )  # fmt: skip

    assert check.status == 0, check.err
    assert (result.status, result.err) == (0, "")
    redemption = json.loads(result.out)
    assert redemption["points_redeemed"] == 100
    assert redemption["redemption_id"]
    assert re.fullmatch(UUID, redemption["request_id"])
    assert points_of(sandbox_thread, REDEEMER) == before - 100


def test_a_code_is_used_up_by_its_redemption(
    cli: Cli, connect: list[str], sandbox_thread: SandboxThread
) -> None:
    assert cli("validation-code", *connect, "--mobile", REDEEMER, "--points", "10").status == 0
    redeem = ["redeem", *connect, "--mobile", REDEEMER, "--points", "10", "--validation-code"]
    code = code_sent_to(sandbox_thread, REDEEMER)
    first = cli(*redeem, code)
    balance = points_of(sandbox_thread, REDEEMER)

    again = cli(*redeem, code)

    assert first.status == 0, first.err
    assert (again.status, again.out) == (1, "")
    assert "InvalidValidationCodeError" in again.err
    assert "code 808" in again.err
    assert re.search(rf"request id {UUID}", again.err)
    assert points_of(sandbox_thread, REDEEMER) == balance


def test_redeeming_more_than_the_balance_exits_1(
    cli: Cli, connect: list[str], sandbox_thread: SandboxThread
) -> None:
    assert cli("validation-code", *connect, "--mobile", RECEIVER).status == 0
    code = code_sent_to(sandbox_thread, RECEIVER)
    asked = int(points_of(sandbox_thread, RECEIVER)) + 1

    result = cli(
        "redeem", *connect, "--mobile", RECEIVER, "--points", str(asked), "--validation-code", code
    )

    assert result.status == 1
    assert "InsufficientPointsError" in result.err


# ----------------------------------------------------------------------------- transferring


def test_transfer_after_the_check_moves_the_points(
    cli: Cli, connect: list[str], sandbox_thread: SandboxThread
) -> None:
    sent, received = (
        transferable_of(sandbox_thread, SENDER),
        transferable_of(sandbox_thread, RECEIVER),
    )
    check = cli("is-transferrable", *connect, *PARTIES, "--points", "5", "--issue-otp")
    otp = code_sent_to(sandbox_thread, SENDER, "transfer")

    result = cli(
        "transfer", *connect, *PARTIES, "--points", "5", "--program-id", "973", "--code", otp,
        "--notes", "a test",
    )  # fmt: skip

    assert json.loads(check.out)["transferrable"] is True
    assert (result.status, result.err) == (0, "")
    done = json.loads(result.out)
    assert done["points_transferred"] == 5
    assert re.fullmatch(UUID, done["request_id"])
    assert transferable_of(sandbox_thread, SENDER) == sent - 5
    assert transferable_of(sandbox_thread, RECEIVER) == received + 5


def test_transfer_with_a_wrong_otp_exits_1_and_moves_nothing(
    cli: Cli, connect: list[str], sandbox_thread: SandboxThread
) -> None:
    cli("is-transferrable", *connect, *PARTIES, "--points", "5", "--issue-otp")
    sent = transferable_of(sandbox_thread, SENDER)
    wrong = code_sent_to(sandbox_thread, SENDER, "transfer")[::-1] + "X"

    result = cli("transfer", *connect, *PARTIES, "--points", "5", "--code", wrong)

    assert (result.status, result.out) == (1, "")
    assert "InvalidValidationCodeError" in result.err
    assert transferable_of(sandbox_thread, SENDER) == sent


# ----------------------------------------------------------------------------- outcome unknown


@pytest.mark.cli_sandbox(faults={REDEEM: Faults(drop_after_apply_rate=1.0)})
def test_a_redemption_without_an_answer_is_reported_as_unknown_and_not_resent(
    cli: Cli, connect: list[str], sandbox_thread: SandboxThread, sandbox: FakeCapillary
) -> None:
    assert cli("validation-code", *connect, "--mobile", REDEEMER).status == 0
    code = code_sent_to(sandbox_thread, REDEEMER)
    before = points_of(sandbox_thread, REDEEMER)

    result = cli(
        "redeem", *connect, "--mobile", REDEEMER, "--points", "25", "--validation-code", code
    )

    assert (result.status, result.out) == (1, "")
    assert len(result.err.splitlines()) == 1, result.err
    assert result.err.startswith("capillary-points: OutcomeUnknownError: ")
    assert "may have been applied" in result.err
    assert "no request id: no answer carried one" in result.err
    # It was applied, once: the reason never to send it again.
    assert points_of(sandbox_thread, REDEEMER) == before - 25
    assert len(sandbox_thread.read(lambda fake: fake.arrivals(REDEEM))) == 1


@pytest.mark.cli_sandbox(faults={TRANSFER: Faults(error_rate=1.0)})
def test_a_transfer_answered_by_an_error_page_is_unknown_with_its_request_id(
    cli: Cli, connect: list[str], sandbox_thread: SandboxThread
) -> None:
    result = cli("transfer", *connect, *PARTIES, "--points", "1")

    assert (result.status, result.out) == (1, "")
    assert result.err.startswith("capillary-points: OutcomeUnknownError: ")
    assert re.search(rf"\(request id {UUID}\)$", result.err.strip())
    assert len(sandbox_thread.read(lambda fake: fake.arrivals(TRANSFER))) == 1


# ----------------------------------------------------------------------------- OAuth

OAUTH_SANDBOX = pytest.mark.cli_sandbox(oauth={OAUTH_KEY: OAUTH_SECRET})


@OAUTH_SANDBOX
def test_oauth_flags_replace_the_till_credentials(
    cli: Cli, sandbox: FakeCapillary, sandbox_thread: SandboxThread
) -> None:
    oauth = ["--base-url", sandbox.url, "--oauth-key", OAUTH_KEY, "--oauth-secret", OAUTH_SECRET]

    checked = cli("is-transferrable", *oauth, *PARTIES, "--points", "1")
    redeemable = cli("is-redeemable", *oauth, "--mobile", REDEEMER, "--points", "1")

    assert (checked.status, checked.err) == (0, "")
    assert (redeemable.status, redeemable.err) == (0, "")
    # No username was given: the calls went through on tokens, one per command's client.
    assert sandbox_thread.read(lambda fake: fake.stats.token_requests) == 2
    assert OAUTH_SECRET not in checked.out + redeemable.out


@OAUTH_SANDBOX
def test_oauth_credentials_come_from_the_environment(
    cli: Cli, sandbox: FakeCapillary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPILLARY_BASE_URL", sandbox.url)
    monkeypatch.setenv("CAPILLARY_OAUTH_KEY", OAUTH_KEY)
    monkeypatch.setenv("CAPILLARY_OAUTH_SECRET", OAUTH_SECRET)

    result = cli("validation-code", "--mobile", REDEEMER)

    assert (result.status, result.err) == (0, "")
    assert json.loads(result.out)["item_status"]["success"] is True


@OAUTH_SANDBOX
def test_a_wrong_oauth_secret_exits_1_and_is_never_shown(
    cli: Cli, sandbox: FakeCapillary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPILLARY_OAUTH_SECRET", "wrong-secret-5b8e")

    result = cli("validation-code", "--base-url", sandbox.url, "--oauth-key", OAUTH_KEY,
                 "--mobile", REDEEMER)  # fmt: skip

    assert (result.status, result.out) == (1, "")
    assert result.err.startswith("capillary-points: AuthenticationError: ")
    assert "OAuth token request failed" in result.err
    for secret in ("wrong-secret-5b8e", OAUTH_KEY):
        assert secret not in result.err


@OAUTH_SANDBOX
def test_till_flags_win_over_oauth_variables(
    cli: Cli, connect: list[str], monkeypatch: pytest.MonkeyPatch, sandbox_thread: SandboxThread
) -> None:
    monkeypatch.setenv("CAPILLARY_OAUTH_KEY", OAUTH_KEY)
    monkeypatch.setenv("CAPILLARY_OAUTH_SECRET", "wrong-secret-5b8e")

    result = cli("validation-code", *connect, "--mobile", REDEEMER)

    assert (result.status, result.err) == (0, "")
    assert sandbox_thread.read(lambda fake: fake.stats.token_requests) == 0


@OAUTH_SANDBOX
def test_a_bulk_run_takes_oauth_credentials(
    cli: Cli, sandbox: FakeCapillary, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.csv"
    checks.write_text(f"from,to,points\nmobile:{SENDER},mobile:{RECEIVER},1\n")

    result = cli(
        "bulk-transferrable", str(checks), "--base-url", sandbox.url, "--oauth-key", OAUTH_KEY,
        "--oauth-secret", OAUTH_SECRET, "--rate", "off",
    )  # fmt: skip

    assert result.status == 0, result.err
    assert json.loads(result.out)["ok"] is True
