"""Builders of synthetic canonical tables with known parameters, shared by the analysis tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from capacity.schema import conform
from capacity.store import Store

DATA = Path(__file__).resolve().parent / "data"
STEP_JTL = DATA / "jmeter_jtl" / "step-load-idle-connect.jtl"
T0 = 1_795_300_000_000  # ms, a 2026 epoch like the corpus


def write(store: Store, run: str, kind: str, table: pa.Table, name: str, tags: dict[str, str] | None = None, host: str | None = None) -> None:
    """Conform `table` and store it in `run` as one input."""
    table = conform(table, kind)
    digest = hashlib.sha256(f"{run}/{name}/{kind}/{table.num_rows}".encode()).hexdigest()
    with store.locked():
        store.write_batches(run, [(kind, table)], provenance={"path": name, "sha256": digest, "collector": "synthetic", "part_name": name},
                            tags=tags, host=host)


def ts(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype="int64"), pa.timestamp("ms", tz="UTC"))


def step_run(store: Store, run: str, levels: list[int], step_s: int, rps: list[float], cpu: list[float], mem: list[float],
             mean_ms: list[float], host_shift_s: int = 0, generators: int = 1, seed: int = 0) -> None:
    """A synthetic stepped run: requests (evenly spread), per-generator active users and 1 s host metrics."""
    rng = np.random.default_rng(seed)
    t_ms, el, users, gens = [], [], [], []
    h_ts, h_metric, h_val = [], [], []
    for k, (n, x, c, m, r) in enumerate(zip(levels, rps, cpu, mem, mean_ms, strict=True)):
        start = T0 + k * step_s * 1000
        count = int(x * step_s)
        starts = start + np.sort(rng.uniform(0, step_s * 1000, count)).astype("int64")
        t_ms.append(starts)
        el.append(rng.exponential(r, count))
        g = np.arange(count) % generators
        gens.append(g)
        users.append(np.where(g < n % generators, n // generators + 1, n // generators))
        for s in range(step_s):
            sec = start + s * 1000 + 500 - host_shift_s * 1000
            h_ts += [sec, sec]
            h_metric += ["cpu.busy_pct", "mem.used_bytes"]
            h_val += [c + rng.normal(0, 0.5), m + rng.normal(0, 1e6)]
    t_all = np.concatenate(t_ms)
    g_all = np.concatenate(gens)
    req = pa.table({
        "ts": ts(t_all), "elapsed_ms": np.concatenate(el), "label": ["page"] * len(t_all), "success": [True] * len(t_all),
        "row_kind": ["sample"] * len(t_all), "active_users": np.concatenate(users).astype("int64"),
        "generator": [f"gen{i}" for i in g_all], "source": ["synthetic"] * len(t_all),
    })
    write(store, run, "requests", req, f"{run}-requests")
    hm = pa.table({"ts": ts(np.array(h_ts)), "host": ["web1"] * len(h_ts), "metric": h_metric, "device": [None] * len(h_ts),
                   "value": np.array(h_val, float), "source": ["synthetic"] * len(h_ts)})
    write(store, run, "host_metrics", hm, f"{run}-host", host="web1")
