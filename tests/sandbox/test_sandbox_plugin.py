"""The pytest plugin, as users meet it: fixtures from the entry point, a marker to configure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from capillary_points_async import CapillaryClient, Identifier
from capillary_points_async.testing import FakeCapillary

from .helpers import Api


async def test_fake_capillary_is_a_started_sandbox(fake_capillary: FakeCapillary) -> None:
    assert fake_capillary.url.startswith("http://127.0.0.1:")
    assert fake_capillary.state.generated == []


@pytest.mark.fake_capillary(customers=3, seed=4, rate_limits=(1, 60.0))
async def test_the_marker_configures_the_sandbox(fake_capillary: FakeCapillary) -> None:
    assert [c.mobile for c in fake_capillary.state.generated] == [
        "918000000000",
        "918000000001",
        "918000000002",
    ]
    assert fake_capillary.seed == 4


async def test_capillary_client_talks_to_the_sandbox(
    capillary_client: CapillaryClient, fake_capillary: FakeCapillary
) -> None:
    code = await capillary_client.points.issue_validation_code(
        Identifier.mobile("919777785205"), points=100
    )
    assert (code.mobile, code.points) == ("919777785205", 100)
    assert fake_capillary.state.otp_for("9777785205") is not None
    check = await capillary_client.points.is_transferrable(
        from_customer=Identifier.mobile("9777785206"),
        to_customer=Identifier.mobile("9777785207"),
        points=1,
        program_id=973,
    )
    assert check.transferrable is True
    assert check.request_id


@pytest.mark.fake_capillary(username="till_9", password="Pass123")
async def test_capillary_client_uses_the_markers_credentials(
    capillary_client: CapillaryClient, fake_capillary: FakeCapillary
) -> None:
    await capillary_client.points.issue_validation_code(Identifier.external_id("434547"))
    assert fake_capillary.stats.by_status() == {200: 1}


async def test_the_sandbox_answers_any_http_client(
    fake_capillary: FakeCapillary, session: aiohttp.ClientSession
) -> None:
    status, _, _ = await Api(session, fake_capillary).check()
    assert status == 200


def run_pytest(tmp_path: Path, test_source: str, *, with_pytest_asyncio: bool) -> str:
    """Run pytest in a fresh interpreter with only this plugin (and perhaps pytest-asyncio)
    loaded, as in a project that installed nothing else; returns its output."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test_source))
    args = ["-q", "-W", "error", "-p", "no:cacheprovider"]
    if with_pytest_asyncio:
        # First, as its entry point would be: once our plugin has imported it, pytest could
        # no longer rewrite its asserts and would warn.
        args += ["-p", "pytest_asyncio.plugin", "-o", "asyncio_default_fixture_loop_scope=function"]
        hide = ""
    else:
        hide = "sys.modules['pytest_asyncio'] = None; "  # makes `import pytest_asyncio` fail
    args += ["-p", "capillary_points_async.testing.pytest_plugin", "test_user.py"]
    code = f"import sys; {hide}import pytest; sys.exit(pytest.main({args!r}))"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout + result.stderr


def test_without_pytest_asyncio_the_plugin_loads_and_explains(tmp_path: Path) -> None:
    output = run_pytest(
        tmp_path,
        """
        def test_unrelated():
            assert True

        def test_wants_the_sandbox(fake_capillary):
            pass
        """,
        with_pytest_asyncio=False,
    )
    assert "1 passed, 1 error" in output, output
    assert "the fake_capillary fixture needs pytest-asyncio" in output


def test_with_pytest_asyncio_the_plugin_works_in_strict_mode(tmp_path: Path) -> None:
    output = run_pytest(
        tmp_path,
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.fake_capillary(customers=2)
        async def test_sandbox(fake_capillary):
            assert len(fake_capillary.state.generated) == 2
        """,
        with_pytest_asyncio=True,
    )
    assert "1 passed" in output, output
