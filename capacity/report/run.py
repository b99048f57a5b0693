"""The report page of one run: `build_run_report` gathers analysis results into page data, `render_run_report` writes it."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capacity.analysis import compare
from capacity.analysis.align import run_offset
from capacity.analysis.model import CapacityModel, fit_capacity
from capacity.analysis.slo import SLO, saturation_causes
from capacity.analysis.steps import steps_for_run
from capacity.report import figures
from capacity.report.render import now, write_page
from capacity.store import Store

MAX_POINTS = 1500
# Tables whose timestamps make the run's time axis (aggregates such as AWStats periods and limits do not).
SERIES_TABLES = ("requests", "load", "host_metrics", "web_status", "processes")
APDEX_T_MS = 500.0
LABEL_COLUMNS = [
    {"key": "label", "title": "label"}, {"key": "kind", "title": "kind"}, {"key": "count", "title": "count", "kind": "int"},
    {"key": "errors", "title": "errors", "kind": "int"}, {"key": "error_pct", "title": "error %", "kind": "pct"},
    {"key": "mean_ms", "title": "mean ms", "kind": "ms"}, {"key": "min_ms", "title": "min ms", "kind": "ms"},
    {"key": "p50_ms", "title": "p50 ms", "kind": "ms"}, {"key": "p90_ms", "title": "p90 ms", "kind": "ms"},
    {"key": "p95_ms", "title": "p95 ms", "kind": "ms"}, {"key": "p99_ms", "title": "p99 ms", "kind": "ms"},
    {"key": "max_ms", "title": "max ms", "kind": "ms"}, {"key": "throughput_rps", "title": "requests/s", "kind": "rps"},
]
STEP_COLUMNS = [
    {"key": "users", "title": "users", "kind": "float"}, {"key": "kind", "title": "kind"}, {"key": "duration_s", "title": "seconds", "kind": "s"},
    {"key": "requests", "title": "requests", "kind": "int"}, {"key": "throughput_rps", "title": "requests/s", "kind": "rps"},
    {"key": "mean_ms", "title": "mean ms", "kind": "ms"}, {"key": "p95_ms", "title": "p95 ms", "kind": "ms"},
    {"key": "error_pct", "title": "error %", "kind": "pct"}, {"key": "cpu_pct", "title": "CPU %", "kind": "pct"},
    {"key": "mem_used_bytes", "title": "memory used", "kind": "bytes"}, {"key": "busy_workers", "title": "busy workers", "kind": "float"},
]


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts (NaN and NaT as None, numpy scalars as Python numbers)."""
    out = []
    for rec in df.to_dict(orient="records"):
        row = {}
        for k, v in rec.items():
            if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
                row[k] = None
            elif isinstance(v, np.generic):
                row[k] = v.item()
            elif isinstance(v, pd.Timestamp):
                row[k] = v.isoformat()
            else:
                row[k] = v
        out.append(row)
    return out


def _span_s(info: dict[str, Any], con: Any = None, run: str | None = None) -> float | None:
    """Seconds from the first to the last timestamp of the run's time series (the charted tables).

    The catalog's start and end also cover aggregate periods (an AWStats day or
    month starts at midnight), which would stretch a two-minute run to a day and
    its chart bins to a minute; they are used only when no series has a timestamp.
    """
    if con is not None and run is not None:
        lo, hi = con.execute(
            "SELECT min(lo), max(hi) FROM (" + " UNION ALL ".join(
                f"SELECT min(ts) AS lo, max(ts) AS hi FROM {t} WHERE run_id = $run" for t in SERIES_TABLES) + ")",
            {"run": run},
        ).fetchone()
        if lo is not None and hi is not None:
            return (pd.Timestamp(hi) - pd.Timestamp(lo)).total_seconds()
    if not info.get("start") or not info.get("end"):
        return None
    return (dt.datetime.fromisoformat(info["end"]) - dt.datetime.fromisoformat(info["start"])).total_seconds()


def _interval(span: float | None, max_points: int) -> float:
    """Chart bin width: 1 s, or coarser so that a series has at most `max_points` points."""
    return float(max(1, math.ceil((span or 0) / max_points)))


def _model_curves(model: CapacityModel) -> dict[str, Any] | None:
    if model.usl is None:
        return None
    top = float(model.steps["users"].max())
    grid = [float(u) for u in np.linspace(max(top / 60, 0.5), 1.5 * top, 60)]
    x = [model.throughput(u) for u in grid]
    r = [model.response_ms(u) for u in grid]
    p95 = [model.p95_ms(u).value for u in grid]

    def clean(values: list[float]) -> list[float | None]:
        return [v if math.isfinite(v) else None for v in values]

    return {
        "throughput": {"users": grid, "value": clean([e.value for e in x]), "lo": clean([e.lo for e in x]), "hi": clean([e.hi for e in x]),
                       "name": "USL fit", "band_name": "USL 95 % band"},
        "response": {"users": grid, "value": clean([e.value for e in r]), "lo": clean([e.lo for e in r]), "hi": clean([e.hi for e in r]),
                     "p95": clean(p95), "name": "model mean (Little's law)", "band_name": "model 95 % band"},
    }


def _scalability(con: Any, run: str, hosts: list[dict[str, Any]], method: str, offset_s: float, slo: SLO,
                 min_step_s: int) -> tuple[dict[str, Any], CapacityModel | None, str | None]:
    """Steps, the capacity model and its section; the model is None (with the reason) when it cannot be fitted."""
    table, _ = steps_for_run(con, run, method=method, min_step_s=min_step_s, clock_offset_s=offset_s)
    section: dict[str, Any] = {"id": "scalability", "title": "Scalability: response time and throughput vs users", "blocks": []}
    if table.empty:
        section["note"] = "No load levels found (no users curve in the run): no scalability model."
        return section, None, section["note"]
    section["blocks"].append({"type": "table", "caption": "Load levels (steps) detected in the run", "columns": STEP_COLUMNS,
                              "rows": _rows(table), "sortable": True})
    cores, mem = compare.run_hardware(con, run, hosts)
    try:
        model = fit_capacity(table, cpu_count=cores, memory_bytes=mem, slo=slo, saturation_causes=saturation_causes(con, run))
    except ValueError as exc:
        section["note"] = f"No capacity model: {exc}."
        return section, None, str(exc)
    for fig in figures.scalability_figures(model.steps, _model_curves(model)):
        section["blocks"].append({"type": "figure", "figure": fig})
    doc = model.as_dict()
    if doc["usl"]:
        u = doc["usl"]
        section["blocks"].append({"type": "kv", "items": [
            {"name": "USL σ (contention)", "value": u["sigma"]["value"], "kind": "float", "note": _interval_text(u["sigma"], "float")},
            {"name": "USL κ (coherency)", "value": u["kappa"]["value"], "kind": "float", "note": _interval_text(u["kappa"], "float")},
            {"name": "peak concurrency N*", "value": u["n_star"]["value"], "kind": "float", "note": _interval_text(u["n_star"], "float") + " users"},
        ]})
    limits = [{"constraint": lim["constraint"], "users": lim["value"], "lo": lim["lo"], "hi": lim["hi"], "basis": lim["basis"]} for lim in doc["limits"]]
    if limits:
        section["blocks"].append({"type": "table", "caption": f"Users at which each constraint is reached (SLO: p95 ≤ {slo.p95_ms:g} ms, errors ≤ "
                                  f"{slo.error_pct:g} %, CPU ≤ {slo.cpu_pct:g} %, memory ≤ {slo.mem_pct:g} %)",
                                  "columns": [{"key": "constraint", "title": "constraint"}, {"key": "users", "title": "users", "kind": "float"},
                                              {"key": "lo", "title": "95 % lo", "kind": "float"}, {"key": "hi", "title": "95 % hi", "kind": "float"},
                                              {"key": "basis", "title": "basis"}], "rows": limits})
    if model.warnings:
        section["blocks"].append({"type": "list", "items": [f"warning: {w}" for w in model.warnings]})
    return section, model, None


def _interval_text(e: dict[str, Any], kind: str) -> str:
    from capacity.report.render import fmt

    return f"95 %: {fmt(e.get('lo'), kind)} – {fmt(e.get('hi'), kind)}"


def _processes(con: Any, run: str) -> dict[str, Any]:
    section: dict[str, Any] = {"id": "processes", "title": "Top processes (top / psutil)", "blocks": []}
    cpu = compare.top_processes(con, run, "cpu")
    if cpu.empty:
        section["note"] = "No process samples in this run (ingest `top -b` or psutil output to see them)."
        return section
    mem = compare.top_processes(con, run, "mem")
    cols = [{"key": "host", "title": "host"}, {"key": "user", "title": "user"}, {"key": "command", "title": "command"},
            {"key": "processes", "title": "processes", "kind": "int"}, {"key": "samples", "title": "samples", "kind": "int"},
            {"key": "mean_cpu_pct", "title": "mean CPU %", "kind": "pct"}, {"key": "max_cpu_pct", "title": "max CPU %", "kind": "pct"},
            {"key": "mean_mem_pct", "title": "mean mem %", "kind": "pct"}, {"key": "mean_rss_bytes", "title": "mean RSS", "kind": "bytes"},
            {"key": "max_rss_bytes", "title": "max RSS", "kind": "bytes"}]
    section["note"] = "Processes of the same host, user and command are summed per sample (a worker pool counts as one line), then averaged."
    names = [f"{r['command']} ({r['user']}@{r['host']})" for r in _rows(cpu)]
    section["blocks"] += [
        {"type": "figure", "figure": figures.bar_figure("Mean CPU % by command (100 % = one core)", names,
                                                       {"mean CPU %": [r["mean_cpu_pct"] for r in _rows(cpu)]}, "% of one core")},
        {"type": "table", "caption": "By CPU", "columns": cols, "rows": _rows(cpu), "sortable": True},
        {"type": "table", "caption": "By resident memory", "columns": cols, "rows": _rows(mem), "sortable": True},
    ]
    return section


def _web_traffic(con: Any, run: str) -> dict[str, Any]:
    section: dict[str, Any] = {"id": "web-traffic", "title": "Web traffic (AWStats)", "blocks": []}
    traffic = compare.web_traffic_summary(con, run)
    hours, pages = traffic["hours"], traffic["pages"]
    if hours.empty and pages.empty:
        section["note"] = "No AWStats or access-log aggregates in this run."
        return section
    days = traffic.get("days", pd.DataFrame())
    if not days.empty:
        section["blocks"].append({"type": "table", "caption": "By day", "sortable": True, "rows": _rows(days), "columns": [
            {"key": "day", "title": "day"}, {"key": "pages", "title": "pages", "kind": "int"}, {"key": "hits", "title": "hits", "kind": "int"},
            {"key": "bandwidth_bytes", "title": "bandwidth", "kind": "bytes"}, {"key": "visits", "title": "visits", "kind": "int"}]})
    if not hours.empty:
        section["blocks"].append({"type": "figure", "figure": figures.bar_figure(
            "Pages and hits by hour of day", [str(h) for h in hours["hour"]],
            {"pages": [float(v) for v in hours["pages"].fillna(0)], "hits": [float(v) for v in hours["hits"].fillna(0)]}, "requests", horizontal=False)})
        section["blocks"].append({"type": "table", "caption": "By hour of day", "sortable": True, "rows": _rows(hours), "columns": [
            {"key": "hour", "title": "hour"}, {"key": "pages", "title": "pages", "kind": "int"}, {"key": "hits", "title": "hits", "kind": "int"},
            {"key": "bandwidth_bytes", "title": "bandwidth", "kind": "bytes"}]})
    if not pages.empty:
        section["blocks"].append({"type": "table", "caption": "Most viewed pages", "sortable": True, "rows": _rows(pages), "columns": [
            {"key": "url", "title": "URL"}, {"key": "pages", "title": "pages", "kind": "int"}, {"key": "bandwidth_bytes", "title": "bandwidth", "kind": "bytes"},
            {"key": "entries", "title": "entries", "kind": "int"}, {"key": "exits", "title": "exits", "kind": "int"}]})
    return section


def _limits(con: Any, run: str, model: CapacityModel | None) -> dict[str, Any]:
    section: dict[str, Any] = {"id": "limits", "title": "Limits hit (beancounters, web workers)", "blocks": []}
    hit = compare.limits_hit(con, run)
    causes = model.saturation_causes if model is not None else saturation_causes(con, run)
    if hit.empty and not causes:
        has_limits = con.execute("SELECT count(*) FROM limits WHERE run_id = ?", [run]).fetchone()[0]
        section["note"] = "No limit refused an allocation." if has_limits else "No resource-limit readings (OpenVZ beancounters, vzlist) in this run."
        return section
    if causes:
        section["blocks"].append({"type": "list", "items": causes})
    if not hit.empty:
        section["blocks"].append({"type": "table", "caption": "Resources whose limit refused allocations (failcnt > 0)", "sortable": True,
                                  "rows": _rows(hit), "columns": [
                                      {"key": "host", "title": "host"}, {"key": "container", "title": "container"}, {"key": "resource", "title": "resource"},
                                      {"key": "held", "title": "held", "kind": "int"}, {"key": "maxheld", "title": "max held", "kind": "int"},
                                      {"key": "barrier", "title": "barrier", "kind": "int"}, {"key": "limit", "title": "limit", "kind": "int"},
                                      {"key": "failcnt", "title": "failcnt", "kind": "int"}, {"key": "unit", "title": "unit"}]})
    return section


def _provenance(info: dict[str, Any]) -> dict[str, Any]:
    rows = [{"path": f["path"], "collector": f["collector"], "sha256": f["sha256"], "rows": sum(f["rows"].values()),
             "tables": ", ".join(f"{k}={v:,}" for k, v in sorted(f["rows"].items())), "tz": f.get("tz")} for f in info["files"]]
    return {"id": "provenance", "title": "Provenance", "note": "Every input file of the run, as the store's catalog records it.", "blocks": [
        {"type": "table", "rows": rows, "sortable": True, "columns": [
            {"key": "path", "title": "file"}, {"key": "collector", "title": "collector"}, {"key": "sha256", "title": "sha256"},
            {"key": "rows", "title": "rows", "kind": "int"}, {"key": "tables", "title": "tables"}, {"key": "tz", "title": "time zone"}]}]}


def build_run_report(store: Store, run: str, *, method: str = "linear", apdex_t_ms: float = APDEX_T_MS, slo: SLO | None = None,
                     clock_offset_s: float | None = None, min_step_s: int = 10, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """The page data of one run's report (see `capacity.report.render` for its shape)."""
    slo = slo or SLO()
    info = store.run(run)
    con = store.connect([run])
    try:
        st = compare.run_stats(con, run, method, apdex_t_ms)
        users, users_basis = compare.max_users(con, run, info["tags"])
        offset = run_offset(con, run, clock_offset_s)
        span = _span_s(info, con, run)
        interval = _interval(span, max_points)
        frame = compare.series(con, run, interval, offset.seconds)
        scal, model, why = _scalability(con, run, info["hosts"], method, offset.seconds, slo, min_step_s)
        sections = [_labels_section(st), _timeline_section(frame, interval, offset), scal, _processes(con, run), _web_traffic(con, run),
                    _limits(con, run, model), _provenance(info)]
    finally:
        con.close()
    tags = ", ".join(f"{k}={v}" for k, v in sorted(info["tags"].items()))
    hosts = ", ".join(h["name"] for h in info["hosts"])
    return {
        "kind": "run",
        "title": f"Run {run}",
        "subtitle": " · ".join(x for x in (f"tags: {tags}" if tags else "", f"hosts: {hosts}" if hosts else "",
                                          f"{info['start']} – {info['end']} (UTC)" if info.get("start") else "") if x),
        "run": run,
        "summary": _summary(st, users, users_basis, span, model, why, apdex_t_ms),
        "sections": sections,
        "generated": now(),
    }


def _summary(st: dict[str, Any], users: float | None, users_basis: str | None, span: float | None, model: CapacityModel | None,
             why: str | None, apdex_t_ms: float) -> list[dict[str, Any]]:
    o = st.get("overall") or {}
    from_summaries = st.get("basis") == "summaries"
    items = [
        {"key": "span", "name": "span", "value": span, "kind": "s", "note": "seconds, first to last timestamp of any time series"},
        {"key": "users", "name": "peak users", "value": users, "kind": "float", "note": users_basis},
        {"key": "requests", "name": "requests", "value": o.get("count"), "kind": "int",
         "note": "from the tool's summary" if from_summaries else ("sample rows" if o else "no request data")},
        {"key": "errors", "name": "errors", "value": o.get("errors"), "kind": "int", "note": f"{o['error_pct']:.2f} % of requests" if o.get("error_pct") is not None else None},
        {"key": "throughput", "name": "throughput (requests/s)", "value": o.get("throughput_rps"), "kind": "rps", "note": o.get("throughput_basis")},
        {"key": "mean", "name": "mean response (ms)", "value": o.get("mean_ms"), "kind": "ms"},
        {"key": "p95", "name": "p95 response (ms)", "value": o.get("p95_ms"), "kind": "ms",
         "note": "unavailable: only summaries, percentiles cannot be combined" if from_summaries else st.get("percentile_method") and f"{st['percentile_method']} interpolation"},
        {"key": "apdex", "name": f"Apdex (T = {apdex_t_ms:g} ms)", "value": o.get("apdex"), "kind": "float",
         "note": "needs samples" if not o.get("apdex") and from_summaries else None},
    ]
    if model is not None:
        mu = model.max_users
        items.append({"key": "max_users", "name": "max users under the SLO", "value": mu.get("value"), "kind": "float", "note": mu.get("message")})
        items.append({"key": "binding", "name": "binding constraint", "value": mu.get("binding") or "none", "kind": "text"})
    else:
        items.append({"key": "max_users", "name": "max users under the SLO", "value": None, "kind": "float", "note": f"no model: {why}"})
    return items


def _labels_section(st: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = {"id": "labels", "title": "Requests per label", "blocks": []}
    if not st["labels"]:
        section["note"] = "No request data in this run (no load-tool results were ingested)."
        return section
    cols = list(LABEL_COLUMNS)
    if st["basis"] == "summaries":
        section["note"] = "From the load tool's summary report: percentiles are not in it and cannot be recovered."
        cols = [c for c in cols if c["key"] not in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")]
    else:
        section["note"] = f"Exact statistics over every sample ({st['percentile_method']} percentiles); throughput over the run's span. Click a header to sort."
        cols.append({"key": "apdex", "title": "Apdex", "kind": "float"})
    rows = list(st["labels"])
    if st["overall"]:
        rows.append({"label": "ALL (samples)", "kind": "total", **st["overall"]})
    section["blocks"].append({"type": "table", "id": "label-stats", "columns": cols, "rows": rows, "sortable": True})
    return section


def _timeline_section(frame: pd.DataFrame, interval: float, offset: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"id": "timeline", "title": "Over time", "blocks": []}
    if len(frame) == 1:
        section["note"] = "No time series in this run: it records a single moment (e.g. one top screen), shown in the sections below."
        return section
    fig = figures.timeline_figure(frame) if not frame.empty else None
    if fig is None:
        section["note"] = "No time series in this run (only summaries, or no timestamps)."
        return section
    section["note"] = (f"Every series on one UTC time axis, {interval:g}-second bins (percentiles exact per bin). "
                       f"Server clocks shifted by {offset.seconds:g} s ({offset.method}).")
    section["blocks"].append({"type": "figure", "figure": fig})
    return section


def render_run_report(page: dict[str, Any], out_dir: str | Path) -> Path:
    """Write a run report's `index.html`, `index.md` and assets into `out_dir`; return the HTML path."""
    return write_page(page, out_dir)
