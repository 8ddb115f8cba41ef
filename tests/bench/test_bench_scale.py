"""The scale benchmark's arithmetic (``benchmarks/scale.py``): histogram quantiles over a
window and the goals' verdicts, for one operator and for several replicas (their logs read
into checks, checks twice in an interval, their histograms added up). The run itself is
``tests/integration/test_scale.py``."""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import (  # noqa: E402
    Logs,
    goals,
    lateness_of,
    parse,
    quantile,
    replica_samples,
    replicas_goals,
    replicas_section,
    section,
    twice,
    worst_bucket,
)

INF = math.inf


def test_quantile_uses_only_the_window_and_interpolates_in_the_bucket() -> None:
    # 100 observations before the window, all slow; 100 in it: 50 under 0.1 s, 49 in
    # (0.1, 1], 1 in (1, 10].
    before = [(0.1, 0.0), (1.0, 0.0), (10.0, 100.0), (INF, 100.0)]
    after = [(0.1, 50.0), (1.0, 99.0), (10.0, 200.0), (INF, 200.0)]
    p50, le50 = quantile(0.5, before, after)
    assert p50 == pytest.approx(0.1)
    assert le50 == 0.1
    p99, le99 = quantile(0.99, before, after)
    assert le99 == 1.0 and p99 == pytest.approx(1.0)
    p995, le995 = quantile(0.995, before, after)
    assert le995 == 10.0 and 1.0 < p995 < 10.0


def test_quantile_of_an_empty_window_is_nan() -> None:
    same = [(1.0, 3.0), (INF, 3.0)]
    assert all(math.isnan(x) for x in quantile(0.5, same, same))


def test_quantile_in_the_overflow_bucket_reports_its_lower_bound() -> None:
    after = [(1.0, 0.0), (INF, 5.0)]
    assert quantile(0.5, [], after) == (1.0, INF)


def result(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "monitors": 1000, "interval_seconds": 60.0, "namespaces": 10, "workers": 2,
        "minutes": 5.0, "scope": "cluster", "create_seconds": 9.0,
        "first_round_seconds": 40.0, "window_seconds": 300.0, "checks": 5000.0,
        "checks_per_minute": 1000.0, "checks_per_monitor_min": 5.0,
        "checks_per_monitor_max": 5.0, "errors": 0.0, "mean_check_seconds": 0.05,
        "lateness_p50_seconds": 0.01, "lateness_p50_bucket": 0.025,
        "lateness_p99_seconds": 0.2, "lateness_p99_bucket": 0.25, "rss_mib_p50": 300.0,
        "rss_mib_max": 310.0, "rss_hwm_mib": 320.0, "cpu_cores": 0.8,
        "loop_lag_p50_seconds": 0.001, "loop_lag_p99_seconds": 0.01,
        "loop_lag_p99_bucket": 0.01, "loop_lag_max_bucket": 0.025,
        "requests_by_method": {"PATCH": 5000.0}, "requests_per_check": 1.0,
        "patch_requests_per_check": 1.0, "status_patches": 5003.0,
        "status_patches_per_check": 1.0006, "idle_rss_mib": 120.0, "scrape_seconds_max": 0.8,
        "scrape_bytes": 30_000_000, "scrape_series": 250_000, "scrape_every_seconds": 30.0}
    r.update(over)
    return r


def test_goals_pass_and_fail_on_their_bounds() -> None:
    assert all(ok for *_, ok in goals(result()))
    verdicts = {g: ok for g, _, _, ok in goals(result(
        checks_per_monitor_min=4.0, lateness_p99_bucket=30.0, rss_hwm_mib=1100.0,
        patch_requests_per_check=1.001))}
    assert not any(verdicts.values()), verdicts
    # Up to the requests in flight at the window's edges, never more.
    assert all(ok for *_, ok in goals(result(patch_requests_per_check=1.0008)))


def test_section_names_every_goal() -> None:
    text = "\n".join(section(result()))
    assert text.count("| PASS |") == 4
    assert "1000 ModelMonitors" in text


def test_section_gives_the_servers_count_as_a_range_when_bracketed() -> None:
    text = "\n".join(section(result(status_patches_low=4990.0, status_patches_high=5080.0)))
    assert "4990 to 5080 status patches" in text
    assert "| 0.9980 to 1.0160 |" in text
    assert "4990 to" not in "\n".join(section(result()))


def test_worst_bucket_is_the_first_that_holds_every_new_observation() -> None:
    before = [(0.01, 10.0), (0.5, 10.0), (30.0, 10.0), (INF, 10.0)]
    # Cumulative buckets: one slow observation raises every bound above it, not only its own.
    after = [(0.01, 50.0), (0.5, 59.0), (30.0, 60.0), (INF, 60.0)]
    assert worst_bucket(before, after) == 30.0
    after = [(0.01, 50.0), (0.5, 60.0), (30.0, 60.0), (INF, 60.0)]
    assert worst_bucket(before, after) == 0.5
    assert worst_bucket(before, [(0.01, 10.0), (0.5, 10.0), (30.0, 10.0), (INF, 11.0)]) == INF


def log_line(when: str, event: str, monitor: str, **more: Any) -> str:
    return json.dumps({"time": when, "level": "info", "event": event, "monitor": monitor,
                       **more})


def test_logs_read_checks_and_dropped_writes_as_the_files_grow(tmp_path: Path) -> None:
    r0, r1 = tmp_path / "r0.log", tmp_path / "r1.log"
    r0.write_text(log_line("2026-01-01T00:00:10.500Z", "check", "ns/a", duration_seconds=0.5)
                  + "\nnot json\n"
                  + log_line("2026-01-01T00:00:11.000Z", "watch", "ns/b") + "\n")
    r1.write_text(log_line("2026-01-01T00:00:12.000Z", "handover", "ns/a", action="dropped",
                           reason="StatusChanged") + "\n"
                  + log_line("2026-01-01T00:00:13.000Z", "handover", "ns/b", action="dropped")
                  + "\n" + log_line("2026-01-01T00:01:10.000Z", "check", "ns/a")[:20])
    logs = Logs({"r0": r0, "r1": r1})
    logs.read()
    assert [(c.monitor, c.replica) for c in logs.checks] == [("ns/a", "r0")]
    check = logs.checks[0]
    assert check.written - check.began == pytest.approx(0.5)
    assert check.began == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC).timestamp()
    assert [m for m, _ in logs.dropped] == ["ns/a"]  # another replica wrote first
    assert [m for m, _ in logs.moved] == ["ns/b"]  # fenced while it ran
    # The half-written line is read once it is whole, and nothing is read twice.
    with r1.open("a") as f:
        f.write(log_line("2026-01-01T00:01:10.000Z", "check", "ns/a")[20:] + "\n")
    logs.read()
    assert [(c.monitor, c.replica) for c in logs.checks] == [("ns/a", "r0"), ("ns/a", "r1")]
    assert logs.checked() == {"ns/a"} and len(logs.dropped) == 1


def logs_of(*checks: tuple[str, str, float]) -> Logs:
    from scale import Check

    logs = Logs({})
    logs.checks = [Check(m, rid, began, began + 0.3) for m, rid, began in checks]
    return logs


def test_twice_finds_checks_of_one_monitor_by_two_replicas_less_than_an_interval_apart(
        ) -> None:
    logs = logs_of(("a", "r0", 0.0), ("a", "r0", 60.2), ("a", "r1", 125.0),
                   ("b", "r0", 10.0), ("b", "r1", 40.0), ("b", "r1", 100.0),
                   ("c", "r2", 5.0), ("c", "r1", 64.5),
                   ("d", "r0", 0.0), ("d", "r0", 30.0))
    # b twice (30 s apart, across a hand-over); c's 59.5 s is within the slack; d's two
    # are one replica's (its cadence; the log's starts are late by the status write).
    assert twice(logs, 60.0, -INF, INF) == [("b", 30.0)]
    assert twice(logs, 60.0, 50.0, INF) == []  # only checks beginning in the window
    assert sorted(m for m, _ in twice(logs, 70.0, -INF, INF)) == ["a", "b", "c"]


def test_lateness_of_several_replicas_adds_their_buckets() -> None:
    # r0: 99 fast checks in the window; r1: one slow one. Alone, r0's p99 is fast; added
    # up, the slow one is the 100th of 100.
    r0 = [[(1.0, 0.0), (10.0, 0.0), (INF, 0.0)], [(1.0, 99.0), (10.0, 99.0), (INF, 99.0)]]
    r1 = [[(1.0, 5.0), (10.0, 5.0), (INF, 5.0)], [(1.0, 5.0), (10.0, 6.0), (INF, 6.0)]]
    assert lateness_of([r0])["p99_bucket"] == 1.0
    both = lateness_of([r0, r1])
    assert both["p99_bucket"] == 1.0 and both["max_bucket"] == 10.0
    assert lateness_of([r0, r1, r1])["p99_bucket"] == 10.0


def replicas_result(**over: Any) -> dict[str, Any]:
    one = {"checks": 5000.0, "errors": 0.0, "check_seconds": 250.0, "patches": 5000.0,
           "monitors": 1000.0, "members": 3.0, "renew_failures": 0.0,
           "handovers_taken": 0.0, "handovers_released": 0.0, "rss_mib_p50": 400.0,
           "rss_mib_max": 410.0, "rss_hwm_mib": 420.0, "cpu_cores": 0.5}
    r: dict[str, Any] = {
        "mode": "replicas", "replicas": 3, "monitors": 3000, "interval_seconds": 60.0,
        "lease_duration_seconds": 20.0, "namespaces": 10, "workers": 2, "minutes": 5.0,
        "scope": "cluster", "victim": "r1", "load_before": 0.5, "load_after": 2.5,
        "machine": {"cpu": "x", "cpus": "2", "ram": "4 GiB"},
        "idle_rss_mib": {"r0": 200.0, "r1": 200.0, "r2": 200.0},
        "create_seconds": 60.0, "first_round_seconds": 90.0, "window_seconds": 300.0,
        "per_replica": {rid: dict(one) for rid in ("r0", "r1", "r2")},
        "checks": 15000.0, "checks_per_minute": 3000.0, "checks_per_monitor_min": 5,
        "checks_per_monitor_max": 5, "monitors_checked_in_window": 3000,
        "split_spread": 0.02, "errors": 0.0, "mean_check_seconds": 0.05,
        "lateness_p50_seconds": 0.01, "lateness_p50_bucket": 0.025,
        "lateness_p99_seconds": 2.0, "lateness_p99_bucket": 2.5, "lateness_max_bucket": 5.0,
        "twice_steady": 0, "status_patches": 15000.0, "patch_requests": 15000.0,
        "scrape_every_seconds": 30.0, "victim_rss_hwm_mib": 420.0, "orphans": 1000,
        "orphans_taken": 1000, "takeover_bound_seconds": 80.0, "takeover_seconds": 45.0,
        "takeover_p50_seconds": 30.0, "taken_lateness_p50_seconds": 10.0,
        "taken_lateness_p99_seconds": 20.0, "taken_lateness_max_seconds": 21.0,
        "takeover_window_seconds": 110.0, "takeover_lateness_p99_seconds": 1.0,
        "takeover_lateness_p99_bucket": 1.0, "takeover_errors": 0.0,
        "takeover_checks": 4000.0, "twice_takeover": 0,
        "survivors": {rid: dict(one, monitors=1500.0) for rid in ("r0", "r2")},
        "survivor_rss_hwm_mib": {"r0": 500.0, "r2": 510.0}, "twice": 0,
        "dropped_writes": 0, "alive": {"r0": True, "r2": True}}
    r.update(over)
    return r


def test_replicas_goals_pass_and_fail_on_their_bounds() -> None:
    assert all(ok for *_, ok in replicas_goals(replicas_result()))
    failing = replicas_result(
        checks_per_monitor_min=4, lateness_p99_bucket=30.0,
        survivor_rss_hwm_mib={"r0": 500.0, "r2": 1100.0}, split_spread=0.31,
        takeover_seconds=INF, orphans_taken=990, twice=1)
    verdicts = {g: ok for g, _, _, ok in replicas_goals(failing)}
    assert not any(verdicts.values()), verdicts
    # A monitor never checked in the window fails the schedule, as does a dropped write.
    by_name = dict(enumerate(ok for *_, ok in replicas_goals(replicas_result(
        monitors_checked_in_window=2999, dropped_writes=1))))
    assert not by_name[0] and not by_name[5] and all(by_name[i] for i in (1, 2, 3, 4))
    assert not replicas_goals(replicas_result(takeover_seconds=80.5))[4][3]


def test_replicas_section_names_every_goal_and_replica() -> None:
    text = "\n".join(replicas_section(replicas_result()))
    assert text.count("| PASS |") == 6
    assert "| 5000 / 5000 / 5000 |" in text and "3000 ModelMonitors" in text
    failed = "\n".join(replicas_section(replicas_result(takeover_seconds=INF,
                                                        orphans_taken=990)))
    assert "990 of 1000" in failed and failed.count("| FAIL |") == 1
    assert "GOGC" not in text
    tuned = "\n".join(replicas_section(replicas_result(control_plane_gogc=400)))
    assert "`GOGC=400`" in tuned


def test_replica_samples_keep_the_families_the_figures_read_and_no_others() -> None:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    reg = CollectorRegistry()
    Histogram("modelmon_check_duration_seconds", "d", ["monitor"],
              registry=reg).labels("a").observe(0.3)
    Gauge("modelmon_drift_statistic", "s", ["monitor"], registry=reg).labels("a").set(1)
    Counter("modelmon_handovers", "h", ["direction"], registry=reg).labels("taken").inc(3)
    Gauge("modelmon_monitors", "m", registry=reg).set(5)
    text = generate_latest(reg).decode()
    full, kept = parse(text), replica_samples(text)
    assert "modelmon_drift_statistic" in full and "modelmon_drift_statistic" not in kept
    assert kept == {name: samples for name, samples in full.items()
                    if not name.startswith("modelmon_drift")}
    assert kept["modelmon_handovers_total"] == [({"direction": "taken"}, 3.0)]
