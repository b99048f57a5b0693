"""Write a realistic, seeded CSV export of the Ed-Fi load tester's `Events` and `RunInfoes` tables.

No real export is public, so the test samples are made by this script. It
mimics what `bcp`/SSMS "Save results as CSV" gives for the two tables: a header
row, SQL Server `datetime2(7)` text without a zone (the tester's local time),
EventType 0-3 (Create, Read, Update, Delete), EventDisposition 1 (success) or
2 (error), the HTTP status and the API's error body (quoted, with commas and
doubled quotes). Several threads run the CRUD mix given in RunInfoes.

    python make_edfi_export.py OUTDIR [--seed 7] [--events 600] [--threads 4] [--no-thread-column]
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

MODELS = ("Student", "StudentSchoolAssociation", "Section", "StudentSectionAssociation", "Staff", "Grade", "StudentSchoolAttendanceEvent")
RATIOS = {"Create": 20, "Read": 60, "Update": 15, "Delete": 5}
EVENT_TYPES = {"Create": 0, "Read": 1, "Update": 2, "Delete": 3}
OK_STATUS = {"Create": 201, "Read": 200, "Update": 200, "Delete": 204}
ERRORS = (
    (409, '{"message": "The value supplied for the related \'student\' resource does not exist.", "type": "Conflict"}'),
    (400, '{"message": "The request is invalid.", "modelState": {"request.birthDate": ["Date must be in the past"]}}'),
    (500, '{"message": "An unexpected problem has occurred.", "correlationId": "0e6c1f"}'),
)


def _stamp(moment: datetime) -> str:
    # datetime2(7): 100 ns ticks, written with 7 decimals.
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond:06d}0"


def make(outdir: Path, seed: int = 7, events: int = 600, threads: int = 4, thread_column: bool = True) -> tuple[Path, Path]:
    """Write `Events.csv` and `RunInfoes.csv` into `outdir`; return their paths."""
    rng = random.Random(seed)
    outdir.mkdir(parents=True, exist_ok=True)
    run_id = 3
    start = datetime(2026, 3, 14, 9, 15, 0, 250000)
    clocks = [start + timedelta(milliseconds=rng.randint(0, 400)) for _ in range(threads)]
    rows = []
    for event_id in range(1, events + 1):
        thread = rng.randrange(threads)
        operation = rng.choices(list(RATIOS), weights=list(RATIOS.values()))[0]
        model = rng.choice(MODELS)
        base = {"Create": 85.0, "Read": 22.0, "Update": 70.0, "Delete": 40.0}[operation]
        elapsed = timedelta(microseconds=int(rng.lognormvariate(0, 0.5) * base * 1000))
        begin = clocks[thread]
        end = begin + elapsed
        clocks[thread] = end + timedelta(microseconds=rng.randint(200, 5000))
        failed = rng.random() < (0.08 if operation != "Read" else 0.02)
        status, error = rng.choice(ERRORS) if failed else (OK_STATUS[operation], "")
        row = [run_id, event_id, _stamp(begin), _stamp(end), EVENT_TYPES[operation], model, 2 if failed else 1, status, error]
        if thread_column:
            row.append(thread + 1)
        rows.append(row)
    rows.sort(key=lambda r: r[1])
    events_path = outdir / "Events.csv"
    with open(events_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        header = ["RunId", "Id", "StartDateTime", "EndDateTime", "EventType", "SdkModelType", "EventDisposition", "HttpStatusCode", "Error"]
        writer.writerow(header + (["ThreadId"] if thread_column else []))
        writer.writerows(rows)
    end_of_run = max(clocks)
    info_path = outdir / "RunInfoes.csv"
    with open(info_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["Id", "StartDateTime", "EndDateTime", "MachineName", "ApiUrl", "ThreadCount", "CreateRatio", "ReadRatio", "UpdateRatio", "DeleteRatio"])
        writer.writerow([2, _stamp(start - timedelta(hours=2)), _stamp(start - timedelta(hours=1, minutes=50)), "LOADGEN01", "https://api.example.edu/data/v3", 2, 25, 50, 20, 5])
        writer.writerow([run_id, _stamp(start), _stamp(end_of_run), "LOADGEN01", "https://api.example.edu/data/v3", threads,
                         RATIOS["Create"], RATIOS["Read"], RATIOS["Update"], RATIOS["Delete"]])
    return events_path, info_path


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-thread-column", action="store_true")
    args = parser.parse_args()
    make(args.outdir, args.seed, args.events, args.threads, not args.no_thread_column)


if __name__ == "__main__":
    main()
