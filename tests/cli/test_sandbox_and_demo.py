"""The sandbox command in a subprocess (it runs until a signal) and the demo in-process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from capillary_points_async.cli.demo import (
    demo_checks,
    demo_codes,
    sandbox_mobiles,
    unknown_mobiles,
)
from capillary_points_async.testing import (
    SEEDED_CUSTOMERS,
    SandboxCustomer,
    SandboxState,
    generate_customers,
)

from .conftest import Result, sandbox_command

Cli = Callable[..., Result]


@pytest.fixture
def sandbox_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    with sandbox_command("--customers", "5", "--rate-limit", "100/1s") as started:
        yield started


def test_sandbox_serves_until_terminated(
    cli: Cli, sandbox_process: tuple[subprocess.Popen[str], int]
) -> None:
    process, port = sandbox_process
    url = f"http://127.0.0.1:{port}"

    result = cli(
        "validation-code", "--base-url", url, "--username", "sandbox", "--password", "sandbox",
        "--mobile", "918000000004", "--points", "10",
    )  # fmt: skip
    process.terminate()
    out, err = process.communicate(timeout=30)

    assert result.status == 0, result.err
    assert json.loads(result.out)["item_status"]["success"] is True
    assert process.returncode == 0, err
    assert f"Capillary sandbox listening on {url}" in out
    assert "username: sandbox   password: sandbox" in out
    assert "rate limit per endpoint: 100/1s" in out
    assert f"export CAPILLARY_BASE_URL={url}" in out
    assert "sandbox stopped; answered 1 x HTTP 200" in out


def test_sandbox_refuses_a_busy_port(
    cli: Cli, sandbox_process: tuple[subprocess.Popen[str], int]
) -> None:
    _, port = sandbox_process

    result = cli("sandbox", "--port", str(port))

    assert result.status == 1
    assert "address already in use" in result.err.lower()


def test_demo_runs_and_exits_0(cli: Cli) -> None:
    result = cli("demo", "--checks", "60", "--codes", "20", "--customers", "100", "--limit", "400")

    assert result.status == 0, result.err
    assert "Running 60 transfer checks and 20 validation codes at once." in result.out
    assert "demo: results" in result.out
    assert "CustomerNotFoundError" in result.out  # the demo's unknown customers
    assert "HTTP 429 met" in result.out
    assert "transfer checks" in result.err  # the progress


def test_demo_without_rich(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "rich" or name.startswith("rich.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rich", None)

    result = cli("demo", "--checks", "20", "--codes", "5", "--customers", "30", "--limit", "400")

    assert result.status == 0, result.err
    assert "demo: results:" in result.out
    assert "transfer checks: 20/20 done" in result.err


def test_the_banner_lists_the_sandboxs_own_customers(
    sandbox_process: tuple[subprocess.Popen[str], int],
) -> None:
    process, _ = sandbox_process
    process.terminate()
    out, _ = process.communicate(timeout=30)

    first, last = generate_customers(5)[0], generate_customers(5)[-1]
    assert f"mobile {first.mobile}..{last.mobile}" in out
    assert f"email {first.email}..{last.email}" in out
    assert f"external_id {first.external_id}..{last.external_id}" in out
    assert ", ".join(str(customer.mobile) for customer in SEEDED_CUSTOMERS) in out
    assert "programs: 973, 974 (group)" in out


def test_demo_requests_name_the_sandboxs_customers() -> None:
    state = SandboxState(clock=lambda: 0.0, customers=12)
    # A customer where an unknown number might be guessed: the demo must ask the state.
    state.add_customer(SandboxCustomer(user_id=1, mobile="910000000000"))
    mobiles = sandbox_mobiles(state)
    unknown = unknown_mobiles(state)

    checks = list(demo_checks(80, mobiles, unknown))
    codes = list(demo_codes(100, mobiles, unknown))

    assert mobiles == [str(customer.mobile) for customer in state.generated]
    senders = [check.from_customer.value for check in checks]
    strangers = [mobile for mobile in senders if state.find("mobile", mobile) is None]
    assert len(strangers) == 2  # every 40th
    assert {check.to_customer.value for check in checks} <= set(mobiles)
    assert set(senders) - set(strangers) <= set(mobiles)
    coded = [code.identifier.value for code in codes]
    assert sum(state.find("mobile", mobile) is None for mobile in coded) == 2  # every 50th
    assert "910000000000" not in senders + coded
    assert all(check.from_customer != check.to_customer for check in checks)


def test_demo_runs_with_two_customers(cli: Cli) -> None:
    # The fewest it accepts: no check may go from a customer to the same customer.
    result = cli("demo", "--checks", "30", "--codes", "5", "--customers", "2", "--limit", "400")

    assert result.status == 0, result.err
    assert "InvalidRequestError" not in result.out


def test_demo_ends_with_a_redemption_and_a_transfer(cli: Cli) -> None:
    result = cli("demo", "--checks", "20", "--codes", "5", "--customers", "30", "--limit", "400")

    assert result.status == 0, result.err
    flow = result.out.split("demo: a redemption and a transfer, call by call\n")[1]
    code = re.search(r"validation-code (\d+): Validation Code Issued by SMS \(code (\w{6})\)", flow)
    assert code, flow
    redeemed = re.search(
        rf"redeem 100 with {code[2]}: redemption \w+, balance ([\d,]+) -> ([\d,]+)", flow
    )
    assert redeemed, flow
    assert number(redeemed[1]) - number(redeemed[2]) == 100
    checked = re.search(r"is-transferrable 50 from (\d+) to (\d+): transferrable", flow)
    assert checked, flow
    assert code[1] not in (checked[1], checked[2])  # three customers: balances do not mix
    moved = re.search(r"transfer 50: transferable points ([\d,]+) -> ([\d,]+) and "
                      r"([\d,]+) -> ([\d,]+)", flow)  # fmt: skip
    assert moved, flow
    assert number(moved[1]) - number(moved[2]) == 50
    assert number(moved[4]) - number(moved[3]) == 50


def number(text: str) -> int:
    return int(text.replace(",", ""))
