"""The five kinds of notifier: Slack, PagerDuty, webhook, email and Alertmanager push.

Part of ``outputs`` (last stop on the data line): one small class per kind, registered by
the name of the spec field that selects it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from modelmon.api.v1alpha1 import Finding
from modelmon.evaluation import LABELS_MISSING
from modelmon.outputs.notifiers import base
from modelmon.outputs.notifiers.base import DeliveryError, Message, Sender
from modelmon.sources import egress

SENDERS: dict[str, type[Sender]] = {}

#: Threads that speak SMTP (smtplib blocks), for the whole operator: a slow mail server
#: holds one of them, never the event loop nor a check's thread.
SMTP_THREADS = 4
#: One SMTP delivery (connect, STARTTLS, login, send) ends after this many request
#: timeouts in all, however slowly a server trickles its replies.
SMTP_SESSION_TIMEOUTS = 3
#: Threads start on first use.
SMTP_POOL = ThreadPoolExecutor(max_workers=SMTP_THREADS, thread_name_prefix="modelmon-smtp")


def register(cls: type[Sender]) -> type[Sender]:
    SENDERS[cls.kind] = cls
    return cls


@register
class Slack(Sender):
    """An incoming webhook: one message with the title, the findings and the link."""

    kind = "slack"

    async def send(self, message: Message) -> None:
        spec = self.spec.slack
        assert spec is not None
        body: dict[str, Any] = {
            "text": message.title(),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{message.title()}*"}},
                {"type": "section", "text": {"type": "mrkdwn",
                                             "text": "\n".join(message.lines()) or "-"}},
            ],
        }
        if spec.channel:
            body["channel"] = spec.channel
        await self.post_json(await self.secret(spec.webhook_secret_ref), body,
                             field="webhookSecretRef")


PD_SEVERITY = {"warning": "warning", "critical": "critical"}


@register
class PagerDuty(Sender):
    """Events API v2: trigger while findings last, resolve when they clear.

    The dedup key is one per monitor (not per episode) so that a resolve always closes the
    incident its triggers opened, whatever happened in between.
    """

    kind = "pagerduty"

    async def send(self, message: Message) -> None:
        spec = self.spec.pagerduty
        assert spec is not None
        key = f"modelmon/{message.namespace}/{message.monitor}"
        body: dict[str, Any] = {
            "routing_key": await self.secret(spec.routing_key_secret_ref),
            "dedup_key": key,
            "event_action": "trigger" if message.firing else "resolve",
        }
        if message.firing:
            body["payload"] = {
                "summary": message.title()[:1024],
                "source": f"{message.namespace}/{message.monitor}",
                "severity": PD_SEVERITY[message.severity],
                "component": message.model,
                "group": message.namespace,
                "class": "modelmon",
                "custom_details": {"findings": [f.message for f in message.firing],
                                   "phase": message.phase, **message.labels},
            }
            links = [{"href": message.link, "text": "dashboard"}] if message.link else []
            if message.report_url:
                links.append({"href": message.report_url, "text": "modelmon report"})
            if links:
                body["links"] = links
        await self.post_json(spec.url, body)


def webhook_body(message: Message) -> dict[str, Any]:
    """The JSON a generic webhook receives."""
    return {
        "version": "1",
        "status": message.status,
        "dedupKey": message.dedup_key,
        "namespace": message.namespace,
        "monitor": message.monitor,
        "model": message.model,
        "modelVersion": message.model_version,
        "phase": message.phase,
        "severity": message.severity if message.firing else None,
        "time": message.time.isoformat(),
        "labels": dict(message.labels),
        "firing": [f.model_dump(mode="json") for f in message.firing],
        "resolved": [d.name for d in message.resolved],
        "link": message.link,
        **({"reportUrl": message.report_url} if message.report_url else {}),
    }


@register
class Webhook(Sender):
    """A JSON POST, signed with HMAC-SHA256 when a key is given."""

    kind = "webhook"

    async def send(self, message: Message) -> None:
        spec = self.spec.webhook
        assert spec is not None
        data = json.dumps(webhook_body(message), sort_keys=True).encode()
        headers = {"Content-Type": "application/json",
                   "X-Modelmon-Dedup-Key": message.dedup_key}
        if spec.hmac_secret_ref is not None:
            key = (await self.secret(spec.hmac_secret_ref)).encode()
            digest = hmac.new(key, data, hashlib.sha256).hexdigest()
            headers["X-Modelmon-Signature"] = f"sha256={digest}"
        await self.post_json(spec.url, None, headers=headers, data=data)


def smtp_failure(name: str, exc: BaseException) -> DeliveryError:
    """Classify an SMTP failure: a 5xx reply, a certificate that does not verify, a server
    without STARTTLS (or AUTH) when the spec needs it, and refused credentials are
    permanent; 4xx replies, timeouts, refused and dropped connections are worth a retry.
    Only reply codes are kept: a server's reply text may echo what the client sent."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"{name}: SMTP authentication failed ({exc.smtp_code})",
                             retry=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        code = int(exc.smtp_code)
        return DeliveryError(f"{name}: SMTP {code}", retry=400 <= code < 500)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({int(code) for code, _ in exc.recipients.values()})
        return DeliveryError(f"{name}: SMTP recipients refused "
                             f"({', '.join(map(str, codes))})",
                             retry=any(400 <= c < 500 for c in codes))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        what = "STARTTLS" if "STARTTLS" in str(exc) else "AUTH"
        return DeliveryError(f"{name}: the SMTP server does not offer {what}", retry=False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(f"{name}: the SMTP server's TLS certificate does not verify "
                             f"({exc.verify_message})", retry=False)
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"{name}: TLS error ({exc.reason})", retry=True)
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return DeliveryError(f"{name}: timed out after {base.REQUEST_TIMEOUT_SECONDS:g}s",
                             retry=True)
    if isinstance(exc, ConnectionRefusedError):
        return DeliveryError(f"{name}: cannot connect", retry=True)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(f"{name}: the SMTP server closed the connection", retry=True)
    return DeliveryError(f"{name}: {type(exc).__name__}", retry=True)


def _client(smtp_class: type[smtplib.SMTP], host: str, timeout: float) -> smtplib.SMTP:
    """smtplib's client before it connects, knowing the host it will connect to (what
    ``SMTP(host)`` records first: STARTTLS verifies the certificate against it)."""
    client = smtp_class(timeout=timeout)
    client._host = host  # type: ignore[attr-defined]  # smtplib's own, unconnected
    return client


@register
class Email(Sender):
    """SMTP with STARTTLS; smtplib runs in a thread."""

    kind = "email"

    async def send(self, message: Message) -> None:
        spec = self.spec.email
        assert spec is not None
        smtp = spec.smtp
        user = await self.secret(smtp.username_secret_ref) if smtp.username_secret_ref else None
        password = (await self.secret(smtp.password_secret_ref)
                    if smtp.password_secret_ref else None)
        ca_bundle = await self.secret(smtp.ca_secret_ref) if smtp.ca_secret_ref else None
        mail = EmailMessage()
        mail["Subject"] = message.title()
        mail["From"] = spec.from_
        mail["To"] = ", ".join(spec.recipients)
        mail["Message-ID"] = f"<{message.dedup_key}.{int(message.time.timestamp())}@modelmon>"
        mail["X-Modelmon-Dedup-Key"] = message.dedup_key
        mail.set_content("\n".join(message.lines()) + "\n")

        smtp_class = egress.smtp_class(self.egress, f"{self.where}.smtp.host")

        def deliver_sync() -> None:
            context = ssl.create_default_context(cadata=ca_bundle) if ca_bundle else \
                ssl.create_default_context()
            # Not connected yet: connecting after the watchdog starts bounds the greeting.
            client = _client(smtp_class, smtp.host, base.REQUEST_TIMEOUT_SECONDS)
            expired = threading.Event()

            def cut() -> None:  # wakes a thread blocked on the socket
                expired.set()
                sock = client.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

            total = base.REQUEST_TIMEOUT_SECONDS * SMTP_SESSION_TIMEOUTS
            watchdog = threading.Timer(total, cut)
            watchdog.start()
            try:
                client.connect(smtp.host, smtp.port)
                if smtp.start_tls:
                    client.starttls(context=context)
                if user is not None and password is not None:
                    client.login(user, password)
                client.send_message(mail)
            except egress.EgressRefusedError as exc:
                raise self.refused(exc, "smtp.host") from None
            except (smtplib.SMTPException, OSError) as exc:
                if expired.is_set():
                    raise DeliveryError(f"{self.name}: the SMTP session took longer than "
                                        f"{total:g}s", retry=True) from None
                raise smtp_failure(self.name, exc) from None
            else:
                # Accepted: delivered, whatever becomes of the goodbye.
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    client.quit()
            finally:
                watchdog.cancel()
                client.close()

        await asyncio.get_running_loop().run_in_executor(SMTP_POOL, deliver_sync)


def alert_identity(finding: Finding, message: Message) -> tuple[str, dict[str, str]]:
    """The alertname and the labels beyond the common ones (severity, namespace, monitor,
    model, alerting.labels) that the PrometheusRule's alert on the same problem has:
    its static labels and those its ``by (...)`` clause keeps."""
    name = finding.name
    if name == "drift.dataset":
        return "ModelDataDrift", {}
    if name in ("drift.prediction", "drift.target"):
        role = name.removeprefix("drift.")
        column = message.drift_columns.get(role)
        return ("ModelPredictionDrift" if role == "prediction" else "ModelTargetDrift",
                {"feature": column} if column else {})
    if name.startswith("drift.feature."):
        return "ModelFeatureDrift", {"feature": name.removeprefix("drift.feature.")}
    if name == f"performance.{LABELS_MISSING}":
        return "ModelLabelsMissing", {}
    if name.startswith("performance."):
        return "ModelPerformanceDegraded", {"metric": name.removeprefix("performance.")}
    if name.startswith("operational."):
        return "ModelOperationalDegraded", {"name": name.removeprefix("operational.")}
    if name.startswith("estimatedPerformance."):
        # The rule keeps the band's end it compared: upper for a min (the estimate is
        # below it), lower for a max.
        return "ModelEstimatedPerformanceDegraded", {
            "metric": name.removeprefix("estimatedPerformance."),
            "bound": "upper" if finding.value < finding.bound else "lower"}
    if name.startswith("confidence."):
        return "ModelConfidenceDegraded", {"figure": name.removeprefix("confidence.")}
    if name.startswith("dataQuality."):
        _, check, *rest = name.split(".", 2)
        return "ModelDataQualityDegraded", {"check": check, **(
            {"column": rest[0]} if rest else {})}
    if name == "check.failing":
        return "ModelMonitorCheckFailing", {}
    return "ModelMonitorFinding", {"finding": name}


def alertmanager_alerts(message: Message) -> list[dict[str, Any]]:
    """The alerts of one push: firing ones stay active for three intervals unless pushed
    again; cleared ones are pushed with endsAt now, which resolves them."""
    until = message.time + timedelta(seconds=3 * message.interval_seconds)
    # A cleared finding is pushed with the severity it fired with: same labels, same alert.
    resolved = [Finding(name=d.name, severity=d.severity, value=0.0, bound=0.0,
                        message=f"{d.name} cleared") for d in message.resolved]
    out = []
    for finding, ends in [*((finding, until) for finding in message.firing),
                          *((finding, message.time) for finding in resolved)]:
        alertname, extra = alert_identity(finding, message)
        labels = {"alertname": alertname, "severity": finding.severity,
                  "namespace": message.namespace, "monitor": message.monitor,
                  "model": message.model, **extra, **message.labels}
        out.append({
            "labels": labels,
            "annotations": {"summary": message.title(), "description": finding.message,
                            **({"report_url": message.report_url} if message.report_url
                               else {})},
            "endsAt": ends.isoformat(),
            **({"generatorURL": message.link} if message.link else {}),
        })
    return out


@register
class Alertmanager(Sender):
    """POST /api/v2/alerts with the alerts the PrometheusRule would fire, every check."""

    kind = "alertmanager"
    every_check = True

    async def send(self, message: Message) -> None:
        spec = self.spec.alertmanager
        assert spec is not None
        await self.post_json(spec.url.rstrip("/") + "/api/v2/alerts",
                             alertmanager_alerts(message))
