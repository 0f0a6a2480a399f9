"""Fixtures for the sandbox's own tests: a plain aiohttp session, a hand-driven clock.

The plugin's fixtures (``fake_capillary``, ``capillary_client``) come from the package's
``pytest11`` entry point, as they do for the library's users.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from capillary_points_async.testing import FakeCapillary

from .helpers import Api, Clock, basic


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeCapillary]:
    async with FakeCapillary(clock=clock, customers=8) as sandbox:
        yield sandbox


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": basic()}) as client:
        yield client


@pytest.fixture
def api(session: aiohttp.ClientSession, fake: FakeCapillary) -> Api:
    return Api(session, fake)
