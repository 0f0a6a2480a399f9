"""validation-code and is-transferrable against the sandbox: JSON on stdout and exit 0, or
the error's type, code, message and request id on stderr and exit 1."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime

import pytest

from capillary_points_async.testing import FakeCapillary

from .conftest import PASSWORD, USERNAME, Result

Cli = Callable[..., Result]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TRANSFER = ["--from", "mobile:9777785206", "--to", "mobile:9777785207", "--points", "1"]


def test_validation_code_prints_the_result(cli: Cli, connect: list[str]) -> None:
    result = cli("validation-code", *connect, "--mobile", "919777785205", "--points", "100")

    assert (result.status, result.err) == (0, "")
    code = json.loads(result.out)
    assert code["item_status"] == {
        "success": True,
        "code": 200,
        "message": "Validation Code Issued by SMS",
    }
    assert code["points"] == 100
    assert code["mobile"] == "919777785205"
    assert re.fullmatch(UUID, code["request_id"])


def test_validation_code_takes_any_identifier_type(cli: Cli, connect: list[str]) -> None:
    result = cli("validation-code", *connect, "--external-id", "ext-7")

    assert result.status == 0, result.err
    assert json.loads(result.out)["item_status"]["success"] is True


def test_is_transferrable_prints_the_verdict_and_customers(cli: Cli, connect: list[str]) -> None:
    result = cli("is-transferrable", *connect, *TRANSFER, "--program-id", "973")

    assert (result.status, result.err) == (0, "")
    check = json.loads(result.out)
    assert check["transferrable"] is True
    assert check["points"] == 1.0
    profile = check["transfer_from"]["profiles"][0]
    assert {"type": "mobile", "value": "919777785206"} in profile["identifiers"]
    # datetimes become ISO 8601 strings that keep their offset
    assert datetime.fromisoformat(profile["auto_update_time"]).tzinfo is not None


def test_a_negative_verdict_is_an_answer_not_an_error(cli: Cli, connect: list[str]) -> None:
    reverse = ["--from", "mobile:9777785207", "--to", "mobile:9777785206", "--points", "1"]
    result = cli("is-transferrable", *connect, *reverse)

    assert result.status == 0
    assert json.loads(result.out)["transferrable"] is False


def test_group_transfer_flags_reach_the_api(cli: Cli, connect: list[str]) -> None:
    group = cli("is-transferrable", *connect, *TRANSFER, "--program-id", "974", "--group")
    mismatch = cli("is-transferrable", *connect, *TRANSFER, "--program-id", "973", "--group")

    assert group.status == 0
    assert mismatch.status == 1
    assert "GroupTransferMismatchError" in mismatch.err
    assert "code 3316" in mismatch.err


def test_unknown_customer_exits_1_with_code_and_request_id(
    cli: Cli, connect: list[str], sandbox: FakeCapillary
) -> None:
    unknown = ["--from", "mobile:9000000001", "--to", "mobile:9777785207", "--points", "1"]
    result = cli("is-transferrable", *connect, *unknown)

    assert result.status == 1
    assert result.out == ""
    assert len(result.err.splitlines()) == 1
    assert "CustomerNotFoundError: Customer not found for the given identifiers" in result.err
    assert "code 8015" in result.err
    assert "HTTP 400" in result.err
    assert re.search(rf"request id {UUID}", result.err)


def test_unknown_customer_of_v11_exits_1_with_code_816(cli: Cli, connect: list[str]) -> None:
    result = cli("validation-code", *connect, "--mobile", "919000000001")

    assert result.status == 1
    assert "CustomerNotFoundError" in result.err
    assert "code 816" in result.err


def test_wrong_password_exits_1_and_never_shows_it(cli: Cli, sandbox: FakeCapillary) -> None:
    secret = "Hunter2-wrong"
    result = cli(
        "is-transferrable", "--base-url", sandbox.url, "--username", USERNAME,
        "--password", secret, *TRANSFER,
    )  # fmt: skip

    assert result.status == 1
    assert "AuthenticationError" in result.err
    digest = hashlib.md5(secret.encode()).hexdigest()
    for text in (secret, digest):
        assert text not in result.out + result.err


def test_wrong_digest_exits_1_and_never_shows_it(cli: Cli, sandbox: FakeCapillary) -> None:
    digest = hashlib.md5(b"not the password").hexdigest()
    result = cli(
        "validation-code", "--base-url", sandbox.url, "--username", USERNAME,
        "--password-md5", digest, "--mobile", "919777785205",
    )  # fmt: skip

    assert result.status == 1
    assert "AuthenticationError" in result.err
    assert digest not in result.out + result.err


def test_settings_come_from_the_environment(
    cli: Cli, sandbox: FakeCapillary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPILLARY_BASE_URL", sandbox.url)
    monkeypatch.setenv("CAPILLARY_USERNAME", USERNAME)
    monkeypatch.setenv("CAPILLARY_PASSWORD_MD5", hashlib.md5(PASSWORD.encode()).hexdigest())

    result = cli("is-transferrable", *TRANSFER)

    assert result.status == 0, result.err
    assert json.loads(result.out)["transferrable"] is True


def test_flags_win_over_the_environment(
    cli: Cli, sandbox: FakeCapillary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPILLARY_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("CAPILLARY_USERNAME", "someone-else")
    monkeypatch.setenv("CAPILLARY_PASSWORD", "wrong")

    result = cli(
        "is-transferrable", "--base-url", sandbox.url, "--username", USERNAME,
        "--password", PASSWORD, *TRANSFER,
    )  # fmt: skip

    assert result.status == 0, result.err


def test_a_transport_failure_exits_1_with_its_type(cli: Cli) -> None:
    # Port 9 (discard) is closed on loopback: the connection is refused at once.
    result = cli(
        "validation-code", "--base-url", "http://127.0.0.1:9", "--username", USERNAME,
        "--password", PASSWORD, "--mobile", "919777785205", "--timeout", "2",
    )  # fmt: skip

    assert result.status == 1
    assert result.err.startswith("capillary-points: TransportError: ")
