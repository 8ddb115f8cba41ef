"""Liveness and readiness: the event-loop heartbeat and the /healthz + /readyz server.

Off the data line, beside ``runner`` which starts it: ``Health`` is the heartbeat the kopf
start-up handler (``handlers.lifecycle``) runs on the event loop, and ``health_server``
answers the kubelet's probes from a thread of its own. Neither imports kopf.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEARTBEAT_SECONDS = 1.0

#: /healthz fails when the event loop has not ticked for this long.
STALL_SECONDS = 30.0


class Health:
    """Liveness of the event loop, read by the health server's thread. ``on_lag`` hears
    how late each heartbeat ran (the operator keeps a histogram of it)."""

    def __init__(self, on_lag: Callable[[float], None] | None = None) -> None:
        self.beat = time.monotonic()
        self.lag = 0.0
        self.ready = False
        self.task: asyncio.Task[None] | None = None
        self.on_lag = on_lag

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self.beat = time.monotonic()
            self.lag = max(0.0, self.beat - before - HEARTBEAT_SECONDS)
            if self.on_lag is not None:
                self.on_lag(self.lag)


def health_server(bind: str, port: int, health: Health, ready: threading.Event,
                  reachable: Callable[[], bool] = lambda: True) -> ThreadingHTTPServer:
    """/healthz: the event loop ticks. /readyz: kopf has started watching, the API server
    answers (``reachable``: without it the watch is down too), and the loop ticks."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            alive = time.monotonic() - health.beat < STALL_SECONDS
            if self.path == "/healthz":
                healthy, text = alive, "ok" if alive else "event loop stalled"
            elif self.path == "/readyz":
                answers = reachable()
                healthy = alive and ready.is_set() and answers
                text = ("ok" if healthy else "event loop stalled" if not alive
                        else "starting" if not ready.is_set() else "API server unreachable")
            else:
                self.send_error(404)
                return
            body = (text + "\n").encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
