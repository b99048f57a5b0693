"""Poll a live Redis server's `INFO` into `host_metrics`.

The poller speaks RESP itself over one kept-open TCP connection (reopened
after a failure), so it needs no client library and adds one connection to
the server's count, not one per poll. Parsing and the gauge/rate logic are
`collectors.redis_info`'s (`parse`, `to_table`), applied to the previous and
the current snapshot: every rate covers exactly the time since the previous
good poll, gaps included, and a restart (new `run_id`, uptime going down)
gives no rate for that interval. Samples are stamped with the poller's clock.
"""

from __future__ import annotations

import socket
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from capacity.live.loop import SourceError
from collectors import redis_info
from collectors.base import CollectorError

name = "redis_info_live"
# INFO of a busy server with many databases is a few tens of kB.
MAX_REPLY_BYTES = 4 << 20
DEFAULT_PORT = 6379


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (or `HOST`, port 6379) as a pair; ValueError for anything else."""
    text = address.strip()
    if text.startswith("redis://"):
        text = text[len("redis://"):].rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: expected HOST:PORT, e.g. 127.0.0.1:6379")
    return host, int(port)


def _command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for p in parts:
        data = p.encode()
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


class RedisInfoSource:
    """One Redis server, polled by `capacity.live.loop.poll_loop`."""

    def __init__(self, address: str, *, host: str | None = None, password: str | None = None, username: str | None = None,
                 timeout: float = 5.0) -> None:
        self.server, self.port = split_address(address)
        self.address = f"{self.server}:{self.port}"
        self.host = host or self.server
        self.password = password
        self.username = username
        self.timeout = timeout
        self.restarts = 0
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._previous: redis_info.Snapshot | None = None

    def close(self) -> None:
        """Close the connection (the next poll opens a new one)."""
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buffer = None, b""

    def _line(self) -> bytes:
        assert self._sock is not None
        while b"\r\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise SourceError(f"{self.address} closed the connection")
            self._buffer += chunk
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise SourceError(f"{self.address}: reply line longer than {MAX_REPLY_BYTES} bytes: not a Redis server")
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _reply(self) -> bytes:
        """One RESP reply: a bulk or simple string; SourceError for an error reply or garbage."""
        line = self._line()
        if line.startswith(b"-"):
            raise SourceError(f"{self.address} answered an error: {line[1:].decode(errors='replace')[:200]}")
        if line.startswith(b"+"):
            return line[1:]
        if not line.startswith(b"$") or not line[1:].lstrip(b"-").isdigit():
            raise SourceError(f"{self.address}: unexpected reply {line[:60]!r}: is this a Redis server?")
        size = int(line[1:])
        if size < 0 or size > MAX_REPLY_BYTES:
            raise SourceError(f"{self.address}: bulk reply of {size} bytes: expected the INFO text")
        assert self._sock is not None
        while len(self._buffer) < size + 2:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise SourceError(f"{self.address} closed the connection in the middle of a reply")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size + 2:]
        return data

    def _connect(self) -> None:
        self._sock = socket.create_connection((self.server, self.port), timeout=self.timeout)
        if self.password:
            auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            self._sock.sendall(_command(*auth))
            self._reply()

    def fetch(self) -> str:
        """The INFO text; SourceError when the server does not answer with one."""
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(_command("INFO"))
            body = self._reply()
        except SourceError:
            self.close()
            raise
        except (OSError, TimeoutError) as exc:
            self.close()
            raise SourceError(f"no answer from {self.address}: {type(exc).__name__}: {exc}") from None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self.address}: INFO reply not UTF-8 at byte {exc.start}") from None

    def poll(self, ts: datetime) -> list[tuple[str, pa.Table]]:
        """Fetch and parse one INFO; its `host_metrics` rows, rates since the previous good poll."""
        text = self.fetch()
        try:
            (snap,) = redis_info.parse(self.address, text)[-1:]
        except CollectorError as exc:
            raise SourceError(f"{self.address}: bad INFO reply: {exc.reason} (line {exc.line})") from None
        snap.ts = ts
        previous = self._previous
        if previous is not None and previous.ts is not None and previous.ts >= ts:
            # The wall clock stepped back: no interval to compute a rate over.
            previous = None
        pair = [previous, snap] if previous is not None else [snap]
        try:
            table = redis_info.to_table(self.address, pair, self.host, lifetime_if_alone=False)
        except CollectorError as exc:
            raise SourceError(f"{self.address}: bad INFO reply: {exc.reason}") from None
        if previous is not None and previous.fields.get("run_id") != snap.fields.get("run_id"):
            self.restarts += 1
        table = table.filter(pc.equal(table["ts"], pa.scalar(ts, pa.timestamp("ms", tz="UTC"))))
        table = table.set_column(table.schema.get_field_index("source"), "source", pa.array([name] * table.num_rows, pa.string()))
        self._previous = snap
        return [("host_metrics", table)]
