"""Real servers for tests: Apache httpd with mod_status, and prometheus-node-exporter, on 127.0.0.1.

Each fixture starts its server on a free loopback port with its own config,
pid, log and lock files in a temporary folder, waits until it answers, and
stops it by its own pid at the end of the session. Import the fixtures into a
test module (`from tests.servers import apache_server`) to use them; a later
poller test can do the same.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
STARTUP_TIMEOUT_S = 15.0

APACHE_CONF = """\
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Mutex file:{root}/run default
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
LoadModule mpm_event_module {modules}/mod_mpm_event.so
StartServers 2
ServerLimit 4
ThreadLimit 25
ThreadsPerChild 25
MaxRequestWorkers {max_workers}
MinSpareThreads 25
MaxSpareThreads 75
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_host_module {modules}/mod_authz_host.so
LoadModule status_module {modules}/mod_status.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule dir_module {modules}/mod_dir.so
{user}
TypesConfig /dev/null
AddType text/html .html
KeepAlive On
Timeout 10
DocumentRoot "{root}/htdocs"
DirectoryIndex index.html
<Directory "{root}/htdocs">
    Require all granted
</Directory>
ErrorLog "{root}/logs/error.log"
LogLevel warn
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\" %D" combined_D
CustomLog "{root}/logs/access.log" combined_D
ExtendedStatus On
<Location "/server-status">
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 5.0) -> bytes:
    """GET `url` and return the body (raises on HTTP errors)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback test server
        return response.read()


def _wait_until_up(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before answering")
        try:
            fetch(url, timeout=1.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {STARTUP_TIMEOUT_S} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class ApacheServer:
    """A running test Apache: its URLs, files and control signals."""

    port: int
    root: Path
    process: subprocess.Popen
    max_workers: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def status_url(self) -> str:
        return f"{self.base_url}/server-status?auto"

    @property
    def access_log(self) -> Path:
        return self.root / "logs" / "access.log"

    def status(self) -> str:
        """One `server-status?auto` body."""
        return fetch(self.status_url).decode("utf-8")

    def load(self, requests: int = 300, threads: int = 8, path: str = "/index.html", time_limit_s: float = 20.0) -> int:
        """Send at most `requests` GETs from `threads` threads within `time_limit_s`; returns how many succeeded."""
        deadline = time.monotonic() + time_limit_s

        def worker(count: int) -> int:
            done = 0
            for _ in range(count):
                if time.monotonic() > deadline:
                    break
                fetch(self.base_url + path)
                done += 1
            return done

        per_thread = [requests // threads + (1 if i < requests % threads else 0) for i in range(threads)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return sum(pool.map(worker, per_thread))

    def restart(self) -> None:
        """Hard restart (SIGHUP): the scoreboard and every counter reset."""
        self._signal_and_wait(signal.SIGHUP)

    def graceful(self) -> None:
        """Graceful restart (SIGUSR1): counters survive."""
        self._signal_and_wait(signal.SIGUSR1)

    def _signal_and_wait(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)
        time.sleep(0.5)
        _wait_until_up(self.status_url, self.process, "apache2 after restart")


def _start_apache(max_workers: int = 100) -> tuple[ApacheServer, str]:
    root = Path(tempfile.mkdtemp(prefix="capacity-apache-"))
    # Workers run as www-data when started by root: they must be able to read the docroot.
    root.chmod(0o755)
    for sub in ("run", "logs", "htdocs"):
        (root / sub).mkdir()
    (root / "htdocs").chmod(0o755)
    (root / "htdocs" / "index.html").write_text("<html><body>" + "capacity " * 200 + "</body></html>\n")
    (root / "htdocs" / "index.html").chmod(0o644)
    port = free_port()
    user = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
    conf = root / "httpd.conf"
    conf.write_text(APACHE_CONF.format(root=root, port=port, modules=APACHE_MODULES, user=user, max_workers=max_workers))
    process = subprocess.Popen([APACHE, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = ApacheServer(port, root, process, max_workers)
    try:
        _wait_until_up(server.status_url, process, "apache2")
    except RuntimeError as exc:
        _stop(process)
        err = (root / "logs" / "error.log").read_text() if (root / "logs" / "error.log").exists() else ""
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"{exc}\n{stderr}\n{err}") from None
    return server, str(root)


@contextmanager
def running_apache(max_workers: int = 100) -> Iterator[ApacheServer]:
    """An Apache of its own for the `with` block; then its current process is stopped and its folder removed."""
    server, root = _start_apache(max_workers)
    try:
        yield server
    finally:
        # `server.process`, not the first one: a test may have restarted the server.
        _stop(server.process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def apache_server() -> Iterator[ApacheServer]:
    """A real Apache httpd (event MPM, mod_status, ExtendedStatus, `%D` access log) on 127.0.0.1."""
    if not (os.path.exists(APACHE) and os.path.isdir(APACHE_MODULES)):
        pytest.fail("apache2 is not installed: apt-get install apache2 (listed in requirements-apt.txt)")
    with running_apache() as server:
        yield server


@dataclass
class NodeExporter:
    """A running prometheus-node-exporter."""

    port: int
    process: subprocess.Popen

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def scrape(self) -> str:
        return fetch(self.metrics_url).decode("utf-8")


@pytest.fixture(scope="session")
def node_exporter() -> Iterator[NodeExporter]:
    """A real prometheus-node-exporter on 127.0.0.1 with a free port."""
    if not os.path.exists(NODE_EXPORTER):
        pytest.fail("prometheus-node-exporter is not installed: apt-get install prometheus-node-exporter (requirements-apt.txt)")
    port = free_port()
    process = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.cpu", "--collector.meminfo", "--collector.loadavg", "--collector.netdev", "--collector.stat",
         "--collector.uname"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    exporter = NodeExporter(port, process)
    try:
        _wait_until_up(exporter.metrics_url, process, "prometheus-node-exporter")
        yield exporter
    finally:
        _stop(process)
