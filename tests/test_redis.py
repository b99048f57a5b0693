"""redis-cli INFO files and the live `capacity collect redis` poller, against a real redis-server on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from capacity.live.loop import SourceError
from capacity.live.redis import RedisInfoSource, split_address
from capacity.store import Store
from collectors import redis_info
from collectors.base import CollectorError
from tests.servers import _stop, free_port

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "redis_info"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


@dataclass
class RedisServer:
    """A running test redis-server and its limits."""

    port: int
    process: subprocess.Popen
    maxclients: int
    maxmemory: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        """Run the real redis-cli against this server; its stdout."""
        done = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args], capture_output=True, timeout=timeout, check=True)
        return done.stdout.decode("utf-8")

    def load(self, requests: int = 2000, clients: int = 4) -> None:
        """A bounded redis-benchmark run (SET and GET of 1 kB values over 10 000 keys)."""
        subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port), "-q", "-n", str(requests), "-c", str(clients),
                        "-d", "1000", "-r", "10000", "-t", "set,get"], capture_output=True, timeout=60, check=True)


def start_redis(maxclients: int = 64, maxmemory: int = 8 << 20) -> tuple[RedisServer, Path]:
    """A redis-server of our own: loopback, free port, no persistence, temp dir."""
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed: apt-get install redis-server redis-tools (requirements-apt.txt)")
    workdir = Path(tempfile.mkdtemp(prefix="capacity-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir),
         "--maxclients", str(maxclients), "--maxmemory", str(maxmemory), "--maxmemory-policy", "allkeys-lru", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, process, maxclients, maxmemory)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}")
        try:
            if server.cli("PING", timeout=2).strip() == "PONG":
                return server, workdir
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.1)
    _stop(process)
    raise RuntimeError("redis-server did not answer PING within 15 s")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 (maxclients 64, maxmemory 8 MiB, allkeys-lru)."""
    server, workdir = start_redis()
    try:
        yield server
    finally:
        _stop(server.process)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_for_polls(log: Path, count: int, process: subprocess.Popen, limit_s: float = 20.0) -> None:
    """Wait until a poller's JSON-lines log holds `count` good polls."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count('"event": "ok"') >= count:
            return
        assert process.poll() is None, f"poller exited early: {process.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} good polls in {log} after {limit_s} s")


def _values(table, metric: str, device: str | None = None) -> list[tuple[datetime, float]]:
    rows = table.to_pylist()
    return [(r["ts"], r["value"]) for r in rows if r["metric"] == metric and (device is None or r["device"] == device)]


def _field(text: str, key: str, occurrence: int = 0) -> str:
    found = [ln.split(":", 1)[1].strip() for ln in text.replace("\r", "").split("\n") if ln.startswith(key + ":")]
    return found[occurrence]


# -- saved files -----------------------------------------------------------------------------


def test_single_snapshot_gauges_match_the_raw_text() -> None:
    path = DATA / "single-info-crlf.txt"
    raw = path.read_text()
    notes: list[str] = []
    table = redis_info.read(path, warn=notes.append)["host_metrics"]
    assert any("single snapshot" in n for n in notes)
    when = datetime.fromtimestamp(int(_field(raw, "server_time_usec")) / 1e6, UTC)
    assert {r["ts"] for r in table.to_pylist()} == {when.replace(microsecond=when.microsecond // 1000 * 1000)}
    assert _values(table, "redis.connected_clients")[0][1] == float(_field(raw, "connected_clients"))
    assert _values(table, "redis.maxclients")[0][1] == 50.0
    assert _values(table, "redis.maxmemory_bytes")[0][1] == 3 * 1024 * 1024
    assert _values(table, "redis.used_memory_bytes")[0][1] == float(_field(raw, "used_memory"))
    # Alone: lifetime averages, commands / uptime.
    ops = float(_field(raw, "total_commands_processed")) / float(_field(raw, "uptime_in_seconds"))
    assert _values(table, "redis.ops_per_s")[0][1] == pytest.approx(ops)


def test_series_rates_restart_and_failed_poll() -> None:
    path = DATA / "series-framed-evictions-restart.txt"
    raw = path.read_text()
    table = redis_info.read(path, host="redis1")["host_metrics"]
    assert set(table["host"].to_pylist()) == {"redis1"}
    stamps = sorted({r["ts"] for r in table.to_pylist()})
    assert len(stamps) == 5  # six frames, one of them the failed poll
    evicted = _values(table, "redis.evicted_keys_per_s")
    t = [int(_field(raw, "server_time_usec", i)) / 1e6 for i in range(5)]
    e = [int(_field(raw, "evicted_keys", i)) for i in range(5)]
    assert e[1] > 0, "the sample was made to evict keys"
    assert evicted[0][1] == pytest.approx((e[1] - e[0]) / (t[1] - t[0]))
    assert evicted[1][1] == pytest.approx((e[2] - e[1]) / (t[2] - t[1]))
    # After the restart (new run_id) the first snapshot has gauges only, the next rates again.
    ops_times = [ts for ts, _ in _values(table, "redis.ops_per_s")]
    assert stamps[3] not in ops_times and stamps[4] in ops_times
    hits = [int(_field(raw, "keyspace_hits", i)) for i in (1, 2)]
    misses = [int(_field(raw, "keyspace_misses", i)) for i in (1, 2)]
    ratio = dict(_values(table, "redis.keyspace_hit_ratio_pct"))[stamps[2]]
    assert ratio == pytest.approx(100 * (hits[1] - hits[0]) / (hits[1] - hits[0] + misses[1] - misses[0]))
    memory_pct = dict(_values(table, "redis.memory_used_pct"))[stamps[1]]
    assert memory_pct == pytest.approx(100 * int(_field(raw, "used_memory", 1)) / (3 << 20))


def test_unframed_series_splits_at_each_server_section() -> None:
    table = redis_info.read(DATA / "series-appended-no-frames.txt")["host_metrics"]
    assert len({r["ts"] for r in table.to_pylist()}) == 3
    assert len(_values(table, "redis.ops_per_s")) == 2


@pytest.mark.parametrize(("name", "line", "words"), [
    ("truncated-mid-field.txt", 45, "key:value"),
    ("garbage-line.txt", 3, "key:value"),
    ("latin1-bytes.txt", None, "UTF-8"),
])
def test_bad_files_name_the_line(name: str, line: int | None, words: str) -> None:
    with pytest.raises(CollectorError) as info:
        redis_info.read(DATA / "bad" / name)
    assert info.value.line == line and words in info.value.reason


def test_detect_is_strict(tmp_path: Path) -> None:
    assert redis_info.detect(DATA / "single-info-crlf.txt")
    other = tmp_path / "info.txt"
    other.write_text("# Server\nversion:1\n")
    assert not redis_info.detect(other)


# -- the real server ---------------------------------------------------------------------------


def test_info_written_by_redis_cli_reads_back(redis_server: RedisServer, tmp_path: Path) -> None:
    redis_server.load(requests=500)
    path = tmp_path / "info.txt"
    path.write_text(redis_server.cli("INFO"))
    table = redis_info.read(path)["host_metrics"]
    assert _values(table, "redis.maxclients")[0][1] == redis_server.maxclients
    assert _values(table, "redis.maxmemory_bytes")[0][1] == redis_server.maxmemory
    assert _values(table, "redis.keys", "db0")[0][1] > 0


def test_live_poller_records_rates_under_load(redis_server: RedisServer, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    cmd = [sys.executable, "-m", "capacity", "collect", "redis", redis_server.address, "--run", "redis-live", "--store", str(store_dir),
           "--interval", "0.25", "--duration", "5", "--flush-every", "1", "--host", "cache1", "--log", str(tmp_path / "polls.jsonl")]
    poller = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_polls(tmp_path / "polls.jsonl", 2, poller)
        redis_server.load(requests=20000)
        out, err = poller.communicate(timeout=30)
    finally:
        if poller.poll() is None:
            poller.kill()
    assert poller.returncode == 0, err
    assert "collect redis:" in out
    df = Store.open(store_dir).df("host_metrics", ["redis-live"])
    assert set(df["host"]) == {"cache1"} and set(df["source"]) == {"redis_info_live"}
    ops = df[df.metric == "redis.ops_per_s"]
    # 8000 commands in a few polls: some interval saw thousands per second.
    assert ops["value"].max() > 500
    assert (df[df.metric == "redis.maxclients"]["value"] == redis_server.maxclients).all()
    assert (df[df.metric == "redis.maxmemory_bytes"]["value"] == redis_server.maxmemory).all()
    clients = df[df.metric == "redis.connected_clients"]["value"]
    assert clients.min() >= 1  # the poller's own connection is kept open


def test_source_fails_cleanly_without_a_server() -> None:
    source = RedisInfoSource(f"127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(SourceError, match="no answer"):
        source.poll(datetime.now(UTC))
    with pytest.raises(ValueError):
        split_address("127.0.0.1:notaport")
    assert split_address("redis://cache:6380") == ("cache", 6380)
