"""`capacity collect host` (psutil) checked against /proc, and the sampler's interval arithmetic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from capacity.schema import METRICS
from capacity.store import Store
from collectors.psutil_sampler import CPU_MODES, Sampler, cpu_percentages

ROOT = Path(__file__).resolve().parent.parent


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0]) * 1024
    raise KeyError(key)


def _proc_cpus() -> int:
    return sum(1 for line in Path("/proc/stat").read_text().splitlines() if line.startswith("cpu") and line[3:4].isdigit())


def _collect(tmp_path: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "capacity", "collect", "host", "--run", "h", "--store", str(tmp_path / "store"),
           "--log", str(tmp_path / "polls.jsonl"), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_collect_host_matches_proc(tmp_path):
    proc = _collect(tmp_path, "--interval", "0.5", "--duration", "3", "--processes", "5", "--flush-every", "1")
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err
    assert "finished" in out and "0 gap(s)" in out
    store = Store.open(tmp_path / "store")
    hm = store.table("host_metrics", ["h"])
    oks = [json.loads(line) for line in (tmp_path / "polls.jsonl").read_text().splitlines()]
    assert 5 <= len(oks) <= 7
    assert pc.count_distinct(hm["ts"]).as_py() == len(oks)
    assert len(store.catalog()["runs"]["h"]["files"]) >= 2  # flushed as it went, not only at the end
    assert set(pc.unique(hm["metric"]).to_pylist()) <= set(METRICS)

    def values(metric: str, device: str | None = None) -> list[float]:
        mask = pc.equal(hm["metric"], metric)
        if device is not None:
            mask = pc.and_(mask, pc.equal(hm["device"], device))
        return hm.filter(mask)["value"].to_pylist()

    assert set(values("mem.total_bytes")) == {float(_meminfo("MemTotal"))}
    assert set(values("swap.total_bytes")) == {float(_meminfo("SwapTotal"))}
    cpus = _proc_cpus()
    assert set(values("cpu.count")) == {float(cpus)}
    cpu_devices = set(hm.filter(pc.equal(hm["metric"], "cpu.user_pct"))["device"].to_pylist())
    assert cpu_devices == {str(i) for i in range(cpus)} | {"all"}
    for metric in ("cpu.user_pct", "cpu.system_pct", "cpu.iowait_pct", "cpu.idle_pct", "cpu.steal_pct", "cpu.busy_pct"):
        assert all(0.0 <= v <= 100.0 for v in values(metric)), metric
    # Modes without guest (counted inside user/nice by the kernel) sum to 100 % on every device and sample.
    modes = ["cpu.user_pct", "cpu.nice_pct", "cpu.system_pct", "cpu.iowait_pct", "cpu.irq_pct", "cpu.softirq_pct",
             "cpu.steal_pct", "cpu.idle_pct", "cpu.guest_pct", "cpu.guest_nice_pct"]
    sums = hm.filter(pc.is_in(hm["metric"], pa.array(modes))).group_by(["ts", "device"]).aggregate([("value", "sum")])
    assert all(v == pytest.approx(100.0, abs=1e-6) for v in sums["value_sum"].to_pylist())
    for busy, idle, iowait in zip(values("cpu.busy_pct", "all"), values("cpu.idle_pct", "all"), values("cpu.iowait_pct", "all"), strict=True):
        assert busy == pytest.approx(100.0 - idle - iowait)
    used, available, total = values("mem.used_bytes"), values("mem.available_bytes"), values("mem.total_bytes")
    assert all(u == pytest.approx(t - a) for u, a, t in zip(used, available, total, strict=True))
    load = values("load.1m")
    proc_load = float(Path("/proc/loadavg").read_text().split()[0])
    assert all(abs(v - proc_load) < 5 for v in load)
    net_devices = set(hm.filter(pc.equal(hm["metric"], "net.rx_bytes_per_s"))["device"].to_pylist())
    assert "lo" not in net_devices and "all" in net_devices
    assert all(v >= 0 for v in values("net.rx_bytes_per_s") + values("disk.read_bytes_per_s") + values("disk.write_bytes_per_s"))
    assert min(values("proc.count")) > 10 and min(values("tasks.running")) >= 1  # the sampler itself is running

    processes = store.table("processes", ["h"])
    per_sample = processes.group_by("ts").aggregate([("pid", "count")])["pid_count"].to_pylist()
    assert per_sample and max(per_sample) <= 5
    assert all(v >= 0 for v in processes["cpu_pct"].to_pylist())
    host = store.catalog()["runs"]["h"]["hosts"][os.uname().nodename]
    assert host["cpu_count"] == cpus and host["memory_bytes"] == _meminfo("MemTotal")


def test_sigterm_flushes_what_is_buffered(tmp_path):
    proc = _collect(tmp_path, "--interval", "0.3", "--duration", "60", "--flush-every", "300")
    log = tmp_path / "polls.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in out
    polled = {json.loads(line)["ts"] for line in log.read_text().splitlines()}
    stored = Store.open(tmp_path / "store").table("host_metrics", ["h"])["ts"].to_pylist()
    assert {t.isoformat(timespec="milliseconds") for t in stored} == polled


def test_cpu_percentages_follow_sar_and_drop_backward_counters():
    before = dict.fromkeys(CPU_MODES, 0.0)
    after = {**before, "user": 6.0, "guest": 1.0, "system": 2.0, "idle": 1.0, "iowait": 1.0}
    pct = cpu_percentages(before, after)
    assert pct["cpu.user_pct"] == pytest.approx(50.0)  # (6 - 1 guest) / 10
    assert pct["cpu.guest_pct"] == pytest.approx(10.0)
    assert pct["cpu.busy_pct"] == pytest.approx(80.0)
    assert cpu_percentages(after, before) is None
    assert cpu_percentages(before, before) is None


def test_first_sample_already_has_rates():
    sampler = Sampler(processes=3)
    time.sleep(0.2)
    tables = sampler.sample()
    metrics = set(tables["host_metrics"]["metric"].to_pylist())
    assert {"cpu.busy_pct", "net.rx_bytes_per_s", "mem.available_bytes", "load.15m", "proc.count"} <= metrics
    assert 1 <= tables["processes"].num_rows <= 3
