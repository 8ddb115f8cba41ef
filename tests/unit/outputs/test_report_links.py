"""Links to the live report: with a report base URL, every notification (Slack, PagerDuty,
webhook, Alertmanager, e-mail's text) and every alert of the PrometheusRule carries
<base>/monitors/<namespace>/<name>; without one, nothing changes (the golden rule file
included), and promtool still accepts the rule."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from modelmon.api.names import report_url
from modelmon.api.v1alpha1 import AlertingSpec, Finding, ModelMonitor
from modelmon.cli import main
from modelmon.outputs.notifiers import Context, notify
from modelmon.outputs.notifiers.base import Message
from modelmon.outputs.rules import prometheus_rule
from toolcheck import require

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "breast-cancer" / "monitor.yaml"
GOLDEN = ROOT / "tests" / "golden" / "breast-cancer.prometheusrule.yaml"
BASE = "https://modelmon.example.com/ops"
LINK = "https://modelmon.example.com/ops/monitors/ml/credit"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
AUC = Finding(name="performance.rocAuc", severity="critical", value=0.6, bound=0.8,
              message="rocAuc 0.6 is below 0.8")


def context(link: str | None) -> Context:
    return Context("ml", "credit", "credit-risk", "2.3.1", "Degraded", 600.0,
                   report_url=link)


class Secrets:
    def __init__(self, url: str) -> None:
        self.url = url

    def secret(self, name: str, key: str) -> str:
        return self.url if name == "slack" else "routing-key"


@pytest.fixture
async def received() -> AsyncIterator[tuple[str, list[Any]]]:
    bodies: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(json.loads(await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", bodies
    await runner.cleanup()


def notifiers(url: str) -> AlertingSpec:
    return AlertingSpec.model_validate({"notifiers": [
        {"slack": {"webhookSecretRef": {"name": "slack", "key": "url"}}},
        {"pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "key"},
                       "url": url + "/pd"}},
        {"webhook": {"url": url + "/hook"}},
        {"alertmanager": {"url": url + "/am"}},
    ], "dashboardUrl": "https://grafana.example/d/x"})


@pytest.mark.parametrize("link", [LINK, None])
async def test_every_notifier_links_to_the_report_when_configured(
        received: tuple[str, list[Any]], link: str | None) -> None:
    url, bodies = received
    states = await notify(notifiers(url), [AUC], [], context(link), Secrets(url + "/slack"),
                          T0)
    assert all(s.last_error is None for s in states)
    slack, pagerduty, webhook, alerts = sorted(
        bodies, key=lambda b: 0 if "blocks" in b else 1 if "routing_key" in b
        else 2 if "dedupKey" in b else 3)
    detail = slack["blocks"][1]["text"]["text"]
    links = pagerduty["links"]
    assert links[0] == {"href": "https://grafana.example/d/x", "text": "dashboard"}
    if link is None:
        assert "Report:" not in detail and "reportUrl" not in webhook
        assert len(links) == 1
        assert all("report_url" not in a["annotations"] for a in alerts)
        return
    assert f"Report: {LINK}" in detail.splitlines()
    assert detail.splitlines()[-1] == "https://grafana.example/d/x"  # the dashboard stays
    assert links[1] == {"href": LINK, "text": "modelmon report"}
    assert webhook["reportUrl"] == LINK
    assert [a["annotations"]["report_url"] for a in alerts] == [LINK]


def test_an_email_says_where_the_report_is() -> None:
    message = Message(namespace="ml", monitor="credit", model="m", model_version=None,
                      phase="Degraded", time=T0, firing=[AUC], resolved=[], dedup_key="k",
                      report_url=LINK)
    assert message.lines() == ["critical: rocAuc 0.6 is below 0.8", f"Report: {LINK}",
                               message.hint()]


def test_report_urls_are_built_from_the_base() -> None:
    assert report_url(None, "ml", "credit") is None
    assert report_url("", "ml", "credit") is None
    assert report_url(BASE + "/", "ml", "credit") == LINK
    assert report_url("http://127.0.0.1:8090", "a", "b.c") == "http://127.0.0.1:8090/monitors/a/b.c"


def example_rule(base: str | None) -> dict[str, Any]:
    mon = ModelMonitor.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    return prometheus_rule("ml-demo", "breast-cancer", mon.spec, report_base_url=base)


def test_every_alert_links_to_the_report_and_nothing_else_changes() -> None:
    plain, linked = example_rule(None), example_rule(BASE)
    link = BASE + "/monitors/ml-demo/breast-cancer"
    rules = linked["spec"]["groups"][0]["rules"]
    assert rules and all(r["annotations"]["report_url"] == link for r in rules)
    for r in rules:
        del r["annotations"]["report_url"]
    assert linked == plain
    assert all("report_url" not in r["annotations"]
               for r in plain["spec"]["groups"][0]["rules"])


def test_modelmon_rules_takes_the_base_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == GOLDEN.read_text()  # the default output, unchanged
    assert main(["rules", str(EXAMPLE), "--report-base-url", BASE + "/"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == example_rule(BASE)
    with pytest.raises(SystemExit):
        main(["rules", str(EXAMPLE), "--report-base-url", "ftp://x"])
    assert "--report-base-url" in capsys.readouterr().err


def test_promtool_accepts_the_rule_with_its_links(tmp_path: Path) -> None:
    promtool = require("promtool")
    path = tmp_path / "rules.yaml"
    obj = example_rule(BASE)
    path.write_text(yaml.safe_dump(obj["spec"]))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    count = len(obj["spec"]["groups"][0]["rules"])
    assert f"SUCCESS: {count} rules found" in done.stdout
