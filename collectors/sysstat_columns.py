"""The one sar column -> host metric mapping, shared by every sysstat reader.

`sar` text, `sadf -d`, `sadf -p`, `sadf -j`, `sadf -x` and binary `saDD` files
all name the same fields (JSON and XML spell them differently, see
`json_column`). Each reader turns its input into long arrays of
(timestamp, device, metric, value) using `SECTIONS`, then `build_table` adds
the derived metrics and returns the canonical `host_metrics` table. `long_table`
does that part on arrays of device and metric codes; `sadf_csv_blocks` calls it
per time range to stream a large file in batches.

Units are converted here, at the boundary: sar's kB, MB and 512-byte sectors
become bytes; rates keep their `_per_s` unit; MHz becomes Hz.

Sections sar prints that say nothing about capacity (serial lines, interrupts
per IRQ, NFS, IP/ICMP/UDP protocol counters) are recognised and skipped on
purpose (`SKIPPED_FIRST_COLUMNS`), so a section we have never seen is noticed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform

KB = 1024.0
MB = 1024.0 * 1024.0
SECTOR = 512.0

# Metric names starting with "_" are intermediate: they feed a derived metric
# and are dropped before the table is returned.
_M = tuple[str, float]


@dataclass(frozen=True)
class Section:
    """One sar activity: its device column and its columns mapped to metrics."""

    name: str
    device: str | None
    columns: dict[str, _M]
    elements: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    # Columns of older sysstat versions, used only when the newer one is absent.
    legacy: frozenset[str] = frozenset()

    @property
    def first_column(self) -> str:
        """The column that opens this section's header, in every sysstat version."""
        return next(iter(self.columns))

def _psi(res: str) -> dict[str, _M]:
    # sar has no "full" pressure for CPU.
    kinds = (("s", "some"),) if res == "cpu" else (("s", "some"), ("f", "full"))
    out: dict[str, _M] = {}
    for letter, kind in kinds:
        for win in ("10", "60", "300"):
            out[f"%{letter}{res}-{win}"] = (f"psi.{res}_{kind}_avg{win}_pct", 1.0)
        out[f"%{letter}{res}"] = (f"psi.{res}_{kind}_pct", 1.0)
    return out


def _psi_aliases(res: str) -> dict[str, str]:
    return {f"{kind}_avg{win}": f"%{kind[0]}{res}{'-' + win if win else ''}"
            for kind in ("some", "full") for win in ("10", "60", "300", "")}


SECTIONS: tuple[Section, ...] = (
    Section("cpu", "CPU", {
        "%user": ("cpu.user_pct", 1.0), "%nice": ("cpu.nice_pct", 1.0), "%system": ("cpu.system_pct", 1.0),
        "%iowait": ("cpu.iowait_pct", 1.0), "%steal": ("cpu.steal_pct", 1.0), "%idle": ("cpu.idle_pct", 1.0),
    }, ("cpu-load", "cpu"), {"user": "%user", "system": "%system"}),
    # `-u ALL`: %usr/%nice/%sys exclude guest and irq time, unlike %user/%nice/%system;
    # build_table restores the `-u` meaning so both layouts give the same metrics.
    Section("cpu_all", "CPU", {
        "%usr": ("_usr", 1.0), "%nice": ("_nice", 1.0), "%sys": ("_sys", 1.0),
        "%iowait": ("cpu.iowait_pct", 1.0), "%steal": ("cpu.steal_pct", 1.0), "%irq": ("cpu.irq_pct", 1.0),
        "%soft": ("cpu.softirq_pct", 1.0), "%guest": ("cpu.guest_pct", 1.0), "%gnice": ("cpu.guest_nice_pct", 1.0),
        "%idle": ("cpu.idle_pct", 1.0),
    }, ("cpu-load", "cpu")),
    Section("cpufreq", "CPU", {"MHz": ("cpu.frequency_hz", 1e6)}, ("cpu-frequency", "cpufreq"), {"frequency": "MHz"}),
    Section("softnet", "CPU", {
        "total/s": ("net.softnet_processed_per_s", 1.0), "dropd/s": ("net.softnet_dropped_per_s", 1.0),
        "squeezd/s": ("net.softnet_squeezed_per_s", 1.0), "rx_rps/s": ("net.softnet_rps_per_s", 1.0),
        "flw_lim/s": ("net.softnet_flow_limit_per_s", 1.0), "blg_len": ("net.softnet_backlog_length", 1.0),
    }, ("softnet",)),
    Section("tasks", None, {"proc/s": ("proc.created_per_s", 1.0), "cswch/s": ("proc.cswch_per_s", 1.0)},
            ("process-and-context-switch",)),
    Section("swapping", None, {"pswpin/s": ("swap.in_pages_per_s", 1.0), "pswpout/s": ("swap.out_pages_per_s", 1.0)},
            ("swap-pages",)),
    Section("paging", None, {
        "pgpgin/s": ("paging.in_bytes_per_s", KB), "pgpgout/s": ("paging.out_bytes_per_s", KB),
        "fault/s": ("paging.faults_per_s", 1.0), "majflt/s": ("paging.major_faults_per_s", 1.0),
        "pgfree/s": ("paging.freed_pages_per_s", 1.0), "pgscank/s": ("paging.scanned_kswapd_pages_per_s", 1.0),
        "pgscand/s": ("paging.scanned_direct_pages_per_s", 1.0), "pgsteal/s": ("paging.reclaimed_pages_per_s", 1.0),
        "%vmeff": ("paging.vm_efficiency_pct", 1.0), "pgprom/s": ("paging.promoted_pages_per_s", 1.0),
        "pgdem/s": ("paging.demoted_pages_per_s", 1.0),
    }, ("paging",)),
    Section("io", None, {
        "tps": ("io.transfers_per_s", 1.0), "rtps": ("io.read_transfers_per_s", 1.0),
        "wtps": ("io.write_transfers_per_s", 1.0), "dtps": ("io.discard_transfers_per_s", 1.0),
        "bread/s": ("io.read_bytes_per_s", SECTOR), "bwrtn/s": ("io.write_bytes_per_s", SECTOR),
        "bdscd/s": ("io.discard_bytes_per_s", SECTOR),
    }, ("io", "io-reads", "io-writes", "io-discard")),
    Section("memory", None, {
        "kbmemfree": ("mem.free_bytes", KB), "kbavail": ("mem.available_bytes", KB),
        "kbmemused": ("mem.used_bytes", KB), "%memused": ("mem.used_pct", 1.0),
        "kbbuffers": ("mem.buffers_bytes", KB), "kbcached": ("mem.cached_bytes", KB),
        "kbcommit": ("mem.commit_bytes", KB), "%commit": ("mem.commit_pct", 1.0),
        "kbactive": ("mem.active_bytes", KB), "kbinact": ("mem.inactive_bytes", KB),
        "kbdirty": ("mem.dirty_bytes", KB), "kbshmem": ("mem.shared_bytes", KB),
        "kbanonpg": ("mem.anon_bytes", KB), "kbslab": ("mem.slab_bytes", KB),
        "kbkstack": ("mem.kernel_stack_bytes", KB), "kbpgtbl": ("mem.page_tables_bytes", KB),
        "kbvmused": ("mem.vmalloc_used_bytes", KB),
    }, ("memory",), {"inactive": "kbinact", "shared": "kbshmem"}),
    Section("swap", None, {
        "kbswpfree": ("swap.free_bytes", KB), "kbswpused": ("swap.used_bytes", KB),
        "%swpused": ("swap.used_pct", 1.0), "kbswpcad": ("swap.cached_bytes", KB),
        "%swpcad": ("swap.cached_pct", 1.0),
    }, ("memory",)),
    Section("hugepages", None, {
        "kbhugfree": ("mem.huge_free_bytes", KB), "kbhugused": ("mem.huge_used_bytes", KB),
        "%hugused": ("mem.huge_used_pct", 1.0), "kbhugrsvd": ("mem.huge_reserved_bytes", KB),
        "kbhugsurp": ("mem.huge_surplus_bytes", KB),
    }, ("hugepages",)),
    Section("kernel", None, {
        "dentunusd": ("kernel.dentries_unused", 1.0), "file-nr": ("kernel.file_handles", 1.0),
        "inode-nr": ("kernel.inodes", 1.0), "pty-nr": ("kernel.ptys", 1.0),
    }, ("kernel",)),
    Section("queue", None, {
        "runq-sz": ("load.runq_size", 1.0), "plist-sz": ("proc.count", 1.0), "ldavg-1": ("load.1m", 1.0),
        "ldavg-5": ("load.5m", 1.0), "ldavg-15": ("load.15m", 1.0), "blocked": ("load.blocked", 1.0),
    }, ("queue",)),
    Section("psi_cpu", None, _psi("cpu"), ("psi-cpu",), _psi_aliases("cpu")),
    Section("psi_io", None, _psi("io"), ("psi-io",), _psi_aliases("io")),
    Section("psi_mem", None, _psi("mem"), ("psi-mem",), _psi_aliases("mem")),
    Section("disk", "DEV", {
        "tps": ("disk.transfers_per_s", 1.0), "rkB/s": ("disk.read_bytes_per_s", KB),
        "wkB/s": ("disk.write_bytes_per_s", KB), "dkB/s": ("disk.discard_bytes_per_s", KB),
        "areq-sz": ("disk.request_size_bytes", KB), "aqu-sz": ("disk.queue_size", 1.0),
        "await": ("disk.await_ms", 1.0), "svctm": ("disk.service_ms", 1.0), "%util": ("disk.util_pct", 1.0),
        "rd_sec/s": ("disk.read_bytes_per_s", SECTOR), "wr_sec/s": ("disk.write_bytes_per_s", SECTOR),
        "dc_sec/s": ("disk.discard_bytes_per_s", SECTOR), "avgrq-sz": ("disk.request_size_bytes", SECTOR),
        "avgqu-sz": ("disk.queue_size", 1.0),
    }, ("disk", "disk-device"), {"rd_sec": "rd_sec/s", "wr_sec": "wr_sec/s", "dc_sec": "dc_sec/s"},
        frozenset({"rd_sec/s", "wr_sec/s", "dc_sec/s", "avgrq-sz", "avgqu-sz"})),
    Section("net_dev", "IFACE", {
        "rxpck/s": ("net.rx_packets_per_s", 1.0), "txpck/s": ("net.tx_packets_per_s", 1.0),
        "rxkB/s": ("net.rx_bytes_per_s", KB), "txkB/s": ("net.tx_bytes_per_s", KB),
        "rxcmp/s": ("net.rx_compressed_packets_per_s", 1.0), "txcmp/s": ("net.tx_compressed_packets_per_s", 1.0),
        "rxmcst/s": ("net.rx_multicast_packets_per_s", 1.0), "%ifutil": ("net.util_pct", 1.0),
        "rxbyt/s": ("net.rx_bytes_per_s", 1.0), "txbyt/s": ("net.tx_bytes_per_s", 1.0),
    }, ("net-dev",), legacy=frozenset({"rxbyt/s", "txbyt/s"})),
    Section("net_edev", "IFACE", {
        "rxerr/s": ("net.rx_errors_per_s", 1.0), "txerr/s": ("net.tx_errors_per_s", 1.0),
        "coll/s": ("net.collisions_per_s", 1.0), "rxdrop/s": ("net.rx_drops_per_s", 1.0),
        "txdrop/s": ("net.tx_drops_per_s", 1.0), "txcarr/s": ("net.tx_carrier_errors_per_s", 1.0),
        "rxfram/s": ("net.rx_frame_errors_per_s", 1.0), "rxfifo/s": ("net.rx_fifo_errors_per_s", 1.0),
        "txfifo/s": ("net.tx_fifo_errors_per_s", 1.0),
    }, ("net-edev",)),
    Section("sock", None, {
        "totsck": ("sock.total", 1.0), "tcpsck": ("sock.tcp", 1.0), "udpsck": ("sock.udp", 1.0),
        "rawsck": ("sock.raw", 1.0), "ip-frag": ("sock.ip_fragments", 1.0), "tcp-tw": ("sock.tcp_time_wait", 1.0),
    }, ("net-sock",)),
    Section("tcp", None, {
        "active/s": ("tcp.active_opens_per_s", 1.0), "passive/s": ("tcp.passive_opens_per_s", 1.0),
        "iseg/s": ("tcp.in_segments_per_s", 1.0), "oseg/s": ("tcp.out_segments_per_s", 1.0),
    }, ("net-tcp",)),
    Section("etcp", None, {
        "atmptf/s": ("tcp.attempt_fails_per_s", 1.0), "estres/s": ("tcp.established_resets_per_s", 1.0),
        "retrans/s": ("tcp.retransmits_per_s", 1.0), "isegerr/s": ("tcp.in_errors_per_s", 1.0),
        "orsts/s": ("tcp.out_resets_per_s", 1.0),
    }, ("net-etcp",)),
    Section("filesystem", "FILESYSTEM", {
        "MBfsfree": ("fs.free_bytes", MB), "MBfsused": ("fs.used_bytes", MB), "%fsused": ("fs.used_pct", 1.0),
        "%ufsused": ("fs.user_used_pct", 1.0), "Ifree": ("fs.inodes_free", 1.0), "Iused": ("fs.inodes_used", 1.0),
        "%Iused": ("fs.inodes_used_pct", 1.0),
    }, ("filesystems", "filesystem")),
)

# First columns of sections deliberately not kept (see the module docstring).
SKIPPED_FIRST_COLUMNS = frozenset({
    "INTR", "rcvin/s", "call/s", "scall/s", "irec/s", "ihdrerr/s", "imsg/s", "ierr/s", "idgm/s",
    "tcp6sck", "irec6/s", "ihdrer6/s", "imsg6/s", "ierr6/s", "idgm6/s", "CPU*",
    "rpm", "degC", "inV", "idvendor", "%cap", "all",
})
# Device column names sar prints in a header before the value columns.
DEVICE_COLUMNS = frozenset({"CPU", "DEV", "IFACE", "TTY", "INTR", "FILESYSTEM", "BUS", "FAN", "TEMP", "IN", "BAT"})
# Keys naming the device in sadf -j objects and sadf -x elements.
DEVICE_KEYS = ("cpu", "number", "disk-device", "dev", "iface", "filesystem", "fsname", "intr", "line")

NET_ADDITIVE = (
    "net.rx_bytes_per_s", "net.tx_bytes_per_s", "net.rx_packets_per_s", "net.tx_packets_per_s",
    "net.rx_errors_per_s", "net.tx_errors_per_s", "net.rx_drops_per_s", "net.tx_drops_per_s",
)
# metric -> (constant, ((term metric, sign), ...)): computed per (ts, device) when every term is present.
DERIVED: dict[str, tuple[float, tuple[tuple[str, float], ...]]] = {
    "cpu.user_pct": (0.0, (("_usr", 1.0), ("cpu.guest_pct", 1.0))),
    "cpu.nice_pct": (0.0, (("_nice", 1.0), ("cpu.guest_nice_pct", 1.0))),
    "cpu.system_pct": (0.0, (("_sys", 1.0), ("cpu.irq_pct", 1.0), ("cpu.softirq_pct", 1.0))),
    "cpu.busy_pct": (100.0, (("cpu.idle_pct", -1.0), ("cpu.iowait_pct", -1.0))),
}


def section_for(first_column: str, device: str | None) -> Section | None:
    """The section whose header starts with `first_column` after device column `device`.

    `device` is the device column name, None for a section without one, or "?"
    when only its presence is known (sadf -p).
    """
    for sec in SECTIONS:
        has = sec.device is not None
        wanted = device is not None
        if first_column == sec.first_column and has == wanted and (device in (None, "?") or device == sec.device):
            return sec
    return None


def is_skipped(first_column: str) -> bool:
    """Whether a section starting with this column is known and deliberately not kept."""
    return first_column in SKIPPED_FIRST_COLUMNS


def usable_columns(section: Section, columns: Iterable[str]) -> dict[str, _M]:
    """Columns of a block that map to metrics, legacy ones dropped when the newer one is there."""
    cols = [c for c in columns if c in section.columns]
    newer = {section.columns[c][0] for c in cols if c not in section.legacy}
    return {c: section.columns[c] for c in cols if c not in section.legacy or section.columns[c][0] not in newer}


_BY_ELEMENT: dict[str, list[Section]] = {}
for _sec in SECTIONS:
    for _el in _sec.elements:
        _BY_ELEMENT.setdefault(_el, []).append(_sec)


def is_element(element: str) -> bool:
    """Whether a sadf -j key or sadf -x tag holds an activity this module maps."""
    return element in _BY_ELEMENT


def json_column(element: str, key: str) -> tuple[Section, str] | None:
    """The section and sar column a sadf -j key (or sadf -x attribute) of `element` stands for."""
    for sec in _BY_ELEMENT.get(element, ()):
        if key in sec.aliases:
            return sec, sec.aliases[key]
        stem = "%" + key[: -len("-percent")] if key.endswith("-percent") else key
        for cand in (stem, stem + "/s", "kb" + stem, "%" + stem):
            if cand in sec.columns:
                return sec, cand
    return None


def cpu_device(value: str) -> str:
    """sar's CPU naming everywhere: `all`, `0`, `1` (sadf -d writes -1, sadf -p cpu0)."""
    if value == "-1":
        return "all"
    if value.startswith("cpu") and value[3:].isdigit():
        return value[3:]
    return value


class LongRows:
    """Accumulates (ts, device, metric, value) columns in numpy/list chunks."""

    def __init__(self) -> None:
        self.ts: list[np.ndarray] = []
        self.device: list[list[str | None]] = []
        self.metric: list[list[str]] = []
        self.value: list[np.ndarray] = []

    def add_block(self, ts: np.ndarray, devices: list[str | None] | None, mapping: dict[str, _M],
                  columns: list[str], values: np.ndarray) -> None:
        """Add a rows-by-columns block: `values[:, j]` holds column `columns[j]` for every row."""
        n = len(ts)
        if n == 0:
            return
        devs = devices if devices is not None else [None] * n
        for j, col in enumerate(columns):
            if col not in mapping:
                continue
            metric, factor = mapping[col]
            self.ts.append(ts)
            self.device.append(devs)
            self.metric.append([metric] * n)
            self.value.append(values[:, j] * factor)

    def add(self, ts: int, device: str | None, metric: str, value: float) -> None:
        """Add one value (used by readers walking nested documents)."""
        self.ts.append(np.array([ts], dtype=np.int64))
        self.device.append([device])
        self.metric.append([metric])
        self.value.append(np.array([value], dtype=np.float64))

    def __len__(self) -> int:
        return sum(len(t) for t in self.ts)


@dataclass
class LongArrays:
    """Long rows as codes: `device[i]` indexes `devices` (-1 is null), `metric[i]` indexes `metrics`.

    `ts` holds UTC epoch milliseconds. Codes keep the derived-metric arithmetic in numpy and
    integer group keys; the strings are made once, for the rows of the finished table.
    """

    ts: np.ndarray
    device: np.ndarray
    metric: np.ndarray
    value: np.ndarray
    devices: list[str]
    metrics: list[str]


def _codes(values: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes of a string array (-1 for null) and the dictionary."""
    encoded = pc.dictionary_encode(values)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, encoded.dictionary.to_pylist()


def build_table(rows: LongRows, host: str, source: str, local_tz: str | None,
                host_info: dict[str, object] | None = None) -> pa.Table:
    """The canonical host_metrics table: derived metrics added, units already converted.

    `rows.ts` holds epoch milliseconds, UTC when `local_tz` is None, otherwise wall
    clock times in that zone (sar text).
    """
    ts_all = np.concatenate(rows.ts) if rows.ts else np.zeros(0, dtype=np.int64)
    device, devices = _codes(pa.array([d for chunk in rows.device for d in chunk], pa.string()))
    metric, metrics = _codes(pa.array([m for chunk in rows.metric for m in chunk], pa.string()))
    value = np.concatenate(rows.value).astype(np.float64, copy=False) if rows.value else np.zeros(0)
    return long_table(LongArrays(utc_ms(ts_all, local_tz), device, metric, value, devices, metrics),
                      host, source, host_info)


def utc_ms(ts: np.ndarray, local_tz: str | None) -> np.ndarray:
    """Epoch milliseconds read as wall-clock times in `local_tz` (None: already UTC) as UTC ones."""
    if local_tz is None:
        return ts
    wall = pa.array(ts, pa.timestamp("ms"))
    utc = pc.assume_timezone(wall, timezone=local_tz, ambiguous="earliest", nonexistent="earliest")
    return utc.cast(pa.int64()).to_numpy()


def long_table(rows: LongArrays, host: str, source: str, host_info: dict[str, object] | None = None) -> pa.Table:
    """The canonical host_metrics table of `rows` with the derived metrics added.

    Row order: the rows as given, then each derived metric, then the per-time network sums,
    stably sorted by time; so a caller that splits its rows by time range and calls this per
    range gets, concatenated, the same table as one call on all rows.
    """
    devices, metrics = list(rows.devices), list(rows.metrics)
    code = {m: i for i, m in enumerate(metrics)}
    dev_code = {d: i for i, d in enumerate(devices)}
    # Grouping keys fill a null device with "" (so "" and null are one device) and derived rows
    # of that device are null.
    key = rows.device if "" not in dev_code else np.where(rows.device == dev_code[""], -1, rows.device)
    parts = [(rows.ts, rows.device, rows.metric, rows.value)]
    for metric, (const, terms) in DERIVED.items():
        names = [t for t, _ in terms]
        if not any(n in code for n in names):
            continue
        signs = np.zeros(len(metrics))
        for name, sign in terms:
            if name in code:
                signs[code[name]] = sign
        sel = np.flatnonzero(np.isin(rows.metric, [code[n] for n in names if n in code]))
        if not len(sel):
            continue
        first, total, count = _group_sums(rows.ts[sel], key[sel], rows.value[sel] * signs[rows.metric[sel]])
        whole = count == len(terms)
        # Two decimals, as sar prints them, so 100 - 94.47 is 5.53 and not 5.530000000000001.
        value = pc.round(pc.add(pa.array(total[whole]), const), 2).to_numpy()
        code.setdefault(metric, len(metrics))
        if code[metric] == len(metrics):
            metrics.append(metric)
        rows_at = sel[first[whole]]
        parts.append((rows.ts[rows_at], key[rows_at], np.full(len(rows_at), code[metric], np.int32), value))
    net_codes = [code[m] for m in NET_ADDITIVE if m in code]
    if net_codes:
        net = np.isin(rows.metric, net_codes)
        if "lo" in dev_code:
            net &= rows.device != dev_code["lo"]
        sel = np.flatnonzero(net)
        if len(sel):
            first, total, _ = _group_sums(rows.ts[sel], rows.metric[sel], rows.value[sel])
            if "all" not in dev_code:
                dev_code["all"] = len(devices)
                devices.append("all")
            rows_at = sel[first]
            parts.append((rows.ts[rows_at], np.full(len(rows_at), dev_code["all"], np.int32), rows.metric[rows_at], total))
    ts, device, metric, value = (np.concatenate([p[i] for p in parts]) for i in range(4))
    kept = np.array([not m.startswith("_") for m in metrics] or [True], dtype=bool)[metric]
    # A stable sort, as Table.sort_by is: rows of one time keep the order above.
    order = np.flatnonzero(kept)
    order = order[np.argsort(ts[order], kind="stable")]
    device = device[order]
    n = len(order)
    table = pa.table({
        "ts": pa.array(ts[order], pa.timestamp("ms", tz="UTC")),
        "device": pa.array(devices, pa.string()).take(pa.array(device, pa.int32(), mask=device < 0)),
        "metric": pa.array(metrics, pa.string()).take(pa.array(metric[order], pa.int32())),
        "value": pa.array(value[order], pa.float64()),
        "host": pa.repeat(pa.scalar(host, pa.string()), n),
        "source": pa.repeat(pa.scalar(source, pa.string()), n),
    })
    table = conform(table, "host_metrics")
    if host_info is not None:
        table = table.replace_schema_metadata({b"host_info": json.dumps(host_info).encode()})
    return table


def _group_sums(ts: np.ndarray, key: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of equal (ts, key), in the order of their first row: that row, the sum and count of values.

    Each sum adds its values in row order, starting from 0.
    """
    order = np.lexsort((key, ts))
    st, sk = ts[order], key[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (st[1:] != st[:-1]) | (sk[1:] != sk[:-1])
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    first = order[starts]  # lexsort is stable: the first row of each run is the group's first row
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    group = rank[group]
    n = len(first)
    return np.sort(first), np.bincount(group, weights=value, minlength=n), np.bincount(group, minlength=n)


def parse_numbers(path: object, texts: list[list[str]], line_numbers: list[int],
                  error: Callable[[object, str, int | None], Exception]) -> np.ndarray:
    """Rows of number strings (`.` or `,` decimals) as a float matrix, or an error naming the line."""
    with contextlib.suppress(ValueError):  # the fast path; below, find the cell at fault or read comma decimals
        return np.array(texts, dtype=np.float64)
    for row, line in zip(texts, line_numbers, strict=False):
        for cell in row:
            try:
                float(cell.replace(",", "."))
            except ValueError:
                raise error(path, f"expected a number, found {cell!r}", line) from None
    try:
        return np.array([[c.replace(",", ".") for c in row] for row in texts], dtype=np.float64)
    except ValueError as exc:
        raise error(path, f"rows of unequal length in one section: {exc}", line_numbers[0] if line_numbers else None) from None


def sadf_times(path: object, stamps: list[str], line: int | None,
               error: Callable[[object, str, int | None], Exception]) -> tuple[np.ndarray, bool]:
    """sadf timestamps as epoch milliseconds, and whether they are local wall-clock times.

    `YYYY-MM-DD HH:MM:SS UTC` (the default) is UTC; `-U` gives epoch seconds;
    `-T`/`-t` append a local zone abbreviation, which is read in the `tz` option's zone.
    """
    if not stamps:
        return np.zeros(0, dtype=np.int64), False
    first = stamps[0]
    try:
        if first.isdigit():
            return np.array(stamps, dtype=np.int64) * 1000, False
        clock = np.array([s[:19] for s in stamps], dtype="datetime64[s]")
    except ValueError as exc:
        raise error(path, f"expected sadf timestamps like '2026-11-21 23:23:51 UTC', found {first!r}: {exc}", line) from None
    return clock.astype(np.int64) * 1000, not first.endswith(" UTC")


class StructuredRows(LongRows):
    """Collects the values of `sadf -j` objects and `sadf -x` elements, one object at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.unmapped: set[str] = set()
        self.cpus: set[str] = set()
        self._ts: list[int] = []
        self._device: list[str | None] = []
        self._metric: list[str] = []
        self._value: list[float] = []

    def add_item(self, element: str, ts: int, fields: dict[str, object]) -> None:
        """Add the numeric fields of one object (`element` is its JSON key or XML tag)."""
        if element not in _BY_ELEMENT:
            return
        device = next((str(fields[k]) for k in DEVICE_KEYS if k in fields), None)
        by_section: dict[str, tuple[Section, dict[str, object]]] = {}
        for key, raw in fields.items():
            if key in DEVICE_KEYS or key in ("per", "unit") or isinstance(raw, (dict, list)):
                continue
            found = json_column(element, key)
            if found is None:
                self.unmapped.add(f"{element}.{key}")
                continue
            by_section.setdefault(found[0].name, (found[0], {}))[1][found[1]] = raw
        for sec, values in by_section.values():
            dev = None if sec.device is None else (cpu_device(device or "") if sec.device == "CPU" else device)
            if sec.device == "CPU" and dev and dev.isdigit():
                self.cpus.add(dev)
            for col, (metric, factor) in usable_columns(sec, values).items():
                raw = values[col]
                value = float(raw.replace(",", ".")) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
                self._ts.append(ts)
                self._device.append(dev)
                self._metric.append(metric)
                self._value.append(value * factor)

    def close(self) -> None:
        """Move the collected values into the long arrays `build_table` reads."""
        if self._ts:
            self.ts.append(np.array(self._ts, dtype=np.int64))
            self.device.append(self._device)
            self.metric.append(self._metric)
            self.value.append(np.array(self._value, dtype=np.float64))
        self._ts, self._device, self._metric, self._value = [], [], [], []
