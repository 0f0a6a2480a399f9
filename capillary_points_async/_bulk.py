"""Bounded, lazy fan-out for the ``*_many`` calls.

At most ``concurrency`` calls run at once; the next input is read only when a slot frees, so
memory stays flat whatever the input's length (no task or future per input up front). Each
finished call hands its task to a deque through a done-callback, so a completion costs O(1)
(``asyncio.wait`` would re-register callbacks on every running task each time).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")

__all__ = ["fan_out"]


async def _aiter(items: Iterable[Q] | AsyncIterable[Q]) -> AsyncGenerator[Q, None]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def fan_out(
    items: Iterable[Q] | AsyncIterable[Q],
    run: Callable[[Q], Coroutine[Any, Any, R]],
    *,
    concurrency: int,
    ordered: bool,
) -> AsyncGenerator[R, None]:
    """Yield ``run(item)`` for every item, ``concurrency`` at a time.

    ``run`` must not raise (it returns an outcome that carries any error). With ``ordered``
    results come in input order; a slow head holds back at most ``4 * concurrency`` finished
    results before no further input is started. Closing the generator (``break``, ``aclose``,
    cancellation of the consumer) cancels the calls in flight and waits for them to end.
    """
    loop = asyncio.get_running_loop()
    source = _aiter(items)
    finished: deque[asyncio.Task[R]] = deque()
    index_of: dict[asyncio.Task[R], int] = {}
    reorder: dict[int, R] = {}
    reorder_limit = 4 * concurrency
    wakeup: asyncio.Future[None] | None = None
    next_index = next_yield = 0
    exhausted = False

    def on_done(task: asyncio.Task[R]) -> None:
        finished.append(task)
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    try:
        while True:
            while (
                not exhausted
                and len(index_of) < concurrency
                and (not ordered or next_index - next_yield < reorder_limit)
            ):
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    exhausted = True
                    break
                task = loop.create_task(run(item))
                index_of[task] = next_index
                next_index += 1
                task.add_done_callback(on_done)
            if not index_of and not finished:
                return
            if not finished:
                wakeup = loop.create_future()
                await wakeup
                wakeup = None
            while finished:
                task = finished.popleft()
                index = index_of.pop(task)
                if not ordered:
                    yield task.result()
                    continue
                reorder[index] = task.result()
                while next_yield in reorder:
                    yield reorder.pop(next_yield)
                    next_yield += 1
    finally:
        pending = list(index_of)
        for task in pending:
            task.remove_done_callback(on_done)
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await source.aclose()
