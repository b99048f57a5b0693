"""How a JMeter CSV JTL is laid out: delimiter, column names, header lines and timestamp format.

Read from the first lines of the file (the header when there is one, else the first row), or from
what the user gives: the column list, the JMeter version whose default columns a headerless file
has, the SimpleDateFormat of a formatted `timeStamp`. Column order follows
`CSVSaveService.printableFieldNamesToString` (see FORMATS.md 3.1).
"""

from __future__ import annotations

import re
from pathlib import Path

from collectors.base import CollectorError, first_lines

# Headerless files can only be read with the column list their JMeter wrote.
COLUMNS_BY_VERSION: dict[str, list[str]] = {
    "2.13": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,bytes,grpThreads,allThreads,Latency".split(","),
    "3.0": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,grpThreads,allThreads,Latency,IdleTime".split(","),
    "3.1": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,Latency,IdleTime,Connect".split(","),
    "5.0": "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect".split(","),
}

DELIMITERS = (",", ";", "\t", "|")

# SimpleDateFormat patterns JMeter falls back to when loading, plus ISO: (regex of a value, strptime format).
DATE_FORMATS = {
    "yyyy/MM/dd HH:mm:ss.SSS": (r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3}", "%Y/%m/%d %H:%M:%S"),
    "yyyy/MM/dd HH:mm:ss": (r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d", "%Y/%m/%d %H:%M:%S"),
    "yyyy-MM-dd HH:mm:ss.SSS": (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", "%Y-%m-%d %H:%M:%S"),
    "yyyy-MM-dd HH:mm:ss": (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "%Y-%m-%d %H:%M:%S"),
    "yyyy-MM-dd'T'HH:mm:ss.SSS": (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", "%Y-%m-%dT%H:%M:%S"),
    "yyyy-MM-dd'T'HH:mm:ss": (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "%Y-%m-%dT%H:%M:%S"),
    "MM/dd/yy HH:mm:ss": (r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d", "%m/%d/%y %H:%M:%S"),
    "dd/MM/yyyy HH:mm:ss": (r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", "%d/%m/%Y %H:%M:%S"),
}
SDF_TOKENS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def sdf_to_strptime(pattern: str) -> tuple[str, bool]:
    """A SimpleDateFormat pattern as (strptime format without millis, has trailing `.SSS`)."""
    has_ms = pattern.endswith(".SSS")
    body = pattern[:-4] if has_ms else pattern
    out, i = [], 0
    while i < len(body):
        if body[i] == "'":
            end = body.index("'", i + 1)
            out.append(body[i + 1 : end])
            i = end + 1
            continue
        for token, code in SDF_TOKENS.items():
            if body.startswith(token, i):
                out.append(code)
                i += len(token)
                break
        else:
            if body[i].isalpha():
                raise ValueError(f"unsupported SimpleDateFormat letter {body[i]!r} in {pattern!r}")
            out.append(body[i])
            i += 1
    return "".join(out), has_ms


def split_header(line: str) -> tuple[str, list[str]] | None:
    for delim in DELIMITERS:
        fields = [f.strip('"') for f in line.split(delim)]
        if len(fields) >= 3 and fields[0] == "timeStamp" and fields[1] == "elapsed":
            return delim, fields
    return None


def timestamp_format_of(value: str) -> str | None:
    """'ms' for epoch milliseconds, a DATE_FORMATS key, or None."""
    if re.fullmatch(r"\d{10,14}", value):
        return "ms"
    for key, (pattern, _) in DATE_FORMATS.items():
        if re.fullmatch(pattern, value):
            return key
    return None


def split_data(line: str, any_timestamp: bool = False) -> tuple[str, list[str]] | None:
    """(delimiter, fields) of a headerless data row; `any_timestamp` when the user named the format."""
    for delim in DELIMITERS:
        fields = line.split(delim)
        if len(fields) >= 8 and (any_timestamp or timestamp_format_of(fields[0])) and fields[1].isdigit():
            return delim, fields
    return None


def version_columns(path: Path, version: str) -> list[str]:
    """The default column list of a JMeter version (`2.13`, `3.2`, `5.6.3`, ...)."""
    found = re.match(r"(\d+)\.(\d+)", str(version))
    if not found:
        raise CollectorError(path, f"unknown JMeter version {version!r}; expected e.g. 2.13, 3.0, 4.0, 5.6")
    major, minor = int(found.group(1)), int(found.group(2))
    if major < 3:
        return COLUMNS_BY_VERSION["2.13"]
    if major == 3 and minor == 0:
        return COLUMNS_BY_VERSION["3.0"]
    if major < 5:
        return COLUMNS_BY_VERSION["3.1"]
    return COLUMNS_BY_VERSION["5.0"]


def columns_for(path: Path, field_count: int, columns: list[str] | str | None, version: str | None) -> list[str]:
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    if columns:
        chosen = list(columns)
    elif version:
        chosen = version_columns(path, version)
    else:
        # Only the two defaults that matter are guessed: 2.13 (headerless by default) by its
        # field count, else 5.x; other layouts (e.g. 3.0 vs 2.13 with IdleTime,Connect: both 14) are ambiguous.
        chosen = COLUMNS_BY_VERSION["2.13"] if field_count == len(COLUMNS_BY_VERSION["2.13"]) else COLUMNS_BY_VERSION["5.0"]
    if len(chosen) != field_count:
        raise CollectorError(
            path,
            f"headerless file has {field_count} fields per row but the column list has {len(chosen)}; "
            "give the JMeter version (jmeter_version) or the column list (columns / --columns)",
            line=1,
        )
    return chosen


def read_options(path: Path, columns: list[str] | str | None, jmeter_version: str | None, timestamp_format: str | None) -> tuple[str, list[str], int, str]:
    """(delimiter, JMeter column names, header lines to skip, timestamp format) from the first lines."""
    lines = first_lines(path, 2)
    if not lines:
        raise CollectorError(path, "empty file: expected a JMeter CSV JTL")
    header = split_header(lines[0])
    if header:
        delimiter, names = header
        skip = 1
        sample = lines[1] if len(lines) > 1 else None
    else:
        data = split_data(lines[0], any_timestamp=bool(timestamp_format))
        if data is None:
            raise CollectorError(path, "not a JMeter CSV JTL: expected a `timeStamp,elapsed,...` header or rows starting with a timestamp and an elapsed time", line=1)
        delimiter, fields = data
        names = columns_for(path, len(fields), columns, jmeter_version)
        skip = 0
        sample = lines[0]
    if not {"timeStamp", "elapsed", "label", "success"} <= set(names):
        raise CollectorError(path, "the JTL lacks one of the columns timeStamp, elapsed, label, success", line=1)
    if timestamp_format:
        try:
            sdf_to_strptime(timestamp_format)
        except ValueError as exc:
            raise CollectorError(path, str(exc)) from exc
        return delimiter, names, skip, timestamp_format
    ts_format = "ms"
    if sample is not None:
        ts_value = sample.split(delimiter)[names.index("timeStamp")].strip('"')
        found = timestamp_format_of(ts_value)
        if found is None:
            raise CollectorError(path, f"unrecognised timeStamp {ts_value!r}: expected epoch milliseconds or a JMeter date format (give timestamp_format)", line=skip + 1)
        ts_format = found
    return delimiter, names, skip, ts_format
