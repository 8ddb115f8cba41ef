"""What the operator logs and posts as Events, against an in-memory cluster.

One structured line per check (info; a failed check one warning line with reason and
fix), per new monitor, spec change, delete, rule write and notification; nothing at
warning while all is well; an Event on a failing check quotes the error, not the
findings kept from before; no Secret value reaches a line. The JSON lines are formatted
by the operator's own formatter (``runner.JsonFormatter``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from memory_cluster import MemoryCluster, MemoryResolver
from modelmon.api.logs import record_fields
from modelmon.api.policy import Egress, Policy
from modelmon.outputs.metrics import Metrics
from modelmon.runner import JsonFormatter, listen
from modelmon.worker import Fleet

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "breast-cancer"
NAMESPACE, NAME = "ml", "credit"
KEY = (NAMESPACE, NAME)
MONITOR = f"{NAMESPACE}/{NAME}"


def monitor(**spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    doc["spec"]["schedule"] = {"interval": "1h"}
    doc["spec"]["reference"]["source"] = {"configMap": {"name": "data", "key": "reference.csv"}}
    doc["spec"]["current"]["source"] = {"configMap": {"name": "data", "key": "current.csv"}}
    doc["spec"].update(spec)
    return {"metadata": {"namespace": NAMESPACE, "name": NAME}, "spec": doc["spec"]}


def with_data(cluster: MemoryCluster) -> MemoryCluster:
    cluster.config_maps[(NAMESPACE, "data")] = {
        name: (EXAMPLE / name).read_text() for name in ("reference.csv", "current.csv")}
    return cluster


async def until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {seconds:.0f} s"
        await asyncio.sleep(0.02)


def run(cluster: MemoryCluster, scenario: Callable[[Fleet], Awaitable[None]],
        policy: Policy | None = None) -> None:
    async def main() -> None:
        fleet = Fleet(cluster, Metrics(), workers=1, policy=policy or Policy.operator())
        try:
            await scenario(fleet)
        finally:
            await fleet.shutdown()
    asyncio.run(main())


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if record_fields(r).get("event") == event]


def test_a_check_a_failure_a_spec_change_and_a_delete(caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    caplog.set_level(logging.INFO)
    cluster = with_data(MemoryCluster())

    async def scenario(fleet: Fleet) -> None:
        fleet.upsert(cluster.add(monitor()))
        await until(lambda: len(cluster.patches) >= 1, "first check")
        await until(lambda: bool(lines(caplog, "check")), "check line")
        del cluster.config_maps[(NAMESPACE, "data")]  # the source goes away
        spec = monitor(alerting={"labels": {"team": "fraud"}})["spec"]
        fleet.upsert(cluster.change_spec(KEY, spec))
        await until(lambda: len(cluster.patches) >= 2, "second check")
        await until(lambda: len(lines(caplog, "check")) >= 2, "second check line")
        cluster.delete(KEY)
        fleet.remove(*KEY)

    run(cluster, scenario)
    first, second = cluster.statuses(KEY)

    # The check that ran: one info line with the figures an SRE filters on.
    checked, failed = lines(caplog, "check")
    got = record_fields(checked)
    assert checked.levelno == logging.INFO
    assert got["monitor"] == MONITOR and got["phase"] == first["phase"] == "Degraded"
    assert got["rows"] == first["lastCheck"]["currentRows"]
    assert got["reference_rows"] == first["lastCheck"]["referenceRows"]
    assert got["drifted"] == first["summary"]["drifted"] == "5/9"
    severities = [f["severity"] for f in first["findings"]]
    assert got["findings"] == {"critical": severities.count("critical"),
                               "warning": severities.count("warning")}
    assert got["duration_seconds"] >= 0
    # The check's own time, as its status records it (a replica's next check counts from it).
    assert datetime.fromisoformat(got["started"]) == datetime.fromisoformat(
        first["lastCheck"]["time"].replace("Z", "+00:00"))
    assert "5/9 drifted" in checked.getMessage()

    # The failed check: one warning line with the reason, the message and the fix.
    got = record_fields(failed)
    assert failed.levelno == logging.WARNING
    assert got["reason"] == "SourceUnavailable" and got["phase"] == "Failing"
    ready = next(c for c in second["conditions"] if c["type"] == "Ready")
    assert got["message"] == ready["message"] and "data" in got["message"]
    assert "backoff" in got["fix"]
    assert "SourceUnavailable" in failed.getMessage() and "fix:" in failed.getMessage()
    # The failed check's own time (its history entry's), not the last verdict's.
    assert datetime.fromisoformat(got["started"]) == datetime.fromisoformat(
        second["history"][-1]["time"].replace("Z", "+00:00"))
    assert got["started"] != record_fields(checked)["started"]

    (watched,) = lines(caplog, "watch")
    assert record_fields(watched)["model"] == "breast-cancer-lr"
    (changed,) = lines(caplog, "spec")
    assert (record_fields(changed)["previous_generation"],
            record_fields(changed)["generation"]) == (1, 2)
    (deleted,) = lines(caplog, "delete")
    assert record_fields(deleted)["monitor"] == MONITOR
    # Written for the first spec, and again for the second (its alerts' labels changed).
    rules = lines(caplog, "rule")
    assert [record_fields(r)["action"] for r in rules] == ["applied", "applied"]
    assert all(record_fields(r)["alerts"] > 0 for r in rules)

    # Nothing at warning but the failure.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == [failed]

    # The Event of the phase change quotes the error, not the findings kept from before.
    (to_failing,) = [e for e in cluster.events if e.reason == "Failing"]
    assert to_failing.message.startswith("phase Degraded -> Failing: SourceUnavailable: ")
    assert ready["message"] in to_failing.message
    assert not any(f["message"][:40] in to_failing.message for f in second["findings"])
    (degraded,) = [e for e in cluster.events if e.reason == "Degraded"]
    assert first["findings"][0]["message"][:40] in degraded.message


def test_a_window_with_too_few_rows_logs_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cluster = with_data(MemoryCluster())
    spec = monitor()["spec"]
    spec["current"]["minRows"] = 10_000

    async def scenario(fleet: Fleet) -> None:
        fleet.upsert(cluster.add({"metadata": {"namespace": NAMESPACE, "name": NAME},
                                  "spec": spec}))
        await until(lambda: bool(lines(caplog, "check")), "check line")

    run(cluster, scenario)
    (line,) = lines(caplog, "check")
    assert line.levelno == logging.INFO and record_fields(line)["reason"] == "InsufficientData"
    assert "minRows" in record_fields(line)["fix"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_notifications_are_logged_and_secrets_are_not(caplog: pytest.LogCaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQL source whose connection URL holds a password, and a Slack notifier whose
    webhook URL is a secret: both fail (loopback is allowed, but nothing listens on port 1),
    and no line, formatted as the operator writes it, holds either value."""
    caplog.set_level(logging.DEBUG)
    password, token = "pw-0f1e2d3c4b5a", "T000/B000/tok-9a8b7c6d5e"
    secrets = {("db", "url"): f"postgresql://modelmon:{password}@127.0.0.1:1/predictions",
               ("slack", "url"): f"https://127.0.0.1:1/services/{token}"}
    monkeypatch.setattr(MemoryResolver, "secret",
                        lambda self, name, key: secrets[(name, key)])
    cluster = with_data(MemoryCluster())
    spec = monitor(alerting={"notifiers": [
        {"slack": {"webhookSecretRef": {"name": "slack", "key": "url"}}}]})["spec"]
    spec["current"]["source"] = {"sql": {"connectionSecretRef": {"name": "db", "key": "url"},
                                         "query": "select * from predictions"}}

    async def scenario(fleet: Fleet) -> None:
        fleet.upsert(cluster.add({"metadata": {"namespace": NAMESPACE, "name": NAME},
                                  "spec": spec}))
        await until(lambda: bool(lines(caplog, "notification")), "notification line")

    run(cluster, scenario, replace(Policy.operator(), egress=Egress(allow=("127.0.0.0/8",))))
    (failed,) = lines(caplog, "check")
    assert record_fields(failed)["reason"] == "SourceUnavailable"
    notified = lines(caplog, "notification")
    assert record_fields(notified[0])["outcome"] == "failed"
    assert record_fields(notified[0])["kind"] == "slack"
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    assert password not in text and token not in text
    assert "tok-9a8b7c6d5e" not in text and "pw-0f1e2d3c4b5a" not in text


def test_the_json_line_carries_the_fields_as_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cluster = with_data(MemoryCluster())

    async def scenario(fleet: Fleet) -> None:
        fleet.upsert(cluster.add(monitor()))
        await until(lambda: bool(lines(caplog, "check")), "check line")

    run(cluster, scenario)
    (checked,) = lines(caplog, "check")
    line = json.loads(JsonFormatter().format(checked))
    assert line["level"] == "info" and line["event"] == "check"
    assert line["monitor"] == MONITOR and line["drifted"] == "5/9"
    assert line["message"] == checked.getMessage()
    assert set(line["findings"]) == {"critical", "warning"}


def test_a_busy_port_is_one_error_line_not_a_traceback(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        def start() -> None:
            with socket.socket() as again:
                again.bind(("127.0.0.1", port))

        with pytest.raises(SystemExit) as exited:
            listen("metrics", "--metrics-port", "MODELMON_METRICS_PORT", port, start)
    assert exited.value.code == 1
    (line,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert line.exc_info is None
    assert line.getMessage() == (f"the metrics port {port} is already in use; choose another "
                                 "with --metrics-port or MODELMON_METRICS_PORT")
    assert record_fields(line)["reason"] == "PortUnavailable"
    assert errno.EADDRINUSE  # the case the message words


def test_a_refused_status_patch_says_what_to_grant(caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    cluster = with_data(MemoryCluster())

    def refuse(ref: Any, status: dict[str, Any]) -> None:
        raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(cluster, "patch_status", refuse)

    async def scenario(fleet: Fleet) -> None:
        fleet.upsert(cluster.add(monitor()))
        await until(lambda: bool(lines(caplog, "status")), "status line")

    run(cluster, scenario)
    (line,) = lines(caplog, "status")
    assert line.levelno == logging.WARNING and record_fields(line)["reason"] == "HTTP403"
    assert "patch on modelmonitors/status" in record_fields(line)["fix"]
