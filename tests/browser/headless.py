"""Headless Chromium driven over the Chrome DevTools Protocol, for the browser tests.

Why the DevTools protocol over aiohttp's websocket client: aiohttp is already a dependency
of modelmon, the protocol is what Chromium itself ships (no driver binary, no browser build
downloaded, unlike Playwright or Selenium's drivers), and it gives what a test must see and
the command-line flags (--dump-dom, --screenshot) do not: console messages, uncaught
exceptions, every network request, and values evaluated in the page after its scripts ran.

The browser is Debian's `chromium` (hack/install-test-deps.sh). It never reaches past this
machine: host names resolve to nothing (--host-resolver-rules), every connection but to
127.0.0.1 (where a test's own server listens) goes to a closed loopback port
(--proxy-server), and its background services
(updates, sync, metrics) are off.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions", "--disable-domain-reliability", "--metrics-recording-only",
    "--no-pings", "--disable-client-side-phishing-detection", "--mute-audio",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    # <-loopback> drops Chromium's implicit bypass list (which also holds link-local
    # addresses, cloud metadata's among them); only 127.0.0.1, where a test's own server
    # listens (the live report's), is then reached directly.
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>;127.0.0.1",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
    "--hide-scrollbars", "--window-size=1280,900",
)

LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


class BrowserError(RuntimeError):
    """The browser did not start or answered a command with an error."""


@dataclass
class PageLog:
    """What a page said while loaded: console messages by level, uncaught exceptions,
    log entries (failed loads, violations) and the URLs it requested."""

    console: list[tuple[str, str]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    entries: list[tuple[str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        return ([text for level, text in self.console if level in ("error", "assert")]
                + self.exceptions
                + [text for level, text in self.entries if level == "error"])


class Page:
    """One tab, attached through the browser's websocket (a flat session)."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session
        self.log = PageLog()
        self._loaded = asyncio.Event()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in params.get("args", []))
            self.log.console.append((params.get("type", ""), text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.log.exceptions.append(str(text))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.log.entries.append((entry.get("level", ""), entry.get("text", "")))
        elif method == "Network.requestWillBeSent":
            self.log.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Page.loadEventFired":
            self._loaded.set()

    async def goto(self, url: str, timeout: float = 60.0) -> None:
        self._loaded.clear()
        answer = await self.send("Page.navigate", url=url)
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        answer = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:80]}: {answer['exceptionDetails']}")
        return answer.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """The first truthy value of ``expression``, polled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise TimeoutError(f"{expression!r} stayed falsy for {timeout:g} s")
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path, selector: str | None = None,
                         max_height: int = 6000) -> Path:
        """A PNG of the element ``selector`` (else the whole page), at most
        ``max_height`` CSS pixels tall from its top."""
        if selector is None:
            expression = ("[0, 0, document.documentElement.scrollWidth,"
                          " document.documentElement.scrollHeight]")
        else:
            expression = (f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                          ".getBoundingClientRect(); return [r.left + window.scrollX,"
                          " r.top + window.scrollY, r.width, r.height]; })()")
        box = await self.evaluate(expression)
        x, y, width, height = (float(v) for v in box)
        clip = {"x": x, "y": y, "width": width, "height": min(height, max_height),
                "scale": 1}
        shot = await self.send("Page.captureScreenshot", format="png", clip=clip,
                               captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Chromium:
    """A headless Chromium process and its DevTools websocket."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.process: asyncio.subprocess.Process | None = None
        self.profile = Path(tempfile.mkdtemp(prefix="modelmon-chromium-"))
        self.http: aiohttp.ClientSession | None = None
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pages: dict[str, Page] = {}
        self.reader: asyncio.Task[None] | None = None
        self.drainer: asyncio.Task[None] | None = None
        self.stderr: list[bytes] = []

    async def start(self, timeout: float = 60.0) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        url = await asyncio.wait_for(self._endpoint(), timeout)
        self.http = aiohttp.ClientSession()
        self.socket = await self.http.ws_connect(url, max_msg_size=0)
        self.reader = asyncio.create_task(self._read())

    async def _endpoint(self) -> str:
        assert self.process is not None and self.process.stderr is not None
        while True:
            line = await self.process.stderr.readline()
            if not line:
                raise BrowserError("chromium exited before it listened: "
                                   + b"".join(self.stderr[-20:]).decode(errors="replace"))
            self.stderr.append(line)
            found = LISTENING.search(line)
            if found:
                # Keep draining stderr, or a chatty browser blocks on a full pipe.
                self.drainer = asyncio.create_task(self._drain())
                return found.group(1).decode()

    async def _drain(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.stderr.append(line)
            del self.stderr[:-200]

    async def _read(self) -> None:
        assert self.socket is not None
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("sessionId") in self.pages:
                self.pages[data["sessionId"]].on_event(data["method"], data.get("params", {}))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        assert self.socket is not None
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        await self.socket.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self.pages[page.session] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=False)
        return page

    async def close(self) -> None:
        if self.socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send("Browser.close"), 5)
            await self.socket.close()
        if self.http is not None:
            await self.http.close()
        for task in (self.reader, self.drainer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.asynccontextmanager
async def chromium(binary: str) -> AsyncIterator[Chromium]:
    browser = Chromium(binary)
    try:
        await browser.start()
        yield browser
    finally:
        await browser.close()
