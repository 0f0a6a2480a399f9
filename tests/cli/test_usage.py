"""Bad usage: exit status 2 and one line on stderr, never a secret; and the small parsers."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from capillary_points_async import Identifier, InvalidRequestError
from capillary_points_async.cli.arguments import (
    Redactor,
    format_rate,
    parse_identifier,
    parse_rate,
)
from capillary_points_async.cli.display import Latencies

from .conftest import Result

Cli = Callable[..., Result]
SECRET = "s3cr3t-Pa55"
LOGIN = ["--base-url", "http://127.0.0.1:9", "--username", "till", "--password", SECRET]
TRANSFER = ["--from", "mobile:9777785206", "--to", "mobile:9777785207", "--points", "1"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param([], "required: COMMAND", id="no command"),
        pytest.param(["refund"], "invalid choice", id="unknown command"),
        pytest.param(
            ["is-transferrable", *LOGIN, "--from", "mobile:1", "--points", "1"],
            "required: --to",
            id="missing option",
        ),
        pytest.param(
            ["is-transferrable", *LOGIN, "--from", "phone:1", "--to", "mobile:2", "--points", "1"],
            "TYPE one of mobile, email",
            id="unknown identifier type",
        ),
        pytest.param(
            [
                "is-transferrable",
                *LOGIN,
                "--from",
                "9777785206",
                "--to",
                "mobile:2",
                "--points",
                "1",
            ],
            "expected TYPE:VALUE",
            id="no identifier type",
        ),
        pytest.param(
            ["is-transferrable", *LOGIN, *TRANSFER[:4], "--points", "abc"],
            "argument --points: expected a whole number, got 'abc'",
            id="points not a number",
        ),
        pytest.param(
            ["is-transferrable", *LOGIN, *TRANSFER[:4], "--points", "0"],
            "InvalidRequestError: points must be a whole number from 1 to",
            id="points zero (the library says so)",
        ),
        pytest.param(
            ["is-transferrable", *LOGIN, "--from", "mobile:1", "--to", "mobile:1", "--points", "1"],
            "InvalidRequestError: from_customer and to_customer are the same identifier",
            id="same customers (the library says so)",
        ),
        pytest.param(
            ["validation-code", *LOGIN, "--mobile", "1", "--email", "a@b.c"],
            "not allowed with argument",
            id="two identifiers",
        ),
        pytest.param(["validation-code", *LOGIN], "one of the arguments --mobile", id="none"),
        pytest.param(
            ["validation-code", *LOGIN, "--region", "eu", "--mobile", "1"],
            "--region: not allowed with argument --base-url",
            id="base url and region",
        ),
        pytest.param(
            ["validation-code", *LOGIN, "--password-md5", "abc", "--mobile", "1"],
            "not allowed with argument --password",
            id="password and digest",
        ),
        pytest.param(
            ["bulk-transferrable", *LOGIN, "in.csv", "--rate", "fast"],
            "invalid rate 'fast'",
            id="bad rate",
        ),
        pytest.param(
            ["bulk-transferrable", *LOGIN, "in.csv", "--concurrency", "0"],
            "expected a whole number >= 1",
            id="bad concurrency",
        ),
        pytest.param(
            ["validation-code", "--mobile", "1"], "no API host: pass --base-url", id="no host"
        ),
        pytest.param(
            ["validation-code", "--region", "eu", "--mobile", "1"],
            "no username",
            id="no username",
        ),
        pytest.param(
            ["validation-code", "--region", "eu", "--username", "till", "--mobile", "1"],
            "no password",
            id="no password",
        ),
        pytest.param(
            ["validation-code", *LOGIN, "--oauth-key", "k", "--mobile", "1"],
            "pass a till password or OAuth credentials, not both",
            id="password and OAuth",
        ),
        pytest.param(
            ["validation-code", "--region", "eu", "--oauth-key", "k", "--mobile", "1"],
            "no OAuth secret: pass --oauth-secret or set CAPILLARY_OAUTH_SECRET",
            id="OAuth key without secret",
        ),
        pytest.param(
            ["validation-code", "--region", "eu", "--oauth-secret", SECRET, "--mobile", "1"],
            "no OAuth key: pass --oauth-key or set CAPILLARY_OAUTH_KEY",
            id="OAuth secret without key",
        ),
        pytest.param(
            ["redeem", *LOGIN, "--mobile", "1", "--points", "10"],
            "the following arguments are required: --validation-code",
            id="redeem without a code",
        ),
        pytest.param(
            ["redeem", *LOGIN, "--mobile", "1", "--points", "0", "--validation-code", "X"],
            "InvalidRequestError: points must be a whole number from 1 to",
            id="redeem zero points (the library says so)",
        ),
        pytest.param(
            ["is-redeemable", *LOGIN, "--mobile", "1"],
            "the following arguments are required: --points",
            id="is-redeemable without points",
        ),
        pytest.param(
            ["transfer", *LOGIN, "--from", "mobile:1", "--points", "1"],
            "required: --to",
            id="transfer without a receiver",
        ),
        pytest.param(
            ["transfer", *LOGIN, "--from", "mobile:1", "--to", "mobile:1", "--points", "1"],
            "InvalidRequestError: from_customer and to_customer are the same identifier",
            id="transfer to oneself (the library says so)",
        ),
        pytest.param(
            [
                "validation-code",
                "--base-url",
                "ftp://x",
                "--username",
                "t",
                "--password",
                SECRET,
                "--mobile",
                "1",
            ],
            "base_url must be a Region or an http(s) URL",
            id="bad base url",
        ),
        pytest.param(
            [
                "validation-code",
                "--region",
                "eu",
                "--username",
                "t",
                "--password-md5",
                SECRET,
                "--mobile",
                "1",
            ],
            "digest must be 32 hexadecimal characters",
            id="bad digest",
        ),
        pytest.param(
            ["validation-code", *LOGIN[:4], "--mobile", "1", "--pasword", SECRET],
            "unrecognized arguments: --pasword ***",
            id="misspelt password option",
        ),
        pytest.param(
            ["validation-code", *LOGIN[:4], f"--password={SECRET}", "--mobile"],
            "argument --mobile: expected one argument",
            id="password with equals",
        ),
    ],
)
def test_bad_usage_exits_2_with_one_line(cli: Cli, argv: list[str], says: str) -> None:
    result = cli(*argv)

    assert result.status == 2
    assert result.out == ""
    assert len(result.err.splitlines()) == 1, result.err
    assert result.err.startswith("capillary-points")
    assert says in result.err
    assert SECRET not in result.err


def test_a_secret_from_the_environment_is_never_echoed(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPILLARY_PASSWORD", SECRET)

    # a stray argument that happens to be the password: argparse would echo it
    result = cli("validation-code", "--region", "eu", "--username", "t", "--mobile", "1", SECRET)

    assert result.status == 2
    assert "unrecognized arguments: ***" in result.err
    assert SECRET not in result.err


def test_both_password_variables_are_ambiguous(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPILLARY_PASSWORD", SECRET)
    monkeypatch.setenv("CAPILLARY_PASSWORD_MD5", "0" * 32)

    result = cli("validation-code", "--region", "eu", "--username", "t", "--mobile", "1")

    assert result.status == 2
    assert "set only one of CAPILLARY_PASSWORD and CAPILLARY_PASSWORD_MD5" in result.err


def test_till_and_oauth_variables_together_are_ambiguous(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPILLARY_PASSWORD", SECRET)
    monkeypatch.setenv("CAPILLARY_OAUTH_KEY", "key-1")
    monkeypatch.setenv("CAPILLARY_OAUTH_SECRET", "oauth-secret-1")

    result = cli("validation-code", "--region", "eu", "--username", "t", "--mobile", "1")

    assert result.status == 2
    assert "or OAuth credentials (CAPILLARY_OAUTH_KEY, CAPILLARY_OAUTH_SECRET), not both" in (
        result.err
    )
    for secret in (SECRET, "key-1", "oauth-secret-1"):
        assert secret not in result.err


def test_oauth_secrets_are_never_echoed(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPILLARY_OAUTH_SECRET", "env-secret-2")

    # stray arguments that happen to be the credentials: argparse would echo them
    result = cli(
        "validation-code", "--region", "eu", "--oauth-key", "flag-key-1", "--mobile", "1",
        "flag-key-1", "env-secret-2",
    )  # fmt: skip

    assert result.status == 2
    assert "unrecognized arguments: *** ***" in result.err
    assert "flag-key-1" not in result.err
    assert "env-secret-2" not in result.err


def test_no_credentials_names_both_kinds(cli: Cli) -> None:
    result = cli("validation-code", "--region", "eu", "--username", "till", "--mobile", "1")

    assert result.status == 2
    assert "--oauth-key and --oauth-secret" in result.err
    assert "CAPILLARY_OAUTH_KEY and CAPILLARY_OAUTH_SECRET" in result.err


@pytest.mark.parametrize("command", ["redeem", "transfer"])
def test_help_of_moving_commands_warns_of_unknown_outcomes(cli: Cli, command: str) -> None:
    helped = cli(command, "--help")

    assert helped.status == 0
    text = " ".join(helped.out.split())  # argparse wraps lines
    assert "OutcomeUnknownError" in text
    assert "the points may have moved" in text
    assert "It is never sent twice" in text


def test_help_and_version_exit_0(cli: Cli) -> None:
    assert cli("--help").status == 0
    helped = cli("bulk-transferrable", "--help")
    assert helped.status == 0
    assert "--unordered" in helped.out
    version = cli("--version")
    assert (version.status, version.out.split()[0]) == (0, "capillary-points")


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1000/60s", (1000, 60.0)),
        ("100/1s", (100, 1.0)),
        ("100/s", (100, 1.0)),
        ("1000/min", (1000, 60.0)),
        ("1000/1m", (1000, 60.0)),
        ("5000/1h", (5000, 3600.0)),
        ("10/0.5s", (10, 0.5)),
        (" 20 / 2 seconds ", (20, 2.0)),
        ("off", None),
    ],
)
def test_parse_rate(text: str, rate: tuple[int, float] | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "1000", "0/1s", "10/0s", "10/1fortnight", "-1/s"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate(text)


def test_format_rate() -> None:
    assert format_rate((1000, 60.0)) == "1000/60s"
    assert format_rate(None) == "off"


@pytest.mark.parametrize(
    ("text", "identifier"),
    [
        ("mobile:9777785206", Identifier.mobile("9777785206")),
        ("EMAIL: a@b.c ", Identifier.email("a@b.c")),
        ("external-id:x:1", Identifier.external_id("x:1")),
        ("card_number:C1", Identifier.card_number("C1")),
        ("card_external_id:E", Identifier.card_external_id("E")),
        ("user_id:564955205", Identifier.user_id("564955205")),
    ],
)
def test_parse_identifier(text: str, identifier: Identifier) -> None:
    assert parse_identifier(text) == identifier


@pytest.mark.parametrize("text", ["mobile", "phone:1", ":1", "mobile:", "mobile:  "])
def test_parse_identifier_rejects(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_identifier(text)


def test_redactor_covers_oauth_flags_and_environment() -> None:
    redact = Redactor(
        ["--oauth-key", "alpha-1", "--oauth-secret=beta-2"],
        {"CAPILLARY_OAUTH_KEY": "gamma", "CAPILLARY_OAUTH_SECRET": "delta"},
    )

    assert redact("alpha-1 beta-2 gamma delta") == "*** *** *** ***"


def test_redactor_covers_flags_typos_and_environment() -> None:
    redact = Redactor(
        ["--password", "alpha-1", "--pasword=beta-2", "--password-md5", "gamma"],
        {"CAPILLARY_PASSWORD": "delta", "CAPILLARY_PASSWORD_MD5": ""},
    )

    assert redact("alpha-1 'beta-2' gamma: delta, deltas") == "*** '***' ***: ***, deltas"


def test_latencies_percentiles_are_within_one_percent() -> None:
    latencies = Latencies()
    for millisecond in range(1, 1001):
        latencies.add(millisecond / 1000)

    assert latencies.percentile(0.5) == pytest.approx(0.5, rel=0.01)
    assert latencies.percentile(0.99) == pytest.approx(0.99, rel=0.01)
    assert Latencies().percentile(0.5) is None
    assert not math.isnan(latencies.count)
