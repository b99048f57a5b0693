"""`sadf -x` output (XML) into `host_metrics`, streamed with iterparse.

Values are attributes (`<cpu number="all" usr="2.15" .../>`) or child elements
(`<memfree>1437740</memfree>`, `<tps>9.00</tps>`); both spellings map through
`sysstat_columns.json_column`, like `sadf -j`. Each `<timestamp>` element is
freed once read, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from collectors import sysstat_columns as sc
from collectors import sysstat_long as sl
from collectors.base import CollectorError, check_zone, head_text
from collectors.sadf_json import timestamp_ms

name = "sadf_xml"


def detect(path: Path) -> bool:
    """An XML document whose root is sysstat's `<sysstat>` with a `<sysdata-version>`."""
    head = head_text(path, 4096)
    return head.lstrip().startswith("<?xml") and bool(re.search(r"<sysstat[\s>]", head)) and "<sysdata-version>" in head


def _tag(elem: ET.Element) -> str:
    return elem.tag.rsplit("}", 1)[-1]


def read(path: Path, tz: str = "UTC", host: str | None = None, warn: Callable[[str], None] | None = None,
         **_: object) -> dict[str, pa.Table]:
    """Read `sadf -x` output into `host_metrics`."""
    path = Path(path)
    check_zone(path, tz)
    rows = sl.StructuredRows()
    info: dict[str, object] = {"host": None, "cpu_count": None}
    stack: list[str] = []
    ts: int | None = None
    local = False
    # Text-valued children (<memfree>) are gathered into their parent's fields.
    pending: list[dict[str, object]] = []
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            tag = _tag(elem)
            if event == "start":
                stack.append(tag)
                pending.append(dict(elem.attrib))
                if tag == "host":
                    if info["host"] is not None:
                        raise CollectorError(path, "several <host> elements: split the file per host")
                    info["host"] = elem.get("nodename")
                elif tag == "timestamp":
                    ts, local = timestamp_ms(path, dict(elem.attrib), f"<timestamp> #{len(rows)}")
                continue
            fields = pending.pop()
            stack.pop()
            if tag == "number-of-cpus" and elem.text:
                info["cpu_count"] = int(elem.text)
            if ts is None or tag == "timestamp":
                if tag == "timestamp":
                    ts = None
                    elem.clear()
                continue
            text = (elem.text or "").strip()
            if not fields and text and pending:
                pending[-1][tag] = text
                continue
            parent = stack[-1] if stack else ""
            element = tag if sc.is_element(tag) else parent
            try:
                rows.add_item(element, ts, fields)
            except ValueError as exc:
                raise CollectorError(path, f"<{tag}>: expected numeric attributes: {exc}") from exc
    except ET.ParseError as exc:
        raise CollectorError(path, f"malformed XML: {exc}", exc.position[0]) from exc
    except UnicodeDecodeError as exc:
        raise CollectorError(path, f"not UTF-8 (byte {exc.start}): expected sadf -x XML") from exc
    rows.close()
    if info["host"] is None:
        raise CollectorError(path, "no <host> element: expected sadf -x output")
    if warn and rows.unmapped:
        warn(f"{path}: sadf -x fields not mapped to metrics, skipped: {', '.join(sorted(rows.unmapped))}")
    host_name = host or str(info["host"])
    info = {"host": host_name, "cpu_count": info["cpu_count"] or len(rows.cpus) or None}
    return {"host_metrics": sl.build_table(rows, host_name, name, tz if local else None, info)}
