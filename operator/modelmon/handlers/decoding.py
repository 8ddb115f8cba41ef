"""kopf's watch decoder: orjson in place of the standard library's ``json.loads``.

Part of ``handlers``, the kopf adapters, above the data line. Every replica hears every
status patch of every monitor as a watch event of 15-20 KB, and kopf decodes each with
``json.loads`` in ``kopf._cogs.clients.api.stream``, for which it has no public hook.
``install`` points that module's ``json`` name at a ``WatchJson``: its ``loads`` is
orjson's (about 3.5 times faster on such an event), every other attribute the json
module's.

The objects are the ones ``json.loads`` builds (dicts, lists, str, int, float, bool,
None) with one exception: an integer literal outside 64 bits becomes a float, the float64
the API server itself held for it (Kubernetes has no wider integers). A line orjson
refuses (NaN, for one, which no API server sends) goes to ``json.loads``, which decodes it
or raises as before. When kopf's layout is not the expected one, ``install`` logs one
warning and leaves the standard decoder: never an error.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

from modelmon.api.logs import fields

log = logging.getLogger(__name__)

#: The kopf module whose ``stream`` decodes the watch events with ``json.loads``.
KOPF_API = "kopf._cogs.clients.api"


class WatchJson:
    """The json module as kopf's watch stream sees it, with a faster ``loads``."""

    def __init__(self, fast: Callable[[str | bytes | bytearray], Any],
                 refused: type[Exception]) -> None:
        self.fast = fast
        self.refused = refused

    def loads(self, text: str | bytes | bytearray, **options: Any) -> Any:
        """orjson's decoding of ``text``; ``json.loads`` for options or a refused line."""
        if not options:
            try:
                return self.fast(text)
            except self.refused:
                pass
        return json.loads(text, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)


def install(module_name: str = KOPF_API) -> bool:
    """Decode kopf's watch events with orjson; True when installed (or already was)."""
    try:
        import orjson
    except ImportError:
        return _keep_standard("orjson cannot be imported; install it (a modelmon dependency)")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return _keep_standard(f"kopf has no module {module_name}", kopf=True)
    current = getattr(module, "json", None)
    if isinstance(current, WatchJson):
        return True
    if current is not json:
        return _keep_standard(f"{module_name} has no json module imported as `json`", kopf=True)
    if not callable(getattr(module, "stream", None)):
        return _keep_standard(f"{module_name} has no stream()", kopf=True)
    module.json = WatchJson(orjson.loads, orjson.JSONDecodeError)  # type: ignore[attr-defined]
    return True


def _keep_standard(why: str, kopf: bool = False) -> bool:
    """One warning: the watch keeps the standard decoder (correct, about 3.5 times the CPU)."""
    fix = ("; modelmon.handlers.decoding needs updating for this kopf release"
           if kopf else "")
    log.warning("kopf's watch events are decoded with the standard json module, not "
                "orjson, at about 3.5 times the CPU: %s%s", why, fix,
                extra=fields("startup", reason="WatchDecoderUnchanged"))
    return False
