"""/metrics renders the monitors' gauges itself: the same samples, in both formats, as
prometheus_client writes from the registry."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as untyped_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from modelmon.api.v1alpha1 import ConfidenceStatus, EstimatedMetric, ModelMonitorStatus
from modelmon.outputs.metrics import Metrics
from unit.outputs.test_metrics import status

openmetrics_latest: Callable[[Any], bytes] = untyped_latest
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def rich() -> ModelMonitorStatus:
    """Every family of the monitors' gauges, with label values that need escaping."""
    base = status()
    assert base.drift is not None
    feature = base.drift.features[0].model_copy(update={"name": 'we"ird\\col\nx',
                                                        "effect_size": 0.25})
    return base.model_copy(update={
        "drift": base.drift.model_copy(update={"features": [feature]}),
        "operational": {"latency_p99": 1e-7, "errors": 12345678.0},
        "estimated_performance": {"accuracy": EstimatedMetric(value=0.9, lower=0.8,
                                                              upper=None)},
        "confidence": ConfidenceStatus(mean_confidence=0.7, low_confidence_share=0.1,
                                       class_shares={"a b": 0.5, "c": 0.5})})


def filled() -> Metrics:
    metrics = Metrics()
    for i, monitor in enumerate(("m", "n", "o")):
        metrics.observe("ns", monitor, model=f"model-{i}", status=rich(), seconds=0.5,
                        last_success=1.7e9 + i, error="SourceUnavailable" if i else None)
    return metrics


def samples(text: str, parse: Any = text_string_to_metric_families) -> set[tuple[Any, ...]]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for family in parse(text) for s in family.samples}


def test_the_text_format_holds_the_registrys_samples_exactly() -> None:
    metrics = filled()
    body, content_type = metrics.exposition(None)
    assert content_type.startswith("text/plain")
    assert samples(body.decode()) == samples(generate_latest(metrics.registry).decode())
    assert body.decode().count("# TYPE modelmon_drift_statistic gauge") == 1


def test_openmetrics_holds_them_too_and_ends_with_eof() -> None:
    metrics = filled()
    body, content_type = metrics.exposition(OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    assert samples(text, om_parse) == samples(openmetrics_latest(metrics.registry).decode(),
                                              om_parse)


@pytest.mark.parametrize("accept", [None, OPENMETRICS])
def test_a_new_check_replaces_the_cached_lines_and_forget_drops_them(
        accept: str | None) -> None:
    metrics = filled()
    metrics.exposition(accept)  # caches every monitor's lines
    newer = rich().model_copy(update={"phase": "Healthy", "performance": {"accuracy": 0.5}})
    metrics.observe("ns", "m", model="model-0", status=newer, seconds=0.1,
                    last_success=1.8e9, error=None)
    metrics.forget("ns", "n")
    text = metrics.exposition(accept)[0].decode()
    parse = om_parse if accept else text_string_to_metric_families
    want = (generate_latest if accept is None else openmetrics_latest)(metrics.registry)
    assert samples(text, parse) == samples(want.decode(), parse)
    assert 'monitor="n"' not in text


def test_the_app_gzips_and_filters_by_name_as_prometheus_client_does() -> None:
    metrics = filled()
    app = metrics.app()
    got: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        got.update(status=status, headers=dict(headers))

    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "",
           "HTTP_ACCEPT_ENCODING": "gzip"}
    body = gzip.decompress(b"".join(app(env, start)))
    assert got["status"] == "200 OK" and got["headers"]["Content-Encoding"] == "gzip"
    assert samples(body.decode()) == samples(generate_latest(metrics.registry).decode())
    env = {**env, "QUERY_STRING": "name[]=modelmon_build_info", "HTTP_ACCEPT_ENCODING": ""}
    names = {f.name for f in text_string_to_metric_families(b"".join(app(env, start))
                                                             .decode())}
    assert names == {"modelmon_build_info"}
