"""kopf's watch events are decoded with orjson (modelmon.handlers.decoding): installed by the
operator's start-up, the same objects as json.loads on a real event line, the standard
decoder kept (with a warning) when kopf's layout changes, and a kopf upgrade that moves the
decoding call fails here."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import math
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import kopf
import orjson
import pytest
from kopf._cogs.clients import api as kopf_api

from modelmon.api.v1alpha1 import HISTORY_LIMIT
from modelmon.check import run_check
from modelmon.handlers import decoding, lifecycle
from modelmon.health import Health
from modelmon.monitor_files import load_monitors
from modelmon.outputs.publisher import status_body, with_history
from modelmon.worker import Fleet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breast-cancer" / "monitor.yaml"


@pytest.fixture(autouse=True)
def standard_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from kopf's own decoder and leaves it so."""
    monkeypatch.setattr(kopf_api, "json", json)


def kopf_json() -> Any:
    """What kopf's stream() decodes with: the name ``json`` in its module."""
    return vars(kopf_api).get("json")


def watch_line() -> bytes:
    """A MODIFIED event of the example monitor after a full history of checks, as the API
    server writes it on the watch: compact JSON, UTF-8, ``<``, ``>``, ``&`` escaped."""
    monitor = load_monitors(EXAMPLE)[0]
    start = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    checked = run_check(monitor.spec, base_dir=EXAMPLE.parent, now=start)
    status = checked
    for minute in range(HISTORY_LIMIT):
        status = with_history(checked, start + timedelta(minutes=minute), status)
    body = {
        "apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
        "metadata": {
            "name": "breast-cancer", "namespace": "ml-demo", "generation": 3,
            "uid": "5f0c6a8e-2b1d-4c3e-9f7a-1d2e3f4a5b6c", "resourceVersion": "918273",
            "creationTimestamp": "2026-12-05T11:58:02Z",
            "annotations": {"team": "Radiologie — Zürich <ml&ops>", "emoji": "\U0001f52c"},
            "managedFields": [{"manager": "modelmon", "operation": "Update",
                               "subresource": "status", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:status": {".": {}, "f:history": {}}},
                               "time": "2026-12-05T12:19:00Z"}]},
        "spec": monitor.spec.model_dump(by_alias=True, mode="json", exclude_none=True),
        "status": status_body(status),
    }
    text = json.dumps({"type": "MODIFIED", "object": body}, separators=(",", ":"),
                      ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def assert_same(got: Any, want: Any, where: str = "$") -> None:
    """Equal and of the same types all the way down (1 == 1.0 == True in Python)."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys or their order differ"
        for key, value in want.items():
            assert_same(got[key], value, f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{where}: lengths differ"
        for index, (one, other) in enumerate(zip(got, want, strict=True)):
            assert_same(one, other, f"{where}[{index}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    else:
        assert got == want, where


def test_the_operator_start_up_decodes_kopf_watch_events_with_orjson(
        monkeypatch: pytest.MonkeyPatch) -> None:
    line = watch_line()
    assert 10_000 < len(line) < 40_000  # a real status event's size
    seen: dict[str, Any] = {}

    def run(**_: Any) -> None:  # kopf.run: what the watch decodes with once running
        seen["json"] = kopf_json()
        seen["event"] = kopf_json().loads(line.decode("utf-8"))  # as stream() does

    monkeypatch.setattr(kopf, "run", run)
    class NoFleet:  # knows no monitor: the screen takes nothing in
        def absorb(self, body: Any) -> bool:
            return False

    lifecycle.watch(cast(Fleet, NoFleet()), Health(), None, [], threading.Event())
    assert isinstance(seen["json"], decoding.WatchJson)
    assert seen["json"].screen is not None
    assert seen["json"].fast is orjson.loads
    event = seen["event"]
    assert_same(event, json.loads(line.decode("utf-8")))
    assert event["object"]["metadata"]["annotations"]["team"] == "Radiologie — Zürich <ml&ops>"
    assert event["object"]["status"]["history"]  # a full status, figures and all
    # Other attributes of the json module are still there for kopf.
    assert seen["json"].JSONDecodeError is json.JSONDecodeError


def test_installing_twice_keeps_one_decoder() -> None:
    assert decoding.install()
    installed = kopf_json()
    assert decoding.install()
    assert kopf_json() is installed


@pytest.mark.parametrize("text", [
    '{"a":1,"a":2}',  # a duplicated key: the last one wins
    '{"n":[9223372036854775807,-9223372036854775808,18446744073709551615,0,-1]}',
    '{"x":[0.1,1e-7,5e-324,1.7976931348623157e308,-0.0,1.0,2.5e+20]}',
    '{"s":"\\u00e9\\ud83d\\udd2c\\n\\t\\"\\\\\\/\\u0000","t":"ß字"}',
    '{"a":true,"b":false,"c":null,"d":{},"e":[]}',
    '{"nan":NaN,"inf":Infinity}',  # not Kubernetes JSON: the standard decoder reads it
])
def test_the_decoder_builds_what_json_loads_builds(text: str) -> None:
    assert decoding.install()
    decoder = kopf_json()
    assert_same(decoder.loads(text), json.loads(text))
    assert_same(decoder.loads(text.encode("utf-8")), json.loads(text))


def test_an_integer_beyond_64_bits_is_the_float_the_api_server_held() -> None:
    """The API server keeps such a number as a float64 and writes it out as digits; json
    reads those digits back as an int, orjson as that float64."""
    assert decoding.install()
    got = kopf_json().loads('{"big":100000000000000000000}')["big"]
    assert type(got) is float and got == 1e20


@pytest.mark.parametrize("text", ['{"a":', '{"a":1}x', ""])
def test_a_line_orjson_refuses_raises_what_json_loads_raises(text: str) -> None:
    """kopf catches none of it: the watch fails as it did with the standard decoder."""
    assert decoding.install()
    with pytest.raises(json.JSONDecodeError) as standard:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as decoded:
        kopf_json().loads(text)
    assert type(decoded.value) is type(standard.value)
    assert str(decoded.value) == str(standard.value)


def test_a_lone_surrogate_orjson_refuses_decodes_as_json_decodes_it() -> None:
    assert decoding.install()
    text = '{"s":"\\ud800"}'
    assert_same(kopf_json().loads(text), json.loads(text))


@pytest.mark.parametrize("missing", ["json", "stream"])
def test_a_kopf_without_the_expected_names_keeps_the_standard_decoder_and_warns(
        missing: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    monkeypatch.delattr(kopf_api, missing)
    with caplog.at_level(logging.WARNING, logger="modelmon"):
        assert decoding.install() is False
    assert kopf_json() is (None if missing == "json" else json)
    warnings = [r for r in caplog.records if r.name == decoding.__name__]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "standard json module" in warnings[0].getMessage()
    assert "modelmon.handlers.decoding" in warnings[0].getMessage()


def test_a_kopf_without_the_module_keeps_the_standard_decoder_and_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modelmon"):
        assert decoding.install("kopf._cogs.clients.no_such_module") is False
    assert kopf_json() is json
    assert [r.levelno for r in caplog.records if r.name == decoding.__name__] == [
        logging.WARNING]


def test_without_orjson_the_standard_decoder_stays(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # the import fails
    with caplog.at_level(logging.WARNING, logger="modelmon"):
        assert decoding.install() is False
    assert kopf_json() is json
    assert any("install it" in r.getMessage() for r in caplog.records)


def test_kopf_stream_decodes_each_line_with_json_loads_of_its_module() -> None:
    """The hook replaces the name ``json`` of kopf's api module; this fails when a kopf
    release decodes the watch elsewhere or otherwise, so that the hook is moved with it."""
    assert kopf_json() is json  # the module imports json under that name
    tree = ast.parse(textwrap.dedent(inspect.getsource(kopf_api.stream)))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "loads"
             and isinstance(node.func.value, ast.Name) and node.func.value.id == "json"]
    assert len(calls) == 1, "kopf's stream() no longer decodes with json.loads"
    shadowing = [node for node in ast.walk(tree)
                 if (isinstance(node, ast.Name) and node.id == "json"
                     and not isinstance(node.ctx, ast.Load))
                 or (isinstance(node, ast.arg) and node.arg == "json")]
    assert not shadowing, "kopf's stream() binds a local json"


def event_line(kind: str = "ModelMonitor", type_: str = "MODIFIED",
               api_version: str = "modelmon.io/v1alpha1") -> bytes:
    body = {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "m", "namespace": "ns", "uid": "u", "generation": 2,
                         "resourceVersion": "4711"},
            "spec": {}, "status": {"phase": "Healthy"}}
    return json.dumps({"type": type_, "object": body}).encode()


def test_an_event_the_screen_takes_in_reaches_kopf_as_a_bookmark_of_its_version() -> None:
    seen: list[dict[str, Any]] = []

    def screen(body: Any) -> bool:
        seen.append(body)
        return True

    assert decoding.install(screen=screen)
    line = event_line()
    event = kopf_json().loads(line.decode())
    assert event == {"type": "BOOKMARK", "object": {
        "apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
        "metadata": {"resourceVersion": "4711"}}}
    assert seen == [json.loads(line)["object"]] and kopf_json().screened == 1


@pytest.mark.parametrize("line", [
    event_line(type_="ADDED"), event_line(type_="DELETED"),
    event_line(kind="PrometheusRule", api_version="monitoring.coreos.com/v1"),
    event_line(kind="ModelMonitor", api_version="example.com/v1"),
    json.dumps({"type": "MODIFIED", "object": {"kind": "ModelMonitor",
                                               "apiVersion": "modelmon.io/v1alpha1",
                                               "metadata": {"name": "m"}}}).encode(),
    b'{"type": "ERROR", "object": {"code": 410}}',
])
def test_events_the_screen_does_not_see_reach_kopf_unchanged(line: bytes) -> None:
    """ADDED, DELETED, other kinds and groups, an object without a resourceVersion and
    errors are kopf's, the screen never asked."""
    asked: list[Any] = []

    def screen(body: Any) -> bool:
        asked.append(body)
        return True

    assert decoding.install(screen=screen)
    assert kopf_json().loads(line.decode()) == json.loads(line) and asked == []


def test_an_event_the_screen_declines_or_fails_on_reaches_kopf_unchanged(
        caplog: pytest.LogCaptureFixture) -> None:
    line = event_line()
    assert decoding.install(screen=lambda body: False)
    assert kopf_json().loads(line.decode()) == json.loads(line)

    def broken(body: Any) -> bool:
        raise KeyError("metadata")

    assert decoding.install(screen=broken)  # installed already: the screen is replaced
    with caplog.at_level(logging.ERROR, logger="modelmon.handlers.decoding"):
        assert kopf_json().loads(line.decode()) == json.loads(line)
    assert any("could not screen" in r.getMessage() for r in caplog.records)


def test_a_fleet_screen_takes_in_status_patches_only() -> None:
    """The operator's screen is the fleet's ``absorb``: a known monitor's status patch
    becomes a bookmark, its spec change (a new generation) goes to kopf."""
    import asyncio

    from memory_cluster import MemoryCluster
    from modelmon.api.policy import Policy
    from modelmon.outputs.metrics import Metrics

    async def scenario() -> None:
        fleet = Fleet(MemoryCluster(), Metrics(), workers=1, policy=Policy.local())
        body = json.loads(watch_line())["object"]
        fleet.upsert(body)
        assert decoding.install(screen=fleet.absorb)
        status_patch = dict(json.loads(watch_line()))
        assert kopf_json().loads(json.dumps(status_patch))["type"] == "BOOKMARK"
        respec = json.loads(watch_line())
        respec["object"]["metadata"]["generation"] += 1
        assert kopf_json().loads(json.dumps(respec)) == respec
        await fleet.shutdown()

    asyncio.run(scenario())


def test_kopf_keeps_a_bookmarks_version_and_hands_no_bookmark_to_the_handlers() -> None:
    """What the screen relies on in kopf: its watch resumes from the resourceVersion of
    every event's object, a bookmark's too, and its watcher skips BOOKMARK events before
    any per-object queue. This fails when a kopf release changes either."""
    from kopf._cogs.clients import watching
    from kopf._core.reactor import queueing

    resume = inspect.getsource(watching.continuous_watch)
    assert "resource_version = body.get('metadata', {}).get('resourceVersion'" in resume
    skip = inspect.getsource(queueing.watcher)
    before_queue = skip.index("streams[key]")
    assert 0 <= skip.index("raw_event.get('type') == 'BOOKMARK'") < before_queue
