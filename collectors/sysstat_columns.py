"""The one sar column -> host metric mapping, shared by every sysstat reader.

`sar` text, `sadf -d`, `sadf -p`, `sadf -j`, `sadf -x` and binary `saDD` files
all name the same fields (JSON and XML spell them differently, see
`json_column`). Each reader turns its input into long arrays of
(timestamp, device, metric, value) using `SECTIONS`; `sysstat_long` adds the
derived metrics (`DERIVED`) and returns the canonical `host_metrics` table.

Units are converted here, at the boundary: sar's kB, MB and 512-byte sectors
become bytes; rates keep their `_per_s` unit; MHz becomes Hz.

Sections sar prints that say nothing about capacity (serial lines, interrupts
per IRQ, NFS, IP/ICMP/UDP protocol counters) are recognised and skipped on
purpose (`SKIPPED_FIRST_COLUMNS`), so a section we have never seen is noticed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

KB = 1024.0
MB = 1024.0 * 1024.0
SECTOR = 512.0

# Metric names starting with "_" are intermediate: they feed a derived metric
# and are dropped before the table is returned.
MetricFactor = tuple[str, float]


@dataclass(frozen=True)
class Section:
    """One sar activity: its device column and its columns mapped to metrics."""

    name: str
    device: str | None
    columns: dict[str, MetricFactor]
    elements: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    # Columns of older sysstat versions, used only when the newer one is absent.
    legacy: frozenset[str] = frozenset()

    @property
    def first_column(self) -> str:
        """The column that opens this section's header, in every sysstat version."""
        return next(iter(self.columns))

def _psi(res: str) -> dict[str, MetricFactor]:
    # sar has no "full" pressure for CPU.
    kinds = (("s", "some"),) if res == "cpu" else (("s", "some"), ("f", "full"))
    out: dict[str, MetricFactor] = {}
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


def usable_columns(section: Section, columns: Iterable[str]) -> dict[str, MetricFactor]:
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
