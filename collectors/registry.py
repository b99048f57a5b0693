"""The one list of collectors, by hand, and detection over it."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from collectors import (
    access_log,
    apache_status,
    awstats_data,
    edfi_events,
    jmeter_jtl,
    jmeter_summary,
    jmeter_xml,
    locust_csv,
    locust_failures,
    locust_json,
    openvz_beancounters,
    prometheus_range,
    prometheus_text,
    redis_info,
    sa_binary,
    sadf_csv,
    sadf_json,
    sadf_ppc,
    sadf_xml,
    sar_text,
    top_batch,
    tsung_dump,
    tsung_json,
    tsung_log,
    varnishstat_json,
    vzlist,
)
from collectors.base import CollectorError

# Order matters only for error messages: detection must pick exactly one.
COLLECTORS: tuple[ModuleType, ...] = (
    jmeter_jtl, jmeter_xml, jmeter_summary, access_log, apache_status, awstats_data, openvz_beancounters, prometheus_range, prometheus_text, vzlist, sa_binary, sadf_csv, sadf_json, sadf_ppc, sadf_xml, sar_text, top_batch,
    tsung_log, tsung_json, tsung_dump, locust_csv, locust_failures, locust_json, edfi_events,
    varnishstat_json, redis_info,
)


def names() -> list[str]:
    """Names of every registered collector."""
    return [c.name for c in COLLECTORS]


def get(collector_name: str) -> ModuleType:
    """The collector called `collector_name`."""
    for c in COLLECTORS:
        if c.name == collector_name:
            return c
    raise KeyError(f"unknown collector {collector_name!r}; known: {', '.join(names())}")


def candidates(path: str | Path) -> list[ModuleType]:
    """Every collector whose `detect` accepts the file."""
    return [c for c in COLLECTORS if c.detect(Path(path))]


def detect(path: str | Path) -> ModuleType:
    """The one collector for `path`; a CollectorError if none or several claim it."""
    found = candidates(path)
    if not found:
        raise CollectorError(path, f"no collector recognises this file (known: {', '.join(names())}); name one with --collector")
    if len(found) > 1:
        raise CollectorError(path, f"several collectors claim this file ({', '.join(c.name for c in found)}); choose one with --collector")
    return found[0]
