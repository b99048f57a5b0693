"""Exact statistics against the raw file, summary combination against the Open edX seed, and the CLI contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from capacity.analysis.stats import label_stats, window_stats
from capacity.analysis.summaries import combine_summaries
from capacity.cli import main
from capacity.store import Store
from tests.test_analysis_helpers import DATA, STEP_JTL, step_run, write

SUMMARIES = {k: DATA / "jmeter_summary" / f"summary-report-openedx-{k}.csv" for k in ("native", "devstack")}


@pytest.fixture(scope="module")
def d_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store.open(tmp_path_factory.mktemp("store"), create=True)
    store.ingest(STEP_JTL, "d")
    return store


def test_label_stats_match_numpy_on_the_raw_file(d_store: Store) -> None:
    raw = pd.read_csv(STEP_JTL)
    raw = raw[raw["dataType"].notna()]
    res = label_stats(d_store.connect(["d"]), "d", apdex_t_ms=100)
    o = res["overall"]
    e = raw["elapsed"].to_numpy(float)
    assert o["count"] == len(raw) and o["errors"] == int((~raw["success"]).sum())
    assert o["p95_ms"] == pytest.approx(np.percentile(e, 95)) and o["p999_ms"] == pytest.approx(np.percentile(e, 99.9))
    assert o["std_ms"] == pytest.approx(e.std()) and o["min_ms"] == e.min()
    ok = raw["success"].to_numpy()
    assert o["apdex"] == pytest.approx((((e <= 100) & ok).sum() + 0.5 * ((e > 100) & (e <= 400) & ok).sum()) / len(e))
    nearest = label_stats(d_store.connect(["d"]), "d", method="nearest")
    assert nearest["percentile_method"] == "nearest" and nearest["overall"]["p95_ms"] in set(e)


def test_window_stats_are_exact_per_window(d_store: Store) -> None:
    w = window_stats(d_store.connect(["d"]), "d", 10)
    raw = pd.read_csv(STEP_JTL)
    raw = raw[raw["dataType"].notna()]
    first = w.iloc[3]
    lo = first["window_start"].value // 10**6
    inside = raw[(raw["timeStamp"] >= lo) & (raw["timeStamp"] < lo + 10_000)]["elapsed"]
    assert first["count"] == len(inside) and first["p95_ms"] == pytest.approx(np.percentile(inside, 95))
    assert w["count"].sum() == len(raw) and (w["percentile_method"] == "linear").all()


def _request_stats(path) -> pd.DataFrame:
    """The seed's Summary Report as `request_stats` rows (what the jmeter_summary collector writes)."""
    d = pd.read_csv(path)
    total = d["Label"] == "TOTAL"
    return pd.DataFrame({
        "label": d["Label"], "count": d["# Samples"], "row_kind": np.where(total, "total", "sample"),
        "errors": (d["# Samples"] * d["Error %"].str.rstrip("%").astype(float) / 100).round().astype(int),
        "mean_ms": d["Average"].astype(float), "min_ms": d["Min"].astype(float), "max_ms": d["Max"].astype(float),
        "std_ms": d["Std. Dev."], "throughput_rps": d["Throughput"], "source": "jmeter_summary",
    })


@pytest.mark.parametrize("kind,count,mean_s,rps", [("native", 8174, 24.316, 4.01), ("devstack", 1030, 33.315, 0.28)])
def test_openedx_seed_conclusions(tmp_path, kind: str, count: int, mean_s: float, rps: float) -> None:
    store = Store.open(tmp_path / "s", create=True)
    write(store, kind, "request_stats", pa.Table.from_pandas(_request_stats(SUMMARIES[kind]), preserve_index=False), kind)
    combined = combine_summaries(store.df("request_stats", [kind]).drop(columns="run_id")).iloc[0]
    assert combined["count"] == count and combined["mean_ms"] / 1000 == pytest.approx(mean_s, abs=0.001)
    assert combined["throughput_rps"] == pytest.approx(rps, abs=0.005) and combined["throughput_basis"] == "tool total row"
    assert combined["p95_ms"] is None and combined["percentiles"].startswith("unavailable")
    assert combined["check"] == "agrees with the tool's total row"
    without_total = combine_summaries(_request_stats(SUMMARIES[kind]).query("row_kind != 'total'")).iloc[0]
    assert without_total["throughput_rps"] >= rps and without_total["throughput_basis"].startswith("upper bound")


def test_cli_steps_fit_plan_contract(d_store: Store, tmp_path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["steps", "d", "--store", str(d_store.root), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["run"] == "d" and [s["users"] for s in doc["steps"]] == [7, 12, 22, 42]
    assert set(doc["steps"][0]) == {"users", "start", "end", "requests", "throughput_rps", "mean_ms", "p95_ms", "error_pct", "cpu_pct", "mem_used_bytes"}
    assert doc["steps"][0]["cpu_pct"] is None
    out = runner.invoke(main, ["fit", "d", "--store", str(d_store.root), "--json", "--slo-error-pct", "25", "--fit-max-users", "22", "--predict-users", "42"])
    assert out.exit_code == 0, out.output
    fit = json.loads(out.output)
    assert set(fit["usl"]) >= {"sigma", "kappa", "lambda", "n_star"} and set(fit["max_users"]) >= {"value", "lo", "hi", "binding"}
    p = fit["prediction"]["throughput_rps"]
    assert p["lo"] <= doc["steps"][-1]["throughput_rps"] <= p["hi"] and fit["warnings"]
    # a run with host data sizes instance types; CPU binds on the measured 2-core, 4 GiB server
    store = Store.open(tmp_path / "s", create=True)
    step_run(store, "syn", [10, 20, 40, 60, 80, 100], 30, rps=[10, 20, 40, 60, 80, 100], cpu=[12, 19, 33, 47, 61, 75],
             mem=[1.0e9, 1.1e9, 1.3e9, 1.5e9, 1.7e9, 1.9e9], mean_ms=[50, 50, 50, 50, 55, 60])
    store.set_host("syn", "web1", cpu_count=2, memory_bytes=4 * 1024**3)
    out = runner.invoke(main, ["plan", "--users", "1000", "--run", "syn", "--store", str(store.root), "--slo", "p95<2s", "--json",
                               "--clock-offset", "0"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)
    t2 = {t["instance_type"]: t for t in plan["instance_types"] if t["instance_type"].startswith("t2.")}
    # CPU: 5 % + 0.7 %/user of 2 cores -> 0.014 cores/user; t2.medium burst (2 vCPU, 80 %) = (1.6 - 0.1) / 0.014 users
    assert t2["t2.medium"]["users_per_server_burst"]["value"] == pytest.approx((1.6 - 0.1) / 0.014, rel=0.05)
    assert t2["t2.large"]["users_per_server_burst"]["value"] == pytest.approx(t2["t2.medium"]["users_per_server_burst"]["value"], rel=0.01)
    assert t2["t2.micro"]["users_per_server"]["value"] < t2["t2.micro"]["users_per_server_burst"]["value"]
    assert plan["users_per_vcpu"]["value"] == pytest.approx(0.8 / 0.014, rel=0.05) and plan["assumptions"]
    assert {"cpu_cores", "memory_mib", "max_concurrent_users"} <= set(plan["allocations"][0])
