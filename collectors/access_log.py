"""Apache/NCSA access logs (common, combined, vhost, varnishncsa, with %D/%T) into `requests`.

The user names the LogFormat (option `log_format`: a preset name from
`PRESETS` or the LogFormat string itself); without it the first lines pick a
preset. The format becomes one RE2 pattern applied by `pyarrow.compute` to
each batch of lines from pyarrow's streaming CSV reader, so no per-line Python
runs whatever the log size.

Response time: `%D` (microseconds), `%{us}T`, `%{ms}T` or `%T` (whole seconds)
fill `elapsed_ms`. A format without any of them records no duration at all:
such a log still gives what capacity work needs from the server side
(arrivals per second, status mix, bytes per label: the X of the utilisation
law), so it is read, but `elapsed_ms` is NaN, never 0, and a `warn` says so.
NaN keeps every latency statistic visibly unknown instead of a fake "0 ms".

`label` is the method and the path without its query string (`GET /index.html`),
optionally grouped by `label_patterns` [(regex, replacement), ...] applied in
order (e.g. `[(r"^(\\S+) /course/view\\.php.*", r"\\1 /course/view.php")]`).
A request line that is not `METHOD TARGET [PROTOCOL]` (`"GARBAGE"`, `"-"` of a
408) keeps its raw text in `url` and gets the label `(invalid request line)` or
`(no request)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from capacity.schema import conform, empty
from collectors.base import CollectorError, csv_batches, ends_with_newline, first_lines

name = "access_log"

_COMMON = '%h %l %u %t "%r" %>s %b'
_COMBINED = _COMMON + ' "%{Referer}i" "%{User-Agent}i"'
PRESETS: dict[str, str] = {
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "combinedio": _COMBINED + " %I %O",
    "combined_D": _COMBINED + " %D",
    "combined_T": _COMBINED + " %T",
    "combined": _COMBINED,
    "varnishncsa": '%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i"',
    "varnishncsa_D": '%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i" %D',
    # `varnishncsa -b`: one line per backend fetch, ending with the backend that served it.
    "varnishncsa_backend": '%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i" %D %{VSL:BackendOpen[2]}x',
    "common_D": _COMMON + " %D",
    "common": _COMMON,
}
# Tried in this order when no format is given: the longest that fits wins.
AUTO_ORDER = ("vhost_combined", "combinedio", "combined_D", "combined", "common_D", "common")

DIRECTIVE = re.compile(r"%([<>!,0-9]*)(?:\{([^}]*)\})?([a-zA-Z%])")
QUOTED = r'(?:[^"\\]|\\.)*'
NUMBER = r"-|\d+"
# directive letter -> (group name, unquoted pattern)
SIMPLE: dict[str, tuple[str, str]] = {
    "h": ("client", r"\S+"), "a": ("client_ip", r"\S+"), "A": ("local_ip", r"\S+"), "l": ("ident", r"\S+"),
    "u": ("user", r"\S+"), "v": ("vhost", r"[^\s:]+"), "V": ("server_name", r"\S+"), "p": ("port", r"\d+"),
    "P": ("pid", r"\d+"), "m": ("method", r"\S+"), "U": ("path", r"\S+"), "q": ("query", r"\S*"),
    "H": ("protocol", r"\S+"), "f": ("filename", r"\S+"), "k": ("keepalives", r"\d+"), "L": ("log_id", r"\S+"),
    "s": ("status", r"\d{3}|-"), "b": ("bytes_out", NUMBER), "B": ("bytes_out", NUMBER), "O": ("bytes_out", NUMBER),
    "I": ("bytes_in", NUMBER), "S": ("bytes_total", NUMBER), "D": ("dur_us", r"\d+"), "X": ("conn_status", r"[X+-]"),
    "r": ("request", QUOTED),
}
# Header (`%{...}i`) and varnishncsa extension (`%{...}x`) arguments with a column of their own.
HEADER_NAMES = {"referer": "referer", "user-agent": "user_agent", "vsl:backendopen[2]": "backend", "varnish:handling": "handling"}
# Groups kept as `var_<group>` columns of `requests` ("-" meaning none becomes null for the last two).
KEPT_GROUPS = ("referer", "user_agent", "vhost", "user", "method", "backend", "handling")
REQUEST = r"^(?P<method>[A-Za-z][A-Za-z-]*) (?P<target>\S+)(?: (?P<proto>[A-Z]+/[0-9.]+))?$"
TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
BLOCK_SIZE = 8 << 20
SEPARATOR = "\x1e"  # never in an access log line, so each line is one CSV "field"

Warn = Callable[[str], None] | None


def compile_format(log_format: str) -> tuple[str, list[str]]:
    """The anchored RE2 pattern for an Apache LogFormat string, and its group names in order.

    Raises ValueError for directives whose text cannot be matched reliably (custom `%{...}t`).
    """
    parts, names = ["^"], []
    pos = 0
    for m in DIRECTIVE.finditer(log_format):
        parts.append(re.escape(log_format[pos : m.start()]))
        pos = m.end()
        _, arg, letter = m.groups()
        quoted = m.start() > 0 and log_format[m.start() - 1] == '"' and log_format[pos : pos + 1] == '"'
        if letter == "%":
            parts.append("%")
            continue
        if letter == "t":
            if arg:
                raise ValueError(f"custom time format %{{{arg}}}t is not supported; use the default %t")
            group, pattern = "time", r"\[[^\]]+\]"
        elif letter == "T":
            group = {"": "dur_s", "s": "dur_s", "ms": "dur_ms", "us": "dur_us"}.get(arg or "")
            if group is None:
                raise ValueError(f"unknown %T unit {arg!r}")
            pattern = r"\d+"
        elif letter in ("i", "o", "e", "n", "C", "x") and arg is not None:
            key = arg.lower()
            group = HEADER_NAMES.get(key, f"{letter}_{re.sub(r'[^a-z0-9]+', '_', key)}")
            pattern = QUOTED if quoted else r"\S+"
        elif letter in SIMPLE:
            group, pattern = SIMPLE[letter]
            if quoted and letter not in ("s", "b", "B", "O", "I", "S", "D", "p", "P", "k"):
                pattern = QUOTED
        else:
            raise ValueError(f"unsupported LogFormat directive %{letter}")
        base, n = group, 2
        while group in names:
            group, n = f"{base}_{n}", n + 1
        names.append(group)
        parts.append(f"(?P<{group}>{pattern})")
    parts.append(re.escape(log_format[pos:]) + "$")
    return "".join(parts), names


def _resolve(path: Path, log_format: str | None, warn: Warn) -> str:
    if log_format:
        return PRESETS.get(log_format, log_format)
    sample = first_lines(path, 5)
    for preset in AUTO_ORDER:
        pattern = re.compile(compile_format(PRESETS[preset])[0])
        if sample and all(pattern.match(line) for line in sample):
            if preset.endswith("_D") and warn:
                warn(f"{path}: the number ending each line is taken as %D (microseconds); give log_format if it is %T (seconds)")
            return PRESETS[preset]
    raise CollectorError(path, f"lines match none of the presets ({', '.join(AUTO_ORDER)}); give the LogFormat string as `log_format`", line=1)


def detect(path: Path) -> bool:
    """The first lines all match one of the common access-log presets."""
    sample = first_lines(path, 5)
    if not sample:
        return False
    return any(all(re.match(compile_format(PRESETS[p])[0], line) for line in sample) for p in AUTO_ORDER)


def _elapsed(fields: pa.StructArray, names: list[str]) -> pa.Array | None:
    for group, scale in (("dur_us", 1e-3), ("dur_ms", 1.0), ("dur_s", 1e3)):
        if group in names:
            return pc.multiply(pc.cast(fields.field(group), pa.float64()), scale)
    return None


def _int_or_null(column: pa.Array) -> pa.Array:
    return pc.cast(pc.if_else(pc.equal(column, "-"), None, column), pa.int64())


def _to_requests(path: Path, lines: pa.Array, numbers: pa.Array, pattern: str, names: list[str],
                 label_patterns: list[tuple[str, str]]) -> pa.Table:
    fields = pc.extract_regex(lines, pattern)
    n = len(lines)
    cols: dict[str, pa.Array] = {}
    try:
        cols["ts"] = pc.strptime(pc.utf8_trim(fields.field("time"), "[]"), format=TIME_FORMAT, unit="ms", error_is_null=False)
    except (pa.ArrowInvalid, KeyError) as exc:
        bad = _first_bad_time(fields) if "time" in names else 0
        raise CollectorError(path, f"expected a %t time like [21/Nov/2026:23:23:47 +0000]: {exc}", line=numbers[bad].as_py()) from None
    elapsed = _elapsed(fields, names)
    cols["elapsed_ms"] = elapsed if elapsed is not None else pa.array([float("nan")] * n, pa.float64())
    if "request" in names:
        raw = fields.field("request")
        req = pc.extract_regex(raw, REQUEST)
        method, target = req.field("method"), req.field("target")
        valid = pc.is_valid(req)
        cols["url"] = pc.if_else(valid, target, raw)
    elif "method" in names and "path" in names:
        method, target = fields.field("method"), fields.field("path")
        valid = pa.array([True] * n)
        cols["url"] = pc.binary_join_element_wise(target, fields.field("query"), "") if "query" in names else target
        raw = target
    else:
        raise CollectorError(path, "the LogFormat has neither %r nor %m and %U: no request to label")
    # varnishncsa writes the absolute form (`GET http://host:port/path`): label by the path alone.
    path_only = pc.replace_substring_regex(pc.fill_null(target, ""), r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?]*", "")
    path_only = pc.replace_substring_regex(path_only, r"\?.*$", "")
    label = pc.binary_join_element_wise(pc.fill_null(method, ""), path_only, " ")
    for regex, replacement in label_patterns:
        label = pc.replace_substring_regex(label, regex, replacement)
    no_request = pc.or_(pc.equal(raw, "-"), pc.equal(raw, ""))
    cols["label"] = pc.if_else(valid, label, pc.if_else(no_request, "(no request)", "(invalid request line)"))
    if "status" in names:
        status = fields.field("status")
        code = _int_or_null(status)
        cols["status"] = status
        cols["success"] = pc.fill_null(pc.and_(pc.greater_equal(code, 100), pc.less(code, 400)), False)
    else:
        cols["success"] = pa.array([True] * n)
    cols["row_kind"] = pa.array(["sample"] * n, pa.string())
    if "bytes_out" in names:
        # `%b` writes "-" for an empty body: zero bytes, not unknown.
        cols["bytes"] = pc.fill_null(_int_or_null(fields.field("bytes_out")), 0)
    if "bytes_in" in names:
        cols["sent_bytes"] = _int_or_null(fields.field("bytes_in"))
    client = "client" if "client" in names else "client_ip" if "client_ip" in names else None
    cols["generator"] = fields.field(client) if client else pa.array([path.stem] * n, pa.string())
    for group in KEPT_GROUPS:
        if group in names:
            column = fields.field(group)
            cols[f"var_{group}"] = pc.if_else(pc.equal(column, "-"), None, column) if group in ("backend", "handling") else column
    cols["source"] = pa.array([name] * n, pa.string())
    return pa.table(cols)


def _first_bad_time(fields: pa.StructArray) -> int:
    parsed = pc.strptime(pc.utf8_trim(fields.field("time"), "[]"), format=TIME_FORMAT, unit="ms", error_is_null=True)
    bad = pc.indices_nonzero(pc.is_null(parsed))
    return bad[0].as_py() if len(bad) else 0


def read_batches(path: Path, log_format: str | None = None, label_patterns: list[tuple[str, str]] | None = None,
                 bad_lines: str = "error", warn: Warn = None, **_: object) -> Iterator[tuple[str, pa.Table]]:
    """Stream an access log as batches of the canonical `requests` table.

    `bad_lines="error"` (default) stops at the first line the format does not
    match, naming it; `"skip"` drops such lines and warns with their count. A
    truncated last line (no final newline) is always dropped with a warning.
    """
    path = Path(path)
    fmt = _resolve(path, log_format, warn)
    try:
        pattern, names = compile_format(fmt)
    except ValueError as exc:
        raise CollectorError(path, f"log_format {fmt!r}: {exc}") from None
    if "time" not in names:
        raise CollectorError(path, f"log_format {fmt!r} has no %t: rows need a timestamp")
    elapsed_known = any(g in names for g in ("dur_us", "dur_ms", "dur_s"))
    if not elapsed_known and warn:
        warn(f"{path}: LogFormat has no %D or %T, so elapsed_ms is NaN (unknown); add %D to the LogFormat to measure latency")
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["line"], block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(delimiter=SEPARATOR, quote_char=False, escape_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise CollectorError(path, f"cannot read as UTF-8 text lines (wrong encoding or binary data?): {exc}") from None
    line_no, skipped = 1, 0
    complete = ends_with_newline(path)
    # A bad line ending a batch may be the truncated last line: known only once no batch follows.
    pending: tuple[int, str] | None = None

    def not_text(exc: Exception) -> CollectorError:
        # Called when the error happens: `line_no` is then the first line of the failing batch.
        return CollectorError(path, f"not a text access log (wrong encoding or binary data): {exc}", line=line_no)

    for batch in csv_batches(reader, not_text):
        if pending is not None:
            raise CollectorError(path, f"line does not match LogFormat {fmt!r}: {pending[1][:100]!r}", line=pending[0])
        lines = batch.column(0)
        first = line_no
        line_no += len(lines)
        keep = pc.not_equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0)
        matched = pc.match_substring_regex(lines, pattern)
        bad = pc.indices_nonzero(pc.and_(keep, pc.invert(matched)))
        if len(bad):
            for index in bad.to_pylist():
                text = lines[index].as_py()
                if index == len(lines) - 1 and not complete:
                    pending = (first + index, text)
                elif bad_lines == "skip":
                    skipped += 1
                else:
                    raise CollectorError(path, f"line does not match LogFormat {fmt!r}: {text[:100]!r}", line=first + index)
            keep = pc.and_(keep, matched)
        selected = lines.filter(keep)
        if len(selected):
            numbers = pa.array(range(first, first + len(lines)), pa.int64()).filter(keep)
            try:
                table = _to_requests(path, selected, numbers, pattern, names, label_patterns or [])
            except (pa.ArrowInvalid, OverflowError) as exc:
                raise CollectorError(path, f"a numeric field does not fit its type: {exc}", line=first) from None
            yield "requests", table
    if pending is not None and warn:
        warn(f"{path}:{pending[0]}: truncated last line skipped ({pending[1][:60]!r})")
    if skipped and warn:
        warn(f"{path}: {skipped} line(s) did not match LogFormat {fmt!r} and were skipped")


def read(path: Path, **options: object) -> dict[str, pa.Table]:
    """Read a whole access log into the canonical `requests` table."""
    parts = [conform(t, "requests") for _, t in read_batches(path, **options)]  # type: ignore[arg-type]
    if not parts:
        return {"requests": empty("requests")}
    return {"requests": pa.concat_tables(parts)}
