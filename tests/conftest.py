"""Project-wide test setup."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _loop_for_sync_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give synchronous tests a loop that is closed afterwards.

    looptime's plugin asks the event loop policy for the current loop before every test; for a
    synchronous test none is set, so the policy makes one that nobody closes, and with
    ``filterwarnings = error`` its ResourceWarning fails whichever test runs next.
    """
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()
