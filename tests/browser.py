"""Open a page in real headless Chromium (Debian `chromium`) through the DevTools protocol over a pipe.

`--remote-debugging-pipe` makes Chromium read NUL-terminated JSON commands on
fd 3 and write replies and events on fd 4, so no websocket library is needed.
`visit(url)` loads a page and returns what a test checks: every network
request the page made, console messages and uncaught exceptions, and the
values of JavaScript expressions evaluated after load.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--remote-debugging-pipe", "--window-size=1280,900"]


@dataclass
class Visit:
    """What happened while a page loaded."""

    requests: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and browser log errors (CSP violations among them)."""
        out = [f"console.{m['type']}: {m['text']}" for m in self.console if m["type"] in ("error", "warning", "assert")]
        out += [f"exception: {e}" for e in self.exceptions]
        out += [f"log {e['level']}: {e['text']}" for e in self.log if e["level"] in ("error", "warning")]
        return out


class _Pipe:
    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.proc, self.w, self.r = proc, to_browser, from_browser
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.sel = selectors.DefaultSelector()
        self.sel.register(from_browser, selectors.EVENT_READ)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for m in self._read(deadline):
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method:
                    return self.events.pop(i)
            self.events += self._read(deadline)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.events += self._read(deadline, allow_timeout=True)

    def _read(self, deadline: float, allow_timeout: bool = False) -> list[dict[str, Any]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.sel.select(remaining):
            if allow_timeout:
                return []
            raise TimeoutError("no answer from chromium")
        chunk = os.read(self.r, 1 << 20)
        if not chunk:
            raise RuntimeError("chromium closed the DevTools pipe")
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\0")
        return [json.loads(d) for d in done if d]


def _pipe_fds(read_fd: int, write_fd: int) -> None:
    """In the child: the command pipe on fd 3, the reply pipe on fd 4 (moved out of the way first so neither clobbers the other)."""
    high_r, high_w = fcntl.fcntl(read_fd, fcntl.F_DUPFD, 10), fcntl.fcntl(write_fd, fcntl.F_DUPFD, 10)
    os.dup2(high_r, 3)
    os.dup2(high_w, 4)


def visit(url: str, expressions: dict[str, str] | None = None, settle_s: float = 0.5, timeout: float = 60.0) -> Visit:
    """Load `url` in a fresh headless Chromium and evaluate `expressions` (name -> JS) after the load event."""
    return visit_all([url], expressions, settle_s, timeout)[url]


def visit_all(urls: list[str], expressions: dict[str, str] | None = None, settle_s: float = 0.5, timeout: float = 60.0) -> dict[str, Visit]:
    """Load each of `urls` in turn in one fresh headless Chromium (a new tab each), evaluating `expressions` on each."""
    results: dict[str, Visit] = {}
    with tempfile.TemporaryDirectory() as profile:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        # close_fds=False: the pipes moved to fds 3 and 4 by preexec_fn must survive (Python's own fds are not inheritable)
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if not os.environ.get("BROWSER_DEBUG") else None,
            close_fds=False, preexec_fn=lambda: _pipe_fds(to_r, from_w),
        )
        os.close(to_r)
        os.close(from_w)
        pipe = _Pipe(proc, to_w, from_r)
        try:
            for url in urls:
                results[url] = _load(pipe, url, expressions or {}, settle_s, timeout)
        finally:
            try:
                pipe.send("Browser.close", timeout=5)
            except (RuntimeError, TimeoutError, OSError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_w)
            os.close(from_r)
    return results


def _load(pipe: _Pipe, url: str, expressions: dict[str, str], settle_s: float, timeout: float) -> Visit:
    result = Visit()
    target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Runtime", "Log"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.events.clear()
    pipe.send("Page.navigate", {"url": url}, session=session)
    pipe.wait_event("Page.loadEventFired", timeout=timeout)
    pipe.pump(settle_s)
    for name, expr in expressions.items():
        r = pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{name}: {r['exceptionDetails']}")
        result.values[name] = r["result"].get("value")
    for m in pipe.events:
        if m.get("sessionId") not in (None, session):
            continue
        p = m.get("params", {})
        if m.get("method") == "Network.requestWillBeSent":
            result.requests.append(p["request"]["url"])
        elif m.get("method") == "Runtime.consoleAPICalled":
            result.console.append({"type": p["type"], "text": " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])})
        elif m.get("method") == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            result.exceptions.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif m.get("method") == "Log.entryAdded":
            result.log.append({"level": p["entry"]["level"], "text": p["entry"]["text"], "url": p["entry"].get("url")})
    pipe.events.clear()
    pipe.send("Target.closeTarget", {"targetId": target})
    return result
