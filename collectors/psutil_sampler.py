"""This machine, sampled with psutil, into `host_metrics` and `processes` (what sar and top would record).

Not a file collector (it is not in the registry): `capacity collect host`
polls a `Sampler`. Rates and CPU percentages come from deltas of psutil's
cumulative counters between two samples over the monotonic time between them
(FORMATS.md A7): the sampler takes a baseline when it is created, so its first
`sample()` already has an interval. A counter that goes down (gh #1210, a
device that vanished and came back) drops that interval for that device
instead of giving a negative rate. CPU figures follow sar: `user` and `nice`
exclude guest time, `busy = 100 - idle - iowait`. Network totals (`all`)
leave out the loopback interface, and disk totals count whole disks only
(partitions would count the same bytes twice).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from capacity.schema import conform, empty

name = "psutil_sampler"

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")
# guest and guest_nice are already inside user and nice on Linux; summing them would count them twice.
CPU_TOTAL_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# psutil status strings (its STATUS_* constants; not every one exists on every version).
STATE_LETTERS = {
    "running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "tracing-stop": "t", "zombie": "Z",
    "dead": "X", "idle": "I", "parked": "P", "waking": "W", "wake-kill": "K", "locked": "L", "waiting": "W",
}
TASK_STATES = {"R": "tasks.running", "S": "tasks.sleeping", "D": "tasks.sleeping", "I": "tasks.sleeping",
               "T": "tasks.stopped", "t": "tasks.stopped", "Z": "tasks.zombie"}
PROC_ATTRS = ["pid", "name", "username", "status", "cpu_times", "memory_info", "nice", "create_time"]
LOOPBACK = {"lo", "lo0"}
SYS_BLOCK = Path("/sys/block")


def _fields(times: Any) -> dict[str, float]:
    # By name, never by position: psutil 8 reorders the cpu_times fields.
    return {m: float(getattr(times, m, 0.0) or 0.0) for m in CPU_MODES}


def cpu_percentages(before: dict[str, float], after: dict[str, float]) -> dict[str, float] | None:
    """sar-style per-mode percentages between two cpu_times readings; None when a counter went down or nothing elapsed."""
    delta = {m: after[m] - before[m] for m in CPU_MODES}
    if any(v < 0 for v in delta.values()):
        return None
    total = sum(delta[m] for m in CPU_TOTAL_MODES)
    if total <= 0:
        return None
    pct = {
        "cpu.user_pct": max(delta["user"] - delta["guest"], 0.0),
        "cpu.nice_pct": max(delta["nice"] - delta["guest_nice"], 0.0),
        "cpu.system_pct": delta["system"],
        "cpu.iowait_pct": delta["iowait"],
        "cpu.irq_pct": delta["irq"],
        "cpu.softirq_pct": delta["softirq"],
        "cpu.steal_pct": delta["steal"],
        "cpu.guest_pct": delta["guest"],
        "cpu.guest_nice_pct": delta["guest_nice"],
        "cpu.idle_pct": delta["idle"],
    }
    out = {k: 100.0 * v / total for k, v in pct.items()}
    out["cpu.busy_pct"] = max(100.0 - out["cpu.idle_pct"] - out["cpu.iowait_pct"], 0.0)
    return out


def whole_disks(names: list[str]) -> list[str]:
    """The names that are whole block devices (not partitions, not loop or ram devices)."""
    if not SYS_BLOCK.is_dir():
        return names
    disks = {p.name for p in SYS_BLOCK.iterdir()}
    return [n for n in names if n in disks and not n.startswith(("loop", "ram"))]


class Sampler:
    """Samples this machine: a baseline at creation, then one `sample()` per interval."""

    def __init__(self, host: str | None = None, processes: int = 0) -> None:
        self.host = host or socket.gethostname()
        self.top = max(processes, 0)
        self.cpu_count = psutil.cpu_count(logical=True) or os.cpu_count() or 1
        self.memory_bytes = int(psutil.virtual_memory().total)
        self._prev: dict[str, Any] = self._counters()
        self._prev_procs: dict[tuple[int, float], float] = {}
        if self.top:
            self._process_rows(datetime.now(UTC), self._prev["mono"])

    @staticmethod
    def _counters() -> dict[str, Any]:
        disks = psutil.disk_io_counters(perdisk=True, nowrap=True) or {}
        return {
            "mono": time.monotonic(),
            "cpu": [_fields(t) for t in psutil.cpu_times(percpu=True)],
            "cpu_all": _fields(psutil.cpu_times(percpu=False)),
            "disk": {n: (c.read_bytes, c.write_bytes) for n, c in disks.items()},
            "net": {n: (c.bytes_recv, c.bytes_sent) for n, c in psutil.net_io_counters(pernic=True, nowrap=True).items()
                    if n not in LOOPBACK},
        }

    def _rates(self, before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], names: list[str],
               dt: float, metrics: tuple[str, str], rows: list[tuple[str, str | None, float]]) -> None:
        totals = [0.0, 0.0]
        complete = True
        for dev in names:
            if dev not in before:
                complete = False
                continue
            deltas = [a - b for a, b in zip(after[dev], before[dev], strict=True)]
            if any(d < 0 for d in deltas):
                complete = False
                continue
            for i, metric in enumerate(metrics):
                rows.append((metric, dev, deltas[i] / dt))
                totals[i] += deltas[i] / dt
        # A device that reset or appeared this interval would make "all" a partial sum: leave it out.
        if names and complete:
            rows.extend((metric, "all", totals[i]) for i, metric in enumerate(metrics))

    def _process_rows(self, ts: datetime, mono: float) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The top-N processes by CPU since the previous sample, and the count of tasks per state."""
        dt = mono - self._prev["mono"]
        now_epoch = time.time()
        current: dict[tuple[int, float], float] = {}
        counts: dict[str, int] = {"proc.count": 0}
        found: list[dict[str, Any]] = []
        for proc in psutil.process_iter(PROC_ATTRS, ad_value=None):
            info = proc.info
            counts["proc.count"] += 1
            state = STATE_LETTERS.get(info["status"], "?")
            if state in TASK_STATES:
                counts[TASK_STATES[state]] = counts.get(TASK_STATES[state], 0) + 1
            if not self.top:
                continue
            times = info["cpu_times"]
            if times is None:
                continue
            used = float(times.user + times.system)
            key = (info["pid"], float(info["create_time"] or 0.0))
            current[key] = used
            before = self._prev_procs.get(key)
            if before is None:
                # Started during the interval: all its CPU time falls inside it.
                span = min(dt, max(now_epoch - key[1], 0.0))
                before = 0.0
            else:
                span = dt
            mem = info["memory_info"]
            found.append({
                "ts": ts, "host": self.host, "pid": info["pid"], "user": info["username"], "command": info["name"],
                "cpu_pct": 100.0 * max(used - before, 0.0) / span if span > 0 else None,
                "mem_pct": 100.0 * mem.rss / self.memory_bytes if mem else None,
                "rss_bytes": mem.rss if mem else None, "vsz_bytes": mem.vms if mem else None,
                "shr_bytes": getattr(mem, "shared", None) if mem else None,
                "state": state, "nice": info["nice"], "cpu_time_s": used, "source": name,
            })
        self._prev_procs = current
        found.sort(key=lambda r: r["cpu_pct"] or 0.0, reverse=True)
        counts["tasks.total"] = counts["proc.count"]
        return found[: self.top], counts

    def sample(self, ts: datetime | None = None) -> dict[str, pa.Table]:
        """One sample of every metric, as conformed `host_metrics` (and `processes` when asked for)."""
        ts = ts or datetime.now(UTC)
        now = self._counters()
        dt = now["mono"] - self._prev["mono"]
        rows: list[tuple[str, str | None, float]] = [("cpu.count", None, float(self.cpu_count))]
        if dt > 0:
            per_cpu = list(zip(self._prev["cpu"], now["cpu"], strict=False))
            for index, (before, after) in enumerate(per_cpu):
                pct = cpu_percentages(before, after)
                if pct:
                    rows.extend((metric, str(index), value) for metric, value in pct.items())
            pct = cpu_percentages(self._prev["cpu_all"], now["cpu_all"])
            if pct:
                rows.extend((metric, "all", value) for metric, value in pct.items())
            self._rates(self._prev["disk"], now["disk"], whole_disks(sorted(now["disk"])), dt,
                        ("disk.read_bytes_per_s", "disk.write_bytes_per_s"), rows)
            self._rates(self._prev["net"], now["net"], sorted(now["net"]), dt, ("net.rx_bytes_per_s", "net.tx_bytes_per_s"), rows)
        mem = psutil.virtual_memory()
        swap = psutil.swap_memory()
        rows += [
            ("mem.total_bytes", None, float(mem.total)),
            # total - available whatever the psutil version (its `used` changed meaning in 7.1).
            ("mem.used_bytes", None, float(mem.total - mem.available)),
            ("mem.available_bytes", None, float(mem.available)),
            ("mem.free_bytes", None, float(mem.free)),
            ("mem.cached_bytes", None, float(getattr(mem, "cached", 0) or 0)),
            ("mem.buffers_bytes", None, float(getattr(mem, "buffers", 0) or 0)),
            ("mem.used_pct", None, 100.0 * (mem.total - mem.available) / mem.total if mem.total else 0.0),
            ("swap.total_bytes", None, float(swap.total)),
            ("swap.used_bytes", None, float(swap.used)),
            ("swap.free_bytes", None, float(swap.free)),
        ]
        rows += [(f"load.{w}", None, float(v)) for w, v in zip(("1m", "5m", "15m"), psutil.getloadavg(), strict=True)]
        procs, counts = self._process_rows(ts, now["mono"])
        rows += [(metric, None, float(n)) for metric, n in sorted(counts.items())]
        rows += [(m, None, 0.0) for m in ("tasks.running", "tasks.sleeping", "tasks.stopped", "tasks.zombie") if m not in counts]
        self._prev = now
        n = len(rows)
        host_metrics = pa.table({
            "ts": pa.array([ts] * n, pa.timestamp("ms", tz="UTC")),
            "host": pa.array([self.host] * n, pa.string()),
            "metric": pa.array([r[0] for r in rows], pa.string()),
            "device": pa.array([r[1] for r in rows], pa.string()),
            "value": pa.array([r[2] for r in rows], pa.float64()),
            "source": pa.array([name] * n, pa.string()),
        })
        out = {"host_metrics": conform(host_metrics, "host_metrics")}
        if self.top:
            columns = ["ts", "host", "pid", "user", "command", "cpu_pct", "mem_pct", "rss_bytes", "vsz_bytes", "shr_bytes",
                       "state", "nice", "cpu_time_s", "source"]
            data = {c: [p[c] for p in procs] for c in columns}
            data["ts"] = pa.array(data["ts"], pa.timestamp("ms", tz="UTC"))
            out["processes"] = conform(pa.table(data), "processes") if procs else empty("processes")
        return out
