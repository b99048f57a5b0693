"""Canonical tables and the host metric vocabulary, declared once as data.

Every collector writes these tables and every analysis reads them. The same
declarations drive `conform` (casting, ordering, validation) and the generated
documentation page (`docs/tables.md`), so the docs cannot drift from the code.

Units live in column and metric names: `_ms` milliseconds, `_bytes` bytes,
`_pct` percent (0-100), `_per_s` a rate per second. Timestamps are UTC.

The `run_id` of a row is not stored inside the Parquet files: it is the Hive
partition key of the store layout (`STORE/<table>/run_id=<run>/...`), so every
engine reading the layout sees it as a column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("ms", tz="UTC")


class SchemaError(ValueError):
    """A table does not match its canonical declaration."""


@dataclass(frozen=True)
class Column:
    """One column of a canonical table."""

    name: str
    type: pa.DataType
    description: str
    required: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One canonical table: what a row is, and its columns in order."""

    name: str
    row: str
    columns: tuple[Column, ...]
    # Columns whose names start with this prefix are kept as extra string
    # columns (JMeter `sample_variables`), instead of being rejected.
    extra_prefix: str | None = None
    sort_by: tuple[str, ...] = field(default=())

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=not c.required) for c in self.columns])


def _c(name: str, type_: pa.DataType, description: str, required: bool = False) -> Column:
    return Column(name, type_, description, required)


SOURCE = _c("source", pa.string(), "Name of the collector that produced the row.", True)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "requests",
            "one sample (request or transaction) recorded by a load tool",
            (
                _c("ts", TS, "Start of the sample (UTC).", True),
                _c("elapsed_ms", pa.float64(), "Elapsed time of the sample, start to end.", True),
                _c("label", pa.string(), "Sampler or request name.", True),
                _c("success", pa.bool_(), "Whether the load tool counted the sample as a success.", True),
                _c("row_kind", pa.string(), "`sample`, `transaction` (a parent that sums its children) or `subresult`.", True),
                _c("status", pa.string(), "Response code as written by the tool (HTTP status or other text)."),
                _c("message", pa.string(), "Response message."),
                _c("error", pa.string(), "Failure or assertion message, when the sample failed."),
                _c("bytes", pa.int64(), "Bytes received (headers and body)."),
                _c("sent_bytes", pa.int64(), "Bytes sent."),
                _c("latency_ms", pa.float64(), "Time to first byte."),
                _c("connect_ms", pa.float64(), "Time to establish the connection."),
                _c("idle_ms", pa.float64(), "Time not spent sampling (timers inside a transaction)."),
                _c("thread", pa.string(), "Virtual user (thread) name."),
                _c("group_threads", pa.int64(), "Active threads in the sample's thread group on its generator."),
                _c("active_users", pa.int64(), "Active threads on the sample's generator when it ended."),
                _c("generator", pa.string(), "Load generator identity (host, engine or file)."),
                _c("url", pa.string(), "Requested URL."),
                _c("data_type", pa.string(), "Response data type (text, bin)."),
                SOURCE,
            ),
            extra_prefix="var_",
            sort_by=("ts",),
        ),
        TableSpec(
            "request_stats",
            "a pre-aggregated summary of one label over one window, where only summaries exist",
            (
                _c("label", pa.string(), "Sampler or request name (`TOTAL`-like rows are kept with row_kind `total`).", True),
                _c("count", pa.int64(), "Number of samples.", True),
                _c("row_kind", pa.string(), "`sample`, `transaction` or `total`."),
                _c("window_start", TS, "Start of the window summarised (null: the whole run)."),
                _c("window_end", TS, "End of the window summarised (null: the whole run)."),
                _c("errors", pa.int64(), "Number of failed samples."),
                _c("mean_ms", pa.float64(), "Mean elapsed time."),
                _c("min_ms", pa.float64(), "Minimum elapsed time."),
                _c("max_ms", pa.float64(), "Maximum elapsed time."),
                _c("std_ms", pa.float64(), "Standard deviation of elapsed time."),
                _c("p50_ms", pa.float64(), "Median elapsed time."),
                _c("p66_ms", pa.float64(), "66th percentile."),
                _c("p75_ms", pa.float64(), "75th percentile."),
                _c("p80_ms", pa.float64(), "80th percentile."),
                _c("p90_ms", pa.float64(), "90th percentile."),
                _c("p95_ms", pa.float64(), "95th percentile."),
                _c("p98_ms", pa.float64(), "98th percentile."),
                _c("p99_ms", pa.float64(), "99th percentile."),
                _c("p999_ms", pa.float64(), "99.9th percentile."),
                _c("throughput_rps", pa.float64(), "Samples per second over the window."),
                _c("received_bytes_per_s", pa.float64(), "Bytes received per second."),
                _c("sent_bytes_per_s", pa.float64(), "Bytes sent per second."),
                _c("avg_bytes", pa.float64(), "Mean response size."),
                _c("percentile_method", pa.string(), "How the tool computed its percentiles (e.g. `locust-bucketed`)."),
                _c("generator", pa.string(), "Load generator identity."),
                SOURCE,
            ),
        ),
        TableSpec(
            "load",
            "the load level at one moment",
            (
                _c("ts", TS, "Moment of the reading (UTC).", True),
                _c("active_users", pa.float64(), "Concurrent virtual users."),
                _c("connected", pa.float64(), "Open connections (Tsung)."),
                _c("arrivals_per_s", pa.float64(), "New users started per second."),
                _c("rps", pa.float64(), "Requests per second."),
                _c("errors_per_s", pa.float64(), "Failed requests per second."),
                _c("generator", pa.string(), "Load generator identity."),
                SOURCE,
            ),
            sort_by=("ts",),
        ),
        TableSpec(
            "host_metrics",
            "one measurement of one host metric (see the metric vocabulary)",
            (
                _c("ts", TS, "Moment of the measurement (UTC); for rates, the end of the interval.", True),
                _c("host", pa.string(), "Host name.", True),
                _c("metric", pa.string(), "Dotted metric name from the vocabulary, unit in the name.", True),
                _c("device", pa.string(), "CPU id, interface or disk; `all` for the aggregate; null when not applicable."),
                _c("value", pa.float64(), "The value, in the unit the metric name states.", True),
                _c("labels", pa.string(), "Extra labels as JSON (e.g. Prometheus labels), when the source has them."),
                SOURCE,
            ),
            sort_by=("ts",),
        ),
        TableSpec(
            "processes",
            "one process in one top or psutil sample",
            (
                _c("ts", TS, "Moment of the sample (UTC).", True),
                _c("host", pa.string(), "Host name.", True),
                _c("pid", pa.int64(), "Process (or thread) id.", True),
                _c("user", pa.string(), "Owner."),
                _c("command", pa.string(), "Command name or full command line."),
                _c("cpu_pct", pa.float64(), "CPU use, percent of one core."),
                _c("mem_pct", pa.float64(), "Resident memory, percent of RAM."),
                _c("rss_bytes", pa.int64(), "Resident set size."),
                _c("vsz_bytes", pa.int64(), "Virtual size."),
                _c("shr_bytes", pa.int64(), "Shared memory."),
                _c("state", pa.string(), "Process state letter."),
                _c("priority", pa.int64(), "Kernel priority."),
                _c("nice", pa.int64(), "Nice value."),
                _c("cpu_time_s", pa.float64(), "Cumulative CPU time."),
                SOURCE,
            ),
            sort_by=("ts",),
        ),
        TableSpec(
            "web_status",
            "one Apache server-status snapshot",
            (
                _c("ts", TS, "Moment of the snapshot (UTC).", True),
                _c("host", pa.string(), "Server name.", True),
                _c("server_version", pa.string(), "ServerVersion."),
                _c("mpm", pa.string(), "ServerMPM."),
                _c("uptime_s", pa.float64(), "Server uptime."),
                _c("total_accesses", pa.int64(), "Requests served since start."),
                _c("total_bytes", pa.int64(), "Bytes served since start (Total kBytes x 1024)."),
                _c("total_duration_ms", pa.float64(), "Summed request duration since start (2.4)."),
                _c("cpu_load_pct", pa.float64(), "CPULoad."),
                _c("req_per_s", pa.float64(), "Requests per second between this snapshot and the previous one (ReqPerSec since start when alone)."),
                _c("bytes_per_s", pa.float64(), "Bytes per second between snapshots (BytesPerSec since start when alone)."),
                _c("bytes_per_req", pa.float64(), "BytesPerReq."),
                _c("duration_per_req_ms", pa.float64(), "DurationPerReq (2.4)."),
                _c("busy_workers", pa.int64(), "BusyWorkers."),
                _c("idle_workers", pa.int64(), "IdleWorkers."),
                _c("max_workers", pa.int64(), "Configured maximum workers (given, or the scoreboard length)."),
                _c("processes", pa.int64(), "Processes (event/worker MPM)."),
                _c("conns_total", pa.int64(), "ConnsTotal."),
                _c("conns_async_writing", pa.int64(), "ConnsAsyncWriting."),
                _c("conns_async_keepalive", pa.int64(), "ConnsAsyncKeepAlive."),
                _c("conns_async_closing", pa.int64(), "ConnsAsyncClosing."),
                _c("load_1m", pa.float64(), "Load1 (2.4)."),
                _c("load_5m", pa.float64(), "Load5 (2.4)."),
                _c("load_15m", pa.float64(), "Load15 (2.4)."),
                _c("sb_waiting", pa.int64(), "Scoreboard `_`: waiting for connection."),
                _c("sb_starting", pa.int64(), "Scoreboard `S`: starting up."),
                _c("sb_reading", pa.int64(), "Scoreboard `R`: reading request."),
                _c("sb_sending", pa.int64(), "Scoreboard `W`: sending reply."),
                _c("sb_keepalive", pa.int64(), "Scoreboard `K`: keepalive (read)."),
                _c("sb_dns", pa.int64(), "Scoreboard `D`: DNS lookup."),
                _c("sb_closing", pa.int64(), "Scoreboard `C`: closing connection."),
                _c("sb_logging", pa.int64(), "Scoreboard `L`: logging."),
                _c("sb_graceful", pa.int64(), "Scoreboard `G`: gracefully finishing."),
                _c("sb_idle_cleanup", pa.int64(), "Scoreboard `I`: idle cleanup of worker."),
                _c("sb_open", pa.int64(), "Scoreboard `.`: open slot with no current process."),
                _c("restarted", pa.bool_(), "True when counters went down or uptime reset since the previous snapshot."),
                SOURCE,
            ),
            sort_by=("ts",),
        ),
        TableSpec(
            "web_traffic",
            "one AWStats (or access-log) aggregate for one period, section and key",
            (
                _c("period", pa.string(), "Period the aggregate covers (`2026-11`, `2026-11-21`, hour `13`).", True),
                _c("section", pa.string(), "AWStats section (TIME, DAY, SIDER, BROWSER, ...).", True),
                _c("key", pa.string(), "Row key within the section (hour, day, URL, browser, ...).", True),
                _c("period_start", TS, "Start of the period when it is a point in time (UTC)."),
                _c("site", pa.string(), "Site (AWStats config) name."),
                _c("pages", pa.int64(), "Pages viewed."),
                _c("hits", pa.int64(), "Hits."),
                _c("bandwidth_bytes", pa.int64(), "Bytes sent."),
                _c("visits", pa.int64(), "Visits."),
                _c("visitors", pa.int64(), "Unique visitors."),
                _c("entries", pa.int64(), "Entry pages."),
                _c("exits", pa.int64(), "Exit pages."),
                _c("last_ts", TS, "Last visit or last occurrence (UTC)."),
                _c("value", pa.string(), "Other value the section carries, as text."),
                SOURCE,
            ),
        ),
        TableSpec(
            "limits",
            "one reading of one resource limit (OpenVZ beancounters, vzlist)",
            (
                _c("host", pa.string(), "Host name.", True),
                _c("container", pa.string(), "Container id (uid/CTID).", True),
                _c("resource", pa.string(), "Resource name (e.g. `tcpsndbuf`, `privvmpages`).", True),
                _c("ts", TS, "Moment of the reading (UTC); null when unknown."),
                _c("held", pa.int64(), "Current usage (bytes for page-counted resources)."),
                _c("maxheld", pa.int64(), "Maximum usage seen."),
                _c("barrier", pa.int64(), "Barrier (soft limit)."),
                _c("limit", pa.int64(), "Limit (hard limit)."),
                _c("failcnt", pa.int64(), "Times the limit refused an allocation."),
                _c("unit", pa.string(), "`bytes`, `pages` (converted to bytes), or a count unit."),
                SOURCE,
            ),
        ),
        TableSpec(
            "failures",
            "one distinct failure or exception a load tool counted, with how often it happened (Locust failures/exceptions CSVs)",
            (
                _c("error", pa.string(), "Failure or exception message as the tool wrote it.", True),
                _c("count", pa.int64(), "Occurrences.", True),
                _c("row_kind", pa.string(), "`failure` (a failed request) or `exception` (an error raised in the user code)."),
                _c("label", pa.string(), "Request name the failure belongs to (null for exceptions)."),
                _c("method", pa.string(), "Request method or type (`GET`, `POST`, ...)."),
                _c("first_seen", TS, "First occurrence (UTC), when the tool records it."),
                _c("last_seen", TS, "Last occurrence (UTC), when the tool records it."),
                _c("traceback", pa.string(), "Traceback of an exception."),
                _c("nodes", pa.string(), "Load generator nodes that raised it."),
                _c("generator", pa.string(), "Load generator identity."),
                SOURCE,
            ),
        ),
    )
}


@dataclass(frozen=True)
class Metric:
    """One metric name of the `host_metrics` vocabulary."""

    name: str
    unit: str
    kind: str  # "gauge" or "rate"
    description: str


_UNITS = {"pct": "%", "bytes": "bytes", "ms": "ms", "pages": "pages", "packets": "packets"}


def _unit(name: str) -> str:
    last = name.rsplit(".", 1)[-1]
    if last.endswith("_per_s"):
        base = last[: -len("_per_s")].rsplit("_", 1)[-1]
        return f"{_UNITS.get(base, base)}/s"
    return _UNITS.get(last.rsplit("_", 1)[-1], "1") if "_" in last else "1"


def _m(name: str, kind: str, description: str) -> Metric:
    return Metric(name, _unit(name), kind, description)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("cpu.user_pct", "gauge", "CPU time in user mode (including nice unless cpu.nice_pct is given)."),
        _m("cpu.nice_pct", "gauge", "CPU time in user mode at low priority."),
        _m("cpu.system_pct", "gauge", "CPU time in kernel mode."),
        _m("cpu.iowait_pct", "gauge", "CPU idle while waiting for I/O."),
        _m("cpu.steal_pct", "gauge", "CPU time stolen by the hypervisor."),
        _m("cpu.irq_pct", "gauge", "CPU time serving hardware interrupts."),
        _m("cpu.softirq_pct", "gauge", "CPU time serving software interrupts."),
        _m("cpu.guest_pct", "gauge", "CPU time running a guest."),
        _m("cpu.idle_pct", "gauge", "CPU idle time."),
        _m("cpu.busy_pct", "gauge", "100 minus idle and iowait: the utilisation the models use."),
        _m("cpu.count", "gauge", "Number of CPUs."),
        _m("mem.total_bytes", "gauge", "Physical memory."),
        _m("mem.used_bytes", "gauge", "Memory used by processes (total minus available, or the tool's own `used`)."),
        _m("mem.free_bytes", "gauge", "Memory not used at all."),
        _m("mem.available_bytes", "gauge", "Memory available for new work without swapping (MemAvailable)."),
        _m("mem.cached_bytes", "gauge", "Page cache."),
        _m("mem.buffers_bytes", "gauge", "Kernel buffers."),
        _m("mem.used_pct", "gauge", "Used memory as percent of total."),
        _m("swap.total_bytes", "gauge", "Swap space."),
        _m("swap.used_bytes", "gauge", "Swap in use."),
        _m("swap.free_bytes", "gauge", "Swap free."),
        _m("swap.in_pages_per_s", "rate", "Pages swapped in per second."),
        _m("swap.out_pages_per_s", "rate", "Pages swapped out per second."),
        _m("paging.in_bytes_per_s", "rate", "Bytes paged in from disk per second."),
        _m("paging.out_bytes_per_s", "rate", "Bytes paged out to disk per second."),
        _m("paging.faults_per_s", "rate", "Page faults per second."),
        _m("paging.major_faults_per_s", "rate", "Major page faults per second."),
        _m("load.1m", "gauge", "Load average over 1 minute."),
        _m("load.5m", "gauge", "Load average over 5 minutes."),
        _m("load.15m", "gauge", "Load average over 15 minutes."),
        _m("load.runq_size", "gauge", "Tasks waiting for run time."),
        _m("load.blocked", "gauge", "Tasks blocked on I/O."),
        _m("tasks.total", "gauge", "Tasks (processes) in total."),
        _m("tasks.running", "gauge", "Running tasks."),
        _m("tasks.sleeping", "gauge", "Sleeping tasks."),
        _m("tasks.stopped", "gauge", "Stopped tasks."),
        _m("tasks.zombie", "gauge", "Zombie tasks."),
        _m("proc.count", "gauge", "Processes in the process list."),
        _m("proc.created_per_s", "rate", "Processes created per second."),
        _m("proc.cswch_per_s", "rate", "Context switches per second."),
        _m("net.rx_bytes_per_s", "rate", "Bytes received per second."),
        _m("net.tx_bytes_per_s", "rate", "Bytes sent per second."),
        _m("net.rx_packets_per_s", "rate", "Packets received per second."),
        _m("net.tx_packets_per_s", "rate", "Packets sent per second."),
        _m("net.rx_errors_per_s", "rate", "Receive errors per second."),
        _m("net.tx_errors_per_s", "rate", "Transmit errors per second."),
        _m("net.rx_drops_per_s", "rate", "Received packets dropped per second."),
        _m("net.tx_drops_per_s", "rate", "Transmitted packets dropped per second."),
        _m("net.util_pct", "gauge", "Interface utilisation."),
        _m("disk.transfers_per_s", "rate", "Transfers (I/O requests) per second."),
        _m("disk.read_bytes_per_s", "rate", "Bytes read per second."),
        _m("disk.write_bytes_per_s", "rate", "Bytes written per second."),
        _m("disk.await_ms", "gauge", "Mean time for I/O requests to be served."),
        _m("disk.queue_size", "gauge", "Mean I/O queue length."),
        _m("disk.util_pct", "gauge", "Percent of time the device was busy."),
        _m("web.busy_workers", "gauge", "Busy web server workers."),
        _m("web.idle_workers", "gauge", "Idle web server workers."),
        _m("web.req_per_s", "rate", "Web server requests per second."),
        # sysstat (sar/sadf) fields without an earlier name; added by the sysstat collectors.
        _m("cpu.guest_nice_pct", "gauge", "CPU time running a niced guest (sar %gnice)."),
        _m("cpu.frequency_hz", "gauge", "CPU clock frequency (sar -m CPU, MHz x 1e6)."),
        _m("net.softnet_processed_per_s", "rate", "Network frames processed per second (sar -n SOFT total/s)."),
        _m("net.softnet_dropped_per_s", "rate", "Network frames dropped for lack of queue room per second."),
        _m("net.softnet_squeezed_per_s", "rate", "Times the softirq ran out of budget per second."),
        _m("net.softnet_rps_per_s", "rate", "Inter-processor interrupts for packet steering per second."),
        _m("net.softnet_flow_limit_per_s", "rate", "Times the flow limit was reached per second."),
        _m("net.softnet_backlog_length", "gauge", "Packets in the softnet backlog."),
        _m("paging.freed_pages_per_s", "rate", "Pages put on the free list per second."),
        _m("paging.scanned_kswapd_pages_per_s", "rate", "Pages scanned by kswapd per second."),
        _m("paging.scanned_direct_pages_per_s", "rate", "Pages scanned directly per second."),
        _m("paging.reclaimed_pages_per_s", "rate", "Pages reclaimed from the cache per second (sar pgsteal/s)."),
        _m("paging.vm_efficiency_pct", "gauge", "Page reclaim efficiency (sar %vmeff)."),
        _m("paging.promoted_pages_per_s", "rate", "Pages promoted to a faster memory tier per second."),
        _m("paging.demoted_pages_per_s", "rate", "Pages demoted to a slower memory tier per second."),
        _m("io.transfers_per_s", "rate", "I/O requests to all physical devices per second."),
        _m("io.read_transfers_per_s", "rate", "Read requests to all physical devices per second."),
        _m("io.write_transfers_per_s", "rate", "Write requests to all physical devices per second."),
        _m("io.discard_transfers_per_s", "rate", "Discard requests to all physical devices per second."),
        _m("io.read_bytes_per_s", "rate", "Bytes read from all physical devices per second."),
        _m("io.write_bytes_per_s", "rate", "Bytes written to all physical devices per second."),
        _m("io.discard_bytes_per_s", "rate", "Bytes discarded on all physical devices per second."),
        _m("mem.commit_bytes", "gauge", "Memory the current workload needs committed (sar kbcommit)."),
        _m("mem.commit_pct", "gauge", "Committed memory as percent of RAM plus swap."),
        _m("mem.active_bytes", "gauge", "Active memory (recently used)."),
        _m("mem.inactive_bytes", "gauge", "Inactive memory (candidate for reclaim)."),
        _m("mem.dirty_bytes", "gauge", "Memory waiting to be written back to disk."),
        _m("mem.shared_bytes", "gauge", "Shared memory (shmem, tmpfs)."),
        _m("mem.anon_bytes", "gauge", "Anonymous pages mapped into user space."),
        _m("mem.slab_bytes", "gauge", "Kernel slab memory."),
        _m("mem.kernel_stack_bytes", "gauge", "Kernel stacks."),
        _m("mem.page_tables_bytes", "gauge", "Page tables."),
        _m("mem.vmalloc_used_bytes", "gauge", "Used vmalloc area."),
        _m("mem.huge_free_bytes", "gauge", "Huge pages not yet allocated."),
        _m("mem.huge_used_bytes", "gauge", "Huge pages allocated."),
        _m("mem.huge_used_pct", "gauge", "Allocated huge pages as percent of all huge pages."),
        _m("mem.huge_reserved_bytes", "gauge", "Huge pages reserved but not yet allocated."),
        _m("mem.huge_surplus_bytes", "gauge", "Surplus huge pages."),
        _m("swap.used_pct", "gauge", "Swap in use as percent of swap space."),
        _m("swap.cached_bytes", "gauge", "Swap that is also in memory (sar kbswpcad)."),
        _m("swap.cached_pct", "gauge", "Cached swap as percent of used swap."),
        _m("kernel.dentries_unused", "gauge", "Unused directory cache entries."),
        _m("kernel.file_handles", "gauge", "File handles in use."),
        _m("kernel.inodes", "gauge", "Inode handlers in use."),
        _m("kernel.ptys", "gauge", "Pseudo-terminals in use."),
        _m("psi.cpu_some_avg10_pct", "gauge", "CPU pressure (some tasks stalled), 10 s average."),
        _m("psi.cpu_some_avg60_pct", "gauge", "CPU pressure (some tasks stalled), 60 s average."),
        _m("psi.cpu_some_avg300_pct", "gauge", "CPU pressure (some tasks stalled), 300 s average."),
        _m("psi.cpu_some_pct", "gauge", "CPU pressure (some tasks stalled) over the interval."),
        _m("psi.io_some_avg10_pct", "gauge", "I/O pressure (some tasks stalled), 10 s average."),
        _m("psi.io_some_avg60_pct", "gauge", "I/O pressure (some tasks stalled), 60 s average."),
        _m("psi.io_some_avg300_pct", "gauge", "I/O pressure (some tasks stalled), 300 s average."),
        _m("psi.io_some_pct", "gauge", "I/O pressure (some tasks stalled) over the interval."),
        _m("psi.io_full_avg10_pct", "gauge", "I/O pressure (all tasks stalled), 10 s average."),
        _m("psi.io_full_avg60_pct", "gauge", "I/O pressure (all tasks stalled), 60 s average."),
        _m("psi.io_full_avg300_pct", "gauge", "I/O pressure (all tasks stalled), 300 s average."),
        _m("psi.io_full_pct", "gauge", "I/O pressure (all tasks stalled) over the interval."),
        _m("psi.mem_some_avg10_pct", "gauge", "Memory pressure (some tasks stalled), 10 s average."),
        _m("psi.mem_some_avg60_pct", "gauge", "Memory pressure (some tasks stalled), 60 s average."),
        _m("psi.mem_some_avg300_pct", "gauge", "Memory pressure (some tasks stalled), 300 s average."),
        _m("psi.mem_some_pct", "gauge", "Memory pressure (some tasks stalled) over the interval."),
        _m("psi.mem_full_avg10_pct", "gauge", "Memory pressure (all tasks stalled), 10 s average."),
        _m("psi.mem_full_avg60_pct", "gauge", "Memory pressure (all tasks stalled), 60 s average."),
        _m("psi.mem_full_avg300_pct", "gauge", "Memory pressure (all tasks stalled), 300 s average."),
        _m("psi.mem_full_pct", "gauge", "Memory pressure (all tasks stalled) over the interval."),
        _m("disk.discard_bytes_per_s", "rate", "Bytes discarded per second."),
        _m("disk.request_size_bytes", "gauge", "Mean size of the I/O requests."),
        _m("disk.service_ms", "gauge", "Mean service time of I/O requests (old sysstat svctm)."),
        _m("net.rx_compressed_packets_per_s", "rate", "Compressed packets received per second."),
        _m("net.tx_compressed_packets_per_s", "rate", "Compressed packets sent per second."),
        _m("net.rx_multicast_packets_per_s", "rate", "Multicast packets received per second."),
        _m("net.collisions_per_s", "rate", "Collisions per second while sending."),
        _m("net.tx_carrier_errors_per_s", "rate", "Carrier errors per second while sending."),
        _m("net.rx_frame_errors_per_s", "rate", "Frame alignment errors per second on received packets."),
        _m("net.rx_fifo_errors_per_s", "rate", "FIFO overruns per second on received packets."),
        _m("net.tx_fifo_errors_per_s", "rate", "FIFO overruns per second on sent packets."),
        _m("sock.total", "gauge", "Sockets in use."),
        _m("sock.tcp", "gauge", "TCP sockets in use."),
        _m("sock.udp", "gauge", "UDP sockets in use."),
        _m("sock.raw", "gauge", "Raw sockets in use."),
        _m("sock.ip_fragments", "gauge", "IP fragments queued."),
        _m("sock.tcp_time_wait", "gauge", "TCP sockets in TIME_WAIT."),
        _m("tcp.active_opens_per_s", "rate", "TCP connections opened actively (outgoing) per second."),
        _m("tcp.passive_opens_per_s", "rate", "TCP connections opened passively (incoming) per second."),
        _m("tcp.in_segments_per_s", "rate", "TCP segments received per second."),
        _m("tcp.out_segments_per_s", "rate", "TCP segments sent per second."),
        _m("tcp.attempt_fails_per_s", "rate", "Failed TCP connection attempts per second."),
        _m("tcp.established_resets_per_s", "rate", "Established TCP connections reset per second."),
        _m("tcp.retransmits_per_s", "rate", "TCP segments retransmitted per second."),
        _m("tcp.in_errors_per_s", "rate", "TCP segments received in error per second."),
        _m("tcp.out_resets_per_s", "rate", "TCP segments sent with RST per second."),
        _m("fs.free_bytes", "gauge", "Free space of the filesystem."),
        _m("fs.used_bytes", "gauge", "Used space of the filesystem."),
        _m("fs.used_pct", "gauge", "Used space as percent of the filesystem."),
        _m("fs.user_used_pct", "gauge", "Used space as percent of the space available to unprivileged users."),
        _m("fs.inodes_free", "gauge", "Free inodes of the filesystem."),
        _m("fs.inodes_used", "gauge", "Used inodes of the filesystem."),
        _m("fs.inodes_used_pct", "gauge", "Used inodes as percent of all inodes."),
        _m("mem.buff_cache_bytes", "gauge", "Buffers, page cache and reclaimable slab together (top buff/cache)."),
    )
}

# Families whose members are open-ended (Prometheus series, Varnish counters,
# application endpoints): a metric under one of these prefixes is accepted.
OPEN_PREFIXES: dict[str, str] = {
    "prom.": "A Prometheus series kept under its own name (`prom.<metric name>`), labels in `labels`.",
    "app.": "An application endpoint's own number (e.g. `app.session_count`).",
    "varnish.": "Varnish counters and gauges.",
    "redis.": "Redis INFO fields.",
    "tsung.": "Tsung's own os_mon and counter series.",
}


def is_known_metric(name: str) -> bool:
    """Whether `name` is in the vocabulary or under one of its open prefixes."""
    return name in METRICS or any(name.startswith(p) for p in OPEN_PREFIXES)


def _cast(column: pa.ChunkedArray | pa.Array, target: pa.DataType, table: str, name: str) -> pa.ChunkedArray:
    if column.type == target:
        return column
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            raise SchemaError(f"{table}.{name}: naive timestamps are not accepted; localise them to UTC first")
        return pc.cast(column, target)
    try:
        return pc.cast(column, target)
    except pa.ArrowException as exc:  # invalid values, or no cast between the two types
        raise SchemaError(f"{table}.{name}: cannot cast {column.type} to {target}: {exc}") from exc


def conform(table: pa.Table, kind: str) -> pa.Table:
    """Cast and order `table` to the canonical schema of `kind`.

    Missing optional columns are added as nulls. A missing required column, a
    required column holding nulls, or a column the schema does not declare
    raises `SchemaError` naming them.
    """
    if kind not in TABLES:
        raise SchemaError(f"unknown table kind {kind!r}; known: {', '.join(TABLES)}")
    spec = TABLES[kind]
    names = set(table.column_names)
    declared = {c.name for c in spec.columns}
    extra = sorted(
        n for n in names - declared if not (spec.extra_prefix and n.startswith(spec.extra_prefix))
    )
    if extra:
        raise SchemaError(f"{kind}: unknown column(s) {', '.join(extra)}")
    missing = [n for n in spec.required if n not in names]
    if missing:
        raise SchemaError(f"{kind}: missing required column(s) {', '.join(missing)}")
    arrays, fields = [], []
    for col in spec.columns:
        if col.name in names:
            arr = _cast(table.column(col.name), col.type, kind, col.name)
            if col.required and arr.null_count:
                raise SchemaError(f"{kind}.{col.name}: required column has {arr.null_count} null value(s)")
        else:
            arr = pa.chunked_array([pa.nulls(table.num_rows, col.type)], col.type)
        arrays.append(arr)
        fields.append(pa.field(col.name, col.type, nullable=not col.required))
    for name in sorted(names - declared):
        arrays.append(_cast(table.column(name), pa.string(), kind, name))
        fields.append(pa.field(name, pa.string()))
    if kind == "host_metrics":
        unknown = [m for m in pc.unique(arrays[2]).to_pylist() if not is_known_metric(m)]
        if unknown:
            raise SchemaError(f"host_metrics: metric(s) not in the vocabulary: {', '.join(sorted(unknown)[:10])}")
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def empty(kind: str) -> pa.Table:
    """An empty table of the canonical schema of `kind`."""
    return TABLES[kind].arrow_schema().empty_table()


def tables_markdown() -> str:
    """The documentation page of the canonical tables and the metric vocabulary."""
    out = [
        "# Canonical tables",
        "",
        "Generated from `capacity/schema.py` by `python -m capacity.docgen`; do not edit by hand.",
        "",
        "Timestamps are UTC. Every table is stored as `STORE/<table>/run_id=<run>/<file>.parquet`; "
        "`run_id` is the Hive partition key, so engines reading the layout see it as a column.",
        "",
    ]
    for spec in TABLES.values():
        out += [f"## `{spec.name}`", "", f"One row is {spec.row}.", "", "| column | type | required | description |", "|---|---|---|---|"]
        for c in spec.columns:
            out.append(f"| `{c.name}` | {c.type} | {'yes' if c.required else ''} | {c.description} |")
        if spec.extra_prefix:
            out.append(f"| `{spec.extra_prefix}*` | string | | Extra columns kept from the input (e.g. JMeter sample variables). |")
        out.append("")
    out += [
        "## Host metric vocabulary",
        "",
        "Every host collector (sar, top, psutil, Prometheus, ...) writes these names in `host_metrics.metric`. "
        "The aggregate over all CPUs, disks or interfaces has `device = \"all\"`; a single device keeps its own name.",
        "",
        "| metric | unit | kind | description |",
        "|---|---|---|---|",
    ]
    for m in METRICS.values():
        out.append(f"| `{m.name}` | {m.unit} | {m.kind} | {m.description} |")
    out += ["", "Open families, accepted under their prefix:", ""]
    for prefix, text in OPEN_PREFIXES.items():
        out.append(f"- `{prefix}*`: {text}")
    out.append("")
    return "\n".join(out)
