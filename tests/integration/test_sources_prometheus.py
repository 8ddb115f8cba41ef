"""The prometheus source against a real Prometheus on 127.0.0.1 scraping a test exporter."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from servers import Prometheus, free_port, prometheus, wait_for

from modelmon.api.v1alpha1 import ModelMonitorSpec, Source
from modelmon.check import run_check
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.rules import prometheus_rule
from modelmon.sources import DataError, LoadContext, SourceError, load
from modelmon.sources.prometheus import OperationalFigure, operational_figures
from verdicts import out_of_bounds

ROLE = "spec.operational.source"


@pytest.fixture(scope="module")
def prom() -> Iterator[Prometheus]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry()
    latency = Histogram("app_request_duration_seconds", "latency", registry=registry,
                        buckets=(0.05, 0.1, 0.25, 0.5, 1.0))
    for _ in range(100):
        latency.observe(0.03)
    for _ in range(10):
        latency.observe(0.3)
    requests = Counter("app_requests", "requests", ["code"], registry=registry)
    requests.labels("200").inc(980)
    requests.labels("500").inc(20)
    Gauge("app_queue_depth", "queue", registry=registry).set(7)
    load_gauge = Gauge("app_load", "a value that climbs by one every half second",
                       registry=registry)
    stop = threading.Event()

    def climb() -> None:
        value = 0
        while not stop.wait(0.5):
            value += 1
            load_gauge.set(value)

    thread = threading.Thread(target=climb, daemon=True)
    thread.start()
    try:
        with prometheus(registry) as server:
            wait_for("four scrapes of app_load", lambda: float(server.query(
                "count_over_time(app_load[30s])")[0]["value"][1]) >= 4, timeout=30)
            yield server
    finally:
        stop.set()
        thread.join()


def source(url: str, *queries: dict[str, Any], **extra: Any) -> Source:
    return Source.model_validate({"prometheus": {"url": url, "queries": list(queries),
                                                 **extra}})


def figures(src: Source, *, end: datetime | None = None, retries: int = 0
            ) -> list[OperationalFigure]:
    return operational_figures(src, LoadContext(role=ROLE, window_end=end, retries=retries,
                                                retry_delay=0.05))


def test_instant_figures_and_bounds(prom: Prometheus) -> None:
    src = source(
        prom.url,
        {"name": "latencyP95Seconds", "max": 0.1, "severity": "critical",
         "query": "histogram_quantile(0.95, sum by (le) (app_request_duration_seconds_bucket))"},
        {"name": "errorRate", "max": 0.05,
         "query": 'sum(app_requests_total{code=~"5.."}) / sum(app_requests_total)'},
        {"name": "queueDepth", "min": 1, "query": "scalar(app_queue_depth)"})
    got = figures(src)
    by_name = {f.name: f for f in got}
    found = out_of_bounds(src, got)
    p95 = by_name["latencyP95Seconds"]
    assert p95.value is not None and 0.25 < p95.value <= 0.5
    assert found["latencyP95Seconds"].severity == "critical"
    assert by_name["errorRate"].value == pytest.approx(0.02)
    assert "errorRate" not in found
    assert by_name["queueDepth"].value == 7 and "queueDepth" not in found


def test_range_query_aggregates(prom: Prometheus) -> None:
    queries = [{"name": f"load{how.title()}", "query": "app_load", "range": "30s",
                "step": "1s", "aggregate": how} for how in ("min", "max", "mean", "last")]
    got = {f.name: f.value for f in figures(source(prom.url, *queries))}
    low, high, mean, last = (got[k] for k in ("loadMin", "loadMax", "loadMean", "loadLast"))
    assert low is not None and high is not None and mean is not None and last is not None
    assert low < mean < high and last == high  # the gauge only climbs


def test_several_series_is_an_error_naming_the_query(prom: Prometheus) -> None:
    with pytest.raises(DataError) as info:
        figures(source(prom.url, {"name": "ok", "query": "vector(1)"},
                       {"name": "requests", "query": "app_requests_total"}))
    text = str(info.value)
    assert "spec.operational.source.prometheus.queries[1].query" in text
    assert "'requests' returned 2 series" in text and 'code="500"' in text


def test_no_data_and_nan_are_figures_without_value(prom: Prometheus) -> None:
    src = source(prom.url,
                 {"name": "missing", "query": 'app_requests_total{code="404"}', "max": 1},
                 {"name": "nan", "query": "vector(0) / 0", "max": 1})
    got = figures(src)
    assert [f.value for f in got] == [None, None]
    assert "no data" in (got[0].note or "") and "nan" in (got[1].note or "").lower()
    assert not out_of_bounds(src, got)


def test_instant_query_is_evaluated_at_the_window_end(prom: Prometheus) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)  # before the server started
    got = figures(source(prom.url, {"name": "queueDepth", "query": "app_queue_depth"}),
                  end=an_hour_ago)
    assert got[0].value is None


def test_bad_promql_is_invalid_data(prom: Prometheus) -> None:
    with pytest.raises(DataError) as info:
        figures(source(prom.url, {"name": "broken", "query": "sum(app_requests_total"}))
    assert "queries[0].query" in str(info.value) and "rejected" in str(info.value)


def test_wrong_path_and_unreachable_server(prom: Prometheus) -> None:
    with pytest.raises(SourceError, match="no Prometheus query API") as info:
        figures(source(f"{prom.url}/not-here", {"name": "x", "query": "vector(1)"}))
    assert not info.value.transient
    closed = f"http://user:pa55word@127.0.0.1:{free_port()}"
    with pytest.raises(SourceError) as info:
        figures(source(closed, {"name": "x", "query": "vector(1)"}), retries=1)
    assert info.value.transient and "cannot reach" in str(info.value)
    assert "pa55word" not in str(info.value)


def test_registry_loader_returns_one_row_per_figure(prom: Prometheus) -> None:
    frame = load(source(prom.url, {"name": "a", "query": "vector(2)", "max": 1},
                        {"name": "b", "query": "scalar(app_queue_depth)"}),
                 LoadContext(role=ROLE)).frame
    assert frame[["name", "value"]].to_dict("records") == [{"name": "a", "value": 2.0},
                                                           {"name": "b", "value": 7.0}]


def test_operational_figures_in_a_check(prom: Prometheus, tmp_path: Path) -> None:
    """spec.operational through the whole check: status, findings, phase, condition, and
    the metric and alert the operator exports for it."""
    example = Path(__file__).resolve().parents[2] / "examples" / "breast-cancer"
    shutil.copy(example / "reference.csv", tmp_path / "reference.csv")
    spec = ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "binaryClassification"},
        "reference": {"source": {"url": "reference.csv"}},
        "current": {"source": {"url": "reference.csv"}},
        "columns": {"prediction": "prediction", "target": "target"},
        "operational": {"source": {"prometheus": {"url": prom.url, "queries": [
            {"name": "errorRate", "max": 0.01, "severity": "critical",
             "query": 'sum(app_requests_total{code=~"5.."}) / sum(app_requests_total)'},
            {"name": "queueDepth", "max": 100, "query": "scalar(app_queue_depth)"}]}}},
    })
    st = run_check(spec, base_dir=tmp_path)
    assert st.operational == {"errorRate": pytest.approx(0.02), "queueDepth": 7.0}
    (finding,) = [f for f in st.findings if f.name.startswith("operational.")]
    assert finding.name == "operational.errorRate" and finding.severity == "critical"
    assert finding.bound == 0.01 and st.phase == "Degraded"
    cond = st.condition("OperationalDegraded")
    assert cond is not None and cond.status == "True" and "errorRate" in cond.message

    metrics = Metrics()
    metrics.observe("ml", "m", model="m", status=st, seconds=0.1, last_success=1.0, error=None)
    text = generate_latest(metrics.registry).decode()
    assert 'modelmon_operational_metric{model="m",monitor="m",name="errorRate",namespace="ml"}' \
        in text
    rules = prometheus_rule("ml", "m", spec)["spec"]["groups"][0]["rules"]
    (alert,) = [r for r in rules if r["alert"] == "ModelOperationalDegraded"
                and r["labels"]["name"] == "errorRate"]
    assert alert["labels"]["severity"] == "critical" and "> 0.01" in alert["expr"]
