"""The same metrics of the same host from two sources recorded at the same time agree.

Real sysstat (`sadc`, read back through the `sa_binary` collector) and `capacity collect host`
(psutil) sample this machine side by side for a few seconds while a busy loop loads one core.

Tolerances, and why:
- `cpu.busy_pct` (device `all`): the two tools' 1 s windows start at different instants, so single
  seconds may differ; their means over the run agree within 5 percentage points.
- `mem.available_bytes`: both read MemAvailable; matched within 0.6 s, the median difference is
  within 64 MiB (other processes allocating between the two reads can move single pairs more).
- `load.1m`: both read /proc/loadavg (updated every 5 s); matched samples agree within 0.15.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from capacity.store import Store

SADC = Path("/usr/lib/sysstat/sadc")
SECONDS = 8


def _metric(frame: pd.DataFrame, source: str, metric: str, device: str | None = None) -> pd.Series:
    rows = frame[(frame["source"] == source) & (frame["metric"] == metric)]
    if device is not None:
        rows = rows[rows["device"] == device]
    return rows.set_index("ts")["value"].sort_index()


def _matched(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    left = a.rename("a").reset_index()
    right = b.rename("b").reset_index()
    return pd.merge_asof(left, right, on="ts", direction="nearest", tolerance=pd.Timedelta("600ms")).dropna()


def test_sar_and_psutil_agree_on_the_same_host(tmp_path: Path) -> None:
    assert SADC.exists() and shutil.which("sadf"), "sysstat missing: `make test` installs it (requirements-apt.txt)"
    store = tmp_path / "store"
    sa = tmp_path / "sa"
    busy = subprocess.Popen([sys.executable, "-c", f"import time\nend = time.time() + {SECONDS + 5}\nwhile time.time() < end: pass"])
    try:
        # sadc runs a little longer than the collector, whose Python start-up takes a second or two
        sadc = subprocess.Popen([str(SADC), "1", str(SECONDS + 4), str(sa)])
        collect = subprocess.run([sys.executable, "-m", "capacity", "collect", "host", "--interval", "1", "--duration", str(SECONDS),
                                  "--run", "both", "--store", str(store)], capture_output=True, text=True, timeout=60)
        assert collect.returncode == 0, collect.stderr
        assert sadc.wait(timeout=30) == 0
    finally:
        busy.kill()
        busy.wait()
    psutil_host = Store.open(store).run("both")["hosts"][0]["name"]
    time.sleep(0.1)
    ingest = subprocess.run([sys.executable, "-m", "capacity", "ingest", str(sa), "--run", "both", "--store", str(store),
                             "--collector", "sa_binary"], capture_output=True, text=True, timeout=60)
    assert ingest.returncode == 0, ingest.stderr
    frame = Store.open(store).df("host_metrics", ["both"])
    assert set(frame["source"]) == {"sa_binary", "psutil_sampler"}
    assert set(frame["host"]) == {psutil_host}, "both tools name the host by its node name"

    sar_cpu = _metric(frame, "sa_binary", "cpu.busy_pct", "all")
    ps_cpu = _metric(frame, "psutil_sampler", "cpu.busy_pct", "all")
    cpu = _matched(sar_cpu, ps_cpu)
    assert len(cpu) >= SECONDS // 2, f"only {len(cpu)} matched seconds"
    assert cpu["a"].mean() == pytest.approx(cpu["b"].mean(), abs=5.0)
    # one core of os.cpu_count() kept busy by the loop shows in both
    assert min(cpu["a"].mean(), cpu["b"].mean()) >= 0.8 * 100 / os.cpu_count(), "the busy loop did not show"

    mem = _matched(_metric(frame, "sa_binary", "mem.available_bytes"), _metric(frame, "psutil_sampler", "mem.available_bytes"))
    assert len(mem) >= SECONDS // 2
    assert (mem["a"] - mem["b"]).abs().median() <= 64 * 2**20

    load = _matched(_metric(frame, "sa_binary", "load.1m"), _metric(frame, "psutil_sampler", "load.1m"))
    assert len(load) >= SECONDS // 2
    assert (load["a"] - load["b"]).abs().max() <= 0.15
