"""Fault tolerance of the polling loop: garbage, error status, slow answers and counter resets from a real HTTP server."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from capacity.live import StopFlag, StoreSink, poll_loop
from capacity.live.apache import ApacheStatusSource, auto_url
from capacity.live.loop import backoff
from capacity.store import Store
from tests.live_servers import ScriptedHTTP
from tests.servers import free_port

SAMPLE = Path(__file__).resolve().parent / "data" / "apache_status" / "2.4.71-event-single-snapshot-c50.txt"


def _body(total_accesses: int, kbytes: int, uptime: int, restart: str = "Saturday, 21-Nov-2026 23:23:47 UTC") -> bytes:
    """The real 2.4.71 snapshot with its counters replaced."""
    assert SAMPLE.is_file(), f"missing sample {SAMPLE}"
    text = SAMPLE.read_text()
    text = re.sub(r"^Total Accesses: \d+$", f"Total Accesses: {total_accesses}", text, flags=re.M)
    text = re.sub(r"^Total kBytes: \d+$", f"Total kBytes: {kbytes}", text, flags=re.M)
    text = re.sub(r"^(ServerUptimeSeconds|Uptime): \d+$", rf"\1: {uptime}", text, flags=re.M)
    text = re.sub(r"^RestartTime: .*$", f"RestartTime: {restart}", text, flags=re.M)
    return text.encode()


# What the server answers to poll i: status, body, delay. The poller's timeout is 0.3 s.
SCRIPT = [
    (200, _body(1000, 500, 100), 0.0),
    (200, _body(1100, 600, 101), 0.0),
    (200, b"<html><body>It works!</body></html>", 0.0),        # garbage: an HTML page
    (200, b"Total Accesses: many\nBusyWorkers: 3\n", 0.0),    # garbage: not a number
    (503, b"Service Unavailable", 0.0),                        # error status
    (200, _body(1150, 650, 102), 1.0),                          # too slow: timed out
    (200, _body(1300, 800, 104), 0.0),                          # recovered: rate over the gap
    (200, _body(40, 20, 1), 0.0),                               # counters and uptime reset: a restart
    (200, _body(140, 120, 2), 0.0),
]


def test_garbage_errors_timeouts_and_resets_become_gaps_and_flags(tmp_path):
    stop = StopFlag()

    def script(index: int, _path: str):
        if index >= len(SCRIPT) - 1:
            stop.set("script done")
        return SCRIPT[min(index, len(SCRIPT) - 1)]

    store = Store.open(tmp_path / "store", create=True)
    events = []
    with ScriptedHTTP(script) as server:
        source = ApacheStatusSource(server.url + "/server-status", host="web1", timeout=0.3)
        sink = StoreSink(store, "faults", collector="apache_status_live", location=source.url, host="web1", flush_every=0.5)
        started = time.monotonic()
        summary = poll_loop(source, sink, interval=0.05, duration=20, stop=stop, retry_max=0.1, on_event=events.append)
        assert time.monotonic() - started < 15
    assert summary.polls == len(SCRIPT) and summary.failed_polls == 4
    assert summary.stopped_by == "script done"
    rows = store.table("web_status", ["faults"]).sort_by("ts").to_pylist()
    assert [r["total_accesses"] for r in rows] == [1000, 1100, 1300, 40, 140]
    assert [r["restarted"] for r in rows] == [False, False, False, True, False]
    assert rows[0]["req_per_s"] is None  # no previous snapshot: no interval
    assert rows[3]["req_per_s"] is None and rows[3]["bytes_per_s"] is None
    for i in (1, 2, 4):
        dt = (rows[i]["ts"] - rows[i - 1]["ts"]).total_seconds()
        assert rows[i]["req_per_s"] == pytest.approx((rows[i]["total_accesses"] - rows[i - 1]["total_accesses"]) / dt)
        assert rows[i]["bytes_per_s"] == pytest.approx((rows[i]["total_bytes"] - rows[i - 1]["total_bytes"]) / dt)
    assert all(r["req_per_s"] is None or r["req_per_s"] >= 0 for r in rows)
    # The poller's own clock stamps rows (CurrentTime in the body is the same second for all of them).
    assert len({r["ts"] for r in rows}) == 5 and rows[0]["ts"].year >= 2025

    errors = [e.error for e in events if e.kind == "fail"]
    assert "got an HTML page" in errors[0]
    assert "Total Accesses: expected a number" in errors[1]
    assert "HTTP 503" in errors[2]
    assert "timed out" in errors[3]
    gaps = [g for f in store.catalog()["runs"]["faults"]["files"] for g in f["gaps"]]
    assert len(gaps) == 1
    assert gaps[0]["failed_polls"] == 4 and "timed out" in gaps[0]["error"]
    assert gaps[0]["end"] == rows[2]["ts"].isoformat(timespec="milliseconds")
    assert gaps[0]["after"] == rows[1]["ts"].isoformat(timespec="milliseconds")


def test_backoff_doubles_from_the_interval_and_is_capped():
    assert [backoff(n, 1.0, 30.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff(3, 5.0, 1.0) == 5.0  # never faster than the interval


def test_auto_url_adds_the_machine_readable_flag():
    assert auto_url("http://h/server-status") == "http://h/server-status?auto"
    assert auto_url("http://h/server-status?auto") == "http://h/server-status?auto"
    assert auto_url("h:8080") == "http://h:8080/server-status?auto"


def test_schedule_stays_on_its_grid_and_stops_at_the_duration(tmp_path):
    store = Store.open(tmp_path / "store", create=True)
    stamps: list[datetime] = []

    class Clocked:
        def poll(self, ts: datetime):
            stamps.append(ts)
            return []

    started = time.monotonic()
    summary = poll_loop(Clocked(), StoreSink(store, "grid", collector="t", location="t", host=None), interval=0.1, duration=1.0,
                        stop=StopFlag())
    elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 3
    assert summary.polls == len(stamps) == 10
    assert all(s.tzinfo is UTC and s.microsecond % 1000 == 0 for s in stamps)
    offsets = [(s - stamps[0]).total_seconds() for s in stamps]
    assert all(abs(o - i * 0.1) < 0.08 for i, o in enumerate(offsets))


def test_a_source_that_stays_down_does_not_spin_the_cpu(tmp_path):
    store = Store.open(tmp_path / "store", create=True)
    source = ApacheStatusSource(f"http://127.0.0.1:{free_port()}/server-status", timeout=0.2)
    cpu_before, wall_before = time.process_time(), time.monotonic()
    summary = poll_loop(source, StoreSink(store, "down", collector="apache_status_live", location=source.url, host=None, flush_every=0.2),
                        interval=0.1, duration=1.5, stop=StopFlag(), retry_max=0.4)
    assert time.monotonic() - wall_before >= 1.4
    assert time.process_time() - cpu_before < 0.5
    # interval 0.1 then 0.2, 0.4, 0.4, ...: a handful of attempts, not one per interval.
    assert summary.polls == summary.failed_polls and 4 <= summary.polls <= 7
    assert len(summary.gaps) == 1 and summary.gaps[0].end is None
