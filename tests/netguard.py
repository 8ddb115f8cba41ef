"""A test guard: sockets may connect only to loopback addresses (this machine forbids any
other traffic, and an egress test must prove the operator never tried)."""

from __future__ import annotations

import ipaddress
import socket
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
