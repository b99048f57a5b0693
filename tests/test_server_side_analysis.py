"""The analysis parts only server-side data exercises: one timeline, per-step server means, the workers limit, limits hit, binding constraint.

Every expected value is computed here from the raw files (or the collectors'
rows of them, moved by the fixture's constant shift), never from the code under test.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from capacity.analysis.align import timeline
from capacity.analysis.model import fit_capacity
from capacity.analysis.slo import SLO, saturation_causes
from capacity.analysis.steps import steps_for_run
from capacity.cli import main
from capacity.store import Store
from tests import server_run
from tests.server_run import BEANCOUNTERS, HOST, JTL, MAX_WORKERS, RUN, SAR_MIDNIGHT, SHIFT_S, SHIFTED, apache_snapshots, shifted_tables

server_store = server_run.server_store
TX_MESSAGE = "Number of samples in transaction"


@pytest.fixture(scope="module")
def con(server_store):
    c = Store.open(server_store).connect([RUN])
    yield c
    c.close()


@pytest.fixture(scope="module")
def steps(con):
    table, notes = steps_for_run(con, RUN, clock_offset_s=0)
    assert notes["clock_offset_s"] == 0
    return table


def sar_cpu_all(path, column: str, east_minutes: int) -> dict[pd.Timestamp, float]:
    """`column` of the `all` rows of a sar CPU section, keyed by UTC time (the file shows a zone `east_minutes` east of UTC)."""
    out: dict[pd.Timestamp, float] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    day = dt.date.fromisoformat("2026-11-21")
    index = None
    previous = None
    for line in lines[1:]:
        parts = line.split()
        if len(parts) > 2 and parts[1] == "CPU":
            index = parts.index(column)
        elif index is not None and len(parts) > index and parts[1] == "all" and parts[0][0].isdigit():
            clock = dt.time.fromisoformat(parts[0])
            if previous is not None and clock < previous:
                day += dt.timedelta(days=1)  # the records cross local midnight
            previous = clock
            local = dt.datetime.combine(day, clock)
            out[pd.Timestamp(local - dt.timedelta(minutes=east_minutes), tz="UTC")] = float(parts[index])
        elif not parts:
            index = None
    return out


def raw_jtl_samples() -> pd.DataFrame:
    jtl = pd.read_csv(JTL)
    return jtl[~jtl["responseMessage"].fillna("").str.startswith(TX_MESSAGE)]


def busy_series() -> pd.Series:
    snaps = apache_snapshots()
    return pd.Series([b for _, b in snaps], index=pd.to_datetime([t for t, _ in snaps], unit="s", utc=True), dtype=float)


def host_rows() -> pd.DataFrame:
    """Every host_metrics row the fixture stored (aggregate devices only), from the collectors' reading of the raw files."""
    frames = [shifted_tables(s)["host_metrics"].to_pandas() for s in SHIFTED if "host_metrics" in shifted_tables(s)]
    rows = pd.concat(frames, ignore_index=True)
    return rows[rows["device"].isna() | rows["device"].isin(["all", "-1"])]


def test_timeline_puts_every_table_on_one_grid(con):
    tl = timeline(con, RUN, interval_s=10, offset_s=0)
    assert (tl.index.as_unit("ms").asi8 % 10_000 == 0).all()
    for col in ("users", "rps", "p95_ms", f"{HOST}/cpu.busy_pct", f"{HOST}/cpu.user_pct", f"{HOST}/mem.used_bytes", f"{HOST}/load.1m",
                f"{HOST}/busy_workers"):
        assert col in tl.columns and tl[col].notna().any(), col
    b = pd.Timestamp("2026-11-21 23:37:50", tz="UTC")
    end = b + pd.Timedelta(seconds=10)
    # sar %user of the `all` rows: displayed 00:00:02-00:00:10 at +00:35, i.e. 23:25:02-10 UTC, moved by SHIFT_S
    user = {t + pd.Timedelta(seconds=SHIFT_S): v for t, v in sar_cpu_all(SAR_MIDNIGHT, "%user", 35).items()}
    in_bin = [v for t, v in user.items() if b <= t < end]
    assert len(in_bin) == 9
    assert tl.loc[b, f"{HOST}/cpu.user_pct"] == pytest.approx(np.mean(in_bin))
    busy = busy_series()
    assert tl.loc[b, f"{HOST}/busy_workers"] == pytest.approx(busy[(busy.index >= b) & (busy.index < end)].mean())
    samples = raw_jtl_samples()
    ms = b.value // 10**6
    inside = samples[(samples["timeStamp"] >= ms) & (samples["timeStamp"] < ms + 10_000)]
    assert tl.loc[b, "rps"] == pytest.approx(len(inside) / 10)
    assert tl.loc[b, "error_pct"] == pytest.approx(100 * (~inside["success"]).sum() / len(inside))
    assert tl.loc[b, "users"] == pytest.approx(22.0) and set(inside["allThreads"]) == {22}


def test_timeline_offset_moves_server_columns_only(con):
    base = timeline(con, RUN, interval_s=10, offset_s=0)
    moved = timeline(con, RUN, interval_s=10, offset_s=20)
    col = f"{HOST}/busy_workers"
    b = pd.Timestamp("2026-11-21 23:38:20", tz="UTC")
    assert moved.loc[b, col] == pytest.approx(base.loc[b - pd.Timedelta(seconds=20), col])
    assert moved.loc[b, "rps"] == base.loc[b, "rps"]


def test_steps_carry_the_means_of_the_server_readings_inside_them(steps):
    assert list(steps["users"]) == [7, 12, 22, 42]
    rows = host_rows()
    cpu = rows[rows["metric"] == "cpu.busy_pct"].groupby("ts")["value"].mean()
    mem = rows[rows["metric"] == "mem.used_bytes"].set_index("ts")["value"]
    busy = busy_series()
    for _, step in steps.iterrows():
        def inside(s: pd.Series, step: pd.Series = step) -> pd.Series:
            return s[(s.index >= step["start"]) & (s.index < step["end"])]

        for col, raw in (("cpu_pct", cpu), ("mem_used_bytes", mem), ("busy_workers", busy)):
            expected = inside(raw)
            if expected.empty:
                assert pd.isna(step[col]), (step["users"], col)
            else:
                assert step[col] == pytest.approx(expected.mean()), (step["users"], col)
        assert step["max_workers"] == MAX_WORKERS
    # every step has CPU and busy workers; memory readings exist from the 12-user step on
    assert steps["cpu_pct"].notna().all() and steps["busy_workers"].notna().all() and steps["mem_used_bytes"].iloc[1:].notna().all()
    # the server's workers follow the load: more users, more busy workers
    assert steps["busy_workers"].is_monotonic_increasing


def test_fit_finds_the_workers_limit(con, steps):
    model = fit_capacity(steps, cpu_count=2, slo=SLO(error_pct=25), saturation_causes=saturation_causes(con, RUN))
    limits = {lim.constraint: lim for lim in model.limits}
    slope, intercept = np.polyfit(steps["users"], steps["busy_workers"], 1)
    workers = limits["workers"]
    assert workers.users.value == pytest.approx((MAX_WORKERS - intercept) / slope, rel=1e-6)
    assert steps["users"].max() < workers.users.value and workers.users.lo < workers.users.value < workers.users.hi
    assert "busy workers" in workers.basis
    assert any("busy workers reached the maximum" in c for c in model.as_dict()["saturation_causes"])
    without = fit_capacity(steps, cpu_count=2, slo=SLO(error_pct=25, workers=False))
    assert "workers" not in {lim.constraint for lim in without.limits}


def test_saturation_causes_name_tcpsndbuf_and_the_full_scoreboard(con):
    causes = saturation_causes(con, RUN)
    raw = {p[0]: int(p[-1]) for p in (line.split() for line in BEANCOUNTERS.read_text(encoding="utf-8").splitlines())
           if len(p) >= 6 and p[-1].isdigit() and not p[0].endswith(":")}
    failing = {k: v for k, v in raw.items() if v > 0}
    assert list(failing) == ["tcpsndbuf"]
    tcp = [c for c in causes if "tcpsndbuf" in c]
    assert len(tcp) == 1 and f"failcnt {failing['tcpsndbuf']:,}" in tcp[0] and "container 10035" in tcp[0]
    full = sum(1 for _, busy in apache_snapshots() if busy >= MAX_WORKERS)
    assert full >= 1
    workers = [c for c in causes if "busy workers" in c]
    assert workers == [f"{HOST}: busy workers reached the maximum ({MAX_WORKERS} of {MAX_WORKERS}) in {full} snapshot(s): "
                       "requests queued for a worker"]
    assert len(causes) == 2


def _fit(store_dir, *args: str) -> dict:
    r = CliRunner().invoke(main, ["fit", RUN, "--store", str(store_dir), "--clock-offset", "0", "--json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_cli_fit_names_the_binding_constraint(server_store, steps):
    cpu_slope, cpu_base = np.polyfit(steps["users"], steps["cpu_pct"], 1)
    doc = _fit(server_store, "--slo-error-pct", "25", "--slo-cpu-pct", "50")
    assert doc["max_users"]["binding"] == "cpu" and doc["max_users"]["message"].startswith("CPU saturates first")
    assert doc["max_users"]["value"] == pytest.approx((50 - cpu_base) / cpu_slope, rel=1e-6)
    assert doc["hardware"]["cpu_count"] == 2  # from the sar header `(2 CPU)`
    assert any("tcpsndbuf" in c for c in doc["saturation_causes"])
    # a looser CPU ceiling and a tighter p95: the measured 22 -> 42 user steps cross 300 ms first
    doc = _fit(server_store, "--slo-error-pct", "25", "--slo-cpu-pct", "95", "--slo-p95-ms", "300")
    assert doc["max_users"]["binding"] == "p95"
    p95 = steps.set_index("users")["p95_ms"]
    assert p95[22] <= 300 < p95[42]
    # the model's crossing, bounded by the last measured step under 300 ms and the first over it
    limit = next(lim for lim in doc["limits"] if lim["constraint"] == "p95")
    assert 22 <= limit["lo"] <= limit["value"] <= limit["hi"] <= 42 and doc["max_users"]["value"] == limit["value"]
    # the default 5 % error SLO is already broken at the smallest step (15 % errors in the raw JTL)
    samples = raw_jtl_samples()
    first = steps.iloc[0]
    lo, hi = first["start"].value // 10**6, first["end"].value // 10**6
    in_step = samples[(samples["timeStamp"] >= lo) & (samples["timeStamp"] < hi)]
    assert 100 * (~in_step["success"]).mean() > 5
    doc = _fit(server_store)
    assert doc["max_users"]["binding"] == "error_pct" and doc["max_users"]["value"] == 0


def test_auto_clock_offset_leaves_synchronised_sparse_data_alone(con):
    # The fixture's clocks agree by construction; sar and top sample in short bursts ~25 s apart.
    # Interpolating across those holes once produced a -86 s "offset" that moved CPU out of its steps.
    from capacity.analysis.align import run_offset

    offset = run_offset(con, RUN)
    assert offset.seconds == 0.0, offset.method
