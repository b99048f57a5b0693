"""Generate large, realistic inputs from a real sample by repeating it with shifted time.

`python -m benchmarks.generate jtl-csv --rows 10000000 --out big.jtl` writes a JMeter 5.x-style CSV JTL
whose rows are the rows of a real JMeter file, repeated block after block, each block shifted by the
span of the original so time keeps moving forward and the per-label mix stays the real one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
SEED_JTL = ROOT / "data" / "samples" / "jmeter-steps" / "results.jtl"


def jtl_csv(out: Path, rows: int, seed: Path = SEED_JTL, random_seed: float = 0.42) -> Path:
    """Write a CSV JTL of `rows` rows built from the real file `seed` (same header, shifted timestamps).

    Elapsed times are jittered by up to +-10 % per repetition (seeded) so percentiles are not the
    seed's repeated exactly; labels, threads, codes and messages stay real. Quoting is JMeter's:
    only fields holding the delimiter or a quote are quoted.
    """
    con = duckdb.connect()
    con.execute("SELECT setseed(?)", [random_seed])
    con.execute("CREATE TABLE base AS SELECT row_number() OVER () - 1 AS i, * FROM read_csv(?, all_varchar = true, header = true)", [str(seed)])
    count, span = con.execute(
        "SELECT count(*), max(timeStamp::BIGINT) - min(timeStamp::BIGINT) + 1000 FROM base").fetchone()
    blocks = -(-rows // count)
    columns = [c[0] for c in con.execute("DESCRIBE base").fetchall() if c[0] != "i"]
    select = ", ".join(
        f"(timeStamp::BIGINT + b.k * {span})::VARCHAR AS timeStamp" if c == "timeStamp"
        else "round(elapsed::BIGINT * (0.9 + 0.2 * random()))::BIGINT::VARCHAR AS elapsed" if c == "elapsed"
        else f'"{c}"'
        for c in columns
    )
    query = f"SELECT {select} FROM range({blocks}) b(k), base ORDER BY b.k, base.i LIMIT {rows}"
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"')")
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["jtl-csv"])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    jtl_csv(args.out, args.rows)
    print(args.out)


if __name__ == "__main__":
    main()
