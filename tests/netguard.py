"""Network helpers of the egress tests: a guard that lets sockets connect only to loopback
addresses (this machine forbids any other traffic, and an egress test must prove the
operator never tried), and a loopback port that counts the connections it gets."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from typing import Any

import pytest


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse, and record in the list returned, any connection to a non-loopback address."""
    attempts: list[Any] = []

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not ipaddress.ip_address(str(host).split("%")[0]).is_loopback:
            attempts.append(address)
            raise PermissionError(f"test guard: no connection to {host}")

    class Guarded(socket.socket):
        def connect(self, address: Any) -> None:
            check(address)
            super().connect(address)

        def connect_ex(self, address: Any) -> int:
            check(address)
            return super().connect_ex(address)

    monkeypatch.setattr(socket, "socket", Guarded)
    return attempts


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections it accepts and closes them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.sock.close()
        self.thread.join(5)
