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

The decoder also screens the ModelMonitor events (``install(screen=...)``, the fleet's
``absorb``): a MODIFIED event the fleet takes in itself (a status patch of a monitor it
knows, at the generation it knows; most events, and with N replicas each check's patch
reaches all N) is handed to kopf as a BOOKMARK of its resourceVersion, which kopf's watch
keeps to resume from and otherwise skips, so kopf spends nothing more on it: no
per-object queue and worker, no logger, no handler call. Every other event (ADDED,
DELETED, a new generation, an unknown monitor, anything the screen cannot read) goes to
kopf unchanged.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from modelmon.api.logs import fields
from modelmon.api.v1alpha1 import GROUP, KIND

log = logging.getLogger(__name__)

#: The kopf module whose ``stream`` decodes the watch events with ``json.loads``.
KOPF_API = "kopf._cogs.clients.api"


#: Takes in a ModelMonitor (the watch event's object) itself: True when kopf need not see it.
Screen = Callable[[Mapping[str, Any]], bool]


class WatchJson:
    """The json module as kopf's watch stream sees it, with a faster ``loads``."""

    def __init__(self, fast: Callable[[str | bytes | bytearray], Any],
                 refused: type[Exception], screen: Screen | None = None) -> None:
        self.fast = fast
        self.refused = refused
        self.screen = screen
        self.screened = 0
        """Events the screen took in (handed to kopf as bookmarks)."""

    def loads(self, text: str | bytes | bytearray, **options: Any) -> Any:
        """orjson's decoding of ``text``; ``json.loads`` for options or a refused line."""
        if options:
            decoded = json.loads(text, **options)
        else:
            try:
                decoded = self.fast(text)
            except self.refused:
                decoded = json.loads(text)
        return decoded if self.screen is None else self._screened(decoded)

    def _screened(self, event: Any) -> Any:
        """The event, or a bookmark of its resourceVersion when the screen took it in."""
        if not isinstance(event, dict) or event.get("type") != "MODIFIED":
            return event
        body = event.get("object")
        if (not isinstance(body, dict) or body.get("kind") != KIND
                or not str(body.get("apiVersion", "")).startswith(f"{GROUP}/")):
            return event
        meta = body.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("resourceVersion"), str):
            return event
        version: str = meta["resourceVersion"]
        try:
            taken = self.screen is not None and self.screen(body)
        except Exception:  # never lose an event to the screen: kopf gets it
            log.exception("could not screen a watch event of %s/%s; kopf handles it",
                          meta.get("namespace"), meta.get("name"))
            return event
        if not taken:
            return event
        self.screened += 1
        return {"type": "BOOKMARK", "object": {
            "apiVersion": body["apiVersion"], "kind": KIND,
            "metadata": {"resourceVersion": version}}}

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)


def install(module_name: str = KOPF_API, screen: Screen | None = None) -> bool:
    """Decode kopf's watch events with orjson, screened by ``screen`` when given; True
    when installed (or already was; the screen is then replaced)."""
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
        current.screen = screen
        return True
    if current is not json:
        return _keep_standard(f"{module_name} has no json module imported as `json`", kopf=True)
    if not callable(getattr(module, "stream", None)):
        return _keep_standard(f"{module_name} has no stream()", kopf=True)
    module.json = WatchJson(orjson.loads, orjson.JSONDecodeError,  # type: ignore[attr-defined]
                            screen)
    return True


def _keep_standard(why: str, kopf: bool = False) -> bool:
    """One warning: the watch keeps the standard decoder (correct, about 3.5 times the CPU)."""
    fix = ("; modelmon.handlers.decoding needs updating for this kopf release"
           if kopf else "")
    log.warning("kopf's watch events are decoded with the standard json module, not "
                "orjson, at about 3.5 times the CPU: %s%s", why, fix,
                extra=fields("startup", reason="WatchDecoderUnchanged"))
    return False
