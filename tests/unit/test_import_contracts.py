"""The import contracts in pyproject.toml are checked by `make lint`, and cover every private
module (import-linter's wildcards match whole names only, so a `_name` module must be listed
in a protected contract by hand)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "operator" / "modelmon"


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


def test_make_lint_checks_the_import_contracts() -> None:
    recipe = subprocess.run(["make", "-n", "lint"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert "lint-imports" in recipe


def test_every_private_module_is_protected() -> None:
    private = {
        ".".join(("modelmon", *path.relative_to(PACKAGE).with_suffix("").parts))
        for path in PACKAGE.rglob("_*.py") if not path.name.startswith("__")
    }
    protected = {module for contract in contracts() if contract["type"] == "protected"
                 for module in contract["protected_modules"]}
    assert private <= protected

