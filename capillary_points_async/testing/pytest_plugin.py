"""pytest fixtures for testing code against :class:`FakeCapillary`.

Installed with the package (entry point ``pytest11``), so the fixtures need no import:

* ``fake_capillary``: a started sandbox, one per test;
* ``capillary_client``: a ``CapillaryClient`` pointed at it, with client-side rate limiting
  off (the sandbox's own limits, if configured, still apply).

``@pytest.mark.fake_capillary(customers=100, rate_limits=(10, 1.0))`` passes keyword
arguments to ``FakeCapillary``; ``username`` and ``password`` given there are also the client's.

The fixtures are async and need pytest-asyncio. Without it the plugin still loads, so that
installing this library never breaks anyone's test run, and the fixtures fail with a message
saying what is missing. Everything else is imported lazily, for the same reason.

A test using them must be an asyncio test: ``@pytest.mark.asyncio`` in pytest-asyncio's default
strict mode. The plugin does not add that mark itself (a plugin that changes how tests it does
not own are run would surprise); a test that lacks it fails with a message saying what to add,
rather than pytest's "async def functions are not natively supported".
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from capillary_points_async import CapillaryClient
    from capillary_points_async.testing import FakeCapillary

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised in a subprocess by the plugin's tests
    HAVE_PYTEST_ASYNCIO = False
else:
    HAVE_PYTEST_ASYNCIO = True

MARKER = "fake_capillary"
FIXTURES = frozenset({"fake_capillary", "capillary_client"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**kwargs): keyword arguments for the fake_capillary fixture's sandbox"
    )


def _sandbox_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(MARKER)
    return dict(marker.kwargs) if marker is not None else {}


if HAVE_PYTEST_ASYNCIO:

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item: pytest.Item) -> None:
        """Fail an ``async def`` test that uses the fixtures but is no asyncio test, before
        they start, with what to do about it."""
        used = sorted(FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if (
            used
            and isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and not pytest_asyncio.is_async_test(item)
        ):
            pytest.fail(
                f"{item.name} uses {' and '.join(used)}, async fixtures, but is not an asyncio "
                "test: mark it @pytest.mark.asyncio (pytest-asyncio's default mode is strict), "
                'or set asyncio_mode = "auto"',
                pytrace=False,
            )

    @pytest_asyncio.fixture
    async def fake_capillary(request: pytest.FixtureRequest) -> AsyncIterator[FakeCapillary]:
        """A started :class:`FakeCapillary`; ``@pytest.mark.fake_capillary(...)`` configures it."""
        from capillary_points_async.testing import FakeCapillary

        async with FakeCapillary(**_sandbox_kwargs(request)) as fake:
            yield fake

    @pytest_asyncio.fixture
    async def capillary_client(
        request: pytest.FixtureRequest, fake_capillary: FakeCapillary
    ) -> AsyncIterator[CapillaryClient]:
        """A ``CapillaryClient`` for ``fake_capillary``, closed after the test."""
        from capillary_points_async import BasicAuth, CapillaryClient

        kwargs = _sandbox_kwargs(request)
        auth = BasicAuth(kwargs.get("username", "sandbox"), kwargs.get("password", "sandbox"))
        async with CapillaryClient(fake_capillary.url, auth, rate_limit=None) as client:
            yield client

else:  # pragma: no cover - exercised in a subprocess by the plugin's tests

    def _unavailable(name: str) -> NoReturn:
        pytest.fail(f"the {name} fixture needs pytest-asyncio: pip install pytest-asyncio", False)

    @pytest.fixture(name="fake_capillary")
    def _fake_capillary_unavailable() -> NoReturn:
        _unavailable("fake_capillary")

    @pytest.fixture(name="capillary_client")
    def _capillary_client_unavailable() -> NoReturn:
        _unavailable("capillary_client")
