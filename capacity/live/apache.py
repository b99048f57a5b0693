"""Poll a live Apache `server-status?auto` page into `web_status` rows.

Fetching is here; parsing and the rate/restart logic are the
`collectors.apache_status` ones (`parse_snapshot`, `to_table`), applied to the
previous and the current snapshot so every row's rates cover exactly the time
since the previous good poll, gaps included, and a restart (counters or uptime
going down, a new RestartTime) gives `restarted=True` and null rates, never a
negative one.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from capacity.live.loop import SourceError
from collectors import apache_status
from collectors.base import CollectorError

name = "apache_status_live"
# A status page is a few kB; a much larger body is not a status page.
MAX_BODY_BYTES = 1 << 20


def auto_url(url: str) -> str:
    """`url` with the `auto` query flag that makes mod_status answer in its machine-readable form."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k == "auto" for k, _ in query):
        query.append(("auto", ""))
    text = urlencode(query).replace("auto=", "auto")
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/server-status", text, ""))


class ApacheStatusSource:
    """One Apache server's status page, polled by `capacity.live.loop.poll_loop`."""

    def __init__(self, url: str, *, host: str | None = None, max_workers: int | None = None, timeout: float = 5.0) -> None:
        self.url = auto_url(url)
        self.host = host or urlsplit(self.url).hostname or "apache"
        self.max_workers = max_workers
        self.timeout = timeout
        self.restarts = 0
        self._previous: dict[str, object] | None = None

    def fetch(self) -> str:
        """The status body as text; SourceError for anything but a 200 with UTF-8 text."""
        request = urllib.request.Request(self.url, headers={"User-Agent": "capacity-collect/1"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - URL given by the user
                body = response.read(MAX_BODY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise SourceError(f"HTTP {exc.code} {exc.reason} from {self.url}") from None
        except urllib.error.URLError as exc:
            raise SourceError(f"no answer from {self.url}: {exc.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            raise SourceError(f"no answer from {self.url}: {type(exc).__name__}: {exc}") from None
        if len(body) > MAX_BODY_BYTES:
            raise SourceError(f"{self.url}: body larger than {MAX_BODY_BYTES} bytes: not a server-status page")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self.url}: not UTF-8 at byte {exc.start}: expected server-status?auto text") from None

    def snapshot(self, text: str, ts: datetime) -> dict[str, object]:
        """Parse one body; SourceError when it is not a `?auto` status page."""
        if apache_status.HTML_MARK.search(text[:2048]) or text.lstrip().startswith("<"):
            raise SourceError(f"{self.url}: got an HTML page, expected server-status?auto text")
        try:
            snap = apache_status.parse_snapshot(text, ts=ts, host=self.host, path=None)
        except CollectorError as exc:
            raise SourceError(f"{self.url}: bad server-status body: {exc.reason} (line {exc.line})") from None
        if snap.get("busy_workers") is None and snap.get("total_accesses") is None:
            raise SourceError(f"{self.url}: no BusyWorkers or Total Accesses line: expected server-status?auto text")
        # The poller's clock (ms) rather than CurrentTime (whole seconds): at
        # a 1 s interval, second-rounded stamps would distort every rate.
        snap["ts"] = ts
        snap["source"] = name
        return snap

    def poll(self, ts: datetime) -> list[tuple[str, pa.Table]]:
        """Fetch and parse one snapshot; its `web_status` row with rates since the previous good poll."""
        snap = self.snapshot(self.fetch(), ts)
        if self._previous is not None and self._previous["ts"] >= ts:  # type: ignore[operator]
            # The wall clock stepped back: no interval to compute a rate over.
            self._previous = None
        pair = [self._previous, snap] if self._previous is not None else [snap]
        table = apache_status.to_table(pair, self.max_workers).slice(len(pair) - 1)
        if self._previous is None:
            # Alone, to_table keeps mod_status's lifetime averages; in a series they would read as a spike.
            for column in ("req_per_s", "bytes_per_s"):
                index = table.schema.get_field_index(column)
                table = table.set_column(index, table.schema.field(index), pa.nulls(1, pa.float64()))
        elif table["restarted"][0].as_py():
            self.restarts += 1
        self._previous = snap
        return [("web_status", table)]
