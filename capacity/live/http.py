"""Poll an application's HTTP check endpoint into `host_metrics`.

Every poll records, with `device` = the URL path:
- `app.health`: 1 for a 2xx answer, 0 for any other status or no answer;
- `app.response_ms`: time to the whole body (only when the server answered);
- `app.status_code`: the HTTP status.

The body of a 2xx answer is read as (`kind="auto"` picks by content):
- `prometheus`: text exposition (Concerto's `/api/check/prometheus`), parsed by
  `collectors.prometheus_text.parse_text`, which also drops the `1,234.0`
  thousands separators PHP's `number_format` writes;
- `number`: a plain number (Concerto's `/api/check/session_count`), stored as
  `app.<metric>` (default: the last path segment, `app.session_count`), a gauge;
- `health`: the status alone (Concerto's `/api/check/health` has an empty body).

No answer at all (refused, timeout, reset) is a failed poll for the loop, so
it becomes a gap; the poll's `app.health = 0` row is kept and written with the
next good poll (or by `drain()` when the loop ends while still failing), so
the health series says "down" where the gap is.
"""

from __future__ import annotations

import http.client
import re
import time
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import urlsplit

import pyarrow as pa

from capacity.live.loop import SourceError
from capacity.schema import conform
from collectors import prometheus_text
from collectors.base import CollectorError

name = "http_check_live"
MAX_BODY_BYTES = 1 << 20
KINDS = ("auto", "health", "number", "prometheus")
NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?$")
# Failures kept for the next write; beyond this the oldest are dropped (an endpoint down for hours).
MAX_PENDING = 100_000


def _metric_name(url: str) -> str:
    segment = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    clean = re.sub(r"[^a-z0-9_]+", "_", segment.lower()).strip("_")
    return f"app.{clean or 'value'}"


class HttpCheckSource:
    """One HTTP endpoint, polled by `capacity.live.loop.poll_loop`."""

    def __init__(self, url: str, *, host: str | None = None, kind: str = "auto", metric: str | None = None,
                 timeout: float = 5.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.url = url if "://" in url else "http://" + url
        parts = urlsplit(self.url)
        self.path = parts.path or "/"
        self.host = host or parts.hostname or "app"
        self.kind = kind
        self.metric = metric if metric is None or metric.startswith("app.") else f"app.{metric}"
        self.timeout = timeout
        self.pending: list[dict[str, object]] = []
        self.failures = 0

    def _rows(self, ts: datetime, values: list[tuple[str, float, str | None]]) -> dict[str, list]:
        return {
            "ts": [ts] * len(values), "host": [self.host] * len(values), "metric": [m for m, _, _ in values],
            "device": [d for _, _, d in values], "value": [float(v) for _, v, _ in values], "source": [name] * len(values),
        }

    def _table(self, rows: dict[str, list]) -> pa.Table:
        return conform(pa.table({**rows, "ts": pa.array(rows["ts"], pa.timestamp("ms", tz="UTC"))}), "host_metrics")

    def drain(self) -> list[tuple[str, pa.Table]]:
        """The `app.health = 0` rows of failed polls not yet handed over (call once the loop has ended)."""
        if not self.pending:
            return []
        rows = {k: [r[k] for r in self.pending] for k in self.pending[0]}
        self.pending = []
        return [("host_metrics", self._table(rows))]

    def _body_rows(self, ts: datetime, body: bytes, content_type: str) -> tuple[list[tuple[str, float, str | None]], pa.Table | None]:
        if self.kind == "health":
            return [], None
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self.url}: body not UTF-8 at byte {exc.start}") from None
        kind = self.kind
        if kind == "auto":
            if not text:
                return [], None
            if NUMBER.match(text):
                kind = "number"
            elif text.startswith("#") or prometheus_text.SAMPLE.match(text.split("\n", 1)[0]) or "version=0.0.4" in content_type:
                kind = "prometheus"
            else:
                # An HTML page or a JSON status object: the status code is the health answer.
                return [], None
        if kind == "number":
            if not NUMBER.match(text):
                raise SourceError(f"{self.url}: body {text[:60]!r} is not a number (expected a plain-number endpoint)")
            return [(self.metric or _metric_name(self.url), float(text.replace(",", "")), None)], None
        try:
            table = prometheus_text.parse_text(text, ts, self.host, self.url)
        except CollectorError as exc:
            raise SourceError(f"{self.url}: bad Prometheus text: {exc.reason} (line {exc.line})") from None
        return [], table.set_column(table.schema.get_field_index("source"), "source", pa.array([name] * table.num_rows, pa.string()))

    def poll(self, ts: datetime) -> list[tuple[str, pa.Table]]:
        """One request: health, latency, status, and the body's numbers."""
        request = urllib.request.Request(self.url, headers={"User-Agent": "capacity-collect/1"})
        start = time.perf_counter()
        body, content_type = b"", ""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - URL given by the user
                body = response.read(MAX_BODY_BYTES + 1)
                status = response.status
                content_type = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else f"{type(exc).__name__}: {exc}"
            self.failures += 1
            self.pending.append({"ts": ts, "host": self.host, "metric": "app.health", "device": self.path, "value": 0.0, "source": name})
            del self.pending[:-MAX_PENDING]
            raise SourceError(f"no answer from {self.url}: {reason}") from None
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if len(body) > MAX_BODY_BYTES:
            raise SourceError(f"{self.url}: body larger than {MAX_BODY_BYTES} bytes: not a check endpoint")
        ok = 200 <= status < 300
        values = [("app.health", 1.0 if ok else 0.0, self.path), ("app.response_ms", elapsed_ms, self.path), ("app.status_code", float(status), self.path)]
        extra: pa.Table | None = None
        if ok:
            numbers, extra = self._body_rows(ts, body, content_type)
            values += numbers
        out = self.drain()
        out.append(("host_metrics", self._table(self._rows(ts, values))))
        if extra is not None and extra.num_rows:
            out.append(("host_metrics", extra))
        return out
