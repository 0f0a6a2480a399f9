"""Fake time for tests of waiting: the limiter, cooldowns, bulk pacing, sandbox latency."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import looptime

P = ParamSpec("P")
T = TypeVar("T")

# looptime keeps the loop's time as a whole number of these ticks.
_TICKS_PER_SECOND = 1_000_000


def virtual_time(test: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async test on a loop whose clock jumps over idle waits (looptime's loop), so a
    1000 s cooldown takes no real time and loop times are exact.

    A plain decorator rather than looptime's pytest plugin: the plugin's hand-over with
    pytest-asyncio differs between releases (0.7, the last for Python 3.10, never activates
    under pytest-asyncio 1.x), while ``looptime.new_event_loop`` behaves the same in all.
    The wrapper is synchronous, so pytest-asyncio leaves it alone.
    """

    @functools.wraps(test)  # keeps the signature, so parametrize and fixtures still work
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        loop = looptime.new_event_loop(start=0.0, resolution=1 / _TICKS_PER_SECOND)
        _align_timers_to_ticks(loop)
        try:
            return loop.run_until_complete(test(*args, **kwargs))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return run


def _align_timers_to_ticks(loop: asyncio.AbstractEventLoop) -> None:
    """Move every timer that is not already past onto a tick, at least one tick from now.

    A clock made of ticks cannot reach a timer between two of them: looptime 0.7 (the last for
    Python 3.10) never fires a timer due at 1/3 s. And a timer due "now" must still see the
    clock move: any waiter that sets one that close (a bucket a float rounding error over
    full, as aiolimiter's could be) and checks again when it fires spins forever on a clock
    that only moves when the loop is idle. The real clock solves both by moving on by
    itself; here the loop waits at least one tick (a microsecond) for any timer.
    ``call_later`` and every timeout go through ``call_at``.
    """
    original = loop.call_at

    def call_at(when: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
        now = round(loop.time() * _TICKS_PER_SECOND)
        # A thousandth of a tick of slack keeps a float error from adding a whole tick.
        due = when * _TICKS_PER_SECOND - 1e-3
        if due > now - 1:
            when = max(math.ceil(due), now + 1) / _TICKS_PER_SECOND
        return original(when, callback, *args, **kwargs)

    loop.call_at = call_at  # type: ignore[method-assign,assignment]
