"""Bounded, lazy fan-out for the ``*_many`` calls.

``concurrency`` workers each take the next input, run it and hand the result to the consumer,
so no task or future exists per input and the input is read only as fast as it is worked off:
memory stays flat whatever the input's length. A worker takes a new input only while fewer
than ``concurrency`` results wait for the consumer, so a slow consumer holds the work back.
(A task per input, as ``asyncio.wait``-style fan-outs do, cost about 6% of the CPU of a
whole request in bench_cpu.py: creating and finishing the task and handing its result over
through a done-callback.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")

__all__ = ["CallTrace", "fan_out"]

_END: Any = object()


class CallTrace:
    """Filled in by the client's call loop so that a bulk outcome can say how many attempts
    it took, whether it ended in a value or an error."""

    __slots__ = ("attempts",)

    def __init__(self) -> None:
        self.attempts = 0


async def fan_out(
    items: Iterable[Q] | AsyncIterable[Q],
    run: Callable[[Q], Coroutine[Any, Any, R]],
    *,
    concurrency: int,
    ordered: bool,
) -> AsyncGenerator[R, None]:
    """Yield ``run(item)`` for every item, ``concurrency`` at a time.

    ``run`` must not raise (it returns an outcome that carries any error). Results come as
    they finish, or with ``ordered`` in input order. No input is started while
    ``concurrency`` results wait for the consumer, nor (``ordered``, behind a slow head)
    while ``4 * concurrency`` inputs are started but not yielded. An exception from the input
    itself is raised once the inputs already started have been yielded. Closing the generator
    (``break``, ``aclose``, cancellation of the consumer) cancels the calls in flight and
    waits for them to end.
    """
    loop = asyncio.get_running_loop()
    reorder_limit = 4 * concurrency
    ready: deque[R] = deque()  # results the consumer may take now
    early: dict[int, R] = {}  # ordered: results waiting for an earlier input's
    space: deque[asyncio.Future[None]] = deque()  # workers waiting until they may start one
    consumer: asyncio.Future[None] | None = None
    started = yielded = due = 0
    live = concurrency
    exhausted = False
    failure: Exception | None = None

    if isinstance(items, AsyncIterable):
        source = aiter(items)
        lock = asyncio.Lock()

        async def read() -> Any:
            # An async generator cannot be advanced by two workers at once.
            async with lock:
                return _END if exhausted else await anext(source, _END)

    else:
        iterator = iter(items)

        async def read() -> Any:
            return next(iterator, _END)

    def wake_consumer() -> None:
        if consumer is not None and not consumer.done():
            consumer.set_result(None)

    async def worker() -> None:
        nonlocal started, due, live, exhausted, failure
        try:
            while True:
                while len(ready) >= concurrency or started - yielded >= reorder_limit:
                    waiter = loop.create_future()
                    space.append(waiter)
                    await waiter
                if exhausted:
                    return
                item = await read()
                if item is _END:
                    exhausted = True
                    return
                index = started
                started += 1
                result = await run(item)
                if ordered:
                    early[index] = result
                    while due in early:
                        ready.append(early.pop(due))
                        due += 1
                else:
                    ready.append(result)
                wake_consumer()
        except Exception as exc:  # the input failed: start nothing more, raise it at the end
            if failure is None:
                failure = exc
            exhausted = True
        finally:
            live -= 1
            wake_consumer()

    workers = [loop.create_task(worker()) for _ in range(concurrency)]
    try:
        while True:
            if ready:
                yielded += 1
                while space:  # one more input may start: wake one waiting worker
                    waiter = space.popleft()
                    if not waiter.done():
                        waiter.set_result(None)
                        break
                yield ready.popleft()
            elif live == 0:
                if failure is not None:
                    raise failure
                return
            else:
                consumer = loop.create_future()
                await consumer
                consumer = None
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
