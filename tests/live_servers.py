"""Real servers for the live-collection tests, on 127.0.0.1, built on `tests.servers`.

- `stoppable_apache`: an Apache of its own (function scope) that a test may
  stop completely and start again on the same port, unlike the shared
  session one, whose other users expect it to stay up.
- `prometheus_server`: a real Prometheus with a temporary config and TSDB
  scraping the session's real node_exporter every second.
- `ScriptedHTTP`: a real HTTP server on 127.0.0.1 answering from a script
  (good body, garbage, error status, too slow), for the fault cases a real
  Apache or Prometheus cannot be made to produce on demand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import APACHE, ApacheServer, NodeExporter, _stop, _wait_until_up, fetch, free_port, running_apache

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMETHEUS_CONF = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


def stop_apache(server: ApacheServer) -> None:
    """Stop the server completely (SIGTERM, wait): the port stops answering."""
    _stop(server.process)


def start_apache_again(server: ApacheServer) -> None:
    """Start a new Apache process from the same config and port: every counter starts from zero."""
    conf = server.root / "httpd.conf"
    server.process = subprocess.Popen([APACHE, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_until_up(server.status_url, server.process, "apache2 (started again)")


@pytest.fixture
def stoppable_apache() -> Iterator[ApacheServer]:
    """An Apache of the test's own, which the test may stop and start again."""
    with running_apache() as server:
        yield server


@dataclass
class PrometheusServer:
    """A running Prometheus and the exporter it scrapes."""

    port: int
    process: subprocess.Popen
    exporter: NodeExporter
    started: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: object) -> dict:
        """One raw API call (GET), decoded."""
        return json.loads(fetch(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=10))

    def wait_for_samples(self, count: int, limit_s: float = 30.0) -> None:
        """Wait until `up` of the node job has at least `count` scraped samples."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            body = self.api("/api/v1/query", query='count_over_time(up{job="node"}[5m])')
            result = body["data"]["result"]
            if result and float(result[0]["value"][1]) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"Prometheus did not scrape {count} samples within {limit_s} s")


@pytest.fixture
def prometheus_server(node_exporter: NodeExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus (temporary config and TSDB) scraping the real node_exporter every second."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is not installed: apt-get install prometheus (requirements-apt.txt)")
    root = Path(tempfile.mkdtemp(prefix="capacity-prometheus-"))
    conf = root / "prometheus.yml"
    conf.write_text(PROMETHEUS_CONF.format(port=node_exporter.port))
    port = free_port()
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--storage.tsdb.retention.time=1h"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = PrometheusServer(port, process, node_exporter, time.time())
    try:
        _wait_until_up(f"{server.url}/-/ready", process, "prometheus")
        yield server
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


# One scripted answer: (HTTP status, body bytes, seconds to wait before answering).
Answer = tuple[int, bytes, float]


class ScriptedHTTP:
    """A real HTTP server on 127.0.0.1 that answers request i with `script(i)`."""

    def __init__(self, script: Callable[[int, str], Answer]) -> None:
        self.script = script
        self.requests: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with outer.lock:
                    index = len(outer.requests)
                    outer.requests.append(self.path)
                status, body, delay = outer.script(index, self.path)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as the test intends

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ScriptedHTTP:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
