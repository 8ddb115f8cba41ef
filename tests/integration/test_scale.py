"""The scale benchmark (``benchmarks/scale.py``) end to end against the test cluster, small:
its figures come out of a real operator and API server, and the counted goals hold. No wall
time is asserted; ``make bench`` runs it at 1,000 monitors on one operator and 3,000 on three
replicas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kube import REPO_ROOT, Kubectl, unique_name


@pytest.mark.timeout(600)
def test_scale_benchmark_counts_one_status_patch_per_check(kubectl: Kubectl,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "scale.py"), "--kubeconfig",
         str(kubectl.kubeconfig), "--monitors", "12", "--namespaces", "3", "--interval", "10s",
         "--minutes", "0.5", "--scope", "namespaces", "--prefix", unique_name("mm-scale"),
         "--json", str(out)],
        check=True, cwd=REPO_ROOT, timeout=540, stdout=subprocess.DEVNULL)
    r = json.loads(out.read_text())
    assert r["operator_alive"]
    assert r["errors"] == 0
    # 12 monitors every 10 s for 30 s: each checked in the window, none skipped for long.
    assert r["checks"] >= 12 * 2
    assert r["checks_per_monitor_min"] >= 2
    # One status patch per check, by the operator's count and the API server's (the two are
    # read a moment apart, so a check in flight may fall on either side).
    assert abs(r["requests_by_method"]["PATCH"] - r["checks"]) <= 4
    assert abs(r["status_patches"] - r["checks"]) <= 4
    # The server's count, read on both sides of each end's scrape, brackets the checks.
    assert r["status_patches_low"] - 4 <= r["checks"] <= r["status_patches_high"] + 4
    assert r["requests_per_check"] >= 1
    assert r["scrape_series"] > 12 * 50
    assert r["rss_hwm_mib"] > r["idle_rss_mib"] > 0
    assert r["lateness_p99_bucket"] > 0


@pytest.mark.timeout(300)
def test_scale_benchmark_with_replicas_takes_over_a_killed_one(kubectl: Kubectl,
                                                              tmp_path: Path) -> None:
    """``scale.py --replicas 3``, small: three replicas share 30 monitors, one is killed,
    the survivors check its monitors; the figures the report needs come out, counted."""
    out = tmp_path / "replicas.json"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "scale.py"), "--kubeconfig",
         str(kubectl.kubeconfig), "--replicas", "3", "--monitors", "30", "--namespaces", "3",
         "--interval", "10s", "--minutes", "0.5", "--lease-duration", "8",
         "--scope", "namespaces", "--prefix", unique_name("mm-rep"), "--json", str(out)],
        check=True, cwd=REPO_ROOT, timeout=270, stdout=subprocess.DEVNULL)
    r = json.loads(out.read_text())
    per = r["per_replica"]
    assert sorted(per) == ["r0", "r1", "r2"]
    assert all(r["alive"].values()) and sorted(r["alive"]) == ["r0", "r2"]
    # Every monitor owned by exactly one replica, every replica seeing all three.
    assert sum(p["monitors"] for p in per.values()) == 30
    assert all(p["members"] == 3 and p["checks"] > 0 for p in per.values())
    assert r["errors"] == 0 and r["takeover_errors"] == 0
    # Each monitor checked in every interval of the window, by one replica at a time.
    assert r["monitors_checked_in_window"] == 30
    assert r["checks_per_monitor_min"] >= 2
    assert r["checks"] >= 30 * 2
    assert r["twice"] == 0 and r["dropped_writes"] == 0
    # The killed replica's monitors all taken over, by the survivors alone.
    assert r["victim"] == "r1" and r["orphans"] == per["r1"]["monitors"] > 0
    assert r["orphans_taken"] == r["orphans"]
    assert sum(p["monitors"] for p in r["survivors"].values()) == 30
    assert sum(p["handovers_taken"] for p in r["survivors"].values()) >= r["orphans"]
    assert all(p["rss_hwm_mib"] > r["idle_rss_mib"][rid] > 0 for rid, p in per.items())
