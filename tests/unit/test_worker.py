"""The pure parts of the fleet and the publisher: backoff, history, resume, status body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelmon.api.v1alpha1 import HISTORY_LIMIT, DriftStatus, LastCheck, ModelMonitorStatus
from modelmon.check import SourceUnavailableError, failed_status
from modelmon.outputs.publisher import status_body, with_history
from modelmon.worker import backoff, previous_status

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_backoff_doubles_and_is_capped_by_the_interval() -> None:
    assert [backoff(failures, 600) for failures in range(1, 9)] == [
        5, 10, 20, 40, 80, 160, 320, 600]
    assert backoff(3, 15) == 15


def healthy(when: datetime) -> ModelMonitorStatus:
    return ModelMonitorStatus(
        phase="Healthy", drift=DriftStatus(share=0.25, dataset_drift=False),
        last_check=LastCheck(time=when, duration_seconds=0.1, reference_rows=10,
                             current_rows=7))


def test_history_appends_once_per_check_and_is_bounded() -> None:
    status = healthy(NOON)
    for minute in range(HISTORY_LIMIT + 5):
        status = with_history(status, NOON + timedelta(minutes=minute))
    # The same check again.
    status = with_history(status, NOON + timedelta(minutes=HISTORY_LIMIT + 4))
    assert len(status.history) == HISTORY_LIMIT
    assert status.history[-1].time == NOON + timedelta(minutes=HISTORY_LIMIT + 4)
    assert status.history[-1].drift_share == 0.25 and status.history[-1].current_rows == 7


def test_history_carries_over_from_the_previous_status() -> None:
    before = with_history(healthy(NOON), NOON)
    after = with_history(healthy(NOON), NOON + timedelta(minutes=1), before)
    assert [entry.time for entry in after.history] == [NOON, NOON + timedelta(minutes=1)]


def test_history_of_a_failed_check_has_the_reason() -> None:
    failed = failed_status(healthy(NOON), SourceUnavailableError("gone"), NOON, 1)
    (entry,) = with_history(failed, NOON).history
    assert entry.phase == "Failing" and entry.reason == "SourceUnavailable"
    assert entry.drift_share is None


def test_status_body_clears_absent_fields_and_round_trips() -> None:
    body = status_body(ModelMonitorStatus())
    assert body["drift"] is None and body["phase"] == "Pending"
    status = healthy(NOON)
    assert previous_status(status_body(status)) == status


def test_previous_status_tolerates_garbage() -> None:
    assert previous_status({"phase": "Exploded"}) == ModelMonitorStatus()
    assert previous_status(None) == ModelMonitorStatus()
