"""Prometheus range queries into `host_metrics`, chunked, retried, flushed as they come.

`custom_query_range` (prometheus-api-client) is called once per query and
chunk; a chunk holds at most `max_points` points per series, because the API
refuses more than 11,000 (FORMATS.md A6.1) and the client does no chunking.
The client sends start and end as whole seconds, so chunk edges fall on whole
seconds that are also on the step grid; neighbouring chunks share their edge
point, which the later chunk drops. The mapping onto the metric vocabulary is
`collectors.prometheus_range.series_to_table`. A chunk that still fails after
its retries (no answer, timeout, an error status, a body that is not a result
list) is recorded as a gap and the collection goes on with the next one.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from capacity.live.loop import Event, StopFlag, Summary, backoff
from capacity.live.sink import Gap, StoreSink
from collectors import prometheus_range
from collectors.base import CollectorError

name = "prometheus_range_live"
MAX_POINTS = 11_000
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
# 400 (bad parameters) and 422 (cannot execute) do not change on retry.
FINAL_STATUS = re.compile(r"HTTP Status Code 4(?:00|22)\b")
RELATIVE = re.compile(r"^(?:now)?\s*([+-])\s*(\S+)$")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (`15s`, `1m30s`, `500ms`) or a plain number of seconds; ValueError otherwise."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pos, total = 0, 0.0
        for m in DURATION.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise ValueError(f"{text!r} is not a duration: expected e.g. 15s, 1m30s, 500ms or seconds as a number") from None
        value = total
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return value


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time, epoch seconds, `now`, or a time relative to now (`-15m`, `now-1h`) as an aware UTC datetime."""
    now = now or datetime.now(UTC)
    raw = text.strip()
    if raw.lower() == "now":
        return now
    m = RELATIVE.match(raw.lower())
    if m and not re.fullmatch(r"[+-]?\d+(?:\.\d+)?", raw):
        offset = timedelta(seconds=parse_duration(m.group(2)))
        return now + offset if m.group(1) == "+" else now - offset
    with contextlib.suppress(ValueError, OverflowError, OSError):  # not epoch seconds: try RFC 3339 next
        return datetime.fromtimestamp(float(raw), UTC)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: expected RFC 3339 (2026-11-21T23:25:00Z), epoch seconds, now, or -15m") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r}: RFC 3339 needs a zone offset (Z or +01:00)")
    return when.astimezone(UTC)


def chunk_span(step: float, max_points: int) -> float:
    """Seconds covered by one request: k steps with k + 1 <= max_points points and k * step whole seconds when possible."""
    most = max(max_points - 1, 1)
    for k in range(most, 0, -1):
        span = k * step
        if abs(span - round(span)) < 1e-6 and round(span) >= 1:
            return float(round(span))
    # A step with no whole-second multiple in range: chunks are then not on one grid.
    return max(math.floor(most * step), 1.0)


def chunks(start: datetime, end: datetime, step: float, max_points: int = MAX_POINTS) -> Iterator[tuple[datetime, datetime]]:
    """(chunk start, chunk end) pairs covering [start, end], edges on whole seconds, each at most `max_points` points."""
    first = math.floor(start.timestamp())
    last = end.timestamp()
    span = chunk_span(step, max_points)
    lo = float(first)
    while True:
        hi = min(lo + span, last)
        yield datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)
        if hi >= last:
            return
        lo += span


def _client_errors() -> tuple[type[BaseException], ...]:
    import requests
    from prometheus_api_client.exceptions import PrometheusApiClientException

    return (requests.RequestException, PrometheusApiClientException, ValueError, KeyError, TypeError)


def connect(url: str, timeout: float) -> Any:
    """A PrometheusConnect without the client's own retries (this module retries with its own backoff)."""
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    return PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0, connect=0, read=0, redirect=0, status=0), timeout=timeout)


def collect_range(client: Any, url: str, queries: list[str], start: datetime, end: datetime, step: float, sink: StoreSink, *,
                  stop: StopFlag, host: str | None = None, max_points: int = MAX_POINTS, retries: int = 3, retry_wait: float = 1.0,
                  retry_max: float = 10.0, on_event: Callable[[Event], None] | None = None) -> Summary:
    """Run every query over [start, end] at `step` seconds into `sink`; returns the summary after the last flush."""
    if end <= start:
        raise ValueError(f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})")
    errors = _client_errors()
    emit = on_event or (lambda _e: None)
    summary = Summary()
    step_text = f"{step:g}"
    try:
        for query in queries:
            previous_end: datetime | None = None
            for lo, hi in chunks(start, end, step, max_points):
                if stop.is_set():
                    break
                result, error, attempts = None, "", 0
                while attempts <= retries and not stop.is_set():
                    attempts += 1
                    summary.polls += 1
                    try:
                        result = client.custom_query_range(query, start_time=lo, end_time=hi, step=step_text)
                        table = prometheus_range.series_to_table(result if isinstance(result, list) else [None], query=query,
                                                                 host=host, source=name, path=url)
                        break
                    except (*errors, CollectorError) as exc:
                        result = None
                        summary.failed_polls += 1
                        error = f"{type(exc).__name__}: {exc}"[:500]
                        if FINAL_STATUS.search(str(exc)):
                            # The query itself is wrong: asking again gives the same answer.
                            attempts = retries + 1
                        delay = backoff(attempts, retry_wait, retry_max) if attempts <= retries else None
                        emit(Event("fail", datetime.now(UTC), error=f"{query} [{lo:%H:%M:%S}-{hi:%H:%M:%S}]: {error}", retry_in=delay))
                        if delay is not None:
                            stop.wait(delay)
                if result is None:
                    gap = Gap(start=lo, after=lo, end=hi, failed_polls=attempts, error=error or "stopped", detail={"query": query})
                    sink.add_gap(gap)
                    summary.gaps.append(gap)
                    previous_end = hi
                    continue
                if previous_end is not None and table.num_rows:
                    table = table.filter(pc.greater(table["ts"], pa.scalar(previous_end, pa.timestamp("ms", tz="UTC"))))
                previous_end = hi
                sink.add([("host_metrics", table)])
                emit(Event("ok", hi, rows=table.num_rows))
                if sink.due():
                    sink.flush()
    finally:
        sink.flush()
        summary.rows = dict(sink.written)
        summary.flushes = sink.flushes
        summary.stopped_by = stop.reason
    return summary

