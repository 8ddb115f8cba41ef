"""The ModelMonitor watch: every event is handed to the fleet.

An event handler (not create/update/daemon handlers) on purpose: kopf then writes nothing to
the monitors, no finalizer and no last-handled-configuration annotation, so GitOps tools see
no drift, deletion never waits on the operator, and each check costs one status patch.

Every status patch comes back as an event to every replica: the fleet gets the event's own
body, uncopied (kopf parsed it for this event alone and neither keeps nor changes it), and
keeps of it only what it needs.
"""

from __future__ import annotations

from typing import Any

import kopf

from modelmon.api.v1alpha1 import GROUP, PLURAL, VERSION
from modelmon.handlers.lifecycle import OperatorMemo


@kopf.on.event(GROUP, VERSION, PLURAL)
async def monitor_event(event: kopf.RawEvent, body: kopf.Body, memo: OperatorMemo,
                        **_: Any) -> None:
    """Start, update or stop the monitor's worker."""
    if event.get("type") == "DELETED":
        meta = body.get("metadata", {})
        memo.fleet.remove(meta["namespace"], meta["name"])
        return
    memo.fleet.upsert(event["object"])
