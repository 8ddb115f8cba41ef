"""Servers on 127.0.0.1 for the tests: HTTP servers, each served by a thread of its own, and
a port that accepts connections and never answers. Fixtures over them are in
tests/unit/conftest.py."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import TypeVar

ServerT = TypeVar("ServerT", bound=socketserver.BaseServer)

#: How often a server's thread looks for a shutdown request: the standard library's half
#: second would be paid at the end of every test that starts a server.
POLL_SECONDS = 0.02


class HttpServers:
    """HTTP servers on loopback, served until ``stop()``."""

    def __init__(self) -> None:
        self._running: list[tuple[socketserver.BaseServer, threading.Thread]] = []

    def run(self, server: ServerT) -> ServerT:
        """Serve ``server``, already bound, in a thread of its own."""
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
        thread.start()
        self._running.append((server, thread))
        return server

    def start(self, handler: Callable[..., socketserver.BaseRequestHandler]) -> str:
        """Serve ``handler`` on a free port of 127.0.0.1; the server's base URL."""
        server = self.run(ThreadingHTTPServer(("127.0.0.1", 0), handler))
        return f"http://127.0.0.1:{server.server_address[1]}"

    def stop(self) -> None:
        for server, thread in self._running:
            server.shutdown()
            server.server_close()
            thread.join()
        self._running.clear()


class StalledPort:
    """A port on 127.0.0.1 that accepts connections, holds them open and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_SECONDS)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        while not self._stop.is_set():
            try:
                self._held.append(self._listener.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._listener.close()
