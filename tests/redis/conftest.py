"""Fixtures for the tests of :mod:`capillary_points_async.redis`: a real, throw-away redis-server.

One server per test session, on a free loopback port, without persistence (``--save ""
--appendonly no``), in a temporary directory; stopped at the end. Without the ``redis-server``
binary these tests skip with a hint on how to install it, except under CI (``CI=true``), where a
missing binary fails the run: the shared limiter must not go untested silently.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from .redis_helpers import IN_CI, RedisServer

if TYPE_CHECKING:
    from redis.asyncio import Redis

if IN_CI and importlib.util.find_spec("redis") is None:
    # Locally the test modules skip (pytest.importorskip); in CI a missing extra fails the run.
    raise ImportError("CI=true but redis-py is missing: pip install -e '.[redis]'")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's redis-server."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses, so tests never see each other's keys."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the session's server for looking at keys directly; closed afterwards."""
    from redis.asyncio import Redis

    client = Redis(host=redis_server.host, port=redis_server.port, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()
