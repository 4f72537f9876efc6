"""The problem set's late policy, and where ``grade`` learns when a submission was handed in.

"If your pset is submitted within 7 days (rounding up) of the original deadline, you will receive
partial credit ... penalized by a multiplicative coefficient that linearly decreases from 1 to 0.5."
Read here as: d = ceil(days late); factor 1 on time, 1 - 0.5 * d / 7 for d in 1..7 (a minute late is
day 1, 0.929; day 7 is 0.5), 0 after 7 days. Times must carry a UTC offset: a deadline typed without
one would silently shift by the grader's time zone.
"""
from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from miniplaces.inputs import bounded

DAYS = 7
COLUMNS = ("submitted", "submitted_from", "days_late", "factor", "raw", "final")
SUBMITTED_CSV_BYTES = 4 << 20


def late_factor(due: datetime, submitted: datetime) -> float:
    """The multiplicative coefficient of a submission handed in at ``submitted`` for ``due``."""
    days = days_late(due, submitted)
    return 1.0 if days == 0 else 1 - 0.5 * days / DAYS if days <= DAYS else 0.0


def days_late(due: datetime, submitted: datetime) -> int:
    """Whole days late, rounding up (0 when on time)."""
    late = (submitted - due) / timedelta(days=1)
    return max(0, math.ceil(late))


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset (``2022-03-29T23:59-04:00`` or ``...Z``); ValueError otherwise."""
    text = text.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time, e.g. 2022-03-29T23:59-04:00") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add one, e.g. {text}-04:00 or {text}Z")
    return when


def read_submitted_csv(path: Path) -> dict[str, datetime]:
    """``name,submitted`` rows (name: the kerberos, the zip's name without .zip); InputError names the
    file and line of anything else."""
    text = bounded.read_text(path, SUBMITTED_CSV_BYTES, "--submitted-csv")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"name", "submitted"} <= {f.strip() for f in reader.fieldnames}:
        raise bounded.InputError(f"--submitted-csv {path}: needs a header with the columns name,submitted")
    times: dict[str, datetime] = {}
    for row in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
        try:
            times[row["name"].removesuffix(".zip")] = parse_time(row.get("submitted", ""))
        except ValueError as exc:
            raise bounded.InputError(f"--submitted-csv {path}, line {reader.line_num}: {exc}") from None
    return times


def zip_time(path: Path, due: datetime) -> datetime | None:
    """The newest modification time stored in the zip, read in the deadline's time zone (zips store
    local times without a zone, and the student's clock and zip tool decide them: unreliable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            stamps = [info.date_time for info in archive.infolist()]
        return max(datetime(*stamp, tzinfo=due.tzinfo) for stamp in stamps) if stamps else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def apply(row: dict[str, Any], raw: float, due: datetime | None, submitted: datetime | None,
          source: str) -> dict[str, Any]:
    """Set the row's late columns: the raw points, the factor and the final points."""
    row.update(raw=raw, submitted=None, submitted_from="", days_late=None, factor=None, final=raw)
    if due is None:
        return row
    if submitted is None:
        row["submitted_from"] = "unknown: not late-penalised"
        row["problems"].append("no submission time known: the late policy was not applied")
        return row
    factor = late_factor(due, submitted)
    row.update(submitted=submitted.isoformat(timespec="minutes"), submitted_from=source,
               days_late=days_late(due, submitted), factor=factor, final=round(raw * factor, 4))
    return row


@dataclass(frozen=True)
class Submitted:
    """When each submission of a folder was handed in: ``--submitted-csv``'s times, else (or for a
    name the CSV lacks) the zip's own timestamps, flagged as unreliable."""

    due: datetime
    times: dict[str, datetime] | None = None

    def of(self, name: str, zip_path: Path) -> tuple[datetime | None, str]:
        if self.times is not None and name in self.times:
            return self.times[name], "--submitted-csv"
        when = zip_time(zip_path, self.due)
        return when, ("zip timestamps (unreliable)" if when else "")


def add_arguments(p) -> None:
    p.add_argument("--due", help="the deadline, ISO 8601 with a UTC offset (e.g. 2022-03-29T23:59-04:00): "
                                 "applies the late policy (factor, raw and final columns)")
    p.add_argument("--submitted-csv", type=Path,
                   help="CSV with columns name,submitted (ISO 8601 with offset) per kerberos; without it "
                        "the zips' own timestamps are used, flagged as unreliable")


def from_args(p, a) -> Submitted | None:
    """The parsed ``--due``/``--submitted-csv``; a usage error (exit 2) names what is wrong."""
    if a.due is None:
        if a.submitted_csv is not None:
            p.error("--submitted-csv needs --due (the deadline the times are compared with)")
        return None
    try:
        due = parse_time(a.due)
        return Submitted(due, read_submitted_csv(a.submitted_csv) if a.submitted_csv else None)
    except (ValueError, bounded.InputError) as exc:
        p.error(f"--due {a.due}: {exc}" if isinstance(exc, ValueError) else str(exc))
