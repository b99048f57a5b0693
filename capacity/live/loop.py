"""The polling loop every live collector shares.

A source is polled on a fixed schedule (`interval` seconds from the start, so
the cadence does not drift with the time each poll takes) until `duration`
has passed or the stop flag is set (by SIGINT/SIGTERM, see `stop_on_signals`).
A poll that fails opens a gap; retries then back off (interval, 2x, 4x, ...
up to `retry_max`) until the source answers again, which closes the gap and
puts the schedule back on its grid. The sink flushes every few seconds and
once more on the way out, so stopping the loop loses nothing already polled.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from capacity.live.sink import Gap, StoreSink


class SourceError(Exception):
    """One poll of a live source failed (no answer, timeout, HTTP error, garbage); the loop retries."""


class Source(Protocol):
    """What the loop polls: `poll(ts)` returns the canonical batches of one sample or raises `SourceError`."""

    def poll(self, ts: datetime) -> list[tuple[str, pa.Table]]: ...


@dataclass
class Event:
    """One thing that happened in the loop, for the caller to log or print."""

    kind: str  # "ok", "fail", "recovered"
    ts: datetime
    rows: int = 0
    error: str = ""
    retry_in: float | None = None
    gap: Gap | None = None


@dataclass
class Summary:
    """What a loop (or a range collection) did, for the closing line."""

    polls: int = 0
    failed_polls: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    gaps: list[Gap] = field(default_factory=list)
    stopped_by: str | None = None

    @property
    def gap_seconds(self) -> float:
        """Total length of the closed gaps."""
        return sum(g.seconds or 0.0 for g in self.gaps)


def backoff(failures: int, interval: float, retry_max: float) -> float:
    """Delay before the next attempt after `failures` consecutive failures: interval doubled each time, capped."""
    cap = max(retry_max, interval)
    return min(interval * 2 ** max(failures - 1, 0), cap)


class StopFlag:
    """A threading.Event that also remembers which signal (if any) set it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        """Ask the loop to stop, keeping the first reason given."""
        if self.reason is None:
            self.reason = reason
        self.event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked."""
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once when a stop is asked; True when stopped."""
        return self.event.wait(max(seconds, 0.0))


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """Turn SIGINT and SIGTERM into `flag.set(...)` for the duration of the block.

    The handlers only set the flag: a store write or a poll in progress
    finishes, and the loop then flushes what it holds and returns.
    """
    previous = {}

    def handler(signum: int, _frame: object) -> None:
        flag.set(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def poll_loop(source: Source, sink: StoreSink, *, interval: float, duration: float | None, stop: StopFlag,
              retry_max: float = 30.0, on_event: Callable[[Event], None] | None = None,
              clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] | None = None) -> Summary:
    """Poll `source` every `interval` s for `duration` s (None or 0: until stopped) into `sink`.

    Returns the summary after the final flush. `now` gives the wall-clock
    time stamped on each sample (UTC); `clock` is the monotonic schedule.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    wall = now or (lambda: datetime.now(UTC))
    emit = on_event or (lambda _e: None)
    summary = Summary()
    start = clock()
    deadline = start + duration if duration else math.inf
    next_at = start
    failures = 0
    gap: Gap | None = None
    last_ok: datetime | None = None
    try:
        while not stop.is_set():
            wake = min(next_at, sink.next_due(), deadline)
            if stop.wait(wake - clock()):
                break
            if sink.due():
                sink.flush()
            if clock() >= deadline:
                break
            if clock() < next_at:
                continue
            # Whole milliseconds, the store's resolution, so a logged stamp equals the stored one.
            stamp = wall()
            ts = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
            summary.polls += 1
            try:
                batches = source.poll(ts)
            except SourceError as exc:
                failures += 1
                summary.failed_polls += 1
                if gap is None:
                    gap = Gap(start=ts, after=last_ok)
                gap.failed_polls += 1
                gap.error = str(exc)
                delay = backoff(failures, interval, retry_max)
                next_at = clock() + delay
                emit(Event("fail", ts, error=str(exc), retry_in=delay))
                continue
            sink.add(batches)
            rows = sum(t.num_rows for _, t in batches)
            if gap is not None:
                gap.end = ts
                sink.add_gap(gap)
                summary.gaps.append(gap)
                emit(Event("recovered", ts, rows=rows, gap=gap))
                gap, failures = None, 0
            last_ok = ts
            emit(Event("ok", ts, rows=rows))
            # Back on the grid: the next multiple of the interval after now.
            elapsed = clock() - start
            next_at = start + (math.floor(elapsed / interval) + 1) * interval
    finally:
        if gap is not None:
            # Still failing when stopped: recorded as an open gap (end null).
            sink.add_gap(gap)
            summary.gaps.append(gap)
        sink.flush()
        summary.rows = dict(sink.written)
        summary.flushes = sink.flushes
        summary.stopped_by = stop.reason
    return summary
