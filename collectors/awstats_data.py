"""AWStats data files (`awstatsMMYYYY[.config].txt`, text history format) into `web_traffic`.

Every `BEGIN_<SECTION> ... END_<SECTION>` block becomes rows keyed by its
first token; the other tokens map to columns through `SECTIONS` (FORMATS.md
A4.3). The MAP section is only a byte index and is skipped. AWStats sections
aggregate the whole file period (a month by default), so their `period` is
that month; `DAY` rows carry their own day, and `TIME` rows are the month's
hour-of-day profile (key = hour). The "not viewed" traffic of `TIME` (robots,
errors) goes to rows of section `TIME_NOTVIEWED` with the same keys.

AWStats dates (`YYYYMMDDHHMMSS`) are in the server's local time: they are
localised with the `tz` option.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from capacity.schema import conform
from collectors.base import CollectorError, check_zone, first_lines

name = "awstats_data"

# Section -> meaning of the tokens after the key. "-" ignores a token;
# `value` tokens are joined into the text column.
SECTIONS: dict[str, tuple[str, ...]] = {
    "TIME": ("pages", "hits", "bandwidth_bytes", "nv_pages", "nv_hits", "nv_bandwidth_bytes"),
    "DAY": ("pages", "hits", "bandwidth_bytes", "visits"),
    "DOMAIN": ("pages", "hits", "bandwidth_bytes"),
    "VISITOR": ("pages", "hits", "bandwidth_bytes", "last_ts", "-", "value"),
    "LOGIN": ("pages", "hits", "bandwidth_bytes", "last_ts"),
    "ROBOT": ("hits", "bandwidth_bytes", "last_ts", "value"),
    "WORMS": ("hits", "bandwidth_bytes", "last_ts"),
    "EMAILSENDER": ("hits", "bandwidth_bytes", "last_ts"),
    "EMAILRECEIVER": ("hits", "bandwidth_bytes", "last_ts"),
    "SESSION": ("visits",),
    "FILESIZE": ("hits",),
    "REQUESTTIME": ("hits",),
    "SIDER": ("pages", "bandwidth_bytes", "entries", "exits"),
    "FILETYPES": ("hits", "bandwidth_bytes", "value", "value"),
    "DOWNLOADS": ("hits", "value", "bandwidth_bytes"),
    "OS": ("hits", "pages"),
    "BROWSER": ("hits", "pages"),
    "SCREENSIZE": ("hits",),
    "UNKNOWNREFERER": ("last_ts",),
    "UNKNOWNREFERERBROWSER": ("last_ts",),
    "ORIGIN": ("pages", "hits"),
    "SEREFERRALS": ("pages", "hits"),
    "PAGEREFS": ("pages", "hits"),
    "SEARCHWORDS": ("hits",),
    "KEYWORDS": ("hits",),
    "MISC": ("pages", "hits", "bandwidth_bytes"),
    "CLUSTER": ("pages", "hits", "bandwidth_bytes"),
    "ERRORS": ("hits", "bandwidth_bytes"),
    "SIDER_ERR": ("hits", "value", "value"),
    "EXTRA": ("pages", "hits", "bandwidth_bytes", "last_ts"),
}
INT_FIELDS = {"pages", "hits", "bandwidth_bytes", "visits", "visitors", "entries", "exits", "nv_pages", "nv_hits", "nv_bandwidth_bytes"}
GENERAL_DATES = {"FirstTime", "LastTime", "LastLine", "LastUpdate"}
FILE_NAME = re.compile(r"^awstats(\d{2})(\d{4})(\d{2})?(\d{2})?(?:\.(.+))?\.txt$")
YEAR_NAME = re.compile(r"^awstats(\d{4})(?:\.(.+))?\.txt$")
DATE14 = re.compile(r"^\d{14}$")
COLUMNS = ("period", "section", "key", "period_start", "site", "pages", "hits", "bandwidth_bytes", "visits",
           "visitors", "entries", "exits", "last_ts", "value", "source")


def detect(path: Path) -> bool:
    """The first line is `AWSTATS DATA FILE <version>`."""
    lines = first_lines(path, 1)
    return bool(lines) and re.match(r"^AWSTATS DATA FILE \d", lines[0]) is not None


def _period(path: Path, lines: list[str]) -> tuple[str, str | None]:
    """(period text, site) from the header comment or, failing that, the file name."""
    site = None
    m = FILE_NAME.match(path.name)
    y = YEAR_NAME.match(path.name)
    if m:
        site = m.group(5)
    elif y:
        site = y.group(2)
    for line in lines[:5]:
        found = re.search(r"statistics for date (\d{4})(\d{2})?(\d{2})?(\d{2})?\b", line)
        if found:
            return "-".join(g for g in found.groups()[:3] if g) + (f" {found.group(4)}h" if found.group(4) else ""), site
        conf = re.search(r"config file used to build this data file was \S*?awstats\.(.+)\.conf\.?$", line)
        if conf and site is None:
            site = conf.group(1)
    if m:
        mm, yyyy, dd, hh = m.group(1), m.group(2), m.group(3), m.group(4)
        return f"{yyyy}-{mm}" + (f"-{dd}" if dd else "") + (f" {hh}h" if hh else ""), site
    if y:
        return y.group(1), site
    raise CollectorError(path, "cannot tell the period: no `statistics for date` header and the name is not awstatsMMYYYY[.config].txt", line=2)


def _date(path: Path, text: str, zone: ZoneInfo, line: int) -> datetime:
    try:
        local = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=zone)
    except ValueError:
        raise CollectorError(path, f"expected a YYYYMMDDHHMMSS date, found {text!r}", line=line) from None
    return local.astimezone(UTC)


def _int(path: Path, text: str, line: int, field: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CollectorError(path, f"{field}: expected an integer, found {text!r}", line=line) from None
    if not -(2**63) < value < 2**63:
        raise CollectorError(path, f"{field}: {text} does not fit a 64-bit integer", line=line)
    return value


def _row(path: Path, section: str, tokens: list[str], line: int, zone: ZoneInfo, base: dict[str, object]) -> list[dict[str, object]]:
    row = dict(base, section=section, key=tokens[0])
    spec_name = "SIDER_ERR" if re.fullmatch(r"SIDER_\d{3}", section) else "EXTRA" if section.startswith("EXTRA_") else section
    spec = SECTIONS.get(spec_name)
    values: list[str] = []
    if spec is None:
        row["value"] = " ".join(tokens[1:]) or None
        return [row]
    nv: dict[str, object] = {}
    for field, token in zip(spec, tokens[1:], strict=False):
        if field == "-":
            continue
        if field == "value":
            values.append(token)
        elif field == "last_ts":
            row["last_ts"] = _date(path, token, zone, line) if DATE14.match(token) else None
        elif field.startswith("nv_"):
            nv[field[3:]] = _int(path, token, line, field)
        else:
            row[field] = _int(path, token, line, field)
    if values:
        row["value"] = " ".join(values)
    if section == "DAY":
        day = _date(path, tokens[0] + "000000", zone, line)
        row["period"] = f"{tokens[0][:4]}-{tokens[0][4:6]}-{tokens[0][6:8]}"
        row["key"] = row["period"]
        row["period_start"] = day
    rows = [row]
    if nv:
        rows.append(dict(base, section=f"{section}_NOTVIEWED", key=tokens[0], **nv))
    return rows


def _general(path: Path, tokens: list[str], line: int, zone: ZoneInfo, base: dict[str, object]) -> dict[str, object]:
    row = dict(base, section="GENERAL", key=tokens[0], value=" ".join(tokens[1:]) or None)
    if tokens[0] in GENERAL_DATES and len(tokens) > 1 and DATE14.match(tokens[1]):
        row["last_ts"] = _date(path, tokens[1], zone, line)
    elif tokens[0] == "TotalVisits" and len(tokens) > 1:
        row["visits"] = _int(path, tokens[1], line, "TotalVisits")
    elif tokens[0] == "TotalUnique" and len(tokens) > 1:
        row["visitors"] = _int(path, tokens[1], line, "TotalUnique")
    return row


def read(path: Path, tz: str = "UTC", **_: object) -> dict[str, pa.Table]:
    """Read every section of an AWStats data file into `web_traffic`."""
    path = Path(path)
    zone = check_zone(path, tz)
    try:
        # AWStats writes bytes as they came from the log; Latin-1 never fails and keeps them.
        raw = path.read_bytes()
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc.strerror}") from None
    if b"\x00" in raw:
        raise CollectorError(path, "binary data: expected an AWStats text data file")
    lines = raw.decode("utf-8-sig") if _is_utf8(raw) else raw.decode("latin-1")
    text_lines = lines.splitlines()
    if not text_lines or not text_lines[0].startswith("AWSTATS DATA FILE"):
        raise CollectorError(path, "expected `AWSTATS DATA FILE <version>` on the first line", line=1)
    period, site = _period(path, text_lines)
    base: dict[str, object] = {"period": period, "site": site, "source": name}
    rows: list[dict[str, object]] = []
    mapped: set[str] = set()
    found: set[str] = set()
    section: str | None = None
    begin_line = 0
    for number, line in enumerate(text_lines, 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if section is None:
            if tokens[0].startswith("BEGIN_"):
                section, begin_line = tokens[0][len("BEGIN_") :], number
                found.add(section)
            elif not line.startswith("AWSTATS DATA FILE"):
                raise CollectorError(path, f"expected BEGIN_<SECTION> or a comment, found {line[:60]!r}", line=number)
            continue
        if tokens[0] == f"END_{section}":
            section = None
            continue
        if tokens[0].startswith(("BEGIN_", "END_")):
            raise CollectorError(path, f"section {section} (line {begin_line}) not closed: expected END_{section}, found {tokens[0]}", line=number)
        if section == "MAP":
            if tokens[0].startswith("POS_"):
                mapped.add(tokens[0][len("POS_") :])
            continue
        if section == "GENERAL":
            rows.append(_general(path, tokens, number, zone, base))
        else:
            rows.extend(_row(path, section, tokens, number, zone, base))
    if section is not None:
        raise CollectorError(path, f"file ends inside section {section}: expected END_{section} (truncated?)", line=len(text_lines))
    # The MAP indexes every section AWStats wrote: one missing means the file was cut between sections.
    missing = sorted(mapped - found)
    if missing:
        raise CollectorError(path, f"sections listed in the MAP are missing ({', '.join(missing)}): truncated file?", line=len(text_lines))
    data = {c: [r.get(c) for r in rows] for c in COLUMNS}
    types = {"period_start": pa.timestamp("ms", tz="UTC"), "last_ts": pa.timestamp("ms", tz="UTC")}
    table = pa.table({c: pa.array(v, types.get(c)) if c in types else v for c, v in data.items()})
    return {"web_traffic": conform(table, "web_traffic")}


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
