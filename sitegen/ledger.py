"""Reading ledgers (``run.jsonl``): a strict stdlib pre-pass, then Polars.

Polars reports neither file nor line for bad input and quietly coerces mixed
types, so every file first goes through a streaming pre-pass that checks each
line (size, UTF-8, JSON, duplicate keys, NaN, object, record type, schema) and
reports problems as ``runs/x/run.jsonl:17:5: ...``. Only files that pass are
handed to Polars, with an explicit schema, to build one frame of calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from sitegen import schema
from sitegen.exceptions import Problem
from sitegen.jsonio import JsonError, decode

RECORD_SCHEMAS = {
    "meta": "ledger-meta.v1.json",
    "call": "ledger-call.v1.json",
    "skip": "ledger-skip.v1.json",
    "result": "ledger-result.v1.json",
    "end": "ledger-end.v1.json",
}

# Explicit Polars schema for call records; fields not named here are ignored
# by the reader (they stay in the file and are published with it).
CALL_SCHEMA: dict[str, pl.DataType] = {
    "type": pl.String(),
    "cell_id": pl.String(),
    "prompt_id": pl.String(),
    "phase": pl.String(),
    "cold_kind": pl.String(),
    "run_idx": pl.Int64(),
    "first_delta_ms": pl.Float64(),
    "ttft_ms": pl.Float64(),
    "total_duration_ms": pl.Float64(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
    "tokens_per_sec": pl.Float64(),
    "tpot_ms": pl.Float64(),
    "decode_tps": pl.Float64(),
    "finish_reason": pl.String(),
    "http_status": pl.Int64(),
    "backend": pl.String(),
    "error": pl.String(),
}


@dataclass
class LedgerSummary:
    """What the pre-pass learned about one ledger, besides the call rows."""

    meta: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    calls: int = 0
    errors: int = 0
    skips: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0

    @property
    def interrupted(self) -> bool:
        return self.end is None or bool(self.end.get("interrupted"))


def _decode_error_column(raw: bytes, exc: UnicodeDecodeError) -> int:
    # Column in characters of the valid prefix, 1-based.
    return len(raw[: exc.start].decode("utf-8", errors="replace")) + 1


def normalise_record(record: dict[str, Any]) -> dict[str, Any]:
    """Harness ledgers mark probe failures as ``phase: "skipped"`` lines."""
    if record.get("phase") == "skipped" and record.get("type") in ("call", "skip"):
        out = {"type": "skip", "cell_id": record.get("cell_id")}
        reason = record.get("reason") or record.get("error") or "skipped"
        out["reason"] = reason
        return out
    return record


# Slack allowed when comparing two durations of one call: both are rounded
# from one clock, so a real call never breaks the order by more than this.
TIMING_EPSILON_MS = 0.001
_FIRST_EVENTS = ("first_delta_ms", "ttft_ms")
_STAMPS = {"meta": "started_at_utc", "end": "finished_at_utc", "call": "started_at_utc"}


def record_problems(record: dict[str, Any], meta: dict[str, Any] | None) -> list[str]:
    """What a schema cannot say about a record that matches it: impossible
    timings, a stamp without a zone, an end before the start."""
    rtype = record.get("type")
    out: list[str] = []
    if rtype == "call":
        total = record.get("total_duration_ms")
        for key in _FIRST_EVENTS:
            first = record.get(key)
            if first is not None and total is not None and first > total + TIMING_EPSILON_MS:
                out.append(
                    f"$.{key}: {first} is later than $.total_duration_ms {total}"
                    " (the first event cannot come after the last)"
                )
    stamp_key = _STAMPS.get(rtype or "")
    stamp = record.get(stamp_key) if stamp_key else None
    if not isinstance(stamp, str):
        return out
    # Imported ledgers keep the local time a tool wrote (their metadata.json
    # holds only zoned times); every other ledger is written in UTC.
    holder = record if rtype == "meta" else meta or {}
    imported = bool(holder.get("imported"))
    moment = schema.parse_time(stamp)
    if moment.tzinfo is None and not imported:
        out.append(f"$.{stamp_key}: {stamp!r} has no time zone (UTC is required, e.g. 'Z')")
    if rtype == "end" and meta is not None:
        start = _moment(meta.get("started_at_utc"))
        # A naive and a zoned time cannot be compared.
        if (
            start is not None
            and (start.tzinfo is None) == (moment.tzinfo is None)
            and moment < start
        ):
            out.append(
                f"$.finished_at_utc: {stamp!r} is before the meta record's"
                f" started_at_utc {meta['started_at_utc']!r} (line 1)"
            )
    return out


def _moment(value: Any) -> datetime | None:
    try:
        return schema.parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


class LineCheck:
    """The strict check of one ledger's lines, fed in order; what the pre-pass and
    the column check (sitegen.ledger_columns) share, so both give one verdict.

    ``line`` checks one line fully (UTF-8, JSON, record type, schema, timings);
    ``proved_calls`` counts lines the column check already proved to be valid
    call records, applying only the rules that depend on a line's place.
    """

    def __init__(self, display: str, *, max_line_bytes: int):
        self.display = display
        self.max_line_bytes = max_line_bytes
        self.summary = LedgerSummary()
        self.problems: list[Problem] = []
        self._after_end_reported = False

    def bad(self, line: int, message: str, column: int | None = None) -> None:
        self.problems.append(Problem(self.display, line, column, message))

    def _placed(self, lineno: int, rtype: str) -> bool:
        """The rules of a record's place; False when the record is to be dropped."""
        if lineno == 1 and rtype != "meta":
            self.bad(1, f"missing meta record: line 1 is a {rtype!r} record")
        elif lineno > 1 and rtype == "meta":
            self.bad(lineno, "meta record must be the first line, and only once")
            return False
        if self.summary.end is not None and not self._after_end_reported:
            self.bad(lineno, "record after the end record")
            self._after_end_reported = True
        return True

    def proved_calls(self, first: int, count: int, errors: int) -> None:
        """``count`` valid call records, the first on line ``first`` and all
        before the next line given to :meth:`line`; ``errors`` of them errored."""
        if count:
            self._placed(first, "call")
            self.summary.calls += count
            self.summary.errors += errors

    def line(self, lineno: int, raw: bytes) -> dict[str, Any] | None:
        """Check one line (without its newline); the record when it is a valid call."""
        if len(raw) > self.max_line_bytes:
            self.bad(lineno, f"line is longer than the cap of {self.max_line_bytes} bytes")
            return None
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            self.bad(lineno, "empty line (one JSON object per line)")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad(lineno, "bytes that are not UTF-8", _decode_error_column(raw, exc))
            return None
        try:
            record = decode(text)
        except JsonError as exc:
            self.bad(lineno, exc.message, None if exc.offset is None else exc.offset + 1)
            return None
        if not isinstance(record, dict):
            kind = "array" if isinstance(record, list) else type(record).__name__
            self.bad(lineno, f"record is not a JSON object (got {kind})")
            return None
        record = normalise_record(record)
        rtype = record.get("type")
        if not isinstance(rtype, str) or rtype not in RECORD_SCHEMAS:  # {} is unhashable
            known = ", ".join(RECORD_SCHEMAS)
            what = 'has no "type"' if rtype is None else f"has unknown type {rtype!r}"
            self.bad(lineno, f"record {what} (expected one of: {known})")
            return None
        if not self._placed(lineno, rtype):
            return None
        summary = self.summary
        messages = schema.errors(RECORD_SCHEMAS[rtype], record)
        for message in messages:
            self.bad(lineno, message)
        if not messages:
            for message in record_problems(record, summary.meta):
                self.bad(lineno, message)
        if rtype == "meta" and lineno == 1:
            summary.meta = record
        elif rtype == "end":
            summary.end = record
        elif rtype == "call":
            summary.calls += 1
            if record.get("error") is not None:
                summary.errors += 1
            return None if messages else record
        elif rtype == "skip":
            summary.skips.append(record)
        elif rtype == "result":
            summary.results.append(record)
        return None

    def finish(self, lines: int) -> tuple[LedgerSummary, list[Problem]]:
        self.summary.lines = lines
        if lines == 0:
            self.problems.append(
                Problem(self.display, None, None, "ledger is empty: missing meta record")
            )
        return self.summary, self.problems


def prepass(
    path: Path, display: str, *, max_line_bytes: int
) -> tuple[LedgerSummary, list[Problem]]:
    """Check every line of one ledger; return its summary and all its problems.

    Lines are read with a cap, so an overlong line is never held whole.
    """
    check = LineCheck(display, max_line_bytes=max_line_bytes)
    lineno = 0
    with path.open("rb") as fh:
        while True:
            raw = fh.readline(max_line_bytes + 1)
            if not raw:
                break
            lineno += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                check.line(lineno, raw)  # reported as overlong
                # Skip the rest of this overlong line.
                while raw and not raw.endswith(b"\n"):
                    raw = fh.readline(max_line_bytes + 1)
                continue
            check.line(lineno, raw[:-1] if raw.endswith(b"\n") else raw)
    return check.finish(lineno)


def read_calls(ledgers: dict[str, Path]) -> pl.DataFrame:
    """One frame of every call record of the given ledgers, ``run_id`` as a column.

    Call only with ledgers that passed the pre-pass: the explicit schema then
    matches what is on disk, and nothing is coerced. All files go to one
    Polars scan; the file path column is mapped to the run id afterwards
    (one lazy frame per file costs seconds per thousand files).
    """
    columns = {"run_id": pl.String(), **CALL_SCHEMA}
    if not ledgers:
        return pl.DataFrame(schema=columns)
    by_path = {str(path): run_id for run_id, path in ledgers.items()}
    frame = (
        pl.scan_ndjson(sorted(by_path), schema=CALL_SCHEMA, include_file_paths="_path")
        # Harness-style probe failures are "call" lines with phase "skipped";
        # the pre-pass turned them into skip records.
        .filter((pl.col("type") == "call") & pl.col("phase").is_in(["cold", "warm"]))
        .with_columns(
            pl.col("_path").replace_strict(by_path, return_dtype=pl.String()).alias("run_id")
        )
        .select(list(columns))
        .collect()
    )
    return sort_calls(frame)


CALL_ORDER = ["run_id", "cell_id", "prompt_id", "phase", "run_idx"]


def sort_calls(frame: pl.DataFrame) -> pl.DataFrame:
    """The one order of call rows everywhere (stable, so ledger order breaks ties)."""
    return frame.sort(CALL_ORDER, maintain_order=True)
