"""The live report: the operator serves each monitor's report from what its last check
computed. Part of ``outputs.report``.

``modelmon run --report-port`` starts ``ReportServer`` (off by default): an aiohttp server
in a thread of its own, so that neither a slow client nor a large page ever holds the
operator's event loop. It reads ``live.LiveReports``, which the fleet fills, and answers:

- ``GET /monitors``: every monitor with its phase, drift share, findings and last check;
  an HTML page, or JSON with ``?format=json`` or an ``Accept`` header that names
  ``application/json`` and not ``text/html``;
- ``GET /monitors/<namespace>/<name>``: the monitor's report (``render_report``: the same
  page as ``modelmon report``, with the history as trend charts), or JSON likewise.

Namespace and name are checked against Kubernetes' naming rules before they are looked up
(anything else is a 404, as is an unknown monitor); everything from the data is escaped by
the page builders; no file is ever served. Every answer says not to cache it, not to send
a Referer on, and, through its Content-Security-Policy, that the page may load nothing.
"""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from modelmon import __version__
from modelmon.api.names import report_path
from modelmon.api.v1alpha1 import ModelMonitorStatus
from modelmon.outputs.report.inputs import HistoryPoint, MonitorReport
from modelmon.outputs.report.live import LiveEntry, LiveReports
from modelmon.outputs.report.page import NO_CHARTS, STYLE, esc, pct, render_report, when

#: A namespace is a DNS label; a name a DNS subdomain (what the API server admits).
NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")

#: The page runs its own inline script (Vega compiles expressions with Function) and loads
#: nothing: no connection, image, font or frame from anywhere.
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
           "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
           "X-Frame-Options": "DENY"}

STORE: web.AppKey[LiveReports] = web.AppKey("store", LiveReports)
POOL: web.AppKey[ThreadPoolExecutor] = web.AppKey("pool", ThreadPoolExecutor)


def wants_json(request: web.Request) -> bool:
    """``?format=json``, or an Accept header naming JSON and not HTML (a browser's names
    HTML; curl's ``*/*`` gets HTML too)."""
    asked = request.query.get("format")
    if asked is not None:
        return asked == "json"
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def summary(entry: LiveEntry) -> dict[str, Any]:
    """One monitor on the list: what ``kubectl get`` would say, and where its report is."""
    status = entry.status
    drift = status.drift
    critical = sum(f.severity == "critical" for f in status.findings)
    ready = status.condition("Ready")
    return {
        "namespace": entry.namespace, "name": entry.name,
        "model": entry.spec.model.name if entry.spec is not None else None,
        "phase": status.phase,
        "driftShare": drift.share if drift is not None else None,
        "drifted": len(drift.drifted) if drift is not None else None,
        "features": len(drift.features) if drift is not None else None,
        "findings": {"critical": critical, "warning": len(status.findings) - critical},
        "lastCheck": (status.last_check.time.isoformat()
                      if status.last_check is not None else None),
        "reason": ready.reason if ready is not None and ready.status != "True" else None,
        "report": report_path(entry.namespace, entry.name),
    }


def point_json(point: HistoryPoint) -> dict[str, Any]:
    return {"time": point.time.isoformat(), "phase": point.phase,
            "driftShare": point.drift_share, "findings": point.findings,
            "critical": point.critical, "currentRows": point.current_rows,
            "drifted": list(point.drifted) if point.drifted is not None else None,
            "performance": dict(point.performance)}


def status_json(status: ModelMonitorStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, mode="json")


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}{INDEX_STYLE}</style></head>"
            f"<body{NO_CHARTS}>{body}<footer>modelmon {esc(__version__)} · served by the "
            "operator from its last checks</footer></body></html>\n")


INDEX_STYLE = """
table.monitors td, table.monitors th { padding:6px 12px; }
table.monitors td a { color:#1a73e8; text-decoration:none; font-weight:600; }
header.top a { color:#1a73e8; text-decoration:none; }
"""


def index_html(entries: list[LiveEntry]) -> str:
    """The list of monitors, by namespace and name."""
    rows = []
    for entry in entries:
        line = summary(entry)
        drift = ("&ndash;" if line["driftShare"] is None else
                 f'{line["drifted"]}/{line["features"]} ({pct(line["driftShare"])})')
        findings = line["findings"]
        last = entry.status.last_check
        rows.append(
            f'<tr data-monitor="{esc(entry.namespace)}/{esc(entry.name)}">'
            f'<td>{esc(entry.namespace)}</td>'
            f'<td><a href="{esc(line["report"])}">{esc(entry.name)}</a></td>'
            f'<td>{esc(line["model"] or "")}</td>'
            f'<td><span class="badge {esc(line["phase"].lower())}">{esc(line["phase"])}'
            f"</span></td><td>{drift}</td>"
            f'<td><span class="sev critical">{findings["critical"]} critical</span> · '
            f'<span class="sev warning">{findings["warning"]} warning</span></td>'
            f'<td>{esc(when(last.time)) if last is not None else "&ndash;"}</td>'
            f'<td>{esc(line["reason"] or "")}</td></tr>')
    header = "".join(f"<th>{h}</th>" for h in (
        "namespace", "monitor", "model", "phase", "drifted", "findings", "last check",
        "reason"))
    table = (f'<table class="monitors"><thead><tr>{header}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>' if rows
             else "<p>No ModelMonitor is watched yet.</p>")
    return _page("modelmon: monitors", f'<article><h1>Monitors</h1><section>{table}'
                 '<p class="note">Each report shows what the monitor\'s last check computed '
                 "in this operator, and its history since the operator started (before: "
                 "the checks the status keeps).</p></section></article>")


BACK = '<header class="top"><a href="/monitors">&larr; all monitors</a></header>'


def monitor_html(entry: LiveEntry) -> str:
    """The monitor's report; without a spec that parses, its status's reason alone."""
    if entry.spec is None:
        ready = entry.status.condition("Ready")
        why = f"{ready.reason}: {ready.message}" if ready is not None else "not checked yet"
        return _page(f"modelmon: {entry.namespace}/{entry.name}",
                     f"{BACK}<article><h1>{esc(entry.namespace)}/{esc(entry.name)}</h1>"
                     f'<section><p class="reason">{esc(why)}</p></section></article>')
    return render_report([MonitorReport(
        name=entry.name, namespace=entry.namespace, spec=entry.spec, status=entry.status,
        shapes=entry.shapes, history=entry.history)],
        title=f"modelmon report: {entry.namespace}/{entry.name}", top=BACK)


async def monitors(request: web.Request) -> web.StreamResponse:
    entries = request.app[STORE].entries()
    if wants_json(request):
        return web.json_response({"monitors": [summary(e) for e in entries]})
    return web.Response(text=index_html(entries), content_type="text/html")


async def monitor(request: web.Request) -> web.StreamResponse:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if NAMESPACE.fullmatch(namespace) is None or NAME.fullmatch(name) is None:
        raise web.HTTPNotFound(text="no such monitor\n")
    entry = request.app[STORE].get(namespace, name)
    if entry is None:
        raise web.HTTPNotFound(text="no such monitor\n")
    if wants_json(request):
        return web.json_response({**summary(entry), "status": status_json(entry.status),
                                  "history": [point_json(p) for p in entry.history]})
    # A report of many columns takes a fraction of a second to build: off the server's loop.
    page = await asyncio.get_running_loop().run_in_executor(
        request.app[POOL], monitor_html, entry)
    return web.Response(text=page, content_type="text/html")


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/monitors")


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)


def report_app(store: LiveReports, pool: ThreadPoolExecutor | None = None) -> web.Application:
    """The report server's routes, reading ``store``; pages are built in ``pool``."""
    app = web.Application()
    app[STORE] = store
    app[POOL] = pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelmon-report")
    app.router.add_get("/", home)
    app.router.add_get("/monitors", monitors)
    app.router.add_get("/monitors/{namespace}/{name}", monitor)
    app.on_response_prepare.append(_secure)
    return app


class ReportServer:
    """The report server in a daemon thread with an event loop of its own."""

    def __init__(self, store: LiveReports, bind: str, port: int) -> None:
        self.store = store
        self.bind = bind
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.thread: threading.Thread | None = None

    async def _start(self) -> None:
        self.runner = web.AppRunner(report_app(self.store), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.bind, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): the one bound
            self.port = int(self.runner.addresses[0][1])

    def start(self) -> ReportServer:
        """Listen, or raise ``OSError`` (e.g. the port is taken) before returning."""
        self.loop.run_until_complete(self._start())
        self.thread = threading.Thread(target=self.loop.run_forever, name="report",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread is None:
            return

        async def close() -> None:
            if self.runner is not None:
                await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.thread = None

