"""The chart's live report values: off by default, a ClusterIP Service of its own, and a
base URL the schema checks (rendered with helm in tests/integration/test_live_report.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "modelmon"


def test_the_report_is_off_by_default_with_no_link() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["report"] == {"enabled": False, "port": 8090, "baseUrl": "",
                                "serviceAnnotations": {}}
    assert values["networkPolicy"]["reportFrom"] == []


def test_its_service_is_cluster_internal_and_only_when_enabled() -> None:
    template = (CHART / "templates" / "report-service.yaml").read_text()
    assert template.startswith("{{- if .Values.report.enabled }}")
    assert "type: ClusterIP" in template and ".Values.service.type" not in template


def test_the_schema_takes_http_base_urls_only() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    pattern = re.compile(schema["properties"]["report"]["properties"]["baseUrl"]["pattern"])
    for good in ("", "https://modelmon.example.com", "http://127.0.0.1:8090/ops"):
        assert pattern.search(good), good
    for bad in ("modelmon.example.com", "ftp://x", "https://x/?a=1", "https://x/#f",
                "javascript:alert(1)"):
        assert not pattern.search(bad), bad
