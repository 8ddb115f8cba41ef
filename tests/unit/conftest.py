"""Fixtures shared by the unit tests: servers on loopback (tests/loopback.py) and the guard
that keeps every connection there (tests/netguard.py).

`http_servers`: start HTTP servers on 127.0.0.1, shut down after the test.
`stalled_port`: a port that accepts connections and never answers.
`loopback_guard`: refuses, and records, any connection to an address that is not loopback;
the egress tests use it on every test of their module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loopback import HttpServers, StalledPort
from netguard import loopback_only


@pytest.fixture
def http_servers() -> Iterator[HttpServers]:
    servers = HttpServers()
    yield servers
    servers.stop()


@pytest.fixture
def stalled_port() -> Iterator[int]:
    stalled = StalledPort()
    yield stalled.port
    stalled.close()


@pytest.fixture
def loopback_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The connections attempted to other addresses (refused); the test fails if any was."""
    attempts = loopback_only(monkeypatch)
    yield attempts
    assert attempts == [], f"connections attempted to {attempts}"
