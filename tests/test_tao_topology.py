"""The TAO seed's topology on 127.0.0.1: Varnish with a sticky (hash-on-cookie) director in front of two unequal
backends, Redis beside them, a bounded load of test takers; everything recorded by the real tools, ingested
into one run, then the per-server balance (capacity.analysis.balance) and `capacity plan --pool`.

The "8-core" server is a backend process with 8 worker threads and 2 ms of CPU per request; the "4-core"
one has 2 threads and 4 ms per request (slower and smaller). Their CPU is measured by real `top -b -p PID`.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from capacity.analysis.balance import balance_report, pool_plan
from capacity.cli import main
from capacity.store import Store
from tests.servers import _stop
from tests.test_redis import RedisServer, start_redis
from tests.test_varnish import BACKEND_LOG_FORMAT, Backend, Varnish, start_backend, start_varnish, stop_varnish

TAKERS = 12
LOAD_SECONDS = 5.0
THINK_S = 0.02


def tao_vcl(fast: Backend, slow: Backend) -> str:
    """The seed's setup in Varnish 7 terms: the `client` director is now a shard director keyed on the session cookie."""
    return f"""vcl 4.1;
import directors;
probe healthcheck {{ .url = "/version"; .timeout = 600ms; .interval = 0.5s; .window = 5; .threshold = 3; }}
backend {fast.name} {{ .host = "127.0.0.1"; .port = "{fast.port}"; .probe = healthcheck; }}
backend {slow.name} {{ .host = "127.0.0.1"; .port = "{slow.port}"; .probe = healthcheck; }}
sub vcl_init {{
  new clientDirector = directors.shard();
  clientDirector.add_backend({fast.name}, weight = 2);
  clientDirector.add_backend({slow.name}, weight = 1);
  clientDirector.reconfigure();
}}
sub vcl_recv {{ set req.backend_hint = clientDirector.backend(by = KEY, key = clientDirector.key(req.http.cookie)); return (pass); }}
"""


def _taker(base_url: str, number: int, deadline: float, served: list[int]) -> None:
    cookie = f"PHPSESSID=taker{number:04d}"
    done = 0
    for item in range(10_000):
        if time.monotonic() > deadline:
            break
        request = urllib.request.Request(f"{base_url}/taoQtiTest/item?i={item}", headers={"Cookie": cookie})
        urllib.request.urlopen(request, timeout=5).read()  # noqa: S310 - loopback
        done += 1
        time.sleep(THINK_S)
    served.append(done)


def _snapshots(stop: threading.Event, varnish: Varnish, redis: RedisServer, stats: Path, info: Path) -> None:
    while not stop.is_set():
        with stats.open("a") as fh:
            fh.write(varnish.stat())
        with info.open("a") as fh:
            fh.write(f"# ts={time.time():.3f}\n" + redis.cli("INFO"))
        stop.wait(1.0)


@pytest.fixture
def tao_run(tmp_path: Path):
    fast, slow = start_backend("app1", 8, 2.0), start_backend("app2", 2, 4.0)
    varnish = start_varnish(tao_vcl(fast, slow))
    redis, redis_dir = start_redis()
    tops: list[subprocess.Popen] = []
    try:
        files = {"ncsa": tmp_path / "varnishncsa-backend.log", "stats": tmp_path / "varnishstat.json", "info": tmp_path / "redis-info.txt",
                 "app1": tmp_path / "top-app1.txt", "app2": tmp_path / "top-app2.txt"}
        varnish.start_ncsa(files["ncsa"], BACKEND_LOG_FORMAT, backend=True)
        for b in (fast, slow):
            out = files[b.name].open("w")
            tops.append(subprocess.Popen(["top", "-b", "-d", "0.5", "-n", str(int(LOAD_SECONDS * 2) + 6), "-p", str(b.process.pid)],
                                         stdout=out, stderr=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C", "COLUMNS": "200"}))
        stop = threading.Event()
        recorder = threading.Thread(target=_snapshots, args=(stop, varnish, redis, files["stats"], files["info"]))
        recorder.start()
        time.sleep(1.0)
        served: list[int] = []
        deadline = time.monotonic() + LOAD_SECONDS
        takers = [threading.Thread(target=_taker, args=(varnish.base_url, n, deadline, served)) for n in range(TAKERS)]
        for t in takers:
            t.start()
        # Delivery state in Redis, as the seed stores it, during the same window.
        redis.load(requests=3000, clients=4)
        for t in takers:
            t.join(timeout=LOAD_SECONDS + 10)
        time.sleep(1.2)
        stop.set()
        recorder.join(timeout=10)
        for proc in tops:
            proc.wait(timeout=30)
        varnish.stop_loggers()
        assert len(served) == TAKERS and sum(served) > 200
        yield files, sum(served)
    finally:
        for proc in tops:
            if proc.poll() is None:
                proc.kill()
        stop_varnish(varnish)
        for b in (fast, slow):
            _stop(b.process)
        _stop(redis.process)


def test_tao_topology_balance_and_plan(tao_run, tmp_path: Path) -> None:
    files, served = tao_run
    store = Store.open(tmp_path / "store", create=True)
    today = datetime.now(UTC).date().isoformat()
    store.ingest(files["ncsa"], "tao", collector="access_log", host="varnish", options={"log_format": BACKEND_LOG_FORMAT})
    store.ingest(files["stats"], "tao", host="varnish", options={"probe_window": 5, "probe_threshold": 3})
    store.ingest(files["info"], "tao", host="redis")
    store.ingest(files["app1"], "tao", host="app1", options={"date": today})
    store.ingest(files["app2"], "tao", host="app2", options={"date": today})
    store.set_host("tao", "app1", cpu_count=8)
    store.set_host("tao", "app2", cpu_count=4)

    report = balance_report(store, "tao", cpu_from="processes")
    shares = {s.server: s for s in report.servers}
    assert set(shares) == {"app1", "app2"} and report.attribution.startswith("varnishncsa")
    assert shares["app1"].requests + shares["app2"].requests == served
    assert shares["app1"].requests_pct + shares["app2"].requests_pct == pytest.approx(100.0)
    assert all(s.cores_busy and s.cores_busy > 0 for s in report.servers)
    assert shares["app1"].cpu_pct + shares["app2"].cpu_pct == pytest.approx(100.0)
    # The slow server spends about twice the CPU per request (4 ms against 2 ms of work).
    assert shares["app2"].demand_core_s > 1.3 * shares["app1"].demand_core_s
    # Varnish saw the same backend split, and both backends healthy.
    vbe = store.sql("SELECT device, sum(value) AS v FROM host_metrics WHERE metric = 'varnish.backend_healthy' GROUP BY 1")
    assert set(vbe["device"]) == {"app1", "app2"}
    redis_ops = store.sql("SELECT max(value) AS v FROM host_metrics WHERE metric = 'redis.ops_per_s'")["v"][0]
    assert redis_ops > 100

    plan = pool_plan(report, 1000, think_time_s=30.0, cpu_target_pct=80.0)
    sizes = {o["cpu_count"]: o for o in plan["options"]}
    assert set(sizes) == {8.0, 4.0}
    # Per core, the 4-core server's slower requests hold fewer users than the 8-core's.
    assert sizes[4.0]["users_per_server"] / 4 < sizes[8.0]["users_per_server"] / 8
    assert plan["pool"]["max_users"] == pytest.approx(sum(s["max_users"] for s in plan["pool"]["servers"]))
    cycle = plan["response_s"] + 30.0
    assert plan["throughput_needed_rps"] == pytest.approx(1000 / cycle)

    result = CliRunner().invoke(main, ["plan", "--users", "1000", "--run", "tao", "--store", str(tmp_path / "store"), "--pool",
                                       "--cpu-from", "processes", "--think-time-s", "30", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {s["server"] for s in doc["balance"]["servers"]} == {"app1", "app2"}
    assert doc["plan"]["options"][0]["servers"] >= 1
