"""The scale benchmark's arithmetic (``benchmarks/scale.py``): histogram quantiles over a
window and the goals' verdicts. The run itself is ``tests/integration/test_scale.py``."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import goals, quantile, section, worst_bucket  # noqa: E402

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
