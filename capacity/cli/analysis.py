"""`capacity steps`, `capacity fit` and `capacity plan`: the capacity analysis of stored runs."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click
import duckdb
import numpy as np
import pandas as pd

from capacity.analysis.slo import SLO, saturation_causes
from capacity.analysis.steps import steps_for_run, steps_for_runs
from capacity.cli.common import fail, fmt, json_option, print_json, print_table, store_option
from capacity.cli.process import settle_imports
from capacity.store import Store

if TYPE_CHECKING:
    from capacity.analysis.model import CapacityModel

STEP_KEYS = ("users", "start", "end", "requests", "throughput_rps", "mean_ms", "p95_ms", "error_pct", "cpu_pct", "mem_used_bytes")
GIB = 1024**3


def _opt(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _load_steps(store: Store, runs: tuple[str, ...], method: str, clock_offset: str | None, min_step_s: int,
                con: duckdb.DuckDBPyConnection | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    offset = None if clock_offset in (None, "auto") else float(clock_offset)
    for r in runs:
        store.run(r)
    if len(runs) == 1:
        own = con is None
        con = store.connect(list(runs)) if con is None else con
        try:
            return steps_for_run(con, runs[0], method=method, min_step_s=min_step_s, clock_offset_s=offset)
        finally:
            if own:
                con.close()
    return steps_for_runs(store, list(runs), method=method, clock_offset_s=offset), {}


def _hardware(store: Store, con: duckdb.DuckDBPyConnection, runs: tuple[str, ...], cpu_count: float | None,
              memory_gib: float | None) -> tuple[float | None, float | None]:
    """CPU count and memory of the measured server: options first, then the catalog's hosts, then host metrics."""
    cores, mem = cpu_count, memory_gib * GIB if memory_gib else None
    hosts = [h for r in runs for h in store.run(r)["hosts"]]
    if cores is None:
        cores = next((h["cpu_count"] for h in hosts if h.get("cpu_count")), None)
    if mem is None:
        mem = next((h["memory_bytes"] for h in hosts if h.get("memory_bytes")), None)
    if cores is None or mem is None:
        found = dict(con.execute(
            "SELECT metric, max(value) AS v FROM host_metrics WHERE metric IN ('cpu.count', 'mem.total_bytes') GROUP BY metric"
        ).fetchall())
        cores = cores or found.get("cpu.count")
        mem = mem or found.get("mem.total_bytes")
    return (float(cores) if cores else None), (float(mem) if mem else None)


def _steps_json(table: pd.DataFrame) -> list[dict[str, Any]]:
    # Column-wise: a step table has thousands of rows, and `iterrows` builds a Series per row.
    columns: dict[str, list[Any]] = {}
    for key in STEP_KEYS:
        if key in ("start", "end"):
            columns[key] = [t.isoformat() for t in table[key]]
        elif key == "requests":
            columns[key] = [int(v) for v in table[key].to_numpy()]
        else:
            columns[key] = [_opt(float(v)) for v in table[key].to_numpy(dtype=float, na_value=np.nan)]
    return [dict(zip(STEP_KEYS, values, strict=True)) for values in zip(*columns.values(), strict=True)]


common = [
    click.argument("runs", nargs=-1, required=True),
    store_option,
    json_option,
    click.option("--percentile-method", type=click.Choice(["linear", "nearest"]), default="linear", show_default=True),
    click.option("--clock-offset", default="auto", show_default=True,
                 help="Seconds added to server timestamps, or `auto` to estimate from load vs CPU."),
    click.option("--min-step-s", type=int, default=10, show_default=True, help="Shortest plateau counted as a step."),
]


def _with(options: list) -> Any:
    def deco(f: Any) -> Any:
        for o in reversed(options):
            f = o(f)
        return f

    return deco


@click.command()
@_with(common)
def steps(runs: tuple[str, ...], store_dir: str | None, as_json: bool, percentile_method: str, clock_offset: str, min_step_s: int) -> None:
    """Load levels of RUN (a step-load or ramp run), or one step per run for several RUNs tagged `users`."""
    store = Store.open(store_dir)
    table, notes = _load_steps(store, runs, percentile_method, clock_offset, min_step_s)
    run = runs[0] if len(runs) == 1 else list(runs)
    if as_json:
        print_json({"run": run, "percentile_method": percentile_method, **notes, "steps": _steps_json(table)})
        return
    cols = ["users", "start", "end", "duration_s", "requests", "throughput_rps", "mean_ms", "p95_ms", "error_pct", "cpu_pct", "mem_used_bytes"]
    # Column-wise, as in `_steps_json`: `iterrows` builds a Series per step.
    columns = [[t.strftime("%H:%M:%S") for t in table[c]] if c in ("start", "end") else table[c].tolist() for c in cols]
    rows = list(zip(*columns, strict=True))
    print_table(f"Steps of {run} (percentiles: {percentile_method})", cols, rows,
                {"mem_used_bytes": lambda v: "-" if v is None or pd.isna(v) else f"{v / GIB:.2f} GiB"})


def _slo(p95: float | None, err: float | None, cpu: float | None, mem: float | None) -> SLO:
    base = SLO()
    return SLO(p95_ms=p95 if p95 is not None else base.p95_ms, error_pct=err if err is not None else base.error_pct,
               cpu_pct=cpu if cpu is not None else base.cpu_pct, mem_pct=mem if mem is not None else base.mem_pct)


model_options = [
    click.option("--slo-p95-ms", type=float, default=None, help=f"p95 target (default {SLO().p95_ms:g})."),
    click.option("--slo-error-pct", type=float, default=None, help=f"Error % target (default {SLO().error_pct:g})."),
    click.option("--slo-cpu-pct", type=float, default=None, help=f"CPU % ceiling (default {SLO().cpu_pct:g})."),
    click.option("--slo-mem-pct", type=float, default=None, help=f"Memory % of RAM ceiling (default {SLO().mem_pct:g})."),
    click.option("--think-time-s", type=float, default=None, help="Think time per request (default: estimated by Little's law)."),
    click.option("--concurrency", type=click.Choice(["in_system", "users"]), default="in_system", show_default=True,
                 help="USL concurrency: requests in flight (X·R) mapped to users by Little's law, or virtual users."),
    click.option("--cpu-count", type=float, default=None, help="CPUs of the measured server (default: from the run's hosts)."),
    click.option("--memory-gib", type=float, default=None, help="Memory of the measured server in GiB (default: from the run's hosts)."),
]


def _fit(store: Store, runs: tuple[str, ...], percentile_method: str, clock_offset: str, min_step_s: int, slo: SLO,
         think_time_s: float | None, concurrency: str, cpu_count: float | None, memory_gib: float | None,
         fit_max_users: float | None = None) -> CapacityModel:
    from capacity.analysis.model import fit_capacity  # scipy: only the commands that fit pay for it

    settle_imports()

    # One connection for every query: opening one reads the metadata of every stored file.
    con = store.connect(list(runs))
    try:
        table, _ = _load_steps(store, runs, percentile_method, clock_offset, min_step_s, con)
        cores, mem = _hardware(store, con, runs, cpu_count, memory_gib)
        causes = [c for r in runs for c in saturation_causes(con, r)]
    finally:
        con.close()
    try:
        return fit_capacity(table, cpu_count=cores, memory_bytes=mem, slo=slo, think_time_s=think_time_s, concurrency=concurrency,
                            fit_max_users=fit_max_users, saturation_causes=causes)
    except ValueError as exc:
        fail(str(exc))


@click.command()
@_with(common + model_options)
@click.option("--fit-max-users", type=float, default=None, help="Fit only the steps with at most this many users.")
@click.option("--predict-users", type=float, default=None, help="Add the model's prediction at this many users.")
def fit(runs: tuple[str, ...], store_dir: str | None, as_json: bool, percentile_method: str, clock_offset: str, min_step_s: int,
        slo_p95_ms: float | None, slo_error_pct: float | None, slo_cpu_pct: float | None, slo_mem_pct: float | None,
        think_time_s: float | None, concurrency: str, cpu_count: float | None, memory_gib: float | None,
        fit_max_users: float | None, predict_users: float | None) -> None:
    """Capacity models of RUN: USL, CPU and memory per user, operational laws, max users under the SLO."""
    store = Store.open(store_dir)
    model = _fit(store, runs, percentile_method, clock_offset, min_step_s, _slo(slo_p95_ms, slo_error_pct, slo_cpu_pct, slo_mem_pct),
                 think_time_s, concurrency, cpu_count, memory_gib, fit_max_users)
    doc: dict[str, Any] = {"run": runs[0] if len(runs) == 1 else list(runs), "percentile_method": percentile_method, **model.as_dict()}
    if predict_users is not None:
        doc["prediction"] = model.predict(predict_users)
    if as_json:
        print_json(doc)
        return
    rows = []
    if doc["usl"]:
        for k in ("lambda", "sigma", "kappa", "n_star"):
            e = doc["usl"][k]
            rows.append([f"USL {k}", e["value"], e["lo"], e["hi"]])
    for k in ("cpu_per_user_pct", "mem_per_user_bytes", "think_time_s"):
        if doc.get(k):
            rows.append([k, doc[k]["value"], doc[k]["lo"], doc[k]["hi"]])
    for lim in doc["limits"]:
        rows.append([f"limit: {lim['constraint']}", lim["value"], lim["lo"], lim["hi"]])
    mu = doc["max_users"]
    rows.append(["MAX USERS", mu["value"], mu["lo"], mu["hi"]])
    if "prediction" in doc:
        p = doc["prediction"]
        rows.append([f"predicted X at {p['users']:g} users", p["throughput_rps"]["value"], p["throughput_rps"]["lo"], p["throughput_rps"]["hi"]])
        rows.append([f"predicted p95 ms at {p['users']:g} users", p["p95_ms"]["value"], p["p95_ms"]["lo"], p["p95_ms"]["hi"]])
    print_table(f"Capacity model of {doc['run']} (95 % intervals)", ["quantity", "value", "lo", "hi"], rows,
                {"value": lambda v: fmt(v, 4), "lo": lambda v: fmt(v, 4), "hi": lambda v: fmt(v, 4)})
    click.echo(mu["message"])
    for c in doc["saturation_causes"]:
        click.echo(f"saturated during the run: {c}")
    for w in doc["warnings"]:
        click.echo(f"warning: {w}")


SLO_EXPR = re.compile(r"^\s*(p95|errors?|cpu|mem(?:ory)?)\s*<=?\s*([0-9.]+)\s*(ms|s|%)?\s*$", re.IGNORECASE)


def parse_slo(expressions: tuple[str, ...]) -> dict[str, float]:
    """`p95<2s`, `p95<=800ms`, `errors<1%`, `cpu<70%`, `mem<85%` into SLO keyword arguments."""
    out: dict[str, float] = {}
    for expr in expressions:
        for part in expr.split(","):
            m = SLO_EXPR.match(part)
            if not m:
                raise click.BadParameter(f"{part!r}: expected e.g. p95<2s, p95<800ms, errors<1%, cpu<80%, mem<90%", param_hint="--slo")
            key, value, unit = m.group(1).lower(), float(m.group(2)), (m.group(3) or "").lower()
            if key == "p95":
                out["p95_ms"] = value * 1000 if unit == "s" else value
            elif key.startswith("error"):
                out["error_pct"] = value
            elif key == "cpu":
                out["cpu_pct"] = value
            else:
                out["mem_pct"] = value
    return out


def _pool_plan(store: Store, runs: tuple[str, ...], users: int, slo: SLO, think_time_s: float | None, cpu_from: str, as_json: bool) -> None:
    """`capacity plan --pool`: per-server balance of the run and the servers needed (capacity.analysis.balance)."""
    from capacity.analysis.balance import balance_report, pool_plan

    if len(runs) != 1:
        fail("--pool sizes from one run holding every server's data")
    try:
        report = balance_report(store, runs[0], cpu_from=cpu_from)
        doc = {"run": runs[0], "balance": report.as_dict(), "plan": pool_plan(report, users, think_time_s=think_time_s, cpu_target_pct=slo.cpu_pct)}
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(doc)
        return
    cols = ["server", "requests", "rps", "requests_pct", "mean_ms", "cores_busy", "cpu_pct", "cpu_count", "utilisation_pct", "demand_core_s"]
    print_table(f"Per-server balance of {runs[0]} ({report.attribution}; CPU from {report.cpu_from})", cols,
                [[s[c] for c in cols] for s in doc["balance"]["servers"]])
    p = doc["plan"]
    print_table(f"Servers for {users:,} users (CPU <= {p['cpu_target_pct']:g} %, R {p['response_s'] * 1000:.0f} ms, Z {p['think_time_s']:g} s)",
                ["cpu_count", "users_per_server", "servers", "added_to_pool", "demand_from"],
                [[o[c] for c in ("cpu_count", "users_per_server", "servers", "added_to_pool", "demand_from")] for o in p["options"]])
    click.echo(f"measured pool holds about {fmt(p['pool']['max_users'], 0)} users; {users:,} needs {fmt(p['cores_needed'], 1)} cores")
    for w in report.warnings:
        click.echo(f"warning: {w}")


@click.command()
@click.option("--users", type=int, required=True, help="Concurrent users to plan for.")
@click.option("--run", "runs", multiple=True, required=True, help="Run(s) to take the model from (several: runs tagged `users`).")
@click.option("--slo", "slo_exprs", multiple=True, help="SLO, e.g. p95<2s, errors<1%, cpu<80%, mem<90% (repeatable or comma-separated).")
@click.option("--provider", "providers", multiple=True, type=click.Choice(["aws", "gcp", "azure"]), help="Only these providers.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the plan page (index.html, index.md, assets/) into this folder.")
@click.option("--pool", is_flag=True, help="Size a pool of unequal servers from the run's per-server balance (requests and CPU per server).")
@click.option("--cpu-from", type=click.Choice(["auto", "host", "processes"]), default="auto", show_default=True,
              help="With --pool: per-server CPU from host metrics or from the summed process CPU of each host.")
@store_option
@json_option
@_with(common[3:] + model_options[4:])
def plan(users: int, runs: tuple[str, ...], slo_exprs: tuple[str, ...], providers: tuple[str, ...], out_dir: str | None, pool: bool,
         cpu_from: str, store_dir: str | None, as_json: bool, percentile_method: str, clock_offset: str, min_step_s: int,
         think_time_s: float | None, concurrency: str, cpu_count: float | None, memory_gib: float | None) -> None:
    """What the deployment needs for USERS concurrent users: users per vCPU/GiB and servers per instance type."""
    from capacity.analysis.sizing import ASSUMPTIONS, allocation_grid
    from capacity.analysis.sizing import plan as make_plan

    store = Store.open(store_dir)
    slo = SLO(**parse_slo(slo_exprs))
    if pool:
        _pool_plan(store, runs, users, slo, think_time_s, cpu_from, as_json)
        return
    model = _fit(store, runs, percentile_method, clock_offset, min_step_s, slo, think_time_s, concurrency, cpu_count, memory_gib)
    try:
        doc = make_plan(model, users, providers=providers or None)
        grid = allocation_grid(model)
    except ValueError as exc:
        fail(str(exc))
    doc = {"run": runs[0] if len(runs) == 1 else list(runs), "slo": slo.as_dict(), **doc,
           "allocations": grid.to_dict(orient="records")}
    if out_dir:
        from capacity.report.plan import build_plan_page, render_plan

        click.echo(render_plan(build_plan_page(doc), out_dir), err=as_json)
    if as_json:
        print_json(doc)
        return
    rows = [[t["provider"], t["instance_type"], t["vcpu"], t["memory_gib"], t["users_per_server"]["value"], t["users_per_server"]["lo"],
             t["users_per_server"]["hi"], t["binding"], t["servers"]["value"], f"{fmt(t['servers']['lo'])}-{fmt(t['servers']['hi'])}",
             t["users_per_server_burst"]["value"]] for t in doc["instance_types"]]
    print_table(f"Plan for {users:,} users from {doc['run']}",
                ["provider", "type", "vcpu", "mem GiB", "users/server", "lo", "hi", "binding", "servers", "servers 95 %", "users (burst)"], rows,
                {"users/server": lambda v: fmt(v, 0), "lo": lambda v: fmt(v, 0), "hi": lambda v: fmt(v, 0), "users (burst)": lambda v: fmt(v, 0),
                 "mem GiB": lambda v: fmt(v, 1)})
    for k, label in (("users_per_vcpu", "users per vCPU"), ("users_per_gib", "users per GiB")):
        if doc[k]:
            click.echo(f"{label}: {fmt(doc[k]['value'])} (95 %: {fmt(doc[k]['lo'])}-{fmt(doc[k]['hi'])})")
    click.echo("assumptions:")
    for a in ASSUMPTIONS:
        click.echo(f"  - {a}")
    for w in doc["warnings"]:
        click.echo(f"warning: {w}")
