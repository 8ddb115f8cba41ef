"""The live report from a running operator on the local control plane: `modelmon run
--report-port --report-base-url` checks a real monitor, /monitors and
/monitors/<namespace>/<name> answer from that check, the PrometheusRule's alerts link to it,
and a deleted monitor's page goes away. And the chart's report values, rendered."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import REPO_ROOT, Cluster, Kubectl, wait_for
from monitors import apply, monitor, status_when
from operator_proc import OperatorProcess, free_port, http_get

from modelmon.api.names import rule_name
from modelmon.cli import parse_args

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def reporting(cluster: Cluster, namespace: str, tmp_path: Path
              ) -> Iterator[tuple[OperatorProcess, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                         extra_env={"MODELMON_REPORT_PORT": str(port)},
                         extra_args=["--report-base-url", base + "/"]).start()
    yield op, base
    assert op.stop() == 0, op.logs()[-3000:]


def get_json(url: str) -> Any:
    status, body = http_get(url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def test_the_operator_serves_the_report_of_its_checks(
        kubectl: Kubectl, namespace: str, data: Path,
        reporting: tuple[OperatorProcess, str]) -> None:
    op, base = reporting
    assert get_json(f"{base}/monitors?format=json") == {"monitors": []}
    apply(kubectl, namespace, monitor("bc", data))
    st = status_when(kubectl, namespace, "bc", lambda s: s.get("lastCheck"), timeout=60)

    def listed() -> dict[str, Any] | None:
        found = get_json(f"{base}/monitors?format=json")["monitors"]
        return next((m for m in found if m["name"] == "bc" and m["lastCheck"]), None)

    entry = wait_for(listed, timeout=20, what="bc listed with a check")
    assert entry["namespace"] == namespace and entry["model"] == "breast-cancer-lr"
    assert entry["phase"] in ("Drifting", "Degraded")
    assert entry["drifted"] == len(st["drift"]["drifted"])
    assert entry["features"] == len(st["drift"]["features"])
    assert entry["report"] == f"/monitors/{namespace}/bc"

    # The page: the report of the last check, a plot of every column, the history.
    status, page = http_get(f"{base}/monitors/{namespace}/bc")
    assert status == 200
    assert f'data-monitor="{namespace}/bc"' in page and 'id="modelmon-charts"' in page
    for feature in st["drift"]["features"]:
        assert f'data-column="{feature["name"]}"' in page
    assert 'id="m0-trends"' in page
    detail = get_json(f"{base}/monitors/{namespace}/bc?format=json")
    assert detail["status"]["drift"]["features"]
    assert detail["history"] and detail["history"][-1]["phase"] == detail["phase"]

    # The HTML list names it too; unknown and malformed names are 404s.
    status, listing = http_get(f"{base}/monitors")
    assert status == 200 and f'href="/monitors/{namespace}/bc"' in listing
    assert http_get(f"{base}/monitors/{namespace}/nope")[0] == 404
    assert http_get(f"{base}/monitors/{namespace}/..%2F..%2Fetc%2Fpasswd")[0] == 404

    # Every alert of the rule links to the page.
    rule = kubectl.json("get", "prometheusrule", rule_name("bc"), "-n", namespace)
    links = {r["annotations"].get("report_url") for r in rule["spec"]["groups"][0]["rules"]}
    assert links == {f"{base}/monitors/{namespace}/bc"}

    # Deleted: its page and its line go away.
    kubectl("delete", "mm", "bc", "-n", namespace)
    wait_for(lambda: http_get(f"{base}/monitors/{namespace}/bc")[0] == 404, timeout=30,
             what="the page of a deleted monitor gone")
    assert get_json(f"{base}/monitors?format=json") == {"monitors": []}
    assert "live report on :" in op.logs()


def test_the_chart_passes_the_report_settings_to_the_operator(
        helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def render(*values: str) -> list[dict[str, Any]]:
        sets = [arg for v in values for arg in ("--set", v)]
        out = subprocess.run(
            [str(helm), "template", "modelmon", str(REPO_ROOT / "helm" / "modelmon"), *sets],
            check=True, capture_output=True, text=True, env={
                **os.environ, "HELM_CACHE_HOME": "/tmp/modelmon-helm/cache",
                "HELM_CONFIG_HOME": "/tmp/modelmon-helm/config",
                "HELM_DATA_HOME": "/tmp/modelmon-helm/data"}).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        (one,) = deployment["spec"]["template"]["spec"]["containers"]
        return dict(one)

    plain = render()
    env = {e["name"] for e in container(plain)["env"]}
    assert not {"MODELMON_REPORT_PORT", "MODELMON_REPORT_BASE_URL"} & env
    assert "report" not in {p["name"] for p in container(plain)["ports"]}
    assert not [d for d in plain if d["metadata"]["name"].endswith("-report")]

    docs = render("report.enabled=true", "report.baseUrl=https://mm.example.com/",
                  "networkPolicy.enabled=true",
                  "networkPolicy.reportFrom[0].podSelector.matchLabels.role=oncall")
    values = {e["name"]: e["value"] for e in container(docs)["env"] if "value" in e}
    for key in ("MODELMON_REPORT_PORT", "MODELMON_REPORT_BASE_URL"):
        monkeypatch.setenv(key, values[key])
    parsed = parse_args(["run"])  # what `modelmon run` makes of them
    assert parsed.report_port == 8090 and parsed.report_base_url == "https://mm.example.com"
    assert {"name": "report", "containerPort": 8090, "protocol": "TCP"} in container(
        docs)["ports"]
    (service,) = [d for d in docs if d["kind"] == "Service"
                  and d["metadata"]["name"].endswith("-report")]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "report", "port": 8090,
                                         "targetPort": "report", "protocol": "TCP"}]
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    (report_rule,) = [r for r in policy["spec"]["ingress"]
                      if r["ports"] == [{"port": "report", "protocol": "TCP"}]]
    assert report_rule["from"] == [{"podSelector": {"matchLabels": {"role": "oncall"}}}]
