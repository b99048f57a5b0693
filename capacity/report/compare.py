"""The comparison page of two or more runs (e.g. Open edX native vs devstack) and its plain-language conclusions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capacity.analysis import compare
from capacity.report import figures
from capacity.report.render import fmt, now, write_page
from capacity.report.run import _interval, _span_s
from capacity.store import Store

METRIC_INFO = {
    "users": ("peak concurrent users", "float"),
    "count": ("transactions (requests)", "int"),
    "transactions_per_hour": ("transactions per hour", "int"),
    "mean_ms": ("mean response (ms)", "ms"),
    "p50_ms": ("p50 response (ms)", "ms"),
    "p95_ms": ("p95 response (ms)", "ms"),
    "p99_ms": ("p99 response (ms)", "ms"),
    "max_ms": ("max response (ms)", "ms"),
    "error_pct": ("errors (% of requests)", "pct"),
    "throughput_rps": ("throughput (requests/s)", "rps"),
    "cpu_busy_pct": ("CPU busy (%)", "pct"),
    "mem_used_pct": ("memory used, without cache (%)", "pct"),
    "mem_in_use_pct": ("memory in use, cache included (%)", "pct"),
}
OVERLAY = [("users", "Active users", "users"), ("throughput_rps", "Throughput", "requests/s"), ("p95_ms", "p95 response", "ms"),
           ("error_pct", "Errors", "%")]


def build_comparison(store: Store, runs: list[str], method: str = "linear") -> dict[str, Any]:
    """The comparison data (`capacity compare --json`) of `runs`, the first run over each other one."""
    for r in runs:
        store.run(r)
    tags = {r: store.run(r)["tags"] for r in runs}
    con = store.connect(runs)
    try:
        return _with_runs(compare.compare_runs(con, runs, tags, method), runs)
    finally:
        con.close()


def _with_runs(doc: dict[str, Any], runs: list[str]) -> dict[str, Any]:
    """`runs` as the list of run ids (the JSON contract), the per-run details under `run_details`."""
    return {"runs": list(runs), "run_details": doc["runs"], "alpha": doc["alpha"], "overall": doc["overall"], "labels": doc["labels"]}


def _pct_change(ratio: float) -> str:
    return f"{abs(1 - ratio) * 100:.0f} % {'lower' if ratio < 1 else 'higher'}"


def conclusions(data: dict[str, Any]) -> list[str]:
    """Plain-language findings: differences whose interval excludes 1 are stated as verified, the rest as noise or untested."""
    a, b = data["runs"][0], data["runs"][1]
    rows = {o["metric"]: o for o in data["overall"]}
    out: list[str] = []
    same_hour = all(d["duration_basis"] == "run tag `duration_s`" for d in data["run_details"][:2]) and \
        data["run_details"][0]["duration_s"] == data["run_details"][1]["duration_s"]

    def interval(o: dict[str, Any]) -> str:
        if o["ratio_lo"] is None or o["ratio_hi"] is None:
            return ""
        return f"; 95 % interval {o['ratio_lo']:.2f}–{o['ratio_hi']:.2f}×"

    def values(o: dict[str, Any], kind: str) -> str:
        return f"{fmt(o['values'][0], kind)} vs {fmt(o['values'][1], kind)}"

    users = rows["users"]
    if users["values"][0] and users["values"][1]:
        out.append(f"{a} ran {fmt(users['values'][0], 'float')} concurrent users, {b} {fmt(users['values'][1], 'float')} "
                   f"({data['run_details'][0]['users_basis']}).")
    for metric, verb in (("count", "completed"),):
        o = rows[metric]
        if o["ratio"] is not None and o["significant"]:
            span = "in the same hour" if same_hour and data["run_details"][0]["duration_s"] == 3600 else (
                "in the same time" if same_hour else "(runs of different or unknown length: see transactions per hour)")
            out.append(f"{a} {verb} {o['ratio']:.1f}x the transactions of {b} {span} ({values(o, 'int')}{interval(o)}).")
    for metric, what in (("mean_ms", "mean response"), ("p95_ms", "p95 response"), ("p50_ms", "median response")):
        o = rows[metric]
        if o["ratio"] is None:
            continue
        basis = f"{o['test']}, p {'< 0.001' if (o['p_value'] or 0) < 0.001 else '= ' + format(o['p_value'], '.3f')}" if o["p_value"] is not None else o["test"]
        if o["significant"]:
            out.append(f"{what.capitalize()} of {a} is {_pct_change(o['ratio'])} than {b} ({values(o, 'ms')} ms{interval(o)}; {basis}).")
        elif o["significant"] is False:
            out.append(f"{what.capitalize()}: the difference ({values(o, 'ms')} ms) is within the noise ({basis}).")
    o = rows["throughput_rps"]
    if o["ratio"] is not None:
        verdict = "verified" if o["significant"] else ("within the noise" if o["significant"] is False else "not tested")
        out.append(f"Throughput {values(o, 'rps')} requests/s: {o['ratio']:.1f}x ({verdict}{interval(o)}).")
    for metric, what in (("cpu_busy_pct", "CPU busy"), ("mem_used_pct", "Memory used (without cache)"), ("mem_in_use_pct", "Memory in use (cache included)")):
        o = rows[metric]
        if o["values"][0] is not None and o["values"][1] is not None:
            readings = [d["cpu_readings" if metric.startswith("cpu") else "mem_readings"] for d in data["run_details"][:2]]
            out.append(f"{what}: {values(o, 'pct')} (mean of {readings[0]} and {readings[1]} reading(s); not tested for significance).")
    noisy = [lab["label"] for lab in data["labels"] if lab["significant"] is False]
    real = [lab for lab in data["labels"] if lab["significant"]]
    if real or noisy:
        out.append(f"Per label: {len(real)} mean difference(s) verified, {len(noisy)} within the noise"
                   + (f" ({', '.join(noisy[:5])}{', ...' if len(noisy) > 5 else ''})." if noisy else "."))
    for d in data["run_details"]:
        if d["basis"] == "summaries":
            out.append(f"{d['run']} has only summaries: percentiles are unavailable and mean differences are tested from count, mean "
                       "and standard deviation (Welch), not from samples.")
    return out


def _overall_table(data: dict[str, Any]) -> dict[str, Any]:
    runs = data["runs"]
    cols = [{"key": "figure", "title": "figure"}] + [{"key": f"v{i}", "title": r, "kind": "float"} for i, r in enumerate(runs)]
    cols += [{"key": "ratio", "title": f"{runs[0]} / {runs[1]}", "kind": "ratio"}, {"key": "lo", "title": "95 % lo", "kind": "ratio"},
             {"key": "hi", "title": "95 % hi", "kind": "ratio"}, {"key": "p", "title": "p-value", "kind": "p"},
             {"key": "verdict", "title": "verdict"}, {"key": "test", "title": "test"}]
    rows = []
    for o in data["overall"]:
        name, kind = METRIC_INFO[o["metric"]]
        row = {"figure": name, "ratio": o["ratio"], "lo": o["ratio_lo"], "hi": o["ratio_hi"], "p": o["p_value"], "test": o["test"] or "",
               "verdict": _verdict(o["significant"])}
        for i, v in enumerate(o["values"]):
            row[f"v{i}"] = fmt(v, kind) if v is not None else None
        rows.append(row)
    for c in cols[1:1 + len(runs)]:
        c["kind"] = "text"
    return {"type": "table", "id": "overall", "columns": cols, "rows": rows}


def _verdict(sig: bool | None) -> str:
    return {True: "real difference", False: "noise"}.get(sig, "not tested")


def _label_table(data: dict[str, Any]) -> dict[str, Any]:
    a, b = data["runs"][0], data["runs"][1]
    cols = [{"key": "label_a", "title": f"label in {a}"}, {"key": "label_b", "title": f"label in {b}"},
            {"key": "count_a", "title": f"count {a}", "kind": "int"}, {"key": "count_b", "title": f"count {b}", "kind": "int"},
            {"key": "mean_a", "title": f"mean ms {a}", "kind": "ms"}, {"key": "mean_b", "title": f"mean ms {b}", "kind": "ms"},
            {"key": "p95_a", "title": f"p95 ms {a}", "kind": "ms"}, {"key": "p95_b", "title": f"p95 ms {b}", "kind": "ms"},
            {"key": "err_a", "title": f"error % {a}", "kind": "pct"}, {"key": "err_b", "title": f"error % {b}", "kind": "pct"},
            {"key": "ratio", "title": "mean ratio", "kind": "ratio"}, {"key": "lo", "title": "95 % lo", "kind": "ratio"},
            {"key": "hi", "title": "95 % hi", "kind": "ratio"}, {"key": "p", "title": "p-value", "kind": "p"}, {"key": "verdict", "title": "verdict"}]
    rows = []
    for lab in data["labels"]:
        rows.append({"label_a": lab["labels"][0], "label_b": lab["labels"][1], "count_a": lab["count"][0], "count_b": lab["count"][1],
                     "mean_a": lab["mean_ms"][0], "mean_b": lab["mean_ms"][1], "p95_a": lab["p95_ms"][0], "p95_b": lab["p95_ms"][1],
                     "err_a": lab["error_pct"][0], "err_b": lab["error_pct"][1], "ratio": lab["mean_ratio"], "lo": lab["mean_ratio_lo"],
                     "hi": lab["mean_ratio_hi"], "p": lab["p_value"], "verdict": _verdict(lab["significant"])})
    return {"type": "table", "id": "labels-compared", "columns": cols, "rows": rows, "sortable": True}


def build_compare_page(store: Store, runs: list[str], method: str = "linear", max_points: int = 1500) -> dict[str, Any]:
    """The page data of the comparison of `runs` (the first run over each other one)."""
    data = build_comparison(store, runs, method)
    sections: list[dict[str, Any]] = [
        {"id": "overall", "title": "Overall, side by side", "blocks": [_overall_table(data)],
         "note": (f"Ratios are {runs[0]} over {runs[1]}. A difference is real when its 95 % interval excludes 1"
                  f" (and, with samples, the Mann-Whitney p-value is below {data['alpha']:g}); 'not tested' where the data allows no test.")},
    ]
    if len(runs) > 2:
        extra = [{"figure": METRIC_INFO[o["metric"]][0], **{f"r{i}": x["ratio"] for i, x in enumerate(o["ratios"])}} for o in data["overall"]]
        sections.append({"id": "more-runs", "title": f"Ratios of {runs[0]} to every other run", "blocks": [{"type": "table", "rows": extra, "columns":
                         [{"key": "figure", "title": "figure"}] + [{"key": f"r{i}", "title": f"{runs[0]} / {r}", "kind": "ratio"}
                                                                    for i, r in enumerate(runs[1:])]}]})
    label_section: dict[str, Any] = {"id": "labels", "title": f"Per label: {runs[0]} vs {runs[1]}", "blocks": []}
    if data["labels"]:
        label_section["blocks"].append(_label_table(data))
        matched = {lab["matched_by"] for lab in data["labels"]}
        label_section["note"] = "Labels matched by " + "; ".join(sorted(matched)) + ". Ratios are of the means."
        shown = [lab for lab in data["labels"] if lab["mean_ms"][0] is not None and lab["mean_ms"][1] is not None]
        if shown:
            label_section["blocks"].append({"type": "figure", "figure": figures.bar_figure(
                "Mean response per label (ms)", [lab["label"] for lab in shown],
                {runs[0]: [lab["mean_ms"][0] for lab in shown], runs[1]: [lab["mean_ms"][1] for lab in shown]}, "ms")})
    else:
        label_section["note"] = "No request data in these runs."
    sections.append(label_section)
    sections.append(_overlay_section(store, runs, max_points))
    sections.append({"id": "runs", "title": "Runs compared", "blocks": [{"type": "table", "rows": data["run_details"], "columns": [
        {"key": "run", "title": "run"}, {"key": "basis", "title": "request data"}, {"key": "percentiles", "title": "percentiles"},
        {"key": "duration_s", "title": "duration s", "kind": "s"}, {"key": "duration_basis", "title": "duration from"},
        {"key": "users_basis", "title": "users from"}, {"key": "cpu_readings", "title": "CPU readings", "kind": "int"},
        {"key": "mem_readings", "title": "memory readings", "kind": "int"}]}],
        "note": "Each run's own report has its provenance (input files, sha256, rows)."})
    return {"kind": "compare", "title": f"{runs[0]} vs {', '.join(runs[1:])}", "subtitle": "Comparison of runs", "runs": runs,
            "data": data, "conclusions": conclusions(data), "summary": [], "sections": sections, "generated": now()}


def _overlay_section(store: Store, runs: list[str], max_points: int) -> dict[str, Any]:
    section: dict[str, Any] = {"id": "overlay", "title": "Over time, overlaid from each run's start", "blocks": []}
    con = store.connect(runs)
    try:
        frames = {}
        for r in runs:
            info = store.run(r)
            frames[r] = compare.series(con, r, _interval(_span_s(info, con, r), max_points))
    finally:
        con.close()
    fig = figures.overlay_figure(frames, OVERLAY)
    if fig is None:
        section["note"] = "No time series in these runs (summaries only): nothing to overlay."
    else:
        section["blocks"].append({"type": "figure", "figure": fig})
    return section


def render_comparison(page: dict[str, Any], out_dir: str | Path) -> Path:
    """Write the comparison's `index.html`, `index.md` and assets into `out_dir`; return the HTML path."""
    return write_page(page, out_dir)
