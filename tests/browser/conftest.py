"""Fixtures of the browser tests: where screenshots go, and a headless Chromium."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from headless import Chromium, chromium

from toolcheck import require


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The screenshots' folder: ``$MODELMON_TEST_ARTIFACTS/browser``, else under pytest's
    base temporary directory."""
    given = os.environ.get("MODELMON_TEST_ARTIFACTS")
    folder = (Path(given) / "browser" if given
              else tmp_path_factory.getbasetemp() / "browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    binary = require("chromium")
    async with chromium(binary) as running:
        yield running
