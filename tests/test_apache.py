"""apache_status: server-status?auto (2.2, 2.4), framed series, the HTML page, rates and restarts, a live Apache."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from capacity.schema import conform
from collectors import apache_status
from collectors.base import CollectorError
from tests.servers import apache_server  # noqa: F401 - pytest fixture

DATA = Path(__file__).resolve().parent / "data" / "apache_status"
SB_COLUMNS = apache_status.SCOREBOARD


def sample(name: str) -> Path:
    path = DATA / name
    assert path.is_file(), f"missing sample {path}"
    return path


def raw_field(text: str, key: str) -> str:
    m = re.search(rf"^{re.escape(key)}: ?(.*)$", text, re.M)
    assert m, key
    return m.group(1).strip()


def test_single_24_snapshot_matches_raw_text():
    path = sample("2.4.71-event-single-snapshot-c50.txt")
    text = path.read_text()
    table = apache_status.read(path)["web_status"]
    assert table.num_rows == 1
    row = table.to_pylist()[0]
    board = raw_field(text, "Scoreboard")
    for char, column in SB_COLUMNS.items():
        assert row[column] == board.count(char), column
    assert row["sb_sending"] == 22 and row["sb_closing"] == 1
    assert row["busy_workers"] == int(raw_field(text, "BusyWorkers")) == 23
    assert row["total_accesses"] == 609515
    assert row["total_bytes"] == 267089 * 1024
    assert row["total_duration_ms"] == 387869.0
    assert row["duration_per_req_ms"] == pytest.approx(0.636357)
    assert row["conns_total"] == 28 and row["conns_async_keepalive"] == 1
    assert row["ts"] == datetime(2026, 11, 21, 23, 25, 35, tzinfo=UTC)
    assert row["host"] == "127.0.0.1"
    assert row["mpm"] == "event" and row["server_version"] == "Apache/2.4.71 (Debian)"
    # Alone, the rate is the server's lifetime average.
    assert row["req_per_s"] == pytest.approx(5643.66)
    assert row["max_workers"] == len(board) == 150
    assert row["restarted"] is False
    assert apache_status.read(path, max_workers=400)["web_status"]["max_workers"][0].as_py() == 400


def test_apache_22_seed_needs_ts_and_uses_file_stem():
    path = sample("2.2.15-prefork-moodle-no-name-line.txt")
    text = path.read_text()
    warnings: list[str] = []
    row = apache_status.read(path, warn=warnings.append)["web_status"].to_pylist()[0]
    assert any("modification time" in w for w in warnings)
    assert row["host"] == path.stem
    board = raw_field(text, "Scoreboard")
    assert row["max_workers"] == len(board) == 256
    assert row["sb_reading"] == board.count("R") == 8
    assert row["sb_waiting"] == board.count("_")
    assert row["busy_workers"] == 11 and row["idle_workers"] == 9
    assert row["uptime_s"] == 312481.0
    assert row["total_bytes"] == 2134616 * 1024
    given = apache_status.read(path, ts=1700000000, host="moodle", warn=warnings.append)["web_status"].to_pylist()[0]
    assert given["ts"] == datetime.fromtimestamp(1700000000, UTC)
    assert given["host"] == "moodle"


def test_poll_series_rates_between_snapshots_and_graceful_is_no_restart():
    path = sample("2.4.71-poll-1s-ts-framed-graceful-restart.txt")
    text = path.read_text()
    table = apache_status.read(path)["web_status"]
    frames = re.findall(r"^# ts=(\d+)$", text, re.M)
    assert table.num_rows == len(frames) == 165
    accesses = [int(v) for v in re.findall(r"^Total Accesses: (\d+)$", text, re.M)]
    kbytes = [int(v) for v in re.findall(r"^Total kBytes: (\d+)$", text, re.M)]
    rates = table["req_per_s"].to_pylist()
    assert rates[0] is None  # no previous snapshot
    for i in (1, 40, 100, 164):
        # consecutive frames are exactly 1 s apart in this file
        assert rates[i] == pytest.approx(accesses[i] - accesses[i - 1])
        assert table["bytes_per_s"][i].as_py() == pytest.approx((kbytes[i] - kbytes[i - 1]) * 1024)
    assert pc.min(table["req_per_s"]).as_py() >= 0
    # The USR1 at 23:25:59 keeps counters: not a restart.
    assert not any(table["restarted"].to_pylist())
    assert table["ts"][0].as_py() == datetime.fromtimestamp(int(frames[0]), UTC)
    # The first snapshot after start has no CPULoad line.
    assert table["cpu_load_pct"][0].as_py() is None


def test_hard_restart_flagged_with_null_rate():
    path = sample("2.4.71-poll-ts-framed-hard-restart-sighup.txt")
    text = path.read_text()
    accesses = [int(v) for v in re.findall(r"^Total Accesses: (\d+)$", text, re.M)]
    table = apache_status.read(path)["web_status"]
    restarted = table["restarted"].to_pylist()
    drops = [i for i in range(1, len(accesses)) if accesses[i] < accesses[i - 1]]
    assert drops, "the sample must hold a counter reset"
    assert [i for i, r in enumerate(restarted) if r] == drops
    for i in drops:
        assert table["req_per_s"][i].as_py() is None
        assert table["bytes_per_s"][i].as_py() is None
    assert all(r is None or r >= 0 for r in table["req_per_s"].to_pylist())
    assert max(r or 0 for r in table["req_per_s"].to_pylist()) > 100  # the 400-request burst


def test_html_page():
    path = sample("2.4.71-html-page-not-auto.html")
    text = path.read_text()
    row = apache_status.read(path)["web_status"].to_pylist()[0]
    board = re.sub(r"\s", "", re.search(r"<pre>(.*?)</pre>", text, re.S).group(1))
    for char, column in SB_COLUMNS.items():
        assert row[column] == board.count(char), column
    assert row["busy_workers"] == 20 and row["idle_workers"] == 55
    assert row["total_accesses"] == 643996
    assert row["ts"] == datetime(2026, 11, 21, 23, 25, 37, tzinfo=UTC)
    assert row["load_1m"] == 4.59 and row["cpu_load_pct"] == 62.2
    assert row["max_workers"] == 150


def test_graceful_snapshot_counts_starting_slots():
    path = sample("2.4.71-after-graceful-restart-starting-slots.txt")
    board = raw_field(path.read_text(), "Scoreboard")
    row = apache_status.read(path)["web_status"].to_pylist()[0]
    assert row["sb_starting"] == board.count("S") == 16


def test_parse_snapshot_and_to_table_for_a_poller():
    text = sample("2.4.71-event-single-snapshot-c50.txt").read_text()
    later = text.replace("Total Accesses: 609515", "Total Accesses: 610515").replace("23:25:35 UTC", "23:25:45 UTC")
    snaps = [apache_status.parse_snapshot(later), apache_status.parse_snapshot(text)]
    table = apache_status.to_table(snaps, max_workers=150)
    assert table["total_accesses"].to_pylist() == [609515, 610515]  # sorted by time
    assert table["req_per_s"].to_pylist() == [None, pytest.approx(100.0)]
    assert conform(table, "web_status").num_rows == 2


def test_current_time_in_a_named_zone():
    text = sample("2.4.71-event-single-snapshot-c50.txt").read_text().replace(
        "CurrentTime: Saturday, 21-Nov-2026 23:25:35 UTC", "CurrentTime: Thursday, 08-Sep-2016 15:09:32 CEST")
    row = apache_status.parse_snapshot(text, tz="Europe/Paris")
    assert row["ts"] == datetime(2016, 9, 8, 13, 9, 32, tzinfo=UTC)
    with pytest.raises(CollectorError, match="tz"):
        apache_status.parse_snapshot(text)  # CEST is not UTC's abbreviation


def test_failed_poll_frame_is_skipped_with_warning(tmp_path):
    body = sample("2.4.71-event-single-snapshot-c50.txt").read_text()
    path = tmp_path / "poll.txt"
    path.write_text(f"# ts=1795303535\n{body}# ts=1795303536 error=curl_exit_28\n# ts=1795303537\n{body}")
    warnings: list[str] = []
    table = apache_status.read(path, warn=warnings.append)["web_status"]
    assert table.num_rows == 2
    assert any("curl_exit_28" in w for w in warnings)


@pytest.mark.parametrize("name, line", [("bad/total-accesses-letter-O.txt", 14), ("bad/scoreboard-unknown-char.txt", 37)])
def test_bad_files_raise_collector_error(name, line):
    with pytest.raises(CollectorError) as info:
        apache_status.read(sample(name))
    assert info.value.line == line


def test_garbage_and_empty(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\nthis is not a status page\n")
    assert not apache_status.detect(junk)
    with pytest.raises(CollectorError):
        apache_status.read(junk)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert not apache_status.detect(binary)
    with pytest.raises(CollectorError):
        apache_status.read(binary)


def test_live_apache_under_load(apache_server, tmp_path):  # noqa: F811 - fixture
    poll = tmp_path / "poll.txt"
    bodies: list[tuple[int, str]] = []
    loader = threading.Thread(target=apache_server.load, kwargs={"requests": 300, "threads": 8, "time_limit_s": 20})
    bodies.append((int(time.time()), apache_server.status()))
    loader.start()
    for _ in range(3):
        time.sleep(0.3)
        bodies.append((int(time.time()), apache_server.status()))
    loader.join(timeout=30)
    time.sleep(1.0)
    bodies.append((int(time.time()), apache_server.status()))
    poll.write_text("".join(f"# ts={ts}\n{body}" for ts, body in bodies))
    table = apache_status.read(poll)["web_status"]
    assert table.num_rows == len(bodies)
    accesses = table["total_accesses"].to_pylist()
    assert accesses == sorted(accesses) and accesses[-1] - accesses[0] >= 300
    for (_, body), row in zip(bodies, table.to_pylist(), strict=True):
        board = raw_field(body, "Scoreboard")
        assert row["busy_workers"] >= 1  # the status request itself
        assert row["sb_waiting"] == board.count("_")
        assert row["max_workers"] == len(board) == apache_server.max_workers
    assert all(r is None or r >= 0 for r in table["req_per_s"].to_pylist())
    assert not any(table["restarted"].to_pylist())


def test_counter_beyond_64_bits(tmp_path):
    path = tmp_path / "status.txt"
    path.write_text(sample("2.4.71-event-single-snapshot-c50.txt").read_text().replace("Total Accesses: 609515", "Total Accesses: " + "9" * 26))
    with pytest.raises(CollectorError) as info:
        apache_status.read(path)
    assert info.value.line == 14
