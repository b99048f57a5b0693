"""`capacity collect http`: health, plain-number and Prometheus-text endpoints (Concerto's /api/check/*), and failures.

Concerto itself cannot run here; a real HTTP server on 127.0.0.1 answers with
the exact bodies of Concerto's ChecksController (FORMATS.md A6.3), including
the `1,234.0` thousands separator PHP's number_format writes at >= 1000 sessions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from capacity.cli import main
from capacity.live.http import HttpCheckSource
from capacity.live.loop import SourceError
from capacity.store import Store
from tests.live_servers import ScriptedHTTP
from tests.servers import free_port

PROMETHEUS_BODY = (b"# HELP session_count Estimated session count\n# TYPE session_count counter\nsession_count 1,234.0\n"
                   b"# HELP health Health check\n# TYPE health counter\nhealth 1.0\n")


def concerto(index: int, path: str) -> tuple[int, bytes, float]:
    """Concerto's check endpoints; health fails on the third call."""
    if path == "/api/check/prometheus":
        return 200, PROMETHEUS_BODY, 0.0
    if path == "/api/check/session_count":
        return 200, b"1,234", 0.0
    if path == "/api/check/health":
        return (500, b"", 0.0) if index == 2 else (200, b"", 0.0)
    return 404, b"not found", 0.0


def _by_metric(tables) -> dict[tuple[str, str | None], list[float]]:
    out: dict[tuple[str, str | None], list[float]] = {}
    for _, table in tables:
        for r in table.to_pylist():
            out.setdefault((r["metric"], r["device"]), []).append(r["value"])
    return out


def test_prometheus_body_with_thousands_separator() -> None:
    with ScriptedHTTP(concerto) as server:
        source = HttpCheckSource(server.url + "/api/check/prometheus", host="concerto")
        got = _by_metric(source.poll(datetime.now(UTC)))
    assert got[("app.session_count", None)] == [1234.0]
    assert got[("app.health", None)] == [1.0]  # the body's own health line
    assert got[("app.health", "/api/check/prometheus")] == [1.0]
    assert got[("app.status_code", "/api/check/prometheus")] == [200.0]
    assert got[("app.response_ms", "/api/check/prometheus")][0] > 0


def test_plain_number_endpoint_is_a_gauge_named_after_the_path() -> None:
    with ScriptedHTTP(concerto) as server:
        got = _by_metric(HttpCheckSource(server.url + "/api/check/session_count").poll(datetime.now(UTC)))
    assert got[("app.session_count", None)] == [1234.0]


def test_health_status_500_is_health_zero_not_a_gap() -> None:
    with ScriptedHTTP(concerto) as server:
        source = HttpCheckSource(server.url + "/api/check/health")
        health = [_by_metric(source.poll(datetime.now(UTC)))[("app.health", "/api/check/health")][0] for _ in range(4)]
    assert health == [1.0, 1.0, 0.0, 1.0]


def test_garbage_number_body_is_a_failed_poll() -> None:
    with ScriptedHTTP(lambda i, p: (200, b"<html>oops</html>", 0.0)) as server:
        with pytest.raises(SourceError, match="not a number"):
            HttpCheckSource(server.url + "/n", kind="number").poll(datetime.now(UTC))


def test_cli_records_health_and_sessions(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with ScriptedHTTP(concerto) as server:
        result = CliRunner().invoke(main, ["collect", "http", server.url + "/api/check/prometheus", "--run", "concerto", "--store", str(store),
                                           "--interval", "0.2", "--duration", "1.1", "--flush-every", "0.5", "--host", "concerto1"])
    assert result.exit_code == 0, result.output
    df = Store.open(store).df("host_metrics", ["concerto"])
    sessions = df[df.metric == "app.session_count"]
    assert len(sessions) >= 4 and (sessions["value"] == 1234.0).all()
    assert set(df["host"]) == {"concerto1"} and set(df["source"]) == {"http_check_live"}


def test_cli_no_answer_is_a_gap_and_health_zero(tmp_path: Path) -> None:
    store = tmp_path / "store"
    url = f"http://127.0.0.1:{free_port()}/api/check/health"
    result = CliRunner().invoke(main, ["collect", "http", url, "--run", "down", "--store", str(store), "--interval", "0.2",
                                       "--duration", "1.2", "--retry-max", "0.2", "--timeout", "0.5", "--flush-every", "0.5"])
    assert result.exit_code == 0, result.output
    assert "recorded as health 0" in result.output
    s = Store.open(store)
    df = s.df("host_metrics", ["down"])
    assert len(df) >= 3 and set(df["metric"]) == {"app.health"} and (df["value"] == 0.0).all()
    gaps = [g for f in s.catalog()["runs"]["down"]["files"] for g in f.get("gaps", [])]
    assert gaps and gaps[-1]["end"] is None and "no answer" in gaps[-1]["error"]
