"""SECURITY.md names, for every boundary, the tests that try to cross it: they must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def sections() -> dict[str, str]:
    """Each boundary's heading and text (the `###` sections under `## Boundaries`)."""
    text = (ROOT / "SECURITY.md").read_text()
    body = text.split("\n## Boundaries\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (.+)$", body, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_boundary_names_a_test_that_exists() -> None:
    found = sections()
    assert len(found) >= 8, f"too few boundaries in SECURITY.md: {sorted(found)}"
    for heading, text in found.items():
        refs = TEST_REF.findall(text)
        assert refs, f"SECURITY.md: boundary {heading!r} names no test"
        for path, name in refs:
            source = ROOT / path
            assert source.is_file(), f"SECURITY.md ({heading}): no file {path}"
            assert re.search(rf"^(async )?def {name}\(", source.read_text(), re.MULTILINE), (
                f"SECURITY.md ({heading}): {path} has no test {name}")
