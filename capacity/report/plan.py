"""The capacity-plan page: the sizing analysis (`capacity.analysis.sizing.plan`) per instance type, with assumptions and uncertainty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capacity.report import figures
from capacity.report.render import fmt, now, write_page

TYPE_COLUMNS = [
    {"key": "instance_type", "title": "instance type"}, {"key": "vcpu", "title": "vCPU", "kind": "int"},
    {"key": "memory_gib", "title": "memory GiB", "kind": "float"}, {"key": "burstable", "title": "burstable", "kind": "bool"},
    {"key": "sustained_vcpu", "title": "sustained vCPU", "kind": "float"}, {"key": "users", "title": "users per server", "kind": "int"},
    {"key": "users_lo", "title": "95 % lo", "kind": "int"}, {"key": "users_hi", "title": "95 % hi", "kind": "int"},
    {"key": "binding", "title": "binding"}, {"key": "servers", "title": "servers needed", "kind": "int"},
    {"key": "servers_range", "title": "servers (95 %)"}, {"key": "users_burst", "title": "users (burst)", "kind": "int"},
]


def _estimate(e: dict[str, Any] | None, kind: str = "float") -> str:
    if not e:
        return "–"
    return f"{fmt(e.get('value'), kind)} (95 %: {fmt(e.get('lo'), kind)} – {fmt(e.get('hi'), kind)})"


def build_plan_page(doc: dict[str, Any]) -> dict[str, Any]:
    """Page data of a capacity plan from the `capacity plan --json` document (run, slo, sizing.plan output, allocations)."""
    run = doc["run"] if isinstance(doc["run"], str) else ", ".join(doc["run"])
    measured = doc.get("measured", {})
    mu = measured.get("max_users") or {}
    summary = [
        {"key": "users", "name": "users to serve", "value": doc["users"], "kind": "int"},
        {"key": "max_users", "name": "max users on the measured server", "value": mu.get("value"), "kind": "float", "note": mu.get("message")},
        {"key": "users_per_vcpu", "name": "users per vCPU", "value": (doc.get("users_per_vcpu") or {}).get("value"), "kind": "float",
         "note": _estimate(doc.get("users_per_vcpu"))},
        {"key": "users_per_gib", "name": "users per GiB", "value": (doc.get("users_per_gib") or {}).get("value"), "kind": "float",
         "note": _estimate(doc.get("users_per_gib"))},
        {"key": "cores_per_user", "name": "CPU cores per user", "value": (doc.get("cores_per_user") or {}).get("value"), "kind": "float",
         "note": f"{_estimate(doc.get('cores_per_user'))}; base {fmt(doc.get('base_cores'), 'float')} cores"},
        {"key": "bytes_per_user", "name": "memory per user", "value": (doc.get("bytes_per_user") or {}).get("value"), "kind": "bytes",
         "note": f"{_estimate(doc.get('bytes_per_user'), 'bytes')}; base {fmt(doc.get('base_bytes'), 'bytes')}"},
        {"key": "measured", "name": "measured server", "value": f"{fmt(measured.get('cpu_count'), 'float')} CPU, {fmt(measured.get('memory_bytes'), 'bytes')}",
         "kind": "text"},
    ]
    sections: list[dict[str, Any]] = []
    types = doc.get("instance_types", [])
    if types:
        chart = figures.bar_figure(
            "Users one server holds (sustained), with the 95 % interval", [f"{t['provider']} {t['instance_type']}" for t in types],
            {"users per server": [t["users_per_server"]["value"] for t in types]}, "users",
            errors={"users per server": ([t["users_per_server"]["lo"] for t in types], [t["users_per_server"]["hi"] for t in types])})
        sections.append({"id": "chart", "title": "Users per server by instance type", "blocks": [{"type": "figure", "figure": chart}]})
    for provider in dict.fromkeys(t["provider"] for t in types):
        rows = []
        for t in (t for t in types if t["provider"] == provider):
            s = t["servers"]
            rows.append({"instance_type": t["instance_type"], "vcpu": t["vcpu"], "memory_gib": t["memory_gib"], "burstable": t["burstable"],
                         "sustained_vcpu": t["sustained_vcpu"], "users": t["users_per_server"]["value"], "users_lo": t["users_per_server"]["lo"],
                         "users_hi": t["users_per_server"]["hi"], "binding": t["binding"], "servers": s["value"],
                         "servers_range": f"{fmt(s['lo'], 'int')} – {fmt(s['hi'], 'int')}", "users_burst": t["users_per_server_burst"]["value"]})
        sections.append({"id": f"provider-{provider}", "title": f"Instance types: {provider}", "blocks": [
            {"type": "table", "columns": TYPE_COLUMNS, "rows": rows, "sortable": True}],
            "note": f"Servers needed for {doc['users']:,} concurrent users; '–' where a bound is unlimited or unknown."})
    if doc.get("allocations"):
        sections.append({"id": "allocations", "title": "Users per CPU and memory allocation", "blocks": [{"type": "table", "sortable": True,
                         "rows": doc["allocations"], "columns": [
                             {"key": "cpu_cores", "title": "CPU cores", "kind": "float"}, {"key": "memory_mib", "title": "memory MiB", "kind": "int"},
                             {"key": "max_concurrent_users", "title": "max concurrent users", "kind": "int"}, {"key": "lo", "title": "95 % lo", "kind": "int"},
                             {"key": "hi", "title": "95 % hi", "kind": "int"}, {"key": "binding", "title": "binding"}]}]})
    slo = doc.get("slo") or {}
    sections.append({"id": "assumptions", "title": "Assumptions and uncertainty", "blocks": [
        {"type": "list", "items": list(doc.get("assumptions", []))},
        {"type": "text", "text": (f"SLO: p95 ≤ {fmt(slo.get('p95_ms'), 'ms')} ms, errors ≤ {fmt(slo.get('error_pct'), 'float')} %, CPU ≤ "
                                  f"{fmt(slo.get('cpu_pct'), 'float')} %, memory ≤ {fmt(slo.get('mem_pct'), 'float')} % of RAM. Intervals are 95 %: "
                                  "'lo' servers come from the optimistic end of users per server, 'hi' from the pessimistic end.")},
    ] + ([{"type": "list", "items": [f"warning: {w}" for w in doc["warnings"]]}] if doc.get("warnings") else [])})
    return {"kind": "plan", "title": f"Capacity plan for {doc['users']:,} users", "subtitle": f"from run {run}", "summary": summary,
            "sections": sections, "generated": now()}


def render_plan(page: dict[str, Any], out_dir: str | Path) -> Path:
    """Write the plan's `index.html`, `index.md` and assets into `out_dir`; return the HTML path."""
    return write_page(page, out_dir)
