"""The retraining hook's decisions: consecutive checks, one Job at a time, cooldown, the
Job's outcome, and a Job name that a repeated create finds again."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from modelmon.api.v1alpha1 import Finding, RetrainingSpec, RetrainingStatus
from modelmon.outputs import retraining
from modelmon.outputs.retraining import adopt, job, job_name, plan, refresh, started

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CHECK = timedelta(minutes=10)
UID = "0b7c7a8e-5f1e-4d0a-9f43-1d2c3b4a5e6f"
DRIFT = Finding(name="drift.dataset", severity="warning", value=0.6, bound=0.5, message="m")
PREDICTION = Finding(name="drift.prediction", severity="warning", value=0.01, bound=0.05,
                     message="m")
AUC = Finding(name="performance.rocAuc", severity="critical", value=0.6, bound=0.8,
              message="m")
QUALITY = Finding(name="dataQuality.missingFraction.age", severity="warning", value=0.2,
                  bound=0.05, message="m")


def spec(checks: int = 3, cooldown: str = "1h", **when: bool) -> RetrainingSpec:
    return RetrainingSpec.model_validate({
        "when": {"consecutiveChecks": checks, **when}, "cooldown": cooldown,
        "jobTemplate": {"metadata": {"labels": {"purpose": "retrain"}},
                        "spec": {"backoffLimit": 0, "template": {"spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "t", "image": "train:1"}]}}}}})


def a_job(conditions: list[dict[str, str]] | None = None, uid: str = UID,
          name: str = "m-retrain-x") -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": "2026-11-24T11:00:00Z",
                         "ownerReferences": [{"kind": "ModelMonitor", "uid": uid}]},
            "status": {"conditions": conditions or []}}


COMPLETE = [{"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"}]
FAILED = [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]


def test_the_condition_follows_the_spec() -> None:
    both, drift_only, perf_only = spec(), spec(performance=False), spec(drift=False)
    assert retraining.condition_holds(both, [DRIFT]) and retraining.condition_holds(both, [AUC])
    assert retraining.condition_holds(drift_only, [PREDICTION])
    assert not retraining.condition_holds(drift_only, [AUC])
    assert not retraining.condition_holds(perf_only, [DRIFT])
    assert not retraining.condition_holds(both, [QUALITY])  # data quality never retrains
    late = AUC.model_copy(update={"name": "performance.labelsMissing"})
    assert not retraining.condition_holds(both, [late])  # nor do labels that are late


def test_n_consecutive_checks_start_a_job() -> None:
    s, st = spec(checks=3), None
    counts = []
    for i in range(2):
        p = plan(s, [DRIFT], st, T0 + i * CHECK, checked=True)
        assert not p.start
        st = p.status
        counts.append(st.consecutive_checks)
    # A check that could not run neither counts nor resets.
    p = plan(s, [], st, T0 + 2 * CHECK, checked=False)
    assert p.status == st and not p.start
    p = plan(s, [DRIFT], st, T0 + 3 * CHECK, checked=True)
    assert p.start and p.status.consecutive_checks == 3
    assert counts == [1, 2]


def test_a_check_without_the_condition_resets_the_count() -> None:
    s = spec(checks=2)
    st = plan(s, [AUC], None, T0, checked=True).status
    st = plan(s, [QUALITY], st, T0 + CHECK, checked=True).status
    assert st.consecutive_checks == 0
    assert not plan(s, [AUC], st, T0 + 2 * CHECK, checked=True).start


def test_at_most_one_running() -> None:
    s = spec(checks=1, cooldown="1s")
    st = started(plan(s, [DRIFT], None, T0, checked=True).status, "m-retrain-a", T0)
    assert st.outcome == "Running" and st.consecutive_checks == 0
    for i in range(1, 4):  # long past the cooldown, still running: no second Job
        st = refresh(st, a_job())
        p = plan(s, [DRIFT], st, T0 + i * CHECK, checked=True)
        assert not p.start and p.status.message == "retraining Job m-retrain-a is still running"
        st = p.status


def test_outcomes_then_cooldown_then_a_new_job() -> None:
    s = spec(checks=1, cooldown="1h")
    st = started(RetrainingStatus(), "m-retrain-a", T0)
    st = refresh(st, a_job(COMPLETE))
    assert st.outcome == "Succeeded"
    p = plan(s, [DRIFT], st, T0 + 30 * timedelta(minutes=1), checked=True)
    assert not p.start
    assert p.status.message == "in cooldown until 2026-11-24T13:00:00+00:00 " \
                               "(spec.retraining.cooldown)"
    p = plan(s, [DRIFT], p.status, T0 + timedelta(hours=1), checked=True)
    assert p.start and p.status.message is None
    # A finished outcome is not read again, and does not change.
    assert refresh(p.status, a_job()) == p.status


def test_a_failed_job_is_recorded_and_retried_after_the_cooldown() -> None:
    s = spec(checks=1, cooldown="1h")
    st = refresh(started(RetrainingStatus(), "m-retrain-a", T0), a_job(FAILED))
    assert st.outcome == "Failed"
    assert not plan(s, [AUC], st, T0 + CHECK, checked=True).start
    assert plan(s, [AUC], st, T0 + timedelta(hours=2), checked=True).start


def test_a_running_job_without_conditions_stays_running() -> None:
    st = refresh(started(RetrainingStatus(), "m-retrain-a", T0), a_job())
    assert st.outcome == "Running"
    st = refresh(st, {"metadata": {"name": "m-retrain-a"}})  # no status yet
    assert st.outcome == "Running"


def test_a_deleted_job_no_longer_blocks() -> None:
    s = spec(checks=1, cooldown="10m")
    st = refresh(started(RetrainingStatus(), "m-retrain-a", T0), None)
    assert st.outcome is None and st.last_job == "m-retrain-a"
    assert not plan(s, [DRIFT], st, T0 + timedelta(minutes=5), checked=True).start
    assert plan(s, [DRIFT], st, T0 + timedelta(minutes=10), checked=True).start


def test_job_names_are_fixed_in_advance_and_valid() -> None:
    first = job_name("credit", UID, None)
    assert first == job_name("credit", UID, None)  # the create after a crash: same name
    second = job_name("credit", UID, first)
    assert second not in (first, job_name("credit", UID, second))
    assert job_name("credit", "another-uid", None) != first  # a new monitor, a new chain
    long = job_name("m" * 250, UID, None)
    for name in (first, second, long):
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert first.startswith("credit-retrain-")


def test_the_job_from_the_template() -> None:
    body = job(spec(), "ml", "credit", UID, "credit-retrain-0123456789")
    meta = body["metadata"]
    assert meta["name"] == job_name("credit", UID, "credit-retrain-0123456789")
    assert meta["labels"] == {"purpose": "retrain", "modelmon.io/monitor": "credit"}
    (owner,) = meta["ownerReferences"]
    assert owner["uid"] == UID and owner["kind"] == "ModelMonitor" and owner["controller"]
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "train:1"


def test_adopting_the_job_a_crashed_operator_created() -> None:
    st = RetrainingStatus(consecutive_checks=3)
    mine = adopt(st, a_job(), UID, T0)
    assert mine.last_job == "m-retrain-x" and mine.outcome == "Running"
    assert mine.last_started == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert mine.consecutive_checks == 0
    assert adopt(st, a_job(COMPLETE), UID, T0).outcome == "Succeeded"
    other = adopt(st, a_job(uid="someone-else"), UID, T0)
    assert other.last_job is None and other.message == \
        "a Job named m-retrain-x exists and is not this monitor's"
    gone = adopt(st, None, UID, T0)
    assert gone.last_job is None and "deleted meanwhile" in (gone.message or "")
