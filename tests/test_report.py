"""Report pages without a browser: the seed comparison, figures against the raw files, escaping, the CLI and the statistics of compare."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
from click.testing import CliRunner

from capacity.analysis.compare import bootstrap_ratio, mann_whitney, match_labels, rate_ratio, ratio_from_summaries
from capacity.cli import main
from capacity.report.render import md_escape
from capacity.report.run import build_run_report
from capacity.store import Store
from tests import report_fixtures
from tests.report_fixtures import SAMPLES, XSS_HOST, XSS_IMG, XSS_MD, XSS_SCRIPT, jtl_labels

# the shared session fixtures (store and written pages)
report_store = report_fixtures.report_store
reports = report_fixtures.reports


def _overall(doc: dict) -> dict[str, dict]:
    return {o["metric"]: o for o in doc["overall"]}


def test_compare_json_reproduces_the_open_edx_seed(report_store):
    result = CliRunner().invoke(main, ["compare", "openedx-native", "openedx-devstack", "--json", "--store", str(report_store)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["runs"] == ["openedx-native", "openedx-devstack"]
    for o in doc["overall"]:
        assert {"metric", "values", "ratio", "ratio_lo", "ratio_hi", "significant"} <= set(o)
    o = _overall(doc)
    # seed 004, figures 6.13/6.14 and section 6.7
    assert o["count"]["values"] == [8174, 1030]
    assert o["transactions_per_hour"]["values"] == [8174, 1030]
    assert round(o["count"]["ratio"], 1) == 7.9 and o["count"]["significant"] is True
    assert o["count"]["ratio_lo"] > 7 and o["count"]["ratio_hi"] < 9
    assert abs(o["mean_ms"]["values"][0] - 24316) < 1 and abs(o["mean_ms"]["values"][1] - 33315) < 1
    assert round(100 * (1 - o["mean_ms"]["ratio"])) == 27 and o["mean_ms"]["significant"] is True
    assert o["throughput_rps"]["values"] == [4.01031, 0.28285]
    assert o["users"]["values"] == [100, 10]
    assert o["p95_ms"]["values"] == [None, None] and o["p95_ms"]["significant"] is None
    # top screens: native's CPU is busier; memory in use (cache included) close to 100 % in both
    assert o["cpu_busy_pct"]["values"][0] > 95 and 60 < o["cpu_busy_pct"]["values"][1] < 75
    assert all(v > 90 for v in o["mem_in_use_pct"]["values"])
    labels = {tuple(lab["labels"]): lab for lab in doc["labels"]}
    home = labels[("309 /", "505 /")]
    assert home["count"] == [467, 60] and home["mean_ms"] == [31471, 45720]


def test_compare_page_states_the_findings(reports):
    md = (reports / "compare-openedx" / "index.md").read_text(encoding="utf-8")
    assert "openedx-native completed 7.9x the transactions of openedx-devstack in the same hour \\(8,174 vs 1,030" in md
    assert "Mean response of openedx-native is 27 % lower than openedx-devstack" in md
    assert "only summaries" in md
    html = (reports / "compare-openedx" / "index.html").read_text(encoding="utf-8")
    assert "8,174" in html and "1,030" in html
    assert "No time series in these runs" in html


def test_run_report_matches_the_raw_jtl(report_store):
    page = build_run_report(Store.open(report_store), "jmeter-ramp20")
    counts = jtl_labels(SAMPLES / "jmeter-ramp20" / "results.jtl")
    summary = {i["key"]: i for i in page["summary"]}
    assert summary["requests"]["value"] == sum(n for label, n in counts.items() if not label.startswith("TX "))
    assert summary["users"]["value"] == 20
    table = next(b for s in page["sections"] if s["id"] == "labels" for b in s["blocks"] if b["type"] == "table")
    shown = {r["label"]: r["count"] for r in table["rows"] if r["kind"] != "total"}
    assert shown == counts
    ids = {s["id"]: s for s in page["sections"]}
    assert any(b["type"] == "figure" for b in ids["timeline"]["blocks"])
    assert "No process samples" in ids["processes"]["note"]
    assert "No AWStats" in ids["web-traffic"]["note"]
    assert ids["provenance"]["blocks"][0]["rows"][0]["sha256"] == Store.open(report_store).run("jmeter-ramp20")["files"][0]["sha256"]


def test_summary_only_run_says_what_is_missing(reports):
    html = (reports / "run-openedx-native" / "index.html").read_text(encoding="utf-8")
    assert "No time series in this run" in html
    assert "percentiles cannot be combined" in html
    assert "gunicorn" in html  # top processes from the top screen
    assert html.count('class="chart"') == 1  # only the processes chart: no empty charts


def test_pages_escape_input_text(reports):
    html = (reports / "run-hostile" / "index.html").read_text(encoding="utf-8")
    md = (reports / "run-hostile" / "index.md").read_text(encoding="utf-8")
    for bad in (XSS_SCRIPT, XSS_IMG, XSS_HOST, "<img src=x", "<img src=y", "<b>x</b>", "onerror=\"window"):
        assert bad not in html
        if "<" in bad:  # in Markdown only a tag can become markup
            assert bad not in md
    assert "<" not in md.replace("&lt;", "")
    assert "&lt;script&gt;document.title=" in html
    assert "&lt;script&gt;document.title=" in md
    # Markdown: no link, emphasis, table cell break or code span survives
    assert "[click me](javascript" not in md and "**bold**" not in md and not re.search(r"(?<!\\)\| pipe", md)
    assert md_escape(XSS_MD) == "\\[click me\\]\\(javascript:alert\\(1\\)\\) \\*\\*bold\\*\\* \\| pipe \\`code\\` &lt;b&gt;x&lt;/b&gt;"
    # chart JSON embedded in script elements never closes the element
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S):
        assert "<" not in block


def test_index_links_every_page(reports):
    index = (reports / "index.html").read_text(encoding="utf-8")
    pages = sorted(p.parent.name for p in reports.glob("*/page.json"))
    assert len(pages) == 8  # 5 runs, 2 comparisons, 1 plan
    for name in pages:
        assert f'href="./{name}/index.html"' in index
    assert "](./compare-openedx/index.md)" in (reports / "index.md").read_text(encoding="utf-8")


def test_plan_page_has_tables_assumptions_and_intervals(reports):
    html = (reports / "plan" / "index.html").read_text(encoding="utf-8")
    assert "Instance types: aws" in html and "Assumptions and uncertainty" in html
    assert "capacity grows linearly with vCPU" in html
    assert "95 % lo" in html


def test_cli_errors(report_store, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["report", "jmeter-ramp20", "--store", str(report_store)]).exit_code == 2
    r = runner.invoke(main, ["report", "nope", "-o", str(tmp_path / "x"), "--store", str(report_store)])
    assert r.exit_code == 3 and "no run 'nope'" in r.output
    assert runner.invoke(main, ["compare", "jmeter-ramp20", "--store", str(report_store)]).exit_code == 2


def test_bootstrap_and_mann_whitney_tell_noise_from_differences():
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(5, 0.5, 2000), rng.lognormal(5, 0.5, 2000)
    lo, hi = bootstrap_ratio(a, b, "mean_ms")
    assert lo < 1 < hi and mann_whitney(a, b) > 0.01
    c = b * 1.3
    lo, hi = bootstrap_ratio(c, b, "p95_ms")
    assert 1.1 < lo < 1.3 < hi < 1.5 and mann_whitney(c, b) < 1e-6


def test_rate_and_summary_ratios():
    r = rate_ratio(8174, 3600, 1030, 3600)
    assert abs(r["ratio"] - 8174 / 1030) < 1e-9 and r["lo"] < r["ratio"] < r["hi"] and r["p_value"] < 1e-10
    same = rate_ratio(100, 10, 100, 10)
    assert same["lo"] < 1 < same["hi"]
    s = ratio_from_summaries(100.0, 30.0, 50, 100.0, 30.0, 50)
    assert s["ratio"] == 1 and s["lo"] < 1 < s["hi"] and s["p_value"] > 0.9


def test_labels_match_without_sampler_numbers():
    pairs = match_labels(["309 /", "313 /register", "325 /", "324 /user_api/v1/account/registrati"],
                         ["505 /", "572 /register", "606 /user_api/v1/account/regist", "607 /"])
    got = {a: b for a, b, _ in pairs if a}
    assert got == {"309 /": "505 /", "313 /register": "572 /register", "325 /": "607 /",
                   "324 /user_api/v1/account/registrati": "606 /user_api/v1/account/regist"}


def test_report_of_a_large_run_bins_its_charts(tmp_path):
    """Many samples: aggregated in DuckDB and charts binned (the 10 s budget itself is measured by `make bench`)."""
    n = 400_000
    rng = np.random.default_rng(7)
    start = 1_800_000_000_000
    ts = start + np.sort(rng.integers(0, 3_600_000, n))
    users = (1 + (ts - start) // 600_000) * 10
    table = pa.table({
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")), "elapsed_ms": rng.lognormal(4, 0.6, n) * (1 + users / 100),
        "label": pa.array(np.array([f"L{i:02d}" for i in range(20)])[rng.integers(0, 20, n)]), "success": rng.random(n) > 0.01,
        "row_kind": pa.array(["sample"] * n), "active_users": users, "source": pa.array(["synthetic"] * n),
    })
    store = Store.open(tmp_path / "store", create=True)
    with store.locked():
        store.write_batches("big", [("requests", table)], {"path": "synthetic", "sha256": "0" * 64, "collector": "synthetic"})
    page = build_run_report(store, "big")
    fig = next(b["figure"] for s in page["sections"] if s["id"] == "timeline" for b in s["blocks"] if b["type"] == "figure")
    assert max(len(t["x"]) for t in fig["data"]) <= 3600
    assert {i["key"]: i for i in page["summary"]}["requests"]["value"] == n


def test_written_files(reports: Path):
    for name in ("run-jmeter-steps", "compare-openedx", "plan"):
        folder = reports / name
        assert (folder / "index.html").is_file() and (folder / "index.md").is_file()
        assert (folder / "assets" / "plotly.min.js").stat().st_size > 1_000_000
        assert "https://" not in (folder / "index.html").read_text(encoding="utf-8")
