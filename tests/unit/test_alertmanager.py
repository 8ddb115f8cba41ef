"""The README's Alertmanager route for modelmon's alerts: valid (amtool), and routing the
labels the generated PrometheusRule really puts on alerts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from modelmon.check import load_monitors
from modelmon.outputs.rules import prometheus_rule
from toolcheck import require

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "manifests" / "samples" / "modelmonitor.yaml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(# alertmanager\.yaml\n.*?)```", readme, re.S)
    assert block, "README has no alertmanager.yaml block"
    path = tmp_path / "alertmanager.yaml"
    path.write_text(block.group(1))
    return path


def route(amtool: str, config: Path, labels: dict[str, str]) -> list[str]:
    proc = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                           *(f"{k}={v}" for k, v in labels.items())],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(",")


def test_the_readme_config_is_valid(config: Path) -> None:
    amtool = require("amtool")
    proc = subprocess.run([amtool, "check-config", str(config)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    amtool = require("amtool")
    bad = tmp_path / "bad.yaml"
    bad.write_text("route:\n  receiver: nobody\nreceivers:\n  - name: default\n")
    proc = subprocess.run([amtool, "check-config", str(bad)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0


def test_alerts_of_the_sample_monitor_reach_their_team(config: Path) -> None:
    """Each alert the operator would generate for the sample goes where the README says."""
    amtool = require("amtool")
    monitor = load_monitors(SAMPLE)[0]
    rule = prometheus_rule("ml-prod", monitor.metadata.name, monitor.spec)
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    group_by = yaml.safe_load(config.read_text())["route"]["group_by"]
    for alert in alerts:
        labels = {"alertname": alert["alert"], **alert["labels"]}
        # Series labels that the expression keeps (namespace, monitor) complete the alert.
        labels.update({"namespace": "ml-prod", "monitor": monitor.metadata.name})
        assert set(group_by) <= set(labels), alert["alert"]
        expected = {"critical": ["risk-pager", "risk-slack"],
                    "warning": ["risk-slack"]}[labels["severity"]]
        assert route(amtool, config, labels) == expected, alert["alert"]
    assert route(amtool, config, {"team": "fraud", "severity": "critical"}) == ["default"]
