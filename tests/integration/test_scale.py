"""The scale benchmark (``benchmarks/scale.py``) end to end against the test cluster, small:
its figures come out of a real operator and API server, and the counted goals hold. No wall
time is asserted; ``make bench`` runs it at 1,000 monitors."""

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
