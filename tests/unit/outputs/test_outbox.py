"""The delivery queue against a webhook receiver on 127.0.0.1 that hangs, fails, asks to
wait and recovers: checks never wait for it, and what is owed arrives under one key."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from modelmon.api.v1alpha1 import AlertingSpec, Finding, NotifierState
from modelmon.outputs.notifiers import Context
from modelmon.outputs.notifiers import base as notifier_base
from modelmon.outputs.notifiers.outbox import Outbox

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEY = ("ml", "credit")
CTX = Context("ml", "credit", "credit-risk", "2.3.1", "Drifting", 10.0)
DRIFT = Finding(name="drift.dataset", severity="warning", value=0.6, bound=0.5,
                message="6 of 10 features drifted")
AUC = Finding(name="performance.rocAuc", severity="critical", value=0.6, bound=0.8,
              message="rocAuc 0.6 is below 0.8")


class NoSecrets:
    def secret(self, name: str, key: str) -> str:
        raise AssertionError("no secret is referenced")


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_base, "REQUEST_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(notifier_base, "FIRST_DELAY_SECONDS", 0.05)
    monkeypatch.setattr(notifier_base, "MAX_DELAY_SECONDS", 0.2)


@dataclass
class Hit:
    path: str
    at: float
    key: str
    body: dict[str, Any]
    answered: int | None = None
    """The status sent back; None while (or if) the receiver hung."""


@dataclass
class Receiver:
    """Answers each path as told: "ok", "hang" (longer than the client waits), or a status
    with headers."""

    modes: dict[str, Any] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        hit = Hit(request.path, time.monotonic(), request.headers["X-Modelmon-Dedup-Key"],
                  json.loads(await request.read()))
        self.hits.append(hit)
        mode = self.modes.get(request.path, "ok")
        if mode == "hang":
            await asyncio.sleep(2.0)
            return web.Response(status=200)
        status, headers = (200, {}) if mode == "ok" else mode
        hit.answered = status
        return web.Response(status=status, headers=headers)

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def delivered(self, path: str) -> list[Hit]:
        return [h for h in self.at(path) if h.answered == 200]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def outbox() -> AsyncIterator[tuple[Outbox, list[tuple[tuple[str, str], str]]]]:
    reports: list[tuple[tuple[str, str], str]] = []
    box = Outbox(report=lambda key, error: reports.append((key, error)))
    yield box, reports
    await box.close()


def hooks(url: str, *paths: str) -> AlertingSpec:
    return AlertingSpec.model_validate({
        "notifiers": [{"name": p.strip("/"), "webhook": {"url": url + p}} for p in paths],
        "repeatInterval": "1h"})


async def until(probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def check(box: Outbox, spec: AlertingSpec, findings: list[Finding], when: datetime,
          key: tuple[str, str] = KEY) -> list[NotifierState]:
    """What a check does: hand the findings over; the call returns what stands now."""
    ctx = Context(key[0], key[1], "credit-risk", "2.3.1", "Drifting", 10.0)
    stored = box.states(key) or []
    return box.submit(key, spec, findings, stored, ctx, NoSecrets(), when)


def state(box: Outbox, name: str, key: tuple[str, str] = KEY) -> NotifierState:
    return next(s for s in box.states(key) or [] if s.name == name)


async def test_a_hanging_receiver_holds_only_its_lane_and_gets_the_episode_later(
        receiver: Receiver, outbox: tuple[Outbox, list[Any]]) -> None:
    box, reports = outbox
    receiver.modes["/slow"] = "hang"
    spec = hooks(receiver.url, "/slow", "/fine")
    (slow, fine) = check(box, spec, [DRIFT], T0)  # returns before any delivery
    assert slow.since == T0 and slow.firing == [] and fine.firing == []
    # The other notifier of the same check is delivered while the slow one hangs.
    await until(lambda: receiver.delivered("/fine"))
    await until(lambda: len(receiver.at("/slow")) >= 3)
    slow = state(box, "slow")
    assert slow.failures >= 2 and slow.last_error == "slow: timed out after 0.3s"
    assert slow.firing == [] and slow.since == T0
    # A later check with a new finding: the slot holds the newer state, same episode.
    check(box, spec, [DRIFT, AUC], T0 + timedelta(seconds=10))
    assert box.pending(KEY) == ["slow", "fine"]
    await until(lambda: len(receiver.delivered("/fine")) == 2)
    receiver.modes["/slow"] = "ok"
    await until(lambda: receiver.delivered("/slow"))
    await until(lambda: not box.pending(KEY))
    slow = state(box, "slow")
    assert slow.failures == 0 and slow.last_error is None and slow.next_attempt is None
    assert [d.name for d in slow.firing] == ["drift.dataset", "performance.rocAuc"]
    assert slow.last_sent == T0 + timedelta(seconds=10)
    (got,) = receiver.delivered("/slow")
    assert [f["name"] for f in got.body["firing"]] == ["drift.dataset", "performance.rocAuc"]
    # Every attempt, hung or answered, was the one episode.
    assert {h.key for h in receiver.at("/slow")} == {
        notifier_base.dedup_key("ml", "credit", "slow", T0)}
    assert reports == [(KEY, "slow: timed out after 0.3s")]  # once per run of failures
    assert len(receiver.delivered("/fine")) == 2  # the start, then the new finding


async def test_failures_back_off_and_a_retry_after_is_honoured(
        receiver: Receiver, outbox: tuple[Outbox, list[Any]]) -> None:
    box, _ = outbox
    receiver.modes["/hook"] = (503, {})
    check(box, hooks(receiver.url, "/hook"), [DRIFT], T0)
    await until(lambda: len(receiver.at("/hook")) >= 4)
    st = state(box, "hook")
    assert st.last_error == "hook: HTTP 503 Service Unavailable"
    assert st.next_attempt is not None and st.last_attempt is not None
    assert st.next_attempt - st.last_attempt == timedelta(
        seconds=notifier_base.retry_delay(st.failures))
    gaps = [b.at - a.at for a, b in zip(receiver.hits, receiver.hits[1:], strict=False)]
    assert gaps[0] >= 0.05 * 0.9 and gaps[1] >= 0.1 * 0.9 and gaps[2] >= 0.2 * 0.9
    # The receiver asks for a second's rest: nothing is sent before it has passed.
    receiver.modes["/hook"] = (429, {"Retry-After": "1"})
    asked = await until(lambda: next((h for h in receiver.hits if h.answered == 429), None))
    st = state(box, "hook")
    assert st.next_attempt is not None and st.last_attempt is not None
    assert st.next_attempt - st.last_attempt == timedelta(seconds=1)
    receiver.modes["/hook"] = "ok"
    await until(lambda: receiver.delivered("/hook"), timeout=5)
    assert receiver.delivered("/hook")[0].at - asked.at >= 0.95
    assert len({h.key for h in receiver.hits}) == 1


async def test_a_resolve_owed_is_carried_by_newer_states_never_dropped(
        receiver: Receiver, outbox: tuple[Outbox, list[Any]]) -> None:
    box, _ = outbox
    spec = hooks(receiver.url, "/hook")
    check(box, spec, [DRIFT], T0)
    await until(lambda: not box.pending(KEY) and state(box, "hook").firing)
    key = receiver.hits[0].key
    receiver.modes["/hook"] = (500, {})
    check(box, spec, [], T0 + timedelta(seconds=10))  # DRIFT clears: a resolve is owed
    await until(lambda: state(box, "hook").failures >= 2)
    check(box, spec, [], T0 + timedelta(seconds=20))  # still owed, superseded by itself
    check(box, spec, [AUC], T0 + timedelta(seconds=30))  # a newer state carries it
    assert box.pending(KEY) == ["hook"]
    receiver.modes["/hook"] = "ok"
    await until(lambda: not box.pending(KEY))
    first, last = receiver.delivered("/hook")
    assert first.body["status"] == "firing" and last.key == first.key == key
    assert last.body["resolved"] == ["drift.dataset"]
    assert [f["name"] for f in last.body["firing"]] == ["performance.rocAuc"]
    st = state(box, "hook")
    assert [d.name for d in st.firing] == ["performance.rocAuc"] and st.since == T0
    # Then everything clears: the resolve of the whole episode, under its key.
    check(box, spec, [], T0 + timedelta(seconds=40))
    await until(lambda: len(receiver.delivered("/hook")) == 3)
    resolve = receiver.delivered("/hook")[-1]
    assert resolve.body["status"] == "resolved" and resolve.key == key
    assert resolve.body["resolved"] == ["performance.rocAuc"]
    assert state(box, "hook").since is None


async def test_a_flap_the_receiver_never_saw_continues_its_episode(
        receiver: Receiver, outbox: tuple[Outbox, list[Any]]) -> None:
    """Findings clear and return before their resolve got through: the receiver's view
    (firing) is right again, so nothing is owed and the episode keeps its key."""
    box, _ = outbox
    spec = hooks(receiver.url, "/hook")
    check(box, spec, [DRIFT], T0)
    await until(lambda: state(box, "hook").firing)
    receiver.modes["/hook"] = (500, {})
    check(box, spec, [], T0 + timedelta(seconds=10))
    await until(lambda: state(box, "hook").failures >= 1)
    check(box, spec, [DRIFT], T0 + timedelta(seconds=20))
    assert box.pending(KEY) == []
    receiver.modes["/hook"] = "ok"
    await asyncio.sleep(0.5)  # longer than the backoff: a lane with work would have sent
    assert len(receiver.delivered("/hook")) == 1
    st = state(box, "hook")
    assert st.since == T0 and [d.name for d in st.firing] == ["drift.dataset"]


async def test_an_episode_that_never_got_through_leaves_nothing_and_the_next_has_its_key(
        receiver: Receiver, outbox: tuple[Outbox, list[Any]]) -> None:
    box, _ = outbox
    spec = hooks(receiver.url, "/hook")
    receiver.modes["/hook"] = "hang"
    check(box, spec, [DRIFT], T0)
    await until(lambda: receiver.at("/hook"))
    check(box, spec, [], T0 + timedelta(seconds=10))  # cleared before it got through
    assert state(box, "hook").since is None and box.pending(KEY) == []
    receiver.modes["/hook"] = "ok"
    check(box, spec, [AUC], T0 + timedelta(seconds=20))
    await until(lambda: receiver.delivered("/hook"))
    await until(lambda: not box.pending(KEY))
    (got,) = receiver.delivered("/hook")
    assert got.key == notifier_base.dedup_key("ml", "credit", "hook", T0 + timedelta(seconds=20))
    assert [f["name"] for f in got.body["firing"]] == ["performance.rocAuc"]
    assert got.body["resolved"] == []


async def test_a_permanent_failure_waits_for_the_next_check(
        receiver: Receiver, outbox: tuple[Outbox, list[Any]]) -> None:
    box, reports = outbox
    receiver.modes["/hook"] = (404, {})
    spec = hooks(receiver.url, "/hook")
    check(box, spec, [DRIFT], T0)
    await until(lambda: state(box, "hook").failures == 1)
    await asyncio.sleep(0.5)  # no retry storm on a 404
    assert len(receiver.hits) == 1 and box.pending(KEY) == []
    check(box, spec, [DRIFT], T0 + timedelta(seconds=10))
    await until(lambda: state(box, "hook").failures == 2)
    assert len(receiver.hits) == 2 and len(reports) == 1
    assert state(box, "hook").last_error == "hook: HTTP 404 Not Found"


async def test_a_restart_resumes_from_the_status_without_a_second_event(
        receiver: Receiver) -> None:
    """A new outbox (a new operator) starts each lane from the state the status kept."""
    stored = NotifierState.model_validate({
        "name": "hook", "kind": "webhook", "since": T0, "failures": 3,
        "lastError": "hook: timed out after 10s"})
    reports: list[Any] = []
    box = Outbox(report=lambda key, error: reports.append(error))
    try:
        box.submit(KEY, hooks(receiver.url, "/hook"), [DRIFT], [stored], CTX, NoSecrets(),
                   T0 + timedelta(minutes=5))
        await until(lambda: receiver.delivered("/hook"))
        await until(lambda: not box.pending(KEY))
    finally:
        await box.close()
    assert receiver.hits[0].key == notifier_base.dedup_key("ml", "credit", "hook", T0)
    assert reports == []


async def test_lanes_retire_with_their_notifier_or_monitor(
        receiver: Receiver, outbox: tuple[Outbox, list[Any]]) -> None:
    box, _ = outbox
    receiver.modes["/a"] = receiver.modes["/b"] = "hang"
    check(box, hooks(receiver.url, "/a", "/b"), [DRIFT], T0)
    other = ("ml", "other")
    check(box, hooks(receiver.url, "/a"), [DRIFT], T0, key=other)
    await until(lambda: len(receiver.hits) >= 3)
    a, b = box.lanes[KEY]["a"], box.lanes[KEY]["b"]
    check(box, hooks(receiver.url, "/a"), [DRIFT], T0 + timedelta(seconds=10))  # b removed
    await until(lambda: b.task is not None and b.task.done())
    assert list(box.lanes[KEY]) == ["a"] and box.pending(KEY) == ["a"]
    box.retire(KEY)  # the monitor was deleted
    await until(lambda: a.task is not None and a.task.done())
    assert KEY not in box.lanes and box.states(KEY) is None
    assert box.pending(other) == ["a"]  # another monitor's lane is untouched
    seen = len(receiver.at("/b"))
    await asyncio.sleep(0.6)
    assert len(receiver.at("/b")) == seen


async def test_attempts_in_flight_are_capped_across_the_operator(
        receiver: Receiver) -> None:
    """Five monitors whose receiver hangs: no more than ``slots`` attempts at once."""
    receiver.modes["/hook"] = "hang"
    box = Outbox(slots=2)
    try:
        for i in range(5):
            check(box, hooks(receiver.url, "/hook"), [DRIFT], T0, key=("ml", f"m{i}"))
        await until(lambda: len(receiver.hits) >= 6)
    finally:
        await box.close()
    # Each attempt lasts the (patched) 0.3 s timeout, so a third can reach the receiver no
    # sooner than 0.3 s after one of the first two left (0.2 s are left for scheduling).
    starts = sorted(h.at for h in receiver.hits)
    assert max(sum(1 for t in starts if s <= t < s + 0.1) for s in starts) <= 2
    assert {h.key for h in receiver.hits} == {
        notifier_base.dedup_key("ml", f"m{i}", "hook", T0) for i in range(5)}
