"""Sizing: users per vCPU and per GiB from a capacity model, projected on instance types (MODELS.md B11)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from capacity.analysis.estimate import Estimate
from capacity.analysis.model import CapacityModel

CATALOG = Path(__file__).resolve().parents[2] / "data" / "instance_types.csv"
GIB = 1024**3
ASSUMPTIONS = (
    "capacity grows linearly with vCPU within one CPU generation (per-core speed factor 1.0)",
    "memory capacity = (memory x memory target - base memory) / memory per user",
    "a latency or error limit measured on the test server scales with its vCPU count",
    "burstable types are sized on their baseline CPU for sustained load; the burst figure assumes credits last",
    "several servers behind a load balancer scale out linearly (no shared bottleneck such as one database)",
)


def load_catalog(path: str | Path | None = None) -> pd.DataFrame:
    """The bundled instance-type catalog (or another CSV with the same columns)."""
    df = pd.read_csv(path or CATALOG)
    df["burstable"] = df["burstable"].astype(str).str.lower().eq("true")
    return df


@dataclass(frozen=True)
class PerResource:
    """What one user costs, from the model: CPU in cores, memory in bytes, plus fixed base costs."""

    cores_per_user: Estimate | None
    base_cores: float
    bytes_per_user: Estimate | None
    base_bytes: float
    slo_users_per_vcpu: Estimate | None
    cpu_target: float
    mem_target: float


def per_resource(model: CapacityModel) -> PerResource:
    """Per-user costs from the model's CPU and memory fits, and the non-resource SLO limit per vCPU."""
    cores = model.cpu_count
    cpu = model.cpu.slope.scaled(cores / 100) if model.cpu and cores else None
    base_cores = model.cpu.intercept.value * cores / 100 if model.cpu and cores else 0.0
    mem = model.mem.slope if model.mem else None
    base_mem = model.mem.intercept.value if model.mem else 0.0
    slo_lim = None
    others = [lim for lim in model.limits if lim.constraint in ("p95", "error_pct", "workers") and math.isfinite(lim.users.value)]
    if others and cores:
        first = min(others, key=lambda lim: lim.users.value)
        slo_lim = first.users.scaled(1 / cores)
    return PerResource(cpu, max(base_cores, 0.0), mem, max(base_mem, 0.0), slo_lim, model.slo.cpu_pct / 100, model.slo.mem_pct / 100)


def users_on(res: PerResource, vcpu: float, memory_bytes: float) -> dict[str, Estimate]:
    """Users one server holds, per constraint and overall (the minimum)."""
    out: dict[str, Estimate] = {}
    if res.cores_per_user is not None and res.cores_per_user.value > 0:
        room = res.cpu_target * vcpu - res.base_cores
        c = res.cores_per_user
        out["cpu"] = Estimate(room / c.value, room / c.hi if c.hi > 0 else math.nan, room / c.lo if c.lo > 0 else math.inf)
    if res.bytes_per_user is not None and res.bytes_per_user.value > 0:
        room = res.mem_target * memory_bytes - res.base_bytes
        m = res.bytes_per_user
        out["memory"] = Estimate(room / m.value, room / m.hi if m.hi > 0 else math.nan, room / m.lo if m.lo > 0 else math.inf)
    if res.slo_users_per_vcpu is not None:
        out["slo"] = res.slo_users_per_vcpu.scaled(vcpu)
    if out:
        vals = list(out.values())
        out["users"] = Estimate(*(max(min(getattr(e, k) for e in vals), 0.0) for k in ("value", "lo", "hi")))
    return out


def _servers(users: int, per: Estimate) -> dict[str, float | None]:
    def n(cap: float) -> float | None:
        return math.ceil(users / cap) if cap > 0 and math.isfinite(cap) else None

    return {"value": n(per.value), "lo": n(per.hi), "hi": n(per.lo)}


def plan(model: CapacityModel, users: int, catalog: pd.DataFrame | None = None,
         providers: tuple[str, ...] | None = None) -> dict[str, object]:
    """The capacity plan for `users` concurrent users: per vCPU and GiB, per instance type, and servers needed."""
    res = per_resource(model)
    if res.cores_per_user is None and res.bytes_per_user is None and res.slo_users_per_vcpu is None:
        raise ValueError("the run has no CPU or memory data and no SLO limit with a known CPU count: nothing to size from "
                         "(record host metrics, or set the host's cpu_count)")
    cat = load_catalog() if catalog is None else catalog
    if providers:
        cat = cat[cat["provider"].isin(providers)]
    rows = []
    for _, t in cat.iterrows():
        mem = float(t["memory_gib"]) * GIB
        sustained_vcpu = float(t["baseline_vcpu"]) if t["burstable"] and pd.notna(t["baseline_vcpu"]) else float(t["vcpu"])
        sustained = users_on(res, sustained_vcpu, mem)
        burst = users_on(res, float(t["vcpu"]), mem)
        per = sustained["users"]
        binding = min((k for k in sustained if k != "users"), key=lambda k: sustained[k].value)
        rows.append({
            "provider": t["provider"], "instance_type": t["instance_type"], "vcpu": int(t["vcpu"]), "memory_gib": float(t["memory_gib"]),
            "burstable": bool(t["burstable"]), "sustained_vcpu": sustained_vcpu,
            "users_per_server": per.as_dict(), "users_per_server_burst": burst["users"].as_dict(), "binding": binding,
            "servers": _servers(users, per), "servers_burst": _servers(users, burst["users"]),
        })
    return {
        "users": users,
        "users_per_vcpu": _per_unit(res, "cpu"),
        "users_per_gib": _per_unit(res, "memory"),
        "cores_per_user": res.cores_per_user.as_dict() if res.cores_per_user else None,
        "base_cores": res.base_cores,
        "bytes_per_user": res.bytes_per_user.as_dict() if res.bytes_per_user else None,
        "base_bytes": res.base_bytes,
        "measured": {"cpu_count": model.cpu_count, "memory_bytes": model.memory_bytes, "max_users": model.max_users},
        "instance_types": rows,
        "assumptions": list(ASSUMPTIONS),
        "warnings": model.warnings,
    }


def _per_unit(res: PerResource, kind: str) -> dict[str, float | None] | None:
    """Marginal users per added vCPU (CPU at target) or per added GiB (memory at target)."""
    if kind == "cpu":
        if res.cores_per_user is None:
            return res.slo_users_per_vcpu.as_dict() if res.slo_users_per_vcpu else None
        c, f = res.cores_per_user, res.cpu_target
    else:
        if res.bytes_per_user is None:
            return None
        c, f = res.bytes_per_user.scaled(1 / GIB), res.mem_target
    return Estimate(f / c.value, f / c.hi if c.hi > 0 else math.nan, f / c.lo if c.lo > 0 else math.inf).as_dict()


def allocation_grid(model: CapacityModel, cores: tuple[float, ...] = (0.5, 1, 2, 4), memory_mib: tuple[int, ...] = (512, 1024, 2048, 4096)) -> pd.DataFrame:
    """Users per CPU/memory allocation (the shape of the Concerto seed's appendix 1 table)."""
    res = per_resource(model)
    rows = []
    for c in cores:
        for m in memory_mib:
            est = users_on(res, c, m * 1024**2)
            u = est.get("users")
            binding = min((k for k in est if k != "users"), key=lambda k: est[k].value) if u else None
            rows.append({"cpu_cores": c, "memory_mib": m, "max_concurrent_users": u.value if u else math.nan,
                         "lo": u.lo if u else math.nan, "hi": u.hi if u else math.nan, "binding": binding})
    return pd.DataFrame(rows)
