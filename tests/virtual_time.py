"""A virtual clock for the fleet's unit tests: an asyncio loop whose clock jumps to the next
timer whenever nothing runs, and runs at the real pace while a thread works for it (a
check or an API call), so that ten-minute intervals pass in milliseconds
(tests/unit/test_fleet_schedule.py, tests/unit/test_fleet_replicas.py).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple, Unpack

Result = TypeVar("Result")
Arguments = TypeVarTuple("Arguments")

#: Real seconds the loop waits for a working thread at most before looking again.
THREAD_POLL_SECONDS = 0.05


class VirtualSelector(selectors.DefaultSelector):
    """A selector whose waits advance a virtual clock instead of passing real time, while
    no thread works for the loop."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.now = start
        self.threads = 0
        """Calls running in executor threads for the loop."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if self.threads:  # time passes as it does until the thread reports back
            before = time.monotonic()
            wait = THREAD_POLL_SECONDS if timeout is None else min(timeout,
                                                                   THREAD_POLL_SECONDS)
            ready = super().select(wait)
            self.now += time.monotonic() - before
            return ready
        if timeout is None:
            return super().select(None)
        self.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a ``VirtualSelector``'s clock."""

    def __init__(self) -> None:
        # From 0 like a monotonic clock: at the magnitude of a wall-clock timestamp the
        # loop's clock resolution (1 ns) would vanish in rounding, and a timer due now
        # would never be taken as due.
        self.selector = VirtualSelector(0.0)
        super().__init__(self.selector)

    def time(self) -> float:
        return self.selector.now

    def run_in_executor(self, executor: Executor | None,
                        func: Callable[[Unpack[Arguments]], Result],
                        *args: *Arguments) -> asyncio.Future[Result]:
        self.selector.threads += 1
        future = super().run_in_executor(executor, func, *args)

        def done(_: asyncio.Future[Result]) -> None:
            self.selector.threads -= 1

        future.add_done_callback(done)
        return future


def run_virtual(scenario: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        runner.run(scenario)


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Wait (virtual time) until ``condition`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, f"no {what} after {seconds:.0f} s"
        await asyncio.sleep(0.02)
