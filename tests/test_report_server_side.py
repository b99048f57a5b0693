"""The run report of a run with server-side data: server panels, top processes, AWStats traffic and limits hit, traced to the raw files."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from capacity.cli import main
from tests import server_run
from tests.browser import CHROMIUM, visit
from tests.server_run import AWSTATS, BEANCOUNTERS, HOST, RUN, SHIFTED, TOP_PROCS, apache_snapshots, shifted_tables

server_store = server_run.server_store
has_chromium = bool(shutil.which("chromium") or os.path.exists(CHROMIUM))


@pytest.fixture(scope="module")
def page_dir(server_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("server-report") / "run"
    r = CliRunner().invoke(main, ["report", RUN, "-o", str(out), "--store", str(server_store), "--clock-offset", "0", "--slo", "errors<25%"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def html(page_dir) -> str:
    return (page_dir / "index.html").read_text(encoding="utf-8")


def figures(html: str) -> dict[str, dict]:
    return {m.group(1): json.loads(m.group(2)) for m in
            re.finditer(r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>', html, re.S)}


def tables(html: str) -> list[list[list[str]]]:
    """Every table as rows of cell texts (header row first)."""
    out = []
    for t in re.findall(r"<table.*?</table>", html, re.S):
        rows = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)] for r in re.findall(r"<tr>(.*?)</tr>", t, re.S)]
        out.append(rows)
    return out


def table_with(html: str, caption: str) -> list[list[str]]:
    found = [t for t in re.findall(r"<table.*?</table>", html, re.S) if f"<caption>{caption}</caption>" in t]
    assert len(found) == 1, caption
    return tables(found[0])[0]


def host_rows() -> pd.DataFrame:
    return pd.concat([shifted_tables(s)["host_metrics"].to_pandas() for s in SHIFTED if "host_metrics" in shifted_tables(s)], ignore_index=True)


def per_second_max(rows: pd.DataFrame) -> float:
    """Largest mean over 1-second bins (the report's bins for a run of under 25 minutes)."""
    s = rows.set_index("ts")["value"]
    return float(s.groupby(s.index.floor("1s")).mean().max())


def timeline_traces(html: str) -> dict[str, dict[str, list]]:
    fig = figures(html)["chart-timeline-1"]
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    out: dict[str, dict[str, list]] = {}
    for t in fig["data"]:
        axis = t.get("yaxis", "y")
        row = 1 if axis == "y" else int(axis[1:])
        out.setdefault(titles[row - 1], {})[t["name"]] = t["y"]
    return out


def test_server_panels_are_present_and_traceable(html):
    assert "1-second bins" in html and "Server clocks shifted by 0 s (given)" in html
    traces = timeline_traces(html)
    for title in ("CPU busy (%)", "Memory used (% of RAM)", "Load average (1 min) (tasks)", "Busy web workers (workers)", "Network (bytes/s)"):
        assert title in traces and all(any(v is not None for v in ys) for ys in traces[title].values()), title
    rows = host_rows()
    agg = rows[rows["device"].isna() | rows["device"].isin(["all", "-1"])]

    def top(values: list) -> float:
        return max(v for v in values if v is not None)

    busy = max(b for _, b in apache_snapshots())
    assert top(traces["Busy web workers (workers)"]["busy workers"]) == busy == 27
    cpu = agg[agg["metric"] == "cpu.busy_pct"].groupby("ts", as_index=False)["value"].mean()
    assert top(traces["CPU busy (%)"]["CPU busy"]) == pytest.approx(per_second_max(cpu))
    assert top(traces["Load average (1 min) (tasks)"]["load 1m"]) == pytest.approx(per_second_max(agg[agg["metric"] == "load.1m"]))
    # sar writes mem.used_pct; top writes used and total bytes, of which the report takes the ratio
    used = agg[agg["metric"].isin(["mem.used_pct", "mem.used_bytes", "mem.total_bytes"])].pivot_table(index="ts", columns="metric", values="value")
    pct = used["mem.used_pct"].fillna(100 * used["mem.used_bytes"] / used["mem.total_bytes"]).rename("value").reset_index()
    assert top(traces["Memory used (% of RAM)"]["memory used"]) == pytest.approx(per_second_max(pct))
    # no `all` interface in sar -n DEV: the report sums the interfaces except the loopback
    rx = rows[(rows["metric"] == "net.rx_bytes_per_s") & (rows["device"] != "lo")].groupby("ts", as_index=False)["value"].sum()
    assert top(traces["Network (bytes/s)"]["received"]) == pytest.approx(per_second_max(rx))


def test_step_table_shows_server_means(html):
    steps = table_with(html, "Load levels (steps) detected in the run")
    header = steps[0]
    busy = [r[header.index("busy workers")] for r in steps[1:]]
    assert len(busy) == 4 and all(v != "–" for v in busy)
    assert all(r[header.index("CPU %")].endswith("%") for r in steps[1:])


def test_top_processes_lists_the_top_command_of_the_top_file(html):
    # raw text: every frame after the first (since-boot) one, %CPU summed per user and command, averaged over frames
    frames: list[dict[tuple[str, str], float]] = []
    for line in TOP_PROCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("top - "):
            frames.append({})
        parts = line.split(None, 11)
        if len(parts) == 12 and parts[0].isdigit():
            key = (parts[1], parts[11])
            frames[-1][key] = frames[-1].get(key, 0.0) + float(parts[8])
    kept = frames[1:]
    keys = {k for f in kept for k in f}
    means = {k: np.mean([f[k] for f in kept if k in f]) for k in keys}
    (user, command), cpu = max(means.items(), key=lambda kv: kv[1])
    by_cpu = table_with(html, "By CPU")
    header, first = by_cpu[0], by_cpu[1]
    assert first[header.index("command")] == command == "apache2 -f monsamp-dev.conf -DFOREGROUND"
    assert first[header.index("user")] == user and first[header.index("host")] == HOST
    assert first[header.index("mean CPU %")] == f"{cpu:.1f} %"


def test_web_traffic_shows_the_days_hits(html):
    lines = AWSTATS.read_text(encoding="utf-8").splitlines()
    day = lines[lines.index("BEGIN_DAY 1") + 1].split()
    date, pages, hits = day[0], int(day[1]), int(day[2])
    by_day = table_with(html, "By day")
    header = by_day[0]
    row = by_day[1]
    assert row[header.index("day")] == f"{date[:4]}-{date[4:6]}-{date[6:]}"
    assert row[header.index("hits")] == f"{hits:,}" and row[header.index("pages")] == f"{pages:,}"
    hours = table_with(html, "By hour of day")
    assert sum(int(r[hours[0].index("hits")].replace(",", "")) for r in hours[1:]) == hits


def test_limits_hit_lists_tcpsndbuf_with_its_failcnt(html):
    raw = next(line.split() for line in BEANCOUNTERS.read_text(encoding="utf-8").splitlines() if "tcpsndbuf" in line)
    hit = table_with(html, "Resources whose limit refused allocations (failcnt &gt; 0)")
    header = hit[0]
    assert len(hit) == 2
    assert hit[1][header.index("resource")] == "tcpsndbuf" and hit[1][header.index("failcnt")] == f"{int(raw[-1]):,}"
    assert hit[1][header.index("max held")] == f"{int(raw[-4]):,}"
    assert "busy workers reached the maximum (27 of 27)" in html


@pytest.mark.skipif(not has_chromium, reason="Debian `chromium` is not installed (make apt installs it)")
def test_page_in_chromium_draws_every_chart(page_dir):
    probes = {
        "charts": "document.querySelectorAll('.chart').length",
        "rendered": "Array.from(document.querySelectorAll('.chart')).filter(c => { const s = c.querySelector('svg.main-svg');"
                    " return s && s.getBoundingClientRect().width > 0 && c.querySelectorAll('.trace, .point, .scatterlayer path').length > 0; }).length",
        "subplots": "document.querySelectorAll('#chart-timeline-1 .subplot').length",
    }
    v = visit((page_dir / "index.html").resolve().as_uri(), probes)
    assert v.errors == [] and v.console == []
    assert v.values["charts"] >= 5 and v.values["rendered"] == v.values["charts"]
    assert v.values["subplots"] == 9  # users, throughput, response, errors, CPU, memory, load, workers, network
    assert all(u.startswith(page_dir.resolve().as_uri()) for u in v.requests)
