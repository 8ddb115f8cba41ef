"""scipy's private functions, looked up by name: the null distributions of the KS and
Cramer-von Mises tests (``ks``, ``cvm``) come from them where the installed scipy has them.

Part of ``stats`` (pure numpy/scipy). scipy's public test functions sort both samples (or
the pooled one) on every call, so a score never calls them on a profile; their private
helpers take only the statistic and the two sizes. A scipy that lacks one (or renamed it)
gives None here, and the method falls back to the public function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def scipy_helper(module: str, name: str) -> Callable[..., Any] | None:
    """A private scipy function, or None when the installed scipy has no such name."""
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found if callable(found) else None


def lazy_helpers(namespace: dict[str, Any], table: dict[str, tuple[str, str]]
                 ) -> tuple[Callable[[str], Any], Callable[[str], Any]]:
    """A module's ``__getattr__`` and ``lazy`` lookup for the private scipy functions in
    ``table`` (attribute name -> (module, name)): each is imported on first use and kept in
    the module's ``namespace``, because scipy.stats takes longer to import than a small check
    takes to run. ``lazy(name)`` returns what the namespace holds (a test may replace it)."""

    def getattr_(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        found = namespace[name] = scipy_helper(*table[name])
        return found

    def lazy(name: str) -> Any:
        return namespace[name] if name in namespace else getattr_(name)

    return getattr_, lazy
