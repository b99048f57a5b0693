"""`capacity collect apache` against a real Apache: load, a full stop and start mid-poll, then SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.compute as pc

from capacity.store import Store
from tests.live_servers import start_apache_again, stop_apache, stoppable_apache  # noqa: F401 - fixture
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent



def _stop(poller: subprocess.Popen, sig: int) -> tuple[str, str]:
    """Send `sig` to the poller and collect its output once it has flushed and exited."""
    poller.send_signal(sig)
    return poller.communicate(timeout=15)


def _kill_if_running(poller: subprocess.Popen) -> None:
    if poller.poll() is None:
        poller.kill()
        poller.communicate()

def _log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_log(path: Path, check, limit_s: float, process: subprocess.Popen) -> list[dict]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        events = _log(path)
        if check(events):
            return events
        assert process.poll() is None, f"poller exited early: {process.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"log condition not met within {limit_s} s: {_log(path)[-5:]}")


def _poller(url: str, store: Path, log: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "capacity", "collect", "apache", url, "--run", "live", "--store", str(store),
           "--interval", "0.25", "--duration", "50", "--retry-max", "0.5", "--timeout", "2", "--flush-every", "1",
           "--log", str(log), "--max-workers", "100", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _oks(events: list[dict]) -> int:
    return sum(e["event"] == "ok" for e in events)


def test_poller_survives_stop_and_start_and_flushes_on_sigint(stoppable_apache, tmp_path):  # noqa: F811 - fixture
    server = stoppable_apache
    store_dir, log = tmp_path / "store", tmp_path / "polls.jsonl"
    poller = _poller(server.base_url + "/server-status", store_dir, log)
    try:
        _wait_log(log, lambda ev: _oks(ev) >= 3, 20, poller)
        loaded: list[int] = []
        worker = threading.Thread(target=lambda: loaded.append(server.load(requests=300, threads=4, time_limit_s=15)))
        worker.start()
        worker.join(timeout=20)
        assert loaded and loaded[0] == 300
        before_stop = _oks(_wait_log(log, lambda ev: True, 1, poller))
        _wait_log(log, lambda ev: _oks(ev) >= before_stop + 2, 10, poller)

        stop_apache(server)
        stopped_lines = server.access_log.read_text().splitlines()
        _wait_log(log, lambda ev: sum(e["event"] == "fail" for e in ev) >= 2, 10, poller)
        start_apache_again(server)
        events = _wait_log(log, lambda ev: any(e["event"] == "recovered" for e in ev), 15, poller)
        recovered_at = len(events)
        _wait_log(log, lambda ev: _oks(ev[recovered_at:]) >= 3, 10, poller)

        out, err = _stop(poller, signal.SIGINT)
    finally:
        _kill_if_running(poller)
    assert poller.returncode == 0, err
    assert "stopped by SIGINT" in out
    assert "1 restart(s) detected" in out, out
    assert "server restart detected" in err

    events = _log(log)
    ok_ts = sorted(e["ts"] for e in events if e["event"] == "ok")
    store = Store.open(store_dir)
    table = store.table("web_status", ["live"]).sort_by("ts")
    stored_ts = [t.isoformat(timespec="milliseconds") for t in table["ts"].to_pylist()]
    # Every snapshot the poller reported before the signal is in the store, and nothing else.
    assert sorted(stored_ts) == ok_ts
    assert table.num_rows == len(ok_ts) >= 8

    rows = table.to_pylist()
    for column in ("req_per_s", "bytes_per_s"):
        values = [r[column] for r in rows if r[column] is not None]
        assert values and min(values) >= 0
    # The one restart is the first snapshot after the recovery; its counters went down and its rates are null.
    recovered = next(e for e in events if e["event"] == "recovered")
    restarted = [r for r in rows if r["restarted"]]
    assert len(restarted) == 1
    restart_row = restarted[0]
    assert restart_row["ts"].isoformat(timespec="milliseconds") == recovered["ts"]
    index = rows.index(restart_row)
    assert restart_row["total_accesses"] < rows[index - 1]["total_accesses"]
    assert restart_row["req_per_s"] is None
    # Before the stop the server had served the 300 loaded requests, all in its access log.
    last_before = rows[index - 1]["total_accesses"]
    assert 300 <= last_before <= len(stopped_lines)
    # A rate is the counter's increase over the time between the two snapshots.
    for prev, row in zip(rows, rows[1:], strict=False):
        if not row["restarted"]:
            dt = (row["ts"] - prev["ts"]).total_seconds()
            assert abs(row["req_per_s"] * dt - (row["total_accesses"] - prev["total_accesses"])) < 1e-6
    assert set(pc.unique(table["host"]).to_pylist()) == {"127.0.0.1"}
    assert set(pc.unique(table["source"]).to_pylist()) == {"apache_status_live"}
    assert set(pc.unique(table["max_workers"]).to_pylist()) == {100}

    # The gap is recorded explicitly in the catalog: when, how many failed polls, and the error.
    files = store.catalog()["runs"]["live"]["files"]
    gaps = [g for f in files for g in f.get("gaps", [])]
    assert len(gaps) == 1
    gap = gaps[0]
    assert store.run("live")["gaps"] == [dict(gap, collector="apache_status_live")]
    assert gap["end"] == recovered["ts"]
    fails = [e for e in events if e["event"] == "fail"]
    assert gap["failed_polls"] == len(fails) >= 2
    assert gap["start"] == fails[0]["ts"]
    assert "no answer" in gap["error"]
    assert all(f["collector"] == "apache_status_live" and f["path"].endswith("/server-status?auto") for f in files)
    assert store.verify("live") == []


def test_poller_records_a_server_that_never_answers_as_an_open_gap(tmp_path):
    store_dir, log = tmp_path / "store", tmp_path / "polls.jsonl"
    url = f"http://127.0.0.1:{free_port()}/server-status"
    poller = _poller(url, store_dir, log, "--duration", "2")
    out, err = poller.communicate(timeout=30)
    assert poller.returncode == 0, err
    assert "0 samples" in out and "1 still open" in out
    files = Store.open(store_dir).catalog()["runs"]["live"]["files"]
    gaps = [g for f in files for g in f["gaps"]]
    assert len(gaps) == 1 and gaps[0]["end"] is None and gaps[0]["failed_polls"] >= 2
    assert all(f["rows"] == {} for f in files)


def test_sigterm_flushes_buffer_and_exits_zero(stoppable_apache, tmp_path):  # noqa: F811 - fixture
    store_dir, log = tmp_path / "store", tmp_path / "polls.jsonl"
    # A flush period longer than the test: only the signal handler can write the data.
    poller = _poller(stoppable_apache.status_url, store_dir, log, "--flush-every", "300")
    try:
        _wait_log(log, lambda ev: _oks(ev) >= 4, 20, poller)
        out, err = _stop(poller, signal.SIGTERM)
    finally:
        _kill_if_running(poller)
    assert poller.returncode == 0, err
    assert "stopped by SIGTERM" in out
    ok = [e["ts"] for e in _log(log) if e["event"] == "ok"]
    table = Store.open(store_dir).table("web_status", ["live"])
    assert sorted(t.isoformat(timespec="milliseconds") for t in table["ts"].to_pylist()) == sorted(ok)
    assert len(Store.open(store_dir).catalog()["runs"]["live"]["files"]) == 1
