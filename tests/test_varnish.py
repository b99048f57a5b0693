"""varnishstat -j files, and a real varnishd (Debian `varnish`) in front of real local backends on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors import access_log, registry, varnishstat_json
from collectors.base import CollectorError
from tests.servers import _stop, free_port

DATA = Path(__file__).resolve().parent / "data" / "varnishstat_json"
VARNISHD = shutil.which("varnishd") or "/usr/sbin/varnishd"
VARNISHSTAT = shutil.which("varnishstat") or "/usr/bin/varnishstat"
VARNISHNCSA = shutil.which("varnishncsa") or "/usr/bin/varnishncsa"
BACKEND_LOG_FORMAT = '%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i" %D %{VSL:BackendOpen[2]}x'

# A backend: a separate Python process (so its CPU is its own), `threads` workers at most,
# each request burning `work_ms` of CPU; `/version` answers the Varnish probe.
BACKEND_CODE = """
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, threads, work_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
slots = threading.BoundedSemaphore(threads)
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        with slots:
            end = time.thread_time() + work_ms / 1000.0
            while self.path != "/version" and time.thread_time() < end:
                pass
            body = b"ok\\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@dataclass
class Backend:
    """One backend process."""

    name: str
    port: int
    process: subprocess.Popen


def start_backend(name: str, threads: int, work_ms: float) -> Backend:
    """A backend process on a free loopback port, answering once up."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BACKEND_CODE, str(port), str(threads), str(work_ms)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=1).read()  # noqa: S310 - loopback
            return Backend(name, port, process)
        except OSError:
            time.sleep(0.05)
    _stop(process)
    raise RuntimeError(f"backend {name} did not answer")


@dataclass
class Varnish:
    """A running varnishd of our own (its -n working dir, port, process)."""

    port: int
    workdir: Path
    process: subprocess.Popen
    loggers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stat(self, *filters: str) -> str:
        """One real `varnishstat -j` output."""
        args = [a for f in filters for a in ("-f", f)]
        return subprocess.run([VARNISHSTAT, "-n", str(self.workdir), "-j", *args], capture_output=True, timeout=10, check=True).stdout.decode()

    def start_ncsa(self, path: Path, fmt: str, backend: bool = False) -> subprocess.Popen:
        """A real varnishncsa writing `path` (stopped at teardown)."""
        cmd = [VARNISHNCSA, "-n", str(self.workdir), "-F", fmt, "-w", str(path), *(["-b"] if backend else [])]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.loggers.append(proc)
        return proc

    def stop_loggers(self) -> None:
        """Stop every varnishncsa (SIGTERM flushes its file)."""
        for proc in self.loggers:
            _stop(proc)
        self.loggers.clear()


def start_varnish(vcl: str) -> Varnish:
    """varnishd -F on a free loopback port with a temporary -n dir, answering once up."""
    if not Path(VARNISHD).exists():
        pytest.fail("varnishd is not installed: apt-get install varnish (requirements-apt.txt)")
    workdir = Path(tempfile.mkdtemp(prefix="capacity-varnish-"))
    # varnishd drops to its own user when started as root: the dir and VCL must be readable.
    workdir.chmod(0o755)
    (workdir / "default.vcl").write_text(vcl)
    (workdir / "default.vcl").chmod(0o644)
    port = free_port()
    process = subprocess.Popen([VARNISHD, "-F", "-n", str(workdir / "n"), "-a", f"127.0.0.1:{port}", "-T", "127.0.0.1:0",
                                "-f", str(workdir / "default.vcl"), "-s", "malloc,32m", "-p", "thread_pools=1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Varnish(port, workdir / "n", process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"varnishd exited: {process.stderr.read().decode(errors='replace') if process.stderr else ''}")
        try:
            server.stat("MAIN.uptime")
            urllib.request.urlopen(server.base_url + "/version", timeout=1).read()  # noqa: S310 - loopback
            return server
        except (OSError, subprocess.CalledProcessError):
            time.sleep(0.1)
    _stop(process)
    raise RuntimeError("varnishd did not answer within 20 s")


def stop_varnish(server: Varnish) -> None:
    """Stop the loggers and varnishd, remove the working dir."""
    server.stop_loggers()
    _stop(server.process)
    shutil.rmtree(server.workdir.parent, ignore_errors=True)


def vcl_for(backends: list[Backend], dead_port: int | None = None) -> str:
    """VCL: the seed's probe on every backend, a round-robin over the live ones, `/sick` to a dead one."""
    probe = 'probe hc { .url = "/version"; .interval = 0.5s; .timeout = 500ms; .window = 5; .threshold = 3; }\n'
    parts = ["vcl 4.1;", "import directors;", probe]
    for b in backends:
        parts.append(f'backend {b.name} {{ .host = "127.0.0.1"; .port = "{b.port}"; .probe = hc; }}')
    if dead_port:
        parts.append(f'backend dead {{ .host = "127.0.0.1"; .port = "{dead_port}"; .probe = hc; }}')
    parts.append("sub vcl_init { new pool = directors.round_robin();")
    parts += [f"  pool.add_backend({b.name});" for b in backends]
    parts.append("}")
    route = 'if (req.url ~ "^/sick") { set req.backend_hint = dead; return (pass); }' if dead_port else ""
    parts.append(f'sub vcl_recv {{ set req.backend_hint = pool.backend(); {route} if (req.url ~ "^/static") {{ return (hash); }} return (pass); }}')
    parts.append('sub vcl_backend_response { if (bereq.url ~ "^/static") { set beresp.ttl = 60s; set beresp.uncacheable = false; return (deliver); } }')
    return "\n".join(parts) + "\n"


def get_many(url: str, count: int, threads: int = 4, limit_s: float = 30.0) -> int:
    """At most `count` GETs within `limit_s`; how many got any HTTP answer."""
    deadline = time.monotonic() + limit_s

    def one(_: int) -> int:
        if time.monotonic() > deadline:
            return 0
        try:
            urllib.request.urlopen(url, timeout=5).read()  # noqa: S310 - loopback
        except urllib.error.HTTPError:
            pass
        return 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(one, range(count)))


@pytest.fixture(scope="module")
def varnish_stack() -> Iterator[tuple[Varnish, list[Backend]]]:
    """varnishd in front of two live backends, plus a probed backend with nothing listening."""
    backends = [start_backend("app1", 4, 1.0), start_backend("app2", 2, 1.0)]
    server = start_varnish(vcl_for(backends, dead_port=free_port()))
    try:
        yield server, backends
    finally:
        stop_varnish(server)
        for b in backends:
            _stop(b.process)


def _rows(table, metric: str, device: str | None = None) -> list[tuple[datetime, float]]:
    return [(r["ts"], r["value"]) for r in table.to_pylist() if r["metric"] == metric and (device is None or r["device"] == device)]


# -- saved files -----------------------------------------------------------------------------


def _raw_series(path: Path) -> list[dict]:
    decoder, text, pos, out = json.JSONDecoder(), path.read_text(), 0, []
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text):
            obj, pos = decoder.raw_decode(text, pos)
            out.append(obj)
    return out


def test_series_rates_match_counter_deltas() -> None:
    path = DATA / "series-filtered-appended.json"
    raw = _raw_series(path)
    table = varnishstat_json.read(path, probe_window=5, probe_threshold=3)["host_metrics"]
    c = [{k: v["value"] for k, v in o["counters"].items()} for o in raw]
    t = [datetime.fromisoformat(o["timestamp"]).replace(tzinfo=UTC) for o in raw]
    rates = dict(_rows(table, "varnish.client_req_per_s"))
    assert t[0] not in rates, "the first snapshot of a series has no rate"
    for i in (1, 2, 3):
        span = (t[i] - t[i - 1]).total_seconds()
        assert rates[t[i]] == pytest.approx((c[i]["MAIN.client_req"] - c[i - 1]["MAIN.client_req"]) / span)
        hits, misses = (c[i][k] - c[i - 1][k] for k in ("MAIN.cache_hit", "MAIN.cache_miss"))
        assert dict(_rows(table, "varnish.hit_ratio_pct"))[t[i]] == pytest.approx(100 * hits / (hits + misses))
        app1 = dict(_rows(table, "varnish.backend_req_per_s", "app1"))[t[i]]
        assert app1 == pytest.approx((c[i]["VBE.boot.app1.req"] - c[i - 1]["VBE.boot.app1.req"]) / span)
    assert dict(_rows(table, "varnish.backend_req_per_s", "all"))[t[3]] > 0
    health = {d: v for _, v, d in ((r["ts"], r["value"], r["device"]) for r in table.to_pylist() if r["metric"] == "varnish.backend_healthy")}
    assert health == {"app1": 1.0, "app2": 0.0, "app3": 1.0}  # probed and up, probed and down, no probe


def test_single_snapshot_is_a_lifetime_average_in_local_time() -> None:
    path = DATA / "single-filtered-local-time-Europe-Paris.json"
    notes: list[str] = []
    table = varnishstat_json.read(path, tz="Europe/Paris", warn=notes.append)["host_metrics"]
    assert notes and "since the varnishd child started" in notes[0]
    (ts, value), = _rows(table, "varnish.client_req_per_s")
    assert ts == datetime(2026, 11, 22, 1, 24, 53, tzinfo=UTC)
    assert value == pytest.approx(456 / 73)
    assert dict(_rows(table, "varnish.hit_ratio_pct"))[ts] == pytest.approx(100 * 230 / 456)


def test_unfiltered_snapshot_keeps_gauges() -> None:
    table = varnishstat_json.read(DATA / "single-snapshot-7.1.json")["host_metrics"]
    assert _rows(table, "varnish.threads")[0][1] == 200.0
    assert {d for _, _, d in ((0, 0, r["device"]) for r in table.to_pylist() if r["metric"] == "varnish.backend_conn")} == {"app1", "app2", "app3"}


@pytest.mark.parametrize(("name", "words"), [("truncated-mid-object.json", "invalid JSON"), ("garbage.json", "invalid JSON")])
def test_bad_files(name: str, words: str) -> None:
    with pytest.raises(CollectorError) as info:
        varnishstat_json.read(DATA / "bad" / name)
    assert words in info.value.reason and info.value.line is not None


def test_healthy_follows_the_probe_window() -> None:
    assert varnishstat_json.healthy(0b111, 5, 3)
    assert not varnishstat_json.healthy(0b1100000000, 5, 3)  # a dead backend: only the initial bits, shifted out
    assert varnishstat_json.healthy(0b10101, 5, 3) and not varnishstat_json.healthy(0b10100, 5, 3)


# -- the real varnishd -------------------------------------------------------------------------


def test_real_varnish_stats_and_backend_log(varnish_stack, tmp_path: Path) -> None:
    server, backends = varnish_stack
    log = tmp_path / "varnishncsa-backend.log"
    server.start_ncsa(log, BACKEND_LOG_FORMAT, backend=True)
    time.sleep(0.5)
    stats = tmp_path / "varnishstat.json"
    stats.write_text(server.stat())
    assert get_many(server.base_url + "/page", 200) == 200
    assert get_many(server.base_url + "/static/logo.png", 50) == 50
    assert get_many(server.base_url + "/sick", 5) == 5
    time.sleep(1.1)
    with stats.open("a") as fh:
        fh.write(server.stat())
    server.stop_loggers()
    assert registry.detect(stats) is varnishstat_json
    table = varnishstat_json.read(stats, probe_window=5, probe_threshold=3)["host_metrics"]
    raw = _raw_series(stats)
    end = datetime.fromisoformat(raw[1]["timestamp"]).replace(tzinfo=UTC)
    span = (end - datetime.fromisoformat(raw[0]["timestamp"]).replace(tzinfo=UTC)).total_seconds()
    counters = [{k: v["value"] for k, v in o["counters"].items()} for o in raw]
    expected = (counters[1]["MAIN.client_req"] - counters[0]["MAIN.client_req"]) / span
    assert dict(_rows(table, "varnish.client_req_per_s"))[end] == pytest.approx(expected)
    assert counters[1]["MAIN.client_req"] - counters[0]["MAIN.client_req"] >= 255
    assert dict(_rows(table, "varnish.cache_hit_per_s"))[end] > 0  # /static is cached after its first miss
    health = {r["device"]: r["value"] for r in table.to_pylist() if r["metric"] == "varnish.backend_healthy" and r["ts"] == end}
    assert health == {"app1": 1.0, "app2": 1.0, "dead": 0.0}
    per_backend = {b.name: dict(_rows(table, "varnish.backend_req_per_s", b.name))[end] * span for b in backends}
    assert per_backend["app1"] == pytest.approx(per_backend["app2"], abs=2)  # round robin
    # The backend-side log names the backend of every fetch.
    requests = access_log.read(log, log_format=BACKEND_LOG_FORMAT)["requests"].to_pandas()
    served = requests.groupby("var_backend").size().to_dict()
    assert served["app1"] + served["app2"] >= 200 and abs(served["app1"] - served["app2"]) <= 2
    assert set(requests["label"]) >= {"GET /page", "GET /static/logo.png"}
    assert os.path.getsize(log) > 0
