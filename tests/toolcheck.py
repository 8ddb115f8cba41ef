"""External tools the tests run for real: skipped on a laptop without them, fatal in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def require(tool: str, hint: str = "make test-deps") -> str:
    """The tool's path; in CI (CI=true) its absence fails the test instead of skipping."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed ({hint} installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path
