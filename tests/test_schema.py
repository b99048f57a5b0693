"""The canonical schemas: declarations, `conform`, vocabulary and the generated docs page."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from capacity import schema
from capacity.schema import TABLES, SchemaError, conform, tables_markdown
from tests.conftest import ROOT

UNIT_SUFFIXES = ("_ms", "_bytes", "_pct", "_per_s", "_s", "_rps", "_per_req")


def _ts(values: list[int]) -> pa.Array:
    return pa.array(values, pa.timestamp("ms", tz="UTC"))


def test_every_table_named_in_design_is_declared() -> None:
    for name in ("requests", "request_stats", "load", "host_metrics", "processes", "web_status", "web_traffic", "limits"):
        assert name in TABLES
        spec = TABLES[name]
        assert spec.columns[-1].name == "source" and spec.column("source").required
        assert all(c.description for c in spec.columns)
        names = [c.name for c in spec.columns]
        assert len(names) == len(set(names)), f"{name} declares a column twice"


def test_timestamps_are_utc_everywhere() -> None:
    for spec in TABLES.values():
        for col in spec.columns:
            if pa.types.is_timestamp(col.type):
                assert col.type.tz == "UTC", f"{spec.name}.{col.name}"


def test_conform_casts_orders_and_fills_optional_columns() -> None:
    raw = pa.table({
        "source": ["t"], "label": ["home"], "success": [True], "elapsed_ms": pa.array([12], pa.int32()),
        "ts": _ts([1_700_000_000_000]), "row_kind": ["sample"], "var_user": pa.array([7]),
    })
    out = conform(raw, "requests")
    declared = [c.name for c in TABLES["requests"].columns]
    assert out.column_names == [*declared, "var_user"]
    assert out.schema.field("elapsed_ms").type == pa.float64()
    assert out.column("elapsed_ms").to_pylist() == [12.0]
    assert out.column("var_user").to_pylist() == ["7"]
    assert out.column("bytes").null_count == 1


def test_conform_rejects_missing_unknown_and_null_required() -> None:
    base = {"ts": _ts([1]), "host": ["h"], "metric": ["cpu.user_pct"], "value": [1.0], "source": ["t"]}
    with pytest.raises(SchemaError, match="missing required column.*value"):
        conform(pa.table({k: v for k, v in base.items() if k != "value"}), "host_metrics")
    with pytest.raises(SchemaError, match="unknown column.*colour"):
        conform(pa.table({**base, "colour": ["red"]}), "host_metrics")
    with pytest.raises(SchemaError, match="host.*null"):
        conform(pa.table({**base, "host": pa.array([None], pa.string())}), "host_metrics")
    with pytest.raises(SchemaError, match="not in the vocabulary.*cpu.usr"):
        conform(pa.table({**base, "metric": ["cpu.usr"]}), "host_metrics")
    with pytest.raises(SchemaError, match="naive timestamps"):
        conform(pa.table({**base, "ts": pa.array([1], pa.timestamp("ms"))}), "host_metrics")
    with pytest.raises(SchemaError, match="cannot cast"):
        conform(pa.table({**base, "value": ["high"]}), "host_metrics")
    with pytest.raises(SchemaError, match="unknown table kind"):
        conform(pa.table(base), "metrics")


def test_open_metric_families_are_accepted() -> None:
    table = pa.table({"ts": _ts([1, 2]), "host": ["h", "h"], "metric": ["prom.node_load1", "redis.connected_clients"],
                      "value": [1.0, 2.0], "source": ["t", "t"]})
    assert conform(table, "host_metrics").num_rows == 2


def test_metric_vocabulary_names_carry_their_unit() -> None:
    for name, metric in schema.METRICS.items():
        assert re.fullmatch(r"[a-z]+\.[a-z0-9_]+", name), name
        assert metric.kind in ("gauge", "rate")
        if metric.kind == "rate":
            assert name.endswith("_per_s"), f"rate {name} must end in _per_s"
    for required in ("cpu.user_pct", "cpu.system_pct", "cpu.iowait_pct", "cpu.idle_pct", "cpu.steal_pct", "mem.used_bytes",
                     "mem.available_bytes", "mem.total_bytes", "mem.cached_bytes", "swap.used_bytes", "load.1m", "load.5m",
                     "load.15m", "net.rx_bytes_per_s", "net.tx_bytes_per_s", "disk.read_bytes_per_s", "disk.write_bytes_per_s",
                     "disk.util_pct", "proc.count", "tasks.running"):
        assert required in schema.METRICS


def test_column_units_are_in_names() -> None:
    # Numeric measurement columns say their unit; counts and ids are unitless by nature.
    unitless = {"count", "errors", "active_users", "connected", "group_threads", "pid", "pages", "hits", "visits", "visitors",
                "entries", "exits", "held", "maxheld", "barrier", "limit", "failcnt", "total_accesses", "busy_workers",
                "idle_workers", "max_workers", "processes", "priority", "nice", "value", "rps", "bytes", "sent_bytes",
                "avg_bytes", "load_1m", "load_5m", "load_15m", "total_bytes", "bandwidth_bytes"}
    for spec in TABLES.values():
        for col in spec.columns:
            if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
                ok = col.name in unitless or col.name.startswith(("sb_", "conns_")) or col.name.endswith(UNIT_SUFFIXES)
                assert ok, f"{spec.name}.{col.name} has no unit in its name"


def test_generated_tables_page_is_up_to_date() -> None:
    page = ROOT / "docs" / "tables.md"
    assert page.read_text(encoding="utf-8") == tables_markdown(), "run `python -m capacity.docgen` and commit docs/"
