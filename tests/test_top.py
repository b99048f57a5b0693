"""top batch collector: summary lines and process tables checked against the raw text."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from collectors import registry, top_batch
from collectors.base import CollectorError

DATA = Path(__file__).parent / "data" / "top_batch"
UTC = dt.UTC


def _frames(path: Path) -> list[list[str]]:
    frames: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("top - "):
            frames.append([])
        frames[-1].append(line)
    return frames


def _metric(table: pa.Table, ts: dt.datetime, metric: str, device: str | None = None) -> float:
    rows = [r for r in table.to_pylist() if r["ts"] == ts and r["metric"] == metric and r["device"] == device]
    assert len(rows) == 1, (ts, metric, device)
    return rows[0]["value"]


def _proc(table: pa.Table, ts: dt.datetime, pid: int) -> dict:
    rows = [r for r in table.to_pylist() if r["ts"] == ts and r["pid"] == pid]
    assert len(rows) == 1, (ts, pid)
    return rows[0]


def test_every_sample_detected_by_top_only() -> None:
    for path in DATA.glob("*.txt"):
        assert [c.name for c in registry.candidates(path)] == ["top_batch"], path


def test_three_iterations_values_equal_raw_text() -> None:
    path = DATA / "top-b-3-iterations.txt"
    out = top_batch.read(path, date="2026-11-21")
    hm, procs = out["host_metrics"], out["processes"]
    frames = _frames(path)
    assert len(frames) == 3
    # Frame 1 (since boot) is dropped; frames 2 and 3 are kept.
    assert sorted({t.time().isoformat() for t in procs["ts"].to_pylist()}) == [
        frames[1][0].split()[2], frames[2][0].split()[2]]
    second = frames[1]
    hh, mm, ss = map(int, second[0].split()[2].split(":"))
    ts = dt.datetime(2026, 11, 21, hh, mm, ss, tzinfo=UTC)
    load = re.search(r"load average: ([\d.]+), ([\d.]+), ([\d.]+)", second[0])
    assert _metric(hm, ts, "load.15m") == float(load[3])
    cpu = dict((k, float(v)) for v, k in re.findall(r"([\d.]+) (\w\w)", second[2].split(":", 1)[1]))
    assert _metric(hm, ts, "cpu.user_pct", "all") == cpu["us"]
    assert _metric(hm, ts, "cpu.busy_pct", "all") == pytest.approx(100 - cpu["id"] - cpu["wa"])
    total = float(re.search(r"([\d.]+) total", second[3])[1])
    assert _metric(hm, ts, "mem.total_bytes") == pytest.approx(total * 1024 * 1024)
    avail = float(re.search(r"([\d.]+) avail", second[4])[1])
    assert _metric(hm, ts, "mem.available_bytes") == pytest.approx(avail * 1024 * 1024)
    tasks = re.search(r"(\d+) total,\s+(\d+) running", second[1])
    assert _metric(hm, ts, "tasks.running") == int(tasks[2])
    header = next(i for i, ln in enumerate(second) if ln.strip().startswith("PID"))
    for row in second[header + 1:]:
        f = row.split()
        if not f:
            continue
        p = _proc(procs, ts, int(f[0]))
        assert (p["user"], p["cpu_pct"], p["mem_pct"], p["state"], p["command"]) == (f[1], float(f[8]), float(f[9]), f[7], f[11])
        assert p["rss_bytes"] == int(f[5]) * 1024 and p["vsz_bytes"] == int(f[4]) * 1024
    meta = json.loads(hm.schema.metadata[b"host_info"])
    assert meta["host"] == "top-b-3-iterations"


def test_keep_first_and_zone() -> None:
    path = DATA / "top-b-3-iterations.txt"
    out = top_batch.read(path, date="2026-11-21", tz="Europe/Berlin", keep_first=True)
    first = _frames(path)[0][0].split()[2]
    hh, mm, ss = map(int, first.split(":"))
    # Berlin is UTC+1 in November.
    assert min(out["processes"]["ts"].to_pylist()) == dt.datetime(2026, 11, 21, hh - 1, mm, ss, tzinfo=UTC)


def test_de_DE_comma_decimals_and_translated_labels() -> None:
    path = DATA / "top-b-de_DE-comma-decimal-translated.txt"
    out = top_batch.read(path, date="2026-11-21")
    second = _frames(path)[1]
    ts = dt.datetime.combine(dt.date(2026, 11, 21), dt.time.fromisoformat(second[0].split()[2]), UTC)
    load = re.search(r"load average: (\d+,\d+), (\d+,\d+), (\d+,\d+)", second[0])
    assert _metric(out["host_metrics"], ts, "load.1m") == float(load[1].replace(",", "."))
    si = re.search(r"(\d+,\d+) si", second[2])[1]
    assert _metric(out["host_metrics"], ts, "cpu.softirq_pct", "all") == float(si.replace(",", "."))
    free = re.search(r"(\d+,\d+) free", second[3])[1]
    assert _metric(out["host_metrics"], ts, "mem.free_bytes") == pytest.approx(float(free.replace(",", ".")) * 2**20)
    row = second[next(i for i, ln in enumerate(second) if "BEFEHL" in ln) + 1].split()
    p = _proc(out["processes"], ts, int(row[0]))
    assert p["cpu_pct"] == float(row[8].replace(",", ".")) and p["command"] == row[11]
    m, s = row[10].split(":")
    assert p["cpu_time_s"] == pytest.approx(int(m) * 60 + float(s))


def test_threads_mode_has_no_task_counts() -> None:
    out = top_batch.read(DATA / "top-b-H-threads.txt", date="2026-11-21")
    metrics = set(out["host_metrics"]["metric"].to_pylist())
    assert "tasks.total" not in metrics and "cpu.user_pct" in metrics
    frames = _frames(DATA / "top-b-H-threads.txt")[1:]
    raw_rows = sum(sum(1 for ln in f[7:] if ln.strip()) for f in frames)
    assert out["processes"].num_rows == raw_rows


def test_full_command_lines_keep_spaces() -> None:
    path = DATA / "top-b-c-w512-full-command-lines.txt"
    out = top_batch.read(path, date="2026-11-21")
    raw = [ln for ln in _frames(path)[1] if "ab -q -r" in ln][0]
    pid = int(raw.split()[0])
    command = raw.split(None, 11)[11]
    assert " " in command
    assert [p["command"] for p in out["processes"].to_pylist() if p["pid"] == pid][0] == command


def test_openedx_native_terminal_screen() -> None:
    out = top_batch.read(DATA / "top-terminal-screen-openedx-native.txt", date="2019-03-14", tz="Europe/Paris")
    ts = dt.datetime(2019, 3, 14, 16, 22, 23, tzinfo=UTC)  # 17:22:23 CET
    hm = out["host_metrics"]
    assert _metric(hm, ts, "load.1m") == 9.78
    assert _metric(hm, ts, "tasks.zombie") == 10
    assert _metric(hm, ts, "mem.total_bytes") == 7980484 * 1024
    assert _metric(hm, ts, "swap.used_bytes") == 1128684 * 1024
    assert _metric(hm, ts, "cpu.busy_pct", "all") == pytest.approx(100.0)
    p = _proc(out["processes"], ts, 26788)
    assert (p["user"], p["cpu_pct"], p["rss_bytes"], p["command"]) == ("www-data", 21.9, 340532 * 1024, "gunicorn")
    assert p["cpu_time_s"] == pytest.approx(21 * 60 + 53.62)
    assert out["processes"].num_rows == 27


def test_openedx_devstack_misaligned_screen_and_mtime_date() -> None:
    notes: list[str] = []
    path = DATA / "top-terminal-screen-openedx-devstack-misaligned.txt"
    out = top_batch.read(path, warn=notes.append)
    assert "modification date" in notes[0]
    procs = out["processes"].to_pylist()
    python = next(p for p in procs if p["pid"] == 24635)
    assert python["cpu_pct"] == 140.6 and python["mem_pct"] == 10.5
    assert next(p for p in procs if p["pid"] == 8194)["user"] == "999"
    assert next(p for p in procs if p["pid"] == 9)["priority"] is None  # "rt"


def test_bad_inputs(tmp_path: Path) -> None:
    lines = (DATA / "top-b-3-iterations.txt").read_text().splitlines()
    bad = tmp_path / "garbage.txt"
    bad.write_text("\n".join(lines[:3] + ["garbage here"] + lines[3:]))
    with pytest.raises(CollectorError, match="expected a top summary line") as err:
        top_batch.read(bad, date="2026-11-21")
    assert err.value.line == 4
    bad_mem = tmp_path / "bad-mem.txt"
    bad_mem.write_text("\n".join(lines[:8] + [lines[8].replace(lines[8].split()[4], "12x4", 1)] + lines[9:]))
    with pytest.raises(CollectorError, match="memory amount"):
        top_batch.read(bad_mem, date="2026-11-21")
    with pytest.raises(CollectorError, match="date="):
        top_batch.read(DATA / "top-b-3-iterations.txt", date="21.11.2026")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes((lines[0] + "\nTâches: 1 total\n").encode("latin-1"))
    with pytest.raises(CollectorError, match="not UTF-8"):
        top_batch.read(latin, date="2026-11-21")
