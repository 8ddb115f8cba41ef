"""Operator lifecycle: settings at start-up, the event-loop heartbeat, and shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf

from modelmon.worker import Fleet

HEARTBEAT_SECONDS = 1.0


class OperatorMemo(kopf.Memo):
    """What the handlers share: the fleet and the health state."""

    fleet: Fleet
    health: Health


class Health:
    """Liveness of the event loop, read by the health server's thread."""

    def __init__(self) -> None:
        self.beat = time.monotonic()
        self.lag = 0.0
        self.ready = False
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self.beat = time.monotonic()
            self.lag = max(0.0, self.beat - before - HEARTBEAT_SECONDS)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: OperatorMemo, **_: Any) -> None:
    """kopf settings: modelmon posts its own Events and keeps no state in the monitors."""
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    memo.health.task = asyncio.get_running_loop().create_task(memo.health.run())


@kopf.on.cleanup()
async def shutdown(memo: OperatorMemo, **_: Any) -> None:
    """Stop the workers before kopf exits."""
    if memo.health.task is not None:
        memo.health.task.cancel()
    await memo.fleet.shutdown()
