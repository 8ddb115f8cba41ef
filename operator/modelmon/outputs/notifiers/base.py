"""What every notifier shares: the message, the sender interface, errors and retries.

Part of ``outputs`` (last stop on the data line). A sender turns one ``Message`` into one
delivery (an HTTP request, an email), each attempt bounded by ``REQUEST_TIMEOUT_SECONDS``.
Timeouts, refused connections, 5xx and 429 are worth a retry, other 4xx are not. The
schedule: ``retry_delay`` (exponential backoff) or the receiver's Retry-After; the delivery
queue (``outbox``) follows it for as long as the message is owed, ``deliver`` for a few
attempts in place. Error texts name the notifier and the HTTP status, never a URL or a
credential. A destination the administrator's egress policy refuses (``sources.egress``)
fails at once, without retries and before anything is sent, naming the spec field that
chose it.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

import aiohttp
from pydantic import BaseModel

from modelmon.api.policy import Egress
from modelmon.api.v1alpha1 import (
    Delivered,
    Finding,
    Notifier,
    Schedule,
    SecretKeyRef,
    Severity,
    parse_duration,
)
from modelmon.sources import egress
from modelmon.sources.base import SourceError

log = logging.getLogger(__name__)

#: Attempts of ``deliver`` (the awaited form); the delivery queue retries until delivered.
ATTEMPTS = 4
FIRST_DELAY_SECONDS = 1.0
#: Backoff cap: a receiver that keeps failing is tried about twice a minute.
MAX_DELAY_SECONDS = 30.0
#: The longest Retry-After honoured as asked; a longer one is cut to this.
MAX_RETRY_AFTER_SECONDS = 3600.0
#: Bound of one HTTP attempt, and of each SMTP socket operation.
REQUEST_TIMEOUT_SECONDS = 10.0


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failed attempts: 1, 2, 4 ... 30."""
    return float(min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(failures - 1, 0)))


class SecretSource(Protocol):
    """Reads a key of a Secret in the monitor's namespace."""

    def secret(self, name: str, key: str) -> str: ...


def _ref_path(model: BaseModel, name: str, key: str) -> str | None:
    """The camelCase path, within ``model``, of a SecretKeyRef to ``name``/``key``."""
    for attr, info in type(model).model_fields.items():
        value = getattr(model, attr)
        alias = info.alias or attr
        if isinstance(value, SecretKeyRef) and (value.name, value.key) == (name, key):
            return alias
        if isinstance(value, BaseModel):
            inner = _ref_path(value, name, key)
            if inner is not None:
                return f"{alias}.{inner}"
    return None


class FieldSecrets:
    """The Secrets of one notifier: a refused, missing or incomplete Secret is reported
    with the field that references it (``spec.alerting.notifiers[0].slack.webhookSecretRef``)."""

    def __init__(self, inner: SecretSource, notifier: Notifier, index: int) -> None:
        self.inner = inner
        self.notifier = notifier
        self.index = index

    def field(self, name: str, key: str) -> str:
        kind = self.notifier.kind
        where = f"spec.alerting.notifiers[{self.index}].{kind}"
        path = _ref_path(getattr(self.notifier, kind), name, key)
        return f"{where}.{path}" if path else where

    def secret(self, name: str, key: str) -> str:
        try:
            return self.inner.secret(name, key)
        except SourceError as exc:
            raise type(exc)(f"{self.field(name, key)}: {exc}",
                            transient=exc.transient) from None


class DeliveryError(Exception):
    """A delivery failed; ``retry`` tells whether trying again may help."""

    def __init__(self, message: str, *, retry: bool, after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.after = after


@dataclass(frozen=True)
class Message:
    """One notification: the state of one monitor as one notifier should see it."""

    namespace: str
    monitor: str
    model: str
    model_version: str | None
    phase: str
    time: datetime
    firing: list[Finding]
    """Findings active now, at or above the notifier's minimum severity."""
    resolved: list[Delivered]
    """Findings delivered as firing before that have cleared."""
    dedup_key: str
    """Stable for one episode: retries and restarts resend the same key."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """spec.alerting.labels."""
    link: str | None = None
    interval_seconds: float = parse_duration(Schedule().interval).total_seconds()
    drift_columns: Mapping[str, str] = field(default_factory=dict)
    """The column of each drift role (prediction, target): the ``feature`` label of their
    alerts."""
    report_url: str | None = None
    """The monitor's live report, when the operator has a report base URL."""

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if self.firing else "resolved"

    @property
    def severity(self) -> Severity:
        return "critical" if any(f.severity == "critical" for f in self.firing) else "warning"

    def title(self) -> str:
        who = f"{self.namespace}/{self.monitor} ({self.model}" + (
            f" {self.model_version})" if self.model_version else ")")
        if self.firing:
            return f"[{self.severity.upper()}] {who}: {len(self.firing)} finding(s), " \
                   f"phase {self.phase}"
        return f"[RESOLVED] {who}: findings cleared, phase {self.phase}"

    def lines(self) -> list[str]:
        out = [f"{f.severity}: {f.message}" for f in self.firing]
        out += [f"resolved: {d.name}" for d in self.resolved]
        if self.report_url:
            out.append(f"Report: {self.report_url}")
        out.append(self.link or self.hint())
        return out

    def hint(self) -> str:
        """Where to look when the spec gives no link (no dashboardUrl or runbookUrl)."""
        return f"Details: `kubectl describe modelmonitor -n {self.namespace} {self.monitor}`"


def dedup_key(namespace: str, monitor: str, notifier: str, since: datetime) -> str:
    """A key shared by every message of one episode of one notifier."""
    raw = f"{namespace}/{monitor}/{notifier}/{since.isoformat()}"
    return "modelmon-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


class Sender(ABC):
    """Delivers messages for one kind of notifier."""

    kind: ClassVar[str]
    every_check: ClassVar[bool] = False
    """Send on every check while findings fire (Alertmanager expires alerts otherwise)."""

    def __init__(self, spec: Notifier, name: str, secrets: SecretSource,
                 session: aiohttp.ClientSession, where: str = "notifier",
                 policy: Egress = egress.UNRESTRICTED) -> None:
        self.spec = spec
        self.name = name
        self.secrets = secrets
        self.session = session
        self.where = where
        """This notifier's spec field, e.g. ``spec.alerting.notifiers[0].webhook``."""
        self.egress = policy
        """Where its connections may go (``Context.policy.egress``)."""

    def refused(self, exc: egress.EgressRefusedError, field: str) -> DeliveryError:
        """A refused destination: not retried, naming the field that chose it."""
        return DeliveryError(f"{self.name}: {exc.for_field(f'{self.where}.{field}')}", retry=False)

    @abstractmethod
    async def send(self, message: Message) -> None:
        """Deliver once; raise DeliveryError on failure."""

    async def secret(self, ref: Any) -> str:
        """A referenced secret value, read at send time in a thread and never stored."""
        return await asyncio.to_thread(self.secrets.secret, ref.name, ref.key)

    async def post_json(self, url: str, body: Any, headers: Mapping[str, str] | None = None,
                        data: bytes | None = None, field: str = "url") -> None:
        """POST and classify the outcome; the URL never appears in errors. ``field`` (under
        this notifier's) is where the URL comes from, named when the policy refuses it."""
        try:
            rules = egress.rules(self.egress)
            target = egress.url_host(url)
            if rules.enforce and target is not None and not isinstance(
                    self.session.connector, egress.connector_class()):
                # A session that does not apply the policy itself: check first.
                await rules.resolve_async(*target, f"{self.where}.{field}")
            async with self.session.post(
                    url, json=None if data is not None else body, data=data,
                    headers=dict(headers or {}),
                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)) as resp:
                if resp.status < 300:
                    return
                retry = resp.status == 429 or resp.status >= 500
                raise DeliveryError(f"{self.name}: HTTP {resp.status} {resp.reason or ''}".strip(),
                                    retry=retry, after=retry_after(resp.headers.get("Retry-After")))
        except DeliveryError:
            raise
        except egress.EgressRefusedError as exc:
            raise self.refused(exc, field) from None
        except TimeoutError:
            raise DeliveryError(f"{self.name}: timed out after {REQUEST_TIMEOUT_SECONDS:g}s",
                                retry=True) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, egress.EgressBlockedError):
                raise DeliveryError(f"{self.name}: {self.where}.{field}: the operator may not "
                                    "connect there", retry=False) from None
            raise DeliveryError(f"{self.name}: cannot connect", retry=True) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}", retry=True) from None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date, counted from
    ``now``, by default the current time)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


Sleep = Callable[[float], Awaitable[None]]


async def deliver(send: Callable[[], Awaitable[None]], *, attempts: int = ATTEMPTS,
                  sleep: Sleep = asyncio.sleep) -> None:
    """Call ``send`` until it succeeds, retrying what may succeed later.

    Waits 1 s, 2 s, 4 s ... (at most ``MAX_DELAY_SECONDS``) between attempts, or what a
    Retry-After asks for. A Retry-After longer than ``MAX_DELAY_SECONDS`` is not slept
    through: the error is raised at once, its ``after`` counted from the first attempt,
    so that the caller defers the next attempt to a later check.
    """
    delay = FIRST_DELAY_SECONDS
    waited = 0.0
    for attempt in range(1, attempts + 1):
        try:
            await send()
            return
        except DeliveryError as exc:
            asked = exc.after
            if asked is not None:
                exc.after = waited + asked  # from the first attempt
            if (not exc.retry or attempt == attempts
                    or (asked is not None and asked > MAX_DELAY_SECONDS)):
                raise
            wait = asked if asked is not None else delay
            log.info("%s; retrying in %.1fs (attempt %d of %d)", exc, wait, attempt + 1,
                     attempts)
            await sleep(wait)
            waited += wait
            delay = min(MAX_DELAY_SECONDS, delay * 2)
