"""Generate large, realistic inputs from real samples by repeating them with shifted time.

    python -m benchmarks.generate jtl-csv --rows 10000000 --out big.jtl [--layout 5.x]
    python -m benchmarks.generate jtl-xml --rows 1000000 --out big.xml
    python -m benchmarks.generate tsung-log --days 30 --out tsung.log
    python -m benchmarks.generate sadf-d --days 1 --out day.csv

Each output is made of the records of a real file written by the real tool (the JMeter step-load
run, the JMeter 5.x XML with sub-results, a Tsung 1.7 `tsung.log`, a sysstat 12.6 `sadf -d -- -A`),
repeated block after block with time moving forward, so the per-label mix, the quoting and the
line shapes stay the real ones. Output depends only on the arguments (seeded).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
SEED_JTL = ROOT / "data" / "samples" / "jmeter-steps" / "results.jtl"
TESTS_DATA = ROOT / "tests" / "data"
SEED_XML = TESTS_DATA / "jmeter_xml" / "xml-subresults-assertions.jtl"
SEED_TSUNG = TESTS_DATA / "tsung_log" / "duplicate-match-key-late-404-osmon.log"
SEED_SADF = TESTS_DATA / "sadf_csv" / "sadf-d-A-C-locale.csv"


# JMeter 5.x default CSV columns (FORMATS.md 3.1); the seed (2.13-era layout) lacks failureMessage, sentBytes and URL.
JMETER5_COLUMNS = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,"
    "bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect"
).split(",")
# How the missing 5.x columns are made from a seed row (DuckDB SQL over the seed's columns).
JMETER5_DERIVED = {
    # A Response Assertion failure on a JSON body, as JMeter words it (the quotes make JMeter quote the field).
    "failureMessage": "CASE WHEN success = 'false' AND responseCode = '200' AND label NOT LIKE 'TX %' THEN "
                      "'Test failed: text expected to contain /\"status\":\"ok\"/' END",
    # Request size: stable per label (headers, cookies, form body), as a real plan's would be.
    "sentBytes": "(CASE WHEN label LIKE 'TX %' THEN 0 ELSE 180 + hash(label) % 420 END)::VARCHAR",
    # Transaction Controller parents have the URL `null` (FORMATS.md, observed in 2.13 and 5.x).
    "URL": "CASE WHEN label LIKE 'TX %' THEN 'null' ELSE 'https://mooc.example.org/' || "
           "lower(regexp_replace(label, '[^A-Za-z0-9]+', '-', 'g')) END",
}


def jtl_csv(out: Path, rows: int, seed: Path = SEED_JTL, random_seed: float = 0.42, layout: str = "seed") -> Path:
    """Write a CSV JTL of `rows` rows built from the real file `seed` (shifted timestamps).

    Elapsed times are jittered by up to +-10 % per repetition (seeded) so percentiles are not the
    seed's repeated exactly; labels, threads, codes and messages stay real. Quoting is JMeter's:
    only fields holding the delimiter, a quote or a line end are quoted. `layout` "seed" keeps the
    seed's columns; "5.x" writes JMeter 5.x's default columns, deriving the ones the seed lacks
    (`JMETER5_DERIVED`).
    """
    if layout not in ("seed", "5.x"):
        raise ValueError(f"unknown layout {layout!r}: expected 'seed' or '5.x'")
    con = duckdb.connect()
    con.execute("SET memory_limit = '1GB'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SELECT setseed(?)", [random_seed])
    con.execute("CREATE TABLE base AS SELECT row_number() OVER () - 1 AS i, * FROM read_csv(?, all_varchar = true, header = true)", [str(seed)])
    count, span = con.execute(
        "SELECT count(*), max(timeStamp::BIGINT) - min(timeStamp::BIGINT) + 1000 FROM base").fetchone()
    blocks = -(-rows // count)
    present = [c[0] for c in con.execute("DESCRIBE base").fetchall() if c[0] != "i"]
    columns = present if layout == "seed" else JMETER5_COLUMNS

    jitter = ", ".join(
        f"(timeStamp::BIGINT + b.k * {span})::VARCHAR AS timeStamp" if c == "timeStamp"
        else "round(elapsed::BIGINT * (0.9 + 0.2 * random()))::BIGINT::VARCHAR AS elapsed" if c == "elapsed"
        else f'"{c}"'
        for c in present
    )
    select = ", ".join(f'"{c}"' if c in present else f'{JMETER5_DERIVED[c]} AS "{c}"' for c in columns)
    query = f"SELECT {select} FROM (SELECT b.k, base.i, {jitter} FROM range({blocks}) b(k), base) ORDER BY k, i LIMIT {rows}"
    target = str(out).replace("'", "''")
    con.execute(f"COPY ({query}) TO '{target}' (FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"')")
    con.close()
    return out


def jtl_xml(out: Path, rows: int, seed: Path = SEED_XML) -> Path:
    """Write an XML JTL of at least `rows` samples (nested sub-results count) from the real XML `seed`.

    The seed's top-level samples (with their sub-results, assertion results and URLs) are repeated
    in order; every `ts` attribute of a repetition is shifted by the seed's span.
    """
    text = seed.read_text(encoding="utf-8")
    blocks = re.findall(r"^<(?:httpSample|sample) .*?(?:/>|^</(?:httpSample|sample)>)$\n", text, flags=re.M | re.S)
    if not blocks:
        raise ValueError(f"{seed}: no top-level samples")
    per_block = [len(re.findall(r"<(?:httpSample|sample) ", b)) for b in blocks]
    stamps = [int(v) for v in re.findall(r' ts="(\d+)"', text)]
    span = max(stamps) - min(stamps) + 1000
    written, k = 0, 0
    with open(out, "w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n')
        while written < rows:
            shift = k * span
            for block, count in zip(blocks, per_block, strict=True):
                fh.write(re.sub(r' ts="(\d+)"', lambda m, d=shift: f' ts="{int(m.group(1)) + d}"', block) if shift else block)
                written += count
                if written >= rows:
                    break
            k += 1
        fh.write("</testResults>\n")
    return out


def tsung_log(out: Path, days: float, interval_s: int = 10, seed: Path = SEED_TSUNG) -> Path:
    """Write a `tsung.log` covering `days` at one dump per `interval_s`, cycling the real dumps of `seed`.

    Interval figures are the seed's; what Tsung keeps since the start is recomputed so the file stays
    consistent: totals of counters, the users maximum, and each sample's max, min and cumulative
    mean and count up to the previous dump (FORMATS.md 4.1).
    """
    dumps: list[list[tuple[str, list[str]]]] = []
    start = None
    for line in seed.read_text(encoding="utf-8").splitlines():
        if line.startswith("# stats: dump at "):
            start = start or int(line.split()[-1])
            dumps.append([])
        elif line.startswith("stats: ") and dumps:
            name, *values = line[len("stats: "):].split(" ")
            dumps[-1].append((name, values))
    if not dumps or start is None:
        raise ValueError(f"{seed}: no `# stats: dump at` blocks")
    totals: dict[str, float] = defaultdict(float)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    highs: dict[str, float] = {}
    lows: dict[str, float] = {}
    users_max = 0
    n = int(days * 86400 / interval_s)
    with open(out, "w", encoding="utf-8") as fh:
        for i in range(n):
            lines = [f"# stats: dump at {start + i * interval_s}"]
            for name, values in dumps[i % len(dumps)]:
                if name == "users":
                    users_max = max(users_max, int(values[0]), int(values[-1]))
                    lines.append(f"stats: users {values[0]} {users_max}")
                elif len(values) == 7:
                    count, mean, std, high, low = int(values[0]), float(values[1]), values[2], float(values[3]), float(values[4])
                    highs[name] = max(highs.get(name, high), high)
                    lows[name] = min(lows.get(name, low), low)
                    before = sums[name] / counts[name] if counts[name] else 0
                    lines.append(f"stats: {name} {count} {values[1]} {std} {highs[name]!r} {lows[name]!r} {before!r} {counts[name]}")
                    sums[name] += count * mean
                    counts[name] += count
                elif len(values) == 2 and name != "connected":
                    totals[name] += float(values[0])
                    lines.append(f"stats: {name} {values[0]} {int(totals[name])}")
                else:
                    lines.append(f"stats: {name} {' '.join(values)}")
            fh.write("\n".join(lines) + "\n")
        end = start + n * interval_s
        fh.write(f"EndMonitor:{{{end // 1_000_000},{end % 1_000_000},0}}\n")
    return out


def sadf_d(out: Path, days: float, seed: Path = SEED_SADF) -> Path:
    """Write `sadf -d -- -A` output for `days` at a 1-second interval, from the real records of `seed`.

    `sadf -d` prints one activity at a time (its header, then its records for every interval); each
    activity's records cycle through the seed's intervals, with the timestamp of the new second.
    """
    activities: list[tuple[str, list[list[str]]]] = []
    for line in seed.read_text(encoding="utf-8").splitlines():
        if line.startswith("# hostname;"):
            activities.append((line, []))
            continue
        fields = line.split(";")
        if not activities or len(fields) < 4 or fields[1] == "-1":
            continue
        intervals = activities[-1][1]
        if not intervals or intervals[-1][0].split(";")[2] != fields[2]:
            intervals.append([])
        intervals[-1].append(line)
    first = min(datetime.strptime(iv[0].split(";")[2], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
                for _, ivs in activities for iv in ivs if iv)
    seconds = int(days * 86400)
    stamps = [datetime.fromtimestamp(first.timestamp() + s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") for s in range(seconds)]
    with open(out, "w", encoding="utf-8") as fh:
        for header, intervals in activities:
            if not intervals:
                continue
            fh.write(header + "\n")
            templates = [[row.split(";", 3) for row in rows] for rows in intervals]
            for s, stamp in enumerate(stamps):
                fh.write("".join(f"{host};1;{stamp};{rest}\n" for host, _, _, rest in templates[s % len(templates)]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["jtl-csv", "jtl-xml", "tsung-log", "sadf-d"])
    parser.add_argument("--rows", type=int, help="rows (JTL kinds)")
    parser.add_argument("--days", type=float, help="days covered (tsung-log, sadf-d)")
    parser.add_argument("--layout", choices=["seed", "5.x"], default="seed", help="jtl-csv columns")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.kind in ("jtl-csv", "jtl-xml") and not args.rows:
        parser.error(f"{args.kind} needs --rows")
    if args.kind in ("tsung-log", "sadf-d") and not args.days:
        parser.error(f"{args.kind} needs --days")
    if args.kind == "jtl-csv":
        jtl_csv(args.out, args.rows, layout=args.layout)
    elif args.kind == "jtl-xml":
        jtl_xml(args.out, args.rows)
    elif args.kind == "tsung-log":
        tsung_log(args.out, args.days)
    else:
        sadf_d(args.out, args.days)
    print(args.out)


if __name__ == "__main__":
    main()
