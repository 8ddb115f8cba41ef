"""promtool on a generated PrometheusRule, for the tests of each alert family: the rule file
must pass ``promtool check rules``, and ``promtool test rules`` must see each alert fire
and resolve on the series given."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from toolcheck import require

#: The annotation template a rule renders its figure with.
VALUE = '{{ $value | printf "%.4g" }}'


def checked_rules(tmp_path: Path, rule: dict[str, Any]) -> Path:
    """Write the PrometheusRule's groups to ``rules.yaml`` and check them with promtool."""
    promtool = require("promtool")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule['spec']['groups'][0]['rules'])} rules found" in done.stdout
    return path


def expected_alert(rule: dict[str, Any], labels: dict[str, str],
                   rendered: dict[str, str]) -> dict[str, Any]:
    """The alert promtool should report for ``rule``: its labels plus the series labels its
    expression keeps, its annotations with each template in ``rendered`` filled in."""
    annotations = {}
    for key, text in rule["annotations"].items():
        out = text
        for template, value in rendered.items():
            out = out.replace(template, value)
        annotations[key] = out
    return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": annotations}


def alerts_fire_as_expected(rules: Path, series: list[tuple[str, str]], alertname: str,
                            expected: dict[str, list[dict[str, Any]]]) -> None:
    """``promtool test rules`` over ``series`` (name, values at 1m steps): at each eval time
    in ``expected`` the alert ``alertname`` has exactly those alerts (none: resolved)."""
    promtool = require("promtool")
    checks = [{"eval_time": at, "alertname": alertname, "exp_alerts": alerts}
              for at, alerts in expected.items()]
    test = {"rule_files": [rules.name], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "alert_rule_test": checks,
                       "input_series": [{"series": s, "values": v} for s, v in series]}]}
    (rules.parent / "tests.yaml").write_text(yaml.safe_dump(test))
    done = subprocess.run([promtool, "test", "rules", "tests.yaml"], capture_output=True,
                          text=True, check=False, cwd=rules.parent)
    assert done.returncode == 0, done.stdout + done.stderr
