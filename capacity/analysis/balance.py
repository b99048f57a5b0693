"""Per-server balance of a pool behind a load balancer, and the capacity of a pool of unequal servers.

`balance_report` answers "who did the work": for each application server of a
run, its requests (count, rate, share), its CPU (cores busy, share,
utilisation of its own cores), its response times, and its CPU service demand
D_i = cores busy / X_i (utilisation law, MODELS.md B9).

Which server served a request, in order of preference:
1. `requests.var_backend` (a `varnishncsa -b` log whose format ends with
   `%{VSL:BackendOpen[2]}x`): the Varnish backend name;
2. the host an access log was ingested with (`capacity ingest --host app1`);
3. without request rows, `varnish.backend_req_per_s` by backend from `varnishstat -j`.
Servers are matched to CPU data by name: name the Varnish backends like the
hosts (or pass `aliases={"backend": "host"}`).

CPU per server: `host_metrics` busy % x the host's CPU count (`cpu_from="host"`),
or the summed `processes.cpu_pct` of the host's processes (`cpu_from="processes"`,
for servers measured with `top -b -p <pids>`, e.g. several servers sharing
one machine in a test); `auto` takes host metrics when the host has them.

`pool_plan` treats the pool as the sum of its servers (the TAO seed: an 8-core
and a 4-core php-fpm server behind Varnish): each server i holds
X_i,max = cores_i x U_target / D_i requests/s, the pool the sum; users map to
throughput by Little's law, N = X (R + Z). For a target N it gives the cores
needed and how many servers of each size reach it, alone or added to the
measured pool.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import pandas as pd

from capacity.analysis.align import CPU_BUSY_SQL, users_per_second
from capacity.store import Store

ASSUMPTIONS = (
    "each server's CPU demand per request (D_i = cores busy / requests per s) stays constant up to the CPU target",
    "the balancer can send each server a share proportional to its capacity (weights set accordingly)",
    "response time R is the measured mean; near saturation it grows, so users per server are an upper bound",
    "shared tiers (Redis, the balancer, a database) are not the bottleneck; check their own metrics",
)


@dataclass
class ServerShare:
    """One application server's part of the run."""

    server: str
    requests: int
    rps: float
    requests_pct: float
    mean_ms: float | None
    p95_ms: float | None
    errors: int
    cores_busy: float | None = None
    cpu_pct: float | None = None
    cpu_count: float | None = None
    utilisation_pct: float | None = None
    demand_core_s: float | None = None


@dataclass
class BalanceReport:
    """Per-server shares of one run over its request window."""

    run: str
    start: pd.Timestamp
    end: pd.Timestamp
    attribution: str
    cpu_from: str
    servers: list[ServerShare]
    users: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Length of the window the shares cover."""
        return max((self.end - self.start).total_seconds(), 1e-9)

    def frame(self) -> pd.DataFrame:
        """One row per server."""
        return pd.DataFrame([asdict(s) for s in self.servers])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"run": self.run, "start": self.start.isoformat(), "end": self.end.isoformat(), "seconds": self.seconds,
                "attribution": self.attribution, "cpu_from": self.cpu_from, "users": self.users,
                "servers": [asdict(s) for s in self.servers], "warnings": self.warnings}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}


def _request_stats(con: duckdb.DuckDBPyConnection, source_sql: str, key: str, params: list[Any]) -> pd.DataFrame:
    return con.execute(
        f"SELECT {key} AS server, count(*) AS requests, avg(elapsed_ms) AS mean_ms, "
        "quantile_cont(elapsed_ms, 0.95) AS p95_ms, count(*) FILTER (WHERE NOT success) AS errors, "
        f"min(ts) AS t0, max(ts) AS t1 FROM {source_sql} GROUP BY 1 ORDER BY 1", params).df()


def _requests_by_server(store: Store, con: duckdb.DuckDBPyConnection, run: str,
                        aliases: dict[str, str]) -> tuple[pd.DataFrame, str]:
    if "var_backend" in _columns(con, "requests"):
        got = _request_stats(con, "requests WHERE run_id = ? AND row_kind = 'sample' AND var_backend IS NOT NULL", "var_backend", [run])
        if not got.empty:
            got["server"] = got["server"].map(lambda s: aliases.get(s, s))
            return got, "varnishncsa backend name (var_backend)"
    files = [(f["host"], store.root / f["parts"]["requests"]) for f in store.catalog()["runs"][run]["files"]
             if f.get("host") and "requests" in f.get("parts", {})]
    if files:
        frames = []
        for host, part in files:
            got = _request_stats(con, "read_parquet(?) WHERE row_kind = 'sample'", "?", [host, str(part)])
            frames.append(got)
        df = pd.concat(frames).groupby("server", as_index=False).agg(
            requests=("requests", "sum"), mean_ms=("mean_ms", "mean"), p95_ms=("p95_ms", "max"), errors=("errors", "sum"),
            t0=("t0", "min"), t1=("t1", "max"))
        return df, "host of each ingested access log"
    vbe = con.execute(
        "SELECT device AS server, avg(value) AS rps, min(ts) AS t0, max(ts) AS t1 FROM host_metrics "
        "WHERE run_id = ? AND metric = 'varnish.backend_req_per_s' AND device IS NOT NULL AND device <> 'all' GROUP BY 1",
        [run]).df()
    if not vbe.empty:
        vbe["server"] = vbe["server"].map(lambda s: aliases.get(s, s))
        span = (vbe["t1"].max() - vbe["t0"].min()).total_seconds()
        vbe["requests"] = (vbe["rps"] * span).round().astype(int)
        vbe["mean_ms"], vbe["p95_ms"], vbe["errors"] = None, None, 0
        return vbe.drop(columns="rps"), "varnishstat per-backend request rate"
    raise ValueError(f"run {run!r} has no requests by server: ingest varnishncsa -b logs with %{{VSL:BackendOpen[2]}}x, "
                     "access logs with --host, or varnishstat -j snapshots")


def _cores_busy(con: duckdb.DuckDBPyConnection, run: str, host: str, cpu_count: float | None, cpu_from: str,
                start: pd.Timestamp, end: pd.Timestamp) -> tuple[float | None, str | None]:
    if cpu_from in ("auto", "host"):
        busy = con.execute(f"SELECT avg(value) FROM ({CPU_BUSY_SQL}) WHERE host = $host AND ts BETWEEN $a AND $b",
                           {"run": run, "host": host, "a": start, "b": end}).fetchone()[0]
        if busy is not None and cpu_count:
            return float(busy) / 100.0 * cpu_count, "host"
        if cpu_from == "host":
            return None, None
    per_sample = con.execute(
        "SELECT avg(total) FROM (SELECT ts, sum(cpu_pct) AS total FROM processes WHERE run_id = ? AND host = ? AND ts BETWEEN ? AND ? "
        "GROUP BY ts)", [run, host, start, end]).fetchone()[0]
    return (float(per_sample) / 100.0, "processes") if per_sample is not None else (None, None)


def balance_report(store: Store, run: str, *, cpu_from: str = "auto", aliases: dict[str, str] | None = None,
                   cpu_counts: dict[str, float] | None = None) -> BalanceReport:
    """Shares of requests and CPU per application server of `run` (see the module docstring)."""
    if cpu_from not in ("auto", "host", "processes"):
        raise ValueError("cpu_from must be 'auto', 'host' or 'processes'")
    store.run(run)  # a clear error for an unknown run
    hosts: dict[str, dict[str, Any]] = store.catalog()["runs"][run].get("hosts", {})
    con = store.connect([run])
    try:
        reqs, attribution = _requests_by_server(store, con, run, aliases or {})
        start, end = pd.Timestamp(reqs["t0"].min()), pd.Timestamp(reqs["t1"].max())
        seconds = max((end - start).total_seconds(), 1e-9)
        total = float(reqs["requests"].sum())
        servers, warnings, used = [], [], set()
        for _, r in reqs.iterrows():
            name = str(r["server"])
            count = (cpu_counts or {}).get(name) or (hosts.get(name) or {}).get("cpu_count")
            cores, how = _cores_busy(con, run, name, count, cpu_from, start, end)
            if how:
                used.add(how)
            else:
                warnings.append(f"{name}: no CPU data (host metrics or processes) for this host name")
            rps = float(r["requests"]) / seconds
            servers.append(ServerShare(
                server=name, requests=int(r["requests"]), rps=rps, requests_pct=100.0 * float(r["requests"]) / total if total else 0.0,
                mean_ms=None if pd.isna(r["mean_ms"]) else float(r["mean_ms"]), p95_ms=None if pd.isna(r["p95_ms"]) else float(r["p95_ms"]),
                errors=int(r["errors"]), cores_busy=cores, cpu_count=float(count) if count else None,
                utilisation_pct=100.0 * cores / count if cores is not None and count else None,
                demand_core_s=cores / rps if cores is not None and rps > 0 else None))
        all_cores = sum(s.cores_busy for s in servers if s.cores_busy is not None)
        for s in servers:
            if s.cores_busy is not None and all_cores > 0:
                s.cpu_pct = 100.0 * s.cores_busy / all_cores
            if s.cpu_count is None:
                warnings.append(f"{s.server}: CPU count unknown (set it with the run's host info or cpu_counts)")
        users = users_per_second(con, run)
        window = users[(users.index >= start.floor("s")) & (users.index <= end.ceil("s"))] if not users.empty else users
        mean_users = float(window.mean()) if not window.empty else None
    finally:
        con.close()
    return BalanceReport(run, start, end, attribution, "+".join(sorted(used)) or "none", servers, mean_users, warnings)


def pool_plan(report: BalanceReport, users: int, *, think_time_s: float | None = None, cpu_target_pct: float = 80.0,
              sizes: list[float] | None = None) -> dict[str, Any]:
    """How many servers of which size hold `users` concurrent users, from the measured pool (see the module docstring)."""
    measured = [s for s in report.servers if s.demand_core_s and s.cpu_count]
    if not measured:
        raise ValueError("no server has both requests and CPU data with a known CPU count: cannot size the pool")
    u = cpu_target_pct / 100.0
    x_total = sum(s.rps for s in report.servers)
    weighted = [(s.mean_ms, s.requests) for s in report.servers if s.mean_ms is not None]
    r_s = sum(m * n for m, n in weighted) / sum(n for _, n in weighted) / 1000.0 if weighted else 0.0
    if think_time_s is None:
        if report.users is None:
            raise ValueError("think time unknown: the run has no users (load) data; give think_time_s")
        think_time_s = max(report.users / x_total - r_s, 0.0)
    cycle = r_s + think_time_s
    if cycle <= 0:
        raise ValueError("response time plus think time is 0: give a positive think time")
    demand = sum(s.cores_busy for s in measured) / sum(s.rps for s in measured)
    per_server = []
    for s in measured:
        x_max = s.cpu_count * u / s.demand_core_s
        per_server.append({"server": s.server, "cpu_count": s.cpu_count, "demand_core_s": s.demand_core_s,
                           "max_rps": x_max, "max_users": x_max * cycle})
    pool_rps = sum(p["max_rps"] for p in per_server)
    x_needed = users / cycle
    cores_needed = x_needed * demand / u
    by_size = {s.cpu_count: s.demand_core_s for s in measured}
    options = []
    for size in sorted(set(sizes or []) | set(by_size), reverse=True):
        d = by_size.get(size, demand)
        per = size * u / d
        options.append({
            "cpu_count": size, "demand_core_s": d, "demand_from": "measured server of this size" if size in by_size else "pool average",
            "users_per_server": per * cycle, "servers": math.ceil(x_needed / per),
            "added_to_pool": max(math.ceil((x_needed - pool_rps) / per), 0),
        })
    return {
        "users": users, "think_time_s": think_time_s, "response_s": r_s, "cpu_target_pct": cpu_target_pct,
        "throughput_needed_rps": x_needed, "pool_demand_core_s": demand, "cores_needed": cores_needed,
        "pool": {"servers": per_server, "max_rps": pool_rps, "max_users": pool_rps * cycle, "enough": pool_rps >= x_needed},
        "options": options, "assumptions": list(ASSUMPTIONS),
    }
